// Service worker of the intercom page: makes it installable, shows a pushed call as a
// notification where the platform delivers Web Push, and opens the page when it is tapped.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", () => { /* network only: calls are live, nothing is cached */ });
// What became of a call, shown in place of its ringing notification (same tag).
const ENDED = { missed: "未接来电", answered: "家人已接听", opened: "门已打开", declined: "已拒绝" };
self.addEventListener("push", (e) => {
  let d = {};
  try { d = e.data ? e.data.json() : {}; } catch (err) { d = {}; }
  if (d.ended) {
    const missed = d.state === "missed";
    e.waitUntil(self.registration.showNotification(ENDED[d.state] || "来电已结束", {
      body: (d.door || "门口") + (missed ? " 有访客呼叫，无人接听" : " 的来电已结束"),
      tag: "qilu-intercom", renotify: false, silent: !missed, requireInteraction: false,
      data: { url: "/r/intercom" } }));
    return;
  }
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
