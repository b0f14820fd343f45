// certs.js — the Certificates page (administrators): every registered public key (owner,
// nickname, email, algorithm, SHA-256 fingerprint, registration time), each with a Revoke button.
// cert.list answers all keys to administrators; cert.revoke takes {"cert_id"}. A server without
// these calls (INVALID_CALL) is said so.

import {
  h, fill, mount, loading, failed, header, button, attempt, confirmDialog, readOptional, byId, dataTable, notice,
  formatTime, ADMIN,
} from "./common.js";
import { rowsOf, pick, unavailable } from "./tokens.js";

/** shortPrint abbreviates a hex fingerprint as "ab12cd34…9f0e" (the full one is in the title). */
function shortPrint(fp) {
  if (!fp) return "";
  return fp.length > 20 ? `${fp.slice(0, 12)}…${fp.slice(-8)}` : fp;
}

async function render(view, ctx) {
  loading(view);
  let reply;
  try {
    reply = await ctx.api.call("cert.list", {});
  } catch (e) {
    if (!unavailable(e)) throw e;
    fill(view, header("Certificates"), notice("This server does not list certificates (cert.list is not available).", "certs-unavailable"));
    return;
  }
  const users = byId(await readOptional(ctx.api, "user", "user_id"));
  const certs = rowsOf(reply);
  fill(view, 
    header("Certificates", button("Refresh", "certs-refresh", () => render(view, ctx).catch((e) => failed(view, e)))),
    notice("Public keys registered for certificate login, of every user."),
    dataTable([
      { key: "user", label: "User", render: (c) => {
        const uid = pick(c, "user_id", "UserID");
        return pick(c, "username", "Username") ?? users.get(uid)?.attributes.username ?? (uid !== undefined ? `#${uid}` : "");
      } },
      { key: "nickname", label: "Nickname", render: (c) => pick(c, "nickname", "Nickname") ?? "" },
      { key: "email", label: "Email", render: (c) => pick(c, "email", "Email") ?? "" },
      { key: "algorithm", label: "Algorithm", render: (c) => pick(c, "algorithm", "Algorithm") ?? "" },
      { key: "fingerprint", label: "Fingerprint (SHA-256)", render: (c) => {
        const fp = pick(c, "fingerprint", "Fingerprint") ?? "";
        return h("code", { title: fp }, shortPrint(fp));
      } },
      { key: "registered", label: "Registered", render: (c) => formatTime(pick(c, "registered_at", "RegisteredAt")) },
      { key: "actions", label: "Actions", render: (c) => {
        const id = pick(c, "id", "cert_id", "ID");
        return id === undefined ? "" : button("Revoke", `cert-revoke-${id}`, async () => {
          if (!(await confirmDialog(`Revoke the key ${pick(c, "nickname", "Nickname") || shortPrint(pick(c, "fingerprint", "Fingerprint"))}? It can no longer be used to log in.`, { confirm: "Revoke", danger: true }))) return;
          const r = await attempt(null, () => ctx.api.call("cert.revoke", { cert_id: id }), "Certificate revoked.");
          if (r.ok) render(view, ctx).catch((e) => failed(view, e));
        }, { edit: true, kind: "btn-small btn-danger" });
      } },
    ], certs, { caption: "Certificates", testid: "certs-table" }));
}

export default {
  id: "certificates",
  title: "Certificates",
  minRank: ADMIN,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "certs-page");
    render(view, ctx).catch((e) => failed(view, e));
  },
};
