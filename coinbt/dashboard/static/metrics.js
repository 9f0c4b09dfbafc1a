// The result metrics: label, format and which direction is better (for the compare table).
import * as f from "./format.js";

const signedPct = (x) => f.pct(x, { signed: true });
const drawdownPct = (x) => (x ? f.pct(-x) : f.pct(x));

export const METRICS = [
  { key: "total_return", label: "Total return", format: signedPct, better: "high", signed: true },
  { key: "cagr", label: "CAGR", format: signedPct, better: "high", signed: true },
  { key: "final_equity", label: "Final equity", format: f.money, better: "high" },
  { key: "max_drawdown", label: "Max drawdown", format: drawdownPct, better: "low", negative: true },
  { key: "annual_volatility", label: "Annual volatility", format: (x) => f.pct(x), better: "low" },
  { key: "sharpe", label: "Sharpe", format: (x) => f.num(x), better: "high", signed: true },
  { key: "sortino", label: "Sortino", format: (x) => f.num(x), better: "high", signed: true },
  { key: "calmar", label: "Calmar", format: (x) => f.num(x), better: "high", signed: true },
  { key: "num_trades", label: "Trades", format: f.int },
  { key: "closed_trades", label: "Closed trades", format: f.int },
  { key: "win_rate", label: "Win rate", format: (x) => f.pct(x, { digits: 1 }), better: "high" },
  { key: "profit_factor", label: "Profit factor", format: (x) => f.num(x), better: "high" },
  { key: "avg_trade_return", label: "Average trade", format: signedPct, better: "high", signed: true },
  { key: "best_trade", label: "Best trade", format: signedPct, better: "high", signed: true },
  { key: "worst_trade", label: "Worst trade", format: signedPct, better: "high", signed: true },
  { key: "exposure", label: "Exposure", format: (x) => f.pct(x, { digits: 1 }) },
  { key: "fees_paid", label: "Fees paid", format: f.money, better: "low" },
];

const KNOWN = new Set(METRICS.map((m) => m.key));

/** Every metric of a result, the known ones first in a sensible order, then any new ones. */
export function metricRows(metrics) {
  const rows = METRICS.filter((m) => m.key in (metrics || {}));
  for (const key of Object.keys(metrics || {})) {
    if (!KNOWN.has(key)) {
      rows.push({
        key,
        label: key.replaceAll("_", " "),
        format: (x) => (typeof x === "number" ? f.num(x, 4) : String(x)),
      });
    }
  }
  return rows;
}

/** The CSS class colouring a metric's value. */
export function toneOf(metric, value) {
  if (metric.negative) return value ? "loss" : "";
  return metric.signed ? f.tone(value) : "";
}
