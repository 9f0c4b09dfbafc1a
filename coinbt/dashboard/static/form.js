// The submit form: a strategy from /strategies with fields generated from its parameter schema,
// data from /datasets (or synthetic bars), costs and limits. The API checks the spec; its field
// errors (details[].field such as "params.fast") are shown next to the matching field.

import { ApiError, get, json, randomKey } from "./api.js";
import { clear, h, uid } from "./dom.js";
import { FieldProblem, field, numberInput, paramField, valueOf } from "./fields.js";
import * as f from "./format.js";
import { rulesEditor } from "./rules.js";
import { tradingFields } from "./trading.js";

const INTERVALS = ["1m", "5m", "15m", "30m", "1h", "4h", "1d"];

/** The form element; onSubmitted(task) is called with the API's answer (202). */
export function submitForm({ onSubmitted }) {
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const strategy = h("select", { required: true }, h("option", { value: "" }, "loading\u2026"));
  const about = h("details", { class: "about", hidden: true }, h("summary", {}, "How it trades"), h("p", {}));
  const paramsBox = h("div", { class: "params-grid" });
  const paramsSet = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "Parameters"),
    paramsBox,
    h("p", { class: "field-error", dataset: { errorFor: "params" }, hidden: true }),
  );

  const rules = rulesEditor({
    bars: () => (synthRadio.checked ? Number(form.querySelector('[data-field="data.synthetic.bars"]').value) : undefined),
    onDraft: () => {
      strategy.value = "rules";
      clearErrors();
      showParams();
    },
  });

  const kindName = uid("data-kind");
  const synthRadio = h("input", {
    type: "radio",
    name: kindName,
    value: "synthetic",
    checked: true,
    id: uid("kind"),
  });
  const dataRadio = h("input", { type: "radio", name: kindName, value: "dataset", id: uid("kind") });
  const datasetSelect = h("select", {});
  const datasetHint = h("p", { class: "help" });
  const synthetic = h(
    "div",
    { class: "subgroup", dataset: { kind: "synthetic" } },
    h(
      "div",
      { class: "row2" },
      field({
        label: "Bars",
        path: "data.synthetic.bars",
        input: numberInput({ min: 2, step: 1, value: 20000 }),
      }),
      field({
        label: "Seed",
        path: "data.synthetic.seed",
        input: numberInput({ min: 0, step: 1, value: 1 }),
      }),
    ),
    h(
      "div",
      { class: "row2" },
      field({
        label: "Interval",
        path: "data.synthetic.interval",
        input: h("input", {
          type: "text",
          value: "1h",
          list: "intervals",
          autocomplete: "off",
          spellcheck: "false",
        }),
      }),
      field({
        label: "Start price",
        path: "data.synthetic.start_price",
        input: numberInput({ min: 0, value: 100 }),
      }),
    ),
    h(
      "datalist",
      { id: "intervals" },
      INTERVALS.map((v) => h("option", { value: v })),
    ),
    h("p", { class: "field-error", dataset: { errorFor: "data.synthetic" }, hidden: true }),
  );
  const dataset = h(
    "div",
    { class: "subgroup", dataset: { kind: "dataset" }, hidden: true },
    field({ label: "Dataset", path: "data.dataset", input: datasetSelect }),
    datasetHint,
    h(
      "div",
      { class: "row2" },
      field({
        label: "Start (UTC)",
        path: "data.start",
        input: h("input", { type: "datetime-local", step: 60 }),
        help: "optional",
      }),
      field({
        label: "End (UTC)",
        path: "data.end",
        input: h("input", { type: "datetime-local", step: 60 }),
        help: "optional",
      }),
    ),
  );
  const dataSet = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "Data"),
    h(
      "div",
      { class: "segmented", role: "presentation" },
      h("label", { for: synthRadio.id }, synthRadio, " Synthetic"),
      h("label", { for: dataRadio.id }, dataRadio, " Dataset"),
    ),
    synthetic,
    dataset,
    h("p", { class: "field-error", dataset: { errorFor: "data" }, hidden: true }),
  );
  for (const radio of [synthRadio, dataRadio]) {
    radio.addEventListener("change", () => {
      synthetic.hidden = !synthRadio.checked;
      dataset.hidden = synthRadio.checked;
    });
  }

  const costs = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "Costs and limits"),
    h(
      "div",
      { class: "row2" },
      field({ label: "Cash", path: "cash", input: numberInput({ min: 0, value: 10000 }) }),
      field({
        label: "Fill at",
        path: "fill",
        input: h(
          "select",
          {},
          h("option", { value: "next_open" }, "next open"),
          h("option", { value: "close" }, "close"),
        ),
      }),
    ),
    h(
      "div",
      { class: "row2" },
      field({ label: "Fee (bps)", path: "fee_bps", input: numberInput({ min: 0, value: 10 }) }),
      field({ label: "Slippage (bps)", path: "slippage_bps", input: numberInput({ min: 0, value: 0 }) }),
    ),
    field({ label: "Timeout (s)", path: "timeout_s", input: numberInput({ min: 0, value: 3600 }) }),
  );

  const trading = tradingFields();

  const submit = h("button", { type: "submit", class: "btn primary wide" }, "Run backtest");
  const formErrors = h("div", { class: "form-errors", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "submit-form", novalidate: true, "aria-label": "New backtest" },
    field({ label: "Strategy", path: "strategy", input: strategy }),
    about,
    paramsSet,
    rules.element,
    dataSet,
    trading.element,
    costs,
    h("div", { class: "submit-actions" }, formErrors, submit, status),
  );

  let strategies = [];
  function showParams() {
    const chosen = strategies.find((s) => s.name === strategy.value);
    const props = chosen?.params?.properties || {};
    clear(
      paramsBox,
      Object.entries(props).map(([name, schema]) => paramField(name, schema)),
    );
    if (!Object.keys(props).length)
      paramsBox.append(h("p", { class: "muted" }, "This strategy has no parameters."));
    rules.setVisible(chosen?.source === "rules");
    paramsSet.hidden = chosen?.source === "rules";
    about.hidden = !chosen?.description;
    about.querySelector("p").textContent = chosen?.description || "";
  }
  strategy.addEventListener("change", () => {
    clearErrors();
    showParams();
  });

  async function loadCatalog() {
    try {
      const [s, d] = await Promise.all([get("/strategies"), get("/datasets")]);
      strategies = s.strategies;
      clear(
        strategy,
        strategies.map((x) => h("option", { value: x.name }, x.name)),
      );
      showParams();
      const sets = d.datasets || [];
      clear(
        datasetSelect,
        sets.map((x) => h("option", { value: x.name }, `${x.name} (${f.int(x.rows)} bars)`)),
      );
      dataRadio.disabled = sets.length === 0;
      datasetHint.textContent = sets.length
        ? ""
        : "No datasets imported yet: add one with `coinbt data import` or POST /datasets.";
      const max = d.synthetic?.max_bars;
      if (max) synthetic.querySelector("input").max = max;
      const update = () => {
        const info = sets.find((x) => x.name === datasetSelect.value);
        if (info)
          datasetHint.textContent = `${info.symbol}: ${info.start.slice(0, 16).replace("T", " ")} \u2192 ${info.end.slice(0, 16).replace("T", " ")} UTC`;
      };
      datasetSelect.addEventListener("change", update);
      update();
    } catch (error) {
      clear(
        status,
        h("span", { class: "error" }, `Could not load strategies: ${error.message} `),
        h(
          "button",
          {
            type: "button",
            class: "btn small",
            onclick: () => {
              clear(status);
              loadCatalog();
            },
          },
          "Retry",
        ),
      );
    }
  }

  function clearErrors() {
    for (const el of form.querySelectorAll(".field-error")) {
      el.hidden = true;
      el.textContent = "";
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    formErrors.hidden = true;
    formErrors.replaceChildren();
  }

  /** Show each error next to its field, or its nearest visible group, or above the button. */
  function showErrors(errors) {
    if (!rules.element.hidden) errors = rules.showErrors(errors); // rule errors carry a column
    const loose = [];
    for (const { field: path, message } of errors) {
      let target = null;
      for (let p = path; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
        const candidate = form.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
        if (candidate && !candidate.closest("[hidden]:not(.field-error)")) {
          target = candidate;
          break;
        }
      }
      if (!target) {
        loose.push(path ? `${path}: ${message}` : message);
        continue;
      }
      target.textContent = target.textContent ? `${target.textContent}; ${message}` : message;
      target.hidden = false;
      form.querySelector(`[data-field="${CSS.escape(path)}"]`)?.setAttribute("aria-invalid", "true");
    }
    if (loose.length) {
      clear(
        formErrors,
        h(
          "ul",
          {},
          loose.map((m) => h("li", {}, m)),
        ),
      );
      formErrors.hidden = false;
    }
    form.querySelector("[aria-invalid='true']")?.focus();
  }

  function read() {
    const value = (path) => {
      const input = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
      return input ? valueOf(input) : undefined;
    };
    const params = {};
    for (const input of paramsBox.querySelectorAll("[data-field]")) {
      const v = valueOf(input);
      if (v !== undefined) params[input.dataset.field.slice("params.".length)] = v;
    }
    let data;
    if (synthRadio.checked) {
      const s = {};
      for (const key of ["bars", "seed", "interval", "start_price"]) {
        const v = value(`data.synthetic.${key}`);
        if (v !== undefined) s[key] = v;
      }
      data = { synthetic: s };
    } else {
      data = { dataset: datasetSelect.value || null };
      for (const key of ["start", "end"]) {
        const v = value(`data.${key}`);
        if (v) data[key] = `${v.length === 16 ? `${v}:00` : v}Z`;
      }
    }
    const spec = { strategy: strategy.value, params, data };
    if (!rules.element.hidden) Object.assign(spec, rules.read());
    Object.assign(spec, trading.read());
    for (const key of ["cash", "fee_bps", "slippage_bps", "fill", "timeout_s"]) {
      const v = value(key);
      if (v !== undefined) spec[key] = v;
    }
    return spec;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    status.replaceChildren();
    let spec;
    try {
      spec = read();
    } catch (problem) {
      if (problem instanceof FieldProblem)
        return showErrors([{ field: problem.field, message: problem.message }]);
      throw problem;
    }
    submit.disabled = true;
    submit.textContent = "Submitting\u2026";
    try {
      const task = await json("POST", "/backtests", {
        body: spec,
        headers: { "Idempotency-Key": randomKey() },
      });
      clear(
        status,
        h("span", { class: "ok" }, "Queued "),
        h("a", { href: `#/task/${task.task_id}`, class: "mono" }, f.shortId(task.task_id)),
      );
      onSubmitted(task);
    } catch (error) {
      if (!(error instanceof ApiError)) {
        clear(status, h("span", { class: "error" }, `Could not submit: ${error.message}`));
      } else if (error.fieldErrors.length) {
        showErrors(error.fieldErrors);
        clear(
          status,
          h(
            "span",
            { class: "error" },
            error.status === 422 ? "Check the highlighted fields." : error.message,
          ),
        );
      } else {
        const wait = error.status === 429 && error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
        clear(status, h("span", { class: "error" }, `${error.message}.${wait}`.replace("..", ".")));
      }
    } finally {
      submit.disabled = false;
      submit.textContent = "Run backtest";
    }
  });

  loadCatalog();
  return form;
}
