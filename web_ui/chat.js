// Chat essentials (issue 13): edits, deletes and reactions, per-thread read markers and the inbox,
// direct conversations and search, over the /v1 API; and the realtime events they follow
// (reaction.*, message.deleted, thread.read). Views: views/search.js, inbox.js, dms.js,
// reactions.js, autocomplete.js.
import { signal, batch } from "./deps.js";
import { get, post, patch, del } from "./api.js";
import * as state from "./state.js";
import { onEvent } from "./realtime.js";
import { threadModels, channelModels, preview } from "./store.js";

// --- messages: edit, delete, react -------------------------------------------------------------

export const editing = signal(null); // the id of the message being edited here, or null

function upsertMessage(message) {
  const model = threadModels.get(message.thread_id);
  if (model && model.upsert(message)) model.bump();
}

export async function editMessage(id, text) {
  const { message } = await patch(`/v1/messages/${encodeURIComponent(id)}`, { text });
  upsertMessage(message);
  return message;
}

export async function deleteMessage(id) {
  const { message } = await del(`/v1/messages/${encodeURIComponent(id)}`);
  upsertMessage(message);
  return message;
}

export const messageEdits = (id) => get(`/v1/messages/${encodeURIComponent(id)}/edits`);

/** Add or take back my reaction; the event brings everyone's. */
export async function toggleReaction(message, emoji) {
  const mine = (message.reactions || []).some((r) => r.emoji === emoji && r.user_ids.includes(state.myId()));
  const path = `/v1/messages/${encodeURIComponent(message.id)}/reactions`;
  if (mine) await del(`${path}?emoji=${encodeURIComponent(emoji)}`);
  else await post(path, { emoji });
}

function patchReactions(p) {
  for (const model of threadModels.values()) {
    const current = model.byId.get(p.message_id);
    if (!current || (current.updated_at || "") > p.updated_at) continue;
    model.replace(current, { ...current, reactions: p.reactions, updated_at: p.updated_at });
    model.bump();
  }
}

// --- per-thread unread and the inbox -----------------------------------------------------------

export const inbox = signal({ threads: [], loaded: false, loading: false, error: null, nextBefore: null, unread: 0 });

export async function loadInbox({ more = false } = {}) {
  const current = inbox.value;
  if (current.loading || (more && !current.nextBefore)) return;
  inbox.value = { ...current, loading: true, error: null };
  try {
    const cursor = more ? `&before=${encodeURIComponent(current.nextBefore)}` : "";
    const page = await get(`/v1/inbox?limit=100${cursor}`);
    const threads = more ? current.threads.concat(page.threads) : page.threads;
    inbox.value = { threads, loaded: true, loading: false, error: null, nextBefore: page.next_before, unread: page.unread_threads };
  } catch (error) {
    inbox.value = { ...inbox.value, loading: false, error };
  }
}

export async function refreshInboxCount() {
  try {
    const page = await get("/v1/inbox?limit=1&unread=true");
    inbox.value = { ...inbox.value, unread: page.unread_threads };
  } catch {
    // the badge waits for the next event
  }
}

function setThreadUnread(threadId, lastRead, unread) {
  batch(() => {
    const box = inbox.value;
    const at = box.threads.findIndex((t) => t.id === threadId);
    if (at >= 0) {
      const before = box.threads[at];
      const threads = box.threads.slice();
      threads[at] = { ...before, unread_count: unread, last_read_seq: Math.max(lastRead, before.last_read_seq || 0) };
      const delta = (unread > 0 ? 1 : 0) - (before.unread_count > 0 ? 1 : 0);
      inbox.value = { ...box, threads, unread: Math.max(0, box.unread + delta) };
    } else if (unread === 0) {
      refreshInboxCount();
    }
    for (const model of channelModels.values()) {
      const thread = model.byId.get(threadId);
      if (!thread) continue;
      thread.unread_count = unread;
      thread.last_read_seq = Math.max(lastRead, thread.last_read_seq || 0);
      model.threads = model.threads.slice();
      model.bump();
    }
  });
}

