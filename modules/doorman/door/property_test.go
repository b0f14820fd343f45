package door_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"gatehouse/modules/doorman/door"
)

// Inputs of a random sequence.
const (
	opTick = iota
	opGrant
	opManual
	opExit
	opOpen
	opClose
	opMode
	opSite
	opTickDeadline // Tick at NextDeadline (the caller's timer)
	opBadMode
	numOps
)

type op struct {
	kind int
	arg  int           // mode index for opMode/opSite
	dt   time.Duration // time step before the input; may be negative
}

var (
	modes     = []door.Mode{door.ModeNormal, door.ModeUnlocked, door.ModeLocked}
	siteModes = []door.SiteMode{door.SiteNormal, door.SiteLockdown, door.SiteEvacuation}
)

// decode turns fuzz bytes into a door configuration and an input sequence. Short durations
// make every deadline reachable in a few steps.
func decode(data []byte) (door.Config, []op) {
	var c0, c1 byte
	if len(data) >= 2 {
		c0, c1, data = data[0], data[1], data[2:]
	}
	cfg := door.Config{ContactSensor: c0&3 != 0, ExitButton: c0&4 != 0}
	cfg.StrikeDuration = []time.Duration{0, 300 * time.Millisecond, 2 * time.Second, time.Millisecond}[c1&3]
	cfg.HeldOpenAfter = []time.Duration{0, 700 * time.Millisecond, -1, 150 * time.Millisecond}[(c1>>2)&3]
	cfg.Debounce = []time.Duration{0, 30 * time.Millisecond, -1, 250 * time.Millisecond}[(c1>>4)&3]
	var ops []op
	for len(data) >= 2 {
		k, t := data[0], data[1]
		data = data[2:]
		o := op{kind: int(k) % numOps, arg: int(k/numOps) % 3}
		switch {
		case t < 200:
			o.dt = time.Duration(t) * 5 * time.Millisecond
		case t < 240:
			o.dt = time.Duration(t-200) * time.Second
		case t < 250:
			o.dt = -time.Duration(t-239) * 100 * time.Millisecond
		default:
			o.dt = time.Duration(t-249) * time.Minute
		}
		ops = append(ops, o)
	}
	return cfg, ops
}

// checker runs a sequence on a door and checks invariants after every input, against a
// small model built only from the effects it has seen.
type checker struct {
	t   testing.TB
	d   *door.Door
	cfg door.Config // with defaults

	now    time.Time // the scripted input time (may go backwards)
	latest time.Time // the latest time given to the door

	open        bool // from opened/closed events
	forcedSeen  bool // in the current opening
	heldSeen    bool
	released    bool // from strike commands
	until       time.Time
	strikeAt    time.Time
	lastUnlock  time.Time // latest accepted exit request
	lastManual  time.Time // latest accepted operator open
	events      int
	allEffects  []door.Effect
	ticksActive bool // whether opTick inputs are applied (false: skipped, for the tick-independence check)
	dueOnly     bool // opTickDeadline fires only when the deadline is not after the scripted time
}

func newChecker(t testing.TB, cfg door.Config) *checker {
	d, err := door.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return &checker{t: t, d: d, cfg: d.Config(), now: t0, ticksActive: true}
}

func (c *checker) fail(o op, format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("after %s at %v: %s\n cfg %+v\n effects so far:\n%v", opName(o), c.now.Sub(t0), fmt.Sprintf(format, args...), c.cfg, c.allEffects)
}

func opName(o op) string {
	names := []string{"tick", "grant", "manual", "exit", "open", "close", "mode", "site", "tick-deadline", "bad-mode"}
	switch o.kind {
	case opMode:
		return "mode=" + string(modes[o.arg])
	case opSite:
		return "site=" + string(siteModes[o.arg])
	}
	return names[o.kind]
}

