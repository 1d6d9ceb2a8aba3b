// Resident H5 page: report a problem, one-tap repair, follow status. No framework on purpose.
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const FIELD_ZH = {text: "反映内容", category: "分类", building: "楼号", location: "位置",
  photos: "照片", fault: "故障类型", title: "标题", description: "补充说明", key: "凭证"};
const STATUS_ZH = {received: "已受理", in_progress: "处理中", answered: "已答复", closed: "已办结",
  open: "待派单", assigned: "已派单", resolved: "已修复待确认", confirmed: "已确认完成",
  reopened: "已重新打开"};
const URGENCY_ZH = {immediate: "紧急", high: "高", normal: "一般", low: "低"};
const MINE = "qilu.mine";

function toast(msg) {
  const t = $("#toast"); t.textContent = msg; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
function mine() { try { return JSON.parse(localStorage.getItem(MINE)) || []; } catch { return []; } }
function remember(item) { localStorage.setItem(MINE, JSON.stringify([item, ...mine()].slice(0, 30))); }

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
  const r = await fetch(url, opts);
  if (r.status === 428 && !proof) return api(method, url, body, await solve());
  const data = await r.json().catch(() => ({error: `HTTP ${r.status}`}));
  if (!r.ok) { const e = new Error(data.error || `HTTP ${r.status}`); e.field = data.field; throw e; }
  return data;
}

function showError(form, e) {
  form.querySelectorAll(".bad").forEach(el => el.classList.remove("bad"));
  const el = e.field && form.querySelector(`[name="${e.field}"]`);
  if (el) el.classList.add("bad");
  toast(`${FIELD_ZH[e.field] || ""}${e.field ? "：" : ""}${e.message}`);
}

// Tabs
document.querySelectorAll(".tab").forEach(b => b.addEventListener("click", () => {
  document.querySelectorAll(".tab,.pane").forEach(x => x.classList.remove("on"));
  b.classList.add("on"); $("#" + b.dataset.tab).classList.add("on");
  if (b.dataset.tab === "mine") renderMine();
}));

// Report: live category suggestion while typing
const text = $("#report-text"), cat = $("#report-category");
let suggestTimer;
text.addEventListener("input", () => {
  $("#report-count").textContent = text.value.length;
  clearTimeout(suggestTimer);
  if (text.value.trim().length < 4) { $("#suggest").textContent = ""; return; }
  suggestTimer = setTimeout(async () => {
    try {
      const a = await api("POST", "/api/v1/reports/classify", {text: text.value});
      $("#suggest").textContent = `建议：${a.category_zh}` + (a.urgency === "immediate" ? "（紧急）" : "");
      $("#suggest").dataset.code = a.category;
      if (!cat.dataset.touched) cat.value = a.category;
    } catch { /* suggestion is optional */ }
  }, 350);
});
cat.addEventListener("change", () => { cat.dataset.touched = "1"; });

$("#report-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const form = ev.target, btn = form.querySelector("button");
  btn.disabled = true;
  try {
    const r = await api("POST", "/api/v1/reports", new FormData(form));
    remember({kind: "report", id: r.id, key: r.follow_key, text: r.text.slice(0, 40)});
    const res = $("#report-result");
    res.hidden = false;
    res.innerHTML = "";
    const p = document.createElement("p");
    p.textContent = `已提交，编号 ${r.id}。分类：${r.category_zh}；紧急程度：${URGENCY_ZH[r.urgency]}` +
      (r.ticket_id ? `；已生成维修工单 ${r.ticket_id}` : "");
    if (r.urgency === "immediate") p.classList.add("urgent");
    res.appendChild(p);
    if (r.urgency === "immediate") {
      const w = document.createElement("p"); w.className = "urgent";
      w.textContent = "已通知物业值班人员。如有生命危险请立即拨打 119 / 120 / 110。";
      res.appendChild(w);
    }
    form.reset(); delete cat.dataset.touched; $("#suggest").textContent = ""; $("#report-count").textContent = "0";
  } catch (e) { showError(form, e); } finally { btn.disabled = false; }
});

