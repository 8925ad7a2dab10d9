// Optimistic sends with a retry queue that survives a reload (DESIGN.md "Delivery guarantees").
// A send is shown at once as pending, written to IndexedDB, and posted with an Idempotency-Key
// (its client_msg_id): retrying it any number of times, across reloads and reconnects, creates
// the message once. 409 means the first try is still in flight: try again shortly. A refusal
// (4xx) marks it failed, with Retry and Discard; a network failure keeps it queued.
import { signal, idbCreateStore, idbSet, idbDel, idbEntries } from "./deps.js";
import { request, ApiError, NetworkError, hasCsrfToken } from "./api.js";
import * as state from "./state.js";
import { threadModels, channelModels, seenClientIds } from "./store.js";

export const outbox = signal(new Map()); // client_msg_id -> entry
let store = null;
const inflight = new Set();
const timers = new Map();

function db() {
  if (!store) store = idbCreateStore("spacechat-outbox", "entries");
  return store;
}

function put(entry) {
  const next = new Map(outbox.value);
  next.set(entry.key, entry);
  outbox.value = next;
}

function drop(key) {
  const next = new Map(outbox.value);
  next.delete(key);
  outbox.value = next;
  clearTimeout(timers.get(key));
  timers.delete(key);
  idbDel(key, db()).catch(() => {});
}

function newKey() {
  if (crypto.randomUUID) return "web-" + crypto.randomUUID();
  return "web-" + Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The pending sends of a thread (or, with threadId null, the new threads of a channel),
 * without those the server already shows. */
export function pendingFor({ threadId = null, channelId = null }) {
  const shown = threadId ? threadModels.get(threadId) : null;
  const out = [];
  for (const entry of outbox.value.values()) {
    if (threadId ? entry.thread_id !== threadId : entry.thread_id !== null || entry.channel_id !== channelId) continue;
    if (seenClientIds.has(entry.key) || (shown && shown.byClientId.has(entry.key))) continue;
    out.push(entry);
  }
  return out.sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** Load the queue of the signed-in user and send what is in it. */
export async function restore() {
  const userId = state.myId();
  let rows = [];
  try {
    rows = await idbEntries(db());
  } catch {
    return; // no IndexedDB (private mode): sends still work, they just do not survive a reload
  }
  const next = new Map(outbox.value);
  for (const [key, entry] of rows) {
    if (entry.user_id === userId && !next.has(key)) next.set(key, { ...entry, status: "queued" });
  }
  outbox.value = next;
  flush();
}

/** Sign-out from memory; the stored queue stays for the same person's next sign-in (a session
 * that expired must not lose what was typed). */
export function clearForSignOut() {
  outbox.value = new Map();
}

/** An explicit sign-out on this device also drops that person's unsent messages. */
export async function forgetStored(userId) {
  try {
    for (const [key, entry] of await idbEntries(db())) if (entry.user_id === userId) await idbDel(key, db());
  } catch {
    // nothing stored
  }
}

export async function send({ channelId, threadId = null, text, attachments = [] }) {
  const entry = {
    key: newKey(),
    user_id: state.myId(),
    channel_id: channelId,
    thread_id: threadId,
    text,
    attachments, // [{id, filename, content_type, size, url}]
    created_at: new Date().toISOString(),
    status: "sending",
    error: null,
    tries: 0,
  };
  put(entry);
  try {
    await idbSet(entry.key, entry, db());
  } catch {
    // not persisted; still sent below
  }
  attempt(entry.key);
  return entry;
}

export function flush() {
  for (const entry of outbox.value.values()) {
    if (entry.status !== "failed") attempt(entry.key);
  }
}

export function retry(key) {
  const entry = outbox.value.get(key);
  if (!entry) return;
  put({ ...entry, status: "sending", error: null, tries: 0 });
  attempt(key);
}

export function discard(key) {
  drop(key);
}

function later(key, ms) {
  clearTimeout(timers.get(key));
  timers.set(
    key,
    setTimeout(() => attempt(key), ms),
  );
}

async function attempt(key) {
  const entry = outbox.value.get(key);
  if (!entry || inflight.has(key)) return;
  if (navigator.onLine === false || !hasCsrfToken()) {
    // Offline, or opened offline and not yet signed back in: flush() runs once the app is.
    put({ ...entry, status: "queued" });
    return;
  }
  inflight.add(key);
  put({ ...entry, status: "sending", tries: entry.tries + 1 });
  const path = entry.thread_id
    ? `/v1/threads/${encodeURIComponent(entry.thread_id)}/messages`
    : `/v1/channels/${encodeURIComponent(entry.channel_id)}/messages`;
  const body = { text: entry.text, format: "markdown", attachments: entry.attachments.map((a) => a.id), client_msg_id: key };
  try {
    const { data } = await request("POST", path, { json: body, headers: { "Idempotency-Key": key } });
    confirm(key, data);
  } catch (error) {
    const current = outbox.value.get(key);
    if (!current) return;
    if (error instanceof NetworkError) {
      put({ ...current, status: "queued" }); // resent on reconnect (realtime ready) or `online`
      later(key, Math.min(15000, 1000 * 2 ** Math.min(current.tries, 4)));
    } else if (error instanceof ApiError && (error.status === 409 || error.status === 429 || error.status >= 500)) {
      put({ ...current, status: "sending" });
      later(key, error.status === 409 ? 500 : Math.min(15000, 1000 * 2 ** Math.min(current.tries, 4)));
    } else if (error instanceof ApiError && (error.status === 401 || error.code === "csrf_failed")) {
      put({ ...current, status: "queued" }); // sent after signing in again
    } else {
      put({ ...current, status: "failed", error: error.message || String(error) });
    }
  } finally {
    inflight.delete(key);
  }
}

function confirm(key, data) {
  const { message, thread } = data;
  seenClientIds.add(key);
  const model = threadModels.get(message.thread_id);
  if (model && model.upsert(message, { live: true })) model.bump();
  const channelModel = channelModels.get(message.channel_id);
  if (channelModel) {
    if (channelModel.upsertThread(thread)) channelModel.bump();
  }
  drop(key);
}
