// Package audit is the module that reads the audit trail and the server's recent logs back to
// operators (audit.get, get_logs), records API logins in the event log, and answers the
// Leosac system calls that gatehouse keeps for compatibility (restart, and the update
// management calls, which have nothing to manage here).
package audit

import (
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// ModuleID is the audit module's ID.
const ModuleID = "audit"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the audit module.
type Module struct {
	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	ctx    *core.Context
}

var _ core.Provisioner = (*Module)(nil)

// Provision wires the module to the event log and registers its calls.
func (m *Module) Provision(ctx *core.Context) error {
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.log = ctx.Logger
	m.db = ctx.DB()
	m.ctx = ctx
	m.register(ctx.Methods())
	return nil
}

func (m *Module) register(reg *core.Methods) {}
