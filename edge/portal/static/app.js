// Resident report page (/r/): report a problem, one-tap repair, follow progress. No framework
// on purpose. Every message a resident reads is Chinese; times are the community's zone.
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const TZ = JSON.parse(document.body.dataset.tz || '"Asia/Shanghai"');
const FIELD_ZH = {text: "反映内容", category: "分类", building: "楼号", location: "具体位置",
  photos: "照片", fault: "故障类型", title: "标题", description: "补充说明", key: "查询凭证"};
const NEED_ZH = {text: "请写下您想反映的内容", fault: "请选择故障类型"};
const STATUS_ZH = {received: "已受理", in_progress: "处理中", answered: "已答复", closed: "已办结",
  open: "待派单", assigned: "已派单", resolved: "已修好，请确认", confirmed: "已确认完成",
  reopened: "已重新打开"};
const URGENCY_ZH = {immediate: "紧急", high: "较急", normal: "一般", low: "不急"};
const MINE = "qilu.mine";
const CJK = /[\u4e00-\u9fff]/;

const clock = new Intl.DateTimeFormat("zh-CN", {timeZone: TZ, month: "numeric", day: "numeric",
  hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
function when(ts) {  // "11月30日 09:15", as the server-rendered pages write it
  try {
    const p = Object.fromEntries(clock.formatToParts(new Date(ts)).map(x => [x.type, x.value]));
    return `${p.month}月${p.day}日 ${p.hour}:${p.minute}`;
  } catch { return ""; }
}
function ref(kind, r) { return r.ref ? `${kind === "ticket" ? "报修" : "反映"} #${r.ref}` : (kind === "ticket" ? "报修" : "反映"); }

// A message residents cannot mistake: green with a tick for success, red with a cross for failure.
function say(el, kind, text) {
  el.hidden = false; el.className = `msg ${kind}`; el.setAttribute("role", kind === "err" ? "alert" : "status");
  el.textContent = text;
}
function toast(text, kind = "err") {
  const t = $("#toast"); say(t, kind, text);
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}
function mine() { try { return JSON.parse(localStorage.getItem(MINE)) || []; } catch { return []; } }
function keep(items) { localStorage.setItem(MINE, JSON.stringify(items.slice(0, 30))); }
// What this phone submitted itself (`here`; kept before the flag existed: no `ref`, never came
// through a login). Only these stay listed once nobody is logged in: a resident who signed in
// on a borrowed phone takes her other items away with her when she signs out.
function remember(item) { keep([{...item, here: 1}, ...mine().filter(x => x.id !== item.id)]); }
const filedHere = x => Boolean(x.here || !x.ref);

// What went wrong, in words a resident understands: never the box's English text.
function zhError(status, data) {
  const msg = (data && data.error) || "", field = data && data.field;
  if (CJK.test(msg)) return msg;
  if (status === 0 || status >= 500) return "网络不好或服务暂时不可用，请稍后再试";
  if (status === 413) return "照片太大或太多，请少选几张或换小一点的照片再试";
  if (status === 415) return "照片格式不支持，请选 JPG 或 PNG 照片";
  if (status === 429) return "提交太频繁了，请过几分钟再试";
  if (status === 401 || status === 403) return field === "key" ? "这条记录不是在本机提交的，无法查看" : "请先登录";
  if (status === 404) return "没有找到这条记录";
  if (field === "photos") return "照片有问题：请选 JPG 或 PNG 照片，最多 4 张";
  if (field && NEED_ZH[field] && /required|empty|missing/i.test(msg)) return NEED_ZH[field];
  if (field === "text" && /long|chars/i.test(msg)) return "内容太长了，请控制在 500 字以内";
  if (field && FIELD_ZH[field]) return `请检查「${FIELD_ZH[field]}」一栏`;
  return "提交没有成功，请检查后再试";
}

// Anonymous reports through the cloud need a small proof of work (edge/reports/gate.py): the
// box answers 428, the page finds a nonce whose SHA-256 starts with `bits` zero bits, retries.
async function solve() {
  const c = await (await fetch("/api/v1/reports/challenge")).json();
  const enc = new TextEncoder();
  for (let n = 0; n < 1 << 26; n++) {
    const h = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(`${c.challenge}:${n}`)));
    let bits = c.bits, i = 0;
    while (bits >= 8 && h[i] === 0) { bits -= 8; i++; }
    if (bits <= 0 || (bits < 8 && h[i] >> (8 - bits) === 0)) return [c.header, `${c.challenge}:${n}`];
  }
  throw new Error("proof of work not found");
}

