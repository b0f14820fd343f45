// schedules.js — the Schedules page: weekly timeframes (day 0 = Monday … 6 = Sunday, "HH:MM"
// start and end; an end before the start spans midnight and is shown as an overnight frame) and
// mappings (who: users, groups, credentials; where: doors, zones — none means every door).
//
// Routes: #/schedules, #/schedules/new, #/schedules/<id>.
// Rights: viewers read; managers and above create, change and delete.

import {
  h, clear, fill, mount, loading, failed, header, section, button, link, field, check, attempt, remove,
  readOptional, relIds, byId, userName, dataTable, notice, picker, readOnly, manages, DAYS,
} from "./common.js";

const NAME_RE = /^[A-Za-z0-9_.-]{3,50}$/;
const CLOCK_RE = /^([01]?[0-9]|2[0-3]):([0-5][0-9])$/;

/** minutes returns the minutes after midnight of "HH:MM", NaN when malformed. */
function minutes(s) {
  const m = CLOCK_RE.exec(s || "");
  return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
}

/** frameText describes a timeframe: "Mon 08:00–18:00" or "Fri 22:00 → Sat 06:00 (overnight)". */
export function frameText(f) {
  const day = DAYS[f.day] ?? `day ${f.day}`;
  if (minutes(f["end-time"]) < minutes(f["start-time"])) {
    return `${day.slice(0, 3)} ${f["start-time"]} → ${DAYS[(f.day + 1) % 7].slice(0, 3)} ${f["end-time"]} (overnight)`;
  }
  return `${day.slice(0, 3)} ${f["start-time"]}–${f["end-time"]}`;
}

async function loadAll(api) {
  const [reply, users, groups, creds, doors, zones] = await Promise.all([
    api.call("schedule.read", { schedule_id: 0 }),
    readOptional(api, "user", "user_id"), readOptional(api, "group", "group_id"),
    readOptional(api, "credential", "credential_id"), readOptional(api, "door", "door_id"),
    readOptional(api, "zone", "zone_id"),
  ]);
  return { schedules: reply?.data || [], mappings: byId(reply?.included || []), users, groups, creds, doors, zones };
}

async function renderList(view, ctx) {
  loading(view);
  const reply = await ctx.api.call("schedule.read", { schedule_id: 0 });
  const schedules = reply?.data || [];
  fill(view, 
    header("Schedules", manages(ctx) ? button("New schedule", "schedules-new", () => ctx.navigate("#/schedules/new"), { kind: "btn-primary", edit: true }) : null),
    dataTable([
      { key: "name", label: "Name", render: (s) => link(`#/schedules/${s.id}`, s.attributes.name, `schedule-link-${s.attributes.name}`) },
      { key: "description", label: "Description", render: (s) => s.attributes.description },
      { key: "frames", label: "Timeframes", render: (s) => (s.attributes.timeframes || []).length
        ? h("ul", { class: "compact" }, s.attributes.timeframes.map((f) => h("li", {}, frameText(f)))) : "none" },
      { key: "mappings", label: "Mappings", render: (s) => String(relIds(s, "mapping").length) },
      { key: "actions", label: "Actions", render: (s) => manages(ctx) ? h("span", { class: "row-actions actions" },
        button("Edit", `schedule-edit-${s.id}`, () => ctx.navigate(`#/schedules/${s.id}`), { edit: true, kind: "btn-small" }),
        button("Delete", `schedule-delete-${s.id}`, async () => {
          if (await remove(ctx.api, `schedule ${s.attributes.name}`, "schedule.delete", { schedule_id: s.id })) renderList(view, ctx);
        }, { edit: true, kind: "btn-small btn-danger" })) : "" },
    ], schedules, { caption: "Schedules", testid: "schedules-table" }));
}

