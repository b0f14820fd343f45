// credentials.js — the Credentials page: RFID cards (raw card id "aa:bb:cc:dd" + number of bits,
// shown decoded as facility code / card number for the standard Wiegand formats), PIN codes
// (entered, never shown: "***") and card + PIN; their owner and validity.
//
// Routes: #/credentials, #/credentials/new, #/credentials/new/<owner id>, #/credentials/<id>.
// Rights: viewers read; managers and above create, change and delete.

import {
  h, fill, mount, loading, failed, header, button, link, field, control, labelled, check, attempt, remove,
  readList, readOne, readOptional, relId, byId, userOptions, validityText, validNow, validityFields,
  validityValue, dataTable, notice, readOnly, manages,
} from "./common.js";
import { FORMATS, checkCardId, describe, encode } from "./wiegand.js";

const TYPES = [
  { value: "rfid-card", label: "Card" },
  { value: "pin-code", label: "PIN code" },
  { value: "rfid-card-pin", label: "Card + PIN" },
];
const typeLabel = (t) => TYPES.find((x) => x.value === t)?.label ?? t;
const hasCard = (t) => t === "rfid-card" || t === "rfid-card-pin";
const hasPIN = (t) => t === "pin-code" || t === "rfid-card-pin";

/** cardText is "95:01:f4:80 (26 bits)". */
function cardText(a) {
  return a["card-id"] ? `${a["card-id"]} (${a["nb-bits"]} bits)` : "";
}

async function renderList(view, ctx) {
  loading(view);
  const [creds, users] = await Promise.all([readList(ctx.api, "credential", "credential_id"), readOptional(ctx.api, "user", "user_id")]);
  const owners = byId(users);
  const results = h("div", { "data-testid": "credentials-results" });
  const filter = control("credentials", "filter", { type: "search", placeholder: "alias, card id or owner", autocomplete: "off" });
  const show = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = creds.filter((c) => !q || [c.attributes.alias, c.attributes["card-id"], owners.get(relId(c, "owner"))?.attributes.username]
      .some((s) => s && String(s).toLowerCase().includes(q)));
    fill(results, dataTable([
      { key: "alias", label: "Alias", render: (c) => link(`#/credentials/${c.id}`, c.attributes.alias || `#${c.id}`, `credential-link-${c.id}`) },
      { key: "type", label: "Type", render: (c) => typeLabel(c.type) },
      { key: "owner", label: "Owner", render: (c) => {
        const o = relId(c, "owner");
        return o ? link(`#/people/${o}`, owners.get(o)?.attributes.username ?? `#${o}`) : "—";
      } },
      { key: "card", label: "Card (raw)", render: (c) => h("code", {}, cardText(c.attributes)) },
      { key: "decoded", label: "Decoded", render: (c) => c.attributes["card-id"] ? describe(c.attributes["card-id"], c.attributes["nb-bits"]) : "" },
      { key: "pin", label: "PIN", render: (c) => hasPIN(c.type) ? "***" : "" },
      { key: "validity", label: "Validity", render: (c) => h("span", { class: validNow(c.attributes) ? "badge badge-ok" : "badge badge-warn" }, validityText(c.attributes)) },
      { key: "actions", label: "Actions", render: (c) => manages(ctx) ? h("span", { class: "row-actions actions" },
        button("Edit", `credential-edit-${c.id}`, () => ctx.navigate(`#/credentials/${c.id}`), { edit: true, kind: "btn-small" }),
        button("Delete", `credential-delete-${c.id}`, async () => {
          if (await remove(ctx.api, `credential ${c.attributes.alias || c.id}`, "credential.delete", { credential_id: c.id })) renderList(view, ctx);
        }, { edit: true, kind: "btn-small btn-danger" })) : "" },
    ], rows, { caption: "Credentials", testid: "credentials-table" }));
  };
  filter.addEventListener("input", show);
  fill(view, 
    header("Credentials", manages(ctx) ? button("New credential", "credentials-new", () => ctx.navigate("#/credentials/new"), { kind: "btn-primary", edit: true }) : null),
    h("form", { class: "search", role: "search", onsubmit: (e) => e.preventDefault() }, labelled("Filter", filter)),
    results);
  show();
}

