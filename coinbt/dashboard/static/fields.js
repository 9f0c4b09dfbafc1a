// Form fields: a label, the input, help text and a line for the API's error about the field
// (found by its path, e.g. "params.fast"), and reading values back for the spec.

import { h, uid } from "./dom.js";
import * as f from "./format.js";

/** A labelled input with its help text and an (initially hidden) error line for `path`. */
export function field({ label, path, input, help, className = "" }) {
  const id = uid(`f-${path.replaceAll(".", "-")}`);
  input.id = id;
  input.name = path;
  input.dataset.field = path;
  const helpId = `${id}-help`;
  const errorId = `${id}-error`;
  input.setAttribute("aria-describedby", help ? `${helpId} ${errorId}` : errorId);
  const isCheck = input.type === "checkbox";
  return h(
    "div",
    { class: `field ${isCheck ? "check" : ""} ${className}`.trim() },
    isCheck ? h("label", { for: id }, input, " ", label) : [h("label", { for: id }, label), input],
    help ? h("p", { class: "help", id: helpId }, help) : null,
    h("p", { class: "field-error", id: errorId, dataset: { errorFor: path }, hidden: true }),
  );
}

export const numberInput = (attrs) =>
  h("input", { type: "number", inputmode: "decimal", step: "any", ...attrs });

const show = (x) => (Number.isInteger(x) ? f.int(x) : String(x));

/** A schema's range in words: "1 to 1,000,000", "> 0 and ≤ 100", "≥ 2". */
function bound(schema) {
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = schema;
  if (min !== undefined && max !== undefined) return `${show(min)} to ${show(max)}`;
  const parts = [
    xmin !== undefined ? `> ${show(xmin)}` : min !== undefined ? `≥ ${show(min)}` : null,
    xmax !== undefined ? `< ${show(xmax)}` : max !== undefined ? `≤ ${show(max)}` : null,
  ];
  return parts.filter(Boolean).join(" and ") || null;
}

/** The field for one strategy parameter, from its JSON schema. */
export function paramField(name, schema) {
  let input;
  if (schema.type === "boolean") input = h("input", { type: "checkbox", checked: schema.default === true });
  else if (Array.isArray(schema.enum)) {
    input = h(
      "select",
      {},
      schema.enum.map((v) => h("option", { value: String(v), selected: v === schema.default }, String(v))),
    );
  } else if (schema.type === "integer" || schema.type === "number") {
    input = numberInput({
      step: schema.type === "integer" ? 1 : "any",
      inputmode: schema.type === "integer" ? "numeric" : "decimal",
      min: schema.minimum ?? schema.exclusiveMinimum,
      max: schema.maximum ?? schema.exclusiveMaximum,
      value: schema.default ?? "",
    });
  } else input = h("input", { type: "text", value: schema.default ?? "" });
  input.dataset.type = schema.type || "string";
  const facts = [
    schema.type === "integer" ? "whole number" : schema.type,
    bound(schema),
    schema.default !== undefined ? `default ${schema.default}` : null,
  ];
  const help = [schema.description, facts.filter(Boolean).join(", ")].filter(Boolean).join(" \u2014 ");
  return field({ label: name, path: `params.${name}`, input, help });
}

/** The value of one input for the spec; undefined leaves the field out (the API's default). */
export function valueOf(input) {
  if (input.type === "checkbox") return input.checked;
  if (input.validity?.badInput) throw new FieldProblem(input.dataset.field, "enter a number");
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const type = input.dataset.type;
  if (input.type === "number" || type === "integer" || type === "number") {
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  }
  return raw;
}

/** A value the browser itself cannot read (e.g. letters in a number field). */
export class FieldProblem extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}
