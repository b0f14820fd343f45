// groups.js — the Groups page: list, create, edit and delete groups; a group's members with
// their rank in the group (member, operator, administrator), added, re-ranked and removed.
//
// Routes: #/groups, #/groups/new, #/groups/<id> (members), #/groups/<id>/edit.
// Rights: viewers read; managers change everything; a group's administrators (group rank 2)
// edit and delete their group; its operators (1) and administrators add and remove members of
// a rank no higher than their own.

import {
  h, fill, mount, loading, failed, header, section, button, link, field, check, attempt, remove,
  readList, readOne, readOptional, relIds, relId, byId, userName, userOptions, dataTable, formatTime, manages,
} from "./common.js";

const GROUP_RANKS = ["member", "operator", "administrator"];
const NAME_RE = /^[A-Za-z0-9_.-]{3,50}$/;

/** myGroupRanks maps group id → the caller's rank in it (only needed below manager). */
async function myGroupRanks(ctx) {
  const out = new Map();
  if (manages(ctx)) return out;
  const me = await readOne(ctx.api, "user", "user_id", ctx.me.user_id);
  const ms = await Promise.all(relIds(me, "memberships").map((id) =>
    readOne(ctx.api, "user-group-membership", "membership_id", id).catch(() => null)));
  for (const m of ms) if (m) out.set(relId(m, "group"), m.attributes.rank);
  return out;
}

/** highestGrant is the highest group rank the caller may give in group g (-1: none). */
function highestGrant(ctx, ranks, gid) {
  if (manages(ctx)) return 2;
  const r = ranks.get(gid);
  return r >= 1 ? r : -1;
}

function canAdminister(ctx, ranks, gid) {
  return manages(ctx) || ranks.get(gid) === 2;
}

async function renderList(view, ctx) {
  loading(view);
  const [groups, ranks] = await Promise.all([readList(ctx.api, "group", "group_id"), myGroupRanks(ctx)]);
  fill(view, 
    header("Groups", manages(ctx) ? button("New group", "groups-new", () => ctx.navigate("#/groups/new"), { kind: "btn-primary", edit: true }) : null),
    dataTable([
      { key: "name", label: "Name", render: (g) => link(`#/groups/${g.id}`, g.attributes.name, `group-link-${g.attributes.name}`) },
      { key: "description", label: "Description", render: (g) => g.attributes.description },
      { key: "members", label: "Members", render: (g) => String(relIds(g, "memberships").length) },
      { key: "schedules", label: "Schedules", render: (g) => String(relIds(g, "schedules").length) },
      { key: "actions", label: "Actions", render: (g) => canAdminister(ctx, ranks, g.id) ? h("span", { class: "row-actions actions" },
        button("Edit", `group-edit-${g.id}`, () => ctx.navigate(`#/groups/${g.id}/edit`), { edit: true, kind: "btn-small" }),
        button("Delete", `group-delete-${g.id}`, async () => {
          if (await remove(ctx.api, `group ${g.attributes.name}`, "group.delete", { group_id: g.id })) renderList(view, ctx);
        }, { edit: true, kind: "btn-small btn-danger" })) : "" },
    ], groups, { caption: "Groups", testid: "groups-table" }));
}

async function renderForm(view, ctx, id) {
  loading(view);
  const creating = id === null;
  const g = creating ? { attributes: {} } : await readOne(ctx.api, "group", "group_id", id);
  const p = "group";
  const form = h("form", { class: "form", "data-testid": "group-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "name", "Name", { value: g.attributes.name ?? "", required: true, hint: "3 to 50 of A-Z a-z 0-9 _ . -" }),
      field(p, "description", "Description", { kind: "textarea", value: g.attributes.description ?? "" })),
    h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "group-save", null, { type: "submit", kind: "btn-primary" }),
      button("Cancel", "group-cancel", () => ctx.navigate(creating ? "#/groups" : `#/groups/${id}`))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const attrs = { name: form.elements.name.value.trim(), description: form.elements.description.value };
    const problems = [];
    if (!NAME_RE.test(attrs.name)) problems.push({ field: "name", detail: "Use 3 to 50 of A-Z a-z 0-9 _ . -" });
    if (!check(form, problems)) return;
    const r = creating
      ? await attempt(form, () => ctx.api.call("group.create", { attributes: attrs }), `Created group ${attrs.name}.`)
      : await attempt(form, () => ctx.api.call("group.update", { group_id: id, attributes: attrs }), `Saved group ${attrs.name}.`);
    if (r.ok) ctx.navigate(`#/groups/${r.value.data.id}`);
  });
  fill(view, header(creating ? "New group" : `Edit group ${g.attributes.name}`), form);
  form.elements.name.focus();
}

