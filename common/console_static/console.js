/* Qilu staff consoles: one small script for the city console (/console/) and the property
   office (/office/). No build step, no framework. Data comes from the side's API
   (body[data-api]); everything shown is built with textContent (never innerHTML of data). */
"use strict";

const Q = (() => {
  const body = document.body;
  const T = JSON.parse(document.getElementById("i18n").textContent);
  const API = body.dataset.api;
  const csrf = () => document.querySelector('meta[name="csrf"]').content;
  const t = (key) => T[key] || key;

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function signIn() {
    const next = encodeURIComponent(location.pathname);
    location.assign(location.pathname.replace(/\/[^/]*$/, "/login") + "?next=" + next + "&expired=1");
  }

  async function api(method, path, data, blob) {
    const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf();
      if (blob !== undefined) {  // a file as the raw body (content upload)
        opts.headers["Content-Type"] = blob.type || "application/octet-stream";
        opts.body = blob;
      } else if (data !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(data);
      }
    }
    const r = await fetch(API + path, opts);
    if (r.status === 401) { signIn(); throw new Error(t("login_expired")); }
    const out = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(out.error || r.status + " " + r.statusText), { status: r.status });
    return out;
  }

  function toast(text, bad) {
    const el = document.getElementById("toast");
    el.textContent = text;
    el.className = bad ? "show bad" : "show";
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.className = ""; }, 4000);
  }

  function ago(iso) {
    if (!iso) return t("never");
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + " " + t("seconds_ago");
    if (s < 5400) return Math.round(s / 60) + " " + t("minutes_ago");
    if (s < 129600) return Math.round(s / 3600) + " " + t("hours_ago");
    return Math.round(s / 86400) + " " + t("days_ago");
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(body.dataset.lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  }

  function badge(state) {
    return h("span", { class: "badge " + state, text: t(state) });
  }

  /* A table: columns [{key, label, cell(row) -> Node|string}] */
  function table(columns, rows, caption) {
    if (!rows.length) return h("p", { class: "muted", text: t("empty") });
    return h("table", {},
      caption ? h("caption", { class: "sr", text: caption }) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c.label })))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
        const v = c.cell ? c.cell(r) : r[c.key];
        return h("td", {}, v === null || v === undefined ? "" : v);
      })))));
  }

  function fill(id, node) {
    const el = document.getElementById(id);
    el.replaceChildren(node);
    return el;
  }

  /* WebAudio alarm: three short beeps. Browsers start audio only after a user gesture, so the
     page offers a button that resumes the context once. */
  let audio = null;
  function enableSound() {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    return audio.resume();
  }
  function beep() {
    if (!audio) { try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { return false; } }
    const now = audio.currentTime;
    for (let i = 0; i < 3; i++) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, now + i * 0.3);
      gain.gain.setValueAtTime(0, now + i * 0.3 + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.3);
      osc.stop(now + i * 0.3 + 0.2);
    }
    body.dataset.rang = String(Number(body.dataset.rang || 0) + 1);  // tests read this
    return true;
  }

  return { t, h, svg, api, toast, ago, when, badge, table, fill, beep, enableSound, body };
})();

/* --- pages ----------------------------------------------------------------------------- */

const pages = {};

