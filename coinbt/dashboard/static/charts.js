// SVG line charts drawn by hand: axes with "nice" ticks, an optional filled area, a dashed
// baseline, and a crosshair with a tooltip that several charts can share (equity over drawdown).

const NS = "http://www.w3.org/2000/svg";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MINUTE = 60e3;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MONTH = 30 * DAY;
const TIME_STEPS = [
  MINUTE,
  5 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
  MONTH,
  3 * MONTH,
  6 * MONTH,
  12 * MONTH,
  24 * MONTH,
  60 * MONTH,
];
export const PALETTE = [
  "#5b9dff",
  "#f0883e",
  "#3fb950",
  "#db61a2",
  "#a371f7",
  "#e3b341",
  "#39c5cf",
  "#ff7b72",
];

let serial = 0;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return step * magnitude;
}

/** Round ticks covering [min, max]: {min, max, ticks}. */
function niceTicks(min, max, count = 5) {
  if (!(max > min)) {
    const pad = Math.abs(min) * 0.05 || 1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, count);
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0, v = lo; v <= hi + step / 2 && i < 50; i += 1, v = lo + i * step)
    ticks.push(Number(v.toPrecision(12)));
  return { min: lo, max: hi, ticks };
}

/** Ticks for a log10 axis over [min, max] (log10 values): 1-2-5 steps, or decades if wide. */
function logTicks(min, max) {
  if (!(max > min)) {
    min -= 0.5;
    max += 0.5;
  }
  const wide = max - min > 3;
  const ticks = [];
  for (let e = Math.floor(min); e <= Math.ceil(max) && ticks.length < 40; e += 1) {
    for (const m of wide ? [1] : [1, 2, 5]) {
      const t = e + Math.log10(m);
      if (t >= min - 1e-9 && t <= max + 1e-9) ticks.push(t);
    }
  }
  if (ticks.length < 2) return { min, max, ticks: [min, max] };
  return { min, max, ticks };
}

const log10 = (v) => (v > 0 ? Math.log10(v) : null);

const pad2 = (n) => String(n).padStart(2, "0");

/** Tick positions (epoch ms, UTC calendar-aligned) and a label for each. */
function timeTicks(min, max, count = 6) {
  const span = Math.max(1, max - min);
  const step =
    TIME_STEPS.find((candidate) => span / candidate <= count) ??
    60 * MONTH * Math.ceil(span / (60 * MONTH * count));
  const ticks = [];
  if (step >= MONTH) {
    const months = Math.round(step / MONTH);
    const first = new Date(min);
    let index = first.getUTCFullYear() * 12 + first.getUTCMonth();
    const at = (i) => Date.UTC(Math.floor(i / 12), i % 12, 1);
    while (at(index) < min || index % months !== 0) index += 1;
    for (; at(index) <= max && ticks.length < 40; index += months) {
      const d = new Date(at(index));
      const label =
        months >= 12 || d.getUTCMonth() === 0 ? String(d.getUTCFullYear()) : MONTHS[d.getUTCMonth()];
      ticks.push({
        value: at(index),
        label: months < 12 && d.getUTCMonth() === 0 ? `${d.getUTCFullYear()}` : label,
      });
    }
    return ticks;
  }
  for (let v = Math.ceil(min / step) * step; v <= max && ticks.length < 40; v += step) {
    const d = new Date(v);
    let label;
    if (step >= DAY) label = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    else if (v % DAY === 0) label = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    else label = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    ticks.push({ value: v, label });
  }
  return ticks;
}

