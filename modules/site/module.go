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

// register adds the module's calls to the registry. Every one needs a logged-in caller; finer
// rights are checked by each handler (and, for changes, inside the write transaction).
func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "door.read", Handler: m.doorRead},
		core.Method{Type: "door.create", Handler: m.doorCreate},
		core.Method{Type: "door.update", Handler: m.doorUpdate},
		core.Method{Type: "door.delete", Handler: m.doorDelete},
		core.Method{Type: "access_point.read", Handler: m.accessPointRead},
		core.Method{Type: "access_point.create", Handler: m.accessPointCreate},
		core.Method{Type: "access_point.update", Handler: m.accessPointUpdate},
		core.Method{Type: "access_point.delete", Handler: m.accessPointDelete},
		core.Method{Type: "zone.read", Handler: m.zoneRead},
		core.Method{Type: "zone.create", Handler: m.zoneCreate},
		core.Method{Type: "zone.update", Handler: m.zoneUpdate},
		core.Method{Type: "zone.delete", Handler: m.zoneDelete},
		core.Method{Type: "schedule.read", Handler: m.scheduleRead},
		core.Method{Type: "schedule.create", Handler: m.scheduleCreate},
		core.Method{Type: "schedule.update", Handler: m.scheduleUpdate},
		core.Method{Type: "schedule.delete", Handler: m.scheduleDelete},
		core.Method{Type: "search.door_alias", Handler: m.searchDoorAlias},
		core.Method{Type: "search.access_point_alias", Handler: m.searchAccessPointAlias},
		core.Method{Type: "search.hardware_name", Handler: m.searchHardwareName},
		core.Method{Type: "search.schedule_name", Handler: m.searchScheduleName},
		core.Method{Type: "search.zone_alias", Handler: m.searchZoneAlias},
		core.Method{Type: "access_overview", Handler: m.accessOverview},
	)
}