pages.overview = async () => {
  const { t, h, svg } = Q;
  // A big network lists its areas with their counts and one area's communities (?area=).
  const focus = new URLSearchParams(location.search).get("area");
  let data;
  try {
    data = await Q.api("GET", "/overview" + (focus ? "?area=" + encodeURIComponent(focus) : ""));
  } catch (e) {
    Q.fill("tree", h("p", { class: "error", text: t("load_failed") + ": " + e.message }));
    return;
  }
  // One area opened: its ancestors, itself and what lies under it (the KPIs stay the scope's).
  const here = focus && data.areas.find((a) => a.id === focus);
  const areas = here ? data.areas.filter((a) => here.path.startsWith(a.path) || a.path.startsWith(here.path))
    : data.areas;
  const communities = areas.filter((a) => a.level === "community");
  const all = data.totals;
  const kpi = (label, value, cls) => h("div", { class: "kpi " + (cls || "") },
    h("span", { class: "value", text: String(value) }), h("span", { class: "label", text: label }));
  Q.fill("kpis", h("div", { class: "kpirow" },
    kpi(t("communities"), all.communities),
    kpi(t("boxes_online"), all.boxes_online, "ok"),
    kpi(t("boxes_offline"), all.boxes_offline, all.boxes_offline ? "bad" : ""),
    kpi(t("critical_open"), all.open_critical, all.open_critical ? "bad" : "")));

  // The tree: each area a row, indented by level; communities carry their health, the areas
  // above them their counts (a link opens an area's communities when not all are listed).
  const depth = { city: 0, district: 1, street: 2, community: 3 };
  const listed = data.communities_listed === "all";
  const rows = areas.map((a) => {
    const name = listed || a.level === "community" ? h("span", { class: "lvl-name", text: a.name })
      : h("a", { class: "lvl-name", href: "?area=" + encodeURIComponent(a.id), text: a.name });
    const cells = [h("td", { class: "area lvl" + depth[a.level] }, name, " ",
      h("small", { class: "muted", text: a.id }))];
    if (a.level !== "community") {
      const down = a.boxes - a.boxes_online;
      cells.push(h("td", { colspan: 4 }, listed ? "" : h("span", { class: "muted",
        text: `${a.communities} ${t("communities")} · ${a.boxes_online} ${t("boxes_online")}` +
          (down ? ` · ${down} ${t("boxes_offline")}` : "") })),
        h("td", {}), h("td", { class: "num" + (a.open_critical ? " bad" : "") },
          listed ? "" : String(a.open_critical)));
    } else {
      const b = a.boxes[0];
      cells.push(
        h("td", {}, a.boxes.length ? a.boxes.map((x) => Q.badge(x.state)) : Q.badge("no_box")),
        h("td", {}, b ? Q.ago(b.last_seen_at) : ""),
        h("td", {}, b ? b.version : ""),
        h("td", { class: "num" }, b ? String(a.boxes.reduce((n, x) => n + x.backlog_rows, 0)) : ""),
        h("td", { class: "num" }, b ? String(a.boxes.reduce((n, x) => n + x.devices_offline, 0)) : ""),
        h("td", { class: "num" + (a.open_critical ? " bad" : "") }, String(a.open_critical)));
    }
    return h("tr", { "data-area": a.id, "data-health": a.health || "" }, cells);
  });
  Q.fill("tree", h("div", {}, here ? h("p", {}, h("a", { href: "overview", text: "← " + t("all") })) : "",
    h("table", { class: "tree" },
      h("thead", {}, h("tr", {}, [t("area"), t("health"), t("last_seen"), t("version"), t("backlog"),
        t("devices_offline"), t("open_critical")].map((x) => h("th", { scope: "col", text: x })))),
      h("tbody", {}, rows))));

  // The map: the listed communities with coordinates as dots on a plain SVG (no tile server);
  // with none listed, the streets (or the lowest areas shown) at their communities' middle.
  const low = Math.max(...areas.map((a) => depth[a.level]));
  const placed = (communities.length ? communities : areas.filter((a) => depth[a.level] === low))
    .filter((c) => c.lat !== null && c.lon !== null)
    .map((c) => c.level === "community" ? c
      : { ...c, health: c.boxes && c.boxes === c.boxes_online ? "online" : c.boxes ? "offline" : "none" });
  if (!placed.length) {
    Q.fill("map", h("p", { class: "muted", text: t("map_none") }));
  } else {
    const W = 420, H = 360, pad = 30;
    const lats = placed.map((c) => c.lat), lons = placed.map((c) => c.lon);
    const [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const sx = (W - 2 * pad) / Math.max(x1 - x0, 1e-6), sy = (H - 2 * pad) / Math.max(y1 - y0, 1e-6);
    const s = Math.min(sx, sy);
    const X = (lon) => pad + (lon - x0) * s + ((W - 2 * pad) - (x1 - x0) * s) / 2;
    const Y = (lat) => H - pad - (lat - y0) * s - ((H - 2 * pad) - (y1 - y0) * s) / 2;
    const dots = placed.map((c) => svg("g", { class: "dot " + c.health + (c.open_critical ? " alarm" : "") },
      svg("circle", { cx: X(c.lon), cy: Y(c.lat), r: 9 }),
      svg("text", { x: X(c.lon) + 12, y: Y(c.lat) + 4 }, c.name),
      svg("title", {}, c.name + " · " + t(c.health === "none" ? "no_box" : c.health))));
    Q.fill("map", svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("map"), class: "map" },
      svg("rect", { x: 1, y: 1, width: W - 2, height: H - 2, class: "frame" }), dots));
  }
};

/* An alert in a list, as both consoles show it. `x` is the shared shape {key, level, type, ts,
   where, state, assignee, note, message, evidence}; a side that offers actions passes
   side.ack(x, state, assignee, note) -> the alert after the change (the cloud's ack/assign/close). */
