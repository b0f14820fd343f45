// Package auth is the auth module: user accounts and their passwords, the first-start admin
// bootstrap, login throttling, the login calls of the Leosac dialect, and the core.Authority
// that resolves a session to its caller on every call. Tokens live in the token module, which
// must be listed before auth in the configuration.
package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/auth/throttle"
	"gatehouse/modules/token"
)

// ModuleID is the auth module's ID.
const ModuleID = "auth"

// Info declares the auth module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// ThrottleConfig is the configurable part of login throttling (see package throttle).
type ThrottleConfig struct {
	UserAddrLimit int           `json:"user_addr_limit"`
	AddrLimit     int           `json:"addr_limit"`
	UserLimit     int           `json:"user_limit"`
	Window        core.Duration `json:"window"`
	BaseDelay     core.Duration `json:"base_delay"`
	MaxDelay      core.Duration `json:"max_delay"`
	// DeviceLimit is each device token's budget of failures within Window (default 5).
	DeviceLimit int `json:"device_limit"`
	// DeviceLifetime is how long a device token stays valid after the login that issued it
	// (default 90 days).
	DeviceLifetime core.Duration `json:"device_lifetime"`
}

// Module is the auth module. Its exported fields are its configuration.
type Module struct {
	// PasswordHash are the argon2id parameters for new hashes (default 19 MiB, t=2, p=1).
	PasswordHash password.Params `json:"password_hash"`
	// HashConcurrency bounds password hashes running at once (default GOMAXPROCS).
	HashConcurrency int `json:"hash_concurrency"`
	// MinPasswordLength is the shortest password accepted when setting one (default 8).
	MinPasswordLength int `json:"min_password_length"`
	// Throttle configures login throttling.
	Throttle ThrottleConfig `json:"throttle"`

	log           zerolog.Logger
	db            *db.DB
	dataDir       string
	throttleCfg   throttle.Config
	devices       *deviceSigner
	gate          hostGate
	verifications atomic.Int64
	users         *Users
	hasher        *password.Hasher
	throttle      *throttle.Throttle
	tokens        *token.Store
	tokenMod      *token.Module
	bus           *core.Bus
	now           func() time.Time
	// initialUser is the ID of the user still on the generated first-start password (0: none);
	// whoami reports it so that the dashboard asks for a change.
	initialUser atomic.Int64
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
	_ core.Authority   = (*Module)(nil)
)

// Provision wires the module to the token store, registers the login calls, installs itself as
// the Authority and, on first start, creates the admin user.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(token.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", token.ModuleID, ModuleID)
	}
	m.tokenMod = mod.(*token.Module)
	m.tokens = m.tokenMod.Store()
	if m.MinPasswordLength <= 0 {
		m.MinPasswordLength = 8
	}
	m.log = ctx.Logger
	m.bus = ctx.Bus()
	m.now = func() time.Time { return time.Now().UTC() }
	m.users = NewUsers(ctx.DB())
	m.db, m.dataDir = ctx.DB(), ctx.Config().Data
	m.hasher = password.NewHasher(m.PasswordHash, m.HashConcurrency)
	m.throttleCfg = throttle.Config{
		UserAddrLimit: m.Throttle.UserAddrLimit,
		AddrLimit:     m.Throttle.AddrLimit,
		UserLimit:     m.Throttle.UserLimit,
		DeviceLimit:   m.Throttle.DeviceLimit,
		Window:        m.Throttle.Window.D(),
		BaseDelay:     m.Throttle.BaseDelay.D(),
		MaxDelay:      m.Throttle.MaxDelay.D(),
	}
	m.throttle = throttle.New(m.throttleCfg)
	m.register(ctx.Methods())
	ctx.Methods().SetAuthority(m)

	bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := loadDeviceKey(bctx, m.db)
	if err != nil {
		return err
	}
	lifetime := m.Throttle.DeviceLifetime.D()
	if lifetime <= 0 {
		lifetime = 90 * 24 * time.Hour
	}
	m.devices = &deviceSigner{key: key, lifetime: lifetime}
	if err := m.loadLoginState(bctx); err != nil {
		return err
	}
	if err := m.bootstrap(bctx, ctx.Config(), ctx); err != nil {
		return err
	}
	id, err := InitialPasswordUser(bctx, m.db)
	if err != nil {
		return err
	}
	m.initialUser.Store(id)
	return nil
}

// Users returns the user store.
func (m *Module) Users() *Users { return m.users }

// Hasher returns the password hasher.
func (m *Module) Hasher() *password.Hasher { return m.hasher }

// Tokens returns the token store.
func (m *Module) Tokens() *token.Store { return m.tokens }

// Run sweeps idle throttle records and expired persisted login state until ctx is done.
func (m *Module) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.throttle.Sweep()
			m.sweepLoginState(ctx)
		}
	}
}

// InitialPasswordFile is the file in the data directory that receives a generated admin
// password on first start.
const InitialPasswordFile = core.InitialPasswordFile

