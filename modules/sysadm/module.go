// Package sysadm is the TrueOS sysadm dialect (contract §6, reference auth-protocols.md part
// A): a websocket at /sysadm (and at / on the sysadm listener, and for a websocket upgrade at /
// on the main listener) speaking {"namespace","name","id","args"} envelopes, and the same
// calls over REST at /<namespace>/<name>. It authenticates through the auth module (password,
// token, certificate challenge, or the peer credentials of the Unix socket listener), serves
// rpc/query, rpc/identify, rpc/settings (certificates), the events namespace (live pushes from
// the event log), and the whole gatehouse API as namespace "gatehouse".
package sysadm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/auth"
	"gatehouse/modules/cert"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/token"
	"gatehouse/modules/wsconn"
)

// ModuleID is the sysadm module's ID.
const ModuleID = core.SysadmModuleID

// Dialect names the sysadm dialect in sessions, tokens and login events.
const Dialect = "sysadm"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the sysadm dialect. Its exported fields are its configuration; zero values take the
// documented defaults.
type Module struct {
	// Path is where the websocket is served. Default "/sysadm".
	Path string `json:"path"`
	// Settings are the keys shared with the other websocket dialects, with their defaults
	// (wsconn.Settings.ApplyDefaults); read_limit also bounds a REST body, and excess requests
	// are answered 429.
	wsconn.Settings
	// AuthWindow is how long a connection may stay unauthenticated. Default 30s.
	AuthWindow core.Duration `json:"auth_window"`
	// IdleTimeout closes a connection that sent nothing for that long. Default 10m.
	IdleTimeout core.Duration `json:"idle_timeout"`
	// TokenIdle and TokenMax are the sliding idle timeout and the absolute lifetime of the
	// tokens this dialect issues. Defaults 5m and 24h.
	TokenIdle core.Duration `json:"token_idle"`
	TokenMax  core.Duration `json:"token_max"`
	// UnixUsers maps operating-system users (by name or numeric uid) to gatehouse usernames: a
	// client on the Unix socket listener whose peer uid maps to a user is logged in as that
	// user without a password. Connections over TCP never are, whatever their address.
	UnixUsers map[string]string `json:"unix_users"`

	log      zerolog.Logger
	methods  *core.Methods
	auth     *auth.Module
	tokens   *token.Store
	certs    *cert.Module  // nil when the cert module is not loaded
	events   *eventlog.Log // nil when the eventlog module is not loaded
	hostname string

	hub  *wsconn.Hub        // the websocket connections
	slow prometheus.Counter // clients closed because they could not keep up

	// queryByRank holds the rpc/query answer of each rank, encoded on first use: it depends only
	// on the rank and the method registry, which is complete once the modules are provisioned
	// (before the first request).
	queryByRank [core.RankAdministrator + 1]atomic.Pointer[json.RawMessage]
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// Provision applies defaults, finds the auth (required), cert and eventlog (optional) modules,
// and registers the websocket and REST routes.
func (m *Module) Provision(ctx *core.Context) error {
	m.ApplyDefaults()
	mod, ok := ctx.Module(auth.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", auth.ModuleID, ModuleID)
	}
	m.auth = mod.(*auth.Module)
	m.tokens = m.auth.Tokens()
	m.tokens.SetPolicy(Dialect, token.Policy{Idle: m.TokenIdle.D(), Max: m.TokenMax.D()})
	if _, ok := ctx.Module("cert"); ok {
		c, err := cert.FromContext(ctx)
		if err != nil {
			return fmt.Errorf("sysadm: %w", err)
		}
		m.certs = c
	}
	if _, ok := ctx.Module(eventlog.ModuleID); ok {
		l, err := eventlog.FromContext(ctx)
		if err != nil {
			return fmt.Errorf("sysadm: %w", err)
		}
		m.events = l
	}
	m.log = ctx.Logger
	m.methods = ctx.Methods()
	m.hostname, _ = os.Hostname()
	cfg := m.Config()
	cfg.AuthWindow, cfg.IdleTimeout = m.AuthWindow.D(), m.IdleTimeout.D()
	m.slow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_sysadm_slow_consumers_total", Help: "sysadm websocket clients closed because they could not keep up."})
	if err := ctx.Metrics().Register(m.slow); err != nil {
		return fmt.Errorf("sysadm: %w", err)
	}
	cfg.OnSlow = m.slow.Inc
	m.hub = wsconn.NewHub(cfg, "sysadm", m.log)
	ctx.Handle("GET "+m.Path, http.HandlerFunc(m.serveWS))
	// The sysadm listener (sysadm_listen) serves the websocket at the root, as TrueOS sysadm's
	// server does; a websocket upgrade for "/" on the main listener lands there too.
	ctx.HandleSysadm("GET /{$}", http.HandlerFunc(m.serveWS))
	for _, ns := range restNamespaces {
		for _, verb := range []string{"GET", "POST", "PUT"} {
			ctx.Handle(verb+" /"+ns+"/{name}", http.HandlerFunc(m.serveREST))
			ctx.HandleSysadm(verb+" /"+ns+"/{name}", http.HandlerFunc(m.serveREST))
		}
	}
	return nil
}

// ApplyDefaults implements core.Defaulter: the path, the shared websocket settings and the
// sysadm timers.
func (m *Module) ApplyDefaults() {
	setD := func(d *core.Duration, def time.Duration) {
		if *d == 0 {
			*d = core.Duration(def)
		}
	}
	if m.Path == "" {
		m.Path = "/sysadm"
	}
	m.Settings.ApplyDefaults()
	setD(&m.AuthWindow, 30*time.Second)
	setD(&m.IdleTimeout, 10*time.Minute)
	setD(&m.TokenIdle, 5*time.Minute)
	setD(&m.TokenMax, 24*time.Hour)
}

// Validate checks the timers and the Unix user map.
func (m *Module) Validate() error {
	var errs []error
	for name, d := range map[string]core.Duration{"auth_window": m.AuthWindow, "idle_timeout": m.IdleTimeout,
		"token_max": m.TokenMax, "ping_interval": m.PingInterval, "ping_timeout": m.PingTimeout,
		"write_timeout": m.WriteTimeout, "call_timeout": m.CallTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if m.TokenIdle < 0 || m.TokenIdle > 0 && m.TokenIdle.D() < time.Second {
		errs = append(errs, errors.New("token_idle must be 0 (none) or at least 1s"))
	}
	for k, v := range m.UnixUsers {
		if k == "" || v == "" {
			errs = append(errs, fmt.Errorf("unix_users: %q → %q: both sides must be set", k, v))
		}
	}
	return errors.Join(errs...)
}

// Run waits for ctx, then closes every websocket with 1001 after writing what was queued for it,
// and returns when all of them have ended.
func (m *Module) Run(ctx context.Context) error { return m.hub.Run(ctx) }

// Connections returns the number of open websocket connections.
func (m *Module) Connections() int { return m.hub.Len() }

// remoteOf names the client of a request: its TCP address, or for the Unix socket the peer's
// uid (the throttling key: one per local user, never shared with TCP clients).
func remoteOf(r *http.Request) string {
	if cred, ok := core.PeerCred(r.Context()); ok {
		return "unix(uid=" + strconv.FormatUint(uint64(cred.UID), 10) + ")"
	}
	return r.RemoteAddr
}

// peerLogin logs the client in when the request came over the Unix socket from a uid that
// unix_users maps to a gatehouse user. It reports whether it did.
func (m *Module) peerLogin(ctx context.Context, r *http.Request, cl *client) bool {
	cred, ok := core.PeerCred(r.Context())
	if !ok || len(m.UnixUsers) == 0 {
		return false
	}
	uid := strconv.FormatUint(uint64(cred.UID), 10)
	name, mapped := "", false
	if u, err := user.LookupId(uid); err == nil {
		name, mapped = m.UnixUsers[u.Username]
	}
	if !mapped {
		name, mapped = m.UnixUsers[uid]
	}
	if !mapped {
		return false
	}
	u, err := m.auth.Users().ByUsername(ctx, name)
	if err != nil {
		cl.log.Warn().Err(err).Str("uid", uid).Str("username", name).Msg("unix_users maps to an unknown user")
		return false
	}
	res, err := m.auth.LoginUser(ctx, u.ID, m.loginRequest(cl.sess), "peercred")
	if err != nil || res.Outcome != auth.Granted {
		cl.log.Warn().Err(err).Str("uid", uid).Str("username", name).Msg("peer credential login refused")
		return false
	}
	m.adopt(cl, res, true)
	cl.log.Debug().Str("uid", uid).Int64("user_id", u.ID).Msg("logged in by peer credentials")
	return true
}

// loginRequest describes a token of this dialect for a session.
func (m *Module) loginRequest(s *core.Session) auth.LoginRequest {
	return auth.LoginRequest{Remote: s.Remote, UserAgent: s.UserAgent, Dialect: Dialect,
		Lifetime: m.TokenMax.D(), Idle: m.TokenIdle.D()}
}
