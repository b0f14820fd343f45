package eventlog

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
)

// ModuleID is the event log module's ID.
const ModuleID = "eventlog"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module owns the Log and enforces its retention. Modules that append events list it before
// themselves.
type Module struct {
	// Retention is how long events are kept. Default 90 days.
	Retention core.Duration `json:"retention"`
	// RetentionInterval is how often old events are deleted. Default 1 hour.
	RetentionInterval core.Duration `json:"retention_interval"`
	// RetentionBatch is the most events deleted per transaction. Default 5000.
	RetentionBatch int `json:"retention_batch"`

	log    *Log
	logger zerolog.Logger
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.Retention <= 0 {
		m.Retention = core.Duration(90 * 24 * time.Hour)
	}
	if m.RetentionInterval <= 0 {
		m.RetentionInterval = core.Duration(time.Hour)
	}
	if m.RetentionBatch <= 0 {
		m.RetentionBatch = 5000
	}
}

// Provision opens the log.
func (m *Module) Provision(ctx *core.Context) error {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(c, ctx.DB(), ctx.Bus(), ctx.Logger)
	if err != nil {
		return err
	}
	m.log = l
	m.logger = ctx.Logger
	m.ApplyDefaults()
	return nil
}

// Run deletes events older than the retention period, at start and then every
// RetentionInterval, until ctx is done.
func (m *Module) Run(ctx context.Context) error {
	t := time.NewTicker(m.RetentionInterval.D())
	defer t.Stop()
	for {
		n, err := m.log.Prune(ctx, time.Now().Add(-m.Retention.D()), m.RetentionBatch)
		if err != nil && ctx.Err() == nil {
			m.logger.Error().Err(err).Msg("event retention failed")
		} else if n > 0 {
			m.logger.Info().Int64("events", n).Msg("deleted events past retention")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Log returns the event log.
func (m *Module) Log() *Log { return m.log }

// FromContext returns the event log of a module's context, or an error naming the module that
// must be loaded first.
func FromContext(ctx *core.Context) (*Log, error) {
	mod, ok := ctx.Module(ModuleID)
	if !ok {
		return nil, errMissing(ctx.ID())
	}
	return mod.(*Module).Log(), nil
}
