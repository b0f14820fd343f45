// Package cert is the certificate module: users register public keys (RSA, Ed25519, ECDSA
// P-256), list and revoke them, and log in by proving possession of a registered key through
// a challenge–response (the sysadm dialect's auth_ssl uses it).
//
// Keys are stored by their SubjectPublicKeyInfo and identified by its SHA-256 fingerprint; a
// key belongs to one user. Registrations and revocations are written to the event log together
// with their audit entry (kind audit-user-event, target = the key's owner) and published on
// the bus as "cert.registered" and "cert.revoked"; events carry the fingerprint, never the key.
//
// Challenges live in memory only. Each is bound to a "bind" (one connection), single use,
// valid 30 seconds, at most one outstanding per bind; issuing them is rate limited per bind, per
// source address and globally, and the legacy RSA proof, which has to try every registered RSA key of the right
// size, is bounded in keys and in key checks per minute.
package cert

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// ModuleID is the cert module's ID.
const ModuleID = "cert"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the cert module. Its exported fields are its configuration.
type Module struct {
	// BindChallengesPerMinute is how many challenges one bind (connection) may get per minute,
	// with a burst of 5. Default 12.
	BindChallengesPerMinute int `json:"bind_challenges_per_minute"`
	// SourceChallengesPerMinute is how many challenges one source address (an IPv4 address or
	// an IPv6 /64), all its connections together, may get per minute, with a burst of 20.
	// Default 30.
	SourceChallengesPerMinute int `json:"source_challenges_per_minute"`
	// ChallengesPerSecond is how many challenges the whole server issues per second, with a
	// burst of 5 seconds' worth. Default 10.
	ChallengesPerSecond int `json:"challenges_per_second"`
	// LegacyMaxKeys is the most registered RSA keys a legacy proof tries. Default 64.
	LegacyMaxKeys int `json:"legacy_max_keys"`
	// LegacyChecksPerMinute is the budget of RSA key checks legacy proofs may spend per minute
	// across the server (burst: the whole budget). Default 4096.
	LegacyChecksPerMinute int `json:"legacy_checks_per_minute"`

	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	ch     *challenges
	// changes bounds how often callers below manager register and revoke keys
	// (resource.SelfServiceChangesPerMinute).
	changes *resource.ChangeBudget
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.BindChallengesPerMinute == 0 {
		m.BindChallengesPerMinute = 12
	}
	if m.SourceChallengesPerMinute == 0 {
		m.SourceChallengesPerMinute = 30
	}
	if m.ChallengesPerSecond == 0 {
		m.ChallengesPerSecond = 10
	}
	if m.LegacyMaxKeys == 0 {
		m.LegacyMaxKeys = 64
	}
	if m.LegacyChecksPerMinute == 0 {
		m.LegacyChecksPerMinute = 4096
	}
}

// Provision wires the module to the event log, prepares the challenge store and registers the
// Leosac calls cert.list, cert.register and cert.revoke.
func (m *Module) Provision(ctx *core.Context) error {
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.ApplyDefaults()
	m.log = ctx.Logger
	m.db = ctx.DB()
	m.ch = &challenges{
		binds:       make(map[string]*bindState),
		bindLimit:   rate.Limit(float64(m.BindChallengesPerMinute) / 60),
		sources:     make(map[string]*sourceState),
		sourceLimit: rate.Limit(float64(m.SourceChallengesPerMinute) / 60),
		global:      rate.NewLimiter(rate.Limit(m.ChallengesPerSecond), 5*m.ChallengesPerSecond),
		legacy:      rate.NewLimiter(rate.Limit(float64(m.LegacyChecksPerMinute)/60), m.LegacyChecksPerMinute),
		now:         time.Now,
	}
	m.changes = resource.NewChangeBudget()
	m.register(ctx.Methods())
	return nil
}

// Validate checks the limits.
func (m *Module) Validate() error {
	if m.BindChallengesPerMinute < 0 || m.SourceChallengesPerMinute < 0 || m.ChallengesPerSecond < 0 || m.LegacyChecksPerMinute < 0 {
		return errors.New("bind_challenges_per_minute, source_challenges_per_minute, challenges_per_second and legacy_checks_per_minute must be positive")
	}
	if m.LegacyMaxKeys < 0 || m.LegacyMaxKeys > 1024 {
		return errors.New("legacy_max_keys must be between 1 and 1024")
	}
	if m.LegacyChecksPerMinute < m.LegacyMaxKeys {
		return fmt.Errorf("legacy_checks_per_minute (%d) must be at least legacy_max_keys (%d)", m.LegacyChecksPerMinute, m.LegacyMaxKeys)
	}
	return nil
}

// FromContext returns the cert module for another module's Provision, or an error naming the
// module that must be loaded first.
func FromContext(ctx *core.Context) (*Module, error) {
	mod, ok := ctx.Module(ModuleID)
	if !ok {
		return nil, fmt.Errorf("the %q module must be loaded before %q", ModuleID, ctx.ID())
	}
	m, ok := mod.(*Module)
	if !ok {
		return nil, fmt.Errorf("module %q is not the cert module", ModuleID)
	}
	return m, nil
}
