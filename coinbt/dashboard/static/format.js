// Number, money, percentage, time and duration formatting shared by every view.

const LOCALE = "en-US";
const MINUS = "\u2212";
const cache = new Map();

function fmt(min, max, extra = {}) {
  const key = `${min}/${max}/${JSON.stringify(extra)}`;
  if (!cache.has(key)) {
    cache.set(
      key,
      new Intl.NumberFormat(LOCALE, { minimumFractionDigits: min, maximumFractionDigits: max, ...extra }),
    );
  }
  return cache.get(key);
}

const minus = (text) => text.replace("-", MINUS);
const missing = (x) => x === null || x === undefined || (typeof x === "number" && !Number.isFinite(x));
const DASH = "\u2014";

export function int(x) {
  return missing(x) ? DASH : minus(fmt(0, 0).format(x));
}

export function num(x, digits = 2) {
  return missing(x) ? DASH : minus(fmt(digits, digits).format(x));
}

/** A quantity with a fixed number of decimals for its size (so a column lines up): 108.7368. */
export function qty(x) {
  if (missing(x)) return DASH;
  if (x === 0) return "0";
  const abs = Math.abs(x);
  const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : 8;
  return minus(fmt(digits, digits).format(x));
}

export function money(x) {
  return missing(x) ? DASH : minus(fmt(2, 2).format(x));
}

/** A price: 2 decimals from 1 up, more below (0.000123). */
export function price(x) {
  if (missing(x)) return DASH;
  return minus(fmt(2, Math.abs(x) >= 1 ? 2 : 6).format(x));
}

/** 0.1234 -> "12.34%"; signed adds "+" to gains. */
export function pct(x, { digits = 2, signed = false } = {}) {
  if (missing(x)) return DASH;
  const text = fmt(digits, digits, signed ? { signDisplay: "exceptZero" } : {}).format(x * 100);
  return `${minus(text)}%`;
}

/** "gain", "loss" or "" for colouring a signed number. */
export function tone(x) {
  if (missing(x) || x === 0) return "";
  return x > 0 ? "gain" : "loss";
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

function localParts(date) {
  return {
    date: `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`,
    time: `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`,
  };
}

/** An ISO timestamp in local time as {date: "2024-01-31", time: "14:05:09"}. */
export function timeParts(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? { date: "", time: iso || DASH } : localParts(date);
}

/** An ISO timestamp in local time: "2024-01-31 14:05:09". */
export function time(iso) {
  if (!iso) return DASH;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const parts = localParts(date);
  return `${parts.date} ${parts.time}`;
}

/** Epoch milliseconds as a UTC date and time (market data is in UTC): "2024-01-31 14:05". */
export function utc(ms) {
  if (missing(ms)) return DASH;
  const d = new Date(ms);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`
  );
}

/** Milliseconds as "850 ms", "12.3 s", "4m 05s", "2h 03m". */
export function duration(ms) {
  if (missing(ms) || ms < 0) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

export function between(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return new Date(endIso).getTime() - new Date(startIso).getTime();
}

export function shortId(id) {
  return id ? id.slice(0, 8) : DASH;
}

export function shortHash(hash) {
  return hash ? `${hash.slice(0, 10)}\u2026` : DASH;
}

/** A strategy's parameters as "fast 24 · slow 120". */
export function params(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return "no parameters";
  return entries
    .map(([k, v]) => `${k} ${typeof v === "number" ? String(v) : JSON.stringify(v)}`)
    .join(" \u00b7 ");
}

/** Where a task's bars come from, as a title and a detail line. */
export function dataSource(data) {
  if (data?.synthetic) {
    const s = data.synthetic;
    return { title: `synthetic \u00b7 ${s.interval}`, detail: `${int(s.bars)} bars \u00b7 seed ${s.seed}` };
  }
  if (data?.dataset) {
    const range =
      data.start || data.end
        ? `${data.start ? data.start.slice(0, 16).replace("T", " ") : "start"} \u2192 ${
            data.end ? data.end.slice(0, 16).replace("T", " ") : "end"
          }`
        : "all bars";
    return { title: data.dataset, detail: range };
  }
  return { title: DASH, detail: "" };
}
