// Spacechat's web UI: boot, the layout, routes and global keys. Plain ES modules, no build step
// (docs/ui.md); the libraries are vendored under vendor/ and imported through deps.js.
import { render, useEffect, useState, effect, HIGHLIGHT_CSS, HIGHLIGHT_DARK_CSS, UPLOT_CSS } from "./deps.js";
import { NetworkError, whenUnauthorized, get } from "./api.js";
import * as state from "./state.js";
import * as realtime from "./realtime.js";
import { threadModels, channelModels, threadModel, channelModel, refetchMessage, openThread, loadThreads, catchUp } from "./store.js";
import { restore as restoreOutbox, flush as flushOutbox } from "./outbox.js";
import { loadMe, loadStructure, refreshChannels, endSession, saveSnapshot, restoreSnapshot } from "./actions.js";
import { parse, navigate, interceptLinks, channelPath, messagePath } from "./router.js";
import { startOps } from "./ops.js";
import { startNotifications } from "./notify.js";
import { startPresence } from "./presence.js";
import { html, Icon, Spinner } from "./views/ui.js";
import { warmUp } from "./markdown.js";
import { Sidebar, ConnectionBadge } from "./views/sidebar.js";
import { ChannelView } from "./views/channel.js";
import { ThreadView } from "./views/thread.js";
import { ProfileView } from "./views/profile.js";
import { SetupView, LoginView, InviteView } from "./views/auth.js";
import { Dialogs, openDialog, openShortcuts } from "./views/dialogs.js";
import { DmsView } from "./views/dms.js";
import { refreshInboxCount } from "./chat.js";

// Views not on the first screen load when first shown (issue 13: a first visit paints a channel
// or a thread, so it fetches and compiles only their modules; index.html preloads exactly the
// modules app.js imports statically, and the service worker precaches every module, so these
// open offline too).
const SettingsView = lazy(() => import("./views/settings.js"), "SettingsView");
const BoardView = lazy(() => import("./views/board.js"), "BoardView");
const TaskView = lazy(() => import("./views/task.js"), "TaskView");
const DashboardView = lazy(() => import("./views/dashboard.js"), "DashboardView");
const AgentView = lazy(() => import("./views/agent.js"), "AgentView");
const IncidentsView = lazy(() => import("./views/incidents.js"), "IncidentsView");
const TimelineView = lazy(() => import("./views/timeline.js"), "TimelineView");
const ApprovalsView = lazy(() => import("./views/approvals.js"), "ApprovalsView");
const AuditView = lazy(() => import("./views/admin.js"), "AuditView");
const SearchView = lazy(() => import("./views/search.js"), "SearchView");
const InboxView = lazy(() => import("./views/inbox.js"), "InboxView");
const MemoryView = lazy(() => import("./views/memory.js"), "MemoryView");

/** A view whose module is imported the first time it is shown (a spinner meanwhile). */
function lazy(load, name) {
  let loaded = null;
  let pending = null;
  const fetchView = () => (pending ||= load().then((module) => (loaded = module[name]), (error) => {
    pending = null; // a later visit tries again
    throw error;
  }));
  return function LazyView(props) {
    const [failed, setFailed] = useState(null);
    const [, setReady] = useState(false);
    useEffect(() => {
      if (loaded) return undefined;
      let live = true;
      fetchView().then(() => live && setReady(true), (error) => live && setFailed(error));
      return () => (live = false);
    }, []);
    if (loaded) return html`<${loaded} ...${props} />`;
    if (failed) return html`<section class="view"><p class="empty" role="alert">This page could not load (${failed.message}). Reload to try again.</p></section>`;
    return html`<section class="view"><div class="loading-center"><${Spinner} /></div></section>`;
  };
}

window.spacechat = { version: 1 }; // timings for the bench and tests (bench/ui.py)

// --- boot ---------------------------------------------------------------------------------------

