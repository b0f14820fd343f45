// Package doorman is the module that drives doors (contract §11): for every door it runs the
// state machine of package door (strike windows, contact supervision, forced and held-open
// alarms, exit requests, door and site modes), makes access decisions with the engine, writes
// every decision and door event to the event log before acting on it, and commands the strikes
// through the Actuator of the hardware module (the simulator, GPIO, MQTT…).
//
// The access path is: credential read → engine decision (in memory) → decision and door events
// committed to the log → strike command → events pushed to subscribers. An event whose strike
// command was issued is therefore always in the log, even after a crash.
package doorman

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/doorman/door"
	"gatehouse/modules/engine"
	"gatehouse/modules/eventlog"
)

// ModuleID is the doorman module's ID.
const ModuleID = "doorman"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Actuator drives door strikes. Hardware modules (the simulator, GPIO, MQTT) install one with
// SetActuator. Strike must not block.
type Actuator interface {
	Strike(doorID int64, released bool, until time.Time)
}

// Module is the doorman module. Its exported fields are its configuration.
type Module struct {
	// StrikeDuration is how long a grant releases the strike. Default 5s.
	StrikeDuration core.Duration `json:"strike_duration"`
	// HeldOpenAfter is how long a door may stay open before the held_open alarm. Default 30s.
	HeldOpenAfter core.Duration `json:"held_open_after"`
	// Debounce is how long a contact change must last to count. Default 100ms.
	Debounce core.Duration `json:"debounce"`

	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	engine *engine.Engine

	mu       sync.Mutex
	doors    map[int64]*runtimeDoor
	site     door.SiteMode
	actuator Actuator
	closed   bool
}

type runtimeDoor struct {
	id    int64
	sm    *door.Door
	timer *time.Timer
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// Provision wires the module and restores the site mode.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(engine.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", engine.ModuleID, ModuleID)
	}
	m.engine = mod.(*engine.Module).Engine()
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.log, m.db = ctx.Logger, ctx.DB()
	m.doors = map[int64]*runtimeDoor{}
	m.site = door.SiteNormal
	var site string
	if err := m.db.Read.Raw(`SELECT value FROM meta WHERE key = 'doorman.site_mode'`).Scan(&site).Error; err != nil {
		return fmt.Errorf("doorman: read site mode: %w", err)
	}
	if s, err := door.ParseSiteMode(site); err == nil {
		m.site = s
	}
	m.register(ctx.Methods())
	return nil
}

// SetActuator installs the strike driver (one per process; the last one wins).
func (m *Module) SetActuator(a Actuator) {
	m.mu.Lock()
	m.actuator = a
	m.mu.Unlock()
}

// Run waits for ctx and then stops every door timer; no door event is written afterwards.
func (m *Module) Run(ctx context.Context) error {
	<-ctx.Done()
	m.mu.Lock()
	m.closed = true
	for _, d := range m.doors {
		if d.timer != nil {
			d.timer.Stop()
		}
	}
	m.mu.Unlock()
	return nil
}

// doorLocked returns the runtime of a door, creating it (with its persisted mode) on first
// use. Call with m.mu held. It returns nil for a door the engine does not know.
func (m *Module) doorLocked(id int64) *runtimeDoor {
	if d := m.doors[id]; d != nil {
		if _, ok := m.engine.DoorAlias(id); ok {
			return d
		}
		delete(m.doors, id) // the door was deleted
		return nil
	}
	if _, ok := m.engine.DoorAlias(id); !ok {
		return nil
	}
	sm, err := door.New(door.Config{StrikeDuration: m.StrikeDuration.D(), HeldOpenAfter: m.HeldOpenAfter.D(),
		Debounce: m.Debounce.D(), ContactSensor: true, ExitButton: true})
	if err != nil {
		m.log.Error().Err(err).Msg("doorman: door config")
		return nil
	}
	now := time.Now()
	var mode string
	_ = m.db.Read.Raw(`SELECT value FROM meta WHERE key = ?`, modeKey(id)).Scan(&mode).Error
	if dm, err := door.ParseMode(mode); err == nil && dm != door.ModeNormal {
		_, _ = sm.SetMode(now, dm)
	}
	if m.site != door.SiteNormal {
		_, _ = sm.SetSiteMode(now, m.site)
	}
	d := &runtimeDoor{id: id, sm: sm}
	m.doors[id] = d
	return d
}

func modeKey(id int64) string { return fmt.Sprintf("doorman.door.%d.mode", id) }

// Present runs the access path for one credential read: decision, log, strike. It returns the
// decision and the seq of its event.
func (m *Module) Present(ctx context.Context, r engine.Request) (engine.Decision, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	doorID := r.DoorID
	if doorID == 0 {
		doorID, _ = m.engine.DoorOfReader(r.ReaderID)
	}
	d := m.doorLocked(doorID)
	if d != nil {
		st := d.sm.State()
		r.DoorMode, r.SiteMode = string(st.Mode), string(st.SiteMode)
	} else {
		r.SiteMode = string(m.site)
	}
	dec := m.engine.Decide(ctx, r)
	var effects []door.Effect
	if dec.Granted && d != nil && dec.Reason == engine.ReasonGranted {
		var err error
		if effects, err = d.sm.Grant(r.Now); err != nil {
			dec.Granted, dec.Reason = false, door.Reason(err)
		}
	}
	topic, mask, verb := "access.denied", eventlog.AuthDenied, "denied"
	if dec.Granted {
		topic, mask, verb = "access.granted", eventlog.AuthGranted, "granted"
	}
	who := dec.Username
	if who == "" {
		who = "unknown credential"
		if dec.CredentialID != 0 {
			who = fmt.Sprintf("credential %d", dec.CredentialID)
		}
	}
	var seq int64
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := tx.Record(eventlog.Change{Topic: topic, Kind: eventlog.KindAuth, Mask: mask,
			TargetID: dec.CredentialID, UserID: dec.UserID, DoorID: dec.DoorID,
			Description: fmt.Sprintf("Access %s to %s at %s (%s).", verb, who, doorName(dec), dec.Reason),
			Data:        dec}); err != nil {
			return err
		}
		seq = tx.LastSeq()
		return m.recordEffects(tx, d, effects)
	})
	if err != nil {
		return dec, 0, core.E(core.DatabaseError, "Database error.", err)
	}
	m.actuate(d, effects)
	return dec, seq, nil
}

