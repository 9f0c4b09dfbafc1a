// The dashboard's entry point: the hash router (#/, #/task/<id>, #/compare/<ids>), the token
// prompt, and the live stream that keeps every view current.

import { get, setTokenPrompt } from "./api.js";
import { compareView } from "./compare.js";
import { datasetsView } from "./datasets.js";
import { detailView } from "./detail.js";
import { LiveStream } from "./live.js";
import * as store from "./store.js";
import { sweepView, sweepsView } from "./sweeps.js";
import { tasksView } from "./tasks.js";

const main = document.getElementById("view");
const liveState = document.getElementById("live-state");
let tasks = null;
let current = null;

function askToken(message) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const text = document.getElementById("token-message");
  text.textContent = message
    ? `${message[0].toUpperCase()}${message.slice(1)}: try again.`
    : "This server needs an API token. It is kept in this tab's session storage.";
  text.className = message ? "error" : "muted";
  text.setAttribute("role", message ? "alert" : "status");
  input.value = "";
  return new Promise((resolve) => {
    // The page cannot work without it: Escape does not dismiss the form (and if the browser
    // closes it anyway, it opens again).
    const keep = (event) => event.preventDefault();
    const reopen = () => dialog.showModal();
    const submit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return input.focus();
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", keep);
      dialog.removeEventListener("close", reopen);
      dialog.close();
      resolve(value);
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", keep);
    dialog.addEventListener("close", reopen);
    dialog.showModal();
    input.focus();
  });
}

function showLive(status) {
  liveState.dataset.state = status;
  liveState.querySelector(".label").textContent =
    { live: "Live", connecting: "Connecting\u2026", reconnecting: "Reconnecting\u2026" }[status] || status;
}

function route() {
  const [name, arg = ""] = location.hash.replace(/^#\/?/, "").split("/");
  current?.destroy();
  current?.el.remove();
  current = null;
  const sweeps = name === "sweeps" || name === "sweep";
  const active =
    name === "compare" || name === "data" ? name : sweeps ? "sweeps" : name === "task" ? null : "tasks";
  for (const link of document.querySelectorAll("nav.main a")) {
    if (link.dataset.route === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (name === "task" && arg) {
    tasks.hide();
    current = detailView(decodeURIComponent(arg));
  } else if (name === "data") {
    tasks.hide();
    current = datasetsView();
    document.title = "Datasets \u00b7 coinbt";
  } else if (sweeps) {
    tasks.hide();
    current = name === "sweep" && arg ? sweepView(decodeURIComponent(arg)) : sweepsView();
    document.title = "Sweeps \u00b7 coinbt";
  } else if (name === "compare") {
    tasks.hide();
    current = compareView(decodeURIComponent(arg).split(","));
    document.title = "Compare \u00b7 coinbt";
  } else {
    document.title = "coinbt";
    tasks.show();
    return;
  }
  main.append(current.el);
  window.scrollTo(0, 0);
}

async function start() {
  setTokenPrompt(askToken);
  // "Skip to content" must not change the hash: that is the router's.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  showLive("connecting");
  // Where the stream starts: the log position the read models have reached *before* the first
  // page of tasks is read, so every later change arrives as an event.
  let after = null;
  while (after === null) {
    try {
      after = (await get("/health")).projected_position;
    } catch (error) {
      showLive("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  tasks = tasksView();
  main.append(tasks.el);
  window.addEventListener("hashchange", route);
  route();
  await tasks.ready;
  new LiveStream(after, { event: store.applyEvent, progress: store.applyProgress, state: showLive }).start();
}

start();
