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
