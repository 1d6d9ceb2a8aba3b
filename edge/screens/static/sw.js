// Service worker of the screen player: the page, its script and its plan come from the network
// when the box answers and from this cache when it does not; content files are immutable
// (named by sha256) and always served from the cache once fetched.
const CACHE = "qilu-screen-v1";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  if (!url.pathname.startsWith("/screen/") || url.pathname.endsWith("/ws")) return;
  if (url.pathname.startsWith("/screen/content/")) {
    e.respondWith(cacheFirst(e.request));
  } else {
    e.respondWith(networkFirst(e.request));
  }
});

async function cacheFirst(req) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(req.url);
  if (hit) return hit;
  const resp = await fetch(req.url);
  if (resp.status === 200) await cache.put(req.url, resp.clone());
  return resp;
}

async function networkFirst(req) {
  const cache = await caches.open(CACHE);
  try {
    const resp = await fetch(req);
    if (resp.status === 200) await cache.put(req.url, resp.clone());
    return resp;
  } catch (err) {
    const hit = await cache.match(req.url);
    if (hit) return hit;
    throw err;
  }
}