async function renderDetail(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const [g, users, ranks] = await Promise.all([
    readOne(api, "group", "group_id", id), readOptional(api, "user", "user_id"), myGroupRanks(ctx)]);
  const members = (await Promise.all(relIds(g, "memberships").map((m) =>
    readOne(api, "user-group-membership", "membership_id", m).catch(() => null)))).filter(Boolean);
  const userIndex = byId(users);
  const grant = highestGrant(ctx, ranks, g.id);
  const rankOptions = GROUP_RANKS.slice(0, grant + 1).map((n, i) => ({ value: i, label: n }));
  const reload = () => renderDetail(view, ctx, id).catch((e) => failed(view, e));

  const memberRow = (m) => {
    const uid = relId(m, "user");
    const mayChange = grant >= m.attributes.rank;
    let rankCell = GROUP_RANKS[m.attributes.rank] ?? String(m.attributes.rank);
    if (mayChange) {
      const form = h("form", { class: "inline-form row", "data-testid": `member-rank-form-${uid}` });
      const sel = field(`member-${uid}`, "rank", "Rank in group", { kind: "select", options: rankOptions, value: m.attributes.rank });
      form.append(sel, button("Change", `member-rank-save-${uid}`, null, { type: "submit", kind: "btn-small", edit: true }));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const r = await attempt(form, () => api.call("user-group-membership.update",
          { membership_id: m.id, attributes: { rank: Number(form.elements.rank.value) } }), "Rank changed.");
        if (r.ok) reload();
      });
      rankCell = form;
    }
    return {
      user: userIndex.has(uid) ? link(`#/people/${uid}`, userName(userIndex.get(uid)), `member-${uid}`) : `#${uid}`,
      rank: rankCell,
      since: formatTime(m.attributes.time || (m.attributes.timestamp ? new Date(m.attributes.timestamp * 1000).toISOString() : "")),
      actions: mayChange ? button("Remove", `member-remove-${uid}`, async () => {
        if (await remove(api, `the membership of ${userIndex.get(uid)?.attributes.username ?? uid} in ${g.attributes.name}`,
          "user-group-membership.delete", { membership_id: m.id })) reload();
      }, { edit: true, kind: "btn-small btn-danger" }) : "",
    };
  };

  let addForm = null;
  if (grant >= 0) {
    const memberIds = new Set(members.map((m) => relId(m, "user")));
    addForm = h("form", { class: "form inline-form row", "data-testid": "member-add-form", novalidate: true },
      field("member-add", "user_id", "Person", { kind: "select", options: [{ value: "", label: "— choose —" }, ...userOptions(users.filter((u) => !memberIds.has(u.id)))] }),
      field("member-add", "rank", "Rank in group", { kind: "select", options: rankOptions, value: 0 }),
      button("Add member", "member-add", null, { type: "submit", kind: "btn-primary", edit: true }));
    addForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const uid = Number(addForm.elements.user_id.value);
      if (!check(addForm, uid ? [] : [{ field: "user_id", detail: "Choose a person." }])) return;
      const r = await attempt(addForm, () => api.call("user-group-membership.create",
        { attributes: { user_id: uid, group_id: g.id, rank: Number(addForm.elements.rank.value) } }), "Member added.");
      if (r.ok) reload();
    });
  }

  fill(view, 
    header(`Group ${g.attributes.name}`,
      canAdminister(ctx, ranks, g.id) ? button("Edit", "group-edit", () => ctx.navigate(`#/groups/${g.id}/edit`), { edit: true, kind: "btn-primary" }) : null,
      canAdminister(ctx, ranks, g.id) ? button("Delete", "group-delete", async () => {
        if (await remove(api, `group ${g.attributes.name}`, "group.delete", { group_id: g.id })) ctx.navigate("#/groups");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/groups", "All groups", "groups-back")),
    g.attributes.description ? h("p", {}, g.attributes.description) : null,
    section("Members", "group-members",
      dataTable([
        { key: "user", label: "Person" }, { key: "rank", label: "Rank in group" },
        { key: "since", label: "Since" }, { key: "actions", label: "Actions" },
      ], members.map(memberRow), { testid: "group-members-table" }),
      addForm));
}

export default {
  id: "groups",
  title: "Groups",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "groups-page");
    const [first, second] = ctx.params;
    let p;
    if (first === "new") p = renderForm(view, ctx, null);
    else if (first && second === "edit") p = renderForm(view, ctx, Number(first));
    else if (first) p = renderDetail(view, ctx, Number(first));
    else p = renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
