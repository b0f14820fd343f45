// app.js — the dashboard's entry point: login, the navigation, the hash router
// ("#/live", "#/people/12" → page "people", params ["12"]) and the connection banner.
//
// A page module: export default { id, title, minRank, nav, render(root, ctx) → cleanup? }.
// ctx = { api, me: {user_id, username, rank}, navigate(hash), params }.

import { Api, Status } from "./api.js";
import { h, clear, toast, RANK_NAMES } from "./ui.js";
import live from "./pages/live.js";
import audit from "./pages/audit.js";
import account from "./pages/account.js";

const api = new Api();
let me = null;
let pages = [live, audit];
const tail = [account];
let cleanup = null;
let loginShown = false; // the login page is on screen
let instanceName = "gatehouse";

const root = document.getElementById("app");

async function loadManagePages() {
  try {
    const mod = await import("./pages/manage/index.js");
    return Array.isArray(mod.default) ? mod.default.filter((p) => p && p.id && typeof p.render === "function") : [];
  } catch (e) {
    console.warn("management pages not available:", e.message);
    return [];
  }
}

function allPages() {
  return [...pages, ...tail];
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function visible(p) {
  return me && me.rank >= (p.minRank ?? 0);
}

// ---- connection banner ----

const banner = h("div", { class: "banner", role: "status", "aria-live": "assertive", "data-testid": "conn-banner", hidden: true });
let bannerTimer = null;

function showBanner(kind, text, retry = false) {
  clearTimeout(bannerTimer);
  clear(banner);
  banner.className = `banner banner-${kind}`;
  banner.dataset.state = kind;
  banner.append(h("span", { class: "banner-icon", "aria-hidden": "true" }, kind === "down" ? "⚠" : "✔"), h("span", {}, text));
  if (retry) banner.append(h("button", { type: "button", class: "btn btn-small", "data-testid": "conn-retry", onclick: () => api.retryNow() }, "Retry now"));
  banner.hidden = false;
}

api.on("connection", (c) => {
  // The server was unreachable when the page loaded and a kept token was accepted later.
  if (c.state === "ready" && !me && api.me && loginShown) {
    me = api.me;
    start();
    return;
  }
  if (c.state === "down") {
    showBanner("down", `Connection lost. Retrying in ${Math.max(1, Math.round(c.retryIn / 1000))} s (attempt ${c.attempt}).`, true);
  }
});
api.on("reconnected", () => {
  showBanner("ok", "Reconnected.");
  bannerTimer = setTimeout(() => { banner.hidden = true; }, 4000);
});
api.on("session_closed", (c) => {
  me = null;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  showLogin(c?.reason || "Your session was closed.");
});

// ---- login ----

function showLogin(reason = "") {
  loginShown = true;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  document.title = `Log in — ${instanceName}`;
  clear(root);
  const msg = h("p", { class: "login-message", role: "alert", "aria-live": "assertive", "data-testid": "login-error" }, reason);
  msg.hidden = !reason;
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true, "data-testid": "login-username" });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "login-password" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "login-submit" }, "Log in");
  const form = h("form", { class: "login-form", "data-testid": "login-form" },
    h("h1", {}, instanceName),
    msg,
    h("div", { class: "field" }, h("label", { for: "login-username" }, "Username"), user),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), pass),
    submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    msg.hidden = true;
    try {
      me = await api.login(user.value.trim(), pass.value);
      pass.value = "";
      await start();
    } catch (err) {
      msg.textContent = loginMessage(err);
      msg.hidden = false;
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  root.append(h("main", { class: "login", id: "main" }, form));
  user.focus();
}

function loginMessage(err) {
  switch (err.status_code) {
    case Status.LOGIN_FAILED: return "Wrong username or password.";
    case Status.RATE_LIMITED: return `Too many failed attempts. ${err.content?.retry_after ? `Try again in ${Math.ceil(err.content.retry_after)} s.` : "Try again later."}`;
    case Status.GENERAL_FAILURE: return err.status_string || "This account cannot log in.";
    case Status.CONNECTION_LOST: return "The server cannot be reached. Retrying…";
    default: return err.message;
  }
}

