// A resident's phone page for door calls: gets the flat's calls over a WebSocket on the
// community Wi-Fi, or by long-polling when the socket cannot open (away, through the cloud
// relay, which carries requests and not sockets). Rings (WebAudio beeps, vibration, a
// notification when hidden), shows the door picture as refreshed JPEG snapshots, and answers,
// opens, issues a pass or declines with one tap.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { version: -1, call: null, mode: "", frames: 0, rings: [], firstFrameAt: null,
    answeredAt: null };
  window.intercom = state; // read by the tests and bench/intercom.py
  let elder = false;
  try { elder = localStorage.getItem("qilu-elder") === "1"; } catch (e) { elder = false; }
  $("elder").checked = elder;
  document.body.classList.toggle("elder", elder);
  $("elder").addEventListener("change", () => {
    elder = $("elder").checked;
    try { localStorage.setItem("qilu-elder", elder ? "1" : "0"); } catch (e) { /* private mode */ }
    document.body.classList.toggle("elder", elder);
    render();
  });

  // --- ringing ---------------------------------------------------------------------------
  let audio = null, ringTimer = null;
  function unlockAudio() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      $("sound").textContent = "来电铃声已开启";
    } catch (e) { audio = null; }
  }
  $("sound").addEventListener("click", unlockAudio);
  function beep() {
    if (!audio) unlockAudio();
    if (!audio) return;
    const t = audio.currentTime;
    for (const [f, s] of [[880, 0], [660, 0.25]]) {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f;
      g.gain.setValueAtTime(0.3, t + s);
      g.gain.setValueAtTime(0, t + s + 0.2);
      o.connect(g).connect(audio.destination);
      o.start(t + s);
      o.stop(t + s + 0.22);
    }
    if (navigator.vibrate) navigator.vibrate([300, 200, 300]);
  }
  function ring(on) {
    if (on && !ringTimer) {
      beep();
      ringTimer = setInterval(beep, 1500);
      notify();
    } else if (!on && ringTimer) {
      clearInterval(ringTimer);
      ringTimer = null;
    }
  }
  function notify() {
    if (!document.hidden || !("serviceWorker" in navigator) || Notification.permission !== "granted") return;
    navigator.serviceWorker.ready.then((reg) => reg.showNotification("门口来电", {
      body: (state.call && state.call.door) + " 有访客呼叫", tag: "qilu-intercom", renotify: true,
      requireInteraction: true })).catch(() => {});
  }

  // --- the door picture ------------------------------------------------------------------
  let picCall = null;
  const pic = $("pic");
  pic.addEventListener("load", () => {
    state.frames += 1;
    if (state.firstFrameAt === null) state.firstFrameAt = performance.now();
    $("nopic").hidden = true;
    setTimeout(nextPicture, state.mode === "ws" ? 200 : 1000);
  });
  pic.addEventListener("error", () => {
    // not the browser's broken-picture icon: say it, and try again
    pic.removeAttribute("src");
    $("nopic").hidden = false;
    $("nopic").textContent = "门口画面暂时连不上，正在重试…";
    setTimeout(nextPicture, 1500);
  });
  function nextPicture() {
    const c = state.call;
    if (state.rtc === "connected" && state.videoFrames > 0) { picCall = null; return; } // live video
    if (!c || c.ended || !c.has_camera || !showPicture(c)) { picCall = null; return; }
    picCall = c.id;
    pic.src = "/r/intercom/calls/" + encodeURIComponent(c.id) + "/snapshot.jpg?t=" + Date.now();
  }
  function showPicture(c) { return c.answered_by_me || (elder && c.state === "ringing"); }

  // --- live video and two-way audio (WebRTC); the snapshots stay as the fallback ----------
  const vid = $("vid"), aud = $("aud");
  let rtc = null;
  state.rtc = "";
  state.videoFrames = 0;
  state.videoAt = null;
  state.rxAudioPeak = 0;
  window.intercomPc = () => (rtc ? rtc.pc : null); // for the tests' getStats
  let frameGen = 0;
  function countFrames() {
    // one counting chain per call's video (a new call's chain ends the old one)
    if (!vid.requestVideoFrameCallback) return;
    const gen = ++frameGen;
    const step = () => vid.requestVideoFrameCallback(() => {
      if (gen !== frameGen) return;
      state.videoFrames += 1;
      if (state.videoAt === null) state.videoAt = performance.now();
      if (state.videoFrames === 1) { vid.hidden = false; $("nopic").hidden = true; }
      step();
    });
    step();
  }
  function listen(stream) {
    // how loud the door is, for the page and its tests (WebAudio analyser)
    try {
      const ctx = audio || new (window.AudioContext || window.webkitAudioContext)();
      audio = ctx;
      const an = ctx.createAnalyser();
      ctx.createMediaStreamSource(stream).connect(an);
      const buf = new Float32Array(an.fftSize);
      const tick = () => {
        if (!rtc) return;
        an.getFloatTimeDomainData(buf);
        for (const v of buf) state.rxAudioPeak = Math.max(state.rxAudioPeak, Math.abs(v));
        setTimeout(tick, 100);
      };
      tick();
    } catch (e) { /* no WebAudio: the sound still plays */ }
  }
  function iceDone(pc, ms) {
    return new Promise((res) => {
      if (pc.iceGatheringState === "complete") { res(); return; }
      const t = setTimeout(res, ms);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") { clearTimeout(t); res(); }
      });
    });
  }
  async function startRtc(c) {
    if (rtc || !window.RTCPeerConnection) return;
    rtc = { id: c.id, pc: null, mic: null };
    state.rtc = "connecting";
    try {
      // TURN credentials come only for the call this phone answered, while it lasts
      const cr = await fetch("/r/intercom/rtc?call=" + encodeURIComponent(c.id),
        { credentials: "same-origin", cache: "no-store" });
      if (!cr.ok) throw new Error("off");
      const pc = new RTCPeerConnection(await cr.json());
      rtc.pc = pc;
      try { rtc.mic = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (e) { rtc.mic = null; }
      if (rtc.mic) rtc.mic.getTracks().forEach((t) => pc.addTrack(t, rtc.mic));
      else pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (e) => {
        const s = new MediaStream([e.track]);
        if (e.track.kind === "video") { vid.srcObject = s; countFrames(); }
        else { aud.srcObject = s; listen(s); }
      };
      pc.onconnectionstatechange = () => {
        state.rtc = pc.connectionState;
        if (pc.connectionState === "failed") stopRtc("failed");
      };
      await pc.setLocalDescription(await pc.createOffer());
      await iceDone(pc, 4000);
      const r = await fetch("/r/intercom/calls/" + encodeURIComponent(c.id) + "/rtc", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }) });
      if (!r.ok) throw new Error("HTTP " + r.status);
      await pc.setRemoteDescription(await r.json());
      setTimeout(() => { if (rtc && rtc.pc === pc && pc.connectionState !== "connected") stopRtc("timeout"); }, 10000);
    } catch (e) {
      stopRtc(e.message);
    }
  }
  function stopRtc(why) {
    if (!rtc) return;
    if (rtc.pc) rtc.pc.close();
    if (rtc.mic) rtc.mic.getTracks().forEach((t) => t.stop());
    rtc = null;
    frameGen += 1;
    state.videoFrames = 0;
    state.rtc = why || "closed";
    vid.hidden = true;
    vid.srcObject = null;
    aud.srcObject = null;
    nextPicture(); // back to snapshots while the call lasts
  }

  // --- view ------------------------------------------------------------------------------
  const WHAT = { ringing: "有访客在门口呼叫您家", answered: "通话中", opened: "门已打开",
    missed: "未接来电", declined: "已拒绝" };
  function apply(view) {
    if (!view || typeof view.version !== "number" || view.version < state.version) return;
    state.version = view.version;
    const calls = view.calls || [];
    // the newest live call, else the newest one just ended
    const live = calls.filter((c) => !c.ended);
    const c = live.length ? live[live.length - 1] : calls[calls.length - 1] || null;
    if (c && c.state === "ringing" && !c.ended && !(state.call && state.call.id === c.id)) {
      state.rings.push({ id: c.id, t: performance.now(), wall: Date.now() });
      showError(""); // what went wrong with an earlier call is not about this one
    }
    if (c && c.state === "ringing" && !c.ended) c.ringUntil = performance.now() + c.ring_left_s * 1000;
    state.call = c;
    showMissed(view.missed || []);
    render();
  }
  // The box says when a call stops ringing. If nothing has come by then (the phone left the
  // Wi-Fi, the socket stalled, the box went away), stop ringing here: the call is over at the
  // box either way, and a phone must not ring and offer 开门 for ever.
  const LATE_MS = 4000;
  setInterval(() => {
    const c = state.call;
    if (c && !c.ended && c.state === "ringing" && c.ringUntil &&
        performance.now() > c.ringUntil + LATE_MS) {
      c.ended = true;
      c.lost = true;
      linkDown();
      render();
    }
  }, 1000);
  // The day's missed calls stay listed (door and time) after the live call is gone: who
  // comes back to the phone, or opens the page from the notification, sees that someone rang.
  function when(iso) {
    const d = new Date(iso), now = new Date();
    const hm = d.getHours() + ":" + String(d.getMinutes()).padStart(2, "0");
    return d.toDateString() === now.toDateString() ? "今天 " + hm
      : (d.getMonth() + 1) + "月" + d.getDate() + "日 " + hm;
  }
  function showMissed(list) {
    const ul = $("missedlist");
    ul.textContent = "";
    for (const m of list) {
      const li = document.createElement("li");
      li.textContent = when(m.at) + "　" + m.door + " 有访客呼叫，无人接听";
      ul.appendChild(li);
    }
    $("missed").hidden = !list.length;
  }
  function render() {
    const c = state.call;
    const ringing = !!c && c.state === "ringing" && !c.ended;
    ring(ringing);
    document.body.dataset.state = c ? (c.ended ? "ended" : c.state) : "idle";
    $("idle").hidden = !!c;
    $("ring").hidden = !c;
    if (!c) return;
    $("from").textContent = c.door;
    let what = WHAT[c.state] || c.state;
    if (c.answered_by_other) what = "家人已接听";
    if (c.ended && c.state === "answered") what = c.pass_pin ? "已发临时通行码" : "通话已结束";
    if (c.lost) what = "网络中断，来电已结束";
    $("what").textContent = what;
    const mine = !c.ended && !c.answered_by_other;
    $("answer").hidden = !(mine && c.state === "ringing");
    $("open").hidden = !mine;
    $("later").hidden = !mine;
    $("decline").hidden = !(mine && c.state === "ringing");
    $("actions").classList.toggle("answered", c.state !== "ringing");
    $("pin").textContent = c.pass_pin ? "临时通行码 " + c.pass_pin + "（已显示在门口屏幕）" : "";
    if (!c.ended && showPicture(c)) {
      $("nopic").textContent = "正在获取门口画面…";
      if (picCall !== c.id) nextPicture();
      if (c.answered_by_me && !rtc && state.rtc === "") startRtc(c);
    } else if (c.ended) {
      stopRtc("ended");
      state.rtc = "";
      $("nopic").hidden = false;
      $("nopic").textContent = c.lost ? "请检查手机网络" : "通话已结束";
      pic.removeAttribute("src");
    }
  }
  async function act(name) {
    const c = state.call;
    if (!c) return;
    showError("");
    const tapped = performance.now();
    unlockAudio();
    try {
      let r;
      try {
        r = await fetch("/r/intercom/calls/" + encodeURIComponent(c.id) + "/" + name,
          { method: "POST", credentials: "same-origin" });
      } catch (e) { // no answer at all: the browser's own words are English ("Failed to fetch")
        linkDown();
        throw new Error(NO_NETWORK[name] || "网络不通，操作没有成功，请检查手机网络后再试");
      }
      const data = await r.json().catch(() => ({}));
      // the box says what went wrong in Chinese (error_zh); a bare status: say it plainly
      if (!r.ok) throw new Error(data.error_zh || FAILED[r.status] || "操作没有成功，请稍后再试");
      if (name === "answer" || name === "open") state.answeredAt = state.answeredAt || tapped;
      apply(data);
    } catch (e) {
      showError(e.message);
    }
  }
  const NO_NETWORK = { open: "网络不通，门没有打开，请检查手机网络后再试",
    later: "网络不通，临时通行码没有发出，请检查手机网络后再试" };
  const FAILED = { 401: "登录已过期，请重新登录", 404: "这个来电已结束", 409: "来电已结束或家人已接听",
    429: "操作太频繁，请稍后再试", 503: "门禁设备暂时连不上，请稍后再试" };
  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }
  for (const n of ["answer", "open", "later", "decline"]) $(n).addEventListener("click", () => act(n));

  // --- getting the calls -----------------------------------------------------------------
  // The box sends the view at least every 15 s; a socket silent for longer has stalled.
  let sock = null, heard = 0;
  function linkDown() {
    $("link").textContent = "网络中断，正在重新连接…";
    if (sock) { const w = sock; sock = null; try { w.close(); } catch (e) { /* gone */ } reconnect(); }
  }
  function reconnect() { setTimeout(connect, 2000); }
  setInterval(() => { if (sock && sock.readyState === 1 && performance.now() - heard > 40000) linkDown(); }, 5000);
  function connect() {
    let opened = false;
    let ws;
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/r/intercom/ws");
    } catch (e) { poll(); return; }
    sock = ws;
    ws.onopen = () => { opened = true; heard = performance.now(); state.mode = "ws"; $("link").textContent = "已连接（小区网络）"; };
    ws.onmessage = (e) => { heard = performance.now(); try { apply(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
    ws.onclose = (e) => {
      if (e.code === 4401) { location.href = "/r/login"; return; } // signed out at the box
      if (sock !== ws) return; // given up on already (linkDown)
      sock = null;
      // no socket here (the cloud relay) or none now: long-poll (it also says when the
      // session is gone); one that worked and broke: try it again
      if (!opened) { poll(); return; }
      $("link").textContent = "网络中断，正在重新连接…";
      reconnect();
    };
  }
  async function poll() {
    state.mode = "poll";
    $("link").textContent = "已连接（远程）";
    for (;;) {
      try {
        const r = await fetch("/r/intercom/poll?after=" + state.version, { cache: "no-store", credentials: "same-origin" });
        if (r.status === 401 || r.status === 303) { location.href = "/r/login"; return; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        apply(await r.json());
      } catch (e) {
        $("link").textContent = "连接中断，重试中…";
        await new Promise((res) => setTimeout(res, 2000));
      }
    }
  }
  // --- Web Push: ring with the page closed, where the platform delivers it ----------------
  function b64(s) {
    const pad = "=".repeat((4 - s.length % 4) % 4);
    const raw = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function subscribePush() {
    const note = $("pushnote");
    try {
      if (!("serviceWorker" in navigator) || !("PushManager" in window)) throw new Error("unsupported");
      if ((await Notification.requestPermission()) !== "granted") throw new Error("denied");
      const r = await fetch("/r/intercom/push", { credentials: "same-origin" });
      if (!r.ok) throw new Error("off");
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true,
        applicationServerKey: b64((await r.json()).key) });
      const s = await fetch("/r/intercom/push", { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(sub.toJSON()) });
      if (!s.ok) throw new Error("HTTP " + s.status);
      note.textContent = "已开启：页面关闭时也会提醒来电";
    } catch (e) {
      note.textContent = e.message === "denied" ? "未获得通知权限" :
        "此浏览器不支持后台来电提醒，请保持本页打开（或添加到主屏幕）";
    }
  }
  $("push").addEventListener("click", subscribePush);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/r/intercom/sw.js", { scope: "/r/intercom" }).catch(() => {});
  }
  connect();
})();