async function api(method, url, body, proof) {
  const opts = {method, headers: {}};
  if (body instanceof FormData) opts.body = body;
  else if (body) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  if (proof) opts.headers[proof[0]] = proof[1];
  let r;
  try { r = await fetch(url, opts); } catch { const e = new Error(zhError(0)); e.status = 0; throw e; }
  if (r.status === 428 && !proof) return api(method, url, body, await solve());
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(zhError(r.status, data)); e.field = data.field; e.status = r.status; throw e; }
  return data;
}

// Phone cameras take photos of 3-12 MB; the box takes at most 5 MB a photo and 10 MB a
// request (less through the cloud). So photos are scaled down here before they go, to 1600 px
// on the long side (enough to see a leak or a crack); a file the phone cannot read as a
// picture goes as it is, and the box says what is wrong with it.
const PHOTO_EDGE = 1600;
async function shrink(file) {
  try {
    const bmp = await createImageBitmap(file);
    const k = Math.min(1, PHOTO_EDGE / Math.max(bmp.width, bmp.height));
    const c = document.createElement("canvas");
    c.width = Math.round(bmp.width * k); c.height = Math.round(bmp.height * k);
    c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
    bmp.close();
    const blob = await new Promise(done => c.toBlob(done, "image/jpeg", 0.85));
    if (!blob || (k === 1 && blob.size >= file.size)) return file;
    return new File([blob], file.name.replace(/\.[^.]*$/, "") + ".jpg", {type: "image/jpeg"});
  } catch { return file; }
}
async function formData(form) {
  const fd = new FormData(form), photos = fd.getAll("photos").filter(f => f instanceof File && f.size);
  fd.delete("photos");
  for (const f of photos) fd.append("photos", await shrink(f));
  return fd;
}

function showError(form, e) {
  form.querySelectorAll(".bad").forEach(el => el.classList.remove("bad"));
  const el = e.field && form.querySelector(`[name="${e.field}"]`);
  if (el) { el.classList.add("bad"); el.focus && el.focus(); }
  toast(e.message, "err");
}

// Photo pickers: the button says how many are chosen (the browser's own text may be English)
document.querySelectorAll("label.file input").forEach(inp => {
  const label = inp.parentElement, first = label.firstChild.textContent;
  inp.addEventListener("change", () => {
    label.firstChild.textContent = inp.files.length ? `已选 ${inp.files.length} 张照片（点此重选）` : first;
  });
  inp.form.addEventListener("reset", () => { label.firstChild.textContent = first; });
});

// Tabs inside the report page
function openTab(name) {
  document.querySelectorAll(".seg .tab,.pane").forEach(x => x.classList.remove("on"));
  $(`.seg .tab[data-tab=${name}]`).classList.add("on"); $("#" + name).classList.add("on");
  if (name === "mine") renderMine();
}
document.querySelectorAll(".seg .tab").forEach(b => b.addEventListener("click", () => openTab(b.dataset.tab)));

