// A completed task's analysis on its page: the price chart with each round trip's entry and exit
// (from /prices and /trades), the round-trip list (sortable, paged), the strategy's metrics beside
// buy and hold's, monthly returns, rolling Sharpe (/analysis), and the export and report buttons.

import { download, get, query } from "./api.js";
import { lineChart } from "./charts.js";
import { clear, h } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./widgets.js";

export const BENCHMARK_COLOR = "#8a96a8";
export const SIDE_COLORS = { long: "#3fb950", short: "#f85149" };
export const EXIT_COLORS = {
  signal: "#e6ebf2",
  stop_loss: "#ff7b72",
  take_profit: "#5b9dff",
  trailing_stop: "#db61a2",
};
const TRADES_PAGE = 20;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const path = (id, tail) => `/backtests/${encodeURIComponent(id)}/${tail}`;

/** The task's data, each part read once and shared by the sections. */
export function analysisData(id) {
  const memo = new Map();
  const once = (key, load) => {
    if (!memo.has(key)) memo.set(key, load().catch((e) => (memo.delete(key), Promise.reject(e))));
    return memo.get(key);
  };
  return {
    trades: () => once("trades", () => get(path(id, "trades"))),
    prices: (points) => once(`prices:${points}`, () => get(path(id, `prices${query({ points })}`))),
    analysis: (points) => once(`analysis:${points}`, () => get(path(id, `analysis${query({ points })}`))),
  };
}

/** Entry and exit markers of `trades` for the asset `symbol`. */
export function tradeMarkers(trades, symbol) {
  const marks = [];
  trades.forEach((t, i) => {
    if (t.symbol !== symbol) return;
    const long = t.side === "long";
    marks.push({
      x: t.entry_ts,
      y: t.entry_price,
      color: SIDE_COLORS[t.side],
      shape: long ? "up" : "down",
      title: `#${i + 1} ${t.side} entry ${f.utc(t.entry_ts)} @ ${f.price(t.entry_price)}`,
      data: { kind: "entry", side: t.side, ts: t.entry_ts, price: t.entry_price, trade: i },
    });
    if (t.exit_ts === null) return;
    marks.push({
      x: t.exit_ts,
      y: t.exit_price,
      color: EXIT_COLORS[t.exit_reason] || EXIT_COLORS.signal,
      shape: long ? "down" : "up",
      title: `#${i + 1} ${t.side} exit (${t.exit_reason}) ${f.utc(t.exit_ts)} @ ${f.price(t.exit_price)}`,
      data: { kind: "exit", side: t.side, reason: t.exit_reason, ts: t.exit_ts, price: t.exit_price, trade: i },
    });
  });
  return marks;
}

function legend(items) {
  return h(
    "div",
    { class: "chart-legend small muted" },
    items.map(([label, color, shape]) =>
      h("span", { class: "legend-item" }, h("i", { class: `swatch ${shape || "line"}`, style: `--c:${color}` }), label),
    ),
  );
}

/** The price chart of every asset with its trades' markers, drawn into `box` at `width`. */
export async function drawPrices(box, data, width, log) {
  const [prices, trades] = await Promise.all([data.prices(width), data.trades()]);
  const charts = prices.assets.map((asset) => {
    const chart = lineChart({
      width,
      height: 300,
      series: [{ xs: asset.ts, ys: asset.close, color: "#5b9dff", label: asset.symbol || "close" }],
      markers: tradeMarkers(trades.trades, asset.symbol),
      yFormat: (v) => f.price(v),
      tipFormat: f.price,
      xFormat: (ms) => `${f.utc(ms)} UTC`,
      log,
      className: "price-chart",
      title: `${asset.symbol || "price"} close with trade entries and exits`,
    });
    chart.el.dataset.symbol = asset.symbol;
    return h(
      "div",
      { class: "price-asset" },
      h("div", { class: "chart-label" }, `${asset.symbol || "Close"} \u00b7 ${f.int(prices.total_points)} bars`),
      chart.el,
    );
  });
  clear(
    box,
    ...charts,
    legend([
      ["long entry", SIDE_COLORS.long, "up"],
      ["short entry", SIDE_COLORS.short, "down"],
      ...Object.entries(EXIT_COLORS).map(([reason, color]) => [`exit: ${reason.replace("_", " ")}`, color, "down"]),
    ]),
  );
}

