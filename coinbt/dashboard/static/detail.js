// One task (#/task/<id>): metrics, the equity curve with buy and hold over its drawdown (from
// /equity and /prices downsampled to the chart's width; a log-scale toggle), the price chart with
// the trades, round trips, monthly returns and rolling Sharpe (analysis.js), positions, fills
// (paged: trades.js), exports, and the audit trail of its events (history.js). Every part follows
// the live stream.

import {
  BENCHMARK_COLOR,
  analysisData,
  benchmarkTable,
  drawPrices,
  exportButtons,
  monthlyHeatmap,
  rollingSharpeChart,
  showTrades,
} from "./analysis.js";
import { get, json, query } from "./api.js";
import { PALETTE, lineChart, linked } from "./charts.js";
import { clear, h } from "./dom.js";
import * as f from "./format.js";
import { eventHistory } from "./history.js";
import { metricRows, toneOf } from "./metrics.js";
import { specRows } from "./rules.js";
import { Status } from "./status.js";
import * as store from "./store.js";
import { positionsTable, showFills } from "./trades.js";
import { progressBar, setProgress, statusBadge, taskDuration } from "./widgets.js";

const KPIS = ["total_return", "cagr", "max_drawdown", "sharpe", "num_trades", "final_equity"];

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function detailView(id) {
  const head = h("header", { class: "card detail-head" });
  const kpis = h("div", { class: "kpis" });
  const chartBox = h("div", { class: "chart-box" });
  const metricsBox = h("div");
  const runBox = h("div");
  const positionsBox = h("div");
  const fillsBox = h("div");
  const pricesBox = h("div", { class: "chart-box" });
  const tradesBox = h("div");
  const benchBox = h("div");
  const monthlyBox = h("div");
  const sharpeBox = h("div", { class: "chart-box" });
  const completedOnly = h("div", { class: "completed-only", hidden: true });
  const logToggle = h("input", { type: "checkbox", id: `log-${id}`, class: "log-toggle" });
  const history = eventHistory(id);
  const note = h("p", { class: "row-note", role: "status", hidden: true });

  const el = h(
    "div",
    { class: "detail-page" },
    h("nav", { class: "crumbs" }, h("a", { href: "#/" }, "\u2190 All backtests")),
    head,
    kpis,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", {}, "Equity"),
        h("span", { class: "muted small legend" }),
        h("label", { class: "toggle small", for: logToggle.id }, logToggle, " log scale"),
      ),
      chartBox,
    ),
    h("div", { class: "two-col" }, section("Metrics", metricsBox), section("Run", runBox)),
    completedOnly,
    section("Positions", positionsBox),
    section("Fills", fillsBox),
    history.el,
  );

  completedOnly.append(
    section("Price and trades", pricesBox),
    section("Round trips", tradesBox),
    h(
      "div",
      { class: "two-col" },
      section("Against buy and hold", benchBox),
      section("Rolling Sharpe", sharpeBox),
    ),
    section("Monthly returns", monthlyBox),
  );
  const data = analysisData(id);

  let task = null;
  let drawnFor = null; // the status the chart area was last drawn for
  let chartWidth = 0;
  let destroyed = false;

  function renderHead() {
    const spec = task.spec || {};
    const active = store.ACTIVE.has(task.status);
    clear(
      head,
      h(
        "div",
        { class: "title" },
        h("h1", {}, spec.strategy, " ", h("span", { class: "muted thin" }, f.params(spec.params))),
        h("div", { class: "mono small muted", title: "task id" }, task.task_id),
      ),
      h(
        "div",
        { class: "head-status" },
        statusBadge(task.status),
        active ? h("span", { class: "pct" }, `${Math.round((task.progress || 0) * 100)}%`) : null,
        active ? progressBar(task) : null,
        active ? h("button", { type: "button", class: "btn small danger", onclick: cancel }, "Cancel") : null,
        note,
      ),
      task.status === Status.COMPLETED ? exportButtons(id, showNote) : null,
    );
    if (task.status === Status.FAILED)
      head.append(h("p", { class: "error wide-row" }, `${task.error_type || "error"}: ${task.error}`));
  }

  function showNote(error) {
    note.textContent = error.message;
    note.className = "row-note error";
    note.hidden = false;
  }

  async function cancel(event) {
    event.currentTarget.disabled = true;
    note.hidden = true;
    try {
      store.upsert(await json("DELETE", `/backtests/${encodeURIComponent(id)}`));
    } catch (error) {
      note.textContent = error.message;
      note.className = "row-note error";
      note.hidden = false;
      store.refresh(id).catch(() => {});
    }
  }

  function renderKpis() {
    const metrics = task.status === Status.COMPLETED ? task.result?.metrics : null;
    if (!metrics) return clear(kpis);
    const rows = metricRows(metrics).filter((m) => KPIS.includes(m.key));
    rows.sort((a, b) => KPIS.indexOf(a.key) - KPIS.indexOf(b.key));
    clear(
      kpis,
      rows.map((m) =>
        h(
          "div",
          { class: "kpi card" },
          h("div", { class: "kpi-label" }, m.label),
          h("div", { class: `kpi-value ${toneOf(m, metrics[m.key])}` }, m.format(metrics[m.key])),
        ),
      ),
    );
  }

  function renderTables() {
    const metrics = task.status === Status.COMPLETED ? task.result?.metrics : null;
    clear(
      metricsBox,
      metrics
        ? h(
            "table",
            { class: "kv" },
            h(
              "tbody",
              {},
              metricRows(metrics).map((m) =>
                h(
                  "tr",
                  {},
                  h("th", { scope: "row" }, m.label),
                  h("td", { class: `num ${toneOf(m, metrics[m.key])}` }, m.format(metrics[m.key])),
                ),
              ),
            ),
          )
        : h(
            "p",
            { class: "muted" },
            task.status === Status.COMPLETED
              ? "No metrics."
              : `Metrics appear when the run completes (now ${task.status}).`,
          ),
    );
    const spec = task.spec || {};
    const data = f.dataSource(spec.data);
    const rows = [
      ["Data", `${data.title} \u00b7 ${data.detail}`],
      ["Symbol", task.result?.symbol],
      ["Cash", f.money(spec.cash)],
      ["Fee", `${f.num(spec.fee_bps, 1)} bps`],
      ["Slippage", `${f.num(spec.slippage_bps, 1)} bps`],
      ["Fill", spec.fill === "close" ? "signal bar's close" : "next bar's open"],
      ["Timeout", f.duration((spec.timeout_s || 0) * 1000)],
      ...specRows(spec),
      ["Attempt", f.int(task.attempt)],
      ["Created", f.time(task.created_at)],
      ["Started", f.time(task.started_at)],
      ["Finished", f.time(task.finished_at)],
      ["Run time", f.duration(taskDuration(task))],
      ["Fills", f.int(task.num_fills)],
      ["Idempotency key", task.idempotency_key],
      [
        "Result digest",
        task.result?.result_digest
          ? h(
              "span",
              { class: "mono", title: task.result.result_digest },
              f.shortHash(task.result.result_digest),
            )
          : null,
      ],
      ["Reason", task.reason],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    clear(
      runBox,
      h(
        "table",
        { class: "kv" },
        h(
          "tbody",
          {},
          rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: "num" }, v))),
        ),
      ),
    );
  }

  async function drawChart() {
    const width = Math.floor(chartBox.clientWidth);
    if (task.status !== Status.COMPLETED) {
      chartWidth = 0;
      clear(
        chartBox,
        h(
          "div",
          { class: "placeholder" },
          task.status === Status.RUNNING || task.status === Status.QUEUED
            ? "The equity curve is drawn when the run completes."
            : `No equity curve: the run ${task.status}.`,
        ),
      );
      return;
    }
    if (width < 50 || width === chartWidth) return;
    chartWidth = width;
    const log = logToggle.checked;
    const [answer, prices] = await Promise.all([
      get(`/backtests/${encodeURIComponent(id)}/equity${query({ points: width })}`),
      data.prices(width).catch(() => null), // no benchmark if the data is gone: still the curve
    ]);
    if (destroyed || chartWidth !== width || log !== logToggle.checked) return;
    const cash = task.spec?.cash ?? answer.equity[0];
    let move = () => {};
    const common = { width, xFormat: (ms) => `${f.utc(ms)} UTC`, onPointer: (x) => move(x) };
    const series = [{ xs: answer.ts, ys: answer.equity, color: PALETTE[0], label: "equity", fill: "area" }];
    const bench = prices?.benchmark; // every asset, an equal share of the cash each
    if (bench)
      series.unshift({ xs: bench.ts, ys: bench.equity, color: BENCHMARK_COLOR, label: "buy & hold", dashed: true });
    const equity = lineChart({
      ...common,
      height: 280,
      series,
      yFormat: (v) => f.int(v),
      tipFormat: f.money,
      baseline: cash,
      xAxis: false,
      log,
      className: "equity-chart",
      title: `equity curve${bench ? " and buy and hold" : ""}${log ? ", log scale" : ""}`,
    });
    const drawdown = lineChart({
      ...common,
      height: 130,
      series: [{ xs: answer.ts, ys: answer.drawdown, color: "#f85149", label: "drawdown", fill: "drawdown" }],
      yFormat: (v) => f.pct(v, { digits: 0 }),
      tipFormat: (v) => f.pct(v),
      yMax: 0,
      className: "drawdown-chart",
      title: "drawdown",
    });
    move = linked(equity, drawdown);
    el.querySelector(".legend").textContent =
      `${f.int(answer.total_points)} bars, ${f.int(answer.ts.length)} points drawn \u00b7 ` +
      `${bench ? "grey dashed: buy & hold \u00b7 " : ""}dashed: starting cash`;
    drawAnalysis(width, log).catch(showError(pricesBox));
    clear(
      chartBox,
      h("div", { class: "chart-label" }, "Equity"),
      equity.el,
      h("div", { class: "chart-label" }, "Drawdown"),
      drawdown.el,
    );
  }

  async function drawAnalysis(width, log) {
    if (task.status !== Status.COMPLETED) return;
    const half = Math.max(200, Math.floor(sharpeBox.clientWidth) || Math.floor(width / 2));
    const [analysis] = await Promise.all([
      data.analysis(half),
      drawPrices(pricesBox, data, width, log),
    ]);
    if (destroyed) return;
    clear(benchBox, benchmarkTable(task.result?.metrics, analysis.benchmark.metrics));
    clear(
      sharpeBox,
      h(
        "div",
        { class: "chart-label" },
        `${f.int(analysis.rolling_sharpe.window)} bars` +
          (analysis.rolling_sharpe.days ? ` (${f.num(analysis.rolling_sharpe.days, 1)} days)` : ""),
      ),
      rollingSharpeChart(analysis.rolling_sharpe, half),
    );
    clear(monthlyBox, monthlyHeatmap(analysis.monthly));
  }

  async function loadTrades() {
    if (task.status !== Status.COMPLETED) {
      clear(
        positionsBox,
        h("p", { class: "muted" }, "Positions are built from the fills when the run completes."),
      );
      clear(fillsBox, h("p", { class: "muted" }, "Fills are recorded with the run's completion."));
      return;
    }
    const [table] = await Promise.all([
      positionsTable(id),
      showFills(fillsBox, id).catch(showError(fillsBox)),
      showTrades(tradesBox, data).catch(showError(tradesBox)),
    ]);
    if (!destroyed) clear(positionsBox, table);
  }

  function update(next) {
    const before = task?.status;
    task = next;
    renderHead();
    renderKpis();
    renderTables();
    if (before !== task.status || drawnFor !== task.status) {
      drawnFor = task.status;
      completedOnly.hidden = task.status !== Status.COMPLETED;
      chartWidth = 0;
      drawChart().catch(showError(chartBox));
      loadTrades().catch(showError(positionsBox));
    }
  }

  const showError = (box) => (error) => clear(box, h("p", { class: "error" }, error.message));

  logToggle.addEventListener("change", () => {
    chartWidth = 0;
    drawChart().catch(showError(chartBox));
  });

  const offTask = store.onTask((value, kind) => {
    if (value.task_id !== id || destroyed || !task) return;
    if (kind === "progress" && value.status === task.status) {
      task = value;
      setProgress(head, value);
      return;
    }
    update(value);
  });
  const offEvent = store.onEvent(history.live);

  let resizeTimer = 0;
  const resize = new ResizeObserver(() => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => task && drawChart().catch(showError(chartBox)), 150);
  });
  resize.observe(chartBox);

  (async () => {
    try {
      const value = await store.refresh(id);
      if (destroyed) return;
      if (!task) update(value);
      document.title = `${value.spec.strategy} ${f.shortId(id)} \u00b7 coinbt`;
      await history.load();
    } catch (error) {
      clear(
        head,
        h(
          "div",
          { class: "title" },
          h("h1", {}, "Backtest not found"),
          h("p", { class: "error" }, error.message),
        ),
      );
    }
  })();

  return {
    el,
    destroy() {
      destroyed = true;
      offTask();
      offEvent();
      resize.disconnect();
    },
  };
}
