package tokenapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"gatehouse/modules/acl"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
)

// Today's wazo-auth calls around tokens (wazo-auth's plugins tokens, sessions, user_session,
// users and status), with wazo's paths, ACL names and response shapes:
//
//	HEAD|GET /0.1/status                                 no token; 200, or 503 while the database fails
//	GET      /0.1/tokens                                 auth.tokens.read
//	GET      /0.1/users/{uuid}/tokens                    auth.users.{uuid}.tokens.read
//	DELETE   /0.1/users/{uuid}/tokens/{client_id}        auth.users.{uuid}.tokens.{client_id}.delete
//	GET      /0.1/sessions                               auth.sessions.read
//	DELETE   /0.1/sessions/{session_uuid}                auth.sessions.{session_uuid}.delete
//	GET      /0.1/users/{uuid}/sessions                  auth.users.{uuid}.sessions.read
//	DELETE   /0.1/users/{uuid}/sessions/{session_uuid}   auth.users.{uuid}.sessions.{session_uuid}.delete
//	GET      /0.1/users/{uuid}                           auth.users.{uuid}.read
//
// {uuid} is a user's UserUUID (what /0.1/token returns as auth_id and metadata.uuid), or "me".
// The caller's token travels in X-Auth-Token (or Authorization: Bearer); a missing, unknown or
// expired one answers 401, an ACL the caller's rank does not grant (acl.ForRank) 403. A
// session is a live token of any dialect: its uuid is the token's public id (session_uuid in
// /0.1/token), never the token. Lists take wazo's limit and offset; total and filtered count
// the whole list.

// listReply is wazo's list shape.
type listReply[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Filtered int `json:"filtered"`
}

// RefreshTokenItem is one refresh token as wazo-auth's RefreshTokenSchema shows it.
type RefreshTokenItem struct {
	ClientID   string         `json:"client_id"`
	CreatedAt  string         `json:"created_at"`
	Mobile     bool           `json:"mobile"`
	UserUUID   string         `json:"user_uuid"`
	TenantUUID string         `json:"tenant_uuid"`
	Metadata   map[string]any `json:"metadata"`
}

// SessionItem is one session as wazo-auth lists it.
type SessionItem struct {
	UUID       string `json:"uuid"`
	Mobile     bool   `json:"mobile"`
	TenantUUID string `json:"tenant_uuid"`
	UserUUID   string `json:"user_uuid"`
}

// UserEmail is one address of UserItem.
type UserEmail struct {
	UUID      string `json:"uuid"`
	Address   string `json:"address"`
	Confirmed bool   `json:"confirmed"`
	Main      bool   `json:"main"`
}

// UserItem is a user as wazo-auth's GET /0.1/users/{uuid} shows it.
type UserItem struct {
	UUID                 string      `json:"uuid"`
	Username             string      `json:"username"`
	Firstname            *string     `json:"firstname"`
	Lastname             *string     `json:"lastname"`
	Purpose              string      `json:"purpose"`
	Emails               []UserEmail `json:"emails"`
	Enabled              bool        `json:"enabled"`
	TenantUUID           string      `json:"tenant_uuid"`
	AuthenticationMethod string      `json:"authentication_method"`
}

// wazoTime is marshmallow's DateTime format, in UTC.
func wazoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000+00:00") }

// status serves HEAD and GET /0.1/status, without a token: 200, or 503 while the database
// cannot commit. GET adds {"database": {"status"}, "rest_api": {"status"}} ("ok" or "fail").
func (m *Module) status(w http.ResponseWriter, r *http.Request) {
	code, db := http.StatusOK, "ok"
	if !m.db.Health().OK {
		code, db = http.StatusServiceUnavailable, "fail"
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, map[string]any{"database": map[string]string{"status": db}, "rest_api": map[string]string{"status": "ok"}})
}

// caller authenticates the request's token and checks that its owner's rank grants the ACL
// required (built from the caller's UserUUID, for "me"). It has answered when ok is false.
func (m *Module) caller(w http.ResponseWriter, r *http.Request, required func(me string) string) (u auth.User, me string, ok bool) {
	if m.queryToken(w, r) {
		return auth.User{}, "", false
	}
	raw, err := tokenIn(r, "")
	if err != nil {
		m.writeError(w, http.StatusBadRequest, err.Error())
		return auth.User{}, "", false
	}
	if raw == "" {
		m.writeError(w, http.StatusUnauthorized, "Unauthorized: send a token in the "+AuthTokenHeader+" header.")
		return auth.User{}, "", false
	}
	_, u, ok = m.lookupOr(w, r, raw, http.StatusUnauthorized, "Unauthorized")
	if !ok {
		return auth.User{}, "", false
	}
	if !m.tenantAllowed(w, r.Header.Get("Wazo-Tenant")) {
		return auth.User{}, "", false
	}
	me = UserUUID(m.install, u.ID).String()
	if need := required(me); !acl.Allowed(acl.ForRank(u.Rank), need, me) {
		m.writeError(w, http.StatusForbidden, "Unauthorized for "+need)
		return auth.User{}, "", false
	}
	return u, me, true
}

