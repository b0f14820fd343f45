package tokenapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gatehouse/core"
	"gatehouse/modules/acl"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
)

// Backends are the backend names accepted in a token request and listed by GET /0.1/backends:
// every one checks gatehouse's own users. An unknown backend fails authentication (401).
var Backends = []string{"wazo_user", "xivo_user"}

const authFailed = "Authentication Failed"

// create serves POST /0.1/token. A browser request from another site than this server or
// AllowedOrigins is refused (403) before anything is read, as the sysadm REST does: the
// browser would attach cached Basic credentials by itself (login CSRF).
func (m *Module) create(w http.ResponseWriter, r *http.Request) {
	if m.crossSite(r) {
		m.writeError(w, http.StatusForbidden, "Forbidden: cross-site request")
		return
	}
	ctx := r.Context()
	body, ok := m.readBody(w, r)
	if !ok {
		return
	}
	req, err := parseTokenRequest(body, m.MaxExpiration)
	if err != nil {
		m.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if (req.Backend != "" && !slices.Contains(Backends, req.Backend)) || req.SAMLSessionID != "" {
		m.writeError(w, http.StatusUnauthorized, authFailed) // no such backend; no SAML here
		return
	}
	exp := req.Expiration
	if exp == 0 {
		exp = m.DefaultExpiration
	}
	lr := auth.LoginRequest{Remote: r.RemoteAddr, UserAgent: r.UserAgent(), Dialect: Dialect,
		Lifetime: time.Duration(exp) * time.Second}
	var res auth.LoginResult
	if req.RefreshToken != "" {
		rt, err := m.tokens.UseRefresh(ctx, req.RefreshToken, req.ClientID)
		if errors.Is(err, token.ErrInvalid) {
			m.writeError(w, http.StatusUnauthorized, authFailed)
			return
		}
		if err != nil {
			m.internal(w, err)
			return
		}
		res, err = m.auth.LoginUser(ctx, rt.UserID, lr, "refresh_token")
		if err != nil {
			m.loginError(w, err)
			return
		}
	} else {
		user, pass, ok := auth.BasicAuth(r)
		if !ok {
			m.writeError(w, http.StatusUnauthorized, authFailed)
			return
		}
		lr.Username, lr.Password = m.loginName(ctx, user), pass
		res, err = m.auth.Login(ctx, lr)
		if err != nil {
			m.loginError(w, err)
			return
		}
	}
	if res.Outcome != auth.Granted {
		m.writeError(w, http.StatusUnauthorized, authFailed)
		return
	}
	if m.MaxUserSessions > 0 {
		n, err := m.tokens.Count(ctx, res.User.ID)
		if err != nil {
			m.internal(w, err)
			return
		}
		if n > m.MaxUserSessions {
			if err := m.tokens.Revoke(ctx, res.Record.Hash, "Too many sessions."); err != nil {
				m.internal(w, err)
				return
			}
			m.writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
				"User %s has exceeded the maximum number of active sessions", UserUUID(m.install, res.User.ID)))
			return
		}
	}
	data := m.tokenData(res.Token, res.Record, res.User)
	if req.AccessType == offline {
		raw, _, err := m.tokens.IssueRefresh(ctx, res.User.ID, req.ClientID, r.RemoteAddr, r.UserAgent())
		if err != nil {
			m.internal(w, err)
			return
		}
		// The user's tokens revoked meanwhile (a password change racing this login): the refresh
		// token goes too (RevokeUser deletes refresh tokens after access tokens).
		if _, err := m.tokens.Peek(ctx, res.Record.Hash); errors.Is(err, token.ErrInvalid) {
			if err := m.tokens.RevokeRefresh(ctx, res.User.ID, req.ClientID); err != nil {
				m.internal(w, err)
				return
			}
			m.writeError(w, http.StatusUnauthorized, authFailed)
			return
		}
		data.RefreshToken = raw
	}
	m.log.Info().Int64("user_id", res.User.ID).Str("token_id", res.Record.ID).
		Bool("refreshed", req.RefreshToken != "").Bool("offline", req.AccessType == offline).Msg("token created")
	writeJSON(w, http.StatusOK, map[string]any{"data": data})
}

