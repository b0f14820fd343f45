// Package wiegandreader is the `wiegand` module: it runs a Wiegand reader for every access point
// whose controller-module is "wiegand", reading the DATA0/DATA1 lines of a Linux GPIO chip
// (package modules/reader/wiegand), and sends each read through the doorman's access path with
// the access point as reader. The reader's wiring is the access point's config:
//
//	{"chip": "gpiochip0", "d0": 17, "d1": 18, "mode": "SIMPLE_WIEGAND", "inverted": false,
//	 "pull_up": false, "pin_timeout": "2.5s", "gap": "25ms"}
//
// Or the access point names a wiegand-reader device configured from Leosac's web GUI
// (modules/hardware) by its UUID:
//
//	{"reader": "0b6c…-…"}
//
// and then the reader's GPIO devices give the chip and the lines (gpio-low is DATA0, gpio-high
// DATA1, both on one chip; active-low inverts them), its mode the decoding, and its green LED
// and buzzer the feedback: on a grant the green LED is on for the doorman's strike duration,
// on a denial the buzzer blinks for its default-blink-duration at its default-blink-speed
// (steadily on when the speed is 0). The other keys (pull_up, pin_timeout, gap) still apply.
// A disabled reader, or one whose data lines are missing, disabled or not inputs, is not run
// (logged); a disabled or missing LED or buzzer gives no feedback.
//
// Readers follow access_point.* and hardware.* changes. A reader whose GPIO cannot be opened is
// logged and retried every RetryInterval; it never stops the server.
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
	"gatehouse/modules/hardware"
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
	// Reader is the UUID of a wiegand-reader hardware device; when set, Chip, D0, D1, Mode and
	// Inverted come from that device.
	Reader     string        `json:"reader"`
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
	// output opens the feedback lines; GPIO by default, replaced in tests.
	output OutputOpener

	mu      sync.Mutex
	running map[int64]*reader
	wg      sync.WaitGroup
}

type reader struct {
	cfg    string // the raw config it was started with, and its hardware wiring
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
	if m.output == nil {
		m.output = OpenGPIOOutput
	}
	sub, err := ctx.Bus().Subscribe(core.SubscribeOptions{Name: "wiegand", Queue: 64, OnFull: core.DropAndMark}, "access_point.*", "hardware.*")
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

// SetOutput replaces how the feedback lines (green LED, buzzer) of hardware readers are opened
// (GPIO by default): tests record them with a Recorder. It applies to readers started
// afterwards.
func (m *Module) SetOutput(f OutputOpener) {
	m.mu.Lock()
	m.output = f
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
			sub, err := m.bus.Subscribe(core.SubscribeOptions{Name: "wiegand", Queue: 64, OnFull: core.DropAndMark}, "access_point.*", "hardware.*")
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
	type wanted struct {
		key    string
		cfg    ReaderConfig
		wiring *hardware.ReaderWiring
	}
	want := map[int64]wanted{}
	for _, ap := range aps {
		var cfg ReaderConfig
		if err := json.Unmarshal([]byte(ap.Config), &cfg); err != nil {
			m.log.Error().Err(err).Int64("reader_id", ap.ID).Msg("wiegand: bad access point config")
			continue
		}
		w := wanted{key: ap.Config, cfg: cfg}
		if cfg.Reader != "" {
			wiring, err := hardware.LoadReaderWiring(ctx, m.db.Read, cfg.Reader)
			if err != nil {
				m.log.Error().Err(err).Int64("reader_id", ap.ID).Str("device", cfg.Reader).Msg("wiegand: hardware reader not usable")
				continue
			}
			b, _ := json.Marshal(wiring)
			w.key += string(b)
			w.wiring = &wiring
			w.cfg.Chip, w.cfg.D0, w.cfg.D1 = wiring.Low.Chip, wiring.Low.Offset, wiring.High.Offset
			w.cfg.Mode, w.cfg.Inverted = wiring.Mode, wiring.High.ActiveLow
		}
		want[ap.ID] = w
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.running {
		if w, ok := want[id]; !ok || w.key != r.cfg {
			r.cancel()
			delete(m.running, id)
		}
	}
	for id, w := range want {
		if _, ok := m.running[id]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		m.running[id] = &reader{cfg: w.key, cancel: cancel}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runReader(rctx, id, w.cfg, w.wiring)
		}()
	}
}

// runReader reads one reader until ctx is done, retrying when its source cannot start. A
// hardware reader's wiring gives its feedback outputs.
func (m *Module) runReader(ctx context.Context, id int64, cfg ReaderConfig, wiring *hardware.ReaderWiring) {
	log := m.log.With().Int64("reader_id", id).Logger()
	var fb readerFeedback
	if wiring != nil {
		// The feedback ends with the reader, whichever way it returns.
		fctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		fb.green = m.startFeedback(fctx, &wg, wiring.GreenLED, log)
		fb.buzzer = m.startFeedback(fctx, &wg, wiring.Buzzer, log)
		if wiring.Buzzer != nil {
			fb.deny = pattern{total: wiring.Buzzer.BlinkDuration, period: wiring.Buzzer.BlinkSpeed}
		}
	}
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
			func(r wiegand.Read) { m.present(ctx, id, r, &fb, log) },
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

// readerFeedback is a hardware reader's feedback outputs; nil ones give none.
type readerFeedback struct {
	green, buzzer *feedback
	deny          pattern // the buzzer's pattern on a denial
}

// startFeedback opens the output of an LED or buzzer and plays its patterns until ctx ends; nil
// when there is none or it cannot be opened (logged: the reader still reads).
func (m *Module) startFeedback(ctx context.Context, wg *sync.WaitGroup, fb *hardware.Feedback, log zerolog.Logger) *feedback {
	if fb == nil {
		return nil
	}
	m.mu.Lock()
	open := m.output
	m.mu.Unlock()
	out, err := open(fb.Line)
	if err != nil {
		log.Warn().Err(err).Str("device", fb.Name).Msg("wiegand: feedback output unavailable")
		return nil
	}
	f := &feedback{name: fb.Name, out: out, cmds: make(chan pattern, 1)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.run(ctx, func(err error) { log.Warn().Err(err).Str("device", fb.Name).Msg("wiegand: feedback output failed") })
	}()
	return f
}

// present sends one read through the access path, then gives the reader's feedback: the green
// LED for the strike duration on a grant, the buzzer on a denial.
func (m *Module) present(ctx context.Context, id int64, r wiegand.Read, fb *readerFeedback, log zerolog.Logger) {
	req := engine.Request{ReaderID: id, CardID: r.Card, NbBits: r.Bits, PIN: r.PIN, BadRead: r.BadParity}
	dec, _, err := m.doorman.Present(ctx, req)
	if err != nil {
		if ctx.Err() == nil {
			log.Error().Err(err).Msg("wiegand: access path failed")
		}
		return
	}
	if dec.Granted {
		fb.green.trigger(pattern{total: m.doorman.StrikeDuration.D()})
	} else {
		fb.buzzer.trigger(fb.deny)
	}
}
