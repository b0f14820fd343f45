// Package directory is the module that keeps the site's people: users (profiles, ranks,
// validity), groups and their memberships, and credentials (RFID cards, PIN codes, card + PIN).
// It serves the Leosac CRUD calls user.*, group.*, user-group-membership.*, credential.* and
// the searches over them. Every change is checked against the caller's current rights, written
// in one transaction together with its audit entry, and published on the bus
// ("user.created", "group.deleted", …) for the access engine and live clients.
package directory

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
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
	// DisableUsernameIndex makes search.user_username always search the database instead of
	// the in-memory index of usernames (usernames.go): for diagnosis, and for tests and
	// benchmarks that compare the two.
	DisableUsernameIndex bool `json:"disable_username_index"`

	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	auth   *auth.Module
	pins   *PINHasher
	view   *userView      // nil when disabled
	names  *usernameIndex // nil when disabled
	// changes bounds how often callers below manager change what they may change (their
	// account, the groups they administer): resource.SelfServiceChangesPerMinute.
	changes *resource.ChangeBudget
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
	m.changes = resource.NewChangeBudget()
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
	if !m.DisableUsernameIndex {
		if m.names, err = newUsernameIndex(m.db, ctx.Bus(), m.log); err != nil {
			return err
		}
		// One query of every (id, username): some tens of milliseconds on a large site.
		if err := m.names.build(context.Background()); err != nil {
			m.log.Error().Err(err).Msg("username index: build failed; it is retried in the background")
		}
	}
	reg := ctx.Methods()
	m.registerGroups(reg)
	m.registerUsers(reg)
	m.registerCredentials(reg)
	return nil
}

// Run keeps the in-memory view of users (building it first on a large site) and the index of
// usernames current until ctx is done.
func (m *Module) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var viewErr, namesErr error
	if m.view != nil {
		wg.Go(func() { viewErr = m.view.Run(ctx) })
	}
	if m.names != nil {
		wg.Go(func() { namesErr = m.names.Run(ctx) })
	}
	wg.Wait()
	if m.view == nil && m.names == nil {
		<-ctx.Done()
	}
	return errors.Join(viewErr, namesErr)
}

// Cleanup stops following changes.
func (m *Module) Cleanup() error {
	if m.view != nil {
		m.view.Close()
	}
	if m.names != nil {
		m.names.Close()
	}
	return nil
}

// PINs returns the keyed hasher of PIN codes (the access engine hashes a PIN read at a keypad
// the same way to find its credential).
func (m *Module) PINs() *PINHasher { return m.pins }