// pathUser returns the {user} path value as the ACL names it: "me" stays "me".
func pathUser(r *http.Request) string { return r.PathValue("user") }

// target resolves the {user} of an authorized request to a user id: "me" and the caller's own
// UUID without a lookup, any other UUID by searching the users (only callers granted an ACL
// on other users get here). It answers 404 for an unknown user.
func (m *Module) target(w http.ResponseWriter, r *http.Request, caller auth.User, me string) (int64, string, bool) {
	p := pathUser(r)
	if p == "me" || strings.EqualFold(p, me) {
		return caller.ID, me, true
	}
	want, err := uuid.Parse(p)
	if err == nil {
		id, found, err := m.userByUUID(r.Context(), want)
		if err != nil {
			m.internal(w, err)
			return 0, "", false
		}
		if found {
			return id, want.String(), true
		}
	}
	m.writeError(w, http.StatusNotFound, fmt.Sprintf("No such user: %q", p))
	return 0, "", false
}

// userByUUID finds the user whose UserUUID is want. UserUUIDs are name-based, so this
// computes each user's; only administrators' requests (and viewers' reads) get here.
func (m *Module) userByUUID(ctx context.Context, want uuid.UUID) (int64, bool, error) {
	var ids []int64
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT id FROM users`).Scan(&ids).Error; err != nil {
		return 0, false, fmt.Errorf("find user by uuid: %w", err)
	}
	for _, id := range ids {
		if UserUUID(m.install, id) == want {
			return id, true, nil
		}
	}
	return 0, false, nil
}

// page applies wazo's limit and offset query parameters to n items: it returns the bounds of
// the page, or answers 400.
func (m *Module) page(w http.ResponseWriter, r *http.Request, n int) (from, to int, ok bool) {
	q := r.URL.Query()
	num := func(name string, def int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 {
			m.writeError(w, http.StatusBadRequest, name+": Must be greater than or equal to 0.")
			return 0, false
		}
		return x, true
	}
	offset, ok1 := num("offset", 0)
	if !ok1 {
		return 0, 0, false
	}
	limit, ok2 := num("limit", n)
	if !ok2 {
		return 0, 0, false
	}
	from = min(offset, n)
	return from, min(from+limit, n), true
}

// writeList answers a list of items in wazo's shape, paged.
func writeList[T any](m *Module, w http.ResponseWriter, r *http.Request, items []T) {
	from, to, ok := m.page(w, r, len(items))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, listReply[T]{Items: items[from:to], Total: len(items), Filtered: len(items)})
}

func (m *Module) refreshItems(ctx context.Context, userID int64) ([]RefreshTokenItem, error) {
	rts, err := m.tokens.ListRefresh(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]RefreshTokenItem, 0, len(rts))
	for _, rt := range rts {
		out = append(out, RefreshTokenItem{
			ClientID: rt.ClientID, CreatedAt: wazoTime(rt.CreatedAt), UserUUID: UserUUID(m.install, rt.UserID).String(),
			TenantUUID: m.install.String(), Metadata: map[string]any{},
		})
	}
	return out, nil
}

// refreshTokens serves GET /0.1/tokens: every user's refresh tokens (auth.tokens.read).
func (m *Module) refreshTokens(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := m.caller(w, r, func(string) string { return "auth.tokens.read" }); !ok {
		return
	}
	items, err := m.refreshItems(r.Context(), 0)
	if err != nil {
		m.internal(w, err)
		return
	}
	writeList(m, w, r, items)
}

// userRefreshTokens serves GET /0.1/users/{uuid}/tokens (auth.users.{uuid}.tokens.read).
func (m *Module) userRefreshTokens(w http.ResponseWriter, r *http.Request) {
	u, me, ok := m.caller(w, r, func(string) string { return "auth.users." + pathUser(r) + ".tokens.read" })
	if !ok {
		return
	}
	id, _, ok := m.target(w, r, u, me)
	if !ok {
		return
	}
	items, err := m.refreshItems(r.Context(), id)
	if err != nil {
		m.internal(w, err)
		return
	}
	writeList(m, w, r, items)
}

// deleteUserRefreshToken serves DELETE /0.1/users/{uuid}/tokens/{client_id}
// (auth.users.{uuid}.tokens.{client_id}.delete): 204, or 404 when the user has no refresh
// token for that client id.
func (m *Module) deleteUserRefreshToken(w http.ResponseWriter, r *http.Request) {
	clientID := r.PathValue("client_id")
	u, me, ok := m.caller(w, r, func(string) string { return "auth.users." + pathUser(r) + ".tokens." + clientID + ".delete" })
	if !ok {
		return
	}
	id, _, ok := m.target(w, r, u, me)
	if !ok {
		return
	}
	found, err := m.tokens.DeleteRefresh(r.Context(), id, clientID)
	if err != nil {
		m.internal(w, err)
		return
	}
	if !found {
		m.writeError(w, http.StatusNotFound, fmt.Sprintf("No such refresh token for client %q", clientID))
		return
	}
	m.log.Info().Int64("user_id", id).Int64("by", u.ID).Msg("refresh token deleted")
	w.WriteHeader(http.StatusNoContent)
}

func (m *Module) sessionItems(ctx context.Context, userID int64) ([]SessionItem, error) {
	toks, err := m.tokens.List(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]SessionItem, 0, len(toks))
	for _, t := range toks {
		out = append(out, SessionItem{UUID: t.ID, TenantUUID: m.install.String(), UserUUID: UserUUID(m.install, t.UserID).String()})
	}
	return out, nil
}

// sessions serves GET /0.1/sessions: every live session (auth.sessions.read).
func (m *Module) sessions(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := m.caller(w, r, func(string) string { return "auth.sessions.read" }); !ok {
		return
	}
	items, err := m.sessionItems(r.Context(), 0)
	if err != nil {
		m.internal(w, err)
		return
	}
	writeList(m, w, r, items)
}

// userSessions serves GET /0.1/users/{uuid}/sessions (auth.users.{uuid}.sessions.read).
func (m *Module) userSessions(w http.ResponseWriter, r *http.Request) {
	u, me, ok := m.caller(w, r, func(string) string { return "auth.users." + pathUser(r) + ".sessions.read" })
	if !ok {
		return
	}
	id, _, ok := m.target(w, r, u, me)
	if !ok {
		return
	}
	items, err := m.sessionItems(r.Context(), id)
	if err != nil {
		m.internal(w, err)
		return
	}
	writeList(m, w, r, items)
}

// deleteSession serves DELETE /0.1/sessions/{session_uuid} (auth.sessions.{session_uuid}.delete).
func (m *Module) deleteSession(w http.ResponseWriter, r *http.Request) {
	sess := r.PathValue("session")
	u, _, ok := m.caller(w, r, func(string) string { return "auth.sessions." + sess + ".delete" })
	if !ok {
		return
	}
	m.endSession(w, r, sess, 0, u.ID)
}

// deleteUserSession serves DELETE /0.1/users/{uuid}/sessions/{session_uuid}
// (auth.users.{uuid}.sessions.{session_uuid}.delete): only a session of that user ends.
func (m *Module) deleteUserSession(w http.ResponseWriter, r *http.Request) {
	sess := r.PathValue("session")
	u, me, ok := m.caller(w, r, func(string) string { return "auth.users." + pathUser(r) + ".sessions." + sess + ".delete" })
	if !ok {
		return
	}
	id, _, ok := m.target(w, r, u, me)
	if !ok {
		return
	}
	m.endSession(w, r, sess, id, u.ID)
}

// endSession revokes the token whose public id is sess (of owner; 0 = anyone's), ending every
// live session using it, and answers 204. As in wazo-auth, an unknown session answers 204 too.
func (m *Module) endSession(w http.ResponseWriter, r *http.Request, sess string, owner, by int64) {
	err := m.tokens.RevokeID(r.Context(), sess, owner, "Session deleted.")
	if err != nil && !errors.Is(err, token.ErrInvalid) {
		m.internal(w, err)
		return
	}
	if err == nil {
		m.log.Info().Str("session_uuid", sess).Int64("by", by).Msg("session deleted")
	}
	w.WriteHeader(http.StatusNoContent)
}

// getUser serves GET /0.1/users/{uuid} (auth.users.{uuid}.read).
func (m *Module) getUser(w http.ResponseWriter, r *http.Request) {
	u, me, ok := m.caller(w, r, func(string) string { return "auth.users." + pathUser(r) + ".read" })
	if !ok {
		return
	}
	id, uid, ok := m.target(w, r, u, me)
	if !ok {
		return
	}
	t, err := m.auth.Users().Get(r.Context(), id)
	if errors.Is(err, auth.ErrNoUser) {
		m.writeError(w, http.StatusNotFound, fmt.Sprintf("No such user: %q", pathUser(r)))
		return
	}
	if err != nil {
		m.internal(w, err)
		return
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	item := UserItem{
		UUID: uid, Username: t.Username, Firstname: opt(t.Firstname), Lastname: opt(t.Lastname), Purpose: "user",
		Emails: []UserEmail{}, Enabled: t.ValidityEnabled, TenantUUID: m.install.String(), AuthenticationMethod: "default",
	}
	if t.Email != "" {
		item.Emails = append(item.Emails, UserEmail{UUID: uuid.NewSHA1(m.install, []byte("email:"+strconv.FormatInt(t.ID, 10))).String(),
			Address: t.Email, Main: true})
	}
	writeJSON(w, http.StatusOK, item)
}
