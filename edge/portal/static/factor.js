// The phone's prompt while a face door waits for this resident's second factor
// (edge/portal/factor_pages.py): "您正在X前？" with a big confirm button and "不是我". On every
// page of a logged-in resident. Asks the box what waits with a long-poll (held until
// something changes; through the cloud relay answered at once, then asked again after poll_s).
"use strict";
(() => {
  const state = { version: -1, waiting: [], shown: null, done: null, answering: false };
  window.qiluFactor = state; // read by the tests
  let box = null, timer = null, deadline = 0;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  }
  function build() {
    box = el("div", { id: "factor", class: "factor", role: "alertdialog", "aria-modal": "true",
      "aria-labelledby": "factor-q" });
    const card = el("div", { class: "factor-card" });
    card.append(
      el("p", { id: "factor-q", class: "factor-q" }),
      el("p", { id: "factor-left", class: "factor-left" }),
      el("button", { id: "factor-yes", class: "ans factor-yes", type: "button" }, "点此确认开门"),
      el("button", { id: "factor-no", class: "ans light factor-no", type: "button" }, "不是我"),
      el("p", { id: "factor-msg", class: "msg", role: "status", hidden: "" }),
      el("button", { id: "factor-close", class: "light", type: "button", hidden: "" }, "知道了"));
    box.append(card);
    document.body.append(box);
    box.querySelector("#factor-yes").addEventListener("click", () => answer("confirm"));
    box.querySelector("#factor-no").addEventListener("click", () => answer("refuse"));
    box.querySelector("#factor-close").addEventListener("click", hide);
  }
  function say(kind, text) {
    const m = box.querySelector("#factor-msg");
    m.hidden = false;
    m.className = "msg " + kind;
    m.setAttribute("role", kind === "err" ? "alert" : "status");
    m.textContent = text;
  }
  function tick() {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    if (box && state.shown) box.querySelector("#factor-left").textContent = `门口正在等您确认，还剩 ${left} 秒`;
  }
  function render() {
    const w = state.waiting[0] || null;
    if (!w) {
      // timed out or answered at the door; this phone's own answer stays readable a while
      if (state.shown && !state.done && !state.answering) hide();
      return;
    }
    if (!box) build();
    if (!state.shown || state.shown.id !== w.id || state.done) {
      state.done = null;
      box.querySelector("#factor-msg").hidden = true;
      box.querySelector("#factor-close").hidden = true;
      box.querySelectorAll("button.ans").forEach((b) => { b.hidden = false; b.disabled = false; });
    }
    state.shown = w;
    deadline = Date.now() + w.expires_in_s * 1000;
    box.querySelector("#factor-q").textContent = `您正在${w.door}前？`;
    box.hidden = false;
    document.documentElement.classList.add("factor-open");
    tick();
    clearInterval(timer);
    timer = setInterval(tick, 1000);
    if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
  }
  function hide() {
    clearInterval(timer);
    state.shown = null;
    state.done = null;
    if (box) box.hidden = true;
    document.documentElement.classList.remove("factor-open");
  }
  async function answer(action) {
    const w = state.shown;
    if (!w) return;
    box.querySelectorAll("button.ans").forEach((b) => { b.disabled = true; });
    state.answering = true;
    let data = {}, ok = false;
    try {
      // the wait this prompt showed: an answer never reaches a newer one at the same door
      const r = await fetch(`/r/api/factor/${encodeURIComponent(w.door_id)}/${action}` +
        `?challenge=${encodeURIComponent(w.id)}`, { method: "POST", cache: "no-store" });
      data = await r.json().catch(() => ({}));
      ok = r.ok;
    } catch (e) { data = { error_zh: "网络不好，请再试一次" }; }
    state.done = ok ? data.done : "error";
    state.answering = false;
    box.hidden = false;
    clearInterval(timer);
    box.querySelector("#factor-left").textContent = "";
    box.querySelectorAll("button.ans").forEach((b) => { b.hidden = true; });
    box.querySelector("#factor-close").hidden = false;
    say(ok && data.done === "opened" ? "ok" : ok ? "warn" : "err",
      ok ? data.text : (data.error_zh || "操作没有成功，请稍后再试"));
    setTimeout(() => { if (state.done) hide(); }, 6000);
  }
  async function loop() {
    for (let i = 0; i < 1e6; i++) {
      let wait = 0;
      try {
        const r = await fetch("/r/api/factor?after=" + state.version, { cache: "no-store" });
        if (r.status === 401) return; // not logged in (any more): nothing can wait for us
        const d = await r.json();
        state.version = d.version;
        state.waiting = d.waiting || [];
        render();
        wait = (d.poll_s || 0) * 1000;
      } catch (e) { wait = 3000; }
      if (wait) await sleep(wait);
    }
  }
  loop();
})();
