// people.js — the People page: list and search users, create, edit and delete them, and a
// person's detail (groups, credentials, the schedules that apply to them).
//
// Routes: #/people (list), #/people/new, #/people/<id> (detail), #/people/<id>/edit.
// Rights (README permission model): viewers read; managers and supervisors create users and edit
// users of a lower rank; only administrators set ranks and validity and delete users; everyone
// may edit their own profile.

import {
  h, fill, mount, loading, failed, header, section, button, link, field, labelled, control, check, attempt, remove,
  readList, readOne, readOptional, relIds, relId, byId, validityText, validNow, validityFields, validityValue,
  dataTable, notice, dl, manages, isAdmin, RANK_NAMES, MANAGER, DAYS,
} from "./common.js";
import { describe as describeCard } from "./wiegand.js";

const USERNAME_RE = /^[A-Za-z0-9._-]{1,128}$/;
const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;
const SHOWN = 200; // rows shown before the list asks for a search

/** mayEdit: administrators anyone, managers and supervisors lower ranks, everyone themself. */
function mayEdit(ctx, u) {
  return u.id === ctx.me.user_id || isAdmin(ctx) || (ctx.me.rank >= MANAGER && u.attributes.rank < ctx.me.rank);
}

function mayDelete(ctx, u) {
  return isAdmin(ctx) && u.id !== ctx.me.user_id;
}

async function renderList(view, ctx) {
  loading(view);
  const users = await readList(ctx.api, "user", "user_id");
  const results = h("div", { "data-testid": "people-results" });
  const search = control("people", "search", { type: "search", placeholder: "part of a username", autocomplete: "off" });
  let timer = null;
  let asked = 0;
  const show = (rows, note) => {
    fill(results, 
      dataTable([
        { key: "username", label: "Username", render: (u) => link(`#/people/${u.id}`, u.attributes.username, `person-link-${u.attributes.username}`) },
        { key: "name", label: "Name", render: (u) => [u.attributes.firstname, u.attributes.lastname].filter(Boolean).join(" ") },
        { key: "email", label: "Email", render: (u) => u.attributes.email ?? "" },
        { key: "rank", label: "Rank", render: (u) => RANK_NAMES[u.attributes.rank] ?? u.attributes.rank },
        { key: "validity", label: "Validity", render: (u) => h("span", { class: validNow(u.attributes) ? "badge badge-ok" : "badge badge-warn" }, validityText(u.attributes)) },
        { key: "actions", label: "Actions", render: (u) => h("span", { class: "row-actions actions" },
          mayEdit(ctx, u) ? button("Edit", `person-edit-${u.id}`, () => ctx.navigate(`#/people/${u.id}/edit`), { edit: true, kind: "btn-small" }) : null,
          mayDelete(ctx, u) ? button("Delete", `person-delete-${u.id}`, async () => {
            if (await remove(ctx.api, `user ${u.attributes.username}`, "user.delete", { user_id: u.id })) renderList(view, ctx);
          }, { edit: true, kind: "btn-small btn-danger" }) : null) },
      ], rows, { caption: "People", testid: "people-table" }),
      note ? notice(note, "people-note") : null);
  };
  const all = () => show(users.slice(0, SHOWN), users.length > SHOWN ? `Showing ${SHOWN} of ${users.length} people: search to find others.` : null);
  const run = async () => {
    const q = search.value.trim();
    const mine = ++asked;
    if (!q) { all(); return; }
    try {
      const hits = (await ctx.api.call("search.user_username", { partial_name: q })) || [];
      if (mine !== asked) return;
      const index = byId(users);
      show(hits.map((x) => index.get(x.id)).filter(Boolean), hits.length >= 100 ? "Only the first 100 matches are shown." : null);
    } catch (e) {
      if (mine === asked) fill(results, notice(`Search failed: ${e.message}`, "people-note"));
    }
  };
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 200); });
  fill(view, 
    header("People", manages(ctx) ? button("New person", "people-new", () => ctx.navigate("#/people/new"), { kind: "btn-primary", edit: true }) : null),
    h("form", { class: "search", role: "search", onsubmit: (e) => { e.preventDefault(); clearTimeout(timer); run(); } },
      labelled("Search by username", search)),
    results);
  all();
}