function alertItem(x, side) {
  const { t, h } = Q;
  const acts = side.ack && Q.body.dataset.role === "admin";
  const li = h("li", { class: ["alert", x.level, x.state].filter(Boolean).join(" "), "data-key": x.key,
    "data-level": x.level, "data-type": x.type });
  li._alert = x;
  const form = h("form", { class: "ack", hidden: true },
    h("label", {}, t("assignee"), h("input", { name: "assignee", size: 10 })),
    h("label", {}, t("note"), h("input", { name: "note", size: 24 })),
    h("button", { type: "submit", class: "primary", text: t("save") }),
    h("button", { type: "button", text: t("cancel"), onclick: () => { form.hidden = true; } }));
  async function act(stateWanted) {
    const data = new FormData(form);
    try {
      const next = await side.ack(x, stateWanted, data.get("assignee") || null, data.get("note") || "");
      const fresh = alertItem(next, side);
      fresh.hidden = li.hidden;
      li.replaceWith(fresh);
      Q.toast(t("saved"));
    } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); act(new FormData(form).get("assignee") ? "assigned" : "acknowledged"); });
  li.append(...[
    h("div", { class: "head" },
      h("span", { class: "badge " + x.level, text: t(x.level) }), " ",
      h("b", { text: label("type", x.type) }), " ",
      h("span", { class: "muted", text: [Q.when(x.ts), x.where].filter(Boolean).join(" · ") }),
      x.state ? [" ", Q.badge(x.state)] : null,
      x.assignee ? h("span", { class: "muted", text: " → " + x.assignee }) : null,
      x.note ? h("span", { class: "muted", text: " “" + x.note + "”" }) : null),
    h("p", { class: "msg", text: x.message }),
    (x.evidence || []).length ? h("p", { class: "evidence" }, t("evidence") + ": ",
      x.evidence.map((id) => h("a", { href: "reports?q=" + encodeURIComponent(id), text: id }))) : null,
    acts ? h("div", { class: "actions" },
      h("button", { type: "button", text: t("ack"), onclick: () => act("acknowledged") }),
      h("button", { type: "button", text: t("assign"), onclick: () => { form.hidden = false; form.querySelector("input").focus(); } }),
      h("button", { type: "button", text: t("close"), onclick: () => act("closed") })) : null,
    acts ? form : null].filter(Boolean));
  return li;
}

/* The city console's alerts page: the live feed with filters; its alerts come in the cloud's
   shape and side.map (cloud.js) puts each in alertItem's. */
async function alertsPage(side) {
  const { t } = Q;
  const filters = document.getElementById("filters");
  const list = document.getElementById("alerts");
  const live = document.getElementById("live");
  const seen = new Set();
  const match = (x) => {
    const a = x.raw, f = new FormData(filters);
    return (!f.get("level") || a.payload.level === f.get("level"))
      && (!f.get("type") || a.payload.type === f.get("type"))
      && (!f.get("area") || a.community_id.includes(f.get("area")) || a.box_id.includes(f.get("area")));
  };
  const refilter = () => {
    for (const li of list.children) li.hidden = !match(li._alert);
  };
  const add = (a, atTop) => {
    const x = side.map(a);
    if (seen.has(x.key)) return null;
    seen.add(x.key);
    const li = alertItem(x, side);
    li.hidden = !match(x);
    if (atTop) list.prepend(li); else list.append(li);
    return li;
  };
  filters.addEventListener("change", refilter);
  filters.addEventListener("input", refilter);
  document.getElementById("sound").addEventListener("click", async (ev) => {
    await Q.enableSound();
    ev.target.textContent = t("sound_enabled");
  });
  let since = "";  // the list's time: the stream starts there, so nothing falls between them
  try {
    const first = await Q.api("GET", "/alerts?limit=200");
    first.items.forEach((a) => add(a, false));
    if (first.as_of) since = "?since=" + encodeURIComponent(first.as_of);
  } catch (e) { Q.toast(t("load_failed") + ": " + e.message, true); }
  const es = new EventSource(Q.body.dataset.api + "/alerts/stream" + since);
  es.addEventListener("open", () => { live.textContent = "● " + t("live"); live.className = "live on"; });
  es.addEventListener("error", () => { live.textContent = t("live_off"); live.className = "live off"; });
  es.addEventListener("expired", () => { es.close(); location.reload(); });
  es.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    const li = add(a, true);
    if (li && a.payload.level === "critical") {
      li.classList.add("fresh");
      Q.beep();
      Q.toast(t("new_emergency") + ": " + a.payload.message, true);
    }
  });
}

const CATEGORIES = ["facilities_repair", "environment_sanitation", "safety_hazard", "property_service",
  "parking_traffic", "noise_neighbours", "policy_enquiry", "praise", "suggestion", "other"];
const URGENCIES = ["immediate", "high", "normal", "low"];
const label = (prefix, code) => { const k = prefix + "_" + code; const v = Q.t(k); return v === k ? code : v; };
const urgBadge = (u) => Q.h("span", { class: "badge " + (u === "immediate" || u === "high" ? "critical" : "info"),
  text: label("urg", u || "normal") });

function fillOptions(root) {
  for (const sel of root.querySelectorAll("select[data-options]")) {
    const codes = sel.dataset.options === "cat" ? CATEGORIES : URGENCIES;
    for (const c of codes) sel.append(Q.h("option", { value: c, text: label(sel.dataset.options, c) }));
  }
}

