// The tasks page: the submit form beside the tasks table. The table loads pages of
// GET /backtests (newest first, "load more" follows next_cursor) and from then on changes only
// with the live stream: rows change status as events arrive, progress messages move the bars.

import { get, json, query } from "./api.js";
import { sparkline } from "./charts.js";
import { clear, h } from "./dom.js";
import * as f from "./format.js";
import { submitForm } from "./form.js";
import { METRICS, toneOf } from "./metrics.js";
import { STATUSES, Status } from "./status.js";
import * as store from "./store.js";
import { progressBar, setProgress, statusBadge, taskDuration } from "./widgets.js";

const PAGE = 25;
const FILTERS = STATUSES;
const SHOWN_METRICS = ["total_return", "max_drawdown", "sharpe", "num_trades"].map((k) =>
  METRICS.find((m) => m.key === k),
);

export function tasksView() {
  const rows = new Map(); // task id -> <tr>
  const notes = new Map(); // task id -> {text, error}: the API's answer to a cancel
  const selected = new Set();
  const sparks = new Map(); // task id -> equity values for the sparkline
  let order = [];
  let filter = null;
  let cursor = null;
  let loading = null;
  let generation = 0;
  let missed = new Set();
  let scrollY = 0;

  const body = h("tbody");
  const compareButton = h(
    "button",
    {
      type: "button",
      class: "btn",
      disabled: true,
      onclick: () => {
        location.hash = `#/compare/${[...selected].join(",")}`;
      },
    },
    "Compare",
  );
  const more = h(
    "button",
    { type: "button", class: "btn", hidden: true, onclick: () => load(false) },
    "Load more",
  );
  const info = h("span", { class: "muted small", role: "status" });
  const filterButtons = [null, ...FILTERS].map((value) =>
    h(
      "button",
      {
        type: "button",
        class: "chip",
        "aria-pressed": String(value === filter),
        dataset: { filter: value ?? "all" },
        onclick: () => setFilter(value),
      },
      value ?? "all",
    ),
  );
  const headers = [
    h("th", { scope: "col", class: "sel" }, h("span", { class: "sr-only" }, "Select for comparison")),
    h("th", { scope: "col" }, "Backtest"),
    h("th", { scope: "col" }, "Data"),
    h("th", { scope: "col" }, "Status"),
    h("th", { scope: "col" }, "Created"),
    h("th", { scope: "col", class: "num" }, "Return"),
    h("th", { scope: "col", class: "num" }, "Max DD"),
    h("th", { scope: "col", class: "num" }, "Sharpe"),
    h("th", { scope: "col", class: "num" }, "Trades"),
    h("th", { scope: "col" }, "Equity"),
  ];
  const table = h(
    "table",
    { class: "tasks" },
    h("caption", { class: "sr-only" }, "Backtests, newest first"),
    h("thead", {}, h("tr", {}, headers)),
    body,
  );
  body.addEventListener("click", (event) => {
    if (event.target.closest("a, button, input, label, .row-note")) return;
    const row = event.target.closest("tr[data-task-id]");
    if (row) location.hash = `#/task/${row.dataset.taskId}`;
  });

  const el = h(
    "div",
    { class: "tasks-page" },
    h(
      "aside",
      { class: "card submit-card" },
      h("h2", {}, "New backtest"),
      submitForm({ onSubmitted: store.submitted }),
    ),
    h(
      "section",
      { class: "card tasks-card", "aria-labelledby": "tasks-title" },
      h(
        "div",
        { class: "toolbar" },
        h("h2", { id: "tasks-title" }, "Backtests"),
        h("div", { class: "chips", role: "group", "aria-label": "Filter by status" }, filterButtons),
        h("div", { class: "spacer" }),
        info,
        compareButton,
      ),
      h("div", { class: "table-wrap" }, table),
      h("div", { class: "table-foot" }, more),
    ),
  );

  const matches = (status) => filter === null || status === filter;

  function inRange(task) {
    if (cursor === null || !order.length) return true; // every task of this filter is loaded
    const oldest = store.task(order[order.length - 1]);
    return !oldest || Date.parse(task.created_at) >= Date.parse(oldest.created_at);
  }

  function updateInfo() {
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = selected.size ? `Compare (${selected.size})` : "Compare";
    compareButton.title = selected.size < 2 ? "Tick two or more completed runs" : "";
    info.textContent = order.length ? `${f.int(order.length)} shown` : "";
    more.hidden = cursor === null;
    if (!order.length && !loading) {
      clear(
        body,
        h(
          "tr",
          { class: "empty" },
          h(
            "td",
            { colspan: headers.length },
            filter ? `No ${filter} backtests.` : "No backtests yet: submit one with the form.",
          ),
        ),
      );
    } else body.querySelector("tr.empty")?.remove();
  }

  function cells(task) {
    const id = task.task_id;
    const spec = task.spec || {};
    const data = f.dataSource(spec.data);
    const metrics = task.status === Status.COMPLETED ? task.result?.metrics || {} : null;
    const active = store.ACTIVE.has(task.status);
    const note = notes.get(id);
    const checkbox = h("input", {
      type: "checkbox",
      checked: selected.has(id),
      disabled: task.status !== Status.COMPLETED,
      "aria-label": `Compare ${f.shortId(id)}`,
      onchange: (event) => {
        if (event.target.checked) selected.add(id);
        else selected.delete(id);
        updateInfo();
      },
    });
    let detail = null;
    if (task.status === Status.FAILED)
      detail = h("div", { class: "small loss clip", title: task.error || "" }, task.error || "failed");
    if (task.status === Status.CANCELLED && task.reason && !note) // the note already says why
      detail = h("div", { class: "small muted clip", title: task.reason }, task.reason);
    const elapsed = taskDuration(task);
    const created = f.timeParts(task.created_at);
    const cancelButton = active
      ? h(
          "button",
          {
            type: "button",
            class: "btn small danger",
            "aria-label": `Cancel ${f.shortId(id)}`,
            onclick: (event) => cancel(id, event.currentTarget),
          },
          "Cancel",
        )
      : null;
    return [
      h("td", { class: "sel" }, checkbox),
      h(
        "td",
        { class: "task" },
        h(
          "div",
          {},
          h("a", { href: `#/task/${id}`, class: "strong plain" }, spec.strategy),
          " ",
          h("span", { class: "mono muted small nowrap", title: id }, f.shortId(id)),
        ),
        h("div", { class: "muted small" }, f.params(spec.params)),
      ),
      h("td", {}, h("div", { class: "nowrap" }, data.title), h("div", { class: "muted small" }, data.detail)),
      h(
        "td",
        { class: "status" },
        h(
          "div",
          { class: "status-line" },
          statusBadge(task.status),
          active
            ? h("span", { class: "pct small muted" }, `${Math.round((task.progress || 0) * 100)}%`)
            : null,
          elapsed !== null
            ? h("span", { class: "small muted", title: "run time" }, f.duration(elapsed))
            : null,
          cancelButton,
        ),
        active ? progressBar(task) : null,
        detail,
        note ? h("p", { class: `row-note ${note.error ? "error" : "ok"}`, role: "status" }, note.text) : null,
      ),
      h(
        "td",
        { class: "nowrap", title: f.time(task.created_at) },
        h("div", {}, created.time),
        h("div", { class: "muted small" }, created.date),
      ),
      ...SHOWN_METRICS.map((m) => {
        const v = metrics ? metrics[m.key] : null;
        return h("td", { class: `num ${metrics ? toneOf(m, v) : ""}` }, metrics ? m.format(v) : "");
      }),
      h("td", { class: "spark-cell" }, metrics ? sparkFor(id) : null),
    ];
  }

  function render(task) {
    const row = h("tr", { dataset: { taskId: task.task_id, status: task.status } }, cells(task));
    const old = rows.get(task.task_id);
    if (old) old.replaceWith(row);
    rows.set(task.task_id, row);
    return row;
  }

  function place(task, where) {
    const row = render(task);
    let index = order.length;
    if (where === "sorted") {
      const t = Date.parse(task.created_at);
      index = order.findIndex((id) => Date.parse(store.task(id)?.created_at) < t);
      if (index < 0) index = order.length;
    }
    const before = rows.get(order[index]);
    order.splice(index, 0, task.task_id);
    body.insertBefore(row, before || null);
  }

  function remove(id) {
    rows.get(id)?.remove();
    rows.delete(id);
    order = order.filter((x) => x !== id);
  }

  function onTask(task, kind) {
    const id = task.task_id;
    if (loading) {
      missed.add(id);
      return;
    }
    const row = rows.get(id);
    if (row) {
      if (!matches(task.status)) remove(id);
      else if (kind === "progress" && row.dataset.status === task.status) setProgress(row, task);
      else {
        if (task.status !== Status.COMPLETED) selected.delete(id);
        render(task);
      }
    } else if (matches(task.status) && inRange(task)) place(task, "sorted");
    updateInfo();
  }

  function onUnknown(id, status) {
    if (loading) missed.add(id);
    else if (matches(status)) store.refresh(id).catch(() => {});
  }

  async function cancel(id, button) {
    button.disabled = true;
    notes.delete(id);
    try {
      const task = await json("DELETE", `/backtests/${encodeURIComponent(id)}`);
      notes.set(id, { text: task.reason ? `cancelled: ${task.reason}` : "cancelled", error: false });
      store.upsert(task);
    } catch (error) {
      notes.set(id, { text: error.message, error: true });
      const task = store.task(id);
      if (task && rows.has(id)) render(task);
      store.refresh(id).catch(() => {});
    }
  }

  async function load(reset) {
    const mine = ++generation;
    if (reset) {
      cursor = null;
      order = [];
      rows.clear();
      body.replaceChildren(
        h("tr", { class: "loading" }, h("td", { colspan: headers.length }, "Loading\u2026")),
      );
    }
    more.disabled = true;
    missed = new Set();
    const page = (loading = get(
      `/backtests${query({ status: filter, limit: PAGE, cursor: reset ? null : cursor })}`,
    ));
    try {
      const answer = await page;
      if (mine !== generation) return;
      body.querySelector("tr.loading")?.remove();
      for (const task of answer.tasks) {
        store.upsert(task, "loaded");
        if (!rows.has(task.task_id)) place(task, "bottom");
      }
      cursor = answer.next_cursor;
    } catch (error) {
      if (mine !== generation) return;
      clear(
        body,
        h(
          "tr",
          { class: "empty" },
          h("td", { colspan: headers.length, class: "error" }, `Could not load backtests: ${error.message}`),
        ),
      );
    } finally {
      if (mine === generation) {
        loading = null;
        more.disabled = false;
        const again = missed;
        missed = new Set();
        for (const id of again) {
          const task = store.task(id);
          if (task) onTask(task, "update");
          else store.refresh(id).catch(() => {});
        }
        updateInfo();
      }
    }
  }

  function setFilter(value) {
    filter = value;
    for (const button of filterButtons)
      button.setAttribute(
        "aria-pressed",
        String((button.dataset.filter === "all" ? null : button.dataset.filter) === value),
      );
    load(true);
  }

  // Sparklines: a few small /equity requests at a time; a finished run's curve never changes.
  const waiting = [];
  let inFlight = 0;
  function sparkFor(id) {
    const holder = h("span", { class: "spark-holder", dataset: { spark: id } });
    const values = sparks.get(id);
    if (values) holder.append(sparkline(values, { label: `equity curve of ${f.shortId(id)}` }));
    else if (values === undefined) {
      sparks.set(id, null);
      waiting.push(id);
      pump();
    }
    return holder;
  }
  function pump() {
    while (inFlight < 3 && waiting.length) {
      const id = waiting.shift();
      inFlight += 1;
      get(`/backtests/${encodeURIComponent(id)}/equity?points=96`)
        .then((answer) => {
          sparks.set(id, answer.equity);
          const holder = rows.get(id)?.querySelector(`[data-spark="${CSS.escape(id)}"]`);
          if (holder) clear(holder, sparkline(answer.equity, { label: `equity curve of ${f.shortId(id)}` }));
        })
        .catch(() => {})
        .finally(() => {
          inFlight -= 1;
          pump();
        });
    }
  }

  store.onTask((task, kind) => {
    if (kind !== "loaded") onTask(task, kind);
  });
  store.onUnknown(onUnknown);
  const ready = load(true);

  return {
    el,
    ready,
    show() {
      el.hidden = false;
      window.scrollTo(0, scrollY);
    },
    hide() {
      if (!el.hidden) scrollY = window.scrollY;
      el.hidden = true;
    },
  };
}
