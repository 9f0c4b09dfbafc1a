// Sweeps (#/sweeps, #/sweep/<id>): the sweep form (a grid per parameter, optional walk-forward),
// the list of sweeps, and one sweep: live progress, the deflated Sharpe ratio, the sortable
// results table with "Open as backtest" on each row, a heatmap of any two parameters (any
// metric), and for a walk-forward its folds and the stitched out-of-sample equity.

import { ApiError, get, json, query } from "./api.js";
import { lineChart } from "./charts.js";
import { clear, h, uid } from "./dom.js";
import * as f from "./format.js";
import { METRICS } from "./metrics.js";
import { Status, TERMINAL as TERMINAL_STATUSES } from "./status.js";

const POLL_MS = 700;
const TERMINAL = new Set(TERMINAL_STATUSES);
const LABELS = Object.fromEntries(METRICS.map((m) => [m.key, m.label]));

function cell(key, value) {
  if (value === null || value === undefined) return "\u2013";
  const metric = METRICS.find((m) => m.key === key.replace(/^(is|oos)_/, ""));
  if (metric && typeof value === "number") return metric.format(value);
  return typeof value === "number" ? f.num(value, Number.isInteger(value) ? 0 : 4) : String(value);
}

/** "5,10,20" or "5:50:5" (start:stop:step, stop included) -> a grid axis for POST /sweeps. */
export function parseAxis(text) {
  const value = text.trim();
  if (!value) return null;
  if (value.includes(":")) {
    const parts = value.split(":").map(Number);
    if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x)))
      throw new Error(`"${value}" is not start:stop:step`);
    return { start: parts[0], stop: parts[1], step: parts[2] };
  }
  return value.split(",").map((item) => {
    const number = Number(item.trim());
    return item.trim() !== "" && Number.isFinite(number) ? number : item.trim();
  });
}