// get serves GET (200 with the token's data) and HEAD (204) /0.1/token/{token} and /0.1/token
// (the token in a header, see requestToken), optionally checking ?scope= (an ACL the token must
// grant) and ?tenant= (this installation's id).
func (m *Module) get(w http.ResponseWriter, r *http.Request) {
	if m.queryToken(w, r) {
		return
	}
	raw, ok := m.requestToken(w, r, "")
	if !ok {
		return
	}
	rec, u, ok := m.lookup(w, r, raw)
	if !ok {
		return
	}
	q := r.URL.Query()
	if !m.tenantAllowed(w, q.Get("tenant")) {
		return
	}
	if scope := q.Get("scope"); !acl.Allowed(acl.ForRank(u.Rank), scope, UserUUID(m.install, u.ID).String()) {
		m.writeError(w, http.StatusForbidden, "Unauthorized for "+scope)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": m.tokenData(raw, rec, u)})
}

// delete serves DELETE /0.1/token/{token} and /0.1/token (the token in a header): the token is
// revoked everywhere (live sessions using it end at once). Unknown and malformed tokens answer
// the same success.
func (m *Module) delete(w http.ResponseWriter, r *http.Request) {
	if m.queryToken(w, r) {
		return
	}
	raw, ok := m.requestToken(w, r, "")
	if !ok {
		return
	}
	// A malformed token is answered as an unknown one (wazo-auth: success either way), without a
	// lookup: the answer tells nothing about which strings are tokens.
	if !token.Plausible(raw) {
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"message": "success"}})
		return
	}
	if err := m.tokens.Revoke(r.Context(), token.Hash(raw), "Token revoked."); err != nil {
		m.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]string{"message": "success"}})
}

// scopesCheck serves POST /0.1/token/{token}/scopes/check and /0.1/token/scopes/check (the
// token in a header or the body's "token"): {"scopes": [...]} → {"scopes": {"<scope>": bool, ...}}.
func (m *Module) scopesCheck(w http.ResponseWriter, r *http.Request) {
	if m.queryToken(w, r) {
		return
	}
	body, ok := m.readBody(w, r)
	if !ok {
		return
	}
	req, err := parseScopesRequest(body)
	if err != nil {
		m.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	raw, ok := m.requestToken(w, r, req.Token)
	if !ok {
		return
	}
	_, u, ok := m.lookup(w, r, raw)
	if !ok {
		return
	}
	if !m.tenantAllowed(w, req.TenantUUID) {
		return
	}
	check := acl.NewChecker(acl.ForRank(u.Rank), UserUUID(m.install, u.ID).String())
	out := make(map[string]bool, len(req.Scopes))
	for _, s := range req.Scopes {
		out[s] = s != "" && check.Allowed(s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"scopes": out})
}

// backends serves GET /0.1/backends.
func (m *Module) backends(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"data": Backends})
}

// notFound answers every other /0.1 path in wazo-auth's error shape.
func (m *Module) notFound(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, APIPrefix) {
	case "/0.1/token":
		w.Header().Set("Allow", "DELETE, GET, HEAD, POST")
		m.writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
	case "/0.1/backends":
		w.Header().Set("Allow", "GET, HEAD")
		m.writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
	default:
		m.writeError(w, http.StatusNotFound, "Not found")
	}
}

// AuthTokenHeader is the request header that carries a token to check or revoke at /0.1/token
// (wazo's own header name, in its CORS allow list). Authorization: Bearer works too.
const AuthTokenHeader = "X-Auth-Token"

// queryTokenParams are query parameters that would carry a token in a URL; they are refused.
var queryTokenParams = []string{"token", "access_token"}

// queryToken answers 400 (and reports true) when the query string carries a token: URLs end up
// in access logs, proxies and browser histories, so a token there is refused without a lookup.
func (m *Module) queryToken(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	for _, p := range queryTokenParams {
		if q.Has(p) {
			m.writeError(w, http.StatusBadRequest, "A token is not accepted in the query string (URLs are logged): send it in the "+
				AuthTokenHeader+" header.")
			return true
		}
	}
	return false
}