/** framesEditor edits a list of timeframes; controls are named timeframes/<i>/<field> like the server's error pointers. */
function framesEditor(initial, editable) {
  let frames = initial.map((f) => ({ day: f.day, start: f["start-time"], end: f["end-time"] }));
  const body = h("div", { class: "frames", "data-testid": "tf-list" });
  const read = () => {
    frames = frames.map((f, i) => {
      const get = (n) => body.querySelector(`[name="timeframes/${i}/${n}"]`)?.value;
      return { day: Number(get("day") ?? f.day), start: get("start-time") ?? f.start, end: get("end-time") ?? f.end };
    });
  };
  const overnightText = (f) => (minutes(f.end) < minutes(f.start)
    ? `Overnight: ends ${DAYS[(f.day + 1) % 7]} ${f.end}.` : "");
  const draw = () => {
    clear(body);
    if (frames.length === 0) body.append(notice("No timeframe: this schedule never grants access.", "tf-empty"));
    frames.forEach((f, i) => {
      const note = h("small", { class: "overnight", "data-testid": `tf-${i}-overnight`, "aria-live": "polite" }, overnightText(f));
      const row = h("fieldset", { class: "frame-row row", "data-testid": `tf-${i}` },
        h("legend", {}, `Timeframe ${i + 1}`),
        field(`tf-${i}`, `timeframes/${i}/day`, "Day", { idName: "day", kind: "select", options: DAYS.map((d, k) => ({ value: k, label: d })), value: f.day }),
        field(`tf-${i}`, `timeframes/${i}/start-time`, "Start", { idName: "start", type: "time", value: f.start, required: true }),
        field(`tf-${i}`, `timeframes/${i}/end-time`, "End", { idName: "end", type: "time", value: f.end, required: true }),
        note,
        editable ? button("Remove", `tf-${i}-remove`, () => { read(); frames.splice(i, 1); draw(); }, { kind: "btn-small btn-danger", edit: true, "aria-label": `Remove timeframe ${i + 1}` }) : null);
      row.addEventListener("input", () => { read(); note.textContent = overnightText(frames[i]); });
      body.append(row);
    });
  };
  draw();
  const el = h("div", {}, body, editable ? h("div", { class: "form-actions actions" },
    button("Add timeframe", "tf-add", () => {
      read();
      const last = frames[frames.length - 1];
      frames.push(last ? { day: (last.day + 1) % 7, start: last.start, end: last.end } : { day: 0, start: "08:00", end: "18:00" });
      draw();
      body.querySelector(`[name="timeframes/${frames.length - 1}/day"]`)?.focus();
    }, { edit: true })) : null);
  return {
    el,
    /** value returns the frames to send and appends problems for malformed ones. */
    value(problems) {
      read();
      return frames.map((f, i) => {
        if (!(f.day >= 0 && f.day <= 6)) problems.push({ field: `timeframes/${i}/day`, detail: "Day must be Monday to Sunday." });
        if (Number.isNaN(minutes(f.start))) problems.push({ field: `timeframes/${i}/start-time`, detail: "Use HH:MM." });
        if (Number.isNaN(minutes(f.end))) problems.push({ field: `timeframes/${i}/end-time`, detail: "Use HH:MM." });
        return { day: f.day, "start-time": f.start, "end-time": f.end };
      });
    },
  };
}

/** mappingEditor edits one mapping: an alias and five pickers. */
function mappingEditor(k, m, opts, editable, onRemove) {
  const rel = (name) => (m ? relIds(m, name) : []);
  const pickers = {
    users: picker(`mapping-${k}-users`, "People", opts.users, rel("users"), editable),
    groups: picker(`mapping-${k}-groups`, "Groups", opts.groups, rel("groups"), editable),
    credentials: picker(`mapping-${k}-credentials`, "Credentials", opts.credentials, rel("credentials"), editable),
    doors: picker(`mapping-${k}-doors`, "Doors", opts.doors, rel("doors"), editable),
    zones: picker(`mapping-${k}-zones`, "Zones", opts.zones, rel("zones"), editable),
  };
  const alias = field(`mapping-${k}`, `mapping-${k}-alias`, "Mapping name", { idName: "alias", value: m?.attributes.alias ?? "" });
  const el = h("fieldset", { class: "mapping panel", "data-testid": `mapping-${k}` },
    h("legend", {}, m?.attributes.alias || `Mapping ${k + 1}`),
    alias,
    h("div", { class: "mapping-who" }, h("h3", {}, "Who"), pickers.users.el, pickers.groups.el, pickers.credentials.el),
    h("div", { class: "mapping-where" }, h("h3", {}, "Where"), pickers.doors.el, pickers.zones.el,
      h("small", { class: "hint" }, "No door and no zone: every door.")),
    editable ? button("Remove mapping", `mapping-${k}-remove`, () => { el.remove(); onRemove(); }, { kind: "btn-small btn-danger", edit: true }) : null);
  return {
    el,
    value() {
      const out = { alias: alias.querySelector("input").value.trim() };
      if (m) out.id = m.id;
      for (const [name, p] of Object.entries(pickers)) out[name] = p.get();
      return out;
    },
  };
}