/* Mood over weeks: a line in [-1, 1] with the zero line, one dot per week with reports. */
function moodChart(weeks) {
  const { svg, t } = Q;
  const W = 640, H = 220, L = 44, R = 12, T = 14, B = 30;
  const x = (i) => L + (weeks.length < 2 ? 0 : i * (W - L - R) / (weeks.length - 1));
  const y = (m) => T + (1 - m) / 2 * (H - T - B);
  const pts = weeks.map((w, i) => [w, i]).filter(([w]) => w.mood !== null);
  const path = pts.map(([w, i], k) => (k ? "L" : "M") + x(i).toFixed(1) + " " + y(w.mood).toFixed(1)).join(" ");
  const every = Math.ceil(weeks.length / 8);
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": t("mood_weekly") },
    [1, 0, -1].map((m) => [
      svg("line", { x1: L, x2: W - R, y1: y(m), y2: y(m), class: m === 0 ? "zero" : "grid" }),
      svg("text", { x: L - 6, y: y(m) + 4, class: "axis end" }, m === 1 ? "+1 " + t("mood_pos") : m === -1 ? "-1 " + t("mood_neg") : "0")]),
    weeks.map((w, i) => i % every ? null : svg("text", { x: x(i), y: H - 8, class: "axis mid" }, w.start.slice(5))),
    svg("path", { d: path, class: "line" }),
    pts.map(([w, i]) => svg("circle", { cx: x(i), cy: y(w.mood), r: 4, class: w.mood < -0.2 ? "neg" : "dot" },
      svg("title", {}, `${w.week}: ${w.mood} (${w.n} ${t("reports_count")})`))));
}

function categoryBars(cats) {
  const { h } = Q;
  if (!cats.length) return h("p", { class: "muted", text: Q.t("empty") });
  const max = Math.max(...cats.map((c) => c.n));
  return h("ul", { class: "bars" }, cats.map((c) => {
    const bar = h("span", { class: "bar" });
    bar.style.width = (100 * c.n / max).toFixed(1) + "%";  // CSSOM, allowed under the CSP
    return h("li", {}, h("span", { class: "name", text: label("cat", c.category) }),
      h("span", { class: "track" }, bar), h("span", { class: "n", text: String(c.n) }));
  }));
}

function heatTable(heat) {
  const { h } = Q;
  if (!heat.rows.length) return h("p", { class: "muted", text: Q.t("empty") });
  const max = Math.max(...heat.rows.flatMap((r) => r.counts));
  return h("table", { class: "heat" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: Q.t("community") }),
      heat.categories.map((c) => h("th", { scope: "col", text: label("cat", c) })))),
    h("tbody", {}, heat.rows.map((r) => h("tr", {}, h("th", { scope: "row", text: r.community_id }),
      r.counts.map((n) => h("td", { class: "num h" + (n ? Math.min(5, 1 + Math.floor(5 * n / (max + 1))) : 0), text: String(n) }))))));
}

/* The reports list both consoles show: one row per report, the columns a side names
   (side.columns, from REPORT_COLUMNS), in the shared shape {id, ts, community, category,
   urgency, sentiment, text, photos, status, building, location, pending}; a side that lets
   staff correct a report passes side.correct(x, {category?, urgency?, note}) (the cloud's goes
   down the feed to the box, and the row says "waiting" until then); a side that lets staff
   answer the resident passes side.reply(x, {status, reply?}). */
const REPORT_COLUMNS = {
  time: { label: "time", cell: (x) => Q.when(x.ts) },
  community: { label: "community", cell: (x) => x.community },
  category: { label: "category", cell: (x) => {
    const cat = [Q.h("span", { text: label("cat", x.category) })];
    if (x.pending) {
      if (x.pending.category) cat.push(" → ", Q.h("b", { text: label("cat", x.pending.category) }));
      cat.push(" ", Q.h("span", { class: "badge assigned", text: Q.t("correction_pending") }));
    }
    return cat;
  } },
  urgency: { label: "urgency", cell: (x) => urgBadge(x.urgency) },
  sentiment: { label: "sentiment", cls: (x) => "num " + (x.sentiment < -0.2 ? "bad" : ""), cell: (x) => (x.sentiment ?? 0).toFixed(2) },
  building: { label: "building", cell: (x) => [x.building, x.location].filter(Boolean).join(" ") },
  text: { label: "text", cls: () => "text", cell: (x) => [Q.h("span", { text: x.text }), x.photos ? Q.h("small", { class: "muted", text: ` 📷${x.photos}` }) : null] },
  status: { label: "rstatus", cell: (x) => label("report_status", x.status || "received") },
};

