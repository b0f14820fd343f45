// Package directory is the module that keeps the site's people: users (profiles, ranks,
// validity), groups and their memberships, and credentials (RFID cards, PIN codes, card + PIN).
// It serves the Leosac CRUD calls user.*, group.*, user-group-membership.*, credential.* and
// the searches over them. Every change is checked against the caller's current rights, written
// in one transaction together with its audit entry, and published on the bus
// ("user.created", "group.deleted", …) for the access engine and live clients.
package directory

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
)

// ModuleID is the directory module's ID.
const ModuleID = "directory"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the directory module.
type Module struct {
	// DisableUserView makes user.read always read the database instead of the in-memory view
	// of users (userview.go): for diagnosis, and for tests that compare the two.
	DisableUserView bool `json:"disable_user_view"`

	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	auth   *auth.Module
	pins   *PINHasher
	view   *userView // nil when disabled
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// Provision wires the module to the auth module and the event log and registers its calls.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(auth.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", auth.ModuleID, ModuleID)
	}
	m.auth = mod.(*auth.Module)
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	if m.pins, err = LoadPINHasher(ctx.Config().Data); err != nil {
		return err
	}
	m.log = ctx.Logger
	m.db = ctx.DB()
	if !m.DisableUserView {
		if m.view, err = newUserView(m.db, ctx.Bus(), m.log); err != nil {
			return err
		}
		// A small site's view is built before the first call; a large one's in Run, while
		// user.read reads the database.
		if err := m.view.buildIfSmall(context.Background()); err != nil {
			m.log.Error().Err(err).Msg("user view: build failed; it is retried in the background")
		}
	}
	reg := ctx.Methods()
	m.registerGroups(reg)
	m.registerUsers(reg)
	m.registerCredentials(reg)
	return nil
}

// Run keeps the in-memory view of users current (building it first on a large site) until ctx
// is done.
func (m *Module) Run(ctx context.Context) error {
	if m.view == nil {
		<-ctx.Done()
		return nil
	}
	return m.view.Run(ctx)
}

// Cleanup stops following changes.
func (m *Module) Cleanup() error {
	if m.view != nil {
		m.view.Close()
	}
	return nil
}

// PINs returns the keyed hasher of PIN codes (the access engine hashes a PIN read at a keypad
// the same way to find its credential).
func (m *Module) PINs() *PINHasher { return m.pins }