function sweepForm(onSubmitted) {
  const strategy = h("select", { name: "strategy", id: uid("sw-strategy") });
  const axes = h("div", { class: "sweep-axes" });
  const bars = h("input", { name: "bars", type: "number", value: "20000", min: "2", id: uid("sw-bars") });
  const seed = h("input", { name: "seed", type: "number", value: "1", min: "0", id: uid("sw-seed") });
  const interval = h("input", { name: "interval", value: "1h", id: uid("sw-interval") });
  const sortBy = h(
    "select",
    { name: "sort_by", id: uid("sw-sort") },
    METRICS.map((m) => h("option", { value: m.key, selected: m.key === "sharpe" }, m.label)),
  );
  const walk = h("input", { type: "checkbox", name: "walk_forward", id: uid("sw-walk") });
  const train = h("input", { name: "train", value: "180d", id: uid("sw-train"), disabled: true });
  const test = h("input", { name: "test", value: "30d", id: uid("sw-test"), disabled: true });
  const anchored = h("input", { type: "checkbox", name: "anchored", id: uid("sw-anchored"), disabled: true });
  const errors = h("ul", { class: "error sweep-errors", role: "alert" });
  const labelled = (input, text) => h("label", { for: input.id }, text, input);
  walk.addEventListener("change", () => {
    for (const input of [train, test, anchored]) input.disabled = !walk.checked;
  });
  let strategies = {};

  function renderAxes() {
    const schema = strategies[strategy.value]?.params?.properties || {};
    clear(
      axes,
      Object.entries(schema).map(([name, param], i) => {
        const input = h("input", {
          name: `grid.${name}`,
          id: uid(`sw-grid-${name}`),
          placeholder: `e.g. ${param.default ?? 1} or start:stop:step`,
          value: i < 2 && param.default !== undefined ? defaultAxis(param) : "",
        });
        return labelled(input, `${name} values`);
      }),
    );
  }

  function defaultAxis(param) {
    const d = Number(param.default);
    if (!Number.isInteger(d)) return String(param.default);
    return `${Math.max(param.minimum ?? 1, Math.round(d / 2))}:${d * 2}:${Math.max(1, Math.round(d / 2))}`;
  }

  async function submit(event) {
    event.preventDefault();
    clear(errors);
    const grid = {};
    try {
      for (const input of axes.querySelectorAll("input")) {
        const axis = parseAxis(input.value);
        if (axis !== null) grid[input.name.slice(5)] = axis;
      }
    } catch (error) {
      return clear(errors, h("li", {}, error.message));
    }
    const body = {
      strategy: strategy.value,
      data: { synthetic: { bars: Number(bars.value), seed: Number(seed.value), interval: interval.value } },
      grid,
      sort_by: sortBy.value,
    };
    if (walk.checked) body.walk_forward = { train: train.value, test: test.value, anchored: anchored.checked };
    try {
      const task = await json("POST", "/sweeps", { body });
      onSubmitted(task);
    } catch (error) {
      const problems = error instanceof ApiError && error.fieldErrors.length ? error.fieldErrors : null;
      clear(
        errors,
        problems
          ? problems.map((p) => h("li", { dataset: { field: p.field } }, `${p.field}: ${p.message}`))
          : h("li", {}, error.message),
      );
    }
  }

  const el = h(
    "form",
    { class: "card sweep-form", onsubmit: submit, "aria-label": "New sweep" },
    h("h2", {}, "New sweep"),
    h("div", { class: "sweep-row" }, labelled(strategy, "Strategy"), labelled(sortBy, "Rank by")),
    h("fieldset", {}, h("legend", {}, "Grid: a value list (5,10,20) or start:stop:step"), axes),
    h(
      "fieldset",
      {},
      h("legend", {}, "Synthetic data"),
      h("div", { class: "sweep-row" }, labelled(bars, "Bars"), labelled(seed, "Seed"), labelled(interval, "Interval")),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, labelled(walk, "Walk-forward")),
      h("div", { class: "sweep-row" }, labelled(train, "Train"), labelled(test, "Test"), labelled(anchored, "Anchored")),
    ),
    errors,
    h("button", { type: "submit", class: "btn primary" }, "Run sweep"),
  );
  strategy.addEventListener("change", renderAxes);
  get("/strategies")
    .then((answer) => {
      const list = answer.strategies || [];
      strategies = Object.fromEntries(list.map((s) => [s.name, s]));
      clear(
        strategy,
        list
          .filter((s) => s.name !== "rules")
          .map((s) => h("option", { value: s.name, selected: s.name === "sma_cross" }, s.name)),
      );
      renderAxes();
    })
    .catch((error) => clear(errors, h("li", {}, error.message)));
  return el;
}

function statusLine(task) {
  const percent = Math.round((task.progress || 0) * 100);
  return h(
    "div",
    { class: "sweep-status", dataset: { status: task.status } },
    h("span", { class: `badge ${task.status}` }, task.status),
    h("progress", { max: "100", value: String(percent), "aria-label": "sweep progress" }),
    h("span", { class: "mono" }, `${percent}%`),
    task.error ? h("span", { class: "error" }, task.error) : null,
  );
}

/** #/sweeps: the form and every sweep, newest first (refreshed while any runs). */
export function sweepsView() {
  const list = h("tbody");
  const el = h(
    "div",
    { class: "sweeps-page" },
    sweepForm((task) => {
      location.hash = `#/sweep/${task.task_id}`;
    }),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Sweeps"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "sweeps-table" },
          h("thead", {}, h("tr", {}, ["Sweep", "Kind", "Strategy", "Status", "Best", "Created"].map((t) => h("th", { scope: "col" }, t)))),
          list,
        ),
      ),
    ),
  );
  let timer = 0;
  let destroyed = false;
  async function refresh() {
    const page = await get(`/sweeps${query({ limit: 50 })}`);
    if (destroyed) return;
    clear(
      list,
      page.sweeps.map((s) =>
        h(
          "tr",
          { dataset: { sweepId: s.task_id, status: s.status } },
          h("td", {}, h("a", { href: `#/sweep/${s.task_id}`, class: "mono" }, f.shortId(s.task_id))),
          h("td", {}, s.kind === "walk_forward" ? "walk-forward" : "grid"),
          h("td", {}, s.spec.strategy),
          h("td", {}, statusLine(s)),
          h("td", { class: "num" }, cell("sharpe", s.result?.metrics?.sharpe)),
          h("td", {}, f.time(s.created_at)),
        ),
      ),
    );
    if (page.sweeps.some((s) => !TERMINAL.has(s.status))) timer = setTimeout(() => refresh().catch(() => {}), POLL_MS);
  }
  refresh().catch(() => {});
  return {
    el,
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}