const PUBLIC_ROUTES = new Set(["setup", "invite", "login"]);
let booting = null;

const mark = (name) => performance.mark("spacechat:" + name);
const idle = window.requestIdleCallback || ((callback) => setTimeout(callback, 1));

async function boot() {
  mark("boot");
  realtime.start(); // alongside /v1/me, not after it: a signed-out stream just answers 401
  // The organisation's structure too: it needs nothing from /v1/me, and a first paint waits for
  // both (one round trip instead of two). Signed out, it is refused and the sign-in page shows.
  let early = loadStructure();
  early.catch(() => {});
  let offline = false;
  for (let attempt = 0; ; attempt++) {
    try {
      await loadMe();
      break;
    } catch (error) {
      if (!(error instanceof NetworkError)) {
        endSession(); // not signed in (any more): forget what this device kept
        const here = location.pathname + location.search;
        navigate(here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`, { replace: true });
        return;
      }
      state.connection.value = navigator.onLine === false ? "offline" : "reconnecting";
      // The server cannot be reached: open with what this device kept (and its unsent messages).
      if (!offline && restoreSnapshot()) {
        offline = true;
        state.booted.value = true;
        restoreOutbox();
        if (state.route.value.name === "home") goHome();
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, Math.min(4000, 500 * 2 ** attempt));
        window.addEventListener("online", () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }
  mark("me");
  realtime.start(); // again, in case a sign-out stopped it meanwhile (a no-op when running)
  idle(warmUp); // while the stream and the structure are on their way
  await realtime.ready();
  mark("ready");
  const route = state.route.value;
  if (route.name === "thread" && !route.messageId) {
    // Fetch the thread's newest page alongside the organisation's structure, not after it.
    const model = threadModel(route.threadId);
    if (!model.loaded && !model.loading) openThread(model);
  } else if (route.name === "channel") {
    // The same for a channel's threads: the first paint waits for one round trip less.
    const model = channelModel(route.channelId);
    if (!model.loaded && !model.loading) loadThreads(model);
  }
  for (let attempt = 0; ; attempt++) {
    const asked = early || loadStructure();
    const wasEarly = early !== null;
    early = null;
    try {
      await asked;
      break;
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      if (wasEarly) continue; // asked before the server could be reached: ask again at once
      await new Promise((resolve) => setTimeout(resolve, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
  mark("structure");
  saveSnapshot();
  state.booted.value = true;
  // What the first screen does not show waits for its first frame, so the view's own requests
  // (a channel's threads, a thread's page) are not queued behind these on a busy server; a tab
  // opened in the background (no frames) starts them soon anyway, for its notifications.
  let started = false;
  const startTheRest = () => {
    if (started) return;
    started = true;
    startOps();
    refreshInboxCount();
    startNotifications();
    startPresence();
  };
  requestAnimationFrame(() => setTimeout(startTheRest, 0));
  setTimeout(startTheRest, 500);
  restoreOutbox();
  if (offline) reopenFailed();
  if (state.route.value.name === "home") goHome();
}

/** Views that could not load while offline load now. */
function reopenFailed() {
  for (const model of threadModels.values()) if (model.error || !model.loaded) openThread(model);
  for (const model of channelModels.values()) if (model.error || !model.loaded) loadThreads(model);
}

function startBoot() {
  if (!booting) booting = boot().finally(() => (booting = null));
  return booting;
}

async function signedIn(next) {
  await startBoot();
  navigate(next, { replace: true });
}

function goHome() {
  const channels = state.channelList.value;
  const last = localStorage.getItem("spacechat:last-channel");
  const target =
    channels.find((c) => c.id === last) || channels.find((c) => c.name === "general") || channels[0];
  if (target) navigate(channelPath(target.id), { replace: true });
}

realtime.onReady(({ first, resumedFrom = null }) => {
  if (!state.booted.value) return;
  catchUp({ first, resumedFrom }); // what was shown from this device's cache
  if (first) {
    loadStructure().then(saveSnapshot, () => {});
    return;
  }
  // Back after a gap: the log replay brought every logged event; stream deltas, presence and
  // typing are live only, so refetch what was streaming and who is here, refresh unread counts
  // and resend what waits in the outbox.
  startPresence();
  for (const model of threadModels.values()) for (const message of model.streaming()) refetchMessage(message.id);
  refreshChannels().catch(() => {});
  flushOutbox();
});

realtime.whenUnauthorized(onSignedOut);
whenUnauthorized(onSignedOut);

function onSignedOut() {
  if (!state.me.value) return;
  endSession();
  navigate(`/login?next=${encodeURIComponent(location.pathname)}`, { replace: true });
}

// --- views ----------------------------------------------------------------------------------------

function currentChannelId(route) {
  if (route.name === "channel") return route.channelId;
  if (route.name === "thread") {
    const model = threadModels.get(route.threadId);
    if (model && model.thread) return model.thread.channel_id;
  }
  return null;
}

function Main({ route }) {
  if (route.name === "channel") return html`<${ChannelView} key=${route.channelId} channelId=${route.channelId} />`;
  if (route.name === "thread") {
    return html`<${ThreadView} key=${route.threadId} threadId=${route.threadId} messageId=${route.messageId} />`;
  }
  if (route.name === "settings") return html`<${SettingsView} />`;
  if (route.name === "profile") return html`<${ProfileView} />`;
  if (route.name === "tasks") return html`<${BoardView} key=${route.teamId || ""} teamId=${route.teamId} />`;
  if (route.name === "task") return html`<${TaskView} key=${route.taskId} taskId=${route.taskId} />`;
  if (route.name === "dashboard") return html`<${DashboardView} />`;
  if (route.name === "agent") return html`<${AgentView} key=${route.agentId} agentId=${route.agentId} />`;
  if (route.name === "incidents") return html`<${IncidentsView} open=${route.open} />`;
  if (route.name === "timeline") return html`<${TimelineView} key=${route.threadId} threadId=${route.threadId} />`;
  if (route.name === "approvals") return html`<${ApprovalsView} />`;
  if (route.name === "audit") return html`<${AuditView} />`;
  if (route.name === "search") return html`<${SearchView} q=${route.q} mode=${route.mode} />`;
  if (route.name === "inbox") return html`<${InboxView} />`;
  if (route.name === "dms") return html`<${DmsView} />`;
  if (route.name === "memory") return html`<${MemoryView} key=${route.tab + (route.memoryId || "")} tab=${route.tab} memoryId=${route.memoryId} />`;
  if (route.name === "message") return html`<${MessageRedirect} messageId=${route.messageId} />`;
  if (route.name === "notfound") return html`<section class="view"><p class="empty">There is nothing at this address.</p></section>`;
  return html`<section class="view"><div class="loading-center"><${Spinner} /></div></section>`;
}

/** /m/<message id>: find the message's thread, then show it there. */
function MessageRedirect({ messageId }) {
  useEffect(() => {
    get(`/v1/messages/${encodeURIComponent(messageId)}`).then(
      ({ message }) => navigate(messagePath(message.thread_id, message.id), { replace: true }),
      () => navigate("/not-found", { replace: true }),
    );
  }, [messageId]);
  return html`<section class="view"><div class="loading-center"><${Spinner} /></div></section>`;
}

function App() {
  const route = state.route.value;
  useEffect(() => {
    if (!PUBLIC_ROUTES.has(route.name) && !state.me.value) startBoot();
    if (route.name === "login" && state.me.value) navigate("/", { replace: true });
    if (route.name === "home" && state.booted.value) goHome();
  }, [route]);

  if (route.name === "setup") return html`<${SetupView} token=${route.token} onSignedIn=${signedIn} />`;
  if (route.name === "invite") return html`<${InviteView} token=${route.token} onSignedIn=${signedIn} />`;
  if (route.name === "login") return html`<${LoginView} next=${route.next} onSignedIn=${signedIn} />`;
  if (!state.booted.value) {
    return html`<main id="main" class="splash" aria-busy="true">
      <img class="logo" src="/icons/icon.svg" alt="" width="56" height="56" />
      <${ConnectionBadge} />
    </main>`;
  }
  const channelId = currentChannelId(route);
  return html`<div class="app">
    <a class="skip-link" href="#main" onClick=${skipToMain}>Skip to content</a>
    <header class="topbar">
      <button type="button" class="icon-button" aria-label="Channels" aria-controls="sidebar"
        aria-expanded=${state.drawerOpen.value ? "true" : "false"}
        onClick=${() => (state.drawerOpen.value = !state.drawerOpen.value)}>
        <${Icon} name="menu" />
      </button>
      <span class="topbar-title">${state.org.value ? state.org.value.name : "Spacechat"}</span>
      <${ConnectionBadge} />
    </header>
    <${Sidebar} currentChannelId=${channelId} />
    ${state.drawerOpen.value && html`<div class="scrim" onClick=${() => (state.drawerOpen.value = false)}></div>`}
    <main id="main" class="main" tabindex="-1"><${Main} route=${route} /></main>
    <div class="sr-only" role="status" aria-live="polite">${state.announcement.value}</div>
    <${Dialogs} />
  </div>`;
}

/** The skip link moves the focus to the main region (without adding #main to the address). */
function skipToMain(event) {
  const main = document.getElementById("main");
  if (!main) return;
  event.preventDefault();
  main.focus();
  main.scrollIntoView({ block: "start" });
}

// --- keys -----------------------------------------------------------------------------------------

function stepChannel(delta) {
  const links = [...document.querySelectorAll("#sidebar .channel-link")];
  if (!links.length) return;
  const at = links.findIndex((a) => a.classList.contains("current"));
  const next = links[(at + delta + links.length) % links.length];
  next.click();
  next.focus();
}

document.addEventListener("keydown", (event) => {
  if (!state.booted.value || openDialog.value) return;
  const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
    event.preventDefault();
    state.drawerOpen.value = true;
    requestAnimationFrame(() => document.getElementById("channel-filter")?.focus());
  } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    stepChannel(event.key === "ArrowUp" ? -1 : 1);
  } else if (typing || event.ctrlKey || event.metaKey || event.altKey) {
    return;
  } else if (event.key === "Escape") {
    if (state.drawerOpen.value) state.drawerOpen.value = false;
    else if (state.route.value.name === "thread") document.querySelector(".thread-view .back")?.click();
  } else if (event.key === "?") {
    openShortcuts();
  } else if (event.key === "/") {
    // Search, as in Slack, GitHub and Gmail.
    event.preventDefault();
    if (state.route.value.name !== "search") navigate("/search");
    requestAnimationFrame(() => document.getElementById("search-box")?.focus());
  } else if (event.key === "n") {
    const box = document.querySelector(".composer-input");
    if (box) {
      event.preventDefault();
      box.focus();
    }
  }
});

// --- start ----------------------------------------------------------------------------------------

function addStylesheet(href, media) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  link.media = media;
  document.head.appendChild(link);
}
addStylesheet(HIGHLIGHT_CSS, "(prefers-color-scheme: light)");
addStylesheet(HIGHLIGHT_DARK_CSS, "(prefers-color-scheme: dark)");
addStylesheet(UPLOT_CSS, "all");

effect(() => {
  const value = state.connection.value;
  document.documentElement.dataset.connection = value;
});

if ("serviceWorker" in navigator && location.protocol !== "file:") {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((error) => console.warn("service worker:", error));
}

state.route.value = parse(location);
interceptLinks(document);
render(html`<${App} />`, document.getElementById("root"));
