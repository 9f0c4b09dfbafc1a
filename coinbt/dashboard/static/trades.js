// A finished run's positions (the read model) and its fills (paged from /fills).

import { get, query } from "./api.js";
import { clear, h } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./widgets.js";

const FILLS_PAGE = 25;
const POSITION_COLUMNS = [
  ["Symbol"],
  ["Status"],
  ["Quantity", "num"],
  ["Avg entry", "num"],
  ["Last price", "num"],
  ["Realized PnL (net of fees)", "num"],
  ["Unrealized PnL", "num"],
  ["Fees", "num"],
  ["Trades", "num"],
];
const FILL_COLUMNS = [
  ["#", "num"],
  ["Time (UTC)"],
  ["Bar", "num"],
  ["Side"],
  ["Quantity", "num"],
  ["Price", "num"],
  ["Fee", "num"],
  ["Symbol"],
  ["Reason"],
];

/** The positions of task `id` as a table (or a note when it never traded). */
export async function positionsTable(id) {
  const answer = await get(`/backtests/${encodeURIComponent(id)}/positions`);
  const rows = answer.positions.map((p) =>
    h(
      "tr",
      { dataset: { symbol: p.symbol } },
      h("td", { class: "strong" }, p.symbol),
      h("td", {}, h("span", { class: `badge p-${p.status}` }, p.status)),
      h("td", { class: "num" }, f.qty(p.qty)),
      h("td", { class: "num" }, f.price(p.avg_entry_price)),
      h("td", { class: "num" }, f.price(p.last_price)),
      h("td", { class: `num ${f.tone(p.realized_pnl)}` }, f.money(p.realized_pnl)),
      h("td", { class: `num ${f.tone(p.unrealized_pnl)}` }, f.money(p.unrealized_pnl)),
      h("td", { class: "num" }, f.money(p.fees)),
      h("td", { class: "num" }, f.int(p.trades)),
    ),
  );
  return rows.length
    ? dataTable("positions", POSITION_COLUMNS, rows)
    : h("p", { class: "muted" }, "No positions: the strategy never traded.");
}

/** Show the fills of task `id` from `offset` in `box`, with previous/next buttons. */
export async function showFills(box, id, offset = 0) {
  const answer = await get(
    `/backtests/${encodeURIComponent(id)}/fills${query({ offset, limit: FILLS_PAGE })}`,
  );
  if (!answer.fills.length) return clear(box, h("p", { class: "muted" }, "No fills."));
  const rows = answer.fills.map((x, i) =>
    h(
      "tr",
      {},
      h("td", { class: "num muted" }, f.int(offset + i + 1)),
      h("td", { class: "nowrap" }, f.utc(x.ts)),
      h("td", { class: "num" }, f.int(x.bar)),
      h("td", {}, h("span", { class: `side ${x.side}` }, x.side)),
      h("td", { class: "num" }, f.qty(x.qty)),
      h("td", { class: "num" }, f.price(x.price)),
      h("td", { class: "num" }, f.money(x.fee)),
      h("td", {}, x.symbol),
      h("td", { class: "muted" }, x.reason),
    ),
  );
  const go = (to) => () =>
    showFills(box, id, to).catch((error) => clear(box, h("p", { class: "error" }, error.message)));
  const end = offset + answer.fills.length;
  const pager = h(
    "div",
    { class: "pager" },
    h(
      "span",
      { class: "muted small", role: "status" },
      `${f.int(offset + 1)}\u2013${f.int(end)} of ${f.int(answer.total)}`,
    ),
    h(
      "button",
      {
        type: "button",
        class: "btn small",
        disabled: offset === 0,
        onclick: go(Math.max(0, offset - FILLS_PAGE)),
      },
      "\u2190 Previous",
    ),
    h(
      "button",
      {
        type: "button",
        class: "btn small",
        disabled: answer.next_offset === null,
        onclick: go(answer.next_offset),
      },
      "Next \u2192",
    ),
  );
  return clear(box, dataTable("fills", FILL_COLUMNS, rows), pager);
}
