package token

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
)

// ModuleID is the token module's ID.
const ModuleID = "token"

// Info declares the token module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Lifetime is the idle timeout and absolute lifetime of the tokens one dialect issues.
type Lifetime struct {
	Idle core.Duration `json:"idle"`
	Max  core.Duration `json:"max"`
}

// Module owns the token Store and its housekeeping: slides are flushed every FlushInterval and
// expired tokens purged every PurgeInterval.
type Module struct {
	// MaxLifetime caps every token's absolute lifetime, whatever dialect minted it (a token API
	// request for a year gets this much) and whatever dialect uses it. Default 7 days.
	MaxLifetime core.Duration `json:"max_lifetime"`
	// Leosac is the lifetime of Leosac-dialect tokens, and the policy any token obeys when
	// used on the Leosac websocket (see Store.SetPolicy). Default idle 20m, max 7 days.
	Leosac Lifetime `json:"leosac"`
	// FlushInterval is how often slid expiries are written back. Default 5s.
	FlushInterval core.Duration `json:"flush_interval"`
	// PurgeInterval is how often expired tokens are deleted. Default 1m.
	PurgeInterval core.Duration `json:"purge_interval"`

	store *Store
	log   zerolog.Logger
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Validator    = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.MaxLifetime == 0 {
		m.MaxLifetime = core.Duration(7 * 24 * time.Hour)
	}
	if m.Leosac.Idle == 0 {
		m.Leosac.Idle = core.Duration(20 * time.Minute)
	}
	if m.Leosac.Max == 0 {
		m.Leosac.Max = core.Duration(7 * 24 * time.Hour)
	}
	if m.FlushInterval == 0 {
		m.FlushInterval = core.Duration(5 * time.Second)
	}
	if m.PurgeInterval == 0 {
		m.PurgeInterval = core.Duration(time.Minute)
	}
}

// Provision creates the store (with the server-wide cap and the Leosac dialect's policy) and
// registers token.list and token.revoke.
func (m *Module) Provision(ctx *core.Context) error {
	m.ApplyDefaults()
	m.log = ctx.Logger
	m.store = NewStore(ctx.DB(), ctx.Bus(), ctx.Logger)
	m.store.SetMaxLifetime(m.MaxLifetime.D())
	m.store.SetPolicy(DialectLeosac, Policy{Idle: m.Leosac.Idle.D(), Max: m.Leosac.Max.D()})
	m.register(ctx.Methods())
	return nil
}

// Validate checks the durations.
func (m *Module) Validate() error {
	if m.MaxLifetime < core.Duration(time.Second) {
		return errors.New("max_lifetime must be at least 1s")
	}
	if m.Leosac.Idle < 0 || m.Leosac.Max <= 0 {
		return errors.New("leosac token lifetime: idle must be >= 0 and max > 0")
	}
	if m.Leosac.Idle > 0 && m.Leosac.Idle.D() < time.Second {
		return errors.New("leosac token lifetime: idle must be 0 (none) or at least 1s")
	}
	if m.FlushInterval <= 0 || m.PurgeInterval <= 0 {
		return errors.New("flush_interval and purge_interval must be positive")
	}
	return nil
}

// Store returns the token store.
func (m *Module) Store() *Store { return m.store }

// LeosacLifetime returns the idle timeout and the absolute lifetime of Leosac-dialect tokens
// (the latter within MaxLifetime).
func (m *Module) LeosacLifetime() (idle, max time.Duration) {
	return m.Leosac.Idle.D(), min(m.Leosac.Max.D(), m.MaxLifetime.D())
}

// Run flushes slides and purges expired tokens until ctx is done.
func (m *Module) Run(ctx context.Context) error {
	flush := time.NewTicker(m.FlushInterval.D())
	defer flush.Stop()
	purge := time.NewTicker(m.PurgeInterval.D())
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-flush.C:
			if err := m.store.Flush(ctx); err != nil && ctx.Err() == nil {
				m.log.Error().Err(err).Msg("token flush failed")
			}
		case <-purge.C:
			n, err := m.store.Purge(ctx)
			if err != nil && ctx.Err() == nil {
				m.log.Error().Err(err).Msg("token purge failed")
			} else if n > 0 {
				m.log.Debug().Int64("tokens", n).Msg("purged expired tokens")
			}
		}
	}
}

// Cleanup writes pending slides, so a restart keeps tokens alive as they were.
func (m *Module) Cleanup() error {
	if m.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.store.Flush(ctx)
}