// ---- initial password notice ----
// whoami's initial_password is true while the caller still has the password generated on
// first start (the server also keeps it in <data>/initial-admin-password until it is changed).

const pwNotice = h("div", { class: "banner banner-warn", role: "alert", "data-testid": "initial-password-notice", hidden: true },
  h("span", { class: "banner-icon", "aria-hidden": "true" }, "⚠"),
  h("span", {}, "You are still using the generated initial password. "),
  h("a", { href: "#/account", "data-testid": "initial-password-change" }, "Change it now"));

function updatePwNotice() {
  pwNotice.hidden = !(me && me.initial_password);
}

document.addEventListener("gatehouse:password-changed", () => {
  if (me) me.initial_password = false;
  updatePwNotice();
});

// ---- shell ----

let shell = null;

function buildShell() {
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    h("ul", {}, allPages().filter((p) => p.nav !== false && visible(p)).map((p) =>
      h("li", {}, h("a", { href: `#/${p.id}`, "data-testid": `nav-${p.id}`, "data-page": p.id }, p.title)))));
  const logout = h("button", { type: "button", class: "btn btn-small", "data-testid": "logout", onclick: doLogout }, "Log out");
  const menu = h("button", { type: "button", class: "btn btn-small menu-toggle", "aria-expanded": "false", "aria-controls": "nav", "data-testid": "menu-toggle",
    onclick: () => { const o = shell.classList.toggle("nav-open"); menu.setAttribute("aria-expanded", String(o)); } }, "☰ Menu");
  nav.id = "nav";
  const main = h("main", { id: "main", class: "content", tabindex: "-1", "data-testid": "page" });
  shell = h("div", { class: "shell" },
    h("a", { class: "skip", href: "#main", onclick: (e) => { e.preventDefault(); main.focus(); } }, "Skip to content"),
    h("header", { class: "topbar" },
      h("span", { class: "brand" }, instanceName),
      menu,
      h("span", { class: "whoami", "data-testid": "whoami" }, `${me.username} · ${RANK_NAMES[me.rank] ?? me.rank}`),
      logout),
    h("div", { class: "banners" }, pwNotice, banner),
    nav,
    main);
  clear(root);
  root.append(shell);
  updatePwNotice();
  return main;
}

async function doLogout() {
  try {
    await api.logout();
  } catch (e) {
    toast(e.message, "error");
  }
  me = null;
  showLogin("You are logged out.");
}

function route() {
  if (!me || !shell) return;
  const parts = (location.hash.replace(/^#\/?/, "") || "live").split("/").map(decodeURIComponent);
  let page = allPages().find((p) => p.id === parts[0]);
  if (!page || !visible(page)) {
    if (location.hash !== "#/live") { location.replace("#/live"); return; }
    page = live;
  }
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  shell.classList.remove("nav-open");
  for (const a of shell.querySelectorAll(".nav a")) {
    if (a.dataset.page === page.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = shell.querySelector("#main");
  clear(main);
  main.dataset.page = page.id;
  document.title = `${page.title} — ${instanceName}`;
  const ctx = { api, me, navigate, params: parts.slice(1) };
  try {
    const c = page.render(main, ctx);
    if (typeof c === "function") cleanup = c;
    else if (c && typeof c.then === "function") c.then((f) => { if (typeof f === "function") cleanup = f; }, (e) => { console.error(e); toast(e.message, "error"); });
  } catch (e) {
    console.error(e);
    main.append(h("p", { class: "error" }, `This page failed: ${e.message}`));
  }
}

async function start() {
  loginShown = false;
  try {
    const ov = await api.call("system_overview", {});
    if (ov?.instance_name) instanceName = ov.instance_name;
  } catch { /* the name is cosmetic */ }
  buildShell();
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.replace("#/live");
  route();
}

window.addEventListener("hashchange", route);

async function boot() {
  const manage = await loadManagePages();
  pages = [live, ...manage, audit];
  try {
    me = await api.resume();
  } catch (e) {
    me = null;
  }
  if (me) await start();
  else if (!root.querySelector(".login")) showLogin(api.state === "down" ? "The server cannot be reached. Retrying…" : "");
}

boot();
