// Qilu screen player. The box decides WHAT plays (edge/screens/resolver.py) and sends a plan:
// time segments, each cycling a list of (content id, duration ms) from an anchor instant. This
// page only does that cycling arithmetic by the clock, so it keeps playing from its last plan
// (kept in localStorage, files kept as in-memory blobs and in the service worker's cache) while
// the box or the link is down. Proof of play is queued in localStorage until the box acks it.
(() => {
  "use strict";
  const SCREEN = JSON.parse(document.body.dataset.screen);
  const PLAN_KEY = "qilu-plan-" + SCREEN;
  const PLAYS_KEY = "qilu-plays-" + SCREEN;
  const KEY_KEY = "qilu-key-" + SCREEN;
  const layers = [document.getElementById("layer-a"), document.getElementById("layer-b")];
  const statusEl = document.getElementById("status");
  const UNAUTHORISED = "屏幕未授权，请联系物业";

  let plan = null;
  let offset = 0; // box clock minus this clock, ms
  let front = -1; // index of the visible layer
  let shown = null; // {key, cid, source}
  let prepared = null; // {key, cid, layer, ready: Promise}
  let playing = null; // {id, content_id, started_at}
  let timer = null;
  let busy = false;
  let ws = null;
  let retry = 1000;
  const blobs = new Map(); // src -> object URL
  const warmed = new Set(); // URLs fetched through the service worker
  let queue = load(PLAYS_KEY) || [];
  // The screen's device key: configured once as the page address's fragment
  // (/screen/<id>#key=...), which never goes over the network; kept in local storage so a
  // reload without it (or from the service worker's cache) still authenticates.
  let key = load(KEY_KEY);
  const fromUrl = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (fromUrl) {
    key = decodeURIComponent(fromUrl[1]);
    save(KEY_KEY, key);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function load(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch (e) { return null; }
  }
  function save(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* full: keep in memory */ }
  }
  function now() { return Date.now() + offset; }
  function mod(a, m) { return ((a % m) + m) % m; }
  // What an item looks like in the current plan: staff may correct an item in place (same id),
  // and the screen must then show the correction, not what it built from the old plan.
  function sig(cid) { return JSON.stringify(plan.content[cid] || null); }
  function rid() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return "pr-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // --- the plan --------------------------------------------------------------------------------
  function itemAt(t) {
    const segs = plan.segments;
    let seg = segs.find((s) => s.start <= t && t < s.end);
    if (!seg) seg = t < segs[0].start ? segs[0] : segs[segs.length - 1]; // past the horizon: keep cycling
    if (seg.emergency && seg.until && t >= seg.until) {
      // Offline past the plan: an emergency that has ended never plays again; the latest
      // ordinary segment does (the box plans past an emergency's end, so there is one).
      const calm = segs.filter((s) => !s.emergency && s.start <= t);
      seg = calm.length ? calm[calm.length - 1] : null;
      if (!seg) return { key: "none", cid: "", source: "", start: t, end: t + 1000, layout: null, emergency: null };
    }
    const cycle = seg.items.reduce((a, it) => a + it[1], 0);
    const off = mod(t - seg.anchor, cycle);
    let acc = 0;
    for (let i = 0; i < seg.items.length; i++) {
      const [cid, dur] = seg.items[i];
      if (off < acc + dur) {
        const start = t - (off - acc);
        const end = t >= seg.end ? start + dur : Math.min(start + dur, seg.end);
        return { key: seg.source + "|" + start + "|" + i, cid, source: seg.source, start, end,
          layout: seg.layout || null, emergency: seg.emergency || null };
      }
      acc += dur;
    }
  }

  function setPlan(p, live) {
    if (live) offset = p.server_now - Date.now();
    if (!p.segments || !p.segments.length) return;
    const same = plan && plan.version === p.version;
    plan = p;
    if (same) return;
    applyLayout(p.layout || { name: "full" });
    save(PLAN_KEY, p);
    preload();
    prepared = null;
    tick();
  }

  function preload() {
    // Under the service worker, fetch each file (and the page itself) once more so that its
    // cache holds them for a reload while the box is down; later fetches are cache hits.
    const ctl = "serviceWorker" in navigator && navigator.serviceWorker.controller;
    const srcs = Object.values(plan.content).map((c) => c.src).filter(Boolean);
    if (ctl) {
      for (const u of [location.pathname, "/screen/static/player.js", "/screen/static/player.css", ...srcs]) {
        if (!warmed.has(u)) { warmed.add(u); fetch(u).catch(() => warmed.delete(u)); }
      }
    }
    for (const c of Object.values(plan.content)) {
      if (!c.src || blobs.has(c.src)) continue;
      blobs.set(c.src, null);
      fetch(c.src)
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.status))))
        .then((b) => blobs.set(c.src, URL.createObjectURL(b)))
        .catch(() => blobs.delete(c.src));
    }
  }

  // --- rendering ---------------------------------------------------------------------------------
  function build(layer, cid, emergency) {
    const c = plan.content[cid] || { kind: "html", title: "", body: "" };
    const em = c.emergency || emergency; // a text notice's own, or its emergency segment's
    for (const v of layer.querySelectorAll("video")) v.pause();
    layer.replaceChildren();
    let ready = Promise.resolve();
    if (c.kind === "image") {
      const img = document.createElement("img");
      img.src = blobs.get(c.src) || c.src;
      layer.appendChild(img);
      ready = img.decode().catch(() => {});
    } else if (c.kind === "video") {
      const v = document.createElement("video");
      v.muted = true; v.autoplay = true; v.loop = true; v.playsInline = true;
      v.src = blobs.get(c.src) || c.src;
      layer.appendChild(v);
      ready = new Promise((ok) => { v.addEventListener("canplay", ok, { once: true }); v.addEventListener("error", ok, { once: true }); });
    } else if (c.kind === "url") {
      const f = document.createElement("iframe");
      f.src = c.url;
      layer.appendChild(f);
      ready = new Promise((ok) => f.addEventListener("load", ok, { once: true }));
    } else {
      const d = document.createElement("div");
      d.className = "notice" + (em ? " emergency" : "");
      const level = { critical: "紧急通知", warning: "预警通知", info: "重要通知" }[em];
      if (level && level !== c.title) { // a title that says it already needs no badge
        const badge = document.createElement("div");
        badge.className = "badge";
        badge.textContent = level;
        d.appendChild(badge);
      }
      const h = document.createElement("h1");
      h.textContent = c.title;
      const b = document.createElement("div");
      b.className = "body";
      b.textContent = c.body || "";
      d.append(h, b);
      if (em) { // who issued it and until when: residents must know it is real
        const meta = document.createElement("div");
        meta.className = "meta";
        const office = document.createElement("span");
        office.className = "office";
        office.textContent = "发布：" + (c.office || "物业服务中心");
        const until = document.createElement("span");
        until.className = "until";
        until.textContent = c.ends_at ? "有效至 " + fmtTime(c.ends_at, true) : "";
        meta.append(office, until);
        d.appendChild(meta);
      }
      layer.appendChild(d);
    }
    // Never wait long: a slow item is shown as it is rather than holding the old one.
    return Promise.race([ready, new Promise((ok) => setTimeout(ok, 1500))]);
  }

  function raise(i) {
    const old = front;
    layers[i].classList.add("front");
    front = i;
    if (old >= 0 && old !== i) {
      layers[old].classList.remove("front");
      for (const v of layers[old].querySelectorAll("video")) v.pause();
    }
    for (const v of layers[i].querySelectorAll("video")) v.play().catch(() => {});
  }

  function prepare(next) {
    const i = front === 0 ? 1 : 0;
    prepared = { key: next.key, cid: next.cid, layer: i, ready: build(layers[i], next.cid, next.emergency) };
  }

  async function show(cur) {
    const t = now();
    endPlay(t);
    playing = { id: rid(), content_id: cur.cid, started_at: new Date(t).toISOString() };
    cur.sig = sig(cur.cid);
    if (shown && shown.cid === cur.cid && shown.source === cur.source && shown.sig === cur.sig &&
        front >= 0) {
      shown = cur; // the same item again (one-item playlist): keep it on screen
      return;
    }
    let p = prepared && prepared.key === cur.key ? prepared : null;
    if (!p) {
      const i = front === 0 ? 1 : 0;
      p = { layer: i, ready: build(layers[i], cur.cid, cur.emergency) };
    }
    prepared = null;
    shown = cur;
    await p.ready;
    if (!plan) return; // revoked while it was being built
    raise(p.layer);
    setLayoutName(currentLayout());
    document.body.classList.toggle("emergency",
      !!(cur.emergency || (plan.content[cur.cid] || {}).emergency));
    document.body.dataset.showing = cur.cid;
  }

  async function tick() {
    clearTimeout(timer);
    if (!plan) return;
    if (busy) { timer = setTimeout(tick, 20); return; }
    busy = true;
    let wait = 200;
    try {
      const t = now();
      const cur = itemAt(t);
      if (!shown || shown.key !== cur.key || shown.sig !== sig(cur.cid)) {
        await show(cur);
      } else if (!prepared && cur.end - t < 3000) {
        prepare(itemAt(cur.end));
      }
      wait = Math.max(20, Math.min(200, cur.end - now()));
    } finally {
      busy = false;
      timer = setTimeout(tick, wait);
    }
  }

  // --- zones: header (name, clock, date), ticker, side (edge/screens/layouts.py) ---------------
  let tz = "Asia/Shanghai";
  const byId = (id) => document.getElementById(id);
  function fmtTime(ms, withDay) {
    const f = new Intl.DateTimeFormat("zh-CN", { timeZone: tz, month: "numeric", day: "numeric",
      weekday: "long", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    const today = Object.fromEntries(f.formatToParts(new Date(now())).map((x) => [x.type, x.value]));
    const clock = p.hour + ":" + p.minute;
    if (withDay === "date") return p.month + "月" + p.day + "日 " + p.weekday;
    return withDay && (p.day !== today.day || p.month !== today.month) ? p.month + "月" + p.day + "日 " + clock : clock;
  }
  let layoutNow = null;
  function tickClock() {
    byId("clock").textContent = fmtTime(now(), false);
    byId("date").textContent = fmtTime(now(), "date");
    if (plan && plan.layout) setLayoutName(currentLayout());
  }
  // A schedule entry's own layout wins while it plays; else the screen's (by the clock).
  function currentLayout() {
    return (shown && shown.layout) || layoutAt(plan.layout);
  }
  // [[player.layout_times]]: another layout in a daily window, by this page's clock (box time)
  function layoutAt(l) {
    const hm = fmtTime(now(), false);
    for (const t of l.times || []) {
      const inside = t.start < t.end ? hm >= t.start && hm < t.end : hm >= t.start || hm < t.end;
      if (inside) return t.name;
    }
    return l.name;
  }
  function setLayoutName(name) {
    if (name === layoutNow) return;
    layoutNow = name;
    document.body.classList.remove("layout-full", "layout-standard", "layout-side");
    document.body.classList.add("layout-" + name);
  }
  function applyLayout(l) {
    tz = l.tz || tz;
    layoutNow = null;
    setLayoutName((shown && shown.layout) || layoutAt(l));
    byId("community").textContent = l.community || "";
    const lines = l.ticker || [];
    document.body.classList.toggle("no-ticker", !lines.length);
    const run = byId("ticker-run");
    run.replaceChildren(...lines.map((t) => { const s = document.createElement("span"); s.textContent = t; return s; }));
    // a steady reading speed whatever the length: about 6 characters a second
    run.style.setProperty("--ticker-s", Math.max(12, Math.round(lines.join("").length / 6 + 10)) + "s");
    const side = l.side || {};
    byId("side-qr").innerHTML = side.qr_svg || ""; // made by the box (edge/access/passes.py)
    byId("side-caption").textContent = side.qr_svg ? side.qr_caption || "" : "";
    const w = side.weather, box = byId("weather");
    box.replaceChildren();
    if (w) {
      const t = document.createElement("div"); t.className = "temp"; t.textContent = w.temp || "";
      const d = document.createElement("div"); d.textContent = [w.text, w.range, w.wind].filter(Boolean).join(" ");
      box.append(t, d);
      if (w.aqi) { const a = document.createElement("div"); a.textContent = "空气质量 " + w.aqi; box.appendChild(a); }
    }
    tickClock();
  }
  setInterval(tickClock, 1000);

  // --- proof of play -------------------------------------------------------------------------
  function endPlay(t) {
    if (playing && !playing.content_id) playing = null; // nothing was shown
    if (!playing) return;
    queue.push({ ...playing, ended_at: new Date(t).toISOString() });
    playing = null;
    if (queue.length > 20000) queue = queue.slice(-20000); // weeks offline on a busy screen
    save(PLAYS_KEY, queue);
    flush();
  }

  function flush() {
    if (!queue.length) return;
    const batch = queue.slice(0, 200);
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "plays", records: batch }));
    } else {
      fetch("/screen/" + encodeURIComponent(SCREEN) + "/plays", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Screen-Key": key || "" },
        body: JSON.stringify({ records: batch }),
      }).then((r) => (r.ok ? r.json() : null)).then((a) => a && forget(a)).catch(() => {});
    }
  }

  function forget(answer) {
    const done = new Set([...(answer.ack || []), ...(answer.rejected || [])]);
    queue = queue.filter((r) => !done.has(r.id));
    save(PLAYS_KEY, queue);
    if (done.size && queue.length) flush();
  }

  // --- overlays (a login code at a door's screen) ------------------------------------------------
  // Drawn over both layers; the plan keeps cycling underneath and the overlay goes away by
  // itself after show_ms. Never stored: a reload does not bring it back.
  let overlayEl = null;
  let overlayTimer = null;
  let overlays = 0;

  function hideOverlay() {
    clearTimeout(overlayTimer);
    if (overlayEl) overlayEl.remove();
    overlayEl = null;
    delete document.body.dataset.overlay;
  }

  function showOverlay(o) {
    if (o.kind !== "login_code") return;
    hideOverlay();
    const box = document.createElement("div");
    box.className = "overlay login-code";
    const qr = document.createElement("div");
    qr.className = "qr-box";
    qr.innerHTML = o.qr_svg || ""; // made by the box (edge/portal/codes.py), not user text
    const text = document.createElement("div");
    text.className = "text";
    const hello = document.createElement("div");
    hello.className = "hello";
    hello.textContent = (o.name || "居民") + "，欢迎回家";
    const how = document.createElement("div");
    how.className = "how";
    how.textContent = o.how || "手机扫码，或在居民端输入登录码";
    const code = document.createElement("div");
    code.className = "code";
    code.textContent = o.code_text || o.code; // "1234 5678": the login form ignores spaces
    const note = document.createElement("div");
    note.className = "note";
    note.textContent = o.valid_min + " 分钟内有效，仅限本人使用一次";
    text.append(hello, how, code, note);
    box.append(qr, text);
    document.body.appendChild(box);
    overlayEl = box;
    overlays += 1;
    document.body.dataset.overlay = o.kind;
    overlayTimer = setTimeout(hideOverlay, o.show_ms || 30000);
  }

  // --- link to the box -------------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    if (!key) unauthorised();
    ws = new WebSocket(proto + "//" + location.host + "/screen/" + encodeURIComponent(SCREEN) +
      "/ws?key=" + encodeURIComponent(key || ""));
    ws.onopen = () => {
      retry = 1000; statusEl.textContent = ""; document.body.classList.remove("unauthorised"); flush();
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "plan") setPlan(m.plan, true);
      else if (m.type === "ack") forget(m);
      else if (m.type === "overlay") showOverlay(m.overlay);
    };
    let opened = false;
    ws.addEventListener("open", () => { opened = true; });
    ws.onclose = (ev) => {
      if (ev.code === 4401) revoked();
      else if (!opened && key) {
        // Refused before the upgrade: the box down, or the key revoked while this page was
        // closed (a browser cannot read a refused upgrade's status). The plan address says
        // which: 401 is the key, and the saved plan must not play on.
        const k = key;
        fetch("/screen/" + encodeURIComponent(SCREEN) + "/plan?key=" + encodeURIComponent(k))
          .then((r) => { if (r.status === 401 && key === k) revoked(); })
          .catch(() => { /* the box is down: keep playing offline */ });
      }
      if (key) statusEl.textContent = "离线播放";
      else unauthorised();
      // Back off with jitter so many screens do not hammer a box that is starting up.
      setTimeout(connect, retry * (0.5 + Math.random()));
      retry = Math.min(retry * 2, 30000);
    };
  }

  // The box closes with 4401 when staff revoked or replaced this screen's key: stop playing
  // (a stolen or retired player) rather than cycle the last plan from local storage for ever.
  function revoked() {
    endPlay(now());
    plan = null; shown = null; prepared = null; key = null; front = -1;
    clearTimeout(timer);
    try { localStorage.removeItem(PLAN_KEY); localStorage.removeItem(KEY_KEY); } catch (e) { /* */ }
    for (const l of layers) {
      for (const v of l.querySelectorAll("video")) v.pause();
      l.replaceChildren();
      l.classList.remove("front");
    }
    delete document.body.dataset.showing;
    document.body.classList.remove("emergency");
    unauthorised();
  }

  // A screen without a working key shows nothing of the community: no notices in the ticker,
  // no name, QR code, weather or login code; only a neutral line saying whom to call.
  function unauthorised() {
    hideOverlay();
    byId("community").textContent = "";
    byId("ticker-run").replaceChildren();
    byId("side-qr").replaceChildren();
    byId("side-caption").textContent = "";
    byId("weather").replaceChildren();
    document.body.classList.add("no-ticker", "unauthorised");
    statusEl.textContent = UNAUTHORISED;
  }

  window.qiluPlayer = {
    get plan() { return plan; },
    get queue() { return queue; },
    get preloaded() { return [...blobs.values()].filter(Boolean).length; },
    get overlays() { return overlays; },
    screen: SCREEN,
    get key() { return key; }, // for a panel on this page (edge/intercom's call panel)
    itemAt,
  };
  const cached = load(PLAN_KEY);
  if (cached) setPlan(cached, false);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/screen/sw.js", { scope: "/screen/" }).catch(() => {});
    navigator.serviceWorker.addEventListener("controllerchange", () => plan && preload());
  }
  connect();
  setInterval(() => { if (ws && ws.readyState === WebSocket.OPEN) ws.send('{"type":"hello"}'); flush(); }, 15000);
})();
