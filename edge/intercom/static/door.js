// The door screen's call panel, a zone of the screen's player page (/screen/<id>): dial
// 楼号-单元-房号 or pick from the directory, then follow the call (long-poll) until it is
// answered, opened, declined or missed. Every request carries the screen's device key, which
// the player took from the page address's fragment (#key=..., never sent over the network)
// and keeps (window.qiluPlayer.key; local storage).
"use strict";
(function () {
  const player = window.qiluPlayer || {};
  const SCREEN = player.screen || decodeURIComponent(location.pathname.split("/")[2]);
  const BASE = "/screen/" + encodeURIComponent(SCREEN) + "/intercom";
  function screenKey() {
    if (player.key) return player.key;
    try { return JSON.parse(localStorage.getItem("qilu-key-" + SCREEN)); } catch (e) { return null; }
  }
  const $ = (id) => document.getElementById(id);
  const numberEl = $("number"), errEl = $("error");
  let number = "", call = null, version = -1, spoken = "";
  const SAY = {
    ringing: "正在呼叫，请稍候", answered: "已接通，请对住户说明来意",
    opened: "门已打开，请进", pass: "住户已为您发放临时通行码，请在门口输入密码或出示二维码",
    missed: "无人接听，请稍后再试", declined: "住户暂时不便，请稍后再试",
    ended: "通话已结束",
  };
  const STATE = {
    ringing: "正在呼叫…", answered: "已接通", opened: "门已打开，请进",
    pass: "已发放临时通行码", missed: "无人接听", declined: "住户暂时不便", ended: "通话已结束",
  };

  function speak(text) {
    // Chinese voice prompts where the browser has speech synthesis; silent otherwise.
    if (!("speechSynthesis" in window) || !text || text === spoken) return;
    spoken = text;
    try {
      const u = new SpeechSynthesisUtterance(text);
      u.lang = "zh-CN";
      speechSynthesis.cancel();
      speechSynthesis.speak(u);
    } catch (e) { /* no voice: the text is on screen */ }
  }
  function spoken_flat(f) {
    const p = f.split("-");
    return p.length === 3 ? p[0] + "号楼" + p[1] + "单元" + p[2].split("").join("") + "室" : f;
  }
  async function api(method, path, body) {
    const r = await fetch(BASE + path, {
      method, cache: "no-store",
      headers: { "Content-Type": "application/json", "X-Screen-Key": screenKey() || "" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(data.error || ("HTTP " + r.status)), { status: r.status, zh: data.error_zh });
    return data;
  }
  function show(msg) { errEl.textContent = msg || ""; }
  function render() { numberEl.textContent = number; }

  function press(k) {
    show("");
    if (k === "del") number = number.slice(0, -1);
    else if (number.length < 20) number += k;
    render();
  }
  async function dial(flat) {
    if (!/^[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}$/.test(flat)) {
      show("请按 楼号-单元-房号 输入，例如 1-2-301");
      speak("请按楼号，单元，房号输入");
      return;
    }
    try {
      call = await api("POST", "/calls", { flat });
    } catch (e) {
      // the box's own words when it has them (403: a flat this door does not serve)
      const said = e.zh || (e.status === 429 ? "呼叫过于频繁，请稍后再试" : e.status === 404 ? "没有找到该住户" : e.message);
      show(said);
      speak(e.zh || (e.status === 404 ? "没有找到该住户" : "呼叫失败"));
      return;
    }
    $("dial").hidden = true;
    $("calling").hidden = false;
    $("callflat").textContent = flat;
    speak("正在呼叫" + spoken_flat(flat));
    version = -1;
    update(call);
    follow(call.id);
  }
  let deadline = 0;
  // The box says when the call stops ringing; nothing from it well past that (the box
  // restarting, the network gone) and the screen says the call did not get through, rather
  // than "正在呼叫…" for as long as the box stays away.
  const LATE_MS = 4000;
  setInterval(() => {  // the ring countdown between the box's updates
    if (call && call.state === "ringing" && !call.ended && deadline) {
      $("left").textContent = "剩余 " + Math.max(0, Math.ceil((deadline - Date.now()) / 1000)) + " 秒";
      if (Date.now() > deadline + LATE_MS) lost();
    }
  }, 500);
  function lost() {
    const id = call.id;
    call = Object.assign({}, call, { ended: true });
    deadline = 0;
    $("state").textContent = "网络中断，呼叫没有接通";
    $("left").textContent = "请稍后再试";
    $("hangup").textContent = "返回";
    speak("网络中断，呼叫没有接通，请稍后再试");
    document.body.dataset.state = "lost";
    setTimeout(() => { if (call && call.id === id) reset(); }, 15000);
  }
  function update(v) {
    call = v;
    deadline = v.state === "ringing" && !v.ended ? Date.now() + v.ring_left_s * 1000 : 0;
    version = v.version;
    const said = v.said || v.state;
    $("state").textContent = STATE[said] || v.state;
    $("left").textContent = v.state === "ringing" && !v.ended ? "剩余 " + Math.ceil(v.ring_left_s) + " 秒" : "";
    if (v.pass) {
      $("pass").hidden = false;
      $("pin").textContent = v.pass.pin;
      $("qr").src = "data:image/png;base64," + v.pass.qr_png_base64;
    }
    $("hangup").textContent = v.ended ? "返回" : "挂断";
    if (said !== "ringing") speak(SAY[said]);
    document.body.dataset.state = said;
  }
  async function follow(id) {
    for (let i = 0; i < 400 && call && call.id === id; i++) {
      try {
        const v = await api("GET", "/calls/" + encodeURIComponent(id) + "?after=" + version);
        if (!call || call.id !== id) return;
        update(v);
        if (v.ended) { setTimeout(() => { if (call && call.id === id) reset(); }, v.pass ? 60000 : 8000); return; }
      } catch (e) {
        if (e.status === 404) { reset(); return; }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
  async function hangup() {
    const c = call;
    if (c && !c.ended) { try { await api("POST", "/calls/" + encodeURIComponent(c.id) + "/hangup"); } catch (e) { /* gone */ } }
    reset();
  }
  function reset() {
    call = null; number = ""; spoken = "";
    $("pass").hidden = true;
    $("calling").hidden = true;
    $("dial").hidden = false;
    document.body.dataset.state = "idle";
    render();
  }
  async function directory() {
    if (!screenKey()) { show("屏幕未授权：请用物业提供的地址（含密钥）打开"); return; }
    try {
      const d = await api("GET", "/directory");
      $("door").textContent = (d.door || "访客呼叫") + " · 访客呼叫";
      const box = $("flats");
      box.textContent = "";
      for (const f of d.flats) {
        const b = document.createElement("button");
        b.textContent = f;
        b.dataset.flat = f;
        b.addEventListener("click", () => { number = f; render(); dial(f); });
        box.appendChild(b);
      }
      document.body.dataset.ready = "1";
    } catch (e) {
      show(e.status === 401 ? "屏幕密钥无效，请联系物业" : "暂时无法连接，正在重试…");
      setTimeout(directory, 5000);
    }
  }
  document.querySelectorAll("#keypad button").forEach((b) =>
    b.addEventListener("click", () => press(b.dataset.k)));
  $("call").addEventListener("click", () => dial(number));
  $("hangup").addEventListener("click", hangup);
  render();
  directory();
})();
