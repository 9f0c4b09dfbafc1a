// Compare (#/compare/<id>,<id>,...): completed runs' equity curves overlaid, each as the return
// on its own starting cash, with their metrics side by side (the best of each row in bold).

import { get, query } from "./api.js";
import { PALETTE, lineChart } from "./charts.js";
import { clear, h } from "./dom.js";
import * as f from "./format.js";
import { METRICS, toneOf } from "./metrics.js";
import { Status } from "./status.js";
import * as store from "./store.js";

function best(metric, values) {
  if (!metric.better) return null;
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (finite.length < 2) return null;
  return metric.better === "high" ? Math.max(...finite) : Math.min(...finite);
}

export function compareView(ids) {
  const unique = [...new Set(ids.filter(Boolean))];
  const legend = h("ul", { class: "legend-list" });
  const chartBox = h("div", { class: "chart-box" });
  const metricsBox = h("div");
  const notes = h("div", { role: "status" });
  const el = h(
    "div",
    { class: "compare-page" },
    h("nav", { class: "crumbs" }, h("a", { href: "#/" }, "\u2190 All backtests")),
    h(
      "header",
      { class: "card detail-head" },
      h(
        "div",
        { class: "title" },
        h("h1", {}, "Compare runs"),
        h(
          "p",
          { class: "muted small" },
          "Equity as the return on each run's starting cash; tick runs in the table to change the selection.",
        ),
      ),
    ),
    notes,
    h("section", { class: "card", hidden: unique.length < 2 }, h("h2", {}, "Equity"), legend, chartBox),
    h("section", { class: "card", hidden: unique.length < 2 }, h("h2", {}, "Metrics"), metricsBox),
  );
  let destroyed = false;
  let runs = [];
  let chartWidth = 0;

  if (unique.length < 2) {
    clear(
      notes,
      h("p", { class: "card muted" }, "Tick two or more completed runs in the table, then press Compare."),
    );
  }

  function drop(id) {
    location.hash = `#/compare/${unique.filter((x) => x !== id).join(",")}`;
  }

  async function load() {
    const tasks = await Promise.all(
      unique.map((id) => store.refresh(id).catch((error) => ({ task_id: id, error }))),
    );
    if (destroyed) return;
    const problems = [];
    runs = [];
    for (const task of tasks) {
      if (task.error instanceof Error) problems.push(`${f.shortId(task.task_id)}: ${task.error.message}`);
      else if (task.status !== Status.COMPLETED)
        problems.push(
          `${f.shortId(task.task_id)} is ${task.status}: only completed runs have an equity curve.`,
        );
      else runs.push({ task, color: PALETTE[runs.length % PALETTE.length] });
    }
    if (problems.length)
      clear(
        notes,
        h(
          "ul",
          { class: "card notes" },
          problems.map((p) => h("li", {}, p)),
        ),
      );
    clear(
      legend,
      runs.map((run) =>
        h(
          "li",
          {},
          h("span", { class: "swatch", style: `background:${run.color}` }),
          h(
            "a",
            { href: `#/task/${run.task.task_id}` },
            h("span", { class: "strong" }, run.task.spec.strategy),
            " ",
            h("span", { class: "muted" }, f.params(run.task.spec.params)),
            " ",
            h("span", { class: "mono muted small" }, f.shortId(run.task.task_id)),
          ),
          unique.length > 2
            ? h(
                "button",
                {
                  type: "button",
                  class: "btn small ghost",
                  "aria-label": `Remove ${f.shortId(run.task.task_id)} from the comparison`,
                  onclick: () => drop(run.task.task_id),
                },
                "\u00d7",
              )
            : null,
        ),
      ),
    );
    renderMetrics();
    await draw();
  }

  async function draw() {
    const width = Math.floor(chartBox.clientWidth);
    if (!runs.length || width < 50 || width === chartWidth) return;
    chartWidth = width;
    const curves = await Promise.all(
      runs.map((run) =>
        get(`/backtests/${encodeURIComponent(run.task.task_id)}/equity${query({ points: width })}`),
      ),
    );
    if (destroyed || width !== chartWidth) return;
    const chart = lineChart({
      width,
      height: 340,
      series: runs.map((run, i) => {
        const cash = run.task.spec.cash || curves[i].equity[0] || 1;
        return {
          xs: curves[i].ts,
          ys: curves[i].equity.map((v) => v / cash - 1),
          color: run.color,
          label: `${run.task.spec.strategy} ${f.shortId(run.task.task_id)}`,
        };
      }),
      yFormat: (v) => f.pct(v, { digits: 0 }),
      tipFormat: (v) => f.pct(v, { signed: true }),
      xFormat: (ms) => `${f.utc(ms)} UTC`,
      baseline: 0,
      className: "compare-chart",
      title: "equity curves, as return on starting cash",
    });
    clear(chartBox, chart.el);
  }

  function renderMetrics() {
    if (!runs.length) return clear(metricsBox);
    const head = h(
      "tr",
      {},
      h("th", { scope: "col" }, "Metric"),
      runs.map((run) =>
        h(
          "th",
          { scope: "col", class: "num" },
          h("span", { class: "swatch", style: `background:${run.color}` }),
          " ",
          run.task.spec.strategy,
          h("div", { class: "mono muted small" }, f.shortId(run.task.task_id)),
        ),
      ),
    );
    const spec = (label, fn) =>
      h(
        "tr",
        { class: "spec-row" },
        h("th", { scope: "row" }, label),
        runs.map((run) => h("td", { class: "num" }, fn(run.task))),
      );
    const rows = [
      spec("Parameters", (t) => f.params(t.spec.params)),
      spec("Data", (t) => {
        const d = f.dataSource(t.spec.data);
        return `${d.title} \u00b7 ${d.detail}`;
      }),
      ...METRICS.map((m) => {
        const values = runs.map((run) => run.task.result?.metrics?.[m.key]);
        const top = best(m, values);
        return h(
          "tr",
          {},
          h("th", { scope: "row" }, m.label),
          values.map((v) =>
            h("td", { class: `num ${toneOf(m, v)} ${top !== null && v === top ? "best" : ""}` }, m.format(v)),
          ),
        );
      }),
    ];
    clear(
      metricsBox,
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "compare-table" }, h("thead", {}, head), h("tbody", {}, rows)),
      ),
    );
  }

  let timer = 0;
  const resize = new ResizeObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(() => draw().catch(() => {}), 150);
  });
  resize.observe(chartBox);
  if (unique.length >= 2) {
    load().catch((error) => clear(notes, h("p", { class: "card error" }, error.message)));
  }

  return {
    el,
    destroy() {
      destroyed = true;
      resize.disconnect();
    },
  };
}
