// The one way the UI talks to /v1: JSON in and out, the CSRF header on every cookie-authenticated
// write (docs/permissions.md), and one error type carrying the server's {error: {code, message}}.

let csrfToken = null;
let onUnauthorized = () => {};

export function setCsrfToken(token) {
  csrfToken = token;
}

export const hasCsrfToken = () => Boolean(csrfToken);

export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.details = error.details;
    this.headers = headers;
  }
}

/** The request never reached the server (offline, server down, connection reset). */
export class NetworkError extends Error {
  constructor(cause) {
    super("the server cannot be reached");
    this.cause = cause;
  }
}

export async function request(method, path, { json, body, headers = {}, signal, quiet401 = false } = {}) {
  const sent = { ...headers };
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  if (method !== "GET" && method !== "HEAD" && csrfToken) sent["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, signal, credentials: "same-origin", cache: "no-store" });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new NetworkError(error);
  }
  let data = null;
  if (response.status !== 204 && (response.headers.get("content-type") || "").includes("json")) {
    try {
      data = await response.json();
    } catch (error) {
      throw new NetworkError(error); // a body cut by a dropped connection
    }
  }
  if (!response.ok) {
    const failure = new ApiError(response.status, data, response.headers);
    if (response.status === 401 && !quiet401) onUnauthorized(failure);
    throw failure;
  }
  return { data, status: response.status, headers: response.headers };
}

export const get = async (path, options) => (await request("GET", path, options)).data;
export const post = async (path, json, options = {}) => (await request("POST", path, { ...options, json })).data;
export const del = async (path, options) => (await request("DELETE", path, options)).data;
export const patch = async (path, json, options = {}) => (await request("PATCH", path, { ...options, json })).data;

/** A fresh Idempotency-Key (docs/api.md: 1-128 of letters, digits and . _ : ~ -). */
export function newKey(prefix = "web") {
  if (crypto.randomUUID) return `${prefix}-${crypto.randomUUID()}`;
  return `${prefix}-` + Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A POST that may be sent again with the same Idempotency-Key until the server has answered:
 * a dropped connection or a 409 `idempotency_key_in_use` (the first try still in flight) is
 * retried, so one act counts once however often it travels. */
export async function postOnce(path, json, { key = newKey(), tries = 4 } = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request("POST", path, { json, headers: { "Idempotency-Key": key } });
    } catch (error) {
      const again = error instanceof NetworkError || (error instanceof ApiError && error.code === "idempotency_key_in_use");
      if (!again || attempt + 1 >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 400 * 2 ** attempt));
    }
  }
}
