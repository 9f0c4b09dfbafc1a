// The rules editor of the submit form (strategy "rules", docs/strategies.md): entry and exit
// conditions (and optional short ones), the parameters they name, the function catalogue from
// GET /functions with signatures, and examples to start from. Every change is checked against
// POST /rules/validate (debounced); an error is shown under its box with its column marked.

import { get, json } from "./api.js";
import { clear, h, uid } from "./dom.js";

const RULES = [
  ["entry", "Entry", "enter long when this holds (a condition)"],
  ["exit", "Exit", "leave the long when this holds"],
  ["short_entry", "Short entry", "optional: the bearish entry"],
  ["short_exit", "Short exit", "optional: leave the short"],
];

export const EXAMPLES = [
  {
    name: "SMA crossover",
    entry: "cross_above(sma(close, fast), sma(close, slow))",
    exit: "cross_below(sma(close, fast), sma(close, slow))",
    params: { fast: 10, slow: 30 },
  },
  {
    name: "RSI dip in an uptrend",
    entry: "rsi(close, 14) < level and close > ema(close, trend)",
    exit: "rsi(close, 14) > 70 or close < ema(close, trend)",
    params: { level: 30, trend: 200 },
  },
  {
    name: "Donchian breakout",
    entry: "close > shift(highest(high, n), 1)",
    exit: "close < shift(lowest(low, m), 1)",
    params: { n: 20, m: 10 },
  },
  {
    name: "Bollinger breakout with trend strength",
    entry: "close > bb_upper(close, 20, k) and adx(14) > 20",
    exit: "close < bb_middle(close, 20)",
    params: { k: 2 },
  },
];

const DEBOUNCE_MS = 250;
const EDIT_EVENT = "coinbt:edit-rules";

/** Open a task's rule set (its `rules` plus `params`) as a draft in the submit form. */
export function editRules(draft) {
  window.dispatchEvent(new CustomEvent(EDIT_EVENT, { detail: draft }));
  location.hash = "#/";
}

/** The editor; `bars()` gives the bars the run will have (windows are checked against it);
 * `onDraft()` is called when a task's rules are opened for editing (the form selects "rules"). */
