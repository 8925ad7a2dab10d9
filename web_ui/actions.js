// What the views ask for: signing in and out, loading the organisation's structure, read
// markers, channels, uploads and agent retries. Each is a small function over api.js.
import { batch } from "./deps.js";
import { get, post, del, request, setCsrfToken } from "./api.js";
import * as state from "./state.js";
import * as realtime from "./realtime.js";
import { forgetAll } from "./store.js";
import { clearForSignOut, forgetStored } from "./outbox.js";
import { clearCache } from "./cache.js";
import { resetOps } from "./ops.js";
import { resetTasks } from "./tasks.js";
import { resetNotifications } from "./notify.js";
import { resetPresence } from "./presence.js";

export async function loadMe() {
  const me = await get("/v1/me", { quiet401: true });
  setCsrfToken(me.csrf_token || null);
  state.me.value = me;
  return me;
}

export async function loadStructure() {
  const [org, list, people, hosted, direct] = await Promise.all([
    get("/v1/org"),
    get("/v1/channels"),
    get("/v1/users").catch(() => ({ users: [] })),
    get("/v1/agents").catch(() => ({ agents: [] })),
    get("/v1/dms").catch(() => ({ dms: [] })),
  ]);
  batch(() => {
    state.org.value = org.org;
    state.teams.value = org.teams;
    state.channels.value = new Map([...list.channels, ...direct.dms].map((c) => [c.id, c]));
    state.unreadCap.value = list.unread_cap || 1000;
    state.users.value = new Map(people.users.map((u) => [u.id, u]));
    state.agents.value = hosted.agents || [];
  });
}

// What the app shows, kept on this device so that the installed app opens offline (with the
// unsent messages of the retry queue) and fills in once the server answers. No secrets: the CSRF
// token is not kept, and signing out forgets it.
const SNAPSHOT = "spacechat:snapshot:v1";

export function saveSnapshot() {
  const me = state.me.value;
  if (!me) return;
  try {
    localStorage.setItem(
      SNAPSHOT,
      JSON.stringify({
        me: { ...me, csrf_token: null },
        org: state.org.value,
        teams: state.teams.value,
        channels: [...state.channels.value.values()],
        users: [...state.users.value.values()],
        agents: state.agents.value,
      }),
    );
  } catch {
    // storage full or disabled: the app still works online
  }
}

/** Show the last known state while the server cannot be reached; false when there is none. */
export function restoreSnapshot() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(SNAPSHOT) || "null");
  } catch {
    saved = null;
  }
  if (!saved || !saved.me) return false;
  batch(() => {
    state.me.value = saved.me;
    state.org.value = saved.org;
    state.teams.value = saved.teams || [];
    state.channels.value = new Map((saved.channels || []).map((c) => [c.id, c]));
    state.users.value = new Map((saved.users || []).map((u) => [u.id, u]));
    state.agents.value = saved.agents || [];
  });
  return true;
}

export async function refreshChannels() {
  const [list, direct] = await Promise.all([get("/v1/channels"), get("/v1/dms").catch(() => ({ dms: [] }))]);
  state.channels.value = new Map([...list.channels, ...direct.dms].map((c) => [c.id, c]));
}

export async function signIn(path, body) {
  const data = await post(path, { ...body, device_name: deviceName() });
  setCsrfToken(data.csrf_token);
  return data;
}

export async function signOut() {
  const userId = state.myId();
  try {
    await post("/v1/auth/logout", {});
  } finally {
    await forgetStored(userId);
    await clearCache();
    endSession();
  }
}

/** Forget everything of the signed-in user (after sign-out or a revoked session): what this
 * device kept for reading offline too (the unsent messages stay for an expired session). */
export function endSession() {
  realtime.stop();
  clearForSignOut();
  clearCache();
  forgetAll();
  setCsrfToken(null);
  localStorage.removeItem(SNAPSHOT);
  batch(() => {
    state.me.value = null;
    state.channels.value = new Map();
    state.workers.value = new Map();
    state.booted.value = false;
    resetOps();
    resetTasks();
    resetNotifications();
    resetPresence();
  });
}

export function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Firefox\//.test(ua) ? "Firefox" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}

const readTimers = new Map();
/** Move the channel's read marker to its newest message (debounced). */
export function markRead(channelId) {
  const channel = state.channels.value.get(channelId);
  if (!channel || document.visibilityState === "hidden") return;
  if (!channel.unread_count && (channel.last_read_seq || 0) >= (channel.last_seq || 0)) return;
  state.patchChannel(channelId, { unread_count: 0, last_read_seq: channel.last_seq || 0 });
  clearTimeout(readTimers.get(channelId));
  readTimers.set(
    channelId,
    setTimeout(() => {
      const seq = (state.channels.value.get(channelId) || {}).last_seq || 0;
      post(`/v1/channels/${encodeURIComponent(channelId)}/read`, { seq }).catch(() => {});
    }, 250),
  );
}

export async function createChannel(body) {
  const { channel } = await post("/v1/channels", body);
  state.putChannel(channel);
  return channel;
}

export async function uploadFile(file) {
  const type = file.type || "application/octet-stream";
  const { data } = await request("POST", `/v1/uploads?filename=${encodeURIComponent(file.name || "file")}`, {
    body: file,
    headers: { "Content-Type": type },
  });
  return data.attachment;
}

export async function retryReply(messageId) {
  return post(`/v1/messages/${encodeURIComponent(messageId)}/retry`, {});
}

export const listSessions = () => get("/v1/me/sessions");
export const revokeSession = (id) => del(`/v1/me/sessions/${encodeURIComponent(id)}`);
export const createInvitation = (body) => post("/v1/invitations", body);
export const lookupInvitation = (token) => post("/v1/auth/invitations/lookup", { token });
