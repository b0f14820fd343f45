// Package demo is the module behind `gatehouse serve --demo` (contract §2): on a database
// without any door it seeds a small demo site — doors with simulated readers, a zone tree,
// groups, people with cards and PINs, schedules and their mappings, and two operator accounts —
// and then runs simulated traffic at those doors (granted and denied presentations, walk-throughs,
// a forced door now and then, rarely a door held open), so that a newcomer sees a live site at
// once.
//
// The site is created through the real API handlers, called in-process as the administrator,
// so every validation rule, audit entry and change event applies exactly as if an operator had
// typed it. Traffic goes through the doorman module (Present, Contact, ExitRequest), the same
// access path a hardware reader takes. The module does nothing unless the configuration's Demo
// is set (--demo, GATEHOUSE_DEMO or "demo" in the file).
package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/doorman"
	"gatehouse/modules/engine"
)

// ModuleID is the demo module's ID.
const ModuleID = "demo"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// DefaultInterval is the default mean pause between two simulated presentations.
const DefaultInterval = 2 * time.Second

// seedTimeout bounds the whole seeding (a few dozen transactions and two password hashes).
const seedTimeout = time.Minute

// Module is the demo module. Its exported fields are its configuration; they matter only when
// the process runs with Demo set.
type Module struct {
	// Interval sets the pace of the simulated traffic: each pause between two presentations is
	// drawn uniformly from [Interval/2, 3·Interval/2] (1–3 s by default). A forced door comes
	// every 15–30 intervals (the first after 5–10) and a door held open every 150–300 (the
	// first after 20–40). When Interval is shorter than the default, the simulated people also
	// walk faster, in proportion, never faster than the doorman's contact debounce allows.
	// Default 2s.
	Interval core.Duration `json:"interval"`

	enabled bool
	log     zerolog.Logger
	db      *db.DB
	doorman *doorman.Module
	engine  *engine.Engine
	// debounce and heldOpenAfter are the doorman's effective door timings.
	debounce, heldOpenAfter time.Duration
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.Interval == 0 {
		m.Interval = core.Duration(DefaultInterval)
	}
}

// Provision does nothing without Demo. With Demo, it wires the module to the doorman, the
// engine and the auth module and, when the database has no door yet, seeds the demo site and
// prints the demo accounts' passwords once to the operator output. A restart with Demo on a
// seeded (or any non-empty) site seeds nothing.
func (m *Module) Provision(ctx *core.Context) error {
	if !ctx.Config().Demo {
		return nil
	}
	m.ApplyDefaults()
	dm, ok := ctx.Module(doorman.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", doorman.ModuleID, ModuleID)
	}
	em, ok := ctx.Module(engine.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", engine.ModuleID, ModuleID)
	}
	am, ok := ctx.Module(auth.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", auth.ModuleID, ModuleID)
	}
	m.enabled = true
	m.log, m.db = ctx.Logger, ctx.DB()
	m.doorman = dm.(*doorman.Module)
	m.engine = em.(*engine.Module).Engine()
	m.debounce, m.heldOpenAfter = doorTimings(m.doorman)

	sctx, cancel := context.WithTimeout(context.Background(), seedTimeout)
	defer cancel()
	var doors int64
	if err := m.db.Read.WithContext(sctx).Raw(`SELECT COUNT(*) FROM doors`).Scan(&doors).Error; err != nil {
		return fmt.Errorf("demo: count doors: %w", err)
	}
	if doors > 0 {
		m.log.Info().Int64("doors", doors).Msg("demo: the site already has doors; nothing seeded, simulated traffic only")
		return nil
	}
	res, err := seed(sctx, m.db, ctx.Methods(), am.(*auth.Module), m.log)
	if errors.Is(err, errConflict) {
		m.log.Warn().Err(err).Msg("demo: not seeding the demo site over existing data; simulated traffic only")
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo: seed: %w", err)
	}
	fmt.Fprintf(ctx.Out(), "\ngatehouse: demo site created: %d doors, %d people, %d groups, %d schedules.\n",
		res.Doors, res.People, res.Groups, res.Schedules)
	for _, a := range res.Accounts {
		fmt.Fprintf(ctx.Out(), "gatehouse: demo account %q (%s) password %s\n", a.Username, a.Rank, a.Password)
	}
	fmt.Fprintf(ctx.Out(), "gatehouse: these passwords are shown only now; simulated traffic starts at once.\n\n")
	m.log.Info().Int("doors", res.Doors).Int("people", res.People).Msg("demo: site seeded")
	return nil
}

// Validate checks the pace.
func (m *Module) Validate() error {
	if m.Interval < 0 || m.Interval > 0 && m.Interval.D() < time.Millisecond {
		return fmt.Errorf("interval must be at least 1ms, got %s", m.Interval.D())
	}
	return nil
}

// Run simulates traffic until ctx is done (without Demo it just waits). It returns only once
// every simulated passage in progress has stopped.
func (m *Module) Run(ctx context.Context) error {
	if !m.enabled {
		<-ctx.Done()
		return nil
	}
	newTraffic(m).run(ctx)
	return nil
}
