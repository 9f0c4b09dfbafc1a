// Requests to the coinbt API: JSON in and out, the API token from session storage, and one shared
// token prompt when the server answers 401 (the request is then retried with the new token).

const TOKEN_KEY = "coinbt.token";

export class ApiError extends Error {
  constructor(status, error, headers) {
    super(error?.message || `the server answered ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error?.code ?? null;
    this.details = error?.details ?? null;
    this.retryAfter = headers?.get("Retry-After") ?? null;
  }

  /** [{field, message}] for an invalid spec or parameter; [] otherwise. */
  get fieldErrors() {
    if (!Array.isArray(this.details)) return [];
    return this.details.filter((d) => d && typeof d.field === "string" && typeof d.message === "string");
  }
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

let prompt = async () => {
  throw new Error("this server needs an API token");
};
let asking = null;

/** `ask(message) -> Promise<token>`: shows the token form; set once by the app. */
export function setTokenPrompt(ask) {
  prompt = ask;
}

async function needToken(sent, message) {
  if (token() !== sent) return; // another request got a new token meanwhile: just retry
  if (!asking) {
    asking = prompt(message)
      .then((value) => sessionStorage.setItem(TOKEN_KEY, value))
      .finally(() => {
        asking = null;
      });
  }
  await asking;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status line
  }
  const error = body?.error ?? { message: `${response.status} ${response.statusText}`.trim() };
  return new ApiError(response.status, error, response.headers);
}

/** fetch() with the token; on 401 asks for the token (once for all requests) and retries.
 * `body` is sent as JSON, `raw` (a File or Blob) as it is. */
export async function request(method, path, { body, raw, headers = {}, signal } = {}) {
  for (;;) {
    const sent = token();
    const init = { method, signal, cache: "no-store", headers: { Accept: "application/json", ...headers } };
    if (sent) init.headers.Authorization = `Bearer ${sent}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    } else if (raw !== undefined) {
      init.body = raw; // a File or Blob as it is (give its Content-Type in headers)
    }
    const response = await fetch(path, init);
    if (response.status !== 401) return response;
    const error = await errorOf(response);
    await needToken(sent, sent ? error.message : null);
  }
}

/** The parsed JSON body of a 2xx answer; ApiError for any other. */
export async function json(method, path, options) {
  const response = await request(method, path, options);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export const get = (path, options) => json("GET", path, options);

/** "?a=1&b=x" from an object, leaving out null, undefined and "". */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A random Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Download `path` (with the token) as a file named `filename`; ApiError for an error answer. */
export async function download(path, filename) {
  const response = await request("GET", path, { headers: { Accept: "*/*" } });
  if (!response.ok) throw await errorOf(response);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