async function renderForm(view, ctx, id) {
  loading(view);
  const creating = id === null;
  const u = creating ? { id: 0, attributes: { rank: 0, "validity-enabled": true } } : await readOne(ctx.api, "user", "user_id", id);
  const a = u.attributes;
  const admin = isAdmin(ctx);
  const p = "person";
  const form = h("form", { class: "form", "data-testid": "person-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "username", "Username", { value: a.username ?? "", required: true, autocomplete: "off", hint: "Letters, digits, . _ -" }),
      field(p, "firstname", "First name", { value: a.firstname ?? "" }),
      field(p, "lastname", "Last name", { value: a.lastname ?? "" }),
      field(p, "email", "Email", { type: "email", value: a.email ?? "" }),
      creating ? field(p, "password", "Password", { type: "password", autocomplete: "new-password", hint: "Optional: without one the person cannot log in to the dashboard." }) : null,
      field(p, "rank", "Rank", { kind: "select", options: RANK_NAMES.map((n, i) => ({ value: i, label: n })), value: a.rank ?? 0, disabled: !admin,
        hint: admin ? null : "Only administrators change ranks." }),
      validityFields(p, a, admin, admin ? "Empty: no limit. Times are local." : "Only administrators change validity.")),
    h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "person-save", null, { type: "submit", kind: "btn-primary" }),
      button("Cancel", "person-cancel", () => ctx.navigate(creating ? "#/people" : `#/people/${u.id}`))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const el = form.elements;
    const problems = [];
    const attrs = {
      username: el.username.value.trim(), firstname: el.firstname.value.trim(),
      lastname: el.lastname.value.trim(), email: el.email.value.trim(),
    };
    if (!attrs.username) problems.push({ field: "username", detail: "A username is required." });
    else if (!USERNAME_RE.test(attrs.username)) problems.push({ field: "username", detail: "Use 1 to 128 of A-Z a-z 0-9 . _ -" });
    if (attrs.email && !EMAIL_RE.test(attrs.email)) problems.push({ field: "email", detail: "Not an email address." });
    if (admin) {
      attrs.rank = Number(el.rank.value);
      validityValue(form, attrs, problems, a);
    }
    if (creating && el.password.value) attrs.password = el.password.value;
    if (!check(form, problems)) return;
    const r = creating
      ? await attempt(form, () => ctx.api.call("user.create", { attributes: attrs }), `Created ${attrs.username}.`)
      : await attempt(form, () => ctx.api.call("user.update", { user_id: u.id, attributes: attrs }), `Saved ${attrs.username}.`);
    if (r.ok) ctx.navigate(`#/people/${creating ? r.value.data.id : u.id}`);
  });
  fill(view, header(creating ? "New person" : `Edit ${a.username}`), form);
  form.elements.username.focus();
}

/** scheduleRows lists the schedules that apply to a user: directly, through a group or a credential. */
function scheduleRows(user, groupIds, credIds, schedulesReply, doors, zones) {
  const mappings = byId(schedulesReply.included);
  const rows = [];
  for (const s of schedulesReply.data) {
    for (const mid of relIds(s, "mapping")) {
      const m = mappings.get(mid);
      if (!m) continue;
      const via = [];
      if (relIds(m, "users").includes(user.id)) via.push("directly");
      for (const g of relIds(m, "groups")) if (groupIds.has(g)) via.push(`group ${groupIds.get(g)}`);
      for (const c of relIds(m, "credentials")) if (credIds.has(c)) via.push(`credential ${credIds.get(c)}`);
      if (via.length === 0) continue;
      const where = [
        ...relIds(m, "doors").map((d) => `door ${doors.get(d)?.attributes.alias ?? d}`),
        ...relIds(m, "zones").map((z) => `zone ${zones.get(z)?.attributes.alias ?? z}`),
      ];
      rows.push({ schedule: s, mapping: m, via: via.join(", "), where: where.length ? where.join(", ") : "every door" });
    }
  }
  return rows;
}

function framesText(s) {
  const fs = s.attributes.timeframes || [];
  if (fs.length === 0) return "no timeframe";
  return fs.map((f) => `${DAYS[f.day]?.slice(0, 3) ?? f.day} ${f["start-time"]}–${f["end-time"]}${f["end-time"] < f["start-time"] ? " (overnight)" : ""}`).join("; ");
}