// bootstrap creates the admin user when there is no user at all. Its password is
// GATEHOUSE_ADMIN_PASSWORD if set; otherwise a random one, printed once to the operator output
// and written to <data>/initial-admin-password with mode 0600. There is no default password.
func (m *Module) bootstrap(ctx context.Context, cfg core.Config, cctx *core.Context) error {
	n, err := m.users.Count(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if n > 0 {
		return nil
	}
	pw, generated := cfg.AdminPassword, false
	if pw == "" {
		if pw, err = password.Generate(20); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		generated = true
	} else if len(pw) < m.MinPasswordLength {
		return fmt.Errorf("bootstrap: %sADMIN_PASSWORD is shorter than %d characters", core.EnvPrefix, m.MinPasswordLength)
	}
	hash, err := m.hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	admin := &User{Username: "admin", PasswordHash: hash, Firstname: "Admin", Rank: core.RankAdministrator, ValidityEnabled: true}
	if err := m.users.Create(ctx, admin); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	// The hash borrowed tens of MiB for a one-off; give them back now rather than whenever the
	// scavenger gets to it, so a fresh server idles small.
	debug.FreeOSMemory()
	if !generated {
		m.log.Info().Str("username", "admin").Msg("created admin user with the password from " + core.EnvPrefix + "ADMIN_PASSWORD")
		return nil
	}
	if err := setInitialPasswordUser(ctx, m.db, admin.ID); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	path := filepath.Join(cfg.Data, InitialPasswordFile)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("bootstrap: write %s: %w", path, err)
	}
	fmt.Fprintf(cctx.Out(), "\ngatehouse: created user \"admin\" with password %s\n"+
		"gatehouse: it is also in %s (mode 0600); change it after logging in.\n\n", pw, path)
	m.log.Info().Str("username", "admin").Str("file", path).Msg("created admin user with a generated password")
	return nil
}

// Resolve implements core.Authority: it checks the session's token (sliding its idle timeout)
// and its owner's validity, and returns the caller's current identity, or ends the session
// and answers SESSION_ABORTED.
func (m *Module) Resolve(ctx context.Context, s *core.Session) (*core.Identity, error) {
	hash, _, ok := s.Token()
	if !ok {
		return nil, core.ErrPermissionDenied
	}
	tok, err := m.tokens.UseVia(ctx, hash, s.Dialect)
	if errors.Is(err, token.ErrInvalid) {
		m.abort(s, hash)
		return nil, core.E(core.SessionAborted, "Session aborted: the token expired or was revoked.", nil)
	}
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	u, err := m.users.Get(ctx, tok.UserID)
	if errors.Is(err, ErrNoUser) || err == nil && !u.ValidAt(m.now()) {
		m.abort(s, hash)
		return nil, core.E(core.SessionAborted, "Session aborted: the account is disabled or no longer valid.", nil)
	}
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	return &core.Identity{UserID: u.ID, Username: u.Username, Rank: u.Rank, TokenID: tok.ID}, nil
}

// Check implements core.Authority: Resolve without sliding the token and without ending the
// session (the next call will).
func (m *Module) Check(ctx context.Context, s *core.Session) (*core.Identity, error) {
	hash, _, ok := s.Token()
	if !ok {
		return nil, core.ErrPermissionDenied
	}
	// Checks come once per pushed event per subscriber: the answer is remembered on the
	// session until a token is revoked or a user changes anywhere, or the token's deadline or
	// the account's validity end passes, whichever comes first.
	now := m.now()
	gen := m.tokens.Generation() + m.users.Generation() // both only grow: the sum moves when either does
	if c := s.Checked(); c != nil && c.TokenHash == hash && c.Gen == gen && now.Before(c.Until) {
		id := c.Identity
		return &id, nil
	}
	tok, err := m.tokens.PeekVia(ctx, hash, s.Dialect)
	if err != nil {
		return nil, core.E(core.SessionAborted, "Session aborted.", err)
	}
	u, err := m.users.Get(ctx, tok.UserID)
	if err != nil || !u.ValidAt(now) {
		return nil, core.E(core.SessionAborted, "Session aborted.", err)
	}
	id := core.Identity{UserID: u.ID, Username: u.Username, Rank: u.Rank, TokenID: tok.ID}
	until := tok.Deadline()
	if u.ValidityEnd != nil && u.ValidityEnd.Before(until) {
		until = *u.ValidityEnd
	}
	s.SetChecked(&core.CheckedIdentity{Identity: id, TokenHash: hash, Gen: gen, Until: until})
	return &id, nil
}

func (m *Module) abort(s *core.Session, hash string) {
	m.tokens.Detach(hash, s)
	s.Logout()
}

// Release implements core.Authority.
func (m *Module) Release(s *core.Session) {
	if hash, _, ok := s.Token(); ok {
		m.tokens.Detach(hash, s)
	}
}