function reportsTable(rows, side, caption) {
  const { t, h } = Q;
  const correct = side.correct && Q.body.dataset.role === "admin";

  function correctionForm(x, tr) {
    const form = h("form", { class: "ack" },
      h("label", {}, t("category"), h("select", { name: "category", "data-options": "cat" })),
      h("label", {}, t("urgency"), h("select", { name: "urgency", "data-options": "urg" })),
      h("label", {}, t("note"), h("input", { name: "note", size: 16, maxlength: 500 })),
      h("button", { type: "submit", class: "primary", text: t("save") }),
      h("button", { type: "button", text: t("cancel"), onclick: () => form.remove() }));
    fillOptions(form);
    form.elements.category.value = x.category;
    form.elements.urgency.value = x.urgency || "normal";
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { note: form.elements.note.value };
      if (form.elements.category.value !== x.category) body.category = form.elements.category.value;
      if (form.elements.urgency.value !== (x.urgency || "normal")) body.urgency = form.elements.urgency.value;
      try {
        await side.correct(x, body);
        x.pending = body;
        tr.replaceWith(row(x));
        Q.toast(t("correction_sent"));
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    return form;
  }

  function row(x) {
    const tr = h("tr", { "data-report": x.id }, side.columns.map((k) => {
      const c = REPORT_COLUMNS[k];
      return h("td", { class: c.cls ? c.cls(x) : null }, c.cell(x));
    }));
    if (side.idColumn) {
      const act = correct ? h("button", { type: "button", text: t("correct"), onclick: (ev) => {
        if (!tr.querySelector("form")) ev.target.after(correctionForm(x, tr));
      } }) : null;
      tr.append(h("td", {}, h("small", { class: "muted", text: x.id }), act ? h("br") : null, act));
    }
    if (reply) {
      tr.append(h("td", {}, h("button", { type: "button", "data-reply": x.id, text: t("reply"), onclick: (ev) => {
        if (!tr.querySelector("form")) ev.target.after(replyForm(x, tr));
      } })));
    }
    return tr;
  }

  /* The answer the resident reads under their report on the phone page (status + reply). */
  const reply = side.reply && Q.body.dataset.role === "admin";
  function replyForm(x, tr) {
    const form = h("form", { class: "ack" },
      h("label", {}, t("rstatus"), h("select", { name: "status" }, ["in_progress", "answered", "closed"].map((s) =>
        h("option", { value: s, text: label("report_status", s), selected: s === "answered" })))),
      h("label", {}, t("reply_text"), h("input", { name: "reply", size: 24, maxlength: 1000 })),
      h("button", { type: "submit", class: "primary", text: t("save") }),
      h("button", { type: "button", text: t("cancel"), onclick: () => form.remove() }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { status: form.elements.status.value };
      if (form.elements.reply.value.trim()) body.reply = form.elements.reply.value.trim();
      try {
        await side.reply(x, body);
        x.status = body.status;
        tr.replaceWith(row(x));
        Q.toast(t("saved"));
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    return form;
  }

  if (!rows.length) return h("p", { class: "muted", text: t("empty") });
  return h("table", { class: "reports" },
    caption ? h("caption", { class: "sr", text: caption }) : null,
    h("thead", {}, h("tr", {}, [...side.columns.map((k) => t(REPORT_COLUMNS[k].label)), side.idColumn ? "" : null,
      reply ? "" : null]
      .filter((x) => x !== null).map((x) => h("th", { scope: "col", text: x })))),
    h("tbody", {}, rows.map(row)));
}

/* The city console's reports page: search, the list (reportsTable) and the charts. */
async function reportsPage(side) {
  const { t, h } = Q;
  const filters = document.getElementById("filters");
  fillOptions(filters);
  const params = new URLSearchParams(location.search);
  for (const [k, v] of params) if (filters.elements[k]) filters.elements[k].value = v;
  const more = document.getElementById("more");
  let rows = [], cursor = null;

  function renderList() {
    Q.fill("reports", reportsTable(rows, side));
  }

  async function loadList(reset) {
    if (reset) { rows = []; cursor = null; }
    const f = new FormData(filters);
    const qs = new URLSearchParams({ limit: "50" });
    for (const k of ["q", "category", "urgency", "area"]) if (f.get(k)) qs.set(k, f.get(k));
    if (cursor) qs.set("cursor", cursor);
    try {
      const page = await Q.api("GET", "/reports?" + qs);
      rows = rows.concat(page.items.map(side.map));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      renderList();
    } catch (e) { Q.fill("reports", h("p", { class: "error", text: t("load_failed") + ": " + e.message })); }
  }

  async function loadCharts() {
    const f = new FormData(filters);
    const qs = new URLSearchParams({ weeks: f.get("weeks") || "12" });
    if (f.get("area")) qs.set("area", f.get("area"));
    try {
      const st = await Q.api("GET", "/stats/reports?" + qs);
      Q.fill("mood", moodChart(st.weeks));
      Q.fill("cats", categoryBars(st.categories));
      Q.fill("heat", heatTable(st.heat));
    } catch (e) { Q.fill("mood", h("p", { class: "error", text: t("load_failed") + ": " + e.message })); }
  }

  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const qs = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v) qs.set(k, v);
    history.replaceState(null, "", "?" + qs);
    loadList(true);
    loadCharts();
  });
  more.addEventListener("click", () => loadList(false));
  loadList(true);
  loadCharts();
}

/* The tickets board both consoles run: one column per state, overdue first, a card per ticket
   with its actions. What differs between the sides comes in `side` (cloud.js and office.js):
     load(filters: FormData) -> [[column, [ticket]]], tickets already in the shared shape
       {id, title, status, state (the key of TICKET_ACTIONS), urgency, overdue, reopened, ref,
        community, building, location, reporter?, assignee, due_at, pending};
     send(ticket, action, form: FormData) -> the text to toast (the cloud's goes down the feed
       and waits for the box; the box's applies at once);
     more: {label, render(ticket) -> [Node]} (the cloud's history, the box's details);
     photos: resolve takes photos; submit(action) -> the label of a form's submit button;
     emptyColumn: say "empty" in a column without tickets; failed(e): show a load error.
   The board refreshes every 5 s, except while a form is open on it. */
const TICKET_ACTIONS = { open: ["assign"], reopened: ["assign", "start"], assigned: ["assign", "start"],
  in_progress: ["assign", "resolve"], resolved: ["confirm", "reopen"], confirmed: [] };

function ticketBoard(side) {
  const { t, h } = Q;
  const filters = document.getElementById("filters");
  const admin = Q.body.dataset.role === "admin";

  function actionForm(x, action, el) {
    const form = h("form", { class: "ack", "aria-label": t("act_" + action) },
      action === "assign" ? h("label", {}, t("assignee"), h("input", { name: "assignee", required: true, size: 10, value: x.assignee || "" })) : null,
      h("label", {}, t("note"), h("input", { name: "note", size: 16, maxlength: 500 })),
      action === "resolve" && side.photos ? h("label", {}, t("photos"), h("input", { name: "photos", type: "file", accept: "image/jpeg,image/png", multiple: true })) : null,
      h("button", { type: "submit", class: "primary", text: side.submit(action) }),
      h("button", { type: "button", text: t("cancel"), onclick: () => form.remove() }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const fd = new FormData(form);
      for (const [k, v] of [...fd.entries()]) if (v === "" || (v instanceof File && !v.size)) fd.delete(k);
      try {
        Q.toast(await side.send(x, action, fd));
        form.remove();
        load();
      } catch (e) {
        if (e.status !== 409) { Q.toast(t("error") + ": " + e.message, true); return; }
        // someone else moved the ticket meanwhile: say so and show where it is now
        Q.toast(t("ticket_moved_on"), true);
        form.remove();
        load();
      }
    });
    el.querySelector("form")?.remove();
    el.append(form);
    form.querySelector("input").focus();
  }

  function card(x) {
    const el = h("article", { class: "ticket" + (x.overdue ? " overdue" : ""), "data-ticket": x.id, "data-status": x.status,
      id: x.id, tabindex: 0, "aria-label": x.title },
      h("div", { class: "head" },
        urgBadge(x.urgency),
        x.overdue ? h("span", { class: "badge offline", text: t("overdue") }) : null,
        x.reopened ? h("span", { class: "badge warning", text: label("col", "reopened") }) : null,
        x.pending ? h("span", { class: "badge assigned", text: t("update_sent") }) : null,
        x.ref ? h("small", { class: "muted", text: "#" + x.ref }) : null),
      h("h3", { text: x.title }),
      h("p", { class: "muted", text: [x.community, x.building ? t("building") + " " + x.building : "", x.location,
        x.reporter, x.assignee || t("no_assignee"), x.due_at ? t("due") + " " + Q.when(x.due_at) : ""].filter(Boolean).join(" · ") }));
    const more = h("div", { class: "more", hidden: true });
    const actions = h("div", { class: "actions" },
      h("button", { type: "button", text: side.more.label, "aria-expanded": "false", onclick: async (ev) => {
        try {
          if (more.hidden) { more.replaceChildren(...await side.more.render(x)); more.hidden = false; }
          else more.hidden = true;
          ev.target.setAttribute("aria-expanded", String(!more.hidden));
        } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
      } }));
    if (admin) for (const action of TICKET_ACTIONS[x.state] || []) {
      actions.append(h("button", { type: "button", "data-action": action, text: t("act_" + action),
        onclick: () => actionForm(x, action, el) }));
    }
    el.append(actions, more);
    return el;
  }

  async function load() {
    if (document.querySelector("#board form")) return;  // do not pull a form away from a typing user
    let columns;
    try { columns = await side.load(new FormData(filters)); } catch (e) {
      if (side.failed) side.failed(e);
      else Q.fill("board", h("p", { class: "error", text: t("load_failed") + ": " + e.message }));
      return;
    }
    Q.fill("board", h("div", { class: "cols board" }, columns.map(([col, items]) =>
      h("section", { class: "card column", "data-column": col, "aria-label": label("col", col) },
        h("h2", {}, label("col", col), " ", h("span", { class: "count", text: String(items.length) })),
        items.length || !side.emptyColumn ? items.map(card) : h("p", { class: "muted", text: t("empty") })))));
    if (location.hash) document.getElementById(location.hash.slice(1))?.classList.add("target");
  }
  filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
  setInterval(load, 5000);
  return { load };
}

const ids = (text) => String(text || "").split(/[\s,，]+/).filter(Boolean);
const rid = (prefix) => prefix + "-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
const fmt = (text, vars) => text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));

