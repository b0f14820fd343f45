// readers.js — the Readers page: access points with their controller module (simulator,
// wiegand, mqtt), door and configuration; creating, editing and deleting them; and, for
// administrators, "Present card": reader.simulate with a card and/or a PIN at a door or reader,
// showing the decision (granted or denied, with the reason).
//
// Routes: #/readers, #/readers/new, #/readers/<id>.
// Rights: viewers read; managers and above change; administrators present cards.

import {
  h, fill, mount, loading, failed, header, section, button, link, field, check, attempt, remove, readOnly,
  readList, readOptional, relId, byId, dataTable, notice, manages, isAdmin,
} from "./common.js";
import { FORMATS, checkCardId, describe, encode } from "./wiegand.js";

const MODULES = [
  { value: "simulator", label: "simulator (virtual reader)" },
  { value: "wiegand", label: "wiegand (GPIO reader)" },
  { value: "mqtt", label: "mqtt" },
];

function configText(a) {
  const c = a.config;
  if (c === undefined || c === null) return "";
  const s = typeof c === "string" ? c : JSON.stringify(c);
  return s === "{}" ? "" : s;
}

/** presentForm is the "Present card" form (administrators): reader.simulate. */
function presentForm(ctx, doors, aps, preselect) {
  const p = "simulate";
  const apIndex = byId(aps);
  const targets = [
    ...doors.map((d) => {
      const ap = relId(d, "access-point");
      return { value: `door:${d.id}`, label: `Door ${d.attributes.alias}${ap ? ` (reader ${apIndex.get(ap)?.attributes.alias ?? ap})` : ""}` };
    }),
    ...aps.map((a) => ({ value: `reader:${a.id}`, label: `Reader ${a.attributes.alias || `#${a.id}`}` })),
  ];
  const result = h("output", { class: "decision", "data-testid": "simulate-result", "aria-live": "assertive", for: `${p}-cardId ${p}-pin` });
  const decoded = h("small", { class: "hint", "data-testid": "simulate-decoded" });
  const form = h("form", { class: "form", "data-testid": "simulate-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "target", "Door or reader", { kind: "select", options: [{ value: "", label: "— choose —" }, ...targets], value: preselect ?? "" }),
      field(p, "cardId", "Card id (raw hex)", { placeholder: "aa:bb:cc:dd", autocomplete: "off", spellcheck: "false" }),
      field(p, "nbBits", "Number of bits", { type: "number", min: 1, max: 128, value: 26, inputmode: "numeric" }),
      field(p, "pin", "PIN", { type: "password", inputmode: "numeric", autocomplete: "off", hint: "Optional; alone for a PIN reader." })),
    decoded,
    h("fieldset", { class: "subform panel" }, h("legend", {}, "Or from facility code and card number"),
      h("div", { class: "form-grid cols" },
        field(p, "format", "Format", { kind: "select", options: FORMATS.map((f) => ({ value: f.name, label: `${f.name} (${f.bits} bits)` })) }),
        field(p, "facility", "Facility code", { type: "number", min: 0, inputmode: "numeric" }),
        field(p, "number", "Card number", { type: "number", min: 0, inputmode: "numeric" })),
      button("Fill card id", "simulate-fill", () => {
        const el = form.elements;
        try {
          if (el.facility.value === "" || el.number.value === "") throw new Error("Enter the facility code and the card number.");
          const r = encode(el.format.value, Number(el.facility.value), Number(el.number.value));
          el.cardId.value = r.cardId;
          el.nbBits.value = String(r.nbBits);
          check(form, []);
          showDecoded();
        } catch (e) {
          check(form, [{ field: "facility", detail: e.message }]);
        }
      }, { kind: "btn-small" })),
    h("div", { class: "form-actions actions" }, button("Present", "simulate-submit", null, { type: "submit", kind: "btn-primary" })),
    h("p", {}, "Decision: ", result));
  const showDecoded = () => {
    const card = form.elements.cardId.value.trim().toLowerCase();
    const bits = Number(form.elements.nbBits.value);
    decoded.textContent = card ? (checkCardId(card, bits) || describe(card, bits)) : "";
  };
  form.elements.cardId.addEventListener("input", showDecoded);
  form.elements.nbBits.addEventListener("input", showDecoded);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const el = form.elements;
    const problems = [];
    const [kind, tid] = el.target.value.split(":");
    const content = {};
    if (!tid) problems.push({ field: "target", detail: "Choose a door or a reader." });
    else content[kind === "door" ? "door_id" : "reader_id"] = Number(tid);
    const card = el.cardId.value.trim().toLowerCase();
    const pin = el.pin.value;
    if (card) {
      const bits = Number(el.nbBits.value);
      const why = checkCardId(card, bits);
      if (why) problems.push({ field: /bits/.test(why) && !/bytes/.test(why) ? "nbBits" : "cardId", detail: why });
      content.card_id = card;
      content.nb_bits = bits;
    }
    if (pin) {
      if (!/^[0-9]{1,12}$/.test(pin)) problems.push({ field: "pin", detail: "Digits only, at most 12." });
      content.pin = pin;
    }
    if (!card && !pin) problems.push({ field: "cardId", detail: "Enter a card id, a PIN, or both." });
    if (!check(form, problems)) return;
    result.textContent = "…";
    delete result.dataset.granted;
    const r = await attempt(form, () => ctx.api.call("reader.simulate", content));
    if (!r.ok) {
      result.textContent = `error: ${r.error.message}`;
      result.className = "decision badge badge-bad";
      return;
    }
    const v = r.value || {};
    result.dataset.granted = String(!!v.granted);
    result.dataset.reason = v.reason ?? "";
    result.className = v.granted ? "decision badge badge-ok" : "decision badge badge-bad";
    result.textContent = v.granted ? `granted (${v.reason})` : `denied: ${v.reason}`;
  });
  return form;
}

async function renderList(view, ctx) {
  loading(view);
  const [aps, doors] = await Promise.all([readList(ctx.api, "access_point", "access_point_id"), readOptional(ctx.api, "door", "door_id")]);
  const doorIndex = byId(doors);
  let present = null;
  if (isAdmin(ctx)) {
    present = section("Present card", "simulate", notice("Simulates a read at a reader: the access engine decides and the decision is logged like a real one."),
      presentForm(ctx, doors, aps, null));
  }
  fill(view, 
    header("Readers", manages(ctx) ? button("New reader", "readers-new", () => ctx.navigate("#/readers/new"), { kind: "btn-primary", edit: true }) : null),
    dataTable([
      { key: "alias", label: "Reader", render: (a) => link(`#/readers/${a.id}`, a.attributes.alias || `#${a.id}`, `reader-link-${a.id}`) },
      { key: "module", label: "Controller module", render: (a) => a.attributes["controller-module"] },
      { key: "door", label: "Door", render: (a) => {
        const d = relId(a, "door");
        return d ? link(`#/doors/${d}`, doorIndex.get(d)?.attributes.alias ?? `#${d}`) : "—";
      } },
      { key: "config", label: "Configuration", render: (a) => h("code", {}, configText(a.attributes)) },
      { key: "actions", label: "Actions", render: (a) => h("span", { class: "row-actions actions" },
        present ? button("Present card", `reader-present-${a.id}`, () => {
          const sel = present.querySelector("#simulate-target");
          sel.value = relId(a, "door") ? `door:${relId(a, "door")}` : `reader:${a.id}`;
          present.querySelector("#simulate-cardId").focus();
        }, { kind: "btn-small" }) : null,
        manages(ctx) ? button("Edit", `reader-edit-${a.id}`, () => ctx.navigate(`#/readers/${a.id}`), { edit: true, kind: "btn-small" }) : null,
        manages(ctx) ? button("Delete", `reader-delete-${a.id}`, async () => {
          if (await remove(ctx.api, `reader ${a.attributes.alias}`, "access_point.delete", { access_point_id: a.id })) renderList(view, ctx);
        }, { edit: true, kind: "btn-small btn-danger" }) : null) },
    ], aps, { caption: "Readers (access points)", testid: "readers-table" }),
    present);
}

async function renderForm(view, ctx, id) {
  loading(view);
  const api = ctx.api;
  const aps = await readList(api, "access_point", "access_point_id");
  const creating = id === null;
  const a = creating ? { attributes: { "controller-module": "simulator" } } : aps.find((x) => x.id === id);
  if (!a) throw new Error(`There is no reader ${id}.`);
  const editable = manages(ctx);
  const module = a.attributes["controller-module"];
  const modules = MODULES.some((m) => m.value === module) ? MODULES : [...MODULES, { value: module, label: module }];
  const p = "reader";
  const form = h("form", { class: "form", "data-testid": "reader-form", novalidate: true },
    h("div", { class: "form-grid cols" },
      field(p, "alias", "Name", { value: a.attributes.alias ?? "", required: true }),
      field(p, "description", "Description", { value: a.attributes.description ?? "" }),
      field(p, "controller-module", "Controller module", { kind: "select", options: modules, value: module })),
    field(p, "config", "Configuration (JSON object)", {
      kind: "textarea", rows: 4, spellcheck: "false", value: configText(a.attributes),
      placeholder: '{"chip": "gpiochip0", "d0": 17, "d1": 18, "mode": "SIMPLE_WIEGAND"}',
      hint: "Readable by viewers: put no secret here. Empty: no configuration.",
    }),
    editable ? h("div", { class: "form-actions actions" },
      button(creating ? "Create" : "Save", "reader-save", null, { type: "submit", kind: "btn-primary", edit: true }),
      button("Cancel", "reader-cancel", () => ctx.navigate("#/readers"))) : null);
  if (!editable) readOnly(form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const el = form.elements;
    const problems = [];
    const attrs = { alias: el.alias.value.trim(), description: el.description.value, "controller-module": el["controller-module"].value };
    if (!attrs.alias) problems.push({ field: "alias", detail: "A name is required." });
    const raw = el.config.value.trim();
    if (raw) {
      try {
        const v = JSON.parse(raw);
        if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
        attrs.config = v;
      } catch {
        problems.push({ field: "config", detail: "Config must be a JSON object." });
      }
    } else {
      attrs.config = {};
    }
    if (!check(form, problems)) return;
    const r = creating
      ? await attempt(form, () => api.call("access_point.create", { attributes: attrs }), `Created reader ${attrs.alias}.`)
      : await attempt(form, () => api.call("access_point.update", { access_point_id: id, attributes: attrs }), `Saved reader ${attrs.alias}.`);
    if (r.ok) ctx.navigate("#/readers");
  });
  fill(view, 
    header(creating ? "New reader" : `Reader ${a.attributes.alias}`,
      !creating && editable ? button("Delete", "reader-delete", async () => {
        if (await remove(api, `reader ${a.attributes.alias}`, "access_point.delete", { access_point_id: id })) ctx.navigate("#/readers");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/readers", "All readers", "readers-back")),
    editable ? null : notice("Read only: managers and above change readers."),
    form);
}

export default {
  id: "readers",
  title: "Readers",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "readers-page");
    const [first] = ctx.params;
    const p = first === "new" ? renderForm(view, ctx, null) : first ? renderForm(view, ctx, Number(first)) : renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
