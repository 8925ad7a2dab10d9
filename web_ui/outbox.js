// Optimistic sends with an ordered retry queue that survives a reload and is shared by the tabs of
// one browser (DESIGN.md "Delivery guarantees"; issue 18).
//
// A send is shown at once, written to IndexedDB, and posted with an Idempotency-Key (its
// client_msg_id): retrying it any number of times, across reloads, reconnects and tabs, creates
// the message once. Order: each thread is one queue (and each channel one queue for the new
// threads started in it). A queue is sent one message at a time in the order it was written (by
// creation time, never by storage key), the next only once the server has acknowledged the one
// before. A refusal (a 4xx other than 409, 429 and an expired session) stops that queue: the
// message shows *not sent* with Retry and Delete, and those after it wait (held), so nothing is
// ever dropped or reordered. 409 means the first try is still in flight (try again shortly); a
// network failure or a 5xx keeps the queue and tries again later.
//
// Tabs: IndexedDB is the queue's truth, and a queue is sent under a Web Lock
// (navigator.locks) of its name, so one tab at a time sends it, in order, whichever tab wrote
// its messages. Tabs tell each other what changed over a BroadcastChannel, so every tab shows
// the same queue, and a message one tab sent shows as sent in the others at once.
import { signal, idbCreateStore, idbSet, idbDel, idbEntries } from "./deps.js";
import { request, ApiError, NetworkError, hasCsrfToken } from "./api.js";
import * as state from "./state.js";
import { threadModels, channelModels, seenClientIds } from "./store.js";

export const outbox = signal(new Map()); // client_msg_id -> entry (this user's, every tab's)
let store = null;
let persistent = true; // false when IndexedDB is not available (private mode): memory only
const draining = new Set(); // queues this tab is sending
const again = new Set(); // queues asked to send again while being sent
const timers = new Map(); // queue -> retry timer
const tabs = typeof BroadcastChannel === "function" ? new BroadcastChannel("spacechat-outbox") : null;
let lastOrder = 0;

function db() {
  if (!store) store = idbCreateStore("spacechat-outbox", "entries");
  return store;
}

/** The queue a message belongs to: its thread's, or its channel's new threads'. */
export const queueOf = (entry) => (entry.thread_id ? `t:${entry.thread_id}` : `c:${entry.channel_id}`);

/** Creation order: time, made strictly increasing within a tab (two sends in one millisecond). */
function nextOrder() {
  lastOrder = Math.max(Date.now(), lastOrder + 0.001);
  return lastOrder;
}

const byOrder = (a, b) => a.order - b.order || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function show(entry) {
  const next = new Map(outbox.value);
  next.set(entry.key, entry);
  outbox.value = next;
}

function hide(key) {
  if (!outbox.value.has(key)) return;
  const next = new Map(outbox.value);
  next.delete(key);
  outbox.value = next;
}

/** What is stored of an entry (its status only when it is a refusal: the rest is this tab's view). */
function stored(entry) {
  const { status, ...rest } = entry;
  return { ...rest, status: status === "failed" ? "failed" : "queued" };
}

async function save(entry) {
  if (!persistent) return;
  try {
    await idbSet(entry.key, stored(entry), db());
  } catch {
    persistent = false;
  }
}

async function remove(key) {
  if (!persistent) return;
  try {
    await idbDel(key, db());
  } catch {
    // gone already
  }
}

function tell(message) {
  if (tabs) tabs.postMessage(message);
}

/** This user's stored entries (every tab's), oldest first; null without IndexedDB. */
async function storedEntries() {
  if (!persistent) return null;
  try {
    const userId = state.myId();
    const rows = (await idbEntries(db())).map(([, entry]) => entry).filter((entry) => entry.user_id === userId);
    // Entries queued before sends kept their order had only their creation time.
    return rows.map((entry) => (entry.order === undefined ? { ...entry, order: Date.parse(entry.created_at) || 0 } : entry));
  } catch {
    persistent = false;
    return null;
  }
}

