// zones.js — the Zones page: the zone hierarchy as a tree (each zone with its doors and child
// zones), and creating, editing and deleting zones. A physical zone has at most one physical
// parent, a logical zone no physical parent, and there are no cycles: the server checks it and
// its refusal is shown.
//
// Routes: #/zones, #/zones/new, #/zones/<id>.
// Rights: viewers read; managers and above change.

import {
  h, fill, mount, loading, failed, header, button, link, field, check, attempt, remove, readOnly,
  readList, readOptional, relIds, byId, notice, picker, manages,
} from "./common.js";

const TYPES = [{ value: 0, label: "physical" }, { value: 1, label: "logical" }];

/** tree renders the zones reachable from the roots (zones without a parent) as nested lists. */
function tree(zones, doors, ctx) {
  const index = byId(zones), doorIndex = byId(doors);
  const roots = zones.filter((z) => relIds(z, "parents").length === 0);
  const node = (z, path) => {
    const kids = relIds(z, "children").map((c) => index.get(c)).filter((c) => c && !path.has(c.id));
    const zDoors = relIds(z, "doors");
    const next = new Set(path).add(z.id);
    return h("li", { role: "treeitem", "aria-expanded": kids.length ? "true" : null, "data-testid": `zone-node-${z.id}` },
      h("span", { class: "zone-label" },
        link(`#/zones/${z.id}`, z.attributes.alias || `#${z.id}`, `zone-link-${z.id}`),
        " ", h("span", { class: "badge" }, TYPES[z.attributes.type]?.label ?? z.attributes.type),
        manages(ctx) ? button("Delete", `zone-delete-${z.id}`, async () => {
          if (await remove(ctx.api, `zone ${z.attributes.alias}`, "zone.delete", { zone_id: z.id })) ctx.navigate("#/zones");
        }, { edit: true, kind: "btn-small btn-danger", "aria-label": `Delete zone ${z.attributes.alias}` }) : null),
      zDoors.length ? h("ul", { class: "zone-doors", role: "group", "aria-label": `Doors of ${z.attributes.alias}` },
        zDoors.map((d) => h("li", { class: "zone-door", role: "treeitem" }, "🚪 ",
          link(`#/doors/${d}`, doorIndex.get(d)?.attributes.alias ?? `door #${d}`)))) : null,
      kids.length ? h("ul", { role: "group" }, kids.map((k) => node(k, next))) : null);
  };
  if (zones.length === 0) return notice("No zone yet.", "zones-empty");
  return h("ul", { class: "tree", role: "tree", "aria-label": "Zones", "data-testid": "zones-tree" }, roots.map((z) => node(z, new Set())));
}

async function renderList(view, ctx) {
  loading(view);
  const [zones, doors] = await Promise.all([readList(ctx.api, "zone", "zone_id"), readOptional(ctx.api, "door", "door_id")]);
  fill(view, 
    header("Zones", manages(ctx) ? button("New zone", "zones-new", () => ctx.navigate("#/zones/new"), { kind: "btn-primary", edit: true }) : null),
    tree(zones, doors, ctx));
}

async function renderForm(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const [zones, doors] = await Promise.all([readList(api, "zone", "zone_id"), readOptional(api, "door", "door_id")]);
  const creating = id === null;
  const z = creating ? { attributes: { type: 1 }, relationships: {} } : zones.find((x) => x.id === id);
  if (!z) throw new Error(`There is no zone ${id}.`);
  const editable = manages(ctx);
  const p = "zone";
  const doorPick = picker("zone-doors", "Doors", doors.map((d) => ({ value: d.id, label: d.attributes.alias || `door #${d.id}` })), relIds(z, "doors"), editable, "doors");
  const childPick = picker("zone-children", "Child zones", zones.filter((x) => x.id !== id).map((x) => ({ value: x.id, label: `${x.attributes.alias} (${TYPES[x.attributes.type]?.label})` })), relIds(z, "children"), editable, "children");
  const parents = relIds(z, "parents").map((pid) => zones.find((x) => x.id === pid)?.attributes.alias ?? `#${pid}`);
  const form = h("form", { class: "form", "data-testid": "zone-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "alias", "Name", { value: z.attributes.alias ?? "", required: true }),
      field(p, "description", "Description", { value: z.attributes.description ?? "" }),
      field(p, "type", "Type", { kind: "select", options: TYPES, value: z.attributes.type ?? 1,
        hint: "Physical: a place (one physical parent at most). Logical: a grouping (no physical parent)." })),
    parents.length ? h("p", {}, `Inside: ${parents.join(", ")}`) : null,
    doorPick.el, childPick.el,
    editable ? h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "zone-save", null, { type: "submit", kind: "btn-primary", edit: true }),
      button("Cancel", "zone-cancel", () => ctx.navigate("#/zones"))) : null);
  if (!editable) readOnly(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const attrs = {
      alias: form.elements.alias.value.trim(), description: form.elements.description.value,
      type: Number(form.elements.type.value), doors: doorPick.get(), children: childPick.get(),
    };
    if (!check(form, attrs.alias ? [] : [{ field: "alias", detail: "A name is required." }])) return;
    const r = creating
      ? await attempt(form, () => api.call("zone.create", { attributes: attrs }), `Created zone ${attrs.alias}.`)
      : await attempt(form, () => api.call("zone.update", { zone_id: id, attributes: attrs }), `Saved zone ${attrs.alias}.`);
    if (r.ok) ctx.navigate("#/zones");
  });
  fill(view, 
    header(creating ? "New zone" : `Zone ${z.attributes.alias}`,
      !creating && editable ? button("Delete", "zone-delete", async () => {
        if (await remove(api, `zone ${z.attributes.alias}`, "zone.delete", { zone_id: id })) ctx.navigate("#/zones");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/zones", "All zones", "zones-back")),
    editable ? null : notice("Read only: managers and above change zones."),
    form);
}

export default {
  id: "zones",
  title: "Zones",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "zones-page");
    const [first] = ctx.params;
    const p = first === "new" ? renderForm(view, ctx, null) : first ? renderForm(view, ctx, Number(first)) : renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
