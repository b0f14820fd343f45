// doors.js — the Doors page: list doors with their reader (access point) and zones; create,
// edit and delete them.
//
// Routes: #/doors, #/doors/new, #/doors/<id>.
// Rights: viewers read; managers and above change.

import {
  h, fill, mount, loading, failed, header, button, link, field, check, attempt, remove, readOnly,
  readList, readOptional, relId, relIds, byId, dataTable, notice, manages,
} from "./common.js";

async function renderList(view, ctx) {
  loading(view);
  const [doors, aps, zones] = await Promise.all([
    readList(ctx.api, "door", "door_id"), readOptional(ctx.api, "access_point", "access_point_id"), readOptional(ctx.api, "zone", "zone_id")]);
  const apIndex = byId(aps), zoneIndex = byId(zones);
  fill(view, 
    header("Doors", manages(ctx) ? button("New door", "doors-new", () => ctx.navigate("#/doors/new"), { kind: "btn-primary", edit: true }) : null),
    dataTable([
      { key: "alias", label: "Door", render: (d) => link(`#/doors/${d.id}`, d.attributes.alias || `#${d.id}`, `door-link-${d.id}`) },
      { key: "description", label: "Description", render: (d) => d.attributes.description },
      { key: "reader", label: "Reader", render: (d) => {
        const ap = relId(d, "access-point");
        return ap ? link("#/readers", apIndex.get(ap)?.attributes.alias || `#${ap}`) : "—";
      } },
      { key: "zones", label: "Zones", render: (d) => relIds(d, "zones").map((z) => zoneIndex.get(z)?.attributes.alias ?? `#${z}`).join(", ") },
      { key: "actions", label: "Actions", render: (d) => manages(ctx) ? h("span", { class: "row-actions actions" },
        button("Edit", `door-edit-${d.id}`, () => ctx.navigate(`#/doors/${d.id}`), { edit: true, kind: "btn-small" }),
        button("Delete", `door-delete-${d.id}`, async () => {
          if (await remove(ctx.api, `door ${d.attributes.alias}`, "door.delete", { door_id: d.id })) renderList(view, ctx);
        }, { edit: true, kind: "btn-small btn-danger" })) : "" },
    ], doors, { caption: "Doors", testid: "doors-table" }));
}

async function renderForm(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const [doors, aps] = await Promise.all([readList(api, "door", "door_id"), readOptional(api, "access_point", "access_point_id")]);
  const creating = id === null;
  const d = creating ? { attributes: {} } : doors.find((x) => x.id === id);
  if (!d) throw new Error(`There is no door ${id}.`);
  const usedBy = new Map(doors.filter((x) => x.id !== id && relId(x, "access-point")).map((x) => [relId(x, "access-point"), x]));
  const editable = manages(ctx);
  const p = "door";
  const form = h("form", { class: "form", "data-testid": "door-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "alias", "Name", { value: d.attributes.alias ?? "", required: true }),
      field(p, "description", "Description", { value: d.attributes.description ?? "" }),
      field(p, "access_point_id", "Reader", {
        kind: "select", value: relId(d, "access-point"),
        options: [{ value: 0, label: "— none —" }, ...aps.map((a) => ({
          value: a.id,
          label: `${a.attributes.alias || `#${a.id}`} (${a.attributes["controller-module"]})${usedBy.has(a.id) ? ` — used by ${usedBy.get(a.id).attributes.alias}` : ""}`,
        }))],
        hint: "A door has at most one reader, and a reader serves one door.",
      })),
    editable ? h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "door-save", null, { type: "submit", kind: "btn-primary", edit: true }),
      button("Cancel", "door-cancel", () => ctx.navigate("#/doors"))) : null);
  if (!editable) readOnly(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const attrs = {
      alias: form.elements.alias.value.trim(), description: form.elements.description.value,
      access_point_id: Number(form.elements.access_point_id.value) || 0,
    };
    if (!check(form, attrs.alias ? [] : [{ field: "alias", detail: "A name is required." }])) return;
    const r = creating
      ? await attempt(form, () => api.call("door.create", { attributes: attrs }), `Created door ${attrs.alias}.`)
      : await attempt(form, () => api.call("door.update", { door_id: id, attributes: attrs }), `Saved door ${attrs.alias}.`);
    if (r.ok) ctx.navigate("#/doors");
  });
  fill(view, 
    header(creating ? "New door" : `Door ${d.attributes.alias}`,
      !creating && editable ? button("Delete", "door-delete", async () => {
        if (await remove(api, `door ${d.attributes.alias}`, "door.delete", { door_id: id })) ctx.navigate("#/doors");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/doors", "All doors", "doors-back")),
    editable ? null : notice("Read only: managers and above change doors."),
    form);
}

export default {
  id: "doors",
  title: "Doors",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "doors-page");
    const [first] = ctx.params;
    const p = first === "new" ? renderForm(view, ctx, null) : first ? renderForm(view, ctx, Number(first)) : renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
