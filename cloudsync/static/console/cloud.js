/* City console pages only the cloud has: update roll-outs (on the fleet page), plays and
   reading statistics, the content library; and the cloud's side of the pages both consoles
   share (the tickets board, the alerts and reports lists). Runs after common console.js (both deferred, in
   order) and uses its helpers (Q, ids, rid, fmt, categoryBars' look). Data only through the
   ops API; everything shown is built with textContent. */
"use strict";

(() => {
  const CT = JSON.parse(document.getElementById("i18n-cloud").textContent);
  const t = (key) => CT[key] || Q.t(key);
  const { h } = Q;
  const admin = Q.body.dataset.role === "admin";
  const problem = (id, e) => Q.fill(id, h("p", { class: "error", text: Q.t("load_failed") + ": " + e.message }));

  /* Horizontal bars: [{label, n, title}] -> a list a person reads at a glance. */
  function bars(rows, unit) {
    if (!rows.length) return h("p", { class: "muted", text: Q.t("empty") });
    const max = Math.max(...rows.map((r) => r.n), 1);
    return h("ul", { class: "bars wide" }, rows.map((r) => {
      const bar = h("span", { class: "bar" });
      bar.style.width = (100 * r.n / max).toFixed(1) + "%";  // CSSOM: allowed under the CSP
      return h("li", { title: r.title || r.label },
        h("span", { class: "name", text: r.label }), h("span", { class: "track" }, bar),
        h("span", { class: "n", text: String(r.n) + (unit || "") }));
    }));
  }

  /* --- fleet: update roll-outs in waves ------------------------------------------------ */

  function rollouts() {
    const form = document.getElementById("rollout");
    const confirmBox = document.getElementById("ro-confirm");
    const out = document.getElementById("ro-result");
    const open = new Set();  // roll-outs whose box list is shown
    let pending = null;

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const targets = { areas: ids(f.get("areas")), boxes: ids(f.get("boxes")) };
      if (!targets.areas.length && !targets.boxes.length) { Q.toast(Q.t("need_target"), true); return; }
      pending = { version: String(f.get("version")).trim(), targets,
        waves: String(f.get("waves") || "").split(/[\s,，]+/).filter(Boolean),
        wave_timeout_s: 60 * Number(f.get("timeout") || 60) };
      if (f.get("url")) pending.url = String(f.get("url"));
      if (f.get("sha256")) pending.sha256 = String(f.get("sha256"));
      document.getElementById("ro-summary").textContent =
        `${pending.version} → ${[...targets.areas, ...targets.boxes].join(", ")} · ` +
        `${t("ro_wave")}: ${pending.waves.join(" → ")} · ${f.get("timeout")} min`;
      confirmBox.hidden = false;
      document.getElementById("ro-go").focus();
    });
    document.getElementById("ro-back").addEventListener("click", () => { confirmBox.hidden = true; pending = null; });
    document.getElementById("ro-go").addEventListener("click", async () => {
      if (!pending) return;
      const sent = pending;
      pending = null;
      confirmBox.hidden = true;
      try {
        const ro = await Q.api("POST", "/rollouts", sent);
        out.textContent = fmt(t("ro_started"), { id: ro.id, n: ro.sent });
        out.dataset.rollout = ro.id;
        open.add(ro.id);
        load();
      } catch (e) { Q.toast(Q.t("error") + ": " + e.message, true); }
    });

    async function act(ro, action) {
      try {
        await Q.api("POST", `/rollouts/${ro.id}/state`, { action });
        load();
      } catch (e) { Q.toast(Q.t("error") + ": " + e.message, true); }
    }

    function buttons(ro) {
      if (!admin || ro.state === "done" || ro.state === "aborted") return null;
      const wrap = h("div", { class: "actions" });
      if (ro.state === "running") wrap.append(h("button", { type: "button", "data-action": "pause", text: t("ro_pause"), onclick: () => act(ro, "pause") }));
      if (ro.state === "paused") wrap.append(h("button", { type: "button", class: "primary", "data-action": "resume", text: t("ro_resume"), onclick: () => act(ro, "resume") }));
      wrap.append(h("button", { type: "button", class: "danger", "data-action": "abort", text: t("ro_abort"), onclick: () => {
        if (wrap.querySelector(".confirm")) return;
        const box = h("div", { class: "confirm", role: "alertdialog" }, h("p", { text: t("ro_abort_q") }),
          h("button", { type: "button", class: "danger", text: Q.t("confirm"), onclick: () => act(ro, "abort") }),
          h("button", { type: "button", text: Q.t("cancel"), onclick: () => box.remove() }));
        wrap.append(box);
      } }));
      return wrap;
    }

    function progress(ro) {
      const pct = ro.boxes ? Math.round(100 * ro.done / ro.boxes) : 0;
      const bar = h("span", { class: "bar" });
      bar.style.width = pct + "%";
      return h("div", { class: "progress" },
        h("span", { class: "track", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(ro.boxes),
          "aria-valuenow": String(ro.done), "aria-label": t("ro_progress") }, bar),
        h("span", { class: "n", text: `${ro.done} / ${ro.boxes} (${t("ro_sent")} ${ro.sent})` }));
    }

    function boxTable(ro) {
      return Q.table([
        { label: Q.t("box"), key: "box_id" },
        { label: Q.t("community"), key: "community_id" },
        { label: t("ro_wave"), cell: (b) => String(b.wave) },
        { label: Q.t("version"), key: "software_version" },
        { label: t("ro_state_col"), cell: (b) => b.done_at ? h("span", { class: "badge online", text: t("ro_done") })
          : b.sent_at ? h("span", { class: "badge warning", text: t("ro_waiting") })
          : h("span", { class: "badge info", text: t("ro_not_yet") }) },
        { label: t("ro_sent"), cell: (b) => Q.when(b.sent_at) },
        { label: Q.t("last_seen"), cell: (b) => Q.ago(b.last_seen_at) },
      ], ro.box_list, t("ro_boxes"));
    }

    async function load() {
      let list;
      try { list = await Q.api("GET", "/rollouts?limit=20"); } catch (e) { problem("rollouts", e); return; }
      if (!list.items.length) { Q.fill("rollouts", h("p", { class: "muted", text: t("ro_none") })); return; }
      const details = {};
      for (const id of open) {
        if (list.items.some((r) => r.id === id)) details[id] = await Q.api("GET", `/rollouts/${id}`).catch(() => null);
      }
      const rows = [];
      for (const ro of list.items) {
        const shown = details[ro.id];
        rows.push(h("tr", { "data-rollout": ro.id, "data-state": ro.state },
          h("td", {}, h("button", { type: "button", class: "link", "aria-expanded": String(open.has(ro.id)),
            text: ro.id, onclick: () => { open.has(ro.id) ? open.delete(ro.id) : open.add(ro.id); load(); } })),
          h("td", {}, h("b", { text: ro.version })),
          h("td", {}, h("span", { class: "badge ro-" + ro.state, text: t("ro_state_" + ro.state) })),
          h("td", { class: "num" }, `${ro.wave} / ${ro.waves.length}`),
          h("td", {}, progress(ro)),
          h("td", {}, ro.created_by, h("br"), h("small", { class: "muted", text: Q.when(ro.created_at) })),
          h("td", { class: "note" }, ro.note),
          h("td", {}, buttons(ro))));
        if (shown) rows.push(h("tr", { class: "detail" }, h("td", { colspan: 8 }, boxTable(shown))));
      }
      Q.fill("rollouts", h("table", { class: "rollouts" },
        h("thead", {}, h("tr", {}, [t("ro_details"), t("ro_version"), t("ro_state_col"), t("ro_wave"), t("ro_progress"),
          t("ro_by"), t("ro_note"), ""].map((x) => h("th", { scope: "col", text: x })))),
        h("tbody", {}, rows)));
    }
    load();
    setInterval(load, 3000);
  }

  /* --- plays and reading statistics ------------------------------------------------------ */

  function stats() {
    const filters = document.getElementById("filters");
    async function load() {
      const f = new FormData(filters);
      const qs = new URLSearchParams({ days: f.get("days") || "30" });
      if (f.get("area")) qs.set("area", f.get("area"));
      let st;
      try { st = await Q.api("GET", "/stats/content?" + qs); } catch (e) {
        for (const id of ["plays-items", "reads-items", "areas"]) problem(id, e);
        return;
      }
      // The window starts at 00:00 UTC of the day N days ago (the boxes count in UTC days).
      document.getElementById("st-since").textContent = fmt(t("st_since"), { since: st.since });
      const played = st.items.filter((i) => i.plays).slice(0, 15);
      Q.fill("plays-items", bars(played.map((i) => ({ label: i.content_id, n: i.plays,
        title: `${i.content_id}: ${i.plays} · ${i.play_s} s` }))));
      const read = st.items.filter((i) => i.reads).sort((a, b) => b.readers - a.readers).slice(0, 15);
      Q.fill("reads-items", bars(read.map((i) => ({ label: i.content_id, n: i.readers,
        title: `${i.content_id}: ${i.readers} · ${i.reads} · ${i.acks}` }))));
      const maxPlays = Math.max(1, ...st.areas.map((a) => a.plays));
      const maxReads = Math.max(1, ...st.areas.map((a) => a.readers));
      const inline = (n, max) => {
        const bar = h("span", { class: "bar" });
        bar.style.width = (100 * n / max).toFixed(1) + "%";
        return h("span", { class: "cellbar" }, h("span", { class: "track" }, bar), h("span", { class: "n", text: String(n) }));
      };
      Q.fill("areas", Q.table([
        { label: Q.t("community"), cell: (a) => h("span", {}, a.name, " ", h("small", { class: "muted", text: a.community_id })) },
        { label: Q.t("plays"), cell: (a) => inline(a.plays, maxPlays) },
        { label: Q.t("play_time"), cell: (a) => Math.round(a.play_s / 60) + " min" },
        { label: t("st_readers"), cell: (a) => inline(a.readers, maxReads) },
        { label: t("st_reads"), cell: (a) => String(a.reads) },
        { label: t("st_acks"), cell: (a) => String(a.acks) },
      ], st.areas, t("st_by_area")));
    }
    filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    load();
  }

  /* --- content library: files by SHA-256, reused in playlists ------------------------------ */

  function library() {
    const picked = new Map();  // sha256 -> library row
    let rows = [], after = "";
    const more = document.getElementById("more");
    const kindOf = (r) => r.mime.startsWith("image/") ? "image" : r.mime.startsWith("video/") ? "video"
      : r.mime.startsWith("text/") ? "notice" : "other";
    const size = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(0) + " KB" : (n / 1048576).toFixed(1) + " MB";

    function showPicked() {
      document.getElementById("picked").textContent = picked.size
        ? fmt(t("lib_selected"), { n: picked.size }) + ": " + [...picked.values()].map((r) => r.title || r.sha256.slice(0, 8)).join("、")
        : t("lib_need_pick");
    }

    function render() {
      Q.fill("library", Q.table([
        { label: t("lib_pick"), cell: (r) => admin ? h("input", { type: "checkbox", "aria-label": t("lib_pick") + " " + (r.title || r.sha256),
          checked: picked.has(r.sha256), onchange: (ev) => { ev.target.checked ? picked.set(r.sha256, r) : picked.delete(r.sha256); showPicked(); } }) : "" },
        { label: t("lib_preview"), cell: (r) => kindOf(r) === "image"
          ? h("img", { class: "thumb", src: `${Q.body.dataset.api}/content/${r.sha256}`, alt: r.title || "", loading: "lazy" })
          : h("span", { class: "thumb kind-" + kindOf(r), text: t("lib_" + kindOf(r) + "_kind") }) },
        { label: Q.t("title"), cell: (r) => h("b", { text: r.title || "—" }) },
        { label: t("lib_kind"), cell: (r) => h("span", {}, t("lib_" + kindOf(r) + "_kind"), h("br"), h("small", { class: "muted", text: r.mime })) },
        { label: t("lib_size"), cell: (r) => size(Number(r.size_bytes)) },
        { label: t("lib_hash"), cell: (r) => h("code", { title: r.sha256, text: r.sha256.slice(0, 16) + "…" }) },
        { label: t("lib_by"), key: "created_by" },
        { label: t("lib_at"), cell: (r) => Q.when(r.created_at) },
      ], rows, t("lib_files")));
      for (const [i, tr] of [...document.querySelectorAll("#library tbody tr")].entries()) tr.dataset.sha = rows[i].sha256;
    }

    async function load(reset) {
      if (reset) { rows = []; after = ""; }
      try {
        const page = await Q.api("GET", "/content?limit=100" + (after ? "&after=" + after : ""));
        rows = rows.concat(page.items);
        rows.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
        after = page.next || "";
        more.hidden = !page.next;
        render();
      } catch (e) { problem("library", e); }
    }
    more.addEventListener("click", () => load(false));

    const up = document.getElementById("upload");
    up.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(up);
      const file = f.get("file");
      const notice = String(f.get("notice") || "").trim();
      if (!(file && file.size) && !notice) { Q.toast(Q.t("need_content"), true); return; }
      // A notice is kept as a UTF-8 text file: hashed and listed like any other content.
      const blob = file && file.size ? file : new Blob([notice], { type: "text/plain; charset=utf-8" });
      try {
        const res = await Q.api("POST", "/content?title=" + encodeURIComponent(String(f.get("title"))), undefined, blob);
        const o = document.getElementById("upload-result");
        o.textContent = fmt(t("lib_uploaded"), { sha: res.sha256.slice(0, 16) + "…" });
        o.dataset.sha = res.sha256;
        up.reset();
        load(true);
      } catch (e) { Q.toast(Q.t("error") + ": " + e.message, true); }
    });

    const reuse = document.getElementById("reuse");
    reuse.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!picked.size) { Q.toast(t("lib_need_pick"), true); return; }
      const f = new FormData(reuse);
      const targets = { areas: ids(f.get("areas")), boxes: ids(f.get("boxes")), screen_tags: ids(f.get("tags")) };
      if (!targets.areas.length && !targets.boxes.length) { Q.toast(Q.t("need_target"), true); return; }
      const duration = Number(f.get("duration") || 10);
      const out = document.getElementById("reuse-result");
      try {
        const items = [];
        for (const r of picked.values()) {
          const base = { id: "c-" + r.sha256.slice(0, 12), title: r.title || r.sha256.slice(0, 8), duration_s: duration };
          if (kindOf(r) === "notice") {
            // The box shows a notice from its text; read it back from the library.
            const resp = await fetch(`${Q.body.dataset.api}/content/${r.sha256}`, { credentials: "same-origin" });
            if (!resp.ok) throw new Error(resp.status + " " + r.sha256.slice(0, 8));
            items.push({ ...base, kind: "html", body: await resp.text() });
          } else {
            items.push({ ...base, kind: kindOf(r) === "video" ? "video" : "image", sha256: r.sha256,
              size_bytes: Number(r.size_bytes), mime: r.mime, url: new URL(`/api/v1/blobs/${r.sha256}`, location.origin).href });
          }
        }
        for (const item of items) await Q.api("POST", "/publish", { action: "content", targets, args: item });
        const pl = { id: rid("pl"), name: String(f.get("title")), items: items.map((i) => ({ content_id: i.id })) };
        await Q.api("POST", "/publish", { action: "playlist", targets, args: pl });
        const sch = { id: rid("sch"), playlist_id: pl.id, weekdays: [1, 2, 3, 4, 5, 6, 7],
          start: f.get("start") + ":00", end: f.get("end") + ":00", priority: Number(f.get("priority") || 0) };
        const res = await Q.api("POST", "/publish", { action: "schedule", targets, args: sch });
        out.textContent = fmt(Q.t("published"), { n: res.boxes }) + " · " + pl.id + " · " + sch.id;
        out.dataset.playlist = pl.id;
        Q.toast(out.textContent);
      } catch (e) { out.textContent = ""; Q.toast(Q.t("error") + ": " + e.message, true); }
    });
    showPicked();
    load(true);
  }

  /* --- the tickets board (console.js ticketBoard): the cloud's side ---------------------- */

  /* Cloud-shaped rows (record envelopes) from /tickets/board; an update goes down the feed,
     and the card says "sent to the box" until the box reports a new state back. */
  function cloudTickets() {
    const pending = {};  // ticket id -> the status it had when an update was sent
    return {
      async load(f) {
        const qs = new URLSearchParams();
        if (f.get("area")) qs.set("area", f.get("area"));
        const out = await Q.api("GET", "/tickets/board?" + qs);
        return Object.entries(out.columns).map(([col, items]) => [col, items.map((r) => {
          const p = r.payload;
          if (r.record_id in pending && pending[r.record_id] !== p.status) delete pending[r.record_id];
          return { id: r.record_id, title: p.title, status: p.status, state: col, urgency: p.urgency,
            overdue: r.overdue, community: r.community_id, building: p.building, assignee: p.assignee,
            due_at: p.due_at, pending: r.record_id in pending };
        })]);
      },
      async send(x, action, f) {
        const body = { action, note: f.get("note") || "" };
        if (f.get("assignee")) body.assignee = f.get("assignee");
        await Q.api("POST", `/tickets/${encodeURIComponent(x.id)}/update`, body);
        pending[x.id] = x.status;
        return Q.t("update_sent");
      },
      more: { label: Q.t("history"), async render(x) {
        const out = await Q.api("GET", `/tickets/${encodeURIComponent(x.id)}/history`);
        return [h("ol", { class: "history" }, out.items.map((r) => h("li", {},
          Q.when(r.payload.updated_at || r.ts) + " · " + label("col", r.payload.status) +
          (r.payload.assignee ? " · " + r.payload.assignee : ""))))];
      } },
      photos: false,
      submit: () => Q.t("save"),
      emptyColumn: false,
    };
  }

  /* --- alerts (console.js alertItem): the cloud's side ------------------------------------ */

  /* An alert of the ops API (a box's record envelope with its ack) in the shared shape; ack,
     assign and close apply on the cloud at once. */
  function cloudAlert(a) {
    const p = a.payload, ack = a.ack;
    return { key: a.box_id + "/" + a.seq, level: p.level, type: p.type, ts: a.ts,
      where: a.community_id + " · " + a.box_id, state: ack ? ack.state : "unhandled",
      assignee: ack && ack.assignee, note: ack && ack.note, message: p.message, evidence: p.evidence, raw: a };
  }
  const cloudAlerts = {
    map: cloudAlert,
    async ack(x, state, assignee, note) {
      const a = x.raw;
      a.ack = await Q.api("POST", `/alerts/${encodeURIComponent(a.box_id)}/${a.seq}/ack`, { state, assignee, note });
      return cloudAlert(a);
    },
  };

  /* --- reports (console.js reportsTable): the cloud's side -------------------------------- */

  /* A report of the ops API (a box's record envelope); a correction goes down the feed to the
     box that owns the report. */
  const cloudReports = {
    columns: ["time", "community", "category", "urgency", "sentiment", "text", "status"],
    idColumn: true,
    map: (r) => { const p = r.payload; return { id: r.record_id, ts: p.ts || r.ts, community: r.community_id,
      category: p.category, urgency: p.urgency, sentiment: p.sentiment, text: p.text, photos: p.photos, status: p.status }; },
    correct: (x, body) => Q.api("POST", `/reports/${encodeURIComponent(x.id)}/correction`, body),
  };

  const page = Q.body.dataset.page;
  if (page === "fleet") rollouts();
  else if (page === "tickets") ticketBoard(cloudTickets());
  else if (page === "alerts") alertsPage(cloudAlerts);
  else if (page === "reports") reportsPage(cloudReports);
  else if (page === "stats") stats();
  else if (page === "library") library();
})();
