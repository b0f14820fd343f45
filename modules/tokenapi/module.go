// Package tokenapi is the xivo-auth/wazo-auth token REST API (contract §7) at /0.1 and at
// /api/auth/0.1: create a token with HTTP Basic auth or a refresh token, check it (optionally
// against an ACL scope), revoke it, check scopes, list the backends; and today's wazo-auth
// calls around tokens: status, refresh tokens and sessions (list, delete), one user. The tokens are those of the one token store, so
// a /0.1 token works in every dialect and any dialect's token is checked here.
//
// A token to check or revoke travels in the path (wazo's /0.1/token/{token}), or better in the
// X-Auth-Token header (or Authorization: Bearer, or the scopes/check body) at /0.1/token, never
// in the query string (refused: URLs get logged). Access-log paths have tokens redacted.
//
// Differences from wazo-auth, on purpose: tokens are stored hashed (so a second offline login
// for a client id replaces its refresh token rather than handing the old one out again), failed
// logins are throttled, expiration is capped at one year by default, and every timestamp also
// comes as RFC 3339 UTC with "Z" (issued_at_utc, expires_at_utc) next to the legacy fields.
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
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
)

// ModuleID is the module's ID.
const ModuleID = "tokenapi"

// Dialect names this front door in tokens and events.
const Dialect = "rest"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// APIPrefix is the path prefix today's wazo-auth-client puts before /0.1 by default; every
// route is served with and without it.
const APIPrefix = "/api/auth"

// MaxYear is the longest expiration accepted at most: one year, in seconds (contract §4).
const MaxYear = 365 * 24 * 3600

// Module is the token REST API. Its exported fields are its configuration; zero values take the
// documented defaults.
type Module struct {
	// DefaultExpiration is a token's lifetime in seconds when the request names none. Default
	// 7200 (wazo-auth's default_token_lifetime).
	DefaultExpiration int64 `json:"default_expiration"`
	// MaxExpiration is the longest expiration accepted, in seconds, 1 .. one year. Default one
	// year.
	MaxExpiration int64 `json:"max_expiration"`
	// MaxUserSessions caps a user's live tokens (all dialects together): a login beyond it
	// answers 429. Default 100 (wazo-auth's max_user_concurrent_sessions); -1 disables the cap.
	MaxUserSessions int64 `json:"max_user_sessions"`
	// BodyLimit bounds a request body in bytes. Default 64 KiB.
	BodyLimit int64 `json:"body_limit"`
	// AllowedOrigins are browser origins besides this server's own allowed to create tokens
	// (POST /0.1/token), e.g. "https://app.example.com". A browser request from any other
	// origin is refused with 403: browsers replay cached Basic credentials by themselves.
	AllowedOrigins []string `json:"allowed_origins"`

	log     zerolog.Logger
	db      *db.DB
	auth    *auth.Module
	tokens  *token.Store
	install uuid.UUID // this installation's id: xivo_uuid, tenant_uuid, namespace of user uuids
	now     func() time.Time
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.DefaultExpiration == 0 {
		m.DefaultExpiration = 7200
	}
	if m.MaxExpiration == 0 {
		m.MaxExpiration = MaxYear
	}
	if m.MaxUserSessions == 0 {
		m.MaxUserSessions = 100
	}
	if m.BodyLimit <= 0 {
		m.BodyLimit = 64 << 10
	}
}