func (c *checker) step(o op) {
	c.t.Helper()
	c.now = c.now.Add(o.dt)
	before := c.d.State()
	var (
		got []door.Effect
		err error
	)
	inputAt := c.now
	switch o.kind {
	case opTick:
		if !c.ticksActive {
			return
		}
		got = c.d.Tick(c.now)
	case opGrant:
		got, err = c.d.Grant(c.now)
	case opManual:
		got, err = c.d.OpenMomentarily(c.now)
	case opExit:
		got, err = c.d.ExitRequest(c.now)
	case opOpen:
		got = c.d.Contact(c.now, true)
	case opClose:
		got = c.d.Contact(c.now, false)
	case opMode:
		got, err = c.d.SetMode(c.now, modes[o.arg])
	case opSite:
		got, err = c.d.SetSiteMode(c.now, siteModes[o.arg])
	case opTickDeadline:
		if !c.ticksActive {
			return
		}
		nd := c.d.NextDeadline()
		if nd.IsZero() || (c.dueOnly && nd.After(c.now)) {
			return
		}
		inputAt = nd
		got = c.d.Tick(nd)
	case opBadMode:
		got, err = c.d.SetMode(c.now, "ajar")
		if !errors.Is(err, door.ErrInvalidMode) || got != nil {
			c.fail(o, "SetMode(ajar) = %v, %v", got, err)
		}
		if c.d.State() != before {
			c.fail(o, "invalid mode changed the state")
		}
		return
	}
	if inputAt.After(c.latest) {
		c.latest = inputAt
	}
	c.allEffects = append(c.allEffects, got...)

	// The effective mode before the input is the one after the deadlines it processes, as
	// deadlines never change modes.
	eff := before.Effective
	// Refusals.
	var wantErr error
	switch o.kind {
	case opGrant:
		switch eff {
		case door.EffectiveLocked:
			wantErr = door.ErrDoorLocked
		case door.EffectiveLockdown:
			wantErr = door.ErrLockdown
		}
	case opManual:
		if eff == door.EffectiveLockdown {
			wantErr = door.ErrLockdown
		}
	case opExit:
		if !c.cfg.ExitButton {
			wantErr = door.ErrNoExitButton
		}
	}
	if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
		c.fail(o, "err = %v, want %v (effective %s)", err, wantErr, eff)
	}
	if err == nil {
		switch o.kind {
		case opExit:
			c.lastUnlock = c.latest
		case opManual:
			c.lastManual = c.latest
		}
	}

	for i, e := range got {
		if e.At.After(c.latest) {
			c.fail(o, "effect %v is in the future (latest %v)", e, c.latest)
		}
		switch e.Kind {
		case door.StrikeRelease:
			if c.released && e.Until.Equal(c.until) {
				c.fail(o, "repeated identical release %v", e)
			}
			if !e.Until.IsZero() && !e.Until.After(e.At) {
				c.fail(o, "release %v ends before it starts", e)
			}
			c.released, c.until = true, e.Until
		case door.StrikeLock:
			if !c.released {
				c.fail(o, "lock while already locked")
			}
			c.released, c.until = false, time.Time{}
		case door.Event:
			c.events++
			if e.Topic != door.TopicMode && !c.cfg.ContactSensor {
				c.fail(o, "door without contact sensor emitted %v", e)
			}
			switch e.Topic {
			case door.TopicMode:
				eff = door.Effective(e.Data["effective"].(string))
				if want := door.EffectiveOf(door.Mode(e.Data["mode"].(string)), door.SiteMode(e.Data["site_mode"].(string))); eff != want {
					c.fail(o, "mode event %v inconsistent", e)
				}
			case door.TopicOpened:
				if c.open {
					c.fail(o, "opened twice without closed")
				}
				c.open, c.forcedSeen, c.heldSeen = true, false, false
				if f := e.Data["forced"].(bool); f {
					if i+1 >= len(got) || got[i+1].Topic != door.TopicForced {
						c.fail(o, "forced opening not followed by forced")
					}
				}
			case door.TopicForced:
				if !c.open || c.forcedSeen {
					c.fail(o, "forced while closed or twice")
				}
				if eff.Released() {
					c.fail(o, "forced emitted while effective mode is %s", eff)
				}
				c.forcedSeen = true
			case door.TopicHeldOpen:
				if !c.open || c.heldSeen {
					c.fail(o, "held_open while closed or twice")
				}
				if eff.Released() {
					c.fail(o, "held_open emitted while effective mode is %s", eff)
				}
				if e.Data["open_ms"].(int64) < c.cfg.HeldOpenAfter.Milliseconds() {
					c.fail(o, "held_open too early: %v", e)
				}
				c.heldSeen = true
			case door.TopicClosed:
				if !c.open {
					c.fail(o, "closed without opened")
				}
				if e.Data["duration_ms"].(int64) < 0 ||
					e.Data["forced"] != c.forcedSeen || e.Data["held_open"] != c.heldSeen {
					c.fail(o, "closed data %v (forced seen %v, held seen %v)", e.Data, c.forcedSeen, c.heldSeen)
				}
				c.open = false
			default:
				c.fail(o, "unknown topic %q", e.Topic)
			}
		default:
			c.fail(o, "unknown kind %v", e.Kind)
		}
		if e.Kind != door.Event {
			if e.At.Before(c.strikeAt) {
				c.fail(o, "strike commands out of order: %v", e)
			}
			c.strikeAt = e.At
		}
	}

	st := c.d.State()
	switch {
	case st.Effective != eff:
		c.fail(o, "State().Effective %s, events say %s", st.Effective, eff)
	case st.Open != c.open:
		c.fail(o, "State().Open %v, events say %v", st.Open, c.open)
	case st.Locked == c.released:
		c.fail(o, "State().Locked %v, strike commands say released=%v", st.Locked, c.released)
	case c.released && !st.ReleaseUntil.Equal(c.until):
		c.fail(o, "State().ReleaseUntil %v, command said %v", st.ReleaseUntil, c.until)
	case st.Effective.Released() && st.Locked:
		c.fail(o, "locked strike in %s", st.Effective)
	case st.Forced != (c.open && c.forcedSeen), st.HeldOpen != (c.open && c.heldSeen):
		c.fail(o, "alarms in state %+v disagree with events", st)
	case !c.cfg.ContactSensor && st.Open:
		c.fail(o, "door without contact sensor is open")
	}
	// In a locking mode the strike is released only by an exit (or, in door mode locked, an
	// operator) window still running.
	within := func(t time.Time) bool { return !t.IsZero() && c.latest.Sub(t) < c.cfg.StrikeDuration }
	if !st.Locked {
		switch st.Effective {
		case door.EffectiveLockdown:
			if !within(c.lastUnlock) {
				c.fail(o, "released in lockdown without a recent exit request")
			}
		case door.EffectiveLocked:
			if !within(c.lastUnlock) && !within(c.lastManual) {
				c.fail(o, "released in locked mode without a recent exit or operator open")
			}
		}
	}
	if nd := c.d.NextDeadline(); !nd.IsZero() && !nd.After(c.latest) {
		c.fail(o, "NextDeadline %v not after the latest time %v", nd, c.latest)
	}
	// Tick is idempotent, and a Tick from the past does nothing.
	if c.ticksActive {
		snapshot := c.d.State()
		if e := c.d.Tick(c.latest); len(e) != 0 {
			c.fail(o, "second Tick produced %v", e)
		}
		if e := c.d.Tick(c.latest.Add(-time.Hour)); len(e) != 0 {
			c.fail(o, "Tick in the past produced %v", e)
		}
		if c.d.State() != snapshot {
			c.fail(o, "idempotent Tick changed the state")
		}
	}
}

