// live.js — the landing page: the live event feed (with filters), door tiles, the site mode
// and a chart of granted vs denied accesses per minute over the last hour.
//
// The feed is seeded from audit.get (viewers and above), then follows events.subscribe with
// "since" = the newest seq shown, so nothing is missed or shown twice (events are also
// de-duplicated by seq). After a reconnection it resumes with {since, epoch}; a {"resync": true}
// reply reloads everything.

import { h, clear, toast, confirmDialog, RANK } from "../ui.js";

/** TOPICS are the event topics the live view follows: access decisions, door runtime events
 *  (door.<id>.<what>, not door.created and the other changes) and the site mode. */
export const TOPICS = ["access.*", "door.*.*", "site.*"];

/** live tells whether a topic is one the live view shows (the same set as TOPICS). */
export function liveTopic(topic) {
  return /^access\.[^.]+$|^door\.[^.]+\.[^.]+$|^site\.[^.]+$/.test(topic || "");
}

const FEED_KEEP = 500;   // events kept in memory
const FEED_SHOW = 200;   // events shown at once
const SEED = 50;         // events loaded from the audit trail when the page opens
const HOUR = 3600 * 1000;

/** REASONS explains access decision reasons in words. */
export const REASONS = {
  granted: "granted",
  door_unlocked: "door unlocked",
  evacuation: "evacuation: doors released",
  lockdown: "site in lockdown",
  door_locked: "door locked",
  unknown_door: "unknown door",
  unknown_reader: "unknown reader",
  bad_read: "bad read",
  unknown_credential: "unknown credential",
  pin_required: "PIN required",
  wrong_pin: "wrong PIN",
  credential_invalid: "credential not valid",
  user_invalid: "person not valid",
  no_schedule: "no schedule allows this door",
  outside_schedule: "outside schedule",
};

const KINDS = [
  ["", "All events"],
  ["granted", "Granted"],
  ["denied", "Denied"],
  ["alarm", "Alarms (forced, held open)"],
  ["door", "Door opened/closed"],
  ["mode", "Mode changes"],
];

/** describe turns an event into what the feed shows. */
export function describe(ev) {
  const d = ev.data || {};
  const t = ev.topic || "";
  const out = { kind: "other", icon: "•", label: t, cls: "", who: "", door: d.door || (d.door_id ? `door ${d.door_id}` : ""), doorId: d.door_id || 0, why: "" };
  if (t === "access.granted" || t === "access.denied") {
    const granted = t === "access.granted";
    out.kind = granted ? "granted" : "denied";
    out.icon = granted ? "✔" : "✖";
    out.label = granted ? "Granted" : "Denied";
    out.badge = granted ? "badge-ok" : "badge-bad";
    out.who = d.username || (d.card_id ? `card ${d.card_id}` : d.pin ? "PIN only" : "unidentified credential");
    if (!granted || (d.reason && d.reason !== "granted")) out.why = REASONS[d.reason] || d.reason || "";
    return out;
  }
  const m = /^door\.(\d+)\.(\w+)$/.exec(t);
  if (m) {
    out.doorId = Number(m[1]);
    switch (m[2]) {
      case "forced":
        Object.assign(out, { kind: "alarm", icon: "⚠", label: "Door forced", cls: "alarm", badge: "badge-bad" });
        break;
      case "held_open":
        Object.assign(out, { kind: "alarm", icon: "⏱", label: "Held open", cls: "alarm", badge: "badge-bad",
          why: d.open_ms ? `open for ${Math.round(d.open_ms / 1000)} s` : "" });
        break;
      case "opened":
        Object.assign(out, { kind: "door", icon: "↗", label: "Opened", badge: "badge-info",
          why: d.forced ? "forced" : d.manual ? "opened by an operator" : d.exit ? "exit button" : d.granted ? "after a grant" : "" });
        if (d.forced) Object.assign(out, { cls: "alarm", icon: "⚠", badge: "badge-bad" });
        break;
      case "closed":
        Object.assign(out, { kind: "door", icon: "↘", label: "Closed", badge: "badge-info",
          why: d.duration_ms ? `after ${Math.round(d.duration_ms / 100) / 10} s` : "" });
        break;
      case "mode":
        Object.assign(out, { kind: "mode", icon: "⚙", label: "Door mode", badge: "badge-info",
          why: `${d.mode || ""}${d.effective && d.effective !== d.mode ? ` (effective ${d.effective})` : ""}${d.by ? ` by ${d.by}` : ""}` });
        break;
      default:
        out.label = m[2];
    }
    return out;
  }
  if (t === "site.mode") {
    const alarm = d.mode && d.mode !== "normal";
    Object.assign(out, { kind: "mode", icon: alarm ? "⚠" : "⚙", label: `Site ${d.mode || "mode"}`, cls: alarm ? "alarm" : "",
      badge: alarm ? "badge-warn" : "badge-info", door: "whole site", why: d.previous ? `was ${d.previous}` : "" });
  }
  return out;
}