async function renderDetail(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const u = await readOne(api, "user", "user_id", id);
  const a = u.attributes;
  const membershipIds = relIds(u, "memberships");
  const [memberships, groups, creds, schedules, doors, zones] = await Promise.all([
    Promise.all(membershipIds.map((m) => readOne(api, "user-group-membership", "membership_id", m).catch(() => null))),
    readOptional(api, "group", "group_id"),
    readOptional(api, "credential", "credential_id"),
    api.call("schedule.read", { schedule_id: 0 }).catch(() => ({ data: [], included: [] })),
    readOptional(api, "door", "door_id"),
    readOptional(api, "zone", "zone_id"),
  ]);
  const groupIndex = byId(groups);
  const myGroups = memberships.filter(Boolean).map((m) => ({ m, g: groupIndex.get(relId(m, "group")) }));
  const myCreds = creds.filter((c) => relId(c, "owner") === u.id);
  const groupNames = new Map(myGroups.map(({ m, g }) => [relId(m, "group"), g?.attributes.name ?? `#${relId(m, "group")}`]));
  const credNames = new Map(myCreds.map((c) => [c.id, c.attributes.alias || `#${c.id}`]));
  const rows = scheduleRows(u, groupNames, credNames, { data: schedules.data || [], included: schedules.included || [] }, byId(doors), byId(zones));
  fill(view, 
    header(a.username,
      mayEdit(ctx, u) ? button("Edit", "person-edit", () => ctx.navigate(`#/people/${u.id}/edit`), { edit: true, kind: "btn-primary" }) : null,
      manages(ctx) ? button("Add credential", "person-add-credential", () => ctx.navigate(`#/credentials/new/${u.id}`), { edit: true }) : null,
      mayDelete(ctx, u) ? button("Delete", "person-delete", async () => {
        if (await remove(api, `user ${a.username}`, "user.delete", { user_id: u.id })) ctx.navigate("#/people");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/people", "All people", "people-back")),
    section("Profile", "person-profile", dl([
      ["Name", [a.firstname, a.lastname].filter(Boolean).join(" ")],
      ["Email", a.email ?? ""],
      ["Rank", RANK_NAMES[a.rank] ?? String(a.rank)],
      ["Validity", h("span", { "data-testid": "person-validity" }, validityText(a))],
    ])),
    section("Groups", "person-groups", dataTable([
      { key: "group", label: "Group", render: ({ m, g }) => g ? link(`#/groups/${g.id}`, g.attributes.name) : `#${relId(m, "group")}` },
      { key: "rank", label: "Rank in group", render: ({ m }) => ["member", "operator", "administrator"][m.attributes.rank] ?? m.attributes.rank },
    ], myGroups, { testid: "person-groups-table" })),
    section("Credentials", "person-credentials", dataTable([
      { key: "alias", label: "Alias", render: (c) => link(`#/credentials/${c.id}`, c.attributes.alias || `#${c.id}`, `person-credential-${c.id}`) },
      { key: "type", label: "Type", render: (c) => c.type },
      { key: "card", label: "Card", render: (c) => c.attributes["card-id"] ? `${c.attributes["card-id"]} (${c.attributes["nb-bits"]} bits) ${describeCard(c.attributes["card-id"], c.attributes["nb-bits"])}` : "" },
      { key: "pin", label: "PIN", render: (c) => c.attributes.code ? "***" : "" },
      { key: "validity", label: "Validity", render: (c) => validityText(c.attributes) },
    ], myCreds, { testid: "person-credentials-table" })),
    section("Schedules", "person-schedules", dataTable([
      { key: "schedule", label: "Schedule", render: (r) => link(`#/schedules/${r.schedule.id}`, r.schedule.attributes.name) },
      { key: "frames", label: "When", render: (r) => framesText(r.schedule) },
      { key: "where", label: "Where", render: (r) => r.where },
      { key: "via", label: "Applies", render: (r) => r.via },
    ], rows, { testid: "person-schedules-table" })));
}

export default {
  id: "people",
  title: "People",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "people-page");
    const [first, second] = ctx.params;
    let p;
    if (first === "new") p = manages(ctx) ? renderForm(view, ctx, null) : Promise.reject(new Error("You may not create people."));
    else if (first && second === "edit") p = renderForm(view, ctx, Number(first));
    else if (first) p = renderDetail(view, ctx, Number(first));
    else p = renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
