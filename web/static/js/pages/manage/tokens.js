// tokens.js — the Tokens page (administrators): every user's live session tokens (never the
// tokens themselves: their public id, owner, dialect, times, address and client), each with a
// Revoke button. token.list answers all users' tokens to administrators; token.revoke takes the
// public id. A server without these calls (INVALID_CALL) is said so, not treated as a failure.

import {
  fill, mount, loading, failed, header, button, attempt, confirmDialog, readOptional, byId, dataTable, notice,
  formatTime, ApiError, INVALID_CALL, ADMIN,
} from "./common.js";

/** rowsOf finds the list in a reply: the reply itself, or its first array member (tokens, data, certs…). */
export function rowsOf(reply) {
  if (Array.isArray(reply)) return reply;
  if (reply && typeof reply === "object") {
    for (const v of Object.values(reply)) if (Array.isArray(v)) return v;
  }
  return [];
}

/** pick returns the first defined of the given keys of o. */
export function pick(o, ...keys) {
  for (const k of keys) if (o?.[k] !== undefined && o?.[k] !== null) return o[k];
  return undefined;
}

/** unavailable reports whether an error means the server does not offer the call. */
export function unavailable(e) {
  return e instanceof ApiError && e.status_code === INVALID_CALL;
}

async function render(view, ctx) {
  loading(view);
  let reply;
  try {
    reply = await ctx.api.call("token.list", {});
  } catch (e) {
    if (!unavailable(e)) throw e;
    fill(view, header("Tokens"), notice("This server does not list tokens (token.list is not available).", "tokens-unavailable"));
    return;
  }
  const users = byId(await readOptional(ctx.api, "user", "user_id"));
  const tokens = rowsOf(reply);
  const idOf = (t) => pick(t, "id", "token_id");
  fill(view, 
    header("Tokens", button("Refresh", "tokens-refresh", () => render(view, ctx).catch((e) => failed(view, e)))),
    notice("Sessions of every user. Revoking a token ends its sessions at once."),
    dataTable([
      { key: "user", label: "User", render: (t) => {
        const uid = pick(t, "user_id", "UserID");
        return pick(t, "username") ?? users.get(uid)?.attributes.username ?? (uid !== undefined ? `#${uid}` : "");
      } },
      { key: "dialect", label: "Via", render: (t) => pick(t, "dialect") ?? "" },
      { key: "issued", label: "Issued", render: (t) => formatTime(pick(t, "issued_at", "issued")) },
      { key: "last", label: "Last used", render: (t) => formatTime(pick(t, "last_used_at", "last_used")) },
      { key: "expires", label: "Expires", render: (t) => formatTime(pick(t, "expires_at", "expires")) },
      { key: "addr", label: "Address", render: (t) => pick(t, "remote_addr") ?? "" },
      { key: "agent", label: "Client", render: (t) => pick(t, "user_agent") ?? "" },
      { key: "actions", label: "Actions", render: (t) => {
        const id = idOf(t);
        const mine = t.current === true;
        return id === undefined ? "" : button(mine ? "Revoke (this session)" : "Revoke", `token-revoke-${id}`, async () => {
          const question = mine ? "Revoke the token of this session? You will be logged out."
            : `Revoke this token${pick(t, "username") ? ` of ${t.username}` : ""}? Its sessions end at once.`;
          if (!(await confirmDialog(question, { confirm: "Revoke", danger: true }))) return;
          const r = await attempt(null, () => ctx.api.call("token.revoke", { token_id: id }), "Token revoked.");
          // Revoking this session's own token is a logout: start again from the login page.
          if (r.ok && mine) location.reload();
          else if (r.ok) render(view, ctx).catch((e) => failed(view, e));
        }, { edit: true, kind: "btn-small btn-danger" });
      } },
    ], tokens, { caption: "Tokens", testid: "tokens-table" }));
}

export default {
  id: "tokens",
  title: "Tokens",
  minRank: ADMIN,
  nav: true,
  render(root, ctx) {
    const view = mount(root, "tokens-page");
    render(view, ctx).catch((e) => failed(view, e));
  },
};
