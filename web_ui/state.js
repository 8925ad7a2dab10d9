// Application state as signals: who is signed in, the organisation's structure, the route,
// the connection and agents' activity. Views read these; realtime.js and the actions write them.
import { signal, computed } from "./deps.js";

export const me = signal(null); // GET /v1/me: {user, role, scopes, csrf_token, session_id}
export const org = signal(null);
export const teams = signal([]);
export const channels = signal(new Map()); // id -> channel (with unread_count, last_seq, ...)
export const unreadCap = signal(1000);
export const users = signal(new Map()); // id -> {id, name, kind, role}
export const agents = signal([]);
export const route = signal({ name: "loading" });
export const connection = signal("connecting"); // connecting | connected | reconnecting | offline
export const activity = signal(new Map()); // thread_id -> {agent_id, status, tool}
export const workers = signal(new Map()); // thread_id -> Map(worker_id -> {agent_id, state, status, task})
export const announcement = signal(""); // polite screen-reader announcements
export const drawerOpen = signal(false); // the sidebar on narrow screens
export const booted = signal(false);
// Where the focus goes when the next channel opens: "list" after a keyboard jump (Ctrl+K, Enter),
// so j/k move between its threads instead of typing into the message box.
export const focusNext = { channel: null };

export const CATEGORIES = ["agents", "departments", "ops", "incidents", "projects"];

export const can = (scope) => Boolean(me.value && me.value.scopes.includes(scope));
export const myId = () => (me.value ? me.value.user.id : null);

export const channelList = computed(() =>
  [...channels.value.values()]
    .filter((c) => !c.archived && c.kind !== "dm") // direct conversations are listed apart (views/dms.js)
    .sort((a, b) => a.name.localeCompare(b.name)),
);

export function putChannel(channel) {
  const next = new Map(channels.value);
  const old = next.get(channel.id);
  next.set(channel.id, old ? { ...old, ...channel } : { unread_count: 0, last_read_seq: 0, ...channel });
  channels.value = next;
}

export function patchChannel(id, patch) {
  const old = channels.value.get(id);
  if (!old) return;
  const next = new Map(channels.value);
  next.set(id, { ...old, ...patch });
  channels.value = next;
}

export function displayName(author) {
  if (!author) return "unknown";
  const known = users.value.get(author.id);
  if (known) return known.name;
  if (author.kind === "agent") {
    const agent = agents.value.find((a) => a.id === author.id);
    if (agent) return agent.name;
  }
  return author.kind === "system" ? "system" : author.id || "unknown";
}

export function announce(text) {
  announcement.value = "";
  queueMicrotask(() => (announcement.value = text));
}

export function setActivity(threadId, value) {
  const next = new Map(activity.value);
  if (value) next.set(threadId, value);
  else next.delete(threadId);
  activity.value = next;
}

const finishedWorkers = new Set();

/** A worker's state in a thread (worker.* events); null removes it. */
export function setWorker(threadId, workerId, value) {
  if (!threadId) return;
  const next = new Map(workers.value);
  const inThread = new Map(next.get(threadId) || []);
  if (value) inThread.set(workerId, { ...(inThread.get(workerId) || {}), ...value });
  else {
    inThread.delete(workerId);
    finishedWorkers.add(workerId);
  }
  if (inThread.size) next.set(threadId, inThread);
  else next.delete(threadId);
  workers.value = next;
}

/** A worker learnt from a snapshot (the channel's metrics): the snapshot may have been taken
 * before events this page already applied, so it never overrides them and never brings back a
 * worker that has finished. */
export function learnWorker(threadId, workerId, value) {
  const known = workers.value.get(threadId);
  if ((known && known.has(workerId)) || finishedWorkers.has(workerId)) return;
  setWorker(threadId, workerId, value);
}

export function clearWorkers(threadId) {
  const inThread = workers.value.get(threadId);
  if (!inThread) return;
  for (const workerId of inThread.keys()) finishedWorkers.add(workerId);
  const next = new Map(workers.value);
  next.delete(threadId);
  workers.value = next;
}

/** The first worker of a thread that waits for people (an approval, a question), if any. */
export function waitingWorker(threadId) {
  const inThread = workers.value.get(threadId);
  if (!inThread) return null;
  for (const worker of inThread.values()) if (worker.state === "waiting_for_input") return worker;
  return null;
}
