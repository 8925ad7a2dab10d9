// Shared view helpers: the htm binding, time and size formatting, small icons.
import { h, htm } from "../deps.js";
import { render as renderMarkdown } from "../markdown.js";

export const html = htm.bind(h);

/** Sanitized Markdown (markdown.js) in a div, or a span when `inline`. */
export function Markdown({ text, inline = false, className = "" }) {
  if (!text) return null;
  const tag = inline ? "span" : "div";
  return html`<${tag} class=${"md " + className} dangerouslySetInnerHTML=${{ __html: renderMarkdown(text) }}><//>`;
}

// Formatters are made on first use (building one costs milliseconds) and what they produce is
// kept: a scrolling list formats the same few timestamps again and again.
const formats = {};
const formatted = new Map();

function format(kind, options, iso) {
  const key = kind + iso;
  let text = formatted.get(key);
  if (text === undefined) {
    formats[kind] ||= new Intl.DateTimeFormat(undefined, options);
    text = formats[kind].format(new Date(iso));
    formatted.set(key, text);
    if (formatted.size > 5000) formatted.delete(formatted.keys().next().value);
  }
  return text;
}

let today = "";
let todayUntil = 0;

export function shortTime(iso) {
  if (!iso) return "";
  const now = Date.now();
  if (now > todayUntil) {
    const date = new Date(now);
    today = date.toDateString();
    todayUntil = new Date(date.getFullYear(), date.getMonth(), date.getDate() + 1).getTime();
    formatted.clear();
  }
  return new Date(iso).toDateString() === today
    ? format("time", { hour: "2-digit", minute: "2-digit" }, iso)
    : format("day", { month: "short", day: "numeric" }, iso);
}

export const fullTime = (iso) => (iso ? format("full", { dateStyle: "medium", timeStyle: "short" }, iso) : "");

export function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const PATHS = {
  hash: "M4 9h16M4 15h16M10 3 8 21M16 3l-2 18",
  lock: "M6 11h12v10H6zM8 11V7a4 4 0 0 1 8 0v4",
  menu: "M3 6h18M3 12h18M3 18h18",
  back: "M15 18l-6-6 6-6",
  plus: "M12 5v14M5 12h14",
  clip: "M21 12.5l-8.5 8.5a5 5 0 0 1-7-7L14 5.5a3.5 3.5 0 0 1 5 5L10.5 19a2 2 0 0 1-3-3L15 8.5",
  send: "M4 12l16-8-6 16-2-7z",
  link: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  bot: "M5 9h14v10H5zM12 5v4M9 14h.01M15 14h.01",
  retry: "M4 12a8 8 0 1 0 3-6.2M4 4v5h5",
  close: "M6 6l12 12M18 6L6 18",
  mic: "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3",
  play: "M7 4l13 8-13 8z",
  pause: "M7 4h3v16H7zM14 4h3v16h-3z",
  chart: "M4 20V10M10 20V4M16 20v-7M22 20H2",
  tasks: "M9 6h11M9 12h11M9 18h11M4 6l1 1 2-2M4 12l1 1 2-2M4 18l1 1 2-2",
  alert: "M12 3l10 18H2zM12 10v4M12 17h.01",
  pulse: "M2 12h4l3-8 4 16 3-8h6",
  list: "M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01",
  poll: "M4 20V12M10 20V4M16 20v-8M22 20H2",
  offline: "M2 2l20 20M8.5 16.5a5 5 0 0 1 7 0M5 12.5a10 10 0 0 1 5.2-2.8M19 12.5a10 10 0 0 0-2.5-1.8M2 8.8a15 15 0 0 1 4.2-2.7M22 8.8A15 15 0 0 0 10.7 5M12 20h.01",
  gear: "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19 12l2-1-2-4-2 .5-1.5-1.2L15 4h-4l-.5 2.3L9 7.5 7 7 5 11l2 1-.1 1.5L5 15l2 4 2-.5 1.5 1.2.5 2.3h4l.5-2.3 1.5-1.2 2 .5 2-4-2-1z",
};

export function Icon({ name, label }) {
  return html`<svg class="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden=${label ? "false" : "true"}
    role=${label ? "img" : null} aria-label=${label || null} focusable="false">
    <path d=${PATHS[name]} fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" />
  </svg>`;
}

export function Spinner({ label = "Loading" }) {
  return html`<span class="spinner" role="progressbar" aria-label=${label}></span>`;
}

export function ErrorNote({ error, onRetry }) {
  if (!error) return null;
  return html`<div class="error-note" role="alert">
    <span>${error.message || String(error)}</span>
    ${onRetry && html`<button type="button" class="link" onClick=${onRetry}>Try again</button>`}
  </div>`;
}

/** A view shown from this device's copy (cache.js) while the server cannot be reached. */
export function StaleNote({ stale }) {
  if (!stale) return null;
  return html`<p class="stale-note" role="status" data-stale="true">
    <${Icon} name="offline" />
    <span>Offline: showing what this device saved${stale.savedAt ? ` at ${fullTime(stale.savedAt)}` : ""}. It may be out of date.</span>
  </p>`;
}
