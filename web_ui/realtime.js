// The realtime stream (GET /v1/realtime/sse) read with fetch, so the UI sees status codes and owns
// reconnection: it remembers the seq of the last logged event it applied and reconnects with
// `Last-Event-ID: <seq>` (after a dropped connection, a server restart or `lagged`), so every
// event arrives once and in order. Events are upserts (store.js), so a replayed one never doubles
// anything. A page that opened offline and shows threads from this device's cache (cache.js)
// starts its first stream from the oldest of their seqs, so they catch up from the log.
import { batch } from "./deps.js";
import { NetworkError } from "./api.js";
import * as state from "./state.js";
import { threadModels, channelModels, seenClientIds, refetchMessage, openThread, loadThreads } from "./store.js";

const HEARTBEAT_TIMEOUT = 40_000; // the server sends something (an event, else a heartbeat) at least every 15 s
let lastSeq = null;
let controller = null;
let attempt = 0;
let retryTimer = null;
let stopped = true;
let connectedBefore = false;
let cursorRefused = false; // the server refused a cursor from the cache (another log): start live
const readyWaiters = [];
const hooks = { ready: [], unauthorized: () => {} };

export const lastEventSeq = () => lastSeq;

export function onReady(callback) {
  hooks.ready.push(callback);
}

export function whenUnauthorized(callback) {
  hooks.unauthorized = callback;
}

/** Resolves once the stream is live (or after `timeout` ms). */
export function ready(timeout = 3000) {
  if (state.connection.value === "connected") return Promise.resolve();
  return new Promise((resolve) => {
    readyWaiters.push(resolve);
    setTimeout(resolve, timeout);
  });
}

window.addEventListener("online", () => reconnectNow());
window.addEventListener("offline", () => {
  if (!stopped) state.connection.value = "offline";
});

export function start() {
  if (!stopped) return;
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  clearTimeout(retryTimer);
  if (controller) controller.abort();
  controller = null;
  lastSeq = null;
  connectedBefore = false;
  cursorRefused = false;
}

/** Where a connection resumes: after the last applied event; before the first connection, after
 * the oldest seq of the threads shown from the cache (null: start live). */
function resumeCursor() {
  if (lastSeq !== null || connectedBefore || cursorRefused) return lastSeq;
  let oldest = null;
  for (const model of threadModels.values()) {
    const seq = model.stale ? model.stale.seq : null;
    if (typeof seq === "number" && (oldest === null || seq < oldest)) oldest = seq;
  }
  return oldest;
}

function reconnectNow() {
  if (stopped) return;
  clearTimeout(retryTimer);
  if (controller) controller.abort();
  attempt = 0;
  connect();
}