const TRADE_COLUMNS = [
  ["#", "num", (t) => t.n],
  ["Symbol", "", (t) => t.symbol],
  ["Side", "", (t) => t.side],
  ["Entry (UTC)", "", (t) => t.entry_ts],
  ["Entry price", "num", (t) => t.entry_price],
  ["Exit (UTC)", "", (t) => t.exit_ts ?? Infinity],
  ["Exit price", "num", (t) => t.exit_price],
  ["Quantity", "num", (t) => t.qty],
  ["PnL (net)", "num", (t) => t.pnl],
  ["Return", "num", (t) => t.return],
  ["Bars", "num", (t) => t.duration_bars ?? Infinity],
  ["Exit reason", "", (t) => t.exit_reason],
];

/** The round-trip list: sortable by any column, paged. */
export async function showTrades(box, data) {
  const answer = await data.trades();
  const all = answer.trades.map((t, i) => ({ ...t, n: i + 1 }));
  if (!all.length) return clear(box, h("p", { class: "muted" }, "No trades: the strategy never traded."));
  let sortBy = 0;
  let descending = false;
  let page = 0;

  function render() {
    const key = TRADE_COLUMNS[sortBy][2];
    const sorted = [...all].sort((a, b) => {
      const x = key(a);
      const y = key(b);
      const order = x < y ? -1 : x > y ? 1 : a.n - b.n;
      return descending ? -order : order;
    });
    const pages = Math.ceil(sorted.length / TRADES_PAGE);
    page = Math.min(page, pages - 1);
    const shown = sorted.slice(page * TRADES_PAGE, (page + 1) * TRADES_PAGE);
    const rows = shown.map((t) =>
      h(
        "tr",
        { dataset: { trade: t.n - 1 } },
        h("td", { class: "num muted" }, f.int(t.n)),
        h("td", {}, t.symbol),
        h("td", {}, h("span", { class: `side ${t.side}` }, t.side)),
        h("td", { class: "nowrap" }, f.utc(t.entry_ts)),
        h("td", { class: "num" }, f.price(t.entry_price)),
        h("td", { class: "nowrap" }, t.exit_ts === null ? "open" : f.utc(t.exit_ts)),
        h("td", { class: "num" }, f.price(t.exit_price)),
        h("td", { class: "num" }, f.qty(t.qty)),
        h("td", { class: `num ${f.tone(t.pnl)}` }, f.money(t.pnl)),
        h("td", { class: `num ${f.tone(t.return)}` }, f.pct(t.return)),
        h("td", { class: "num" }, t.duration_bars === null ? "" : f.int(t.duration_bars)),
        h("td", {}, h("span", { class: `reason r-${t.exit_reason}` }, t.exit_reason.replace("_", " "))),
      ),
    );
    const table = dataTable("roundtrips", TRADE_COLUMNS.map(([label, cls]) => [label, cls]), rows);
    table.querySelectorAll("th").forEach((th, i) => {
      const label = TRADE_COLUMNS[i][0];
      th.setAttribute("aria-sort", i === sortBy ? (descending ? "descending" : "ascending") : "none");
      th.replaceChildren(
        h(
          "button",
          {
            type: "button",
            class: "sort",
            onclick: () => {
              descending = i === sortBy ? !descending : false;
              sortBy = i;
              page = 0;
              render();
            },
          },
          label,
          i === sortBy ? (descending ? " \u25be" : " \u25b4") : "",
        ),
      );
    });
    const go = (to) => () => {
      page = to;
      render();
    };
    clear(
      box,
      table,
      h(
        "div",
        { class: "pager" },
        h(
          "span",
          { class: "muted small", role: "status" },
          `${f.int(page * TRADES_PAGE + 1)}\u2013${f.int(page * TRADES_PAGE + shown.length)} of ${f.int(all.length)}`,
        ),
        h("button", { type: "button", class: "btn small", disabled: page === 0, onclick: go(page - 1) }, "\u2190 Previous"),
        h("button", { type: "button", class: "btn small", disabled: page >= pages - 1, onclick: go(page + 1) }, "Next \u2192"),
      ),
    );
  }
  render();
}

