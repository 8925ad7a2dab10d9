// Reading offline (issue 18): the threads and channels a person opened recently are kept on this
// device in IndexedDB, so that with no connection they open with their title, channel and history
// (messages with their cards and their attachments' metadata; not the files themselves), marked
// as possibly stale. The cache is bounded: the N threads and N channels opened most recently are
// kept (least recently opened go first), N set in Settings (a device setting, in localStorage).
// Each saved copy records the realtime log's seq it is consistent with, so that, back online,
// the stream resumes from there (Last-Event-ID) and the copy catches up with no gap.
// Signing out clears it.
//
// Two stores: the copies themselves, and a small index (what, whose, when opened, how big) that
// the LRU and the Settings page read without loading any messages.
import { signal, idbCreateStore, idbGet, idbSet, idbDelMany, idbKeys, idbEntries } from "./deps.js";
import * as state from "./state.js";

const LIMIT_KEY = "spacechat:offline-limit";
export const DEFAULT_LIMIT = 30;
export const MAX_LIMIT = 500;
export const MESSAGES_KEPT = 200; // the newest of a thread
export const THREADS_KEPT = 50; // the most recently active of a channel

let stores = null;
function db() {
  if (!stores) stores = { items: idbCreateStore("spacechat-cache", "items"), index: idbCreateStore("spacechat-cache-index", "items") };
  return stores;
}

function readLimit() {
  const saved = localStorage.getItem(LIMIT_KEY);
  const value = Number(saved);
  return saved !== null && Number.isInteger(value) && value >= 0 && value <= MAX_LIMIT ? value : DEFAULT_LIMIT;
}

/** How many threads (and, separately, channels) are kept; 0 keeps nothing. */
export const cacheLimit = signal(readLimit());
/** Bumped when the cache changes (Settings shows its size). */
export const cacheVersion = signal(0);

export async function setCacheLimit(limit) {
  const value = Math.max(0, Math.min(MAX_LIMIT, Math.round(Number(limit) || 0)));
  localStorage.setItem(LIMIT_KEY, String(value));
  cacheLimit.value = value;
  await exclusive(prune);
}

/** One change at a time across this browser's tabs (read-modify-write of the index). */
function exclusive(work) {
  const guarded = async () => {
    try {
      await work();
    } catch {
      // no IndexedDB (private mode) or full: reading offline is a convenience, never an error
    }
  };
  if (navigator.locks && navigator.locks.request) return navigator.locks.request("spacechat-cache", guarded);
  return guarded();
}

const keyOf = (kind, id) => `${kind === "thread" ? "t" : "c"}:${id}`;

/** A message as kept: without what the UI derives from it (fields starting with "_"). */
function plain(message) {
  const out = {};
  for (const key in message) if (key[0] !== "_") out[key] = message[key];
  return out;
}

/** Note that a thread or channel was opened (its place in the LRU order). */
export function touch(kind, id) {
  const userId = state.myId();
  if (!userId || !cacheLimit.value) return Promise.resolve();
  return exclusive(async () => {
    const key = keyOf(kind, id);
    const { index } = db();
    const known = await idbGet(key, index);
    await idbSet(key, { kind, user_id: userId, bytes: known ? known.bytes : 0, opened_at: Date.now() }, index);
  });
}

async function put(kind, id, record) {
  const userId = state.myId();
  if (!userId || !cacheLimit.value) return;
  const value = { ...record, kind, id, user_id: userId, saved_at: new Date().toISOString() };
  const bytes = JSON.stringify(value).length;
  await exclusive(async () => {
    const key = keyOf(kind, id);
    const { items, index } = db();
    const known = await idbGet(key, index);
    await idbSet(key, value, items);
    await idbSet(key, { kind, user_id: userId, bytes, opened_at: known ? known.opened_at : Date.now() }, index);
    await prune();
  });
  cacheVersion.value++;
}

/** Keep a thread's newest messages. `seq`: the log seq the copy is consistent with (or null). */
export function saveThread(model, seq) {
  const messages = model.items.slice(-MESSAGES_KEPT).map(plain);
  const cut = messages.length < model.items.length;
  const before = cut && messages.length ? String(messages[0].seq) : model.before;
  return put("thread", model.id, { thread: model.thread, messages, cursors: { before, after: null }, seq });
}

/** Keep a channel's most recently active threads. */
export function saveChannel(model, seq) {
  const threads = model.threads.slice(0, THREADS_KEPT);
  const nextBefore = threads.length < model.threads.length ? String(threads[threads.length - 1].last_seq) : model.nextBefore;
  return put("channel", model.id, { threads, next_before: nextBefore, seq });
}

async function recall(kind, id) {
  const userId = state.myId();
  if (!userId) return null;
  try {
    const saved = await idbGet(keyOf(kind, id), db().items);
    return saved && saved.user_id === userId ? saved : null;
  } catch {
    return null;
  }
}

export const recallThread = (id) => recall("thread", id);
export const recallChannel = (id) => recall("channel", id);

/** Drop the least recently opened beyond the limit (per kind), and copies no index knows. */
async function prune() {
  const { items, index } = db();
  const known = await idbEntries(index);
  const limit = cacheLimit.value;
  const drop = [];
  for (const kind of ["thread", "channel"]) {
    const userIds = new Set(known.map(([, v]) => v.user_id));
    for (const userId of userIds) {
      const mine = known.filter(([, v]) => v.kind === kind && v.user_id === userId).sort((a, b) => b[1].opened_at - a[1].opened_at);
      drop.push(...mine.slice(limit).map(([key]) => key));
    }
  }
  const indexed = new Set(known.map(([key]) => key).filter((key) => !drop.includes(key)));
  const orphans = (await idbKeys(items)).filter((key) => !indexed.has(key));
  await idbDelMany([...new Set([...drop, ...orphans])], items);
  await idbDelMany(drop, index);
}

/** What is kept for the signed-in person: {threads, channels, bytes}. */
export async function cacheStats() {
  const userId = state.myId();
  const out = { threads: 0, channels: 0, bytes: 0 };
  try {
    const items = new Set(await idbKeys(db().items));
    for (const [key, value] of await idbEntries(db().index)) {
      if (value.user_id !== userId || !items.has(key)) continue;
      if (value.kind === "thread") out.threads++;
      else out.channels++;
      out.bytes += value.bytes;
    }
  } catch {
    // nothing kept
  }
  return out;
}

/** Forget everything kept on this device (sign-out, or "Clear" in Settings). */
export async function clearCache() {
  await exclusive(async () => {
    const { items, index } = db();
    await idbDelMany(await idbKeys(items), items);
    await idbDelMany(await idbKeys(index), index);
  });
  cacheVersion.value++;
}