/** The pending sends of a thread (or, with threadId null, the new threads of a channel),
 * without those the server already shows, in the order they were written. */
export function pendingFor({ threadId = null, channelId = null }) {
  const shown = threadId ? threadModels.get(threadId) : null;
  const out = [];
  for (const entry of outbox.value.values()) {
    if (threadId ? entry.thread_id !== threadId : entry.thread_id !== null || entry.channel_id !== channelId) continue;
    if (seenClientIds.has(entry.key) || (shown && shown.byClientId.has(entry.key))) continue;
    out.push(entry);
  }
  return out.sort(byOrder);
}

/** Load the queue of the signed-in user (what every tab wrote) and send what is in it. */
export async function restore() {
  const rows = await storedEntries();
  if (rows === null) return flush();
  const next = new Map();
  for (const entry of rows) {
    // The stored status is every tab's (queued or failed); this tab only knows it is sending one.
    const mine = outbox.value.get(entry.key);
    const sending = mine && mine.status === "sending" && entry.status !== "failed";
    next.set(entry.key, sending ? { ...entry, status: "sending" } : entry);
  }
  outbox.value = next;
  markHeld();
  flush();
}

/** Sign-out from memory; the stored queue stays for the same person's next sign-in (a session
 * that expired must not lose what was typed). */
export function clearForSignOut() {
  outbox.value = new Map();
  for (const timer of timers.values()) clearTimeout(timer);
  timers.clear();
}

/** An explicit sign-out on this device also drops that person's unsent messages. */
export async function forgetStored(userId) {
  try {
    for (const [key, entry] of await idbEntries(db())) if (entry.user_id === userId) await idbDel(key, db());
  } catch {
    // nothing stored
  }
  tell({ type: "changed" });
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
    order: nextOrder(),
    status: "queued",
    error: null,
    tries: 0,
  };
  await save(entry); // stored first: another tab's restore() must find it
  show(entry);
  tell({ type: "changed" });
  markHeld();
  drain(queueOf(entry));
  return entry;
}

/** Send every queue (on reconnect, `online`, sign-in). */
export function flush() {
  const queues = new Set([...outbox.value.values()].map(queueOf));
  for (const queue of queues) drain(queue);
}

export async function retry(key) {
  const entry = outbox.value.get(key);
  if (!entry) return;
  const next = { ...entry, status: "queued", error: null, tries: 0 };
  show(next);
  await save(next);
  tell({ type: "changed" });
  markHeld();
  drain(queueOf(next));
}

/** Delete a message that was not sent; the queue behind it goes on. */
export async function discard(key) {
  const entry = outbox.value.get(key);
  hide(key);
  await remove(key);
  tell({ type: "changed" });
  markHeld();
  if (entry) drain(queueOf(entry));
}

/** Entries behind a refused one in their queue wait for the person's Retry or Delete. */
function markHeld() {
  const blocked = new Map(); // queue -> order of its first refusal
  for (const entry of outbox.value.values()) {
    if (entry.status !== "failed") continue;
    const queue = queueOf(entry);
    if (!blocked.has(queue) || entry.order < blocked.get(queue)) blocked.set(queue, entry.order);
  }
  let changed = false;
  const next = new Map(outbox.value);
  for (const [key, entry] of next) {
    if (entry.status === "failed" || entry.status === "sending") continue;
    const at = blocked.get(queueOf(entry));
    const status = at !== undefined && entry.order > at ? "held" : entry.status === "held" ? "queued" : entry.status;
    if (status !== entry.status) {
      next.set(key, { ...entry, status });
      changed = true;
    }
  }
  if (changed) outbox.value = next;
}