function timeOf(ev) {
  const d = new Date(ev.time);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}

/** doorStatus returns the tile status of a door.state state: forced, held_open, open or closed. */
export function doorStatus(s) {
  if (s.forced) return "forced";
  if (s.held_open) return "held_open";
  if (s.open) return "open";
  return "closed";
}

const STATUS_TEXT = {
  forced: ["⚠", "FORCED OPEN"],
  held_open: ["⏱", "HELD OPEN"],
  open: ["▯", "Open"],
  closed: ["▮", "Closed"],
};

export default {
  id: "live",
  title: "Live",
  minRank: RANK.user,
  nav: true,
  render(root, ctx) {
    const { api, me } = ctx;
    const viewer = me.rank >= RANK.viewer;
    const manager = me.rank >= RANK.manager;
    const timers = new Set();
    const offs = [];
    let alive = true;

    let items = []; // newest first
    const seen = new Set();
    let lastSeq = null;
    let epoch = "";
    const doors = new Map(); // id → {id, name, state}
    let siteMode = "";
    const accesses = new Map(); // seq → {t, granted} for the chart

    // ---- layout ----
    const filterDoor = h("select", { id: "f-door", name: "door", "data-testid": "filter-door" }, h("option", { value: "" }, "All doors"));
    const filterPerson = h("input", { id: "f-person", name: "person", type: "search", placeholder: "name or card", "data-testid": "filter-person" });
    const filterKind = h("select", { id: "f-kind", name: "kind", "data-testid": "filter-kind" }, KINDS.map(([v, l]) => h("option", { value: v }, l)));
    const note = h("div", { class: "feed-note", role: "status", "data-testid": "feed-notice", hidden: true });
    const feed = h("ol", { class: "feed", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Events, newest first", "data-testid": "feed" });
    const count = h("span", { class: "hint", "data-testid": "feed-count" });
    const feedPanel = h("section", { class: "panel", "aria-labelledby": "feed-h" },
      h("h2", { id: "feed-h" }, "Events ", count),
      h("div", { class: "filters", role: "search" },
        h("div", { class: "field" }, h("label", { for: "f-door" }, "Door"), filterDoor),
        h("div", { class: "field" }, h("label", { for: "f-person" }, "Person"), filterPerson),
        h("div", { class: "field" }, h("label", { for: "f-kind" }, "Kind"), filterKind)),
      note, feed);

    const siteCurrent = h("span", { class: "current", "data-testid": "site-mode" });
    const sitePanel = h("section", { class: "panel", "aria-labelledby": "site-h", hidden: !viewer },
      h("h2", { id: "site-h" }, "Site"),
      h("div", { class: "site-mode" }, siteCurrent,
        manager ? [
          h("button", { type: "button", class: "btn", "data-testid": "site-normal", onclick: () => setSite("normal") }, "Normal"),
          h("button", { type: "button", class: "btn btn-danger", "data-testid": "site-lockdown", onclick: () => setSite("lockdown") }, "⚠ Lockdown"),
          h("button", { type: "button", class: "btn btn-danger", "data-testid": "site-evacuation", onclick: () => setSite("evacuation") }, "⚠ Evacuation"),
        ] : null));
    const tiles = h("div", { class: "tiles", "data-testid": "door-tiles" });
    const doorPanel = h("section", { class: "panel", "aria-labelledby": "doors-h", hidden: !viewer }, h("h2", { id: "doors-h" }, "Doors"), tiles);
    const chart = h("div", { class: "chart", "data-testid": "chart" });
    const chartPanel = h("section", { class: "panel", "aria-labelledby": "chart-h" },
      h("h2", { id: "chart-h" }, "Accesses per minute, last hour"),
      h("div", { class: "legend", "aria-hidden": "true" },
        h("span", {}, h("span", { class: "swatch granted" }), " granted"),
        h("span", {}, h("span", { class: "swatch denied" }), " denied")),
      chart);
    root.append(h("h1", { class: "sr-only" }, "Live view"),
      h("div", { class: "live", "data-testid": "live" }, feedPanel, h("div", { class: "live-side" }, sitePanel, doorPanel, chartPanel)));

    for (const el of [filterDoor, filterKind]) el.addEventListener("change", renderFeed);
    filterPerson.addEventListener("input", renderFeed);

    // ---- feed ----
    function matches(it) {
      const fd = filterDoor.value, fk = filterKind.value, fp = filterPerson.value.trim().toLowerCase();
      if (fd && String(it.d.doorId) !== fd) return false;
      if (fk && it.d.kind !== fk) return false;
      if (fp && !(it.d.who || "").toLowerCase().includes(fp)) return false;
      return true;
    }

    function itemNode(it) {
      const d = it.d;
      return h("li", { class: `feed-item ${d.cls}`, "data-testid": "feed-item", "data-seq": it.ev.seq, "data-topic": it.ev.topic, "data-kind": d.kind },
        h("time", { datetime: it.ev.time }, timeOf(it.ev)),
        h("span", { class: `what badge ${d.badge || "badge-info"}` }, h("span", { "aria-hidden": "true" }, d.icon), ` ${d.label}`),
        h("span", { class: "detail" },
          d.who ? h("strong", {}, d.who) : null, d.who && d.door ? " at " : "", d.door || "",
          d.why ? h("span", { class: "why" }, ` — ${d.why}`) : null));
    }

    function renderFeed() {
      clear(feed);
      const shown = items.filter(matches).slice(0, FEED_SHOW);
      for (const it of shown) feed.append(itemNode(it));
      if (shown.length === 0) feed.append(h("li", { class: "feed-item empty", "data-testid": "feed-empty" }, "No events yet."));
      count.textContent = `(${shown.length} shown)`;
    }

    function noteDoor(id, name) {
      if (!id || [...filterDoor.options].some((o) => o.value === String(id))) return;
      const opts = [...filterDoor.options].slice(1).map((o) => [o.value, o.textContent]);
      opts.push([String(id), name || `door ${id}`]);
      opts.sort((a, b) => a[1].localeCompare(b[1]));
      const v = filterDoor.value;
      clear(filterDoor).append(h("option", { value: "" }, "All doors"), ...opts.map(([val, l]) => h("option", { value: val }, l)));
      filterDoor.value = v;
    }

    // add inserts an event (deduplicated by seq); live=true when it may be prepended at once.
    function add(ev, live) {
      if (typeof ev.seq !== "number" || seen.has(ev.seq)) return false;
      seen.add(ev.seq);
      if (ev.epoch) epoch = ev.epoch;
      if (lastSeq === null || ev.seq > lastSeq) lastSeq = ev.seq;
      const it = { ev, d: describe(ev) };
      noteDoor(it.d.doorId, ev.data?.door);
      let i = 0;
      while (i < items.length && items[i].ev.seq > ev.seq) i++;
      items.splice(i, 0, it);
      if (items.length > FEED_KEEP) {
        for (const old of items.splice(FEED_KEEP)) seen.delete(old.ev.seq);
      }
      if (ev.topic === "access.granted" || ev.topic === "access.denied") {
        const t = Date.parse(ev.time);
        if (!isNaN(t) && Date.now() - t < HOUR) accesses.set(ev.seq, { t, granted: ev.topic === "access.granted" });
        scheduleChart();
      }
      if (live) {
        if (i === 0 && matches(it)) {
          feed.querySelector("[data-testid=feed-empty]")?.remove();
          feed.prepend(itemNode(it));
          while (feed.children.length > FEED_SHOW) feed.lastChild.remove();
          count.textContent = `(${feed.children.length} shown)`;
        } else if (i !== 0) {
          renderFeed();
        }
      }
      return true;
    }

    function onEvent(ev) {
      if (!alive || !ev || !liveTopic(ev.topic)) return;
      add(ev, true);
      applyToDoors(ev);
    }

    function showNote(text) {
      note.textContent = text;
      note.hidden = false;
      later(() => { note.hidden = true; }, 8000);
    }

    function later(fn, ms) {
      const t = setTimeout(() => { timers.delete(t); if (alive) fn(); }, ms);
      timers.add(t);
      return t;
    }

    // ---- loading and subscribing ----
    async function seedFeed() {
      if (!viewer) return;
      const r = await api.call("audit.get", { p: 1, ps: SEED, enabled_type: ["audit-auth-event", "audit-door-event"] });
      for (const e of r.data || []) {
        const ev = toEvent(e);
        if (liveTopic(ev.topic)) add(ev, false);
      }
    }

    async function seedChart() {
      if (!viewer) return;
      const since = new Date(Date.now() - HOUR).toISOString();
      for (let p = 1; p <= 20 && alive; p++) {
        const r = await api.call("audit.get", { p, ps: 500, enabled_type: ["audit-auth-event"], since });
        for (const e of r.data || []) {
          const ev = toEvent(e);
          const t = Date.parse(ev.time);
          if (!isNaN(t)) accesses.set(ev.seq, { t, granted: ev.topic === "access.granted" });
        }
        if (p >= (r.meta?.total_page || 0)) break;
      }
      drawChart();
    }

    async function subscribe(resuming) {
      const content = { topics: TOPICS };
      if (lastSeq !== null) {
        content.since = lastSeq;
        if (epoch) content.epoch = epoch;
      }
      const r = await api.call("events.subscribe", content);
      if (r?.epoch) epoch = r.epoch;
      if (r?.resync) {
        if (resuming || lastSeq !== null) {
          await reload("The server's event history changed (resync): the feed was reloaded.");
        }
        return;
      }
      if (lastSeq === null && typeof r?.seq === "number") lastSeq = r.seq;
      if (resuming) showNote(`Reconnected: the feed resumed after event #${content.since ?? lastSeq}.`);
    }

    async function reload(message) {
      items = [];
      seen.clear();
      accesses.clear();
      renderFeed();
      await Promise.all([seedFeed(), loadDoors(), seedChart()]);
      renderFeed();
      showNote(message);
    }

    async function start() {
      try {
        await Promise.all([seedFeed(), loadDoors()]);
        renderFeed();
        await subscribe(false);
        await seedChart();
      } catch (e) {
        if (alive) toast(`Live view: ${e.message}`, "error");
      }
    }

    offs.push(api.on("event", onEvent));
    offs.push(api.on("reconnected", async () => {
      if (!alive) return;
      try {
        await subscribe(true);
        await loadDoors();
      } catch (e) {
        toast(`Live view: ${e.message}`, "error");
      }
    }));

    // ---- doors ----
    async function loadDoors() {
      if (!viewer) return;
      const r = await api.call("door.state", { door_id: 0 });
      siteMode = r.site_mode || "";
      const ids = new Set();
      for (const d of r.doors || []) {
        ids.add(d.door_id);
        setDoor(d.door_id, d.door, d.state);
      }
      for (const id of [...doors.keys()]) if (!ids.has(id)) { doors.get(id).node.remove(); doors.delete(id); }
      renderSite();
    }

    const refreshTimers = new Map();
    function refreshDoor(id, delay = 250) {
      if (!viewer || !doors.has(id)) return;
      clearTimeout(refreshTimers.get(id));
      refreshTimers.set(id, later(async () => {
        try {
          const r = await api.call("door.state", { door_id: id });
          siteMode = r.site_mode || siteMode;
          for (const d of r.doors || []) setDoor(d.door_id, d.door, d.state);
          renderSite();
        } catch { /* the next event or reconnection refreshes it */ }
      }, delay));
    }

    function setDoor(id, name, state) {
      let d = doors.get(id);
      if (!d) {
        d = { id, name, state, node: h("article", { class: "tile", "data-testid": "door-tile", "data-door-id": id }) };
        doors.set(id, d);
        const after = [...doors.values()].filter((x) => x.node.isConnected).sort((a, b) => a.id - b.id).find((x) => x.id > id);
        tiles.insertBefore(d.node, after ? after.node : null);
        noteDoor(id, name);
      }
      d.name = name || d.name;
      d.state = state;
      renderTile(d);
      if (state.release_until) {
        const ms = Date.parse(state.release_until) - Date.now();
        if (ms > 0 && ms < 10 * 60 * 1000) refreshDoor(id, ms + 200);
      }
    }

    function renderTile(d) {
      const s = d.state;
      const st = doorStatus(s);
      const [icon, text] = STATUS_TEXT[st];
      const n = d.node;
      n.dataset.status = st;
      n.dataset.locked = String(!!s.locked);
      n.dataset.mode = s.mode || "";
      clear(n);
      const headId = `door-${d.id}-name`;
      n.setAttribute("aria-labelledby", headId);
      n.append(
        h("h3", { id: headId }, d.name || `Door ${d.id}`),
        h("div", { class: "tile-status", "data-testid": "door-status" }, h("span", { "aria-hidden": "true" }, icon), ` ${text}`),
        h("div", { class: "tile-meta" },
          h("span", { "data-testid": "door-lock" }, s.locked ? "Locked" : "Released"), " · ",
          h("span", { "data-testid": "door-mode" }, `mode ${s.mode || "?"}`),
          s.effective && s.effective !== s.mode ? ` (now ${s.effective})` : ""));
      if (manager) {
        const sel = h("select", { id: `mode-${d.id}`, "data-testid": "door-mode-select", "aria-label": `Mode of ${d.name}` },
          ["normal", "unlocked", "locked"].map((m) => h("option", { value: m, selected: m === s.mode }, m)));
        n.append(h("div", { class: "tile-actions" },
          h("button", { type: "button", class: "btn btn-small btn-primary", "data-testid": "door-open", "aria-label": `Open ${d.name}`,
            onclick: (e) => doorOpen(d, e.currentTarget) }, "Open"),
          h("label", { for: `mode-${d.id}`, class: "sr-only" }, `Mode of ${d.name}`),
          sel,
          h("button", { type: "button", class: "btn btn-small", "data-testid": "door-mode-set", onclick: (e) => doorMode(d, sel.value, e.currentTarget) }, "Set mode")));
      }
    }

    async function doorOpen(d, btn) {
      btn.disabled = true;
      try {
        await api.call("door.open", { door_id: d.id });
        toast(`${d.name}: opened.`);
        refreshDoor(d.id, 0);
      } catch (e) {
        toast(`${d.name}: ${e.message}`, "error");
      } finally {
        btn.disabled = false;
      }
    }

    async function doorMode(d, mode, btn) {
      if (mode !== "normal" && !(await confirmDialog(`Set ${d.name} to ${mode}?`, { confirm: `Set ${mode}`, danger: true }))) return;
      btn.disabled = true;
      try {
        await api.call("door.set_mode", { door_id: d.id, mode });
        toast(`${d.name}: mode ${mode}.`);
        refreshDoor(d.id, 0);
      } catch (e) {
        toast(`${d.name}: ${e.message}`, "error");
      } finally {
        btn.disabled = false;
      }
    }

    function applyToDoors(ev) {
      const d = describe(ev);
      if (ev.topic === "site.mode") {
        siteMode = ev.data?.mode || siteMode;
        renderSite();
        for (const id of doors.keys()) refreshDoor(id, 300);
        return;
      }
      const door = doors.get(d.doorId);
      if (!door) return;
      const m = /^door\.\d+\.(\w+)$/.exec(ev.topic);
      if (m) {
        const s = { ...door.state };
        if (m[1] === "opened") { s.open = true; if (ev.data?.forced) s.forced = true; }
        if (m[1] === "closed") { s.open = false; s.forced = false; s.held_open = false; }
        if (m[1] === "forced") s.forced = true;
        if (m[1] === "held_open") s.held_open = true;
        if (m[1] === "mode") { s.mode = ev.data?.mode || s.mode; s.effective = ev.data?.effective || s.effective; }
        door.state = s;
        renderTile(door);
      }
      refreshDoor(d.doorId);
    }

    function renderSite() {
      const alarm = siteMode && siteMode !== "normal";
      clear(siteCurrent).append(
        h("span", { class: `badge ${alarm ? "badge-bad" : "badge-ok"}` }, h("span", { "aria-hidden": "true" }, alarm ? "⚠" : "✔"), ` Site mode: ${siteMode || "unknown"}`));
      siteCurrent.dataset.mode = siteMode;
    }

    async function setSite(mode) {
      const what = { normal: "Return the whole site to normal operation?", lockdown: "Lock the whole site down? Every access will be refused (exit buttons still work).",
        evacuation: "Start an evacuation? Every door will be released." }[mode];
      if (!(await confirmDialog(what, { confirm: mode === "normal" ? "Back to normal" : `Start ${mode}`, danger: mode !== "normal" }))) return;
      try {
        await api.call("site.set_mode", { mode });
        siteMode = mode;
        renderSite();
        toast(`Site mode: ${mode}.`);
      } catch (e) {
        toast(`Site mode: ${e.message}`, "error");
      }
    }

    // ---- chart ----
    let chartPending = false;
    function scheduleChart() {
      if (chartPending) return;
      chartPending = true;
      later(() => { chartPending = false; drawChart(); }, 1000);
    }

    function drawChart() {
      const now = Date.now();
      const end = Math.floor(now / 60000) + 1; // exclusive, in minutes
      const bins = Array.from({ length: 60 }, () => [0, 0]);
      let g = 0, dn = 0;
      for (const [seq, a] of accesses) {
        if (now - a.t >= HOUR) { accesses.delete(seq); continue; }
        const i = 59 - (end - 1 - Math.floor(a.t / 60000));
        if (i < 0 || i > 59) continue;
        bins[i][a.granted ? 0 : 1]++;
        a.granted ? g++ : dn++;
      }
      const max = Math.max(1, ...bins.map(([a, b]) => Math.max(a, b)));
      const W = 600, H = 160, L = 28, B = 18, T = 6, bw = (W - L) / 60;
      const y = (v) => T + (H - T - B) * (1 - v / max);
      const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Last hour: ${g} granted, ${dn} denied.`, "data-testid": "chart-svg" },
        h("svg:title", {}, `Accesses per minute over the last hour: ${g} granted, ${dn} denied`),
        h("svg:line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }),
        h("svg:line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
        h("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, String(max)),
        h("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"),
        h("svg:text", { x: L, y: H - 4 }, "−60 min"),
        h("svg:text", { x: L + (W - L) / 2, y: H - 4, "text-anchor": "middle" }, "−30 min"),
        h("svg:text", { x: W, y: H - 4, "text-anchor": "end" }, "now"),
        bins.map(([a, b], i) => [
          a ? h("svg:rect", { class: "granted", x: L + i * bw + 1, y: y(a), width: bw / 2 - 1, height: H - B - y(a) }, h("svg:title", {}, `${a} granted`)) : null,
          b ? h("svg:rect", { class: "denied", x: L + i * bw + bw / 2, y: y(b), width: bw / 2 - 1, height: H - B - y(b) }, h("svg:title", {}, `${b} denied`)) : null,
        ]));
      clear(chart).append(svg, h("p", { class: "hint", "data-testid": "chart-summary" }, `Last hour: ${g} granted, ${dn} denied.`));
      chart.dataset.granted = String(g);
      chart.dataset.denied = String(dn);
    }

    const tick = setInterval(() => { if (alive) drawChart(); }, 30000);
    drawChart();
    renderFeed();
    start();

    return () => {
      alive = false;
      clearInterval(tick);
      for (const t of timers) clearTimeout(t);
      for (const off of offs) off();
      api.call("events.unsubscribe", { topics: TOPICS }).catch(() => {});
    };
  },
};

/** toEvent turns an audit.get entry into the shape of a pushed event. */
export function toEvent(e) {
  const a = e.attributes || {};
  return { seq: e.id, time: a.time, topic: a.topic, data: a.data || {} };
}
