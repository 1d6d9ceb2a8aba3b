// Service worker of the intercom page: makes it installable, shows a pushed call as a
// notification where the platform delivers Web Push, and opens the page when it is tapped.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", () => { /* network only: calls are live, nothing is cached */ });
self.addEventListener("push", (e) => {
  let d = {};
  try { d = e.data ? e.data.json() : {}; } catch (err) { d = {}; }
  e.waitUntil(self.registration.showNotification("门口来电", {
    body: (d.door || "门口") + " 有访客呼叫 " + (d.flat || ""), tag: "qilu-intercom",
    renotify: true, requireInteraction: true, data: { url: "/r/intercom" } }));
});
self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  e.waitUntil(self.clients.matchAll({ type: "window" }).then((list) => {
    for (const c of list) if (c.url.includes("/r/intercom")) return c.focus();
    return self.clients.openWindow("/r/intercom");
  }));
});
