// ui.js — small DOM helpers shared by every page: element creation, toasts, form errors,
// confirmation dialogs and accessible tables.

/** Ranks (Leosac's). */
export const RANK = Object.freeze({ user: 0, viewer: 1, manager: 2, supervisor: 3, administrator: 4 });
/** RANK_NAMES[rank] is the rank's name. */
export const RANK_NAMES = ["user", "viewer", "manager", "supervisor", "administrator"];

/**
 * h creates an element. attrs: class, on<event> (function), aria-*, data-*, for, value, checked,
 * disabled, hidden… (true/false toggles boolean attributes; null/undefined/false are skipped).
 * Children: strings, numbers, nodes, arrays of them; null/undefined/false are skipped.
 * value is set after the children are added (so it selects a <select>'s option).
 * An "svg" namespace is used for svg tags and their children created with h("svg:…").
 */
export function h(tag, attrs = {}, ...children) {
  let el;
  if (tag.startsWith("svg:")) el = document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4));
  else if (tag === "svg") el = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  else el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === "class" || k === "className") {
      el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    } else if (k === "value" && "value" in el) {
      value = v; // set after the children: a <select>'s options must exist first
    } else if (k === "checked" || k === "selected") {
      el[k] = !!v;
    } else if (k === "style") {
      continue; // inline styles are refused by the Content-Security-Policy; use classes
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** clear removes all children of el and returns it. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function toastRegion() {
  let r = document.getElementById("toasts");
  if (!r) {
    r = h("div", { id: "toasts", class: "toasts", "aria-live": "polite", role: "status", "data-testid": "toasts" });
    document.body.appendChild(r);
  }
  return r;
}

/** toast shows a short message ("ok" or "error") in an aria-live region; errors stay longer. */
export function toast(message, kind = "ok") {
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null, "data-testid": `toast-${kind}` },
    h("span", { class: "toast-icon", "aria-hidden": "true" }, kind === "error" ? "✖" : "✔"),
    h("span", { class: "toast-text" }, message),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: () => t.remove() }, "×"));
  toastRegion().appendChild(t);
  setTimeout(() => t.remove(), kind === "error" ? 10000 : 4000);
  return t;
}

/**
 * showErrors clears the form's old errors; for each err.errors[i] whose source.pointer is
 * "data/attributes/<field>" it shows the detail next to form.elements[field] (aria-invalid,
 * aria-describedby); anything not placed (or an error without errors[]) is toasted.
 */
export function showErrors(form, err) {
  if (form) {
    for (const e of form.querySelectorAll(".field-error")) e.remove();
    for (const e of form.querySelectorAll("[aria-invalid]")) {
      e.removeAttribute("aria-invalid");
      e.removeAttribute("aria-describedby");
    }
  }
  if (!err) return;
  const rest = [];
  const list = Array.isArray(err.errors) ? err.errors : [];
  for (const e of list) {
    const ptr = e?.source?.pointer || "";
    const m = /^\/?data\/attributes\/(.+)$/.exec(ptr);
    const field = m && form ? form.elements.namedItem(m[1]) : null;
    if (field && field.insertAdjacentElement) {
      const id = `err-${m[1]}-${Math.random().toString(36).slice(2, 8)}`;
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", id);
      field.insertAdjacentElement("afterend", h("span", { class: "field-error", id, role: "alert", "data-testid": `error-${m[1]}` }, e.detail || "Invalid value."));
    } else {
      rest.push(e?.detail || "Invalid value.");
    }
  }
  if (list.length === 0) toast(err.message || String(err), "error");
  else if (rest.length) toast(rest.join(" "), "error");
}

/** confirmDialog asks a yes/no question in a modal dialog; resolves true when confirmed. */
export function confirmDialog(message, { confirm = "Confirm", cancel = "Cancel", danger = false } = {}) {
  return new Promise((resolve) => {
    const prev = document.activeElement;
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      if (prev && prev.focus) prev.focus();
      resolve(v);
    };
    const ok = h("button", { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary", "data-testid": "confirm-ok", onclick: () => finish(true) }, confirm);
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": "confirm-msg", "data-testid": "confirm-dialog" },
      h("p", { id: "confirm-msg" }, message),
      h("div", { class: "dialog-actions" },
        h("button", { type: "button", class: "btn", "data-testid": "confirm-cancel", onclick: () => finish(false) }, cancel),
        ok));
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); finish(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
    ok.focus();
  });
}

/**
 * dataTable renders rows as an accessible table. columns: [{key, label, render?(row) → node|string}].
 * An empty list shows "Nothing to show." in one cell.
 */
export function dataTable(columns, rows, { caption = null, testid = null } = {}) {
  const body = h("tbody", {});
  if (!rows || rows.length === 0) {
    body.appendChild(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "Nothing to show.")));
  } else {
    for (const r of rows) {
      body.appendChild(h("tr", {}, columns.map((c) => {
        const v = c.render ? c.render(r) : r[c.key];
        return h("td", { "data-label": c.label }, v === null || v === undefined ? "" : v);
      })));
    }
  }
  return h("div", { class: "table-wrap" },
    h("table", { class: "table", "data-testid": testid },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      body));
}

/** formatTime formats an RFC 3339 time in the browser's locale (date and time). */
export function formatTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

/** field wraps an input with its <label for>; returns the wrapper. */
export function field(label, input, hint = null) {
  if (!input.id) input.id = `f-${input.name || "x"}-${Math.random().toString(36).slice(2, 8)}`;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "hint" }, hint) : null);
}