/** #/sweep/<id>: one sweep, live until it ends, then its results. */
export function sweepView(id) {
  const head = h("header", { class: "card detail-head" });
  const body = h("div", { class: "sweep-body" });
  const el = h(
    "div",
    { class: "sweep-page", dataset: { sweepId: id } },
    h("nav", { class: "crumbs" }, h("a", { href: "#/sweeps" }, "\u2190 All sweeps")),
    head,
    body,
  );
  let destroyed = false;
  let timer = 0;
  let shown = false;

  async function cancel() {
    try {
      await json("DELETE", `/sweeps/${encodeURIComponent(id)}`);
    } catch (error) {
      append(error.message);
    }
    poll();
  }

  function append(message) {
    body.prepend(h("p", { class: "card error", role: "alert" }, message));
  }

  async function poll() {
    clearTimeout(timer);
    let task;
    try {
      task = await get(`/sweeps/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!destroyed) clear(body, h("p", { class: "card error" }, error.message));
      return;
    }
    if (destroyed) return;
    document.title = `Sweep ${f.shortId(id)} \u00b7 coinbt`;
    clear(
      head,
      h(
        "div",
        { class: "title" },
        h("h1", {}, `${task.kind === "walk_forward" ? "Walk-forward" : "Sweep"} of ${task.spec.strategy}`),
        h("p", { class: "muted small mono" }, id),
      ),
      statusLine(task),
      TERMINAL.has(task.status) ? null : h("button", { type: "button", class: "btn", onclick: cancel }, "Cancel"),
    );
    if (!TERMINAL.has(task.status) || task.sweep_pending) {
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    if (task.status === Status.COMPLETED && task.sweep && !shown) {
      shown = true;
      clear(body, task.kind === "walk_forward" ? walkForward(task) : gridResults(task));
    }
  }
  poll();
  return {
    el,
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}

function deflatedBox(dsr, summary) {
  if (!dsr) return h("p", { class: "muted" }, "No deflated Sharpe ratio (the bars have no interval).");
  const verdict =
    dsr.probability >= 0.95
      ? "likely a real edge"
      : dsr.probability >= 0.5
        ? "not distinguishable from luck"
        : "what the best of many random trials looks like";
  return h(
    "section",
    { class: "card dsr", "aria-label": "Overfitting guard" },
    h("h2", {}, "Deflated Sharpe ratio"),
    h("p", { class: "dsr-value mono", dataset: { probability: String(dsr.probability) } }, f.pct(dsr.probability, { digits: 1 })),
    h(
      "p",
      { class: "muted small" },
      `Probability that the best row's true Sharpe is above zero after ${f.int(dsr.trials)} trials ` +
        `(${verdict}). The best of ${f.int(summary.evaluated)} combinations would reach a per-bar ` +
        `Sharpe of ${f.num(dsr.expected_max_sharpe, 4)} by luck alone; it reached ${f.num(dsr.best_sharpe, 4)}.`,
    ),
  );
}

function gridResults(task) {
  const summary = task.sweep;
  const columns = [...summary.params, ...summary.metrics];
  const state = { sort: summary.sort_by, order: summary.descending ? "desc" : "asc", cursor: null };
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "btn", hidden: true }, "More rows");
  const headRow = h("tr");
  const notes = h("div", { role: "status" });

  function header() {
    clear(
      headRow,
      h("th", { scope: "col" }, ""),
      columns.map((c) =>
        h(
          "th",
          { scope: "col", class: "num", "aria-sort": state.sort === c ? (state.order === "desc" ? "descending" : "ascending") : "none" },
          h(
            "button",
            {
              type: "button",
              class: "sort",
              dataset: { column: c },
              onclick: () => {
                state.order = state.sort === c && state.order === "desc" ? "asc" : "desc";
                state.sort = c;
                load(true);
              },
            },
            LABELS[c] || c,
          ),
        ),
      ),
    );
  }

  async function openAsBacktest(row) {
    const params = Object.fromEntries(summary.params.map((p) => [p, row[p]]));
    const spec = { ...task.spec, params: { ...task.spec.params, ...params } };
    delete spec.sweep;
    delete spec.source;
    try {
      const created = await json("POST", "/backtests", { body: spec });
      location.hash = `#/task/${created.task_id}`;
    } catch (error) {
      clear(notes, h("p", { class: "error" }, error.message));
    }
  }

  async function load(reset) {
    if (reset) {
      state.cursor = null;
      clear(tbody);
    }
    header();
    const page = await get(
      `/sweeps/${encodeURIComponent(task.task_id)}/rows${query({ sort: state.sort, order: state.order, limit: 50, cursor: state.cursor })}`,
    );
    for (const row of page.rows) {
      tbody.append(
        h(
          "tr",
          { dataset: Object.fromEntries(summary.params.map((p) => [`param${p[0].toUpperCase()}${p.slice(1)}`, String(row[p])])) },
          h("td", {}, h("button", { type: "button", class: "btn small", onclick: () => openAsBacktest(row) }, "Open as backtest")),
          columns.map((c) => h("td", { class: "num", dataset: { column: c } }, cell(c, row[c]))),
        ),
      );
    }
    state.cursor = page.next_cursor;
    more.hidden = !page.next_cursor;
  }
  more.addEventListener("click", () => load(false));
  load(true).catch((error) => clear(notes, h("p", { class: "error" }, error.message)));

  return [
    deflatedBox(summary.deflated_sharpe, summary),
    summary.params.length >= 2 ? heatmap(task, summary) : null,
    h(
      "section",
      { class: "card" },
      h("h2", {}, `Results: ${f.int(summary.evaluated)} combinations`, summary.skipped ? `, ${f.int(summary.skipped)} skipped` : ""),
      h(
        "p",
        { class: "small" },
        h("a", { href: `/sweeps/${task.task_id}/table`, download: `sweep-${task.task_id}.csv` }, "Download CSV"),
      ),
      notes,
      h("div", { class: "table-wrap" }, h("table", { class: "sweep-rows" }, h("thead", {}, headRow), tbody)),
      more,
    ),
  ];
}