function newKey() {
  if (crypto.randomUUID) return "web-" + crypto.randomUUID();
  return "web-" + Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- sending a queue, one message at a time ------------------------------------------------------

/** Send one queue (unless this tab sends it already: then once more after). */
async function drain(queue) {
  if (draining.has(queue)) {
    again.add(queue);
    return;
  }
  draining.add(queue);
  clearTimeout(timers.get(queue));
  timers.delete(queue);
  try {
    do {
      again.delete(queue);
      await withLock(`spacechat-outbox:${state.myId()}:${queue}`, () => sendQueue(queue));
    } while (again.has(queue));
  } finally {
    draining.delete(queue);
  }
}

function withLock(name, work) {
  if (navigator.locks && navigator.locks.request) return navigator.locks.request(name, work);
  return work(); // no Web Locks (older browsers): ordered within this tab only
}

/** The queue's entries as stored (every tab's), oldest first; this tab's when nothing is stored. */
async function queueEntries(queue) {
  const rows = await storedEntries();
  const source = rows === null ? [...outbox.value.values()] : rows;
  return source.filter((entry) => queueOf(entry) === queue).sort(byOrder);
}

function offline() {
  return navigator.onLine === false || !hasCsrfToken();
}

async function sendQueue(queue) {
  for (;;) {
    const entries = await queueEntries(queue);
    const head = entries[0];
    if (!head) return;
    if (head.status === "failed") {
      // Refused: it waits for Retry or Delete, and so does everything after it.
      if (!outbox.value.has(head.key) || outbox.value.get(head.key).status !== "failed") show(head);
      markHeld();
      return;
    }
    if (offline()) return; // flush() runs again once online and signed in
    const outcome = await post(head);
    if (outcome === "sent") continue;
    if (outcome !== "refused") later(queue, outcome);
    return;
  }
}

function later(queue, ms) {
  clearTimeout(timers.get(queue));
  timers.set(
    queue,
    setTimeout(() => drain(queue), ms),
  );
}

/** Post one entry: "sent", "refused", or the milliseconds after which to try again. */
async function post(entry) {
  const tries = (entry.tries || 0) + 1;
  show({ ...(outbox.value.get(entry.key) || entry), status: "sending", tries });
  const path = entry.thread_id
    ? `/v1/threads/${encodeURIComponent(entry.thread_id)}/messages`
    : `/v1/channels/${encodeURIComponent(entry.channel_id)}/messages`;
  const body = { text: entry.text, format: "markdown", attachments: entry.attachments.map((a) => a.id), client_msg_id: entry.key };
  const backoff = Math.min(15000, 1000 * 2 ** Math.min(tries - 1, 4));
  try {
    const { data } = await request("POST", path, { json: body, headers: { "Idempotency-Key": entry.key } });
    await remove(entry.key);
    confirm(entry.key, data);
    tell({ type: "sent", key: entry.key, data });
    return "sent";
  } catch (error) {
    const current = { ...entry, ...(outbox.value.get(entry.key) || {}), tries };
    if (error instanceof NetworkError) {
      show({ ...current, status: "queued" }); // sent again on reconnect (realtime ready), `online` or the timer
      return backoff;
    }
    if (error instanceof ApiError && (error.status === 409 || error.status === 429 || error.status >= 500)) {
      show({ ...current, status: "queued" });
      return error.status === 409 ? 500 : backoff;
    }
    if (error instanceof ApiError && (error.status === 401 || error.code === "csrf_failed")) {
      show({ ...current, status: "queued" }); // sent after signing in again
      return 60000;
    }
    const failed = { ...current, status: "failed", error: error.message || String(error) };
    show(failed);
    await save(failed);
    tell({ type: "changed" });
    markHeld();
    return "refused";
  }
}

function confirm(key, data) {
  const { message, thread } = data;
  seenClientIds.add(key);
  const model = threadModels.get(message.thread_id);
  if (model && model.upsert(message, { live: true })) model.bump();
  const channelModel = channelModels.get(message.channel_id);
  if (channelModel && channelModel.upsertThread(thread)) channelModel.bump();
  hide(key);
}

// Another tab sent a message or changed the queue: show the same.
if (tabs) {
  tabs.onmessage = ({ data }) => {
    if (!state.me.value || !data) return;
    if (data.type === "sent" && data.data) confirm(data.key, data.data);
    restore();
  };
}
