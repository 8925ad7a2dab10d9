// Presence and typing (docs/notifications.md): who is active (from `GET /v1/presence`, then
// `presence.changed`), who is typing where (`typing.changed`), and this page's own reports: it
// says `active` while it is shown and used, `away` when hidden for a while or idle, and that its
// person is typing (at most every few seconds, while they type; stopped when they send).
import { signal } from "./deps.js";
import { get, post } from "./api.js";
import * as state from "./state.js";
import { onEvent } from "./realtime.js";

export const presence = signal(new Map()); // user id -> "active" | "away"
export const typists = signal(new Map()); // "channel|thread" -> [user ids], without me

const HIDDEN_AWAY_MS = 30_000; // a hidden page says away after this
const IDLE_AWAY_MS = 10 * 60_000; // a shown page nobody uses says away after this (Slack: 10 min)
const TYPING_EVERY_MS = 3_000;

export const placeKey = (channelId, threadId) => `${channelId}|${threadId || ""}`;
export const statusOf = (userId) => presence.value.get(userId) || "away";

function apply(event) {
  if (event.event_type === "presence.changed") {
    const next = new Map(presence.value);
    for (const [id, status] of Object.entries(event.payload.users)) next.set(id, status);
    presence.value = next;
  } else if (event.event_type === "typing.changed") {
    const key = placeKey(event.channel_id, event.thread_id);
    const others = event.payload.users.filter((id) => id !== state.myId());
    const next = new Map(typists.value);
    if (others.length) next.set(key, others);
    else next.delete(key);
    typists.value = next;
  }
}

async function loadPresence() {
  const answer = await get("/v1/presence");
  presence.value = new Map(Object.entries(answer.users));
}

// --- this page's own presence --------------------------------------------------------------------

let reported = null;
let hiddenTimer = null;
let idleTimer = null;

function report(status) {
  if (status === reported || !state.me.value) return;
  reported = status;
  post("/v1/me/presence", { status }).catch(() => (reported = null));
}

function used() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => report("away"), IDLE_AWAY_MS);
  if (document.visibilityState === "visible") report("active");
}

function visibility() {
  clearTimeout(hiddenTimer);
  if (document.visibilityState === "visible") used();
  else hiddenTimer = setTimeout(() => report("away"), HIDDEN_AWAY_MS);
}

// --- this page's person typing -------------------------------------------------------------------

let typingAt = { key: null, at: 0 };

/** The message box changed: say so at most every few seconds while there is text. */
export function typed(channelId, threadId, text) {
  const key = placeKey(channelId, threadId);
  if (!text.trim()) return stoppedTyping(channelId, threadId);
  const now = Date.now();
  if (typingAt.key === key && now - typingAt.at < TYPING_EVERY_MS) return;
  typingAt = { key, at: now };
  post(`/v1/channels/${encodeURIComponent(channelId)}/typing`, { thread_id: threadId || null, typing: true }).catch(() => {});
}

/** Sent, emptied or left: no longer typing there. */
export function stoppedTyping(channelId, threadId) {
  if (typingAt.key !== placeKey(channelId, threadId)) return;
  typingAt = { key: null, at: 0 };
  post(`/v1/channels/${encodeURIComponent(channelId)}/typing`, { thread_id: threadId || null, typing: false }).catch(() => {});
}

let started = false;
export function startPresence() {
  reported = null;
  loadPresence().catch(() => {});
  visibility();
  if (started) return;
  started = true;
  onEvent(apply);
  document.addEventListener("visibilitychange", visibility);
  for (const name of ["keydown", "pointerdown", "wheel"]) window.addEventListener(name, used, { passive: true, capture: true });
}

export function resetPresence() {
  presence.value = new Map();
  typists.value = new Map();
  reported = null;
}
