// Reports reading time on an article every 15 s and when the page is hidden; dwell only grows.
// A file, not an inline script: the box's pages send a CSP without 'unsafe-inline' scripts.
(function () {
  var me = document.currentScript, rid = me.dataset.read, url = me.dataset.url;
  var t0 = Date.now(), acc = 0, vis = true;
  function ms() { return acc + (vis ? Date.now() - t0 : 0); }
  function send() {
    var f = new FormData(); f.append("read_id", rid); f.append("ms", String(ms()));
    navigator.sendBeacon(url, f);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { acc += Date.now() - t0; vis = false; send(); }
    else { t0 = Date.now(); vis = true; }
  });
  addEventListener("pagehide", send);
  setInterval(send, 15000);
})();