// requestToken returns the one token of a request, from every place it may travel: the path
// ({token}, wazo's form), the X-Auth-Token header, an Authorization: Bearer header and
// bodyToken (the scopes/check body's "token"). Empty values count as absent. When no place
// carries a token, or two carry different ones, it answers 400 and ok is false.
func (m *Module) requestToken(w http.ResponseWriter, r *http.Request, bodyToken string) (raw string, ok bool) {
	raw, err := tokenIn(r, bodyToken)
	if err != nil {
		m.writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if raw == "" {
		m.writeError(w, http.StatusBadRequest, "Missing token: send it in the "+AuthTokenHeader+" header.")
		return "", false
	}
	return raw, true
}

// tokenIn returns the one token of a request (see requestToken), "" when none, or an error
// when two places carry different ones.
func tokenIn(r *http.Request, bodyToken string) (string, error) {
	found := []string{r.PathValue("token"), bodyToken}
	found = append(found, r.Header.Values(AuthTokenHeader)...)
	for _, v := range r.Header.Values("Authorization") {
		if scheme, cred, _ := strings.Cut(strings.TrimSpace(v), " "); strings.EqualFold(scheme, "Bearer") {
			found = append(found, strings.TrimSpace(cred))
		}
	}
	raw := ""
	for _, t := range found {
		switch {
		case t == "":
		case raw == "":
			raw = t
		case subtle.ConstantTimeCompare([]byte(raw), []byte(t)) != 1:
			return "", errors.New("Two different tokens in one request: send the token once, in the " + AuthTokenHeader + " header.")
		}
	}
	return raw, nil
}

// lookup finds the valid token raw (sliding it: a check on the user's behalf is a use) and its
// owner, or answers 404 "No such token": for anything not shaped like a token (without a
// lookup), an unknown, revoked or expired token, or one whose owner is gone or not valid now.
func (m *Module) lookup(w http.ResponseWriter, r *http.Request, raw string) (*token.Token, auth.User, bool) {
	return m.lookupOr(w, r, raw, http.StatusNotFound, "No such token")
}

// lookupOr is lookup answering status with reason instead of 404 "No such token".
func (m *Module) lookupOr(w http.ResponseWriter, r *http.Request, raw string, status int, reason string) (*token.Token, auth.User, bool) {
	if !token.Plausible(raw) {
		m.writeError(w, status, reason)
		return nil, auth.User{}, false
	}
	rec, err := m.tokens.UseVia(r.Context(), token.Hash(raw), Dialect)
	if errors.Is(err, token.ErrInvalid) {
		m.writeError(w, status, reason)
		return nil, auth.User{}, false
	}
	if err != nil {
		m.internal(w, err)
		return nil, auth.User{}, false
	}
	u, err := m.auth.Users().Get(r.Context(), rec.UserID)
	if errors.Is(err, auth.ErrNoUser) || err == nil && !u.ValidAt(m.now()) {
		m.writeError(w, status, reason)
		return nil, auth.User{}, false
	}
	if err != nil {
		m.internal(w, err)
		return nil, auth.User{}, false
	}
	return rec, u, true
}

// tenantAllowed checks a requested tenant: there is one, this installation; "" asks nothing.
func (m *Module) tenantAllowed(w http.ResponseWriter, tenant string) bool {
	if tenant == "" || strings.EqualFold(tenant, m.install.String()) {
		return true
	}
	m.writeError(w, http.StatusForbidden, "Unauthorized for tenant "+tenant)
	return false
}

// tokenData builds the "data" object of a token.
func (m *Module) tokenData(raw string, rec *token.Token, u auth.User) TokenData {
	authID := UserUUID(m.install, u.ID).String()
	install := m.install.String()
	expires := rec.Deadline()
	return TokenData{
		Token: raw, AuthID: authID, XivoUserUUID: authID, XivoUUID: install,
		IssuedAt: legacyLocal(rec.IssuedAt), ExpiresAt: legacyLocal(expires),
		UTCIssuedAt: legacyUTC(rec.IssuedAt), UTCExpiresAt: legacyUTC(expires),
		IssuedAtUTC: zUTC(rec.IssuedAt), ExpiresAtUTC: zUTC(expires),
		ACL: acl.ForRank(u.Rank),
		Metadata: Metadata{
			UUID: authID, AuthID: authID, PBXUserUUID: authID, XivoUUID: install, TenantUUID: install,
			Purpose: "user", UserID: u.ID, Username: u.Username, Rank: int(u.Rank), Dialect: rec.Dialect,
		},
		SessionUUID: rec.ID, RemoteAddr: remoteHost(rec.RemoteAddr), UserAgent: rec.UserAgent,
	}
}

// readBody reads a bounded request body; on failure it has answered (413 over the limit).
func (m *Module) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.BodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			m.writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body exceeds %d bytes.", m.BodyLimit))
		} else {
			m.writeError(w, http.StatusBadRequest, "The request body could not be read.")
		}
		return nil, false
	}
	return b, true
}

// loginError answers a login that failed for a reason other than bad credentials: throttled
// (429 with Retry-After) or an internal error.
func (m *Module) loginError(w http.ResponseWriter, err error) {
	ce, _ := core.StatusOf(err)
	if ce.Code == core.RateLimited {
		if c, ok := ce.Content.(map[string]int); ok {
			w.Header().Set("Retry-After", strconv.Itoa(c["retry_after"]))
		}
		m.writeError(w, http.StatusTooManyRequests, ce.Msg)
		return
	}
	m.internal(w, err)
}

// internal answers 500 with an incident id that ties the answer to the logged cause.
func (m *Module) internal(w http.ResponseWriter, err error) {
	ce, id := core.StatusOf(err)
	if id == "" {
		id = "-"
	}
	m.log.Error().Err(err).Str("incident", id).Msg("token API request failed")
	m.writeError(w, http.StatusInternalServerError, ce.Msg)
}

// loginName returns the username to log in with: a login containing "@" that is the email of
// exactly one user stands for that user's username (wazo-auth accepts emails); anything else is
// used as given.
func (m *Module) loginName(ctx context.Context, login string) string {
	if !strings.Contains(login, "@") || len(login) > 320 {
		return login
	}
	var names []string
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT username FROM users WHERE email = ? COLLATE NOCASE LIMIT 2`, login).
		Scan(&names).Error; err != nil || len(names) != 1 {
		return login
	}
	return names[0]
}

// crossSite reports whether a browser sent the request from another site than this server or
// one of AllowedOrigins (core.CrossSite).
func (m *Module) crossSite(r *http.Request) bool {
	return core.CrossSite(r, core.Origins(m.AllowedOrigins))
}
