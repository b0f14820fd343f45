// audit.js — the audit trail (audit.get): paged, filtered by kind, person, door and time
// range, exported as CSV (every page of the current filter, fetched here, quoted per RFC 4180).

import { h, clear, toast, showErrors, dataTable, formatTime, RANK } from "../ui.js";

const PAGE_SIZES = [20, 50, 100];
const EXPORT_PAGE = 500;
const EXPORT_MAX_PAGES = 400; // 200,000 rows

/** KINDS are the kind filters: each adds its keys to the audit.get request. */
export const KINDS = [
  { id: "", label: "Everything", q: {} },
  { id: "granted", label: "Access granted", q: { mask: 2 ** 30 } },
  { id: "denied", label: "Access denied", q: { mask: 2 ** 31 } },
  { id: "alarms", label: "Door alarms (forced, held open)", q: { mask: 2 ** 34 + 2 ** 35 } },
  { id: "door", label: "Door events and changes", q: { enabled_type: ["audit-door-event"] } },
  { id: "login", label: "Logins", q: { enabled_type: ["audit-login-event"] } },
  { id: "user", label: "People (user changes)", q: { enabled_type: ["audit-user-event"] } },
  { id: "group", label: "Groups and memberships", q: { enabled_type: ["audit-group-event", "audit-user-group-membership-event"] } },
  { id: "credential", label: "Credentials", q: { enabled_type: ["audit-credential-event"] } },
  { id: "schedule", label: "Schedules", q: { enabled_type: ["audit-schedule-event"] } },
  { id: "zone", label: "Zones", q: { enabled_type: ["audit-zone-event"] } },
  { id: "access-point", label: "Access points", q: { enabled_type: ["audit-access-point-event"] } },
];

const KIND_LABELS = {
  "audit-auth-event": "access", "audit-door-event": "door", "audit-login-event": "login", "audit-user-event": "user",
  "audit-group-event": "group", "audit-user-group-membership-event": "membership", "audit-credential-event": "credential",
  "audit-schedule-event": "schedule", "audit-zone-event": "zone", "audit-access-point-event": "access point",
  "audit-update-event": "update", "audit-wsapicall-event": "API call",
};

// The filter survives leaving and coming back to the page (not a reload).
const saved = { kind: "", person: "", door: "", since: "", until: "", ps: 20, p: 1 };

/** csvCell quotes one CSV field (RFC 4180); text that a spreadsheet would run as a formula
 *  (starting with = + - @ or a tab/CR) is prefixed with a single quote. */
