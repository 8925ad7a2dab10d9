// The service worker's notification part (loaded by sw.js with importScripts; docs/notifications.md).
// The page shows notifications through the worker's registration; a click brings an open window
// of the app forward at the message (the page navigates in place), or opens one.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const path = typeof data.url === "string" && data.url.startsWith("/") ? data.url : "/";
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => new URL(client.url).origin === self.location.origin);
      if (open) {
        await open.focus();
        open.postMessage({ type: "spacechat:open", url: path });
        return;
      }
      await self.clients.openWindow(path);
    })(),
  );
});