// Provision applies the defaults, finds the auth module, loads (or on first start creates) the
// installation id and registers the /0.1 routes.
func (m *Module) Provision(ctx *core.Context) error {
	m.ApplyDefaults()
	mod, ok := ctx.Module(auth.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", auth.ModuleID, ModuleID)
	}
	m.auth = mod.(*auth.Module)
	m.tokens = m.auth.Tokens()
	m.tokens.SetPolicy(Dialect, token.Policy{Max: time.Duration(m.MaxExpiration) * time.Second})
	m.log = ctx.Logger
	m.db = ctx.DB()
	m.now = func() time.Time { return time.Now().UTC() }
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := InstallUUID(c, m.db)
	if err != nil {
		return err
	}
	m.install = id

	route := func(method, path string, h http.HandlerFunc) {
		// Each route also under /api/auth: today's wazo-auth-client's default prefix.
		for _, prefix := range []string{"", APIPrefix} {
			ctx.Handle(strings.TrimSpace(method+" "+prefix+path), m.logged(h))
		}
	}
	route("POST", "/0.1/token", m.create)
	route("GET", "/0.1/token/{token}", m.get) // and HEAD
	route("DELETE", "/0.1/token/{token}", m.delete)
	route("POST", "/0.1/token/{token}/scopes/check", m.scopesCheck)
	// The same, with the token in a header (or the scopes/check body) instead of the path.
	route("GET", "/0.1/token", m.get) // and HEAD
	route("DELETE", "/0.1/token", m.delete)
	route("POST", "/0.1/token/scopes/check", m.scopesCheck)
	route("GET", "/0.1/backends", m.backends)
	// Today's wazo-auth around tokens (wazo.go).
	route("GET", "/0.1/status", m.status) // and HEAD
	route("GET", "/0.1/tokens", m.refreshTokens)
	route("GET", "/0.1/users/{user}/tokens", m.userRefreshTokens)
	route("DELETE", "/0.1/users/{user}/tokens/{client_id}", m.deleteUserRefreshToken)
	route("GET", "/0.1/sessions", m.sessions)
	route("DELETE", "/0.1/sessions/{session}", m.deleteSession)
	route("GET", "/0.1/users/{user}/sessions", m.userSessions)
	route("DELETE", "/0.1/users/{user}/sessions/{session}", m.deleteUserSession)
	route("GET", "/0.1/users/{user}", m.getUser)
	route("", "/0.1/", m.notFound)
	return nil
}

// Validate checks the configuration.
func (m *Module) Validate() error {
	if m.MaxExpiration < 1 || m.MaxExpiration > MaxYear {
		return fmt.Errorf("max_expiration must be 1 .. %d seconds", MaxYear)
	}
	if m.DefaultExpiration < 1 || m.DefaultExpiration > m.MaxExpiration {
		return errors.New("default_expiration must be 1 .. max_expiration seconds")
	}
	for _, o := range m.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	if m.MaxUserSessions < -1 {
		return errors.New("max_user_sessions must be positive, or -1 for no cap")
	}
	return nil
}

// InstallUUID returns this installation's id (wazo's xivo_uuid), created at random on first use
// and kept in the meta table.
func InstallUUID(ctx context.Context, d *db.DB) (uuid.UUID, error) {
	fresh, err := uuid.NewRandom()
	if err != nil {
		return uuid.Nil, fmt.Errorf("installation id: %w", err)
	}
	if err := d.Write.WithContext(ctx).Exec(`INSERT INTO meta(key, value) VALUES ('install_uuid', ?)
		ON CONFLICT(key) DO NOTHING`, fresh.String()).Error; err != nil {
		return uuid.Nil, fmt.Errorf("installation id: %w", err)
	}
	var v string
	if err := d.Write.WithContext(ctx).Raw(`SELECT value FROM meta WHERE key = 'install_uuid'`).Scan(&v).Error; err != nil {
		return uuid.Nil, fmt.Errorf("installation id: %w", err)
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, fmt.Errorf("installation id %q in meta: %w", v, err)
	}
	return id, nil
}

// UserUUID returns the user's stable UUID as this API shows it (auth_id, xivo_user_uuid,
// metadata.uuid, and what "me" stands for in ACLs): a name-based (SHA-1) UUID of the user id in
// the installation's namespace. User ids are never reused, so neither are these.
func UserUUID(install uuid.UUID, userID int64) uuid.UUID {
	return uuid.NewSHA1(install, []byte("user:"+strconv.FormatInt(userID, 10)))
}

// statusWriter records the status of a response for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logged wraps a handler with a debug access-log line whose path has the token redacted.
func (m *Module) logged(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		m.log.Debug().Str("method", r.Method).Str("path", RedactPath(r.URL.Path)).
			Int("status", sw.status).Str("remote", r.RemoteAddr).Dur("took_ms", time.Since(start)).Msg("http")
	})
}