function heatmap(task, summary) {
  const [first, second] = summary.params;
  const pick = (name, value) =>
    h("select", { name }, summary.params.map((p) => h("option", { value: p, selected: p === value }, p)));
  const xSel = pick("x", first);
  const ySel = pick("y", second);
  const mSel = h(
    "select",
    { name: "metric" },
    summary.metrics.map((m) => h("option", { value: m, selected: m === summary.sort_by }, LABELS[m] || m)),
  );
  const box = h("div", { class: "heatmap-box" });
  let rows = null;

  async function all() {
    if (rows) return rows;
    const found = [];
    let cursor = null;
    do {
      const page = await get(`/sweeps/${encodeURIComponent(task.task_id)}/rows${query({ limit: 1000, cursor })}`);
      found.push(...page.rows);
      cursor = page.next_cursor;
    } while (cursor && found.length < 20_000);
    rows = found;
    return rows;
  }

  async function draw() {
    const data = await all();
    const x = xSel.value;
    const y = ySel.value;
    const metric = mSel.value;
    const xs = [...new Set(data.map((r) => r[x]))].sort((a, b) => a - b);
    const ys = [...new Set(data.map((r) => r[y]))].sort((a, b) => b - a);
    const cells = new Map();
    for (const r of data) {
      const key = `${r[x]}|${r[y]}`;
      const v = r[metric];
      if (typeof v !== "number") continue;
      const better = summary.descending ? Math.max : Math.min;
      cells.set(key, cells.has(key) ? better(cells.get(key), v) : v); // other parameters: the best
    }
    const values = [...cells.values()];
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const color = (v) => {
      const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      return `hsl(${Math.round(t * 130)}, 60%, ${28 + Math.round(t * 20)}%)`;
    };
    clear(
      box,
      h(
        "table",
        { class: "heatmap", "aria-label": `${LABELS[metric] || metric} by ${x} and ${y}` },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, `${y} \\ ${x}`), xs.map((v) => h("th", { scope: "col" }, String(v))))),
        h(
          "tbody",
          {},
          ys.map((yv) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, String(yv)),
              xs.map((xv) => {
                const v = cells.get(`${xv}|${yv}`);
                return v === undefined
                  ? h("td", { class: "empty" }, "")
                  : h("td", { style: `background:${color(v)}`, title: `${x}=${xv} ${y}=${yv}: ${cell(metric, v)}`, dataset: { x: String(xv), y: String(yv), value: String(v) } }, cell(metric, v));
              }),
            ),
          ),
        ),
      ),
    );
  }
  for (const select of [xSel, ySel, mSel]) select.addEventListener("change", () => draw().catch(() => {}));
  draw().catch((error) => clear(box, h("p", { class: "error" }, error.message)));
  return h(
    "section",
    { class: "card", "aria-label": "Heatmap" },
    h("h2", {}, "Heatmap"),
    h("div", { class: "sweep-row" }, h("label", {}, "Across ", xSel), h("label", {}, "Down ", ySel), h("label", {}, "Metric ", mSel)),
    box,
  );
}

