// Package wiegandreader is the `wiegand` module: it runs a Wiegand reader for every access point
// whose controller-module is "wiegand", reading the DATA0/DATA1 lines of a Linux GPIO chip
// (package modules/reader/wiegand), and sends each read through the doorman's access path with
// the access point as reader. The reader's wiring is the access point's config:
//
//	{"chip": "gpiochip0", "d0": 17, "d1": 18, "mode": "SIMPLE_WIEGAND", "inverted": false,
//	 "pull_up": false, "pin_timeout": "2.5s", "gap": "25ms"}
//
// Readers follow access_point.* changes. A reader whose GPIO cannot be opened is logged and
// retried every RetryInterval; it never stops the server.
package wiegandreader

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/doorman"
	"gatehouse/modules/engine"
	"gatehouse/modules/reader/wiegand"
)

// ModuleID is the module's ID.
const ModuleID = "wiegand"

// ControllerModule is the controller-module value of the access points this module drives.
const ControllerModule = "wiegand"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// ReaderConfig is an access point's wiring (its config attribute).
type ReaderConfig struct {
	Chip       string        `json:"chip"`
	D0         int           `json:"d0"`
	D1         int           `json:"d1"`
	Mode       string        `json:"mode"`
	Inverted   bool          `json:"inverted"`
	PullUp     bool          `json:"pull_up"`
	PINTimeout core.Duration `json:"pin_timeout"`
	Gap        core.Duration `json:"gap"`
}

// Module is the wiegand module.
type Module struct {
	// RetryInterval is how long a reader whose GPIO could not be opened waits before trying
	// again. Default 30s.
	RetryInterval core.Duration `json:"retry_interval"`

	log     zerolog.Logger
	db      *db.DB
	bus     *core.Bus
	doorman *doorman.Module
	sub     *core.Subscription
	// source makes the line source of a reader; GPIO by default, replaced in tests.
	source func(id int64, cfg ReaderConfig) wiegand.Source

	mu      sync.Mutex
	running map[int64]*reader
	wg      sync.WaitGroup
}

type reader struct {
	cfg    string // the raw config it was started with
	cancel context.CancelFunc
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.RetryInterval <= 0 {
		m.RetryInterval = core.Duration(30 * time.Second)
	}
}

// Provision wires the module to the doorman and follows access point changes.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(doorman.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", doorman.ModuleID, ModuleID)
	}
	m.doorman = mod.(*doorman.Module)
	m.ApplyDefaults()
	m.log, m.db, m.bus = ctx.Logger, ctx.DB(), ctx.Bus()
	m.running = map[int64]*reader{}
	if m.source == nil {
		m.source = func(_ int64, c ReaderConfig) wiegand.Source {
			return &wiegand.GPIOSource{Chip: c.Chip, D0: c.D0, D1: c.D1, Inverted: c.Inverted, PullUp: c.PullUp, Consumer: "gatehouse"}
		}
	}
	sub, err := ctx.Bus().Subscribe(core.SubscribeOptions{Name: "wiegand", Queue: 64, OnFull: core.DropAndMark}, "access_point.*")
	if err != nil {
		return err
	}
	m.sub = sub
	return nil
}

// SetSource replaces how a reader's line source is made (GPIO by default): tests and
// simulations drive readers from synthetic pulse trains with it. It applies to readers started
// afterwards.
func (m *Module) SetSource(f func(readerID int64, cfg ReaderConfig) wiegand.Source) {
	m.mu.Lock()
	m.source = f
	m.mu.Unlock()
}

// Run starts the readers and follows changes until ctx is done, then stops every reader.
func (m *Module) Run(ctx context.Context) error {
	defer m.stopAll()
	m.reload(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.sub.C():
			m.reload(ctx)
		case <-m.sub.Lagged(): // missed changes: follow again and reload from scratch
			m.sub.Close()
			sub, err := m.bus.Subscribe(core.SubscribeOptions{Name: "wiegand", Queue: 64, OnFull: core.DropAndMark}, "access_point.*")
			if err != nil {
				return err
			}
			m.sub = sub
			m.reload(ctx)
		}
	}
}

// Cleanup stops following changes.
func (m *Module) Cleanup() error {
	if m.sub != nil {
		m.sub.Close()
	}
	return nil
}

func (m *Module) stopAll() {
	m.mu.Lock()
	for id, r := range m.running {
		r.cancel()
		delete(m.running, id)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// reload starts, restarts or stops readers to match the access points of the database.
func (m *Module) reload(ctx context.Context) {
	var aps []struct {
		ID     int64
		Config string
	}
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT id, config FROM access_points WHERE controller_module = ?`, ControllerModule).
		Scan(&aps).Error; err != nil {
		m.log.Error().Err(err).Msg("wiegand: load access points")
		return
	}
	want := map[int64]string{}
	for _, ap := range aps {
		want[ap.ID] = ap.Config
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.running {
		if cfg, ok := want[id]; !ok || cfg != r.cfg {
			r.cancel()
			delete(m.running, id)
		}
	}
	for id, raw := range want {
		if _, ok := m.running[id]; ok {
			continue
		}
		var cfg ReaderConfig
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			m.log.Error().Err(err).Int64("reader_id", id).Msg("wiegand: bad access point config")
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		m.running[id] = &reader{cfg: raw, cancel: cancel}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runReader(rctx, id, cfg)
		}()
	}
}

// runReader reads one reader until ctx is done, retrying when its source cannot start.
func (m *Module) runReader(ctx context.Context, id int64, cfg ReaderConfig) {
	log := m.log.With().Int64("reader_id", id).Logger()
	mode := wiegand.ModeSimpleWiegand
	if cfg.Mode != "" {
		var err error
		if mode, err = wiegand.ParseMode(cfg.Mode); err != nil {
			log.Error().Err(err).Msg("wiegand: bad reader mode")
			return
		}
	}
	for {
		dec, err := wiegand.NewDecoder(wiegand.Config{Mode: mode, PIN: wiegand.PINConfig{Timeout: cfg.PINTimeout.D()}},
			wiegand.AssemblerConfig{Gap: cfg.Gap.D()})
		if err != nil {
			log.Error().Err(err).Msg("wiegand: bad reader config")
			return
		}
		m.mu.Lock()
		src := m.source(id, cfg)
		m.mu.Unlock()
		err = wiegand.Run(ctx, src, dec,
			func(r wiegand.Read) { m.present(ctx, id, r, log) },
			func(err error) { log.Warn().Err(err).Msg("wiegand: unreadable frame") })
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error().Err(err).Dur("retry_in_ms", m.RetryInterval.D()).Msg("wiegand: reader unavailable")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.RetryInterval.D()):
		}
	}
}

// present sends one read through the access path.
func (m *Module) present(ctx context.Context, id int64, r wiegand.Read, log zerolog.Logger) {
	req := engine.Request{ReaderID: id, CardID: r.Card, NbBits: r.Bits, PIN: r.PIN, BadRead: r.BadParity}
	if _, _, err := m.doorman.Present(ctx, req); err != nil && ctx.Err() == nil {
		log.Error().Err(err).Msg("wiegand: access path failed")
	}
}