func runSequence(t testing.TB, data []byte) *checker {
	cfg, ops := decode(data)
	c := newChecker(t, cfg)
	for _, o := range ops {
		c.step(o)
	}
	// Let everything run out: a door must never keep a deadline forever.
	for range 10 {
		nd := c.d.NextDeadline()
		if nd.IsZero() {
			break
		}
		c.step(op{kind: opTick, dt: nd.Sub(c.now)})
	}
	if nd := c.d.NextDeadline(); !nd.IsZero() {
		t.Fatalf("deadline %v left after draining", nd)
	}
	return c
}

// FuzzDoor: random input sequences never panic and keep every invariant of checker.step.
func FuzzDoor(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{7, 0, opGrant, 0, opOpen, 10, opTick, 30, opClose, 100, opTick, 40})
	f.Add([]byte{7, 21, opOpen, 0, opTick, 50, opTick, 245, opTickDeadline, 0, opClose, 250})
	f.Add([]byte{3, 5, opSite + numOps, 0, opGrant, 10, opExit, 10, opOpen, 10, opTickDeadline, 0, opSite, 10, opTickDeadline, 0})
	f.Add([]byte{7, 16, opSite + 2*numOps, 0, opOpen, 1, opMode + 2*numOps, 1, opSite, 1, opTickDeadline, 0, opTickDeadline, 0, opClose, 241})
	f.Fuzz(func(t *testing.T, data []byte) {
		runSequence(t, data)
	})
}

// TestRandomSequences is the property test run on every go test: many seeded random
// sequences through the same invariant checker as FuzzDoor.
func TestRandomSequences(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	events := 0
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 0x646f6f72))
		data := make([]byte, 2+2*(20+r.IntN(200)))
		for i := range data {
			data[i] = byte(r.UintN(256))
		}
		// Mostly short forward steps, so deadlines interleave with inputs.
		for i := 3; i < len(data); i += 2 {
			if r.IntN(10) < 8 {
				data[i] = byte(r.IntN(120))
			}
		}
		c := runSequence(t, data)
		events += c.events
	}
	if events < n {
		t.Fatalf("only %d events in %d sequences: the generator is too weak", events, n)
	}
}

// TestTickIndependence: with time only moving forward, the effects of a sequence do not
// depend on the Tick calls at all: deadlines are processed at their own times, whether a
// timer fired for them or the next input found them overdue.
func TestTickIndependence(t *testing.T) {
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 0x7469636b))
		data := make([]byte, 2+2*(20+r.IntN(150)))
		for i := range data {
			data[i] = byte(r.UintN(256))
		}
		for i := 3; i < len(data); i += 2 {
			data[i] = byte(r.IntN(240)) // forward only
		}
		cfg, ops := decode(data)

		with := newChecker(t, cfg)
		with.dueOnly = true
		without := newChecker(t, cfg)
		without.ticksActive = false
		for _, o := range ops {
			with.step(o)
			without.step(o)
		}
		end := with.now.Add(time.Hour)
		a := append(with.allEffects, with.d.Tick(end)...)
		b := append(without.allEffects, without.d.Tick(end)...)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: effects depend on ticking\n with %v\n without %v", seed, a, b)
		}
		if with.d.State() != without.d.State() {
			t.Fatalf("seed %d: states differ", seed)
		}
	}
}