function walkForward(task) {
  const wf = task.sweep.walk_forward;
  const d = wf.degradation;
  const chartBox = h("div", { class: "chart-box" });
  const folds = h(
    "table",
    { class: "folds" },
    h(
      "thead",
      {},
      h("tr", {}, ["Fold", "Test from", "Parameters", "In-sample Sharpe", "Out-of-sample Sharpe", "OOS return"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h(
      "tbody",
      {},
      wf.folds.map((fold) =>
        h(
          "tr",
          { dataset: { fold: String(fold.index) } },
          h("td", { class: "num" }, String(fold.index)),
          h("td", {}, f.utc(fold.test_start_ms)),
          h("td", {}, f.params(fold.params)),
          h("td", { class: "num" }, cell("sharpe", fold.in_sample.sharpe)),
          h("td", { class: "num" }, cell("sharpe", fold.out_of_sample.sharpe)),
          h("td", { class: "num" }, cell("total_return", fold.out_of_sample.total_return)),
        ),
      ),
    ),
  );
  get(`/backtests/${encodeURIComponent(task.task_id)}/equity${query({ points: 800 })}`)
    .then((curve) => {
      const chart = lineChart({
        width: Math.max(300, Math.floor(chartBox.clientWidth) || 900),
        height: 280,
        series: [{ xs: curve.ts, ys: curve.equity, color: "#58a6ff", label: "stitched out-of-sample equity" }],
        yFormat: (v) => f.money(v),
        xFormat: (ms) => `${f.utc(ms)} UTC`,
        className: "wf-chart",
        title: "stitched out-of-sample equity",
      });
      clear(chartBox, chart.el);
    })
    .catch((error) => clear(chartBox, h("p", { class: "error" }, error.message)));
  return [
    h(
      "section",
      { class: "card", "aria-label": "Degradation" },
      h("h2", {}, `Walk-forward: ${wf.folds.length} folds (${wf.train} train, ${wf.test} test${wf.anchored ? ", anchored" : ""})`),
      h(
        "dl",
        { class: "wf-degradation" },
        h("dt", {}, "In-sample Sharpe (mean)"),
        h("dd", { class: "mono" }, cell("sharpe", d.in_sample_sharpe)),
        h("dt", {}, "Out-of-sample Sharpe"),
        h("dd", { class: "mono" }, cell("sharpe", d.out_of_sample_sharpe)),
        h("dt", {}, "OOS / IS Sharpe"),
        h("dd", { class: "mono" }, cell("x", d.sharpe_ratio)),
        h("dt", {}, "Walk-forward efficiency"),
        h("dd", { class: "mono" }, cell("x", d.efficiency)),
      ),
    ),
    h("section", { class: "card" }, h("h2", {}, "Stitched out-of-sample equity"), chartBox),
    h("section", { class: "card" }, h("h2", {}, "Folds"), h("div", { class: "table-wrap" }, folds)),
  ];
}