const readTimers = new Map();
/** I have seen a thread up to `seq`: clear its unread here at once, tell the server (debounced). */
export function markThreadRead(threadId, seq) {
  if (!seq || document.visibilityState === "hidden") return;
  setThreadUnread(threadId, seq, 0);
  clearTimeout(readTimers.get(threadId));
  readTimers.set(
    threadId,
    setTimeout(() => post(`/v1/threads/${encodeURIComponent(threadId)}/read`, { seq }).catch(() => {}), 200),
  );
}

export async function markAllRead() {
  await post("/v1/inbox/read", {});
  inbox.value = { ...inbox.value, threads: inbox.value.threads.map((t) => ({ ...t, unread_count: 0 })), unread: 0 };
}

function noteNewMessage(message) {
  if (message.author.id === state.myId()) return;
  const box = inbox.value;
  const at = box.threads.findIndex((t) => t.id === message.thread_id);
  if (at >= 0) {
    const before = box.threads[at];
    if ((before.last_seq || 0) >= message.seq) return;
    const thread = {
      ...before,
      last_seq: message.seq,
      last_message_at: message.created_at,
      unread_count: (before.unread_count || 0) + 1,
      last_reply: { message_id: message.id, author: message.author, preview: preview(message.text), at: message.created_at },
    };
    const threads = [thread, ...box.threads.slice(0, at), ...box.threads.slice(at + 1)];
    inbox.value = { ...box, threads, unread: box.unread + (before.unread_count > 0 ? 0 : 1) };
  } else if (mentionsMe(message.text) || isDirect(message.channel_id)) {
    if (box.loaded) loadInbox();
    else refreshInboxCount();
  }
  for (const model of channelModels.values()) {
    const thread = model.byId.get(message.thread_id);
    if (thread && (thread.last_seq || 0) <= message.seq) thread.unread_count = (thread.unread_count || 0) + 1;
  }
}

function mentionsMe(text) {
  const me = state.me.value;
  const handle = me && me.user.handle;
  return Boolean(handle && new RegExp(`(^|[^\\w@])@${handle}\\b`).test(text || ""));
}

const isDirect = (channelId) => (state.channels.value.get(channelId) || {}).kind === "dm";

// --- direct conversations ----------------------------------------------------------------------

export async function loadDms() {
  const { dms } = await get("/v1/dms");
  batch(() => dms.forEach((dm) => state.putChannel(dm)));
  return dms;
}

export async function openDm(userIds) {
  const { dm } = await post("/v1/dms", { user_ids: userIds });
  state.putChannel(dm);
  return dm;
}

/** A channel's name as people read it: `#name`, or the other members of a direct conversation. */
export function channelLabel(channel) {
  if (!channel) return "";
  if (channel.kind !== "dm") return "#" + channel.name;
  const me = state.myId();
  const others = (channel.members || []).filter((m) => m.id !== me).map((m) => m.name);
  return others.length ? others.join(", ") : "Just you";
}

// --- search ------------------------------------------------------------------------------------

export const searchMessages = (q, { cursor = null, sort = "relevance" } = {}) =>
  get(`/v1/search?q=${encodeURIComponent(q)}&limit=30&sort=${sort}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);

// --- events ------------------------------------------------------------------------------------

onEvent((event) => {
  const p = event.payload || {};
  switch (event.event_type) {
    case "reaction.added":
    case "reaction.removed":
      patchReactions(p);
      break;
    case "message.deleted":
      if (p.message) upsertMessage(p.message);
      break;
    case "thread.read":
      setThreadUnread(p.thread_id, p.last_read_seq, 0);
      break;
    case "message.created":
      if (p.message) noteNewMessage(p.message);
      break;
    case "channel.created":
      if (p.channel && p.channel.kind === "dm") loadDms().catch(() => {});
      break;
    default:
      break;
  }
});