// Report: live category and place suggestion while typing
const text = $("#report-text"), cat = $("#report-category");
let suggestTimer, place = null;
text.addEventListener("input", () => {
  $("#report-count").textContent = text.value.length;
  clearTimeout(suggestTimer);
  if (text.value.trim().length < 3) { $("#suggest").textContent = ""; $("#place").hidden = true; return; }
  suggestTimer = setTimeout(async () => {
    try {
      const a = await api("POST", "/api/v1/reports/classify", {text: text.value});
      $("#suggest").textContent = `建议：${a.category_zh}` + (a.urgency === "immediate" ? "（紧急）" : "");
      if (!cat.dataset.touched) cat.value = a.category;
      place = a.place || null;
      $("#place").hidden = !place;
      if (place) $("#place-text").textContent = place.text;
    } catch { /* suggestions are optional */ }
  }, 350);
});
cat.addEventListener("change", () => { cat.dataset.touched = "1"; });
$("#place-use").addEventListener("click", () => {
  if (!place) return;
  if (place.building) $("#report-building").value = place.building;
  if (place.location) $("#report-location").value = place.location;
  $("#place").hidden = true;
});

$("#report-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const form = ev.target, btn = form.querySelector("button[type=submit]");
  if (!text.value.trim()) { showError(form, {field: "text", message: NEED_ZH.text}); return; }
  btn.disabled = true;
  try {
    const r = await api("POST", "/api/v1/reports", await formData(form));
    remember({kind: "report", id: r.id, key: r.follow_key});
    const res = $("#report-result");
    let line = `已提交，${ref("report", r)}。分类：${r.category_zh}，紧急程度：${URGENCY_ZH[r.urgency] || r.urgency}`;
    if (r.ticket_ref || r.ticket_id) line += `；已派维修 ${r.ticket_ref ? "报修 #" + r.ticket_ref : ""}`;
    say(res, "ok", line + "。可在「我的进度」查看。");
    if (r.urgency === "immediate") {
      const w = document.createElement("span"); w.className = "urgent";
      w.textContent = " 已通知物业值班人员。如有生命危险请立即拨打 119 / 120 / 110。";
      res.appendChild(w);
    }
    form.reset(); delete cat.dataset.touched; $("#suggest").textContent = ""; $("#place").hidden = true;
    $("#report-count").textContent = "0";
    form.querySelectorAll(".bad").forEach(el => el.classList.remove("bad"));
  } catch (e) { showError(form, e); } finally { btn.disabled = false; }
});

// One-tap repair
async function loadFaults() {
  const faults = await api("GET", "/api/v1/tickets/faults");
  const box = $("#faults");
  for (const f of faults) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "chip"; b.textContent = f.zh; b.dataset.code = f.code;
    b.setAttribute("aria-pressed", "false");  // chosen or not, told to screen readers too
    b.addEventListener("click", () => {
      box.querySelectorAll(".chip").forEach(c => { c.classList.remove("on"); c.setAttribute("aria-pressed", "false"); });
      b.classList.add("on"); b.setAttribute("aria-pressed", "true"); $("#repair-fault").value = f.code;
    });
    box.appendChild(b);
  }
}
$("#repair-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const form = ev.target, btn = form.querySelector("button[type=submit]");
  if (!$("#repair-fault").value) { toast(NEED_ZH.fault, "err"); return; }
  btn.disabled = true;
  try {
    const t = await api("POST", "/api/v1/tickets", await formData(form));
    remember({kind: "ticket", id: t.id, key: t.follow_key});
    say($("#repair-result"), "ok", `报修成功，${ref("ticket", t)}（${t.title}），紧急程度：${URGENCY_ZH[t.urgency] || t.urgency}。可在「我的进度」查看。`);
    // reset() keeps a hidden input's value: the fault goes with the chips that show it
    form.reset(); form.querySelectorAll(".chip").forEach(c => { c.classList.remove("on"); c.setAttribute("aria-pressed", "false"); });
    $("#repair-fault").value = "";
  } catch (e) { showError(form, e); } finally { btn.disabled = false; }
});

