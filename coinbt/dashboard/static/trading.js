// Direction, stops and sizing for the submit form (DESIGN.md section 5b; docs/engine.md).
// read() returns only the fields that differ from the defaults, so a plain long all-in spec
// keeps its old shape; the API's field errors ("sl_stop", "size", ...) land on these inputs.

import { h } from "./dom.js";
import { field, numberInput, valueOf } from "./fields.js";

const SIZE_TYPES = [
  ["all", "all the cash"],
  ["percent", "percent of cash (0-1)"],
  ["value", "cash amount"],
  ["amount", "units"],
  ["target_percent", "target percent of equity (0-1)"],
];

/** { element, read() }: the "Direction, stops and sizing" fieldset. */
export function tradingFields() {
  const direction = h(
    "select",
    {},
    h("option", { value: "long" }, "long"),
    h("option", { value: "short" }, "short"),
    h("option", { value: "both" }, "both (stop and reverse)"),
  );
  const sl = numberInput({ min: 0, step: "any", placeholder: "none" });
  const tp = numberInput({ min: 0, step: "any", placeholder: "none" });
  const trail = h("input", { type: "checkbox" });
  const sizeType = h(
    "select",
    {},
    SIZE_TYPES.map(([value, label]) => h("option", { value }, label)),
  );
  const size = numberInput({ min: 0, step: "any", placeholder: "-" });
  size.disabled = true;
  sizeType.addEventListener("change", () => {
    size.disabled = sizeType.value === "all";
    if (size.disabled) size.value = "";
  });
  const element = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "Direction, stops and sizing"),
    h(
      "div",
      { class: "row2" },
      field({ label: "Direction", path: "direction", input: direction }),
      field({ label: "Stop loss (fraction)", path: "sl_stop", input: sl, help: "e.g. 0.02" }),
    ),
    h(
      "div",
      { class: "row2" },
      field({ label: "Take profit (fraction)", path: "tp_stop", input: tp, help: "e.g. 0.04" }),
      field({ label: "Trailing stop loss", path: "sl_trail", input: trail }),
    ),
    h(
      "div",
      { class: "row2" },
      field({ label: "Size", path: "size_type", input: sizeType }),
      field({ label: "Size value", path: "size", input: size }),
    ),
  );

  function read() {
    const out = {};
    if (direction.value !== "long") out.direction = direction.value;
    const stop = valueOf(sl);
    if (stop !== undefined) out.sl_stop = stop;
    const take = valueOf(tp);
    if (take !== undefined) out.tp_stop = take;
    if (trail.checked) out.sl_trail = true;
    if (sizeType.value !== "all") out.size_type = sizeType.value;
    const amount = valueOf(size);
    if (amount !== undefined) out.size = amount;
    return out;
  }

  return { element, read };
}