function scheduleReconnect() {
  if (stopped) return;
  state.connection.value = navigator.onLine === false ? "offline" : "reconnecting";
  const delay = Math.min(8000, 300 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
  attempt++;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
}

async function connect() {
  if (stopped) return;
  const mine = new AbortController();
  controller = mine;
  if (state.connection.value !== "connecting") {
    state.connection.value = navigator.onLine === false ? "offline" : "reconnecting";
  }
  const cursor = resumeCursor();
  const headers = { Accept: "text/event-stream" };
  if (cursor !== null) headers["Last-Event-ID"] = String(cursor);
  let watchdog = null;
  const feed = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => mine.abort(), HEARTBEAT_TIMEOUT);
  };
  try {
    feed();
    const response = await fetch("/v1/realtime/sse", {
      headers,
      credentials: "same-origin",
      cache: "no-store",
      signal: mine.signal,
    });
    if (response.status === 401) {
      // Not signed in (or no longer): stop here; start() runs again after signing in.
      clearTimeout(watchdog);
      if (controller === mine) {
        stopped = true;
        controller = null;
        lastSeq = null;
        connectedBefore = false;
        cursorRefused = false;
      }
      hooks.unauthorized();
      return;
    }
    if (response.status === 400) {
      // cursor_in_future: the server's log is not the one we followed (a new data directory).
      lastSeq = null;
      cursorRefused = true;
      throw new Error("stream refused the cursor");
    }
    if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed();
      buffer += value;
      const frames = buffer.split(/\r?\n\r?\n/);
      buffer = frames.pop();
      if (frames.length) dispatchFrames(frames, cursor);
      if (mine.signal.aborted) break;
    }
  } catch (error) {
    if (!(error instanceof NetworkError) && error && error.name !== "AbortError" && error.name !== "TypeError") {
      console.warn("realtime:", error);
    }
  } finally {
    clearTimeout(watchdog);
  }
  if (controller === mine) scheduleReconnect();
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split(/\r?\n/)) {
    if (!line || line[0] === ":") continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

function dispatchFrames(frames, cursor) {
  batch(() => {
    for (const frame of frames) {
      const parsed = parseFrame(frame);
      if (!parsed) continue;
      let data;
      try {
        data = JSON.parse(parsed.data);
      } catch {
        continue;
      }
      if (parsed.event === "message") {
        if (data.seq !== null && data.seq !== undefined) {
          if (lastSeq !== null && data.seq <= lastSeq) continue; // already applied
          lastSeq = data.seq;
        }
        try {
          apply(data);
        } catch (error) {
          console.error("realtime: could not apply", data.event_type, error);
        }
      } else if (parsed.event === "ready") {
        const first = cursor === null;
        if (first || lastSeq === null) lastSeq = data.resume_after;
        // Started over without a cursor after having one (the server refused it): what is shown
        // may have missed events, so it is fetched again.
        if (first && connectedBefore) queueMicrotask(refetchEverything);
        connectedBefore = true;
        attempt = 0;
        state.connection.value = "connected";
        readyWaiters.splice(0).forEach((resolve) => resolve());
        for (const callback of hooks.ready) queueMicrotask(() => callback({ first, resumedFrom: cursor }));
      } else if (parsed.event === "reset") {
        lastSeq = data.resume_after;
        queueMicrotask(refetchEverything);
      } else if (parsed.event === "lagged") {
        // The stream ends; the reconnect resumes after our last seq, from the log.
      }
    }
  });
}

/** After `reset` (or anything that may have lost events): refetch what is shown. */
export async function refetchEverything() {
  for (const callback of hooks.ready) callback({ first: true });
  for (const model of threadModels.values()) if (model.loaded) openThread(model);
  for (const model of channelModels.values()) if (model.loaded) loadThreads(model);
}

// --- applying events ----------------------------------------------------------------------------

const listeners = new Set();
/** Called with every applied event (the outbox and views use it). */
export function onEvent(callback) {
  listeners.add(callback);
  return () => listeners.delete(callback);
}

function apply(event) {
  const p = event.payload || {};
  switch (event.event_type) {
    case "message.stream.delta": {
      for (const model of threadModels.values()) {
        if (!model.byId.has(p.message_id)) continue;
        if (model.appendDelta(p)) model.bump();
        else refetchMessage(p.message_id);
      }
      break;
    }
    case "message.created":
    case "message.completed":
    case "message.failed":
    case "message.updated": {
      const message = p.message;
      if (!message) break;
      if (message.client_msg_id) seenClientIds.add(message.client_msg_id);
      const model = threadModels.get(message.thread_id);
      if (model && model.upsert(message, { live: true })) model.bump();
      const channelModel = channelModels.get(message.channel_id);
      if (channelModel && channelModel.noteMessage(message)) channelModel.bump();
      if (event.event_type === "message.created") noteUnread(event, message);
      // A reply that ended ends its turn's activity (a card the agent updates does not).
      if ((event.event_type === "message.completed" || event.event_type === "message.failed") && message.author.kind === "agent") {
        state.setActivity(message.thread_id, null);
        state.clearWorkers(message.thread_id);
      }
      break;
    }
    case "thread.created": {
      const model = channelModels.get(p.thread.channel_id);
      if (model && model.upsertThread(p.thread)) model.bump();
      break;
    }
    case "channel.created":
    case "channel.updated":
      if (p.channel) state.putChannel(p.channel);
      break;
    case "member.added":
      if (p.user_id === state.myId() && event.channel_id) {
        state.patchChannel(event.channel_id, { member: true });
        queueMicrotask(() => hooks.ready.forEach((callback) => callback({ first: true })));
      }
      break;
    case "member.removed":
      if (p.user_id === state.myId() && event.channel_id) state.patchChannel(event.channel_id, { member: false });
      break;
    case "member.joined":
    case "member.updated":
      if (p.user) {
        const next = new Map(state.users.value);
        next.set(p.user.id, p.user);
        state.users.value = next;
      }
      break;
    case "agent.status.changed": {
      if (!event.thread_id) break;
      if (["thinking", "branching", "working", "compacting"].includes(p.status)) {
        state.setActivity(event.thread_id, { agent_id: p.agent_id, status: p.status, detail: p.detail || "", tool: null });
      } else {
        state.setActivity(event.thread_id, null);
      }
      break;
    }
    case "tool.started": {
      const current = event.thread_id && state.activity.value.get(event.thread_id);
      if (current) state.setActivity(event.thread_id, { ...current, tool: p.tool });
      break;
    }
    case "tool.completed":
    case "tool.failed": {
      const current = event.thread_id && state.activity.value.get(event.thread_id);
      if (current) state.setActivity(event.thread_id, { ...current, tool: null });
      break;
    }
    case "worker.started":
      state.setWorker(event.thread_id, p.worker_id, { agent_id: p.agent_id, state: "running", status: "", task: p.task });
      break;
    case "worker.status":
      state.setWorker(event.thread_id, p.worker_id, { agent_id: p.agent_id, state: p.state, status: p.status || "" });
      break;
    case "worker.completed":
      state.setWorker(event.thread_id, p.worker_id, null);
      break;
    default:
      break;
  }
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (error) {
      console.error("realtime: a listener failed on", event.event_type, error);
    }
  }
}

function noteUnread(event, message) {
  const channel = state.channels.value.get(message.channel_id);
  if (!channel || (channel.last_seq || 0) >= message.seq) return;
  const mine = message.author.id === state.myId();
  const patch = { last_seq: message.seq };
  if (!mine) patch.unread_count = Math.min((channel.unread_count || 0) + 1, state.unreadCap.value);
  else patch.last_read_seq = message.seq;
  state.patchChannel(channel.id, patch);
}
