// Spacechat's service worker: the app installs and opens offline. It precaches the app shell and
// the vendored libraries. The page itself (index.html) is fetched network-first, so a server
// that is up always decides what loads; the app's modules and styles are served from the cache
// at once and revalidated behind it (an upgrade shows from the next load on); vendored files
// (immutable, versioned paths) are cache-first. Nothing under /v1 is ever cached: the API and
// the realtime stream go to the network (a page opened under /v1 gets the network's answer that
// navigation preload already fetched, so it is requested once).
importScripts("/vendor-files.js");
importScripts("/sw-notify.js"); // notifications: their own module

// --- caching: the app shell, for opening offline --------------------------------------------------
// (Reading threads offline is the page's own IndexedDB cache, web_ui/cache.js: nothing under /v1
// is cached here.)

const CACHE = "spacechat-shell-v1";
const SHELL = [
  "/",
  "/app.css",
  "/app.js",
  "/deps.js",
  "/actions.js",
  "/agentops.js",
  "/api.js",
  "/cache.js",
  "/chat.js",
  "/interactions.js",
  "/markdown.js",
  "/notify.js",
  "/offline.js",
  "/ops.js",
  "/outbox.js",
  "/presence.js",
  "/realtime.js",
  "/router.js",
  "/state.js",
  "/store.js",
  "/tasks.js",
  "/views/admin.js",
  "/views/agent.js",
  "/views/autocomplete.js",
  "/views/approvals.js",
  "/views/auth.js",
  "/views/board.js",
  "/views/cardinputs.js",
  "/views/cardmaker.js",
  "/views/cards.js",
  "/views/channel.js",
  "/views/chart.js",
  "/views/composer.js",
  "/views/dashboard.js",
  "/views/dialogs.js",
  "/views/dms.js",
  "/views/feed.js",
  "/views/inbox.js",
  "/views/incident.js",
  "/views/incidents.js",
  "/views/memory.js",
  "/views/message.js",
  "/views/metrics.js",
  "/views/notifications.js",
  "/views/opsbuttons.js",
  "/views/reactions.js",
  "/views/search.js",
  "/views/replyops.js",
  "/views/profile.js",
  "/views/settings.js",
  "/views/sidebar.js",
  "/views/task.js",
  "/views/thread.js",
  "/views/timeline.js",
  "/views/ui.js",
  "/views/voice.js",
  "/voice.css",
  "/virtual.js",
  "/manifest.webmanifest",
  "/icons/icon.svg",
  "/icons/icon-192.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll([...SHELL, ...self.VENDOR_FILES]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name)));
      // Vendored files of versions no longer used (their paths carry the version).
      const cache = await caches.open(CACHE);
      const current = new Set(self.VENDOR_FILES);
      for (const request of await cache.keys()) {
        const path = new URL(request.url).pathname;
        if (path.startsWith("/vendor/") && !current.has(path)) await cache.delete(request);
      }
      // The page's request starts while the worker itself starts, not after it.
      if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
      await self.clients.claim();
    })(),
  );
});

async function networkFirst(request, cacheKey, preloaded) {
  const cache = await caches.open(CACHE);
  try {
    const response = (preloaded && (await preloaded)) || (await fetch(request));
    if (response.ok) cache.put(cacheKey || request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(cacheKey || request);
    if (cached) return cached;
    throw error;
  }
}

async function preloadedOrNetwork(request, preloaded) {
  const response = await Promise.resolve(preloaded).catch(() => undefined);
  return response || fetch(request);
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) cache.put(request, response.clone());
  return response;
}

// App files are answered from the cache; once per minute at most, after a page has loaded, each is
// revalidated against the server (ETag) and replaced when it changed.
const REFRESH_EVERY_MS = 60_000;
let refreshedAt = 0;

async function refreshShell() {
  if (Date.now() - refreshedAt < REFRESH_EVERY_MS) return;
  refreshedAt = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 3000)); // after the page's own start-up
  const cache = await caches.open(CACHE);
  for (const path of SHELL) {
    try {
      const cached = await cache.match(path);
      const headers = cached && cached.headers.get("ETag") ? { "If-None-Match": cached.headers.get("ETag") } : {};
      const response = await fetch(path, { cache: "no-store", headers });
      if (response.ok) await cache.put(path, response);
    } catch {
      return; // offline: next time
    }
  }
}

async function cachedThenNetwork(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request, { ignoreSearch: true });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/v1/")) {
    // Not ours to cache or answer, but navigation preload has already asked the network for it
    // (a single sign-on link, an attachment opened in a tab): hand that answer on. Left to the
    // browser, the page is requested a second time, and a sign-on callback works only once.
    if (request.mode === "navigate") event.respondWith(preloadedOrNetwork(request, event.preloadResponse));
    return;
  }
  if (request.mode === "navigate") {
    // Every page of the app is the same shell (the server answers index.html for them too).
    event.respondWith(networkFirst(request, "/", event.preloadResponse));
    event.waitUntil(refreshShell());
  } else if (url.pathname.startsWith("/vendor/")) {
    event.respondWith(cacheFirst(request));
  } else {
    event.respondWith(cachedThenNetwork(request));
  }
});