pages.content = async () => {
  const { t, h } = Q;
  const form = document.getElementById("publish");
  const out = document.getElementById("publish-result");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const targets = { areas: ids(f.get("areas")), boxes: ids(f.get("boxes")), screen_tags: ids(f.get("tags")) };
    if (!targets.areas.length && !targets.boxes.length) { Q.toast(t("need_target"), true); return; }
    const file = f.get("file");
    const notice = String(f.get("notice") || "").trim();
    if (!(file && file.size) && !notice) { Q.toast(t("need_content"), true); return; }
    const title = String(f.get("title"));
    const duration = Number(f.get("duration") || 10);
    try {
      const items = [];
      if (file && file.size) {
        out.textContent = t("uploading");
        const up = await Q.api("POST", "/content?title=" + encodeURIComponent(title), undefined, file);
        items.push({ id: "c-" + up.sha256.slice(0, 12), kind: (file.type || "").startsWith("video") ? "video" : "image",
          title, sha256: up.sha256, size_bytes: up.size_bytes, mime: up.mime, url: new URL(up.url, location.origin).href, duration_s: duration });
      }
      if (notice) items.push({ id: rid("n"), kind: "html", title, body: notice, duration_s: duration });
      let res;
      for (const item of items) res = await Q.api("POST", "/publish", { action: "content", targets, args: item });
      const pl = { id: rid("pl"), name: title, items: items.map((i) => ({ content_id: i.id })) };
      await Q.api("POST", "/publish", { action: "playlist", targets, args: pl });
      const sch = { id: rid("sch"), playlist_id: pl.id, weekdays: f.getAll("wd").map(Number),
        start: f.get("start") + ":00", end: f.get("end") + ":00", priority: Number(f.get("priority") || 0) };
      if (f.get("date_from")) sch.date_from = f.get("date_from");
      if (f.get("date_to")) sch.date_to = f.get("date_to");
      res = await Q.api("POST", "/publish", { action: "schedule", targets, args: sch });
      out.textContent = fmt(t("published"), { n: res.boxes }) + " · " + sch.id;
      out.dataset.schedule = sch.id;
      Q.toast(out.textContent);
    } catch (e) { out.textContent = ""; Q.toast(t("error") + ": " + e.message, true); }
  });

  // Emergency broadcast: a second, explicit confirmation before anything is sent.
  const em = document.getElementById("emergency");
  const confirm = document.getElementById("em-confirm");
  const emOut = document.getElementById("em-result");
  let pending = null;
  em.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(em);
    const targets = { areas: ids(f.get("areas")), boxes: [], screen_tags: ids(f.get("tags")) };
    if (!targets.areas.length) { Q.toast(t("need_target"), true); return; }
    pending = { message: String(f.get("message")), level: f.get("level"), targets,
      duration_s: 60 * Number(f.get("minutes") || 60) };
    if (f.get("title")) pending.title = String(f.get("title"));
    document.getElementById("em-summary").textContent =
      `${t(pending.level)} · ${pending.title || ""} ${pending.message} → ${targets.areas.join(", ")}` +
      (targets.screen_tags.length ? " #" + targets.screen_tags.join(" #") : "") + ` · ${f.get("minutes")} min`;
    confirm.hidden = false;
    document.getElementById("em-go").focus();
  });
  document.getElementById("em-back").addEventListener("click", () => { confirm.hidden = true; pending = null; });
  document.getElementById("em-go").addEventListener("click", async () => {
    if (!pending) return;
    const sent = pending;
    pending = null;
    confirm.hidden = true;
    try {
      const res = await Q.api("POST", "/emergency", sent);
      emOut.replaceChildren(h("span", { text: fmt(t("em_sent"), { n: res.boxes }) + " · " + res.emergency_id + " " }),
        h("button", { type: "button", text: t("em_cancel"), onclick: async (ev) => {
          await Q.api("POST", "/emergency/cancel", { emergency_id: res.emergency_id, targets: sent.targets });
          ev.target.replaceWith(h("span", { text: t("em_ended") }));
        } }));
      emOut.dataset.emergency = res.emergency_id;
    } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
  });

  // Preview: the box's resolver (common/playout.py) run on what was published to the box.
  const pv = document.getElementById("preview");
  pv.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(pv);
    const qs = new URLSearchParams({ screen: f.get("screen") || "preview", tags: ids(f.get("tags")).join(",") });
    if (f.get("at")) qs.set("at", new Date(f.get("at")).toISOString());
    try {
      const out = await Q.api("GET", `/boxes/${encodeURIComponent(f.get("box"))}/preview?` + qs);
      const name = (c) => (c.title ? c.title + " " : "") + "(" + c.content_id + ")";
      const src = (s) => s === "default" ? t("src_default") : s;
      Q.fill("preview-out", h("div", {},
        h("p", { class: "playing", "data-content": out.playing.content_id },
          h("b", { text: t("now_playing") + ": " }), name(out.playing), " · " + src(out.playing.source)),
        Q.table([
          { label: t("from_to"), cell: (s) => Q.when(s.start) + " – " + Q.when(s.end) },
          { label: t("source"), cell: (s) => src(s.source) },
          { label: t("layout"), cell: (s) => s.layout || t("layout_screen") },
          { label: t("items"), cell: (s) => s.items.map(name).join("、") },
        ], out.segments, t("preview_title"))));
    } catch (e) { Q.fill("preview-out", h("p", { class: "error", text: t("error") + ": " + e.message })); }
  });

  try {
    const st = await Q.api("GET", "/stats/plays");
    Q.fill("plays", Q.table([
      { label: t("content_id"), key: "content_id" },
      { label: t("plays"), cell: (r) => String(r.plays) },
      { label: t("play_time"), cell: (r) => (r.duration_ms / 1000).toFixed(0) + " s" },
    ], st.items, t("play_stats")));
  } catch (e) { Q.fill("plays", h("p", { class: "error", text: t("load_failed") + ": " + e.message })); }
};

