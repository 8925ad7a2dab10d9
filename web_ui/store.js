// Messages and threads held in memory: one model per open (or recently open) thread and one per
// channel's thread list. Models are mutated in place and bump a `version` signal, so a thread of
// 100,000 loaded messages costs no copying per event. Every write is an upsert by id with a rule
// for which copy is newer, so a REST page and the realtime stream can overlap in any order and
// nothing is doubled or rolled back.
import { signal, batch } from "./deps.js";
import { get, NetworkError } from "./api.js";
import { prerender } from "./markdown.js";
import { recallThread, recallChannel } from "./cache.js";

const RANK = { created: 0, streaming: 1, completed: 2, failed: 2 };
export const PAGE = 100; // the first page of a thread
export const OLDER_PAGE = 200; // each older or newer page (the API's maximum)

/** Length in Unicode code points, as stream offsets count (docs/events.md). */
export function codePoints(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

/** Whether `incoming` should replace `current` (two copies of one message). */
export function isNewer(incoming, current) {
  const a = RANK[incoming.state] ?? 2;
  const b = RANK[current.state] ?? 2;
  if (a !== b) return a > b;
  if (a === 1) return (incoming.text || "").length >= (current.text || "").length; // streaming: longer wins
  return (incoming.updated_at || "") >= (current.updated_at || "");
}

function prepare(message) {
  message._len = codePoints(message.text || "");
  return message;
}

export class ThreadModel {
  constructor(id) {
    this.id = id;
    this.thread = null;
    this.items = []; // server messages, ascending seq
    this.byId = new Map();
    this.byClientId = new Map(); // client_msg_id -> message, to hide its pending copy
    this.before = null; // cursor for the older page, null at the start
    this.after = null; // cursor for the newer page, null at the live end
    this.loaded = false;
    this.loading = null; // "open" | "older" | "newer" | null
    this.error = null;
    this.version = signal(0);
    this.target = null; // a deep-linked message id
    this.generation = 0; // bumped by each full (re)load: the list starts over at its placement
    this.stale = null; // shown from this device's copy: {savedAt, seq} until it has caught up
    this.early = []; // live messages that arrived while a page was loading (applied after it)
  }

  bump() {
    this.version.value++;
  }

  get atLiveEnd() {
    return this.loaded && this.after === null;
  }

  indexOfSeq(seq) {
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.items[mid].seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  /** Insert or update one message; returns true when something changed. */
  upsert(message, { live = false } = {}) {
    // The page being loaded may have been read before this message was written: keep it for
    // after the page (a slow main thread can take the event first and the page after).
    if (live && this.loading === "open") this.early.push(message);
    return this.place(message, live);
  }

  place(message, live) {
    const current = this.byId.get(message.id);
    if (current) {
      if (!isNewer(message, current)) return false;
      const at = this.indexOfSeq(current.seq);
      const merged = prepare({ ...message, _reasoning: current._reasoning });
      if (at >= 0) this.items[at] = merged;
      this.byId.set(message.id, merged);
      if (merged.client_msg_id) this.byClientId.set(merged.client_msg_id, merged);
      return true;
    }
    if (live && !this.atLiveEnd) return false; // a gap would open: the newer page brings it
    const at = this.indexOfSeq(message.seq);
    if (at >= 0) return false;
    const stored = prepare({ ...message });
    this.items.splice(-at - 1, 0, stored);
    this.byId.set(stored.id, stored);
    if (stored.client_msg_id) this.byClientId.set(stored.client_msg_id, stored);
    return true;
  }

  setPage(page, mode) {
    if (page.thread) this.thread = page.thread;
    const fresh = [];
    for (const message of page.messages) {
      const current = this.byId.get(message.id);
      if (current && !isNewer(message, current)) fresh.push(current);
      else fresh.push(prepare({ ...message, _reasoning: current && current._reasoning }));
    }
    if (mode === "replace") {
      this.generation++;
      this.items = fresh;
      this.byId = new Map();
      this.byClientId = new Map();
      this.before = page.cursors.before;
      this.after = page.cursors.after;
    } else if (mode === "older") {
      const first = this.items.length ? this.items[0].seq : Infinity;
      this.items = fresh.filter((m) => m.seq < first).concat(this.items);
      this.before = page.cursors.before;
    } else {
      const last = this.items.length ? this.items[this.items.length - 1].seq : -Infinity;
      this.items = this.items.concat(fresh.filter((m) => m.seq > last));
      this.after = page.cursors.after;
    }
    for (const message of fresh) {
      this.byId.set(message.id, message);
      if (message.client_msg_id) this.byClientId.set(message.client_msg_id, message);
    }
    this.loaded = true;
    if (mode === "replace") {
      const early = this.early;
      this.early = [];
      for (const message of early) this.place(message, true);
    }
  }

  /** Append streamed text; false when the copy is behind (the caller refetches). */
  appendDelta({ message_id, offset, text, kind }) {
    const message = this.byId.get(message_id);
    if (!message) return true;
    if (RANK[message.state] === 2) return true; // finished: the final text is in
    const length = codePoints(text);
    if (kind === "reasoning") {
      const reasoning = message._reasoning || { text: "", len: 0 };
      if (offset === reasoning.len) message._reasoning = { text: reasoning.text + text, len: reasoning.len + length };
      else if (offset + length > reasoning.len) return true; // reasoning is shown as a hint only
      this.replace(message, { ...message });
      return true;
    }
    if (offset + length <= message._len) return true; // already have it (a refetch overtook the delta)
    if (offset !== message._len) return false;
    const next = { ...message, text: message.text + text, state: "streaming", _len: message._len + length };
    this.replace(message, next);
    return true;
  }

  replace(old, next) {
    const at = this.indexOfSeq(old.seq);
    if (at >= 0) this.items[at] = next;
    this.byId.set(next.id, next);
  }

  streaming() {
    return this.items.filter((m) => m.state === "created" || m.state === "streaming");
  }
}

export class ChannelModel {
  constructor(id) {
    this.id = id;
    this.threads = []; // most recently active first
    this.byId = new Map();
    this.nextBefore = null;
    this.loaded = false;
    this.loading = false;
    this.error = null;
    this.stale = null; // shown from this device's copy: {savedAt, seq} until refetched
    this.version = signal(0);
  }

  bump() {
    this.version.value++;
  }

  upsertThread(thread) {
    const current = this.byId.get(thread.id);
    if (current && current.last_seq > thread.last_seq) return false;
    if (current) this.threads.splice(this.threads.indexOf(current), 1);
    const stored = { ...(current || {}), ...thread };
    this.byId.set(thread.id, stored);
    let at = 0;
    while (at < this.threads.length && this.threads[at].last_seq > stored.last_seq) at++;
    this.threads.splice(at, 0, stored);
    return true;
  }

  /** A message was posted in one of this channel's threads, or one of them changed: the row's
   * counts, last reply and repliers follow, as the server keeps them (store/messages.py). */
  noteMessage(message) {
    const thread = this.byId.get(message.thread_id);
    if (!thread) return false;
    if (thread.last_seq >= message.seq) {
      // The last reply finished streaming, was edited or was deleted: its preview follows.
      const last = thread.last_reply;
      if (!last || last.message_id !== message.id || last.preview === preview(message.text)) return false;
      return this.upsertThread({ ...thread, last_reply: { ...last, preview: preview(message.text) } });
    }
    const isRoot = thread.root_message_id === message.id;
    const author = message.author;
    const others = (thread.repliers || []).filter((r) => r.kind !== author.kind || r.id !== author.id);
    return this.upsertThread({
      ...thread,
      reply_count: thread.reply_count + (isRoot ? 0 : 1),
      last_seq: message.seq,
      last_message_at: message.created_at,
      last_reply: { message_id: message.id, author, preview: preview(message.text), at: message.created_at },
      ...(isRoot ? {} : { repliers: [author, ...others].slice(0, MAX_REPLIERS) }),
    });
  }
}

const MAX_REPLIERS = 5; // as the server's (store/chat.py)
const PREVIEW_CHARS = 140; // as the server's (store/shapes.py)

/** A message as the thread list's one-line preview. */
export function preview(text) {
  const line = (text || "").split(/\s+/).join(" ").trim();
  return line.length <= PREVIEW_CHARS ? line : line.slice(0, PREVIEW_CHARS - 1) + "…";
}

// --- the models in memory ---------------------------------------------------------------------

const MAX_THREADS = 12;
export const threadModels = new Map();
export const seenClientIds = new Set(); // client_msg_ids of messages the server has shown us // insertion order = least recently used first
export const channelModels = new Map();

export function threadModel(id) {
  let model = threadModels.get(id);
  if (model) {
    threadModels.delete(id);
  } else {
    model = new ThreadModel(id);
  }
  threadModels.set(id, model);
  while (threadModels.size > MAX_THREADS) threadModels.delete(threadModels.keys().next().value);
  return model;
}

export function channelModel(id) {
  let model = channelModels.get(id);
  if (!model) {
    model = new ChannelModel(id);
    channelModels.set(id, model);
  }
  return model;
}

export function forgetAll() {
  threadModels.clear();
  channelModels.clear();
}

// --- loading ----------------------------------------------------------------------------------

export async function openThread(model, { aroundMessageId = null } = {}) {
  model.loading = "open";
  model.error = null;
  model.bump();
  try {
    let query = `limit=${PAGE}`;
    if (aroundMessageId) {
      const { message } = await get(`/v1/messages/${encodeURIComponent(aroundMessageId)}`);
      query += `&around=${message.seq}`;
      model.target = message.id;
    }
    const page = await get(`/v1/threads/${encodeURIComponent(model.id)}/history?${query}`);
    batch(() => {
      model.setPage(page, "replace");
      model.stale = null;
      model.loading = null;
      model.bump();
    });
  } catch (error) {
    if (error instanceof NetworkError && !model.loaded && (await showSavedThread(model, aroundMessageId))) return;
    model.early = [];
    model.loading = null;
    model.error = error;
    model.bump();
  }
}

/** The server cannot be reached: show this device's copy of the thread, if it has one. */
async function showSavedThread(model, aroundMessageId) {
  const saved = await recallThread(model.id);
  if (!saved) return false;
  batch(() => {
    model.setPage({ thread: saved.thread, messages: saved.messages, cursors: saved.cursors }, "replace");
    model.target = aroundMessageId && model.byId.has(aroundMessageId) ? aroundMessageId : null;
    model.stale = { savedAt: saved.saved_at, seq: typeof saved.seq === "number" ? saved.seq : null };
    model.loading = null;
    model.error = null;
    model.bump();
  });
  return true;
}

async function showSavedChannel(model) {
  const saved = await recallChannel(model.id);
  if (!saved) return false;
  batch(() => {
    model.threads = [];
    model.byId = new Map();
    for (const thread of saved.threads) model.upsertThread(thread);
    model.nextBefore = saved.next_before;
    model.loaded = true;
    model.stale = { savedAt: saved.saved_at, seq: typeof saved.seq === "number" ? saved.seq : null };
    model.error = null;
  });
  return true;
}

/** The stream is back (realtime.js `ready`): copies shown from the cache catch up. A thread's copy
 * that the stream resumed at or before (Last-Event-ID) has been brought up to date by the log's
 * replay, which arrived before `ready`; any other is fetched again. Channel lists are refetched. */
export function catchUp({ first, resumedFrom }) {
  for (const model of threadModels.values()) {
    if (!model.stale) continue;
    const replayed = !first && resumedFrom !== null && model.stale.seq !== null && model.stale.seq >= resumedFrom;
    if (replayed) {
      model.stale = null;
      model.bump();
    } else if (!model.loading) {
      openThread(model);
    }
  }
  for (const model of channelModels.values()) if (model.stale && !model.loading) loadThreads(model);
}

export async function loadOlder(model) {
  if (model.loading || !model.loaded || model.before === null) return;
  model.loading = "older";
  try {
    const page = await get(
      `/v1/threads/${encodeURIComponent(model.id)}/history?before=${encodeURIComponent(model.before)}&limit=${OLDER_PAGE}`,
    );
    model.setPage(page, "older");
    prerender(page.messages); // scrolling up meets the newest of them first
  } catch (error) {
    model.error = error;
  } finally {
    model.loading = null;
    model.bump();
  }
}

export async function loadNewer(model) {
  if (model.loading || !model.loaded || model.after === null) return;
  model.loading = "newer";
  try {
    const page = await get(
      `/v1/threads/${encodeURIComponent(model.id)}/history?after=${encodeURIComponent(model.after)}&limit=${OLDER_PAGE}`,
    );
    model.setPage(page, "newer");
    prerender([...page.messages].reverse());
  } catch (error) {
    model.error = error;
  } finally {
    model.loading = null;
    model.bump();
  }
}

export async function loadThreads(model, { more = false } = {}) {
  if (model.loading || (more && model.nextBefore === null)) return;
  model.loading = true;
  model.error = null;
  if (!more) model.bump();
  try {
    const cursor = more ? `&before=${encodeURIComponent(model.nextBefore)}` : "";
    const page = await get(`/v1/channels/${encodeURIComponent(model.id)}/threads?limit=50${cursor}`);
    batch(() => {
      if (!more) {
        model.threads = [];
        model.byId = new Map();
      }
      for (const thread of page.threads) model.upsertThread(thread);
      model.nextBefore = page.next_before;
      model.loaded = true;
      model.stale = null;
    });
  } catch (error) {
    if (!(error instanceof NetworkError && !more && !model.loaded && (await showSavedChannel(model)))) model.error = error;
  } finally {
    model.loading = false;
    model.bump();
  }
}

/** Refetch one message (a missed stream delta, or after a reconnect) and upsert it. */
const refetching = new Set();
export async function refetchMessage(id) {
  if (refetching.has(id)) return;
  refetching.add(id);
  try {
    const { message } = await get(`/v1/messages/${encodeURIComponent(id)}`);
    const model = threadModels.get(message.thread_id);
    if (model && model.upsert(message)) model.bump();
  } catch {
    // the next event or reconnect tries again
  } finally {
    refetching.delete(id);
  }
}
