// Package audit is the module that reads the audit trail and the server's recent logs back to
// operators (audit.get, get_logs), records API logins in the event log, and answers the
// Leosac system calls that gatehouse keeps for compatibility (restart, and the update
// management calls, which have nothing to manage here).
package audit

import (
	"context"
	"fmt"

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

// Module is the audit module. It has no configuration.
type Module struct {
	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	ctx    *core.Context
	// logins receives the auth module's login events (subscribed in Provision so that no
	// login between the start of serving and the start of Run is missed; read by Run).
	logins *core.Subscription
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// Provision wires the module to the event log, subscribes to the login events and registers
// its calls.
func (m *Module) Provision(ctx *core.Context) error {
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.log = ctx.Logger
	m.db = ctx.DB()
	m.ctx = ctx
	m.logins, err = ctx.Bus().Subscribe(core.SubscribeOptions{Name: "audit-logins", Queue: loginQueue, OnFull: core.Stall}, "auth.>")
	if err != nil {
		return fmt.Errorf("subscribe to login events: %w", err)
	}
	m.register(ctx.Methods())
	return nil
}

// Run records the API logins published by the auth module in the event log, in batches, until
// ctx is done; it then writes what it had received and returns nil.
func (m *Module) Run(ctx context.Context) error {
	newLoginRecorder(m.log, m.db, m.events, m.logins).run(ctx)
	return nil
}

// Cleanup ends the login subscription.
func (m *Module) Cleanup() error {
	if m.logins != nil {
		m.logins.Close()
	}
	return nil
}

func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "audit.get", Handler: m.auditGet},
		core.Method{Type: "get_logs", Handler: m.getLogs},
		core.Method{Type: "restart", Handler: m.restart},
		core.Method{Type: "check_update", Handler: m.checkUpdate},
		core.Method{Type: "get_update_history", Handler: m.updateList},
		core.Method{Type: "get_pending_update", Handler: m.updateList},
		core.Method{Type: "get_update", Handler: m.getUpdate},
		core.Method{Type: "create_update", Handler: m.createUpdate},
		core.Method{Type: "ack_update", Handler: m.changeUpdate},
		core.Method{Type: "cancel_update", Handler: m.changeUpdate},
	)
}
