// Desktop notifications (docs/notifications.md). The server decides who hears about a message
// (per-channel levels stored server-side: all, mentions, muted) and sends `notification.created`
// to that person's streams only; this page shows it through the service worker
// (ServiceWorkerRegistration.showNotification), unless the person is looking at that thread.
// A click on it (sw-notify.js) brings the app forward at the message.
import { signal } from "./deps.js";
import { get, request } from "./api.js";
import * as state from "./state.js";
import { onEvent } from "./realtime.js";
import { messagePath, navigate } from "./router.js";

export const LEVELS = ["all", "mentions", "muted"];
export const LEVEL_LABEL = { all: "All messages", mentions: "Mentions and replies", muted: "Muted" };
export const levels = signal(new Map()); // channel id -> level (absent: the default)
export const defaultLevel = signal("mentions");
export const permission = signal(typeof Notification === "undefined" ? "unsupported" : Notification.permission);

export const levelOf = (channelId) => levels.value.get(channelId) || defaultLevel.value;

export async function loadLevels() {
  const answer = await get("/v1/me/notifications");
  defaultLevel.value = answer.default;
  levels.value = new Map(Object.entries(answer.levels));
}

export async function setLevel(channelId, level) {
  const { data } = await request("PUT", `/v1/channels/${encodeURIComponent(channelId)}/notifications`, { json: { level } });
  const next = new Map(levels.value);
  if (data.level === defaultLevel.value) next.delete(channelId);
  else next.set(channelId, data.level);
  levels.value = next;
  return data.level;
}

/** Ask the browser for permission (only from a click: browsers refuse otherwise). */
export async function askPermission() {
  if (typeof Notification === "undefined") return "unsupported";
  permission.value = await Notification.requestPermission();
  return permission.value;
}

function titleFor(payload, author) {
  const where = `#${payload.channel_name}`;
  if (payload.reason === "mention") return `${author} mentioned you in ${where}`;
  if (payload.reason === "dm") return `${author} (direct message)`;
  if (payload.reason === "reply") return `${author} replied in “${payload.thread_title || where}”`;
  return `${author} in ${where}`;
}

function lookingAt(threadId) {
  const route = state.route.value;
  return document.visibilityState === "visible" && document.hasFocus() && route.name === "thread" && route.threadId === threadId;
}

async function show(event) {
  if (typeof Notification === "undefined") return;
  permission.value = Notification.permission;
  if (permission.value !== "granted") return;
  const payload = event.payload;
  const message = payload.message;
  if (lookingAt(message.thread_id)) return;
  const author = state.displayName(message.author);
  const options = {
    body: message.text || "(attachment)",
    tag: message.id, // one notification per message, however many tabs are open
    icon: "/icons/icon-192.png",
    data: { url: messagePath(message.thread_id, message.id), reason: payload.reason },
  };
  const registration = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration() : null;
  if (registration) await registration.showNotification(titleFor(payload, author), options);
  else new Notification(titleFor(payload, author), options);
}

let started = false;
export function startNotifications() {
  loadLevels().catch(() => {});
  if (started) return;
  started = true;
  onEvent((event) => {
    if (event.event_type === "notification.created") show(event).catch((error) => console.warn("notification:", error));
  });
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      const data = event.data || {};
      if (data.type === "spacechat:open" && typeof data.url === "string" && data.url.startsWith("/")) navigate(data.url);
    });
  }
}

export function resetNotifications() {
  levels.value = new Map();
}