function nearest(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

function pathOf(xs, ys, sx, sy) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i += 1) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${sx(xs[i]).toFixed(1)},${sy(y).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * A line chart of one or more series sharing an x axis of epoch milliseconds.
 *
 * options: width, height, series [{xs, ys, color, label, fill: "area" | "drawdown" | null}],
 * yFormat (tick labels), tipFormat (tooltip values), baseline (a dashed horizontal line),
 * yMax (fixes the top, e.g. 0 for drawdowns), xAxis (draw time labels), title (accessible name),
 * onPointer(x | null) (to move linked charts' crosshairs), log (a log10 y axis; values <= 0 are
 * left out), markers [{x, y, color, shape: "up" | "down" | "x", title, data: {...}}] (drawn on top).
 */
export function lineChart(options) {
  if (options.log) return lineChart(logOptions(options));
  const { width, height, series, yFormat, tipFormat = yFormat, baseline = null, xAxis = true } = options;
  const margin = { top: 10, right: 14, bottom: xAxis ? 24 : 8, left: 68 };
  const plotW = Math.max(10, width - margin.left - margin.right);
  const plotH = Math.max(10, height - margin.top - margin.bottom);
  let xMin = options.xMin ?? Infinity;
  let xMax = options.xMax ?? -Infinity;
  let yMin = Infinity;
  let yMax = -Infinity;
  for (const line of series) {
    if (options.xMin === undefined && line.xs.length) xMin = Math.min(xMin, line.xs[0]);
    if (options.xMax === undefined && line.xs.length) xMax = Math.max(xMax, line.xs[line.xs.length - 1]);
    for (const y of line.ys) {
      if (y === null || !Number.isFinite(y)) continue;
      if (y < yMin) yMin = y;
      if (y > yMax) yMax = y;
    }
  }
  if (!Number.isFinite(xMin) || !Number.isFinite(xMax)) {
    xMin = 0;
    xMax = 1;
  }
  if (xMax === xMin) xMax = xMin + 1;
  if (!Number.isFinite(yMin)) {
    yMin = 0;
    yMax = 1;
  }
  if (baseline !== null) {
    yMin = Math.min(yMin, baseline);
    yMax = Math.max(yMax, baseline);
  }
  if (options.yMax !== undefined) yMax = options.yMax;
  const y = options.logAxis ? logTicks(yMin, yMax) : niceTicks(yMin, yMax, Math.max(2, Math.round(plotH / 48)));
  if (options.yMax !== undefined) {
    y.max = options.yMax;
    y.ticks = y.ticks.filter((t) => t <= options.yMax + 1e-12);
  }
  const sx = (v) => margin.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const sy = (v) => margin.top + (1 - (v - y.min) / (y.max - y.min || 1)) * plotH;

  const root = s("svg", {
    class: `chart-svg ${options.className || ""}`.trim(),
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": options.title || "chart",
    "data-scale": options.logAxis ? "log" : "linear",
  });
  const defs = s("defs");
  root.append(defs);
  const grid = s("g", { class: "grid" });
  for (const tick of y.ticks) {
    const py = sy(tick).toFixed(1);
    grid.append(s("line", { x1: margin.left, x2: margin.left + plotW, y1: py, y2: py }));
    const label = s("text", {
      x: margin.left - 8,
      y: py,
      class: "tick y",
      "text-anchor": "end",
      "dominant-baseline": "middle",
    });
    label.textContent = yFormat(tick);
    grid.append(label);
  }
  if (xAxis) {
    for (const tick of timeTicks(xMin, xMax, Math.max(2, Math.floor(plotW / 90)))) {
      const px = sx(tick.value).toFixed(1);
      grid.append(s("line", { x1: px, x2: px, y1: margin.top, y2: margin.top + plotH, class: "v" }));
      const label = s("text", { x: px, y: height - 6, class: "tick x", "text-anchor": "middle" });
      label.textContent = tick.label;
      grid.append(label);
    }
  }
  root.append(grid);
  if (baseline !== null) {
    const py = sy(baseline).toFixed(1);
    root.append(s("line", { class: "baseline", x1: margin.left, x2: margin.left + plotW, y1: py, y2: py }));
  }
  for (const line of series) {
    const d = pathOf(line.xs, line.ys, sx, sy);
    if (!d) continue;
    if (line.fill) {
      serial += 1;
      const id = `fill-${serial}`;
      const topDown = line.fill !== "drawdown";
      defs.append(
        s(
          "linearGradient",
          { id, x1: 0, x2: 0, y1: 0, y2: 1 },
          s("stop", { offset: "0%", "stop-color": line.color, "stop-opacity": topDown ? 0.35 : 0.05 }),
          s("stop", { offset: "100%", "stop-color": line.color, "stop-opacity": topDown ? 0.02 : 0.45 }),
        ),
      );
      const base = line.fill === "drawdown" ? sy(0) : margin.top + plotH;
      const first = sx(line.xs[0]).toFixed(1);
      const last = sx(line.xs[line.xs.length - 1]).toFixed(1);
      root.append(
        s("path", {
          class: "area",
          d: `${d}L${last},${base.toFixed(1)}L${first},${base.toFixed(1)}Z`,
          fill: `url(#${id})`,
        }),
      );
    }
    root.append(
      s("path", {
        class: `series${line.dashed ? " dashed" : ""}`,
        d,
        stroke: line.color,
        "data-label": line.label || "",
      }),
    );
  }
  const marks = s("g", { class: "markers" });
  for (const mark of options.markers || []) {
    const mx = sx(mark.x);
    const my = sy(mark.y);
    if (!Number.isFinite(mx) || !Number.isFinite(my)) continue;
    const r = 5;
    const d =
      mark.shape === "down"
        ? `M${mx - r},${my - r * 1.6}L${mx + r},${my - r * 1.6}L${mx},${my}Z`
        : mark.shape === "x"
          ? `M${mx - r},${my - r}L${mx + r},${my + r}M${mx - r},${my + r}L${mx + r},${my - r}`
          : `M${mx - r},${my + r * 1.6}L${mx + r},${my + r * 1.6}L${mx},${my}Z`;
    const attrs = { class: `marker ${mark.shape || "up"}`, d, fill: mark.color, stroke: mark.color };
    attrs["data-cx"] = mx.toFixed(1);
    attrs["data-cy"] = my.toFixed(1);
    for (const [key, value] of Object.entries(mark.data || {})) attrs[`data-${key}`] = value;
    const el = s("path", attrs);
    if (mark.title) {
      const title = s("title");
      title.textContent = mark.title;
      el.append(title);
    }
    marks.append(el);
  }
  root.append(marks);

  const cross = s("line", {
    class: "crosshair",
    y1: margin.top,
    y2: margin.top + plotH,
    visibility: "hidden",
  });
  const dots = series.map((line) =>
    s("circle", { r: 3.5, fill: line.color, class: "dot", visibility: "hidden" }),
  );
  root.append(cross, ...dots);
  const hit = s("rect", { x: margin.left, y: 0, width: plotW, height, fill: "transparent", class: "hit" });
  root.append(hit);

  const el = document.createElement("div");
  el.className = "chart";
  el.style.height = `${height}px`;
  const tip = document.createElement("div");
  tip.className = "chart-tip";
  tip.hidden = true;
  el.append(root, tip);

  function showAt(xValue) {
    const px = sx(Math.min(xMax, Math.max(xMin, xValue)));
    cross.setAttribute("x1", px);
    cross.setAttribute("x2", px);
    cross.setAttribute("visibility", "visible");
    const rows = [];
    series.forEach((line, i) => {
      if (!line.xs.length) return;
      const at = nearest(line.xs, xValue);
      const value = line.ys[at];
      if (value === null || !Number.isFinite(value)) return;
      dots[i].setAttribute("cx", sx(line.xs[at]));
      dots[i].setAttribute("cy", sy(value));
      dots[i].setAttribute("visibility", "visible");
      rows.push({ line, value, x: line.xs[at] });
    });
    if (options.tip === false || !rows.length) return;
    tip.replaceChildren();
    const head = document.createElement("div");
    head.className = "tip-head";
    head.textContent = (options.xFormat || String)(rows[0].x);
    tip.append(head);
    for (const row of rows) {
      const item = document.createElement("div");
      item.className = "tip-row";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = row.line.color;
      const name = document.createElement("span");
      name.textContent = row.line.label || "";
      const value = document.createElement("b");
      value.textContent = tipFormat(row.value);
      item.append(swatch, name, value);
      tip.append(item);
    }
    tip.hidden = false;
    const left = px + 12 + tip.offsetWidth > width ? px - 12 - tip.offsetWidth : px + 12;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${margin.top}px`;
  }

  function hide() {
    cross.setAttribute("visibility", "hidden");
    for (const dot of dots) dot.setAttribute("visibility", "hidden");
    tip.hidden = true;
  }

  const pointer = options.onPointer || ((x) => (x === null ? hide() : showAt(x)));
  hit.addEventListener("pointermove", (event) => {
    const box = root.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    pointer(xMin + ((px - margin.left) / plotW) * (xMax - xMin));
  });
  hit.addEventListener("pointerleave", () => pointer(null));
  return { el, showAt, hide, xMin, xMax };
}

/** The options of a log-scale chart drawn by the linear code on log10 values. */
function logOptions(options) {
  const { yFormat, tipFormat = yFormat } = options;
  return {
    ...options,
    log: false,
    logAxis: true,
    series: options.series.map((line) => ({ ...line, ys: line.ys.map(log10), fill: null })),
    markers: (options.markers || []).map((m) => ({ ...m, y: log10(m.y) })),
    baseline: options.baseline === null || options.baseline === undefined ? null : log10(options.baseline),
    yFormat: (t) => yFormat(10 ** t),
    tipFormat: (t) => tipFormat(10 ** t),
  };
}

/** Charts whose crosshairs move together. */
export function linked(...charts) {
  return (x) => {
    for (const chart of charts) {
      if (x === null) chart.hide();
      else chart.showAt(x);
    }
  };
}

/** A small line without axes; green when it ends above where it started, red below. */
export function sparkline(ys, { width = 80, height = 26, label = "equity curve" } = {}) {
  const root = s("svg", {
    class: "spark",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
  });
  if (!ys || ys.length < 2) return root;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of ys) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi - lo || 1;
  const sx = (i) => 1 + (i / (ys.length - 1)) * (width - 2);
  const sy = (v) => 2 + (1 - (v - lo) / span) * (height - 4);
  const xs = ys.map((_, i) => i);
  const up = ys[ys.length - 1] >= ys[0];
  const base = sy(ys[0]).toFixed(1);
  root.append(s("line", { class: "spark-base", x1: 0, x2: width, y1: base, y2: base }));
  root.append(s("path", { class: `spark-line ${up ? "gain" : "loss"}`, d: pathOf(xs, ys, sx, sy) }));
  return root;
}