async function renderForm(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const all = await loadAll(api);
  const creating = id === null;
  const s = creating ? { attributes: { timeframes: [] } } : all.schedules.find((x) => x.id === id);
  if (!s) throw new Error(`There is no schedule ${id}.`);
  const editable = manages(ctx);
  const owners = byId(all.users);
  const opts = {
    users: all.users.map((u) => ({ value: u.id, label: userName(u) })),
    groups: all.groups.map((g) => ({ value: g.id, label: g.attributes.name })),
    credentials: all.creds.map((c) => {
      const o = owners.get(c.relationships?.owner?.data?.id);
      return { value: c.id, label: `${c.attributes.alias || c.type + " #" + c.id}${o ? ` (${o.attributes.username})` : ""}` };
    }),
    doors: all.doors.map((d) => ({ value: d.id, label: d.attributes.alias || `door #${d.id}` })),
    zones: all.zones.map((z) => ({ value: z.id, label: z.attributes.alias || `zone #${z.id}` })),
  };
  const p = "schedule";
  const frames = framesEditor(s.attributes.timeframes || [], editable);
  const editors = [];
  let next = 0;
  const mappingsBox = h("div", { class: "mappings", "data-testid": "mapping-list" });
  const addMapping = (m) => {
    const ed = mappingEditor(next++, m, opts, editable, () => editors.splice(editors.indexOf(ed), 1));
    editors.push(ed);
    mappingsBox.append(ed.el);
    return ed;
  };
  for (const mid of relIds(s, "mapping")) addMapping(all.mappings.get(mid) || { id: mid, attributes: {}, relationships: {} });

  const form = h("form", { class: "form", "data-testid": "schedule-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "name", "Name", { value: s.attributes.name ?? "", required: true, hint: "3 to 50 of A-Z a-z 0-9 _ . -" }),
      field(p, "description", "Description", { value: s.attributes.description ?? "" })),
    section("Timeframes", "schedule-timeframes", h("p", { class: "hint" }, "Times are the site's local time. An end before the start runs past midnight."), frames.el),
    section("Mappings", "schedule-mappings", mappingsBox,
      editable ? button("Add mapping", "mapping-add", () => addMapping(null).el.querySelector("input")?.focus(), { edit: true }) : null),
    editable ? h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "schedule-save", null, { type: "submit", kind: "btn-primary", edit: true }),
      button("Cancel", "schedule-cancel", () => ctx.navigate("#/schedules"))) : null);
  if (!editable) readOnly(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problems = [];
    const attrs = { name: form.elements.name.value.trim(), description: form.elements.description.value };
    if (!NAME_RE.test(attrs.name)) problems.push({ field: "name", detail: "Use 3 to 50 of A-Z a-z 0-9 _ . -" });
    attrs.timeframes = frames.value(problems);
    if (!check(form, problems)) return;
    const mapping = editors.map((ed) => ed.value());
    const r = creating
      ? await attempt(form, () => api.call("schedule.create", { attributes: attrs, mapping }), `Created schedule ${attrs.name}.`)
      : await attempt(form, () => api.call("schedule.update", { schedule_id: s.id, attributes: attrs, mapping }), `Saved schedule ${attrs.name}.`);
    if (r.ok) ctx.navigate("#/schedules");
  });
  fill(view, 
    header(creating ? "New schedule" : `Schedule ${s.attributes.name}`,
      !creating && editable ? button("Delete", "schedule-delete", async () => {
        if (await remove(api, `schedule ${s.attributes.name}`, "schedule.delete", { schedule_id: s.id })) ctx.navigate("#/schedules");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/schedules", "All schedules", "schedules-back")),
    editable ? null : notice("Read only: managers and above change schedules."),
    form);
}

export default {
  id: "schedules",
  title: "Schedules",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "schedules-page");
    const [first] = ctx.params;
    let p;
    if (first === "new") p = renderForm(view, ctx, null);
    else if (first) p = renderForm(view, ctx, Number(first));
    else p = renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