export function csvCell(v) {
  if (v === null || v === undefined) return "";
  let s = typeof v === "object" ? JSON.stringify(v) : String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV_COLUMNS are the columns of the export. */
export const CSV_COLUMNS = ["seq", "time", "kind", "topic", "description", "author_id", "user_id", "door_id", "data"];

function relID(e, ...names) {
  for (const n of names) {
    const id = e.relationships?.[n]?.data?.id;
    if (id !== undefined && id !== null) return id;
  }
  return "";
}

/** csvRow turns an audit.get entry into the export's columns. */
export function csvRow(e) {
  const a = e.attributes || {};
  const doorID = relID(e, "door") || (e.type === "audit-door-event" ? relID(e, "target") : "") || a.data?.door_id || "";
  return [e.id, a.time, e.type, a.topic, a.description, relID(e, "author"), relID(e, "user", "target-user"), doorID, a.data ?? ""];
}

export default {
  id: "audit",
  title: "Audit",
  minRank: RANK.viewer,
  nav: true,
  render(root, ctx) {
    const { api } = ctx;
    let alive = true;
    let query = null; // the applied filter (audit.get keys)

    const kind = h("select", { id: "a-kind", name: "kind", "data-testid": "audit-kind" }, KINDS.map((k) => h("option", { value: k.id }, k.label)));
    const person = h("input", { id: "a-person", name: "person", list: "a-people", autocomplete: "off", placeholder: "username", "data-testid": "audit-person" });
    const people = h("datalist", { id: "a-people" });
    const door = h("select", { id: "a-door", name: "door", "data-testid": "audit-door" }, h("option", { value: "" }, "All doors"));
    const since = h("input", { id: "a-since", name: "since", type: "datetime-local", step: 1, "data-testid": "audit-since" });
    const until = h("input", { id: "a-until", name: "until", type: "datetime-local", step: 1, "data-testid": "audit-until" });
    const ps = h("select", { id: "a-ps", name: "ps", "data-testid": "audit-page-size" }, PAGE_SIZES.map((n) => h("option", { value: n }, String(n))));
    kind.value = saved.kind; person.value = saved.person; since.value = saved.since; until.value = saved.until; ps.value = String(saved.ps);

    const apply = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "audit-apply" }, "Apply");
    const reset = h("button", { type: "button", class: "btn", "data-testid": "audit-reset" }, "Reset");
    const exportBtn = h("button", { type: "button", class: "btn", "data-testid": "audit-export" }, "Export CSV");
    const status = h("p", { class: "hint", role: "status", "aria-live": "polite", "data-testid": "audit-status" });
    const form = h("form", { class: "panel", "aria-label": "Audit filter", "data-testid": "audit-filter" },
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "a-kind" }, "Kind"), kind),
        h("div", { class: "field" }, h("label", { for: "a-person" }, "Person"), person, people),
        h("div", { class: "field" }, h("label", { for: "a-door" }, "Door"), door),
        h("div", { class: "field" }, h("label", { for: "a-since" }, "From"), since),
        h("div", { class: "field" }, h("label", { for: "a-until" }, "Until (excluded)"), until),
        h("div", { class: "field" }, h("label", { for: "a-ps" }, "Per page"), ps)),
      h("div", { class: "actions" }, apply, reset, exportBtn));
    const results = h("div", { "data-testid": "audit-results" });
    const prev = h("button", { type: "button", class: "btn btn-small", "data-testid": "audit-prev" }, "← Newer");
    const next = h("button", { type: "button", class: "btn btn-small", "data-testid": "audit-next" }, "Older →");
    const pageInfo = h("span", { "data-testid": "audit-page" });
    root.append(h("h1", {}, "Audit trail"), form, status, h("nav", { class: "pager", "aria-label": "Pages" }, prev, pageInfo, next), results);

    async function loadDoors() {
      try {
        const r = await api.call("door.read", { door_id: 0 });
        const list = (r.data || []).map((d) => [d.id, d.attributes?.alias || `door ${d.id}`]).sort((a, b) => a[1].localeCompare(b[1]));
        for (const [id, name] of list) door.append(h("option", { value: id }, name));
        door.value = saved.door;
      } catch (e) {
        toast(`Doors: ${e.message}`, "error");
      }
    }

    let searchTimer = null;
    person.addEventListener("input", () => {
      clearTimeout(searchTimer);
      const q = person.value.trim();
      if (q.length < 2) return;
      searchTimer = setTimeout(async () => {
        try {
          const r = await api.call("search.user_username", { partial_name: q });
          clear(people).append(...(Array.isArray(r) ? r : r?.data || []).map((u) => h("option", { value: u.username ?? u.attributes?.username ?? u.text ?? "" })));
        } catch { /* suggestions only */ }
      }, 250);
    });

    async function resolvePerson(name) {
      const r = await api.call("search.user_username", { partial_name: name });
      const list = Array.isArray(r) ? r : r?.data || [];
      const u = list.find((x) => String(x.username ?? x.attributes?.username ?? x.text ?? "").toLowerCase() === name.toLowerCase());
      return u ? Number(u.id) : null;
    }

    // buildQuery validates the form and returns the audit.get filter keys (without p/ps).
    async function buildQuery() {
      const q = { ...(KINDS.find((k) => k.id === kind.value)?.q || {}) };
      const name = person.value.trim();
      if (name) {
        const id = await resolvePerson(name);
        if (!id) throw Object.assign(new Error(`No person named “${name}”.`), { errors: [{ detail: `No person named “${name}”.`, source: { pointer: "data/attributes/person" } }] });
        q.user_id = id;
      }
      if (door.value) q.door_id = Number(door.value);
      for (const [el, key] of [[since, "since"], [until, "until"]]) {
        if (!el.value) continue;
        const d = new Date(el.value);
        if (isNaN(d)) throw Object.assign(new Error("Invalid date."), { errors: [{ detail: "Invalid date.", source: { pointer: `data/attributes/${key}` } }] });
        q[key] = d.toISOString();
      }
      if (q.since && q.until && q.since >= q.until) {
        throw Object.assign(new Error("“Until” must be after “From”."), { errors: [{ detail: "“Until” must be after “From”.", source: { pointer: "data/attributes/until" } }] });
      }
      return q;
    }

    function save() {
      Object.assign(saved, { kind: kind.value, person: person.value, door: door.value, since: since.value, until: until.value, ps: Number(ps.value) });
    }

    async function load(p) {
      if (!query) return;
      saved.p = p;
      status.textContent = "Loading…";
      prev.disabled = next.disabled = true;
      try {
        const r = await api.call("audit.get", { ...query, p, ps: Number(ps.value) });
        if (!alive) return;
        const total = r.meta?.total_page || 0;
        const rows = r.data || [];
        clear(results).append(dataTable([
          { key: "id", label: "#", render: (e) => String(e.id) },
          { key: "time", label: "Time", render: (e) => h("time", { datetime: e.attributes?.time }, formatTime(e.attributes?.time)) },
          { key: "type", label: "Kind", render: (e) => KIND_LABELS[e.type] || e.type },
          { key: "description", label: "What", render: (e) => e.attributes?.description || e.attributes?.topic || "" },
          { key: "author", label: "By", render: (e) => { const id = relID(e, "author"); return id ? `user ${id}` : ""; } },
        ], rows, { caption: "Audit entries, newest first", testid: "audit-table" }));
        for (const [i, tr] of [...results.querySelectorAll("tbody tr")].entries()) {
          if (rows[i]) { tr.dataset.testid = "audit-row"; tr.dataset.seq = String(rows[i].id); }
        }
        pageInfo.textContent = total ? `Page ${p} of ${total} (${r.meta.count} entries)` : "No entries";
        prev.disabled = p <= 1;
        next.disabled = p >= total;
        status.textContent = "";
      } catch (e) {
        status.textContent = "";
        toast(`Audit: ${e.message}`, "error");
      }
    }

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      showErrors(form, null);
      try {
        query = await buildQuery();
      } catch (err) {
        showErrors(form, err);
        return;
      }
      save();
      await load(1);
    });
    reset.addEventListener("click", () => {
      kind.value = ""; person.value = ""; door.value = ""; since.value = ""; until.value = "";
      form.requestSubmit();
    });
    prev.addEventListener("click", () => load(Math.max(1, saved.p - 1)));
    next.addEventListener("click", () => load(saved.p + 1));
    ps.addEventListener("change", () => { save(); load(1); });

    exportBtn.addEventListener("click", async () => {
      showErrors(form, null);
      let q;
      try {
        q = await buildQuery();
      } catch (err) {
        showErrors(form, err);
        return;
      }
      exportBtn.disabled = true;
      try {
        const lines = [CSV_COLUMNS.join(",")];
        let total = 1;
        for (let p = 1; p <= total && alive; p++) {
          if (p > EXPORT_MAX_PAGES) throw new Error(`More than ${EXPORT_MAX_PAGES * EXPORT_PAGE} entries: narrow the filter.`);
          status.textContent = `Exporting… page ${p}${total > 1 ? ` of ${total}` : ""}`;
          const r = await api.call("audit.get", { ...q, p, ps: EXPORT_PAGE });
          total = r.meta?.total_page || 0;
          for (const e of r.data || []) lines.push(csvRow(e).map(csvCell).join(","));
        }
        if (!alive) return;
        const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
        const url = URL.createObjectURL(blob);
        const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
        const a = h("a", { href: url, download: `gatehouse-audit-${stamp}.csv`, hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        const n = lines.length - 1;
        status.textContent = `Exported ${n} ${n === 1 ? "entry" : "entries"}.`;
        toast(status.textContent);
      } catch (e) {
        status.textContent = "";
        toast(`Export: ${e.message}`, "error");
      } finally {
        exportBtn.disabled = false;
      }
    });

    loadDoors().then(async () => {
      if (!alive) return;
      try {
        query = await buildQuery();
      } catch (err) {
        showErrors(form, err);
        query = {};
      }
      load(saved.p || 1);
    });

    return () => { alive = false; clearTimeout(searchTimer); };
  },
};
