// Package portal is the LemonLDAP::NG REST portal dialect (contract §8): a JSON login at
// POST / that answers a 64-hex session id and sets the "lemonldap" cookie, plus the session
// endpoints LemonLDAP::NG clients use (/mysession/?whoami, /ping, DELETE /session/my,
// /?logout=1). The session id is a token of the one token store, so it also works in every
// other dialect (Leosac authenticate_with_token, /0.1/token/{t}, …) and any dialect's token
// works as the cookie.
//
// Differences from LemonLDAP::NG, on purpose: a login whose Origin is not this server is
// refused (error 81), which closes LemonLDAP::NG's login-CSRF hole (Accept is a CORS-safelisted
// header); the cookie is SameSite=Lax and Secure under TLS; unknown user and bad password both
// answer error 5; failed logins are throttled (error 86, HTTP 429); JSON bodies are accepted as
// well as forms; error codes are always numbers.
package portal

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
	"gatehouse/web"
)

// ModuleID is the module's ID.
const ModuleID = "portal"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the portal. Its exported fields are its configuration; zero values take the
// documented defaults.
type Module struct {
	// Lifetime is a portal session's absolute lifetime. Default 20h (LemonLDAP::NG's timeout).
	Lifetime core.Duration `json:"lifetime"`
	// Idle ends a session unused for this long. Default 0: none (LemonLDAP::NG's
	// timeoutActivity).
	Idle core.Duration `json:"idle"`
	// CookieName is the session cookie's name. Default "lemonldap".
	CookieName string `json:"cookie_name"`
	// PortalURL is the URL sent in WWW-Authenticate: SSO <url>. Default: this server's URL as the
	// request reached it.
	PortalURL string `json:"portal_url"`
	// AllowedOrigins are browser origins besides this server's own allowed to log in, e.g.
	// "https://intranet.example.com".
	AllowedOrigins []string `json:"allowed_origins"`
	// BodyLimit bounds a login body in bytes. Default 64 KiB.
	BodyLimit int64 `json:"body_limit"`

	log    zerolog.Logger
	auth   *auth.Module
	tokens *token.Store
	web    http.Handler
	now    func() time.Time
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.Lifetime == 0 {
		m.Lifetime = core.Duration(20 * time.Hour)
	}
	if m.CookieName == "" {
		m.CookieName = "lemonldap"
	}
	if m.BodyLimit <= 0 {
		m.BodyLimit = 64 << 10
	}
}

// Provision applies the defaults, finds the auth module and registers the routes: POST / and
// GET / (which hands what is not the portal's to the dashboard), GET /ping, GET /mysession/,
// DELETE /session/my.
func (m *Module) Provision(ctx *core.Context) error {
	m.ApplyDefaults()
	mod, ok := ctx.Module(auth.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", auth.ModuleID, ModuleID)
	}
	m.auth = mod.(*auth.Module)
	m.tokens = m.auth.Tokens()
	m.tokens.SetPolicy(token.DialectPortal, token.Policy{Idle: m.Idle.D(), Max: m.Lifetime.D()})
	m.log = ctx.Logger
	m.web = web.Handler()
	m.now = func() time.Time { return time.Now().UTC() }

	ctx.Handle("POST /{$}", http.HandlerFunc(m.login))
	ctx.Handle("GET /{$}", http.HandlerFunc(m.root))
	ctx.Handle("GET /ping", http.HandlerFunc(m.ping))
	ctx.Handle("GET /mysession/", http.HandlerFunc(m.mysession))
	ctx.Handle("DELETE /session/my", http.HandlerFunc(m.deleteSession))
	return nil
}

// Validate checks the configuration.
func (m *Module) Validate() error {
	if m.Lifetime < core.Duration(time.Second) || m.Idle < 0 {
		return errors.New("lifetime must be at least 1s and idle not negative")
	}
	if strings.ContainsAny(m.CookieName, " ;=,\t\r\n\"") {
		return fmt.Errorf("cookie_name %q is not a valid cookie name", m.CookieName)
	}
	for _, o := range m.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port])", o)
		}
	}
	return nil
}