/** cardHelper computes a card id from a Wiegand format, facility code and card number. */
function cardHelper(form, onFill) {
  const p = "card-helper";
  const box = h("fieldset", { class: "subform panel", "data-testid": "card-helper" },
    h("legend", {}, "From facility code and card number"),
    h("div", { class: "form-grid cols" },
      field(p, "format", "Format", { kind: "select", options: FORMATS.map((f) => ({ value: f.name, label: `${f.name} (${f.bits} bits)` })) }),
      field(p, "facility", "Facility code", { type: "number", min: 0, inputmode: "numeric" }),
      field(p, "number", "Card number", { type: "number", min: 0, inputmode: "numeric" })),
    button("Fill card id", "card-helper-fill", () => {
      const fmt = box.querySelector(`#${p}-format`).value;
      const fac = box.querySelector(`#${p}-facility`);
      const num = box.querySelector(`#${p}-number`);
      const problems = [];
      if (fac.value === "") problems.push({ field: "card-helper-facility", detail: "Enter the facility code." });
      if (num.value === "") problems.push({ field: "card-helper-number", detail: "Enter the card number." });
      if (problems.length === 0) {
        try {
          const r = encode(fmt, Number(fac.value), Number(num.value));
          form.elements.cardId.value = r.cardId;
          form.elements.nbBits.value = String(r.nbBits);
          check(form, []);
          onFill();
          return;
        } catch (e) {
          problems.push({ field: /card number/i.test(e.message) ? "card-helper-number" : "card-helper-facility", detail: e.message });
        }
      }
      check(form, problems);
    }, { kind: "btn-small" }));
  // The helper's inputs are named so that check() can place their errors.
  box.querySelector(`#${p}-facility`).name = "card-helper-facility";
  box.querySelector(`#${p}-number`).name = "card-helper-number";
  return box;
}

