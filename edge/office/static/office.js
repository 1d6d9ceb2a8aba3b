/* The property office's pages (/office/, 物业工作台). Built on the city console's script
   (common/console_static/console.js: Q.h, Q.api, Q.table, Q.badge, Q.toast ...), which holds
   what both consoles show (the audit page, the tickets board, the alert item, the reports
   list); this file passes the box's adapters to those and has the box's own pages. Every call
   goes to the box's API (/api/v1/...) with the session cookie and, for writes, the CSRF token. */
"use strict";

(() => {
  const { t, h } = Q;
  const admin = Q.body.dataset.role === "admin";
  const P = {};
  const lbl = (prefix, code) => { const k = prefix + "_" + code; const v = t(k); return v === k ? code : v; };
  const failed = (id, e) => {
    // Routes residents use too answer an ended session as a resident (403), not 401:
    // reloading the page shows the sign-in form when the session is gone.
    if (e.message === "staff token required") { location.reload(); return; }
    Q.fill(id, h("p", { class: "error", text: t("load_failed") + ": " + e.message }));
  };
  const hhmm = (min) => String(Math.floor(min / 60)).padStart(2, "0") + ":" + String(min % 60).padStart(2, "0");
  const flat = (r) => [r.building, r.unit, r.room].filter(Boolean).join("-");

  /* Multipart writes (photos): Q.api sends JSON; this sends a FormData with the CSRF token. */
  async function send(method, path, form) {
    const r = await fetch(Q.body.dataset.api + path, { method, body: form, credentials: "same-origin",
      headers: { Accept: "application/json",
        "X-CSRF-Token": document.querySelector('meta[name="csrf"]').content } });
    const out = await r.json().catch(() => ({}));
    if (r.status === 401) { location.reload(); throw new Error(t("login_expired")); }
    out._status = r.status;
    if (!r.ok && r.status !== 422) throw new Error(out.error || r.status + " " + r.statusText);
    return out;
  }

  /* A button that asks once more before it acts (opening a door, lifting a block). */
  function confirmButton(text, ask, cls, act) {
    const b = h("button", { type: "button", class: cls || "", text });
    let armed = false;
    b.addEventListener("click", async () => {
      if (!armed) {
        armed = true;
        b.textContent = ask;
        b.classList.add("armed");
        setTimeout(() => { if (armed) { armed = false; b.textContent = text; b.classList.remove("armed"); } }, 6000);
        return;
      }
      armed = false;
      b.textContent = text;
      b.classList.remove("armed");
      b.disabled = true;
      try { await act(); } finally { b.disabled = false; }
    });
    return b;
  }

  let residentsCache = null;
  async function residents() {
    residentsCache = residentsCache || await Q.api("GET", "/residents");
    return residentsCache;
  }
  async function fillResidents(select) {
    for (const r of await residents()) {
      select.append(h("option", { value: r.id, text: `${r.name} (${r.id}${flat(r) ? " · " + flat(r) : ""})` }));
    }
  }
  let devicesCache = null;
  async function doors() {
    devicesCache = devicesCache || (await Q.api("GET", "/office/devices")).items;
    return devicesCache.filter((d) => d.kind === "door");
  }

  /* --- today: alerts, reports, open tickets ----------------------------------------- */
  const ACTIVE = ["open", "assigned", "in_progress", "reopened"];
  // The tickets of these states, newest first: one request per state, so an old unfinished
  // ticket is not pushed out by hundreds of newer finished ones (the list answers the newest
  // tickets first, at most 1000 a request).
  const ticketsIn = async (states, query = "") => (await Promise.all(states.map((st) =>
    Q.api("GET", `/tickets?status=${st}&limit=1000${query}`)))).flat()
    .sort((a, b) => b.ts.localeCompare(a.ts));
  P.today = async () => {
    let alerts, reports, tickets;
    try {
      [alerts, reports, tickets] = await Promise.all([Q.api("GET", "/alerts?limit=200"),
        Q.api("GET", "/reports?limit=200"), ticketsIn(ACTIVE)]);
    } catch (e) { failed("alerts", e); return; }
    const start = new Date(); start.setHours(0, 0, 0, 0);
    const today = (iso) => Date.parse(iso) >= start.getTime();
    const a = alerts.filter((x) => today(x.ts));
    const r = reports.filter((x) => today(x.ts));
    const open = tickets.filter((x) => ACTIVE.includes(x.status));
    const late = open.filter((x) => x.due_at && Date.parse(x.due_at) < Date.now());
    const kpi = (label, value, cls) => h("div", { class: "kpi " + (cls || "") },
      h("span", { class: "value", text: String(value) }), h("span", { class: "label", text: label }));
    const crit = a.filter((x) => x.level === "critical").length;
    Q.fill("kpis", h("div", { class: "kpirow" },
      kpi(t("kpi_alerts_today"), a.length, a.length ? "bad" : "ok"),
      kpi(t("kpi_critical_today"), crit, crit ? "bad" : ""),
      kpi(t("kpi_reports_today"), r.length),
      kpi(t("kpi_open_tickets"), open.length),
      kpi(t("kpi_overdue"), late.length, late.length ? "bad" : "ok")));
    // console.js alertItem with the box's rows as they are; the box's alerts have no actions here
    Q.fill("alerts", a.length ? h("ol", { class: "feed" }, a.map((x) => alertItem({ key: x.id, level: x.level,
      type: x.type, ts: x.ts, message: x.message }, {}))) : h("p", { class: "muted", text: t("none_today") }));
    Q.fill("open-tickets", open.length ? h("ul", { class: "plain" }, open.slice(0, 12).map((x) => h("li", {},
      h("a", { href: "tickets#" + x.id, text: x.title }),
      h("span", { class: "muted", text: " · " + lbl("col", x.status) + " · " + (x.assignee || t("no_assignee")) })))) :
      h("p", { class: "muted", text: t("empty") }));
    Q.fill("reports", reportsTable(r, { columns: ["time", "category", "urgency", "building", "text", "status"],
      reply: (x, body) => Q.api("POST", `/reports/${encodeURIComponent(x.id)}/status`, body) },
      t("today_reports")));
  };

  /* --- tickets: the board by state (console.js ticketBoard), the box's side ------------- */
  /* The box's rows from /tickets, put in columns here (reopened ones with the open); an
     action applies at once (/tickets/{id}/{action}, multipart when photos go along). */
  const COLUMNS = ["open", "assigned", "in_progress", "resolved"];
  // Who a signed-in resident's repair is for, name and flat: the worker has to know where to
  // go when the form gave only the building. (Residents' ids not on the list read as the id.)
  let reloaded = false;
  async function reporters(rows) {
    const ids = [...new Set(rows.map((x) => x.resident_id).filter(Boolean))];
    let list = [];
    try {
      list = await residents();
      if (!reloaded && ids.some((id) => !list.some((r) => r.id === id))) {
        reloaded = true; residentsCache = null; list = await residents();
      }
    } catch (e) { /* the board shows the tickets all the same */ }
    const who = Object.fromEntries(list.map((r) => [r.id, r]));
    return Object.fromEntries(ids.map((id) => [id, t("reporter") + " " +
      (who[id] ? [who[id].name, flat(who[id])].filter(Boolean).join(" ") : id)]));
  }
  const officeTickets = {
    async load(f) {
      const cols = f.get("done") ? [...COLUMNS, "confirmed"] : COLUMNS;
      const rows = await ticketsIn([...cols, "reopened"], f.get("assignee") ? "&assignee=" + encodeURIComponent(f.get("assignee")) : "");
      const now = Date.now(), who = await reporters(rows);
      return cols.map((col) => [col, rows.filter((x) => (x.status === "reopened" ? "open" : x.status) === col)
        .sort((a, b) => (a.due_at || "9").localeCompare(b.due_at || "9"))  // overdue first
        .map((x) => ({ ...x, state: x.status, reopened: x.status === "reopened", reporter: who[x.resident_id],
          overdue: Boolean(x.due_at && Date.parse(x.due_at) < now && ACTIVE.includes(x.status)) }))]);
    },
    async send(x, action, fd) {
      const path = `/tickets/${encodeURIComponent(x.id)}/${action}`;
      // JSON unless photos go along (the audit log then shows what was sent)
      if (fd.has("photos")) await send("POST", path, fd);
      else await Q.api("POST", path, Object.fromEntries(fd.entries()));
      return t("saved");
    },
    more: { label: t("details"), async render(x) {
      const d = await Q.api("GET", `/tickets/${encodeURIComponent(x.id)}`);
      return [
        d.description ? h("p", { text: d.description }) : null,
        d.photos.length ? h("div", { class: "thumbs" }, d.photos.map((p) => h("a", { href: "/api/v1/photos/" + p.id, target: "_blank" },
          h("img", { src: "/api/v1/photos/" + p.id, alt: t("photo") + " · " + lbl("stage", p.stage), loading: "lazy" })))) : null,
        h("ol", { class: "history" }, (d.history || []).map((e) => h("li", {},
          Q.when(e.ts) + " · " + lbl("col", e.to_status || e.status || "") + (e.actor ? " · " + e.actor : "") +
          (e.assignee ? " → " + e.assignee : "") + (e.note ? " “" + e.note + "”" : ""))))].filter(Boolean);
    } },
    photos: true,
    submit: (action) => t("act_" + action),
    emptyColumn: true,
    failed: (e) => failed("board", e),
  };
  P.tickets = async () => {
    const board = ticketBoard(officeTickets);
    // A repair phoned in or brought to the office (elderly residents often call rather than
    // use the phone page): logged here, in the resident's name when one is chosen, so it is
    // on the board and in their 我的进度.
    if (!admin) return;  // viewers see the board only
    const form = document.getElementById("new-ticket");
    const rid = document.getElementById("nt-rid");
    try {
      for (const f of await Q.api("GET", "/tickets/faults")) {
        document.getElementById("nt-fault").append(h("option", { value: f.code, text: f.zh }));
      }
      await fillResidents(rid);
    } catch (e) { Q.toast(t("load_failed") + ": " + e.message, true); }
    rid.addEventListener("change", async () => {  // their flat, unless typed already
      const r = (await residents()).find((x) => x.id === rid.value);
      if (!r) return;
      if (!form.building.value) form.building.value = r.building || "";
      if (!form.location.value) form.location.value = [r.unit ? r.unit + "单元" : "", r.room ? r.room + "室" : ""].join("");
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ""));
      try {
        const x = await Q.api("POST", "/tickets", body);
        Q.toast(t("ticket_created") + (x.ref ? " #" + x.ref : ""));
        form.reset();
        board.load();
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
  };

  /* --- residents and face enrolment (upload or the camera), with the quality gate live -- */
  const reasonText = (c) => {
    const key = "q_" + String(c.reason).replace("quality:", "");
    const v = t(key);
    return v === key ? (c.detail || c.reason) : v;
  };

  P.residents = async () => {
    let current = null;
    const section = document.getElementById("enrol");
    const find = document.getElementById("find");

    async function list() {
      residentsCache = null;
      let rows;
      try { rows = await residents(); } catch (e) { failed("residents", e); return; }
      const q = String(new FormData(find).get("q") || "").trim();
      const shown = q ? rows.filter((r) => (r.id + " " + r.name + " " + flat(r)).includes(q)) : rows;
      Q.fill("residents", Q.table([
        { label: t("resident_id"), key: "id" },
        { label: t("name"), key: "name" },
        { label: t("flat"), cell: flat },
        { label: t("pass_state"), cell: (r) => lbl("res_status", r.status) },
        { label: t("faces"), cell: (r) => h("span", { class: r.templates ? "ok" : "bad", "data-templates": r.templates,
          text: r.templates ? String(r.templates) : t("no_face") }) },
        { label: "", cell: (r) => admin ? h("button", { type: "button", "data-enrol": r.id, text: t("enrol_title"),
          onclick: () => open(r) }) : null },
      ], shown, t("residents_list")));
    }

    function open(r) {
      current = r;
      document.getElementById("enrol-who").textContent = `${r.name} (${r.id})`;
      section.hidden = false;
      section.scrollIntoView({ block: "start" });
      document.getElementById("upload").querySelector("input").focus();
    }

    async function check(blob, name) {
      const fd = new FormData();
      fd.append("photo", blob, name);
      fd.append("resident_id", current ? current.id : "");
      return send("POST", "/office/face-check", fd);
    }

    // Upload: each chosen photo is checked at once and says why it would be refused.
    const upload = document.getElementById("upload");
    const checks = document.getElementById("checks");
    const go = upload.querySelector("button[type=submit]");
    upload.elements.photo.addEventListener("change", async () => {
      checks.replaceChildren();
      go.disabled = true;
      let good = 0;
      for (const file of upload.elements.photo.files) {
        const li = h("li", { class: "checking", "data-file": file.name }, h("b", { text: file.name }), " ", t("checking"));
        checks.append(li);
        try {
          const c = await check(file, file.name);
          li.className = c.ok ? "ok" : "bad";
          li.dataset.reason = c.reason;
          li.replaceChildren(...[h("span", { class: "mark", "aria-hidden": "true", text: c.ok ? "✓" : "✗" }), " ",
            h("b", { text: file.name }), " ", c.ok ? t("q_ok") : reasonText(c),
            (c.warnings || []).length ? h("small", { class: "muted", text: " · " + c.warnings.join("; ") }) : null]
            .filter((x) => x !== null));
          if (c.ok) good++;
        } catch (e) { li.className = "bad"; li.textContent = file.name + ": " + e.message; }
      }
      go.disabled = !good;
    });
    upload.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!current) return;
      const fd = new FormData();
      for (const file of upload.elements.photo.files) fd.append("photo", file, file.name);
      try {
        const out = await send("POST", `/residents/${encodeURIComponent(current.id)}/photos`, fd);
        showResult(out);
        upload.reset();
        checks.replaceChildren();
        go.disabled = true;
        list();
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });

    function showResult(out) {
      const res = document.getElementById("enrol-result");
      res.dataset.accepted = String(out.accepted.length);
      res.replaceChildren(h("p", { class: out.accepted.length ? "ok" : "bad",
        text: t("enrol_done").replace("{n}", out.accepted.length).replace("{m}", out.rejected.length) }));
      if (out.rejected.length) res.append(h("ul", {}, out.rejected.map((x) => h("li", { text: x.file + ": " + reasonText(x) }))));
      Q.toast(res.textContent, !out.accepted.length);
    }

    // The camera (getUserMedia): a frame a second goes through the gate; "take" enrols it.
    const video = document.getElementById("cam");
    const verdict = document.getElementById("cam-verdict");
    const startB = document.getElementById("cam-start");
    const takeB = document.getElementById("cam-take");
    const stopB = document.getElementById("cam-stop");
    let stream = null, timer = null, lastGood = null;
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      document.getElementById("cam-note").textContent = t("camera_insecure");
      startB.disabled = true;
    }
    const grab = () => new Promise((resolve) => {
      const c = document.createElement("canvas");
      c.width = video.videoWidth; c.height = video.videoHeight;
      c.getContext("2d").drawImage(video, 0, 0);
      c.toBlob(resolve, "image/jpeg", 0.9);
    });
    async function tick() {
      if (!stream || !video.videoWidth) return;
      const blob = await grab();
      try {
        const c = await check(blob, "camera.jpg");
        verdict.className = "verdict " + (c.ok ? "ok" : "bad");
        verdict.dataset.reason = c.reason;
        verdict.textContent = (c.ok ? "✓ " + t("q_ok") : "✗ " + reasonText(c));
        lastGood = c.ok ? blob : null;
        takeB.disabled = !c.ok;
      } catch (e) { verdict.textContent = e.message; }
    }
    startB.addEventListener("click", async () => {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 640 } }, audio: false });
      } catch (e) { Q.toast(t("camera_refused") + ": " + e.message, true); return; }
      video.srcObject = stream;
      video.hidden = false; startB.hidden = true; stopB.hidden = false;
      verdict.textContent = t("checking");
      timer = setInterval(tick, 1200);
    });
    function stop() {
      clearInterval(timer);
      if (stream) stream.getTracks().forEach((tr) => tr.stop());
      stream = null; video.hidden = true; startB.hidden = false; stopB.hidden = true; takeB.disabled = true;
    }
    stopB.addEventListener("click", stop);
    takeB.addEventListener("click", async () => {
      if (!current || !lastGood) return;
      const fd = new FormData();
      fd.append("photo", lastGood, "camera-" + Date.now() + ".jpg");
      try { showResult(await send("POST", `/residents/${encodeURIComponent(current.id)}/photos`, fd)); list(); }
      catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });

    const add = document.getElementById("add");
    add.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const [k, v] of new FormData(add)) if (v) body[k] = v;
      try { await Q.api("POST", "/residents", body); Q.toast(t("saved")); add.reset(); list(); }
      catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    find.addEventListener("input", list);
    find.addEventListener("submit", (ev) => ev.preventDefault());
    list();
  };

  /* --- doors: open from the console; door rights and time windows -------------------- */
  P.doors = async () => {
    let ds;
    try { ds = await doors(); } catch (e) { failed("doors", e); return; }
    Q.fill("doors", Q.table([
      { label: t("door"), cell: (d) => h("span", {}, h("b", { text: d.name || d.id }), " ", h("small", { class: "muted", text: d.id })) },
      { label: t("building"), cell: (d) => d.building || "" },
      { label: t("health"), cell: (d) => Q.badge(d.state === "online" ? "online" : "offline") },
      { label: t("reason"), cell: (d) => d.reason },
      { label: "", cell: (d) => admin ? confirmButton(t("open_door"), t("open_door_q").replace("{door}", d.name || d.id), "primary", async () => {
        try {
          const out = await Q.api("POST", `/doors/${encodeURIComponent(d.id)}/open`);
          Q.toast(t("door_opened") + " · " + (d.name || d.id) + (out.relay_changed === false ? " (" + t("relay_unconfirmed") + ")" : ""));
        } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
      }) : null },
    ], ds, t("doors_open_title")));
    for (const [i, tr] of [...document.querySelectorAll("#doors tbody tr")].entries()) tr.dataset.door = ds[i].id;

    const select = document.getElementById("rid");
    const form = document.getElementById("rights");
    const boxes = document.getElementById("door-boxes");
    const wins = document.getElementById("windows");
    try { await fillResidents(select); } catch (e) { Q.toast(t("load_failed") + ": " + e.message, true); }
    const doorOptions = (sel) => [h("option", { value: "", text: t("all_doors") }),
      ...ds.map((d) => h("option", { value: d.id, text: d.name || d.id, selected: sel === d.id }))];
    function windowRow(w) {
      const row = h("div", { class: "row window" },
        h("label", {}, t("door"), h("select", { name: "w_door" }, doorOptions(w.door_id))),
        h("label", {}, t("days"), h("input", { name: "w_days", size: 8, value: w.days || "1-7", pattern: "[1-7,\\- ]*" })),
        h("label", {}, t("start_time"), h("input", { name: "w_start", type: "time", required: true, value: w.start || "07:00" })),
        h("label", {}, t("end_time"), h("input", { name: "w_end", type: "time", required: true, value: w.end || "22:00" })),
        h("button", { type: "button", class: "link-danger", text: t("remove"), onclick: () => row.remove() }));
      return row;
    }
    document.getElementById("add-window").addEventListener("click", () => wins.append(windowRow({})));
    // What the box enforces (edge/access/policy.py allowed_door), from the form as it stands:
    // a door ticked here, or granted otherwise (all doors, the resident record, the
    // community's defaults, a listed building). Nothing at all: no door.
    let rights = null;
    // "1, 2" / "1，2" / "1 2" -> ["1", "2"] (the buildings field; was called but never defined)
    const ids = (text) => String(text || "").split(/[\s,，、]+/).filter(Boolean);
    function via(d) {
      const r = rights, f = form.elements;
      if (f.all_doors.checked) return t("rights_via_all");
      if (r.resident_doors.includes(d.id)) return t("rights_via_record");
      if (r.defaults.doors.includes(d.id)) return t("rights_via_default");
      if (d.building && r.defaults.own_building && d.building === r.building) return t("rights_via_own");
      if (d.building && ids(f.buildings.value).includes(d.building)) return t("rights_via_building") + " " + d.building;
      return "";
    }
    function showGranted() {
      if (!rights) return;
      const open = [];
      for (const label of boxes.querySelectorAll("label[data-door]")) {
        const d = ds.find((x) => x.id === label.dataset.door);
        const box = label.querySelector("input"), why = via(d);
        label.querySelector(".via").textContent = why ? "（" + why + "）" : "";
        if (why || box.checked) open.push(d.name || d.id);
      }
      document.getElementById("rights-opens").textContent = t("rights_opens") + (open.length ? open.join(", ") : t("rights_none"));
    }
    form.addEventListener("change", showGranted);
    form.elements.buildings.addEventListener("input", showGranted);
    select.addEventListener("change", async () => {
      if (!select.value) { form.hidden = true; return; }
      try {
        const r = await Q.api("GET", `/residents/${encodeURIComponent(select.value)}/access`);
        rights = r;
        form.elements.all_doors.checked = r.all_doors;
        boxes.replaceChildren(...ds.map((d) => h("label", { class: "check", "data-door": d.id },
          h("input", { type: "checkbox", name: "doors", value: d.id, checked: r.doors.includes(d.id) }), d.name || d.id,
          " ", h("small", { class: "muted via" }))));
        form.elements.buildings.value = r.buildings.join(", ");
        showGranted();
        wins.replaceChildren(...r.windows.map((w) => windowRow({ door_id: w.door_id, days: w.days,
          start: hhmm(w.start_min), end: hhmm(w.end_min) })));
        form.hidden = false;
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { all_doors: form.elements.all_doors.checked, doors: f.getAll("doors"), buildings: ids(f.get("buildings")),
        windows: [...wins.querySelectorAll(".window")].map((row) => {
          const w = { days: row.querySelector("[name=w_days]").value, start: row.querySelector("[name=w_start]").value,
            end: row.querySelector("[name=w_end]").value };
          const door = row.querySelector("[name=w_door]").value;
          if (door) w.door_id = door;
          return w;
        }) };
      try { await Q.api("PUT", `/residents/${encodeURIComponent(select.value)}/access`, body); Q.toast(t("saved")); }
      catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
  };

  /* --- visitor passes ---------------------------------------------------------------- */
  P.passes = async () => {
    const who = {};
    async function list() {
      let rows;
      try { rows = await Q.api("GET", "/passes"); } catch (e) { failed("passes", e); return; }
      const live = (p) => !p.revoked && p.uses_left > 0 && Date.parse(p.valid_to) > Date.now();
      Q.fill("passes", Q.table([
        { label: t("resident"), cell: (p) => who[p.resident_id] || p.resident_id },
        { label: t("visitor"), key: "visitor" },
        { label: t("pass_doors"), cell: (p) => p.doors.join(", ") },
        { label: t("from_to"), cell: (p) => Q.when(p.valid_from) + " – " + Q.when(p.valid_to) },
        { label: t("pass_uses"), cell: (p) => `${p.uses_left}/${p.uses_total}` },
        { label: t("pass_state"), cell: (p) => h("span", { class: "badge " + (live(p) ? "online" : "offline"),
          text: t(live(p) ? "pass_live" : (p.revoked ? "pass_revoked" : "pass_over")) }) },
        { label: "", cell: (p) => admin && live(p) ? confirmButton(t("void_pass"), t("revoke_pass_q"), "danger", async () => {
          try { await Q.api("DELETE", `/passes/${encodeURIComponent(p.id)}`); Q.toast(t("saved")); list(); }
          catch (e) { Q.toast(t("error") + ": " + e.message, true); }
        }) : null },
      ], rows, t("passes_list")));
    }
    try { for (const r of await residents()) who[r.id] = r.name; } catch (e) { /* names are a nicety */ }
    const form = document.getElementById("new-pass");
    const select = document.getElementById("pass-rid");
    await fillResidents(select).catch(() => {});
    const ds = await doors().catch(() => []);
    document.getElementById("pass-doors").replaceChildren(...ds.map((d, i) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "doors", value: d.id, checked: i === 0 }), d.name || d.id)));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { resident_id: f.get("resident_id"), visitor: f.get("visitor") || "", doors: f.getAll("doors"),
        valid_to: new Date(Date.now() + 3600e3 * Number(f.get("hours") || 4)).toISOString(), uses: Number(f.get("uses") || 1) };
      if (!body.doors.length) { Q.toast(t("need_door"), true); return; }
      try {
        const p = await Q.api("POST", "/passes", body);
        Q.fill("pass-out", h("div", { class: "pass-card", "data-pass": p.id },
          h("p", {}, t("pass_pin") + ": ", h("code", { class: "claim", text: p.pin })),
          h("img", { src: "data:image/png;base64," + p.qr_png_base64, alt: t("pass_qr"), width: 180, height: 180 }),
          h("p", { class: "muted", text: t("pass_shown_once") })));
        list();
      } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    list();
  };

  /* --- blocked residents ------------------------------------------------------------ */
  P.blocks = async () => {
    const who = {};
    async function list() {
      let rows;
      try { rows = await Q.api("GET", "/access/blocks"); } catch (e) { failed("blocks", e); return; }
      Q.fill("blocks", Q.table([
        { label: t("resident"), cell: (b) => h("span", {}, who[b.resident_id] || "", " ", h("small", { class: "muted", text: b.resident_id })) },
        { label: t("door"), cell: (b) => b.door_id || t("all_doors") },
        { label: t("reason"), key: "reason" },
        { label: t("block_until"), cell: (b) => b.until ? Q.when(b.until) : t("until_lifted") },
        { label: t("by"), cell: (b) => (b.created_by || "") + " · " + Q.when(b.created_at) },
        { label: "", cell: (b) => admin ? confirmButton(t("lift"), t("lift_q"), "", async () => {
          try { await Q.api("DELETE", `/access/blocks/${encodeURIComponent(b.id)}`); Q.toast(t("saved")); list(); }
          catch (e) { Q.toast(t("error") + ": " + e.message, true); }
        }) : null },
      ], rows, t("blocks_list")));
    }
    try { for (const r of await residents()) who[r.id] = r.name; } catch (e) { /* names are a nicety */ }
    await fillResidents(document.getElementById("block-rid")).catch(() => {});
    for (const d of await doors().catch(() => [])) document.getElementById("block-door").append(h("option", { value: d.id, text: d.name || d.id }));
    const form = document.getElementById("new-block");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { resident_id: f.get("resident_id"), reason: f.get("reason") || "" };
      if (f.get("door_id")) body.door_id = f.get("door_id");
      if (f.get("until")) body.until = new Date(f.get("until")).toISOString();
      try { await Q.api("POST", "/access/blocks", body); Q.toast(t("saved")); form.reset(); list(); }
      catch (e) { Q.toast(t("error") + ": " + e.message, true); }
    });
    list();
  };

  /* --- the moderation queue (posts residents flagged) --------------------------------- */
  P.moderation = async () => {
    let cats = [];
    try { cats = (await Q.api("GET", "/taxonomy")).categories; } catch (e) { /* codes only */ }
    async function list() {
      let out;
      try { out = await Q.api("GET", "/portal/moderation"); } catch (e) { failed("queue", e); return; }
      if (!out.items.length) { Q.fill("queue", h("p", { class: "muted", text: t("queue_empty") })); return; }
      Q.fill("queue", h("div", { class: "posts" }, out.items.map((p) => {
        const sel = h("select", { "aria-label": t("category") }, cats.map((c) => h("option", { value: c.code, text: c.zh && Q.body.dataset.lang === "zh" ? c.zh : (c.en || c.code) })));
        const first = (p.flag_list[0] || {}).category;
        if (first) sel.value = first;
        const act = async (action) => {
          try {
            await Q.api("POST", `/portal/posts/${encodeURIComponent(p.id)}/moderate`, action === "hide" ? { action, category: sel.value } : { action });
            Q.toast(t("saved")); list();
          } catch (e) { Q.toast(t("error") + ": " + e.message, true); }
        };
        return h("article", { class: "card post", "data-post": p.id },
          h("h3", { text: p.title }), p.body ? h("p", { text: p.body }) : null,
          h("p", { class: "muted", text: Q.when(p.created_at) + " · " + (p.author_kind || "") + " " + (p.building ? t("building") + " " + p.building : "") }),
          h("p", {}, h("b", { text: t("flags") + ": " }), p.flag_list.map((f) => lbl("cat", f.category) + (f.reason ? " (" + f.reason + ")" : "")).join("；")),
          admin ? h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: t("restore"), onclick: () => act("restore") }),
            h("label", { class: "inline" }, t("hide_as"), sel), h("button", { type: "button", class: "danger", text: t("hide"), onclick: () => act("hide") })) : null);
      })));
    }
    list();
  };

  /* --- devices with a live camera picture ---------------------------------------------- */
  P.devices = async () => {
    let items;
    try { items = (await Q.api("GET", "/office/devices")).items; } catch (e) { failed("devices", e); return; }
    Q.fill("devices", Q.table([
      { label: t("kind"), cell: (d) => lbl("kind", d.kind) },
      { label: t("device"), cell: (d) => h("span", {}, h("b", { text: d.name || d.id }), " ", h("small", { class: "muted", text: d.id })) },
      { label: t("type"), key: "type" },
      { label: t("health"), cell: (d) => h("span", { class: "badge " + (d.state === "online" ? "online" : d.state === "degraded" ? "warning" : "offline"), text: lbl("state", d.state) }) },
      { label: t("reason"), key: "reason" },
      { label: t("detail"), cell: (d) => d.camera ? `${d.camera.width || "?"}×${d.camera.height || "?"} · ${d.camera.fps ?? "–"} fps` : (d.building ? t("building") + " " + d.building : "") },
    ], items, t("devices_title")));
    const cams = items.filter((d) => d.kind === "camera");
    if (!cams.length) { Q.fill("cameras", h("p", { class: "muted", text: t("no_cameras") })); return; }
    Q.fill("cameras", h("div", { class: "cams" }, cams.map((c) => h("figure", { class: "cam", "data-camera": c.id },
      h("img", { alt: t("live_picture") + " · " + (c.name || c.id), width: 320, height: 240 }),
      h("figcaption", {}, h("b", { text: c.name || c.id }), " ", h("span", { class: "muted stamp" }))))));
    // Each picture reloads once the previous one arrived: never a pile of requests.
    for (const fig of document.querySelectorAll("figure.cam")) {
      const img = fig.querySelector("img");
      const stamp = fig.querySelector(".stamp");
      const next = () => setTimeout(() => { img.src = `/api/v1/office/cameras/${encodeURIComponent(fig.dataset.camera)}/snapshot.jpg?t=${Date.now()}`; }, 1500);
      img.addEventListener("load", () => { stamp.textContent = new Date().toLocaleTimeString(); fig.dataset.loaded = String(Number(fig.dataset.loaded || 0) + 1); next(); });
      img.addEventListener("error", () => { stamp.textContent = t("no_picture"); next(); });
      img.src = `/api/v1/office/cameras/${encodeURIComponent(fig.dataset.camera)}/snapshot.jpg?t=${Date.now()}`;
    }
  };

  /* --- the access log (thumbnails where the box keeps them) ----------------------------- */
  // A face's match score with its scale: "z 6.3" once the gallery z-normalises (score_scale
  // znorm), else "cos 0.71" (raw or centred cosine; rows from before score_scale are cosines).
  const score = (e) => {
    if (e.similarity === null || e.similarity === undefined) return "";
    const z = e.score_scale === "znorm";
    const v = Number(e.similarity);
    return h("span", { class: "score", "data-scale": e.score_scale || "raw",
      title: t(z ? "scale_znorm" : "scale_cos"), text: z ? `z ${v.toFixed(1)}` : `cos ${v.toFixed(2)}` });
  };
  P.log = async () => {
    const filters = document.getElementById("filters");
    for (const d of await doors().catch(() => [])) document.getElementById("log-door").append(h("option", { value: d.id, text: d.name || d.id }));
    async function load() {
      const f = new FormData(filters);
      const qs = new URLSearchParams({ limit: "100" });
      for (const k of ["door", "decision"]) if (f.get(k)) qs.set(k, f.get(k));
      let rows;
      try { rows = await Q.api("GET", "/access/events?" + qs); } catch (e) { failed("events", e); return; }
      Q.fill("events", Q.table([
        { label: t("thumb"), cell: (e) => e.thumbnail_url ? h("a", { href: e.thumbnail_url, target: "_blank" }, h("img", { class: "thumb", src: e.thumbnail_url, alt: `${t("thumb")} · ${e.door_id} · ${Q.when(e.ts)}` })) : h("span", { class: "muted", text: "—" }) },
        { label: t("time"), cell: (e) => Q.when(e.ts) },
        { label: t("door"), key: "door_id" },
        { label: t("method"), cell: (e) => lbl("method", e.method) },
        { label: t("decision"), cell: (e) => h("span", { class: "badge " + (e.decision === "granted" ? "online" : "offline"), text: t(e.decision) }) },
        { label: t("reason"), cell: (e) => lbl("why", e.reason) },
        { label: t("who"), cell: (e) => e.resident_id || e.pass_id || e.actor || "" },
        { label: t("match_score"), cell: score },
      ], rows, t("nav_log")));
    }
    filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    load();
    setInterval(load, 5000);
  };

  if (!admin) Q.body.classList.add("read-only");
  const page = Q.body.dataset.page.replace(/^office-/, "");
  if (Q.body.dataset.page.startsWith("office-") && P[page]) P[page]();
})();
