package eventlog

import (
	"context"
	"time"

	"gatehouse/core"
)

// ModuleID is the event log module's ID.
const ModuleID = "eventlog"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module owns the Log. Modules that append events list it before themselves.
type Module struct {
	log *Log
}

var _ core.Provisioner = (*Module)(nil)

// Provision opens the log.
func (m *Module) Provision(ctx *core.Context) error {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(c, ctx.DB(), ctx.Bus())
	if err != nil {
		return err
	}
	m.log = l
	return nil
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
