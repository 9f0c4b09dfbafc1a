// Datasets (#/data): what GET /datasets lists -- version, range, rows, interval, gaps and
// provenance of each -- and a CSV import (POST /datasets, the file streamed as text/csv).

import { ApiError, get, request } from "./api.js";
import { clear, h, uid } from "./dom.js";
import * as f from "./format.js";

const UNITS = [
  ["w", 604_800_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
];

function interval(ms) {
  for (const [unit, size] of UNITS) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms / 1000}s`;
}

function day(iso) {
  return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "") : "";
}

function gapsCell(gaps) {
  if (!gaps || !gaps.count) return h("td", { class: "num", dataset: { gaps: "0" } }, "none");
  const largest = `largest ${f.duration(gaps.largest_ms)} after ${f.utc(gaps.at_ms)} UTC`;
  return h(
    "td",
    { class: "num", title: largest, dataset: { gaps: String(gaps.count) } },
    `${f.int(gaps.count)} (${f.int(gaps.missing)} bars)`,
  );
}

function provenanceCell(items, source) {
  const list = items || [];
  if (!list.length) return h("td", { class: "muted small" }, source);
  const lines = list.map((p) => `${p.file}  sha256 ${p.sha256}`).join("\n");
  const first = list[0].file.split("/").pop();
  const more = list.length > 1 ? ` + ${list.length - 1} more` : "";
  return h("td", { class: "small", title: lines }, `${first}${more}`);
}

function datasetRow(d) {
  return h(
    "tr",
    { dataset: { dataset: d.name } },
    h("td", {}, h("strong", {}, d.name), h("span", { class: "muted small" }, ` v${d.version ?? 1}`)),
    h("td", {}, d.symbol),
    h("td", { class: "small" }, `${day(d.start)} \u2192 ${day(d.end)}`),
    h("td", { class: "num" }, f.int(d.rows)),
    h("td", {}, interval(d.interval_ms)),
    gapsCell(d.gaps),
    provenanceCell(d.provenance, d.source),
  );
}

export function datasetsView() {
  const body = h("tbody");
  const notes = h("div", { role: "status", class: "small" });
  const status = h("p", { class: "form-status", role: "status", "aria-live": "polite" });
  const fileId = uid("csv-file");
  const nameId = uid("csv-name");
  const file = h("input", { id: fileId, name: "file", type: "file", accept: ".csv,text/csv", required: true });
  const name = h("input", {
    id: nameId,
    name: "name",
    required: true,
    pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}",
    placeholder: "BTCUSDT-1h",
    autocomplete: "off",
    spellcheck: "false",
  });
  const update = h("input", { name: "update", type: "checkbox", id: uid("csv-update") });
  const strict = h("input", { name: "strict", type: "checkbox", id: uid("csv-strict") });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Import");
  const form = h(
    "form",
    { class: "card import-form", onsubmit: (event) => upload(event) },
    h("h2", {}, "Import a CSV file"),
    h(
      "p",
      { class: "muted small" },
      "A header naming the time column (timestamp, date, time, datetime or open_time) and open, high, low, close, volume; or a Binance kline file. Gaps are reported; strict refuses them.",
    ),
    h("div", { class: "field" }, h("label", { for: fileId }, "CSV file"), file),
    h("div", { class: "field" }, h("label", { for: nameId }, "Dataset name"), name),
    h("div", { class: "field check" }, update, h("label", { for: update.id }, "Add newer bars as a new version")),
    h("div", { class: "field check" }, strict, h("label", { for: strict.id }, "Refuse gaps (strict)")),
    submit,
    status,
  );
  const el = h(
    "div",
    { class: "datasets-page" },
    h(
      "header",
      { class: "card detail-head" },
      h(
        "div",
        { class: "title" },
        h("h1", {}, "Datasets"),
        h("p", { class: "muted small" }, "Immutable and versioned; the latest version of each is listed. Times in UTC."),
      ),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "datasets" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Name", "Symbol", "Range", "Rows", "Interval", "Gaps", "Provenance"].map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          body,
        ),
      ),
      notes,
    ),
    form,
  );
  let destroyed = false;

  async function load() {
    try {
      const answer = await get("/datasets");
      if (destroyed) return;
      const sets = answer.datasets || [];
      clear(body, sets.length ? sets.map(datasetRow) : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No datasets yet.")));
      const skipped = answer.skipped || [];
      clear(
        notes,
        skipped.map((s) => h("p", { class: "muted" }, `Skipped ${s.name}: ${s.reason}`)),
      );
    } catch (error) {
      if (!destroyed) clear(notes, h("p", { class: "error" }, `Could not list datasets: ${error.message}`));
    }
  }

  async function upload(event) {
    event.preventDefault();
    const chosen = file.files && file.files[0];
    if (!chosen || !name.value) return;
    submit.disabled = true;
    status.textContent = `Importing ${chosen.name}\u2026`;
    const params = new URLSearchParams({ name: name.value });
    if (update.checked) params.set("update", "1");
    if (strict.checked) params.set("strict", "1");
    try {
      const response = await request("POST", `/datasets?${params}`, {
        headers: { "Content-Type": "text/csv" },
        raw: chosen,
      });
      let answer = null;
      try {
        answer = await response.json();
      } catch {
        // not JSON
      }
      if (!response.ok) throw new ApiError(response.status, answer?.error, response.headers);
      const gaps = answer.gaps?.count ? `, ${f.int(answer.gaps.count)} gap(s)` : ", no gaps";
      status.textContent = `Imported ${answer.name} version ${answer.version}: ${f.int(answer.rows)} bars${gaps}.`;
      form.reset();
      await load();
    } catch (error) {
      const where = error.details && error.details.row ? ` (row ${error.details.row})` : "";
      status.textContent = `Not imported${where}: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  }

  load();
  return {
    el,
    destroy() {
      destroyed = true;
    },
  };
}