// My reports and tickets: this phone's list, joined with the resident's login when logged in
function el(tag, cls, txt) { const e = document.createElement(tag); if (cls) e.className = cls; if (txt !== undefined) e.textContent = txt; return e; }
function ticketCard(t, key) {
  const div = el("div", "card"); div.dataset.ticket = t.id;
  const h = el("h2"); h.append(el("span", "ref", ref("ticket", t)), ` ${t.title}`);
  div.append(h, el("span", "status", STATUS_ZH[t.status] || t.status));
  const ol = el("ol", "steps");
  for (const step of t.history || []) {
    ol.appendChild(el("li", "", `${when(step.ts)} ${STATUS_ZH[step.to_status] || step.to_status}` +
      (step.assignee ? `（${step.assignee}）` : "") + (step.note ? `：${step.note}` : "")));
  }
  div.appendChild(ol);
  if (t.status === "resolved") {
    const a = el("div", "actions");
    for (const [action, label, cls] of [["confirm", "确认已修好", ""], ["reopen", "没修好，重新打开", "light"]]) {
      const b = el("button", cls, label); b.dataset.action = action;
      b.addEventListener("click", async () => {
        // one answer per repair: a second tap while the first is on its way does nothing
        a.querySelectorAll("button").forEach(x => { x.disabled = true; });
        try { await api("POST", `/api/v1/tickets/${t.id}/${action}`, {key}); toast("已提交，谢谢！", "ok"); renderMine(); }
        catch (e) {
          if (e.status === 409) {  // confirmed or reopened meanwhile (the office, another phone)
            toast("这条报修的状态已经变了，已为您刷新，请看最新进度", "warn"); renderMine();
          } else { toast(e.message, "err"); a.querySelectorAll("button").forEach(x => { x.disabled = false; }); }
        }
      });
      a.appendChild(b);
    }
    div.appendChild(a);
  }
  return div;
}
async function myItems() {
  // Logged in: hand this phone's items to the login (so another phone sees them) and get all
  // of the resident's; not logged in: this phone's list only.
  const local = mine().filter(filedHere), here = new Set(local.map(x => x.id));
  try {
    const got = await api("POST", "/r/api/mine", {items: local});
    const items = got.items.map(x => here.has(x.id) ? {...x, here: 1} : x);
    keep(items);
    return items;
  } catch (e) {
    if (e.status === 401) keep(local);  // signed out: forget what came with the login
    return local;
  }
}
let rendering = 0;  // each render's number: an older one still loading stops adding cards
async function renderMine() {
  const run = ++rendering, list = $("#mine-list"), items = await myItems();
  if (!items.length || run !== rendering) return;
  list.replaceChildren();
  for (const it of items) {
    let cards = [];
    try {
      if (it.kind === "report") {
        const r = await api("GET", `/api/v1/reports/${it.id}?key=${encodeURIComponent(it.key)}`);
        const div = el("div", "card"); div.dataset.report = r.id;
        const h = el("h2"); h.append(el("span", "ref", ref("report", r)), ` ${r.text.slice(0, 40)}`);
        div.append(h, el("span", "status", STATUS_ZH[r.status] || r.status),
          el("p", "hint", `${r.category_zh || ""} · ${when(r.ts)}` + (r.reply ? ` · 答复：${r.reply}` : "")));
        cards = [div, ...(r.tickets || []).map(t => ticketCard(t, it.key))];
      } else {
        const t = await api("GET", `/api/v1/tickets/${it.id}?key=${encodeURIComponent(it.key)}`);
        cards = [ticketCard(t, it.key)];
      }
    } catch { /* gone or key rotated: skip */ }
    if (run !== rendering) return;
    list.append(...cards);
  }
}

async function init() {
  try {
    const tax = await api("GET", "/api/v1/taxonomy");
    for (const c of tax.categories) {
      const o = document.createElement("option"); o.value = c.code; o.textContent = c.zh; cat.appendChild(o);
    }
    await loadFaults();
  } catch { toast("暂时连不上社区服务，请检查网络后刷新", "err"); }
  if (location.hash === "#mine" || location.hash === "#repair") openTab(location.hash.slice(1));
  document.body.dataset.ready = "1";
}
init();
