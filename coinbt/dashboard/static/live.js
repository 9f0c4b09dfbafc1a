// The live event stream: GET /events with Accept: text/event-stream, read with fetch() and a
// streaming reader (EventSource cannot send the Authorization header). Events are dispatched as
// they arrive; when the connection drops it reconnects after the server's `retry:` delay and
// resumes after the last event id it saw, so no event is missed or seen twice.

import { request } from "./api.js";

const STALE_MS = 45_000; // the server sends a keep-alive comment every 15 s

export class LiveStream {
  /**
   * @param {number} after  the log position to stream after
   * @param {{event: Function, progress: Function, state: Function}} handlers
   */
  constructor(after, handlers) {
    this.lastId = after;
    this.handlers = handlers;
    this.retryMs = 2000;
    this.controller = null;
    this.stopped = false;
    this.status = "connecting";
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  setState(status) {
    if (status === this.status) return;
    this.status = status;
    this.handlers.state?.(status);
  }

  async run() {
    while (!this.stopped) {
      const controller = new AbortController();
      this.controller = controller;
      try {
        const response = await request("GET", `/events?after=${encodeURIComponent(this.lastId)}`, {
          headers: { Accept: "text/event-stream" },
          signal: controller.signal,
        });
        if (!response.ok || !response.body) throw new Error(`GET /events answered ${response.status}`);
        this.setState("live");
        await this.read(response.body, controller);
      } catch (error) {
        if (this.stopped) return;
        if (error?.name !== "AbortError" && error?.name !== "TypeError") console.warn("event stream:", error);
      }
      if (this.stopped) return;
      this.setState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  /** Parse Server-Sent Events from the body until it ends (https://html.spec.whatwg.org/#parsing-an-event-stream). */
  async read(body, controller) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let watchdog = 0;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), STALE_MS);
    };
    let buffer = "";
    let data = [];
    let type = "";
    let id = null;
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (let line of lines) {
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            this.dispatch(type, data, id);
            data = [];
            type = "";
            id = null;
            continue;
          }
          if (line.startsWith(":")) continue; // a comment: the keep-alive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "data") data.push(text);
          else if (field === "event") type = text;
          else if (field === "id" && !text.includes("\0")) id = text;
          else if (field === "retry" && /^\d+$/.test(text)) this.retryMs = Number(text);
        }
      }
    } finally {
      clearTimeout(watchdog);
      reader.cancel().catch(() => {});
    }
  }

  dispatch(type, data, id) {
    if (id !== null && /^\d+$/.test(id)) this.lastId = Number(id);
    if (!data.length) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch (error) {
      console.warn("event stream: not JSON:", error);
      return;
    }
    try {
      if (type === "progress") this.handlers.progress?.(payload);
      else if (type === "" || type === "message") this.handlers.event?.(payload);
    } catch (error) {
      console.error("event handler failed:", error);
    }
  }
}
