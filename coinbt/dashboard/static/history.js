// A task's event history (the audit trail): its events from GET /backtests/{id}/events, a page
// at a time, with each event's log position, stream version, time, type and hash. New events
// from the live stream are added while the last page has room; past that, "Load more" reads on.

import { get, query } from "./api.js";
import { h } from "./dom.js";
import * as f from "./format.js";
import { dataTable } from "./widgets.js";

const PAGE = 25;
const COLUMNS = [["Position", "num"], ["Version", "num"], ["Type"], ["Recorded"], ["Details"], ["Hash"]];

function summary(event) {
  const d = event.data || {};
  switch (event.type) {
    case "Queued":
      return `attempt ${d.attempt ?? 1}${d.idempotency_key ? ` \u00b7 key ${d.idempotency_key}` : ""}`;
    case "Started":
      return `worker ${d.worker_id} \u00b7 attempt ${d.attempt}`;
    case "Filled":
      return `${d.side} ${f.qty(d.qty)} ${d.symbol || ""} @ ${f.price(d.price)} \u00b7 fee ${f.money(d.fee)}`;
    case "Completed":
      return [
        `final equity ${f.money(d.final_equity)}`,
        `return ${f.pct(d.metrics?.total_return, { signed: true })}`,
        `digest ${f.shortHash(d.result_digest)}`,
      ].join(" \u00b7 ");
    case "Failed":
      return `${d.error_type}: ${d.error}`;
    case "Cancelled":
      return d.reason;
    default:
      return JSON.stringify(d);
  }
}

function eventRow(event) {
  const text = summary(event);
  return h(
    "tr",
    { dataset: { position: event.position } },
    h("td", { class: "num" }, f.int(event.position)),
    h("td", { class: "num" }, f.int(event.version)),
    h("td", {}, h("span", { class: `badge e-${event.type.toLowerCase()}` }, event.type)),
    h("td", { class: "nowrap small" }, f.time(event.recorded_at)),
    h("td", { class: "small clip-wide", title: text }, text),
    h("td", { class: "mono small" }, h("span", { title: event.hash, tabindex: 0 }, f.shortHash(event.hash))),
  );
}

/** The history section of task `id`: {el, load(), live(event)}. */
export function eventHistory(id) {
  const wrap = dataTable("events", COLUMNS, []);
  const body = wrap.querySelector("tbody");
  const info = h("span", { class: "muted small" });
  const more = h(
    "button",
    { type: "button", class: "btn", hidden: true, onclick: () => load() },
    "Load more",
  );
  const el = h(
    "section",
    { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Event history"), info),
    h(
      "p",
      { class: "muted small" },
      "The task's stream in the event log: each event's global position, its version in the stream, " +
        "and its hash in the log's chain (hover for the full hash).",
    ),
    wrap,
    h("div", { class: "table-foot" }, more),
  );
  const seen = new Set();
  let after = 0;
  let total = 0; // the stream's events (from the page's "total"; live events raise it)
  let atEnd = false;
  let loading = false;
  let arrived = []; // live events that came while a page was being read

  function add(events) {
    for (const event of events) {
      if (seen.has(event.position)) continue;
      seen.add(event.position);
      after = Math.max(after, event.position);
      body.append(eventRow(event));
    }
    more.hidden = atEnd;
    info.textContent =
      total > seen.size ? `${f.int(seen.size)} of ${f.int(total)} events` : `${f.int(seen.size)} events`;
  }

  function live(event) {
    if (event.stream_id !== id || seen.has(event.position)) return;
    total = Math.max(total, event.version);
    if (loading) arrived.push(event);
    else if (atEnd && seen.size % PAGE !== 0) add([event]);
    else if (atEnd) {
      atEnd = false; // the page is full (a finished run appends all its fills at once)
      add([]);
    }
  }

  async function load() {
    loading = true;
    more.disabled = true;
    try {
      const answer = await get(`/backtests/${encodeURIComponent(id)}/events${query({ after, limit: PAGE })}`);
      atEnd = answer.next_after === null;
      total = Math.max(total, answer.total ?? 0);
      add(answer.events);
    } finally {
      loading = false;
      more.disabled = false;
      const late = arrived.filter((e) => e.position > after).sort((a, b) => a.position - b.position);
      arrived = [];
      for (const event of late) live(event);
    }
  }

  return { el, load, live };
}