pages.fleet = async () => {
  const { t, h } = Q;
  const admin = Q.body.dataset.role === "admin";
  const claim = document.getElementById("claim");
  claim.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(claim);
    const res = document.getElementById("claim-result");
    res.replaceChildren();
    delete res.dataset.code;
    try {
      const out = await Q.api("POST", `/communities/${encodeURIComponent(f.get("community"))}/claim-codes`,
        { ttl_hours: Number(f.get("ttl") || 72) });
      res.replaceChildren(t("claim_shown_once") + " ", h("code", { class: "claim", text: out.code }),
        ` (${t("expires")} ${Q.when(out.expires_at)})`);
      res.dataset.code = out.code;
    } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
  });
  let rows = [], after = "";
  const more = document.getElementById("more");

  function actions(b) {
    if (!admin || b.revoked_at) return null;
    const wrap = h("div", { class: "actions" });
    const cmd = h("select", { "aria-label": t("command") },
      h("option", { value: "ping", text: "ping" }));
    wrap.append(cmd,
      h("button", { type: "button", text: t("send"), onclick: async () => {
        try {
          await Q.api("POST", `/boxes/${encodeURIComponent(b.id)}/commands`,
            { target_kind: "box", target_id: b.id, action: cmd.value });
          Q.toast(t("command_sent"));
        } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
      } }),
      h("button", { type: "button", class: "danger", "data-action": "revoke", text: t("revoke"), onclick: () => {
        if (wrap.querySelector(".confirm")) return;
        const box = h("div", { class: "confirm", role: "alertdialog" }, h("p", { text: t("revoke_q") }),
          h("button", { type: "button", class: "danger", text: t("confirm"), onclick: async () => {
            try {
              await Q.api("POST", `/boxes/${encodeURIComponent(b.id)}/revoke`);
              b.revoked_at = new Date().toISOString();
              render();
            } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
          } }),
          h("button", { type: "button", text: t("cancel"), onclick: () => box.remove() }));
        wrap.append(box);
      } }));
    return wrap;
  }

  function render() {
    Q.fill("fleet", Q.table([
      { label: t("box"), cell: (b) => h("span", {}, h("b", { text: b.id }), h("br"), h("small", { class: "muted", text: b.name })) },
      { label: t("community"), key: "community_id" },
      { label: t("health"), cell: (b) => Q.badge(b.revoked_at ? "revoked" : (b.last_seen_at && Date.now() - Date.parse(b.last_seen_at) < 180000 ? "online" : "offline")) },
      { label: t("last_seen"), cell: (b) => Q.ago(b.last_seen_at) },
      { label: t("version"), key: "software_version" },
      { label: t("backlog"), cell: (b) => String(b.outbox_rows) },
      { label: t("devices_offline"), cell: (b) => String((b.devices || []).filter((d) => d.state !== "online").length) },
      { label: t("created"), cell: (b) => Q.when(b.created_at) },
      { label: "", cell: actions },
    ], rows, t("fleet_boxes")));
    for (const [i, tr] of [...document.querySelectorAll("#fleet tbody tr")].entries()) tr.dataset.box = rows[i].id;
  }

  async function load() {
    try {
      const page = await Q.api("GET", "/boxes?limit=200" + (after ? "&after=" + encodeURIComponent(after) : ""));
      rows = rows.concat(page.items);
      after = page.next || "";
      more.hidden = !page.next;
      render();
    } catch (e) { Q.fill("fleet", h("p", { class: "error", text: t("load_failed") + ": " + e.message })); }
  }
  more.addEventListener("click", load);
  load();
};

