// common.js — helpers shared by the management pages: rights, form controls with their labels,
// client-side validation shown like the server's, calls that report success or the server's
// error, dates, and JSON:API relationships. Built only on the contracted exports of ui.js and
// api.js (h, toast, showErrors, confirmDialog, dataTable, ApiError).

import { h, toast, showErrors, confirmDialog, dataTable } from "../../ui.js";
import { ApiError } from "../../api.js";

export { h, toast, showErrors, confirmDialog, dataTable, ApiError };

/** Rank names by rank (Leosac's numbering). */
export const RANK_NAMES = ["user", "viewer", "manager", "supervisor", "administrator"];
/** Ranks that matter to the pages. */
export const VIEWER = 1, MANAGER = 2, ADMIN = 4;
/** Status codes the pages react to. */
export const INVALID_CALL = 5, PERMISSION_DENIED = 2, MODEL_EXCEPTION = 11;
/** Day names of timeframes: 0 = Monday … 6 = Sunday. */
export const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/** manages reports whether the caller may change site resources (managers and above). */
export const manages = (ctx) => ctx.me.rank >= MANAGER;
/** isAdmin reports whether the caller is an administrator. */
export const isAdmin = (ctx) => ctx.me.rank >= ADMIN;

/** clear removes every child of el and returns it. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** fill replaces el's children by children (nodes, strings, arrays; null and false skipped). */
export function fill(el, ...children) {
  clear(el);
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** slug turns a field name into a piece of an element id. */
function slug(s) {
  return String(s).replace(/[^A-Za-z0-9_-]+/g, "-");
}

/**
 * control creates a form control named name (the name the server's error pointers use, e.g.
 * "username", "cardId", "timeframes/0/start-time") with the id and data-testid
 * "<prefix>-<name>". kind: "input" (default), "select" (opts.options = [{value, label}]) or
 * "textarea"; opts.idName replaces name in the id. Other opts become attributes (type, value,
 * required, checked, disabled…).
 */
export function control(prefix, name, opts = {}) {
  const { kind = "input", options = [], value, idName, ...attrs } = opts;
  const id = `${prefix}-${slug(idName ?? name)}`;
  const el = h(kind, { id, name, "data-testid": id, ...attrs },
    kind === "select" ? options.map((o) => h("option", { value: String(o.value) }, o.label)) : null);
  if (value !== undefined && value !== null) {
    if (kind === "select") el.value = String(value);
    else if (attrs.type === "checkbox") el.checked = !!value;
    else el.value = String(value);
  }
  return el;
}

/** labelled returns a .field wrapper: <label for> + the control (+ an optional hint). */
export function labelled(label, el, hint = null) {
  const hintEl = hint ? h("small", { class: "hint", id: `${el.id}-hint` }, hint) : null;
  if (hintEl) el.setAttribute("aria-describedby", hintEl.id);
  if (el.type === "checkbox") {
    return h("div", { class: "field-check" }, h("label", { for: el.id }, el, " ", label), hintEl);
  }
  return h("div", { class: "field" }, h("label", { for: el.id }, label), el, hintEl);
}

/** field is labelled(label, control(prefix, name, opts), opts.hint). */
export function field(prefix, name, label, opts = {}) {
  const { hint = null, ...rest } = opts;
  return labelled(label, control(prefix, name, rest), hint);
}

/**
 * fieldErrors builds a MODEL_EXCEPTION-shaped ApiError from [{field, detail}], so that
 * client-side validation is shown exactly like the server's (next to the field).
 */
export function fieldErrors(list) {
  return new ApiError("", MODEL_EXCEPTION, "", {
    errors: list.map((e) => ({ detail: e.detail, source: { pointer: `data/attributes/${e.field}` } })),
  });
}

/**
 * check validates before sending: problems is [{field, detail}]. With problems it shows them
 * next to their fields, focuses the first and returns false; otherwise it clears old errors
 * and returns true.
 */
export function check(form, problems) {
  showErrors(form, null);
  if (problems.length === 0) return true;
  showErrors(form, fieldErrors(problems));
  const first = form.elements.namedItem(problems[0].field);
  if (first && first.focus) first.focus();
  return false;
}

/**
 * attempt runs fn (an API call) and reports the outcome: on success it toasts okMessage (when
 * given) and resolves {ok: true, value}; on failure it shows the server's error next to the
 * fields of form (or toasts it) and resolves {ok: false, error}. Buttons of the form are
 * disabled meanwhile.
 */
export async function attempt(form, fn, okMessage) {
  const buttons = form ? [...form.querySelectorAll("button")] : [];
  for (const b of buttons) b.disabled = true;
  try {
    const value = await fn();
    if (form) showErrors(form, null);
    if (okMessage) toast(okMessage, "ok");
    return { ok: true, value };
  } catch (error) {
    if (form) showErrors(form, error);
    else toast(errorText(error), "error");
    return { ok: false, error };
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/** errorText is a one-line description of a failed call. */
export function errorText(e) {
  if (e instanceof ApiError && e.status_code === PERMISSION_DENIED) return "You are not allowed to do this.";
  return e?.message || String(e);
}

/** remove asks for confirmation, then calls type with content; resolves true when done. */
export async function remove(api, what, type, content) {
  if (!(await confirmDialog(`Delete ${what}? This cannot be undone.`, { confirm: "Delete", danger: true }))) return false;
  const r = await attempt(null, () => api.call(type, content), `Deleted ${what}.`);
  return r.ok;
}

/** readList reads every resource of a kind the caller may read: "<type>.read" with id 0. */
export async function readList(api, type, idKey) {
  const r = await api.call(`${type}.read`, { [idKey]: 0 });
  return Array.isArray(r?.data) ? r.data : [];
}

/** readOne reads one resource: {"data": …} of "<type>.read". */
export async function readOne(api, type, idKey, id) {
  const r = await api.call(`${type}.read`, { [idKey]: id });
  return r?.data;
}

/** readOptional is readList, but [] when the caller may not read that kind. */
export async function readOptional(api, type, idKey) {
  try {
    return await readList(api, type, idKey);
  } catch (e) {
    if (e instanceof ApiError && e.status_code === PERMISSION_DENIED) return [];
    throw e;
  }
}

/** relIds returns the ids of a to-many relationship ([] when absent). */
export function relIds(obj, name) {
  const d = obj?.relationships?.[name]?.data;
  if (Array.isArray(d)) return d.map((r) => r.id);
  return d ? [d.id] : [];
}

/** relId returns the id of a to-one relationship, 0 when absent. */
export function relId(obj, name) {
  const d = obj?.relationships?.[name]?.data;
  return d && !Array.isArray(d) ? d.id : 0;
}

/** byId indexes resources by id. */
export function byId(list) {
  return new Map(list.map((x) => [x.id, x]));
}

/** userName is "username (First Last)" for a user resource. */
export function userName(u) {
  if (!u) return "";
  const a = u.attributes || {};
  const full = [a.firstname, a.lastname].filter(Boolean).join(" ");
  return full ? `${a.username} (${full})` : a.username;
}

/** formatTime formats an RFC 3339 date in the browser's locale, "" for none. */
export function formatTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

/** toLocalInput turns an RFC 3339 date into the value of a datetime-local input ("" for none). */
export function toLocalInput(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d)) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** fromLocalInput turns a datetime-local value into RFC 3339 UTC, null for empty (unbounded). */
export function fromLocalInput(v) {
  if (!v) return null;
  const d = new Date(v);
  return isNaN(d) ? undefined : d.toISOString();
}

/** validityText describes a validity window: "disabled", "always", "from … until …". */
export function validityText(a) {
  if (!a["validity-enabled"]) return "disabled";
  const from = a["validity-start"], to = a["validity-end"];
  if (!from && !to) return "always";
  const parts = [];
  if (from) parts.push(`from ${formatTime(from)}`);
  if (to) parts.push(`until ${formatTime(to)}`);
  return parts.join(" ");
}

/** validNow reports whether a validity window contains the present. */
export function validNow(a) {
  if (!a["validity-enabled"]) return false;
  const now = Date.now();
  if (a["validity-start"] && now < Date.parse(a["validity-start"])) return false;
  if (a["validity-end"] && now > Date.parse(a["validity-end"])) return false;
  return true;
}

/**
 * validityFields returns the enabled checkbox and the from/until inputs of a validity window,
 * disabled when the caller may not change them.
 */
export function validityFields(prefix, a, editable, hint) {
  return [
    field(prefix, "validity-enabled", "Enabled", { type: "checkbox", value: a["validity-enabled"] ?? true, disabled: !editable }),
    field(prefix, "validity-start", "Valid from", { type: "datetime-local", value: toLocalInput(a["validity-start"]), disabled: !editable, hint }),
    field(prefix, "validity-end", "Valid until", { type: "datetime-local", value: toLocalInput(a["validity-end"]), disabled: !editable }),
  ];
}

/**
 * validityValue reads a validity form into attributes (into) and appends problems: a date that
 * does not parse, or an end before the start. A date left as it was shown keeps its stored value
 * (orig: the resource's attributes), so that seconds the minute-precision input cannot show are
 * not lost.
 */
export function validityValue(form, into, problems, orig = {}) {
  into["validity-enabled"] = form.elements["validity-enabled"].checked;
  const read = (name) => {
    const v = form.elements[name].value;
    return orig[name] && v === toLocalInput(orig[name]) ? orig[name] : fromLocalInput(v);
  };
  const start = read("validity-start");
  const end = read("validity-end");
  if (start === undefined) problems.push({ field: "validity-start", detail: "Not a date." });
  if (end === undefined) problems.push({ field: "validity-end", detail: "Not a date." });
  if (start && end && Date.parse(end) < Date.parse(start)) problems.push({ field: "validity-end", detail: "The validity end is before its start." });
  into["validity-start"] = start ?? null;
  into["validity-end"] = end ?? null;
}

/** button creates a button; edit=true marks it as an editing control (hidden from viewers). */
export function button(label, testid, onclick, { kind = "", edit = false, type = "button", ...attrs } = {}) {
  return h("button", { type, class: `btn ${kind}`.trim(), "data-testid": testid, "data-edit": edit ? "true" : null, onclick, ...attrs }, label);
}

/** link creates an in-app link to a hash route. */
export function link(hash, text, testid = null) {
  return h("a", { href: hash, "data-testid": testid }, text);
}

/** header is a page heading with its actions. */
export function header(title, ...actions) {
  return h("div", { class: "page-header" }, h("h1", {}, title), h("div", { class: "page-actions actions" }, actions));
}

/** section is a titled part of a page. */
export function section(title, testid, ...children) {
  return h("section", { class: "panel", "data-testid": testid, "aria-label": title }, h("h2", {}, title), children);
}

/**
 * mount appends a fresh container to root and returns it. Pages fill this container, so that a
 * slow reply arriving after the user left the page lands in a detached element.
 */
export function mount(root, testid) {
  const view = h("div", { class: "manage", "data-testid": testid });
  root.append(view);
  return view;
}

/** loading shows "Loading…" in view until replaced. */
export function loading(view) {
  fill(view, h("p", { class: "loading", "aria-busy": "true" }, "Loading…"));
}

/** failed shows why a page could not load. */
export function failed(view, e) {
  fill(view, h("p", { class: "error", role: "alert", "data-testid": "page-error" }, `Could not load: ${errorText(e)}`));
}

/** readOnly disables every control of a form (what viewers see). */
export function readOnly(form) {
  for (const c of form.querySelectorAll("input, select, textarea")) c.disabled = true;
}

/** notice is a short message paragraph. */
export function notice(text, testid = null) {
  return h("p", { class: "notice", "data-testid": testid }, text);
}

/**
 * picker edits a list of ids chosen from options ([{value, label}]): a select with an "Add"
 * button and the chosen items, each with a "Remove" button. prefix names the controls
 * ("<prefix>-pick", "<prefix>-add", "<prefix>-remove-<id>"); name (optional) names the select
 * so that the server's errors for that attribute are shown next to it. Returns {el, get()}.
 */
export function picker(prefix, label, options, chosen = [], editable = true, name = null) {
  const ids = [...chosen];
  const labels = new Map(options.map((o) => [Number(o.value), o.label]));
  const list = h("ul", { class: "chips", "data-testid": `${prefix}-list`, "aria-label": label });
  const select = h("select", { id: `${prefix}-pick`, name, "data-testid": `${prefix}-pick` },
    h("option", { value: "" }, "— choose —"),
    options.map((o) => h("option", { value: String(o.value) }, o.label)));
  const draw = () => {
    clear(list);
    if (ids.length === 0) list.append(h("li", { class: "chip-empty" }, "none"));
    for (const id of ids) {
      list.append(h("li", { class: "chip badge badge-info", "data-testid": `${prefix}-item-${id}` },
        h("span", {}, labels.get(id) ?? `#${id}`),
        editable ? h("button", { type: "button", class: "btn btn-small", "data-testid": `${prefix}-remove-${id}`, "data-edit": "true",
          "aria-label": `Remove ${labels.get(id) ?? id}`, onclick: () => { ids.splice(ids.indexOf(id), 1); draw(); } }, "×") : null));
    }
  };
  const add = () => {
    const v = Number(select.value);
    if (v && !ids.includes(v)) ids.push(v);
    select.value = "";
    draw();
    select.focus();
  };
  draw();
  const el = h("div", { class: "field picker" },
    h("label", { for: select.id }, label),
    list,
    editable ? h("div", { class: "picker-add row" }, select,
      h("button", { type: "button", class: "btn btn-small", "data-testid": `${prefix}-add`, "data-edit": "true", onclick: add }, "Add")) : null);
  return { el, get: () => [...ids] };
}

/** ownerOptions lists users as select options, with "— nobody —" first. */
export function userOptions(users, none = null) {
  const opts = users.map((u) => ({ value: u.id, label: userName(u) }));
  return none ? [{ value: 0, label: none }, ...opts] : opts;
}

/** dl renders a description list from [[term, value]]. */
export function dl(pairs) {
  return h("dl", { class: "details" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "")]));
}
