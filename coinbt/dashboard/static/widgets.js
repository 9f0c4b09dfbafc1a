// Small pieces shared by the views: the status badge, the progress bar, a run's duration.

import { h } from "./dom.js";
import * as f from "./format.js";
import { Status } from "./status.js";

export function statusBadge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

export function progressBar(task) {
  const percent = Math.round((task.progress || 0) * 100);
  return h(
    "div",
    {
      class: `bar ${task.status === Status.QUEUED ? "waiting" : ""}`,
      role: "progressbar",
      "aria-label": `progress of ${f.shortId(task.task_id)}`,
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": percent,
    },
    h("span", { style: `width:${percent}%` }),
  );
}

/** Move the bar and the percentage inside `container` to the task's progress. */
export function setProgress(container, task) {
  const percent = Math.round((task.progress || 0) * 100);
  const bar = container.querySelector(".bar");
  if (!bar) return;
  bar.setAttribute("aria-valuenow", percent);
  bar.firstChild.style.width = `${percent}%`;
  const label = container.querySelector(".pct");
  if (label) label.textContent = `${percent}%`;
}

/** How long the run took (started to finished), in ms; null while it has not finished. */
export function taskDuration(task) {
  if (task.started_at && task.finished_at) return f.between(task.started_at, task.finished_at);
  return null; // never started (cancelled while queued) or not finished: no run time
}

/** A table in a horizontally scrolling wrapper; columns are [label, className?] pairs. */
export function dataTable(className, columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: className },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map(([label, cls]) => h("th", { scope: "col", class: cls || null }, label)),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