// One-tap repair
async function loadFaults() {
  const faults = await api("GET", "/api/v1/tickets/faults");
  const box = $("#faults");
  for (const f of faults) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "chip"; b.textContent = f.zh; b.dataset.code = f.code;
    b.addEventListener("click", () => {
      box.querySelectorAll(".chip").forEach(c => c.classList.remove("on"));
      b.classList.add("on"); $("#repair-fault").value = f.code;
    });
    box.appendChild(b);
  }
}
$("#repair-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const form = ev.target, btn = form.querySelector("button");
  if (!$("#repair-fault").value) { toast("请选择故障类型"); return; }
  btn.disabled = true;
  try {
    const t = await api("POST", "/api/v1/tickets", new FormData(form));
    remember({kind: "ticket", id: t.id, key: t.follow_key, text: t.title});
    const res = $("#repair-result");
    res.hidden = false;
    res.textContent = `报修成功，工单 ${t.id}（${t.title}），紧急程度：${URGENCY_ZH[t.urgency]}。`;
    form.reset(); form.querySelectorAll(".chip").forEach(c => c.classList.remove("on"));
  } catch (e) { showError(form, e); } finally { btn.disabled = false; }
});

// My reports and tickets
function ticketCard(t, key) {
  const div = document.createElement("div");
  div.className = "card"; div.dataset.ticket = t.id;
  const h = document.createElement("h3");
  h.textContent = `工单 ${t.title}`;
  const s = document.createElement("span"); s.className = "status"; s.textContent = STATUS_ZH[t.status] || t.status;
  div.append(h, s);
  const ol = document.createElement("ol");
  for (const step of t.history || []) {
    const li = document.createElement("li");
    li.textContent = `${step.ts.slice(0, 16).replace("T", " ")} ${STATUS_ZH[step.to_status] || step.to_status}` +
      (step.assignee ? `（${step.assignee}）` : "") + (step.note ? `：${step.note}` : "");
    ol.appendChild(li);
  }
  div.appendChild(ol);
  if (t.status === "resolved") {
    const a = document.createElement("div"); a.className = "actions";
    for (const [action, label] of [["confirm", "确认已修好"], ["reopen", "没修好，重新打开"]]) {
      const b = document.createElement("button"); b.textContent = label; b.dataset.action = action;
      b.addEventListener("click", async () => {
        try { await api("POST", `/api/v1/tickets/${t.id}/${action}`, {key}); toast("已提交"); renderMine(); }
        catch (e) { toast(e.message); }
      });
      a.appendChild(b);
    }
    div.appendChild(a);
  }
  return div;
}
async function renderMine() {
  const list = $("#mine-list"), items = mine();
  if (!items.length) return;
  list.innerHTML = "";
  for (const it of items) {
    try {
      if (it.kind === "report") {
        const r = await api("GET", `/api/v1/reports/${it.id}?key=${encodeURIComponent(it.key)}`);
        const div = document.createElement("div"); div.className = "card"; div.dataset.report = r.id;
        const h = document.createElement("h3"); h.textContent = r.text.slice(0, 40);
        const s = document.createElement("span"); s.className = "status"; s.textContent = STATUS_ZH[r.status] || r.status;
        const p = document.createElement("p"); p.className = "hint";
        p.textContent = `${r.category_zh} · ${r.ts.slice(0, 16).replace("T", " ")}` + (r.reply ? ` · 答复：${r.reply}` : "");
        div.append(h, s, p);
        list.appendChild(div);
        for (const t of r.tickets || []) list.appendChild(ticketCard(t, it.key));
      } else {
        const t = await api("GET", `/api/v1/tickets/${it.id}?key=${encodeURIComponent(it.key)}`);
        list.appendChild(ticketCard(t, it.key));
      }
    } catch { /* gone or key rotated: skip */ }
  }
}

async function init() {
  try {
    const tax = await api("GET", "/api/v1/taxonomy");
    for (const c of tax.categories) {
      const o = document.createElement("option"); o.value = c.code; o.textContent = c.zh; cat.appendChild(o);
    }
    await loadFaults();
  } catch (e) { toast("无法连接社区服务：" + e.message); }
  document.body.dataset.ready = "1";
}
init();