async function renderForm(view, ctx, id, ownerId) {
  loading(view);
  const api = ctx.api;
  const creating = id === null;
  const [c, users] = await Promise.all([
    creating ? { type: "rfid-card", attributes: { "validity-enabled": true } } : readOne(api, "credential", "credential_id", id),
    readOptional(api, "user", "user_id"),
  ]);
  const a = c.attributes;
  const editable = manages(ctx);
  const p = "credential";
  const decoded = h("output", { class: "decoded", "data-testid": "credential-decoded", "aria-live": "polite" });
  const cardBox = h("fieldset", { class: "subform panel", "data-testid": "credential-card" },
    h("legend", {}, "Card"),
    h("div", { class: "form-grid cols" },
      field(p, "cardId", "Card id (raw hex)", { value: a["card-id"] ?? "", placeholder: "aa:bb:cc:dd", autocomplete: "off", spellcheck: "false",
        hint: "The bits as read, parity included, as hex bytes separated by ':'." }),
      field(p, "nbBits", "Number of bits", { type: "number", min: 1, max: 128, value: a["nb-bits"] ?? 26, inputmode: "numeric" })),
    h("p", {}, "Decoded: ", decoded));
  const pinBox = h("fieldset", { class: "subform panel", "data-testid": "credential-pin" },
    h("legend", {}, "PIN"),
    field(p, "code", "PIN code", { type: "password", inputmode: "numeric", autocomplete: "off",
      placeholder: creating ? "" : "*** (unchanged)", hint: creating ? "4 to 12 digits." : "Leave empty to keep the current PIN." }));
  const form = h("form", { class: "form", "data-testid": "credential-form", novalidate: true });
  const fields = h("div", {},
    h("div", { class: "form-grid cols" },
      field(p, "credential-type", "Type", { kind: "select", options: TYPES, value: c.type, disabled: !creating }),
      field(p, "alias", "Alias", { value: a.alias ?? "", maxlength: 50 }),
      field(p, "owner_id", "Owner", { kind: "select", options: userOptions(users, "— nobody —"), value: ownerId ?? relId(c, "owner") }),
      field(p, "description", "Description", { value: a.description ?? "" }),
      validityFields(p, a, true, "Empty: no limit. Times are local.")),
    cardBox, editable ? cardHelper(form, () => updateDecoded()) : null, pinBox);
  fill(form, fields, editable ? h("div", { class: "form-actions actions" },
    button(creating ? "Create" : "Save", "credential-save", null, { type: "submit", kind: "btn-primary", edit: true }),
    button("Cancel", "credential-cancel", () => history.back())) : null);
  if (!editable) readOnly(form);
  const el = form.elements;
  const updateDecoded = () => {
    const card = el.cardId.value.trim().toLowerCase();
    const bits = Number(el.nbBits.value);
    decoded.textContent = card ? (checkCardId(card, bits) || describe(card, bits)) : "—";
  };
  const showParts = () => {
    const t = el["credential-type"].value;
    cardBox.hidden = !hasCard(t);
    const helper = form.querySelector('[data-testid="card-helper"]');
    if (helper) helper.hidden = !hasCard(t);
    pinBox.hidden = !hasPIN(t);
  };
  el.cardId.addEventListener("input", updateDecoded);
  el.nbBits.addEventListener("input", updateDecoded);
  el["credential-type"].addEventListener("change", showParts);
  updateDecoded();
  showParts();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const type = el["credential-type"].value;
    const problems = [];
    const attrs = { alias: el.alias.value.trim(), description: el.description.value, owner_id: Number(el.owner_id.value) || 0 };
    if ([...attrs.alias].length > 50) problems.push({ field: "alias", detail: "Alias must not be longer than 50." });
    if (hasCard(type)) {
      const card = el.cardId.value.trim().toLowerCase();
      const bits = Number(el.nbBits.value);
      if (!Number.isInteger(bits) || bits < 1 || bits > 128) problems.push({ field: "nbBits", detail: "The number of bits must be 1 to 128." });
      else if (!card) problems.push({ field: "cardId", detail: "Enter the card id." });
      else {
        const why = checkCardId(card, bits);
        if (why) problems.push({ field: "cardId", detail: why });
      }
      attrs["card-id"] = card;
      attrs["nb-bits"] = bits;
    }
    if (hasPIN(type)) {
      const code = el.code.value;
      if (code || creating) {
        if (!/^[0-9]{4,12}$/.test(code)) problems.push({ field: "code", detail: "The PIN must be 4 to 12 digits." });
        attrs.code = code;
      }
    }
    validityValue(form, attrs, problems, a);
    if (!check(form, problems)) return;
    const what = attrs.alias || typeLabel(type).toLowerCase();
    const r = creating
      ? await attempt(form, () => api.call("credential.create", { "credential-type": type, attributes: attrs }), `Created ${what}.`)
      : await attempt(form, () => api.call("credential.update", { credential_id: c.id, attributes: attrs }), `Saved ${what}.`);
    if (!r.ok) return;
    el.code.value = "";
    const owner = attrs.owner_id;
    ctx.navigate(owner ? `#/people/${owner}` : "#/credentials");
  });

  fill(view, 
    header(creating ? "New credential" : `Credential ${a.alias || `#${c.id}`}`,
      !creating && editable ? button("Delete", "credential-delete", async () => {
        if (await remove(api, `credential ${a.alias || c.id}`, "credential.delete", { credential_id: c.id })) ctx.navigate("#/credentials");
      }, { edit: true, kind: "btn-danger" }) : null,
      link("#/credentials", "All credentials", "credentials-back")),
    editable ? null : notice("Read only: managers and above change credentials."),
    form);
}

export default {
  id: "credentials",
  title: "Credentials",
  minRank: 1,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "credentials-page");
    const [first, second] = ctx.params;
    let p;
    if (first === "new") p = renderForm(view, ctx, null, second ? Number(second) : null);
    else if (first) p = renderForm(view, ctx, Number(first), null);
    else p = renderList(view, ctx);
    p.catch((e) => failed(view, e));
  },
};
