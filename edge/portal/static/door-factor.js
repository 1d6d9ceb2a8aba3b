// The door screen's second-factor keypad (edge/portal/factor_pages.py): shown over the player
// while the face door waits for the resident's PIN or their phone; the PIN goes to the box
// with the screen's device key (window.qiluPlayer.key, as the intercom's panel sends it).
// Follows the door with a long-poll; cleared when the door opens, the wait times out or the
// resident refuses on their phone.
"use strict";
(function () {
  const player = window.qiluPlayer || {};
  const SCREEN = player.screen || decodeURIComponent(location.pathname.split("/")[2]);
  const BASE = "/screen/" + encodeURIComponent(SCREEN) + "/factor";
  const $ = (id) => document.getElementById(id);
  const state = { version: -1, waiting: false, pin: "", sent: 0, said: "" };
  window.qiluDoorFactor = state; // read by the tests
  let deadline = 0, hideTimer = null;
  function key() {
    if (player.key) return player.key;
    try { return JSON.parse(localStorage.getItem("qilu-key-" + SCREEN)); } catch (e) { return null; }
  }
  function speak(text) {
    if (!("speechSynthesis" in window) || !text) return;
    try {
      const u = new SpeechSynthesisUtterance(text);
      u.lang = "zh-CN";
      speechSynthesis.cancel();
      speechSynthesis.speak(u);
    } catch (e) { /* no voice: the text is on screen */ }
  }
  function say(kind, text) {
    const m = $("sf-msg");
    m.className = "sf-msg " + kind;
    m.textContent = text || "";
    state.said = text || "";
    if (text) speak(text);
  }
  function render() { $("sf-pin").textContent = "●".repeat(state.pin.length); }
  function show(v) {
    clearTimeout(hideTimer);
    // phone false: the resident's phone was asked enough lately, only the PIN opens;
    // pin false: too many wrong PINs lately, only the resident's phone opens (no keypad)
    const ask = v.pin === false ? "请在手机上确认开门" :
      v.phone === false ? "请输入开门密码" : "请输入开门密码或在手机上确认";
    $("sf-title").textContent = ask;
    if (!state.waiting) { state.pin = ""; say("", ""); render(); speak(ask); }
    state.waiting = true;
    $("sf-door").textContent = v.door || "";
    $("sf-keys").hidden = v.pin === false;
    $("sf-pin").hidden = v.pin === false;
    delete $("sf").dataset.done;
    deadline = Date.now() + (v.expires_in_s || 0) * 1000;
    $("sf").hidden = false;
    document.body.dataset.factor = "waiting";
  }
  function end(kind, text) {
    state.waiting = false;
    state.pin = "";
    render();
    $("sf-keys").hidden = true;
    $("sf").dataset.done = kind; // only the outcome stays on the screen
    $("sf-left").textContent = "";
    say(kind, text);
    document.body.dataset.factor = kind === "ok" ? "opened" : "ended";
    clearTimeout(hideTimer);
    hideTimer = setTimeout(clear, kind === "ok" ? 4000 : 6000);
  }
  function clear() {
    $("sf").hidden = true;
    say("", "");
    delete document.body.dataset.factor;
  }
  setInterval(() => {
    if (state.waiting) $("sf-left").textContent = "还剩 " + Math.max(0, Math.ceil((deadline - Date.now()) / 1000)) + " 秒";
  }, 500);
  function update(v) {
    state.version = v.version;
    if (v.waiting) show(v);
    else if (state.waiting || !$("sf").hidden) {
      if (v.ended) end(v.ended === "opened" ? "ok" : "err", v.text);
      else if (state.waiting) end("err", "已超时，请重新刷脸");
    }
  }
  async function send() {
    if (state.pin.length < 4) { say("err", "密码至少 4 位，请继续输入"); return; }
    const pin = state.pin;
    state.pin = "";
    render();
    state.sent += 1;
    let r, data = {};
    try {
      r = await fetch(BASE + "/pin", { method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-Screen-Key": key() || "" },
        body: JSON.stringify({ pin }) });
      data = await r.json().catch(() => ({}));
    } catch (e) { say("err", "网络不好，请再试一次"); return; }
    if (r.ok && data.granted) end("ok", data.text || "门已打开，请进");
    else if (r.status === 409 || data.waiting === false) end("err", data.error_zh || "已超时，请重新刷脸");
    else say("err", data.error_zh || "门没有打开，请重新输入");
  }
  function press(k) {
    if (!state.waiting) return;
    if (k === "del") state.pin = state.pin.slice(0, -1);
    else if (k === "ok") { send(); return; }
    else if (state.pin.length < 10) state.pin += k;
    if (k !== "del" && state.said) say("", "");
    render();
  }
  document.querySelectorAll("#sf-keys button").forEach((b) =>
    b.addEventListener("click", () => press(b.dataset.k)));
  async function follow() {
    for (let i = 0; i < 1e6; i++) {
      try {
        const r = await fetch(BASE + "?after=" + state.version, { cache: "no-store",
          headers: { "X-Screen-Key": key() || "" } });
        if (r.status === 401 || r.status === 404 || r.status === 409) {
          await new Promise((res) => setTimeout(res, 30000)); // no key (yet), or no door
          continue;
        }
        update(await r.json());
      } catch (e) {
        await new Promise((res) => setTimeout(res, 3000));
      }
    }
  }
  follow();
})();