func doorName(d engine.Decision) string {
	if d.Door != "" {
		return fmt.Sprintf("%q (%d)", d.Door, d.DoorID)
	}
	if d.DoorID != 0 {
		return fmt.Sprintf("door %d", d.DoorID)
	}
	return fmt.Sprintf("reader %d", d.ReaderID)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("{}")
	}
	return b
}

// doorMask maps a door event to its audit bit.
func doorMask(e door.Effect) eventlog.Mask {
	switch e.Topic {
	case door.TopicOpened:
		if manual, _ := e.Data["manual"].(bool); manual {
			return eventlog.DoorOpenedManually
		}
		return eventlog.DoorOpened
	case door.TopicClosed:
		return eventlog.DoorClosed
	case door.TopicForced:
		return eventlog.DoorForced
	case door.TopicHeldOpen:
		return eventlog.DoorHeldOpen
	}
	return eventlog.ModeChanged
}

// recordEffects appends the door events among effects to tx.
func (m *Module) recordEffects(tx *eventlog.Tx, d *runtimeDoor, effects []door.Effect) error {
	if d == nil {
		return nil
	}
	alias, _ := m.engine.DoorAlias(d.id)
	for _, e := range effects {
		if e.Kind != door.Event {
			continue
		}
		data := map[string]any{"door_id": d.id, "door": alias}
		for k, v := range e.Data {
			data[k] = v
		}
		if err := tx.Append(&eventlog.Event{
			Topic: fmt.Sprintf("door.%d.%s", d.id, e.Topic), Time: e.At, Kind: eventlog.KindDoor, Mask: doorMask(e),
			DoorID: eventlog.Ptr(d.id), Description: fmt.Sprintf("Door %q (%d) %s.", alias, d.id, strings.ReplaceAll(e.Topic, "_", " ")),
			Data: mustJSON(data),
		}); err != nil {
			return err
		}
	}
	return nil
}

// actuate drives the strike for the strike effects and re-arms the door's timer. Call with
// m.mu held, after the events are committed.
func (m *Module) actuate(d *runtimeDoor, effects []door.Effect) {
	if d == nil {
		return
	}
	for _, e := range effects {
		if m.actuator == nil {
			break
		}
		switch e.Kind {
		case door.StrikeRelease:
			m.actuator.Strike(d.id, true, e.Until)
		case door.StrikeLock:
			m.actuator.Strike(d.id, false, time.Time{})
		}
	}
	m.rearm(d)
}

// rearm sets the door's one timer to its next deadline.
func (m *Module) rearm(d *runtimeDoor) {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	next := d.sm.NextDeadline()
	if next.IsZero() || m.closed {
		return
	}
	id := d.id
	d.timer = time.AfterFunc(time.Until(next), func() { m.tick(id) })
}

// tick advances a door's timers (relock, held-open alarm, debounce).
func (m *Module) tick(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	d := m.doors[id]
	if d == nil {
		return
	}
	m.apply(context.Background(), d, d.sm.Tick(time.Now()))
}

// apply records and actuates effects. Call with m.mu held.
func (m *Module) apply(ctx context.Context, d *runtimeDoor, effects []door.Effect) error {
	hasEvent := false
	for _, e := range effects {
		hasEvent = hasEvent || e.Kind == door.Event
	}
	if hasEvent {
		if err := m.events.Write(ctx, func(tx *eventlog.Tx) error { return m.recordEffects(tx, d, effects) }); err != nil {
			m.log.Error().Err(err).Int64("door_id", d.id).Msg("doorman: door events not recorded")
			return core.E(core.DatabaseError, "Database error.", err)
		}
	}
	m.actuate(d, effects)
	return nil
}

// Contact reports the door's contact sensor (true = open).
func (m *Module) Contact(ctx context.Context, doorID int64, open bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.doorLocked(doorID)
	if d == nil {
		return core.NotFound("door", doorID)
	}
	return m.apply(ctx, d, d.sm.Contact(time.Now(), open))
}

// ExitRequest reports a press of the door's exit button.
func (m *Module) ExitRequest(ctx context.Context, doorID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.doorLocked(doorID)
	if d == nil {
		return core.NotFound("door", doorID)
	}
	effects, err := d.sm.ExitRequest(time.Now())
	if aerr := m.apply(ctx, d, effects); aerr != nil {
		return aerr
	}
	if err != nil {
		return core.E(core.GeneralFailure, "Exit request refused: "+err.Error(), err)
	}
	return nil
}

// State returns the state of a door for display.
func (m *Module) State(doorID int64) (door.State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.doorLocked(doorID)
	if d == nil {
		return door.State{}, false
	}
	return d.sm.State(), true
}