const COMPARED = [
  ["Final equity", "final_equity", f.money],
  ["Total return", "total_return", (v) => f.pct(v, { signed: true })],
  ["CAGR", "cagr", (v) => f.pct(v, { signed: true })],
  ["Annual volatility", "annual_volatility", (v) => f.pct(v)],
  ["Sharpe", "sharpe", (v) => f.num(v)],
  ["Sortino", "sortino", (v) => f.num(v)],
  ["Max drawdown", "max_drawdown", (v) => f.pct(v)],
  ["Calmar", "calmar", (v) => f.num(v)],
];

/** Strategy vs buy and hold, side by side. */
export function benchmarkTable(metrics, bench) {
  return h(
    "table",
    { class: "kv benchmark" },
    h("thead", {}, h("tr", {}, h("th", {}), h("th", { class: "num" }, "Strategy"), h("th", { class: "num" }, "Buy & hold"))),
    h(
      "tbody",
      {},
      COMPARED.map(([label, key, fmt]) =>
        h(
          "tr",
          { dataset: { metric: key } },
          h("th", { scope: "row" }, label),
          h("td", { class: "num" }, metrics?.[key] === null || metrics?.[key] === undefined ? "\u2013" : fmt(metrics[key])),
          h("td", { class: "num muted bench" }, bench[key] === null || bench[key] === undefined ? "\u2013" : fmt(bench[key])),
        ),
      ),
    ),
  );
}

/** Monthly returns as a year x month table, each cell tinted by its sign and size. */
export function monthlyHeatmap(monthly) {
  const all = monthly.returns.flat().filter((r) => r !== null);
  const scale = Math.max(1e-12, ...all.map(Math.abs));
  const cell = (r) => {
    if (r === null) return h("td", { class: "empty" });
    const a = (0.12 + 0.7 * Math.min(1, Math.abs(r) / scale)).toFixed(2);
    const rgb = r >= 0 ? "63,185,80" : "248,81,73";
    return h("td", { class: "num", style: `background:rgba(${rgb},${a})`, title: f.pct(r) }, (r * 100).toFixed(1));
  };
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "heatmap" },
      h("thead", {}, h("tr", {}, h("th", {}, "%"), MONTHS.map((m) => h("th", { class: "num" }, m)), h("th", { class: "num" }, "Year"))),
      h(
        "tbody",
        {},
        monthly.years.map((year, i) =>
          h(
            "tr",
            {},
            h("th", { scope: "row" }, String(year)),
            monthly.returns[i].map(cell),
            h("td", { class: `num strong ${f.tone(monthly.yearly[i])}` }, (monthly.yearly[i] * 100).toFixed(1)),
          ),
        ),
      ),
    ),
  );
}

/** The rolling Sharpe line. */
export function rollingSharpeChart(rolling, width) {
  return lineChart({
    width,
    height: 150,
    series: [{ xs: rolling.ts, ys: rolling.values, color: "#a371f7", label: "rolling Sharpe" }],
    yFormat: (v) => f.num(v, 1),
    tipFormat: (v) => f.num(v),
    xFormat: (ms) => `${f.utc(ms)} UTC`,
    baseline: 0,
    className: "sharpe-chart",
    title: "rolling Sharpe",
  }).el;
}

/** Export and report buttons for a completed task. */
export function exportButtons(id, onError) {
  const short = f.shortId(id);
  const button = (label, tail, filename, title) =>
    h(
      "button",
      {
        type: "button",
        class: "btn small",
        title,
        dataset: { export: tail },
        onclick: async (event) => {
          const el = event.currentTarget;
          el.disabled = true;
          try {
            await download(path(id, tail), filename);
          } catch (error) {
            onError(error);
          } finally {
            el.disabled = false;
          }
        },
      },
      label,
    );
  return h(
    "div",
    { class: "exports", role: "group", "aria-label": "exports" },
    h("span", { class: "muted small" }, "Export"),
    ["trades", "fills", "equity"].map((what) =>
      button(`${what} CSV`, `${what}?format=csv`, `${short}-${what}.csv`, `every ${what} row as CSV`),
    ),
    button("trades Parquet", "trades?format=parquet", `${short}-trades.parquet`, "needs pyarrow on the server"),
    button("Report", "report", `${short}-report.html`, "a self-contained HTML tear sheet"),
  );
}
