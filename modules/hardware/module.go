// Package hardware is the module behind the hardware pages of Leosac's web GUI: it serves
// libgpiod.gpio.*, led.*, buzzer.* and wiegand-reader.* (read, create, update, delete each)
// over the hardware_devices table, in the shapes of Leosac 0.8's hardware modules (reference
// §3.10; S:src/hardware/serializers/, S:src/modules/led-buzzer/ws/CRUDHandler.cpp,
// S:src/modules/wiegand/ws/; the GUI's models at W:app/models and W:lib/*/addon/models are
// the contract for libgpiod, which Leosac's server does not serve).
//
// Ids are UUID strings. Every call is for administrators only, as Leosac's HARDWARE_* rights.
// Like Leosac, these calls write no audit entry; each change is published on the bus as
// "hardware.created", "hardware.updated" or "hardware.deleted" with {"id", "type"}, which the
// wiegand module follows: an access point whose controller-module is "wiegand" and whose
// config is {"reader": "<wiegand-reader id>"} reads cards on that reader's GPIO lines, in its
// mode, and drives its green LED on a grant and its buzzer on a denial.
package hardware

import (
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
)

// ModuleID is the module's ID.
const ModuleID = "hardware"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the hardware module.
type Module struct {
	log zerolog.Logger
	db  *db.DB
	bus *core.Bus
}

var _ core.Provisioner = (*Module)(nil)

// Provision registers the module's calls.
func (m *Module) Provision(ctx *core.Context) error {
	m.log, m.db, m.bus = ctx.Logger, ctx.DB(), ctx.Bus()
	for _, k := range kinds {
		ctx.Methods().Register(
			core.Method{Type: k.prefix + ".read", Handler: m.read(k)},
			core.Method{Type: k.prefix + ".create", Handler: m.create(k)},
			core.Method{Type: k.prefix + ".update", Handler: m.update(k)},
			core.Method{Type: k.prefix + ".delete", Handler: m.remove(k)},
		)
	}
	return nil
}
