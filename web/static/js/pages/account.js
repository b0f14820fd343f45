// account.js — the caller's own account: password change (password_change), their tokens
// (token.list / token.revoke) and their certificates (cert.list / cert.register / cert.revoke).
// Calls the server does not offer (INVALID_CALL) are shown as "not available".

import { h, clear, toast, showErrors, dataTable, formatTime, confirmDialog, RANK, RANK_NAMES } from "../ui.js";
import { Status } from "../api.js";

function unavailable(section, what) {
  clear(section.body).append(h("p", { class: "hint", "data-testid": `${section.id}-unavailable` }, `${what} are not available on this server.`));
}

function listOf(r, key) {
  if (Array.isArray(r)) return r;
  if (Array.isArray(r?.[key])) return r[key];
  if (Array.isArray(r?.data)) return r.data;
  return [];
}

function section(id, title) {
  const body = h("div", { "data-testid": `${id}-body` });
  const el = h("section", { class: "panel", "aria-labelledby": `${id}-h`, "data-testid": id }, h("h2", { id: `${id}-h` }, title), body);
  return { id, el, body };
}

// short cuts a user agent string to its first 32 characters.
function short(s) {
  return s && s.length > 32 ? `${s.slice(0, 32)}…` : s;
}

// passwordError places password_change's errors on the form's fields: the new password's
// validation (pointer data/attributes/password) and a wrong current password (PERMISSION_DENIED).
function passwordError(err) {
  if (err.status_code === Status.PERMISSION_DENIED) {
    return { errors: [{ detail: "The current password is wrong.", source: { pointer: "data/attributes/current_password" } }] };
  }
  if (err.errors?.length) {
    return { errors: err.errors.map((e) => (e?.source?.pointer === "data/attributes/password"
      ? { ...e, source: { pointer: "data/attributes/new_password" } } : e)), message: err.message };
  }
  return err;
}

