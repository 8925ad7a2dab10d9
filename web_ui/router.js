// Client-side routes. The server answers index.html for every path that is not a file
// (spacechat_plugin/webui.py), so each of these is a real, shareable URL:
//   /setup#token=…   /invite#token=…   /login   /settings
//   /c/<channel id>                         a channel: its threads
//   /t/<thread id>                          a thread
//   /t/<thread id>/m/<message id>           a message in its thread (deep link)
//   /m/<message id>                         a message, wherever it is (resolved to the above)
//   /tasks?team=<team id>   /tasks/<id>     a team's task board; a task
//   /dashboard   /agents/<id>   /incidents   /audit      observability and operations
//   /memory   /memory/memories   /memory/policies   /memory/m/<id>     memory review (issue 12)
//   /search?q=…&mode=semantic|hybrid                                   search by meaning
import { route } from "./state.js";

export function parse(location) {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  switch (parts[0]) {
    case undefined:
      return { name: "home" };
    case "setup":
      return { name: "setup", token: hash.get("token") || "" };
    case "invite":
      return { name: "invite", token: hash.get("token") || "" };
    case "login":
      return { name: "login", next: new URLSearchParams(location.search).get("next") || "/" };
    case "settings":
      return { name: "settings" };
    case "c":
      return parts[1] ? { name: "channel", channelId: parts[1] } : { name: "home" };
    case "t":
      if (!parts[1]) return { name: "home" };
      return { name: "thread", threadId: parts[1], messageId: parts[2] === "m" ? parts[3] || null : null };
    case "m":
      return parts[1] ? { name: "message", messageId: parts[1] } : { name: "notfound" };
    case "tasks":
      if (parts[1]) return { name: "task", taskId: parts[1] };
      return { name: "tasks", teamId: new URLSearchParams(location.search).get("team") || null };
    case "dashboard":
      return { name: "dashboard" };
    case "agents":
      return parts[1] ? { name: "agent", agentId: parts[1] } : { name: "dashboard" };
    case "incidents":
      return { name: "incidents" };
    case "audit":
      return { name: "audit" };
    case "memory":
      if (parts[1] === "m" && parts[2]) return { name: "memory", tab: "memory", memoryId: parts[2] };
      return { name: "memory", tab: parts[1] || "queue" };
    case "search": {
      const query = new URLSearchParams(location.search);
      return { name: "search", q: query.get("q") || "", mode: query.get("mode") || "hybrid" };
    }
    default:
      return { name: "notfound" };
  }
}

export function navigate(path, { replace = false } = {}) {
  if (path !== location.pathname + location.search + location.hash) {
    history[replace ? "replaceState" : "pushState"](null, "", path);
  }
  route.value = parse(location);
}

export const channelPath = (id) => `/c/${encodeURIComponent(id)}`;
export const threadPath = (id) => `/t/${encodeURIComponent(id)}`;
export const messagePath = (threadId, messageId) =>
  `/t/${encodeURIComponent(threadId)}/m/${encodeURIComponent(messageId)}`;
export const anyMessagePath = (messageId) => `/m/${encodeURIComponent(messageId)}`;
export const tasksPath = (teamId) => (teamId ? `/tasks?team=${encodeURIComponent(teamId)}` : "/tasks");
export const taskPath = (id) => `/tasks/${encodeURIComponent(id)}`;
export const agentPath = (id) => `/agents/${encodeURIComponent(id)}`;

/** Same-origin links navigate in the page (no reload); others behave as usual. */
export function interceptLinks(root) {
  root.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    const link = event.target.closest && event.target.closest("a[href]");
    if (!link || link.target || link.hasAttribute("download")) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/v1/")) return;
    event.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", () => (route.value = parse(location)));
}
