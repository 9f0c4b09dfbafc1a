// The tasks the page knows, kept current by the live stream. An event changes a known task's
// status at once (so every state shows, however short), then the task is read again for the rest
// (result, timestamps): one request at a time per task, and a read that an even newer event
// overtook is dropped for a fresh one, so the view never steps back.

import { get } from "./api.js";
import { STATUS_AFTER, Status, TERMINAL, UNFINISHED } from "./status.js";

export const ACTIVE = new Set(UNFINISHED);
// Within one attempt a task only moves forward; a re-queued task starts a new attempt.
const RANK = (status) => (TERMINAL.includes(status) ? UNFINISHED.length : UNFINISHED.indexOf(status));

const tasks = new Map();
const taskListeners = new Set();
const eventListeners = new Set();
const unknownListeners = new Set();
const reading = new Map(); // task id -> {dirty}

function subscribe(set, fn) {
  set.add(fn);
  return () => set.delete(fn);
}

/** fn(task, kind) for every change of a task; kind is "update", "event" or "progress". */
export const onTask = (fn) => subscribe(taskListeners, fn);
/** fn(storedEvent) for every event of the live stream (Filled too). */
export const onEvent = (fn) => subscribe(eventListeners, fn);
/** fn(taskId, status, event) for a status event of a task this page has not read yet. */
export const onUnknown = (fn) => subscribe(unknownListeners, fn);

export const task = (id) => tasks.get(id);

function emit(value, kind) {
  for (const fn of taskListeners) {
    try {
      fn(value, kind);
    } catch (error) {
      console.error(error);
    }
  }
}

export function upsert(value, kind = "update") {
  tasks.set(value.task_id, value);
  emit(value, kind);
  return value;
}

/** Read a task again (coalesced); resolves when the newest state is in the store. */
export function refresh(id) {
  const current = reading.get(id);
  if (current) {
    current.dirty = true;
    return current.done;
  }
  const state = { dirty: false };
  state.done = (async () => {
    try {
      for (;;) {
        state.dirty = false;
        const value = await get(`/backtests/${encodeURIComponent(id)}`);
        if (state.dirty) continue;
        const known = tasks.get(id);
        if (known?.status === Status.RUNNING && value.status === Status.RUNNING && known.attempt === value.attempt) {
          value.progress = Math.max(value.progress, known.progress); // a progress message was newer
        }
        return upsert(value);
      }
    } finally {
      reading.delete(id);
    }
  })();
  state.done.catch((error) => console.warn(`reading task ${id}:`, error));
  reading.set(id, state);
  return state.done;
}

function fromQueued(event) {
  const data = event.data || {};
  return {
    task_id: event.stream_id,
    status: Status.QUEUED,
    attempt: data.attempt ?? 1,
    progress: 0,
    error: null,
    error_type: null,
    reason: null,
    spec: data.spec,
    result: null,
    created_at: event.recorded_at,
    started_at: null,
    finished_at: null,
    idempotency_key: data.idempotency_key ?? null,
    num_fills: 0,
  };
}

/** A task the page submitted: shown at once unless the stream was quicker (it is never older). */
export function submitted(value) {
  if (!tasks.has(value.task_id)) upsert(value);
}

/** A stored event from the live stream. */
export function applyEvent(event) {
  for (const fn of eventListeners) {
    try {
      fn(event);
    } catch (error) {
      console.error(error);
    }
  }
  const status = STATUS_AFTER[event.type];
  if (!status) return; // Filled: the task's row changes with its Completed
  const id = event.stream_id;
  const known = tasks.get(id);
  if (!known && event.type === "Queued" && event.version === 1) {
    // A new task: its Queued event holds all there is to show until it starts.
    upsert(fromQueued(event), "event");
    return;
  }
  if (!known) {
    for (const fn of unknownListeners) fn(id, status, event);
    return;
  }
  const data = event.data || {};
  const attempt = data.attempt ?? known.attempt;
  if (attempt < known.attempt || (attempt === known.attempt && RANK(status) < RANK(known.status))) {
    return; // the page already shows a later state (from the submit answer or a read)
  }
  const next = { ...known, status };
  if (event.type === "Queued" || event.type === "Started") {
    next.attempt = attempt;
    next.progress = 0;
    if (event.type === "Started") next.started_at = event.recorded_at;
  } else {
    next.finished_at = event.recorded_at;
    if (event.type === "Completed") next.progress = 1;
    if (event.type === "Failed") next.error = data.error ?? known.error;
    if (event.type === "Cancelled") next.reason = data.reason ?? known.reason;
  }
  upsert(next, "event");
  refresh(id).catch(() => {});
}

/** An `event: progress` message: {task_id, progress}. */
export function applyProgress({ task_id: id, progress }) {
  const known = tasks.get(id);
  if (!known || known.status !== Status.RUNNING || typeof progress !== "number") return;
  upsert({ ...known, progress }, "progress");
}