export default {
  id: "account",
  title: "My account",
  minRank: RANK.user,
  nav: true,
  render(root, ctx) {
    const { api, me } = ctx;
    let alive = true;

    // ---- password ----
    const cur = h("input", { id: "pw-current", name: "current_password", type: "password", autocomplete: "current-password", required: true, "data-testid": "pw-current" });
    const nw = h("input", { id: "pw-new", name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: 8, "data-testid": "pw-new" });
    const again = h("input", { id: "pw-again", name: "new_password_again", type: "password", autocomplete: "new-password", required: true, "data-testid": "pw-again" });
    const pwForm = h("form", { class: "panel", "aria-labelledby": "pw-h", "data-testid": "password-form" },
      h("h2", { id: "pw-h" }, "Change my password"),
      h("div", { class: "field" }, h("label", { for: "pw-current" }, "Current password"), cur),
      h("div", { class: "field" }, h("label", { for: "pw-new" }, "New password"), nw),
      h("div", { class: "field" }, h("label", { for: "pw-again" }, "New password again"), again),
      h("p", { class: "hint" }, "Changing it logs out your other sessions."),
      h("button", { type: "submit", class: "btn btn-primary", "data-testid": "pw-submit" }, "Change password"));
    pwForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      showErrors(pwForm, null);
      if (nw.value !== again.value) {
        showErrors(pwForm, { errors: [{ detail: "The two new passwords differ.", source: { pointer: "data/attributes/new_password_again" } }] });
        return;
      }
      const btn = pwForm.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        await api.call("password_change", { user_id: me.user_id, current_password: cur.value, new_password: nw.value });
        pwForm.reset();
        document.dispatchEvent(new CustomEvent("gatehouse:password-changed"));
        toast("Password changed. Your other sessions were logged out.");
      } catch (err) {
        showErrors(pwForm, passwordError(err));
      } finally {
        btn.disabled = false;
      }
    });

    const tokens = section("tokens", "My sessions (tokens)");
    const certs = section("certs", "My certificates");

    root.append(h("h1", {}, "My account"),
      h("p", { "data-testid": "account-who" }, `Logged in as `, h("strong", {}, me.username), ` (${RANK_NAMES[me.rank] ?? me.rank}).`),
      h("div", { class: "cols" }, pwForm, tokens.el, certs.el));

    // ---- tokens ----
    async function loadTokens() {
      let r;
      try {
        r = await api.call("token.list", { user_id: me.user_id });
      } catch (e) {
        if (!alive) return;
        if (e.status_code === Status.INVALID_CALL) return unavailable(tokens, "Session tokens");
        clear(tokens.body).append(h("p", { class: "error" }, e.message));
        return;
      }
      if (!alive) return;
      const list = listOf(r, "tokens").filter((t) => !t.user_id || t.user_id === me.user_id);
      clear(tokens.body).append(dataTable([
        { key: "id", label: "Token", render: (t) => h("code", { title: String(t.id ?? "") }, String(t.id ?? "").slice(0, 8)) },
        { key: "dialect", label: "Used by", render: (t) => h("span", { title: t.user_agent || "" },
            [t.dialect, t.remote_addr, short(t.user_agent)].filter(Boolean).join(" · ")) },
        { key: "created", label: "Issued", render: (t) => formatTime(t.issued_at) },
        { key: "used", label: "Last used", render: (t) => formatTime(t.last_used_at) },
        { key: "expires", label: "Expires", render: (t) => formatTime(t.expires_at) },
        { key: "current", label: "", render: (t) => (t.current ? h("span", { class: "badge badge-info" }, "this session") : null) },
        { key: "act", label: "Actions", render: (t) => h("button", { type: "button", class: "btn btn-small", "data-testid": "token-revoke", "data-token-id": t.id,
            onclick: () => revokeToken(t) }, "Revoke") },
      ], list, { testid: "tokens-table" }));
    }

    async function revokeToken(t) {
      const id = t.id;
      const msg = t.current ? "Revoke this session's token? You will be logged out." : "Revoke this token? Its session ends at once.";
      if (!(await confirmDialog(msg, { confirm: "Revoke", danger: true }))) return;
      try {
        await api.call("token.revoke", { token_id: id });
        toast("Token revoked.");
        if (alive) loadTokens();
      } catch (e) {
        toast(`Revoke: ${e.message}`, "error");
      }
    }

    // ---- certificates ----
    const pub = h("textarea", { id: "cert-key", name: "pub_key", rows: 4, required: true, placeholder: "-----BEGIN PUBLIC KEY-----", "data-testid": "cert-key" });
    const nick = h("input", { id: "cert-nick", name: "nickname", "data-testid": "cert-nickname" });
    const mail = h("input", { id: "cert-mail", name: "email", type: "email", "data-testid": "cert-email" });
    const certForm = h("form", { "data-testid": "cert-form" },
      h("h3", {}, "Register a public key"),
      h("div", { class: "field" }, h("label", { for: "cert-key" }, "Public key (PEM)"), pub),
      h("div", { class: "field" }, h("label", { for: "cert-nick" }, "Nickname"), nick),
      h("div", { class: "field" }, h("label", { for: "cert-mail" }, "E-mail"), mail),
      h("button", { type: "submit", class: "btn btn-primary", "data-testid": "cert-submit" }, "Register key"));
    certForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      showErrors(certForm, null);
      try {
        let key = pub.value.trim();
        if (key.startsWith("-----BEGIN")) key = btoa(key + "\n");
        await api.call("cert.register", { pub_key: key, nickname: nick.value.trim(), email: mail.value.trim() });
        certForm.reset();
        toast("Key registered.");
        loadCerts();
      } catch (err) {
        showErrors(certForm, err);
      }
    });

    async function loadCerts() {
      let r;
      try {
        r = await api.call("cert.list", {});
      } catch (e) {
        if (!alive) return;
        if (e.status_code === Status.INVALID_CALL) return unavailable(certs, "Certificates");
        clear(certs.body).append(h("p", { class: "error" }, e.message));
        return;
      }
      if (!alive) return;
      const list = listOf(r, "certs").filter((c) => !c.user_id || c.user_id === me.user_id);
      clear(certs.body).append(dataTable([
        { key: "nickname", label: "Nickname" },
        { key: "algorithm", label: "Type" },
        { key: "fingerprint", label: "SHA-256", render: (c) => h("code", { class: "fp" }, String(c.fingerprint || "").replace(/(.{16})/g, "$1 ").trim()) },
        { key: "registered_at", label: "Registered", render: (c) => formatTime(c.registered_at) },
        { key: "act", label: "Actions", render: (c) => h("button", { type: "button", class: "btn btn-small", "data-testid": "cert-revoke",
            onclick: () => revokeCert(c) }, "Revoke") },
      ], list, { testid: "certs-table" }), certForm);
    }

    async function revokeCert(c) {
      if (!(await confirmDialog(`Revoke the key “${c.nickname || c.fingerprint}”? It can no longer log in.`, { confirm: "Revoke", danger: true }))) return;
      try {
        await api.call("cert.revoke", { cert_id: c.id });
        toast("Key revoked.");
        if (alive) loadCerts();
      } catch (e) {
        toast(`Revoke: ${e.message}`, "error");
      }
    }

    loadTokens();
    loadCerts();
    return () => { alive = false; };
  },
};