export function rulesEditor({ bars = () => undefined, onDraft = () => {} } = {}) {
  const boxes = {};
  const errors = {};
  const marks = {};
  let lastBox = null;

  function ruleField([key, label, help]) {
    const id = uid(`rule-${key}`);
    const box = h("textarea", {
      id,
      name: `rules.${key}`,
      rows: 3,
      spellcheck: "false",
      autocomplete: "off",
      class: "rule-box mono",
      dataset: { field: `rules.${key}`, rule: key },
      "aria-describedby": `${id}-help ${id}-error`,
    });
    box.addEventListener("input", changed);
    box.addEventListener("focus", () => {
      lastBox = box;
    });
    boxes[key] = box;
    marks[key] = h("pre", { class: "rule-mark mono", hidden: true, "aria-hidden": "true" });
    errors[key] = h("p", {
      class: "field-error",
      id: `${id}-error`,
      dataset: { errorFor: `rules.${key}` },
      hidden: true,
    });
    return h(
      "div",
      { class: "field rule-field" },
      h("label", { for: id }, label),
      box,
      marks[key],
      h("p", { class: "help", id: `${id}-help` }, help),
      errors[key],
    );
  }

  const paramRows = h("div", { class: "rule-params" });
  const paramsError = h("p", { class: "field-error", dataset: { errorFor: "params" }, hidden: true });
  function paramRow(name = "", value = "") {
    const nameInput = h("input", {
      type: "text",
      value: name,
      placeholder: "name",
      spellcheck: "false",
      autocomplete: "off",
      class: "rule-param-name mono",
      "aria-label": "parameter name",
    });
    const valueInput = h("input", {
      type: "number",
      step: "any",
      value,
      placeholder: "value",
      class: "rule-param-value",
      "aria-label": name ? `value of ${name}` : "parameter value",
    });
    const rowError = h("p", { class: "field-error", hidden: true });
    const sync = () => {
      const key = nameInput.value.trim();
      valueInput.dataset.field = `params.${key}`;
      valueInput.setAttribute("aria-label", key ? `value of ${key}` : "parameter value");
      rowError.dataset.errorFor = `params.${key}`;
    };
    sync();
    nameInput.addEventListener("input", () => {
      sync();
      changed();
    });
    valueInput.addEventListener("input", changed);
    const remove = h(
      "button",
      {
        type: "button",
        class: "btn small",
        "aria-label": "remove parameter",
        onclick: () => {
          row.remove();
          changed();
        },
      },
      "\u00d7",
    );
    const row = h("div", { class: "rule-param" }, nameInput, valueInput, remove, rowError);
    return row;
  }
  const addParam = h(
    "button",
    {
      type: "button",
      class: "btn small",
      onclick: () => {
        const row = paramRow();
        paramRows.append(row);
        row.querySelector("input").focus();
      },
    },
    "Add parameter",
  );

  const example = h(
    "select",
    { "aria-label": "Start from an example" },
    h("option", { value: "" }, "Start from an example\u2026"),
    EXAMPLES.map((x, i) => h("option", { value: String(i) }, x.name)),
  );
  example.addEventListener("change", () => {
    const chosen = EXAMPLES[Number(example.value)];
    if (chosen) load(chosen);
    example.value = "";
  });

  const verdict = h("p", { class: "rule-verdict", role: "status", "aria-live": "polite" });

  const fnFilter = h("input", {
    type: "search",
    placeholder: "filter: sma, cross, volume\u2026",
    "aria-label": "Filter functions",
    autocomplete: "off",
  });
  const fnList = h("ul", { class: "rule-functions-list" });
  const fnCount = h("span", { class: "muted" });
  const functions = h(
    "details",
    { class: "rule-functions" },
    h("summary", {}, "Functions ", fnCount),
    h(
      "p",
      { class: "help" },
      "Names: open high low close volume, your parameters, true, false. Operators: + - * /, ",
      "< <= > >= == !=, and, or, not. Click a function to insert it.",
    ),
    fnFilter,
    fnList,
  );
  let catalogue = null;
  async function loadFunctions() {
    if (catalogue) return;
    try {
      catalogue = (await get("/functions")).functions;
    } catch (error) {
      clear(fnList, h("li", { class: "error" }, `Could not load the functions: ${error.message}`));
      return;
    }
    fnCount.textContent = `(${catalogue.length})`;
    showFunctions();
  }
  function showFunctions() {
    if (!catalogue) return;
    const needle = fnFilter.value.trim().toLowerCase();
    const shown = catalogue.filter(
      (x) => !needle || x.name.includes(needle) || x.description.toLowerCase().includes(needle),
    );
    clear(
      fnList,
      shown.slice(0, 200).map((x) =>
        h(
          "li",
          { dataset: { function: x.name } },
          h(
            "button",
            { type: "button", class: "fn mono", title: x.description, onclick: () => insert(`${x.name}(`) },
            x.signature,
          ),
          h("span", { class: "muted" }, ` ${x.description}`),
        ),
      ),
      shown.length > 200 ? h("li", { class: "muted" }, `\u2026 ${shown.length - 200} more: filter`) : null,
    );
  }
  functions.addEventListener("toggle", () => {
    if (functions.open) loadFunctions();
  });
  fnFilter.addEventListener("input", showFunctions);

  function insert(text) {
    const box = lastBox || boxes.entry;
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? box.value.length;
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    box.focus();
    box.selectionStart = box.selectionEnd = start + text.length;
    changed();
  }

  const shorts = h(
    "details",
    { class: "rule-shorts" },
    h("summary", {}, "Short rules (optional)"),
    RULES.slice(2).map(ruleField),
  );
  const element = h(
    "fieldset",
    { class: "group rules-editor", hidden: true },
    h("legend", {}, "Rules"),
    example,
    RULES.slice(0, 2).map(ruleField),
    shorts,
    h(
      "div",
      { class: "rule-params-group" },
      h("p", { class: "rule-params-title" }, "Parameters ", h("span", { class: "muted" }, "(numbers the rules name)")),
      paramRows,
      addParam,
      paramsError,
    ),
    verdict,
    functions,
  );

  function read() {
    const rules = {};
    for (const [key] of RULES) {
      const text = boxes[key].value;
      if (text.trim() || key === "entry" || key === "exit") rules[key] = text;
    }
    const params = {};
    for (const row of paramRows.querySelectorAll(".rule-param")) {
      const name = row.querySelector(".rule-param-name").value.trim();
      const raw = row.querySelector(".rule-param-value").value.trim();
      if (!name) continue;
      const n = Number(raw);
      params[name] = raw !== "" && Number.isFinite(n) ? n : raw;
    }
    return { rules, params };
  }

  function load({ entry, exit, short_entry = "", short_exit = "", params = {} }) {
    boxes.entry.value = entry;
    boxes.exit.value = exit;
    boxes.short_entry.value = short_entry;
    boxes.short_exit.value = short_exit;
    shorts.open = Boolean(short_entry || short_exit);
    clear(
      paramRows,
      Object.entries(params).map(([k, v]) => paramRow(k, String(v))),
    );
    changed();
  }

  function clearMarks() {
    for (const [key] of RULES) {
      marks[key].hidden = true;
      marks[key].replaceChildren();
      boxes[key].removeAttribute("aria-invalid");
    }
    for (const el of element.querySelectorAll(".field-error")) {
      el.hidden = true;
      el.textContent = "";
    }
  }

  /** Show errors [{field, message, column}] in the editor; returns those it could not place. */
  function showErrors(list) {
    const loose = [];
    for (const error of list) {
      const key = error.field.startsWith("rules.") ? error.field.slice(6) : null;
      if (key && boxes[key]) {
        const where = error.column ? `column ${error.column}: ` : "";
        errors[key].textContent = `${where}${error.message}`;
        errors[key].hidden = false;
        boxes[key].setAttribute("aria-invalid", "true");
        if (error.column) markColumn(key, error.column);
        if (key.startsWith("short")) shorts.open = true;
        continue;
      }
      const target =
        element.querySelector(`.rule-param [data-error-for="${CSS.escape(error.field)}"]`) ||
        (error.field.startsWith("params") ? paramsError : null);
      if (target) {
        target.textContent = target.textContent ? `${target.textContent}; ${error.message}` : error.message;
        target.hidden = false;
      } else loose.push(error);
    }
    return loose;
  }

  /** Under the box: the rule's text with the character at `column` (1-based) underlined. */
  function markColumn(key, column) {
    const text = boxes[key].value.replace(/\s/g, " ");
    const at = Math.min(column - 1, text.length);
    const mark = h("mark", { class: "rule-error-at" }, text.slice(at, at + 1) || " ");
    clear(marks[key], text.slice(0, at), mark, text.slice(at + 1));
    marks[key].hidden = false;
  }

  let timer = null;
  let asked = 0;
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  }
  async function check() {
    const mine = ++asked;
    const body = { ...read() };
    const n = bars();
    if (Number.isInteger(n) && n > 0) body.bars = n;
    let answer;
    try {
      answer = await json("POST", "/rules/validate", { body });
    } catch (error) {
      if (mine !== asked) return;
      clearMarks();
      const fields = error.fieldErrors || [];
      const loose = showErrors(fields);
      verdict.className = "rule-verdict error";
      verdict.textContent = loose.length || !fields.length ? `Cannot check: ${error.message}` : "";
      return;
    }
    if (mine !== asked) return; // a newer check is under way
    clearMarks();
    const loose = showErrors(answer.errors);
    element.dataset.valid = String(answer.valid);
    if (answer.valid) {
      const names = Object.keys(answer.params?.properties || {});
      verdict.className = "rule-verdict ok";
      verdict.textContent = `\u2713 Valid${names.length ? `; parameters: ${names.join(", ")}` : ""}`;
    } else {
      verdict.className = "rule-verdict error";
      verdict.textContent = loose.length
        ? loose.map((e) => `${e.field}: ${e.message}`).join("; ")
        : "Fix the marked rule to run it.";
    }
  }

  let started = false;
  window.addEventListener(EDIT_EVENT, (event) => {
    started = true; // the draft, not the first example
    onDraft();
    load(event.detail);
    boxes.entry.focus();
  });
  function setVisible(visible) {
    element.hidden = !visible;
    if (visible && !started) {
      started = true;
      load(EXAMPLES[0]);
    }
  }

  return { element, read, setVisible, showErrors, check: changed };
}

/** Rows for a task's detail: its rules (if any) and where its strategy's code came from. */
export function specRows(spec) {
  const rows = [];
  const labels = { entry: "Entry rule", exit: "Exit rule", short_entry: "Short entry", short_exit: "Short exit" };
  for (const [key, label] of Object.entries(labels)) {
    const text = spec?.rules?.[key];
    if (text) rows.push([label, h("code", { class: "mono rule-text" }, text)]);
  }
  if (spec?.rules) {
    const draft = { ...spec.rules, params: spec.params || {} };
    rows.push([
      "Rules",
      h("button", { type: "button", class: "btn small", onclick: () => editRules(draft) }, "Edit a copy in the form"),
    ]);
  }
  const source = spec?.source;
  if (source) {
    const parts = [source.kind];
    if (source.module) parts.push(source.module);
    if (source.version) parts.push(source.kind === "builtin" ? `coinbt ${source.version}` : `v${source.version}`);
    const text = parts.join(" \u00b7 ");
    rows.push([
      "Source",
      source.sha256
        ? h("span", { title: `sha256 ${source.sha256}` }, `${text} \u00b7 sha256 ${source.sha256.slice(0, 12)}\u2026`)
        : text,
    ]);
  }
  return rows;
}