pages.audit = async () => {
  const { t, h } = Q;
  const filters = document.getElementById("filters");
  const more = document.getElementById("more");
  let rows = [], before = 0;
  async function load(reset) {
    if (reset) { rows = []; before = 0; }
    const actor = new FormData(filters).get("actor");
    const qs = new URLSearchParams({ limit: "100" });
    if (actor) qs.set("actor", actor);
    if (before) qs.set("before", String(before));
    try {
      const page = await Q.api("GET", "/audit?" + qs);
      rows = rows.concat(page.items);
      before = page.next_before || 0;
      more.hidden = !page.next_before;
    } catch (e) { Q.fill("audit", h("p", { class: "error", text: t("load_failed") + ": " + e.message })); return; }
    Q.fill("audit", Q.table([
      { label: t("time"), cell: (r) => Q.when(r.ts) },
      { label: t("actor"), key: "actor" },
      { label: t("via"), key: "via" },
      { label: t("action"), key: "action" },
      { label: t("area"), key: "area_path" },
      { label: t("target"), key: "target" },
      { label: t("status"), cell: (r) => h("span", { class: r.status < 400 ? "ok" : "bad", text: String(r.status) }) },
      { label: t("detail"), cell: (r) => h("code", { text: r.detail }) },
    ], rows, t("nav_audit")));
  }
  filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(true); });
  more.addEventListener("click", () => load(false));
  load(true);
};

const init = pages[Q.body.dataset.page];
if (init) init();
