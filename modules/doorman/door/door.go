package door

import (
	"errors"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultStrikeDuration = 5 * time.Second
	DefaultHeldOpenAfter  = 30 * time.Second
	DefaultDebounce       = 100 * time.Millisecond
)

// Config describes one door. The zero value of a duration means its default.
type Config struct {
	// StrikeDuration is how long the strike is released by a grant, an operator open or an
	// exit request. Default 5 s; negative is an error.
	StrikeDuration time.Duration
	// HeldOpenAfter is how long the door may stay open before the held_open alarm. Default
	// 30 s; negative disables the alarm.
	HeldOpenAfter time.Duration
	// Debounce is how long a contact state must be stable to count. Default 100 ms; negative
	// disables debouncing.
	Debounce time.Duration
	// ContactSensor says the door has a door-position contact. Without one the door never
	// reports opened, closed, forced or held_open, and Contact is ignored.
	ContactSensor bool
	// ExitButton says the door has a request-to-exit button. Without one ExitRequest is
	// refused with ErrNoExitButton.
	ExitButton bool
}

// WithDefaults returns c with its zero durations replaced by the defaults and its disabled
// (negative) HeldOpenAfter and Debounce normalised to -1.
func (c Config) WithDefaults() Config {
	if c.StrikeDuration == 0 {
		c.StrikeDuration = DefaultStrikeDuration
	}
	switch {
	case c.HeldOpenAfter == 0:
		c.HeldOpenAfter = DefaultHeldOpenAfter
	case c.HeldOpenAfter < 0:
		c.HeldOpenAfter = -1
	}
	switch {
	case c.Debounce == 0:
		c.Debounce = DefaultDebounce
	case c.Debounce < 0:
		c.Debounce = -1
	}
	return c
}

// Validate reports a configuration New would refuse.
func (c Config) Validate() error {
	if c.StrikeDuration < 0 {
		return errors.New("door: strike duration must not be negative")
	}
	return nil
}

// cause is what opened a release window.
type cause uint8

const (
	causeGrant cause = iota
	causeManual
	causeExit
	numCauses
)

// key is the name of the cause in the opened event's data.
func (c cause) key() string {
	return [numCauses]string{"granted", "manual", "exit"}[c]
}

// allowed reports whether an input of cause c is accepted in effective mode e, and so
// whether a window of that cause survives a change to e.
func allowed(c cause, e Effective) error {
	switch c {
	case causeGrant:
		switch e {
		case EffectiveLocked:
			return ErrDoorLocked
		case EffectiveLockdown:
			return ErrLockdown
		}
	case causeManual:
		if e == EffectiveLockdown {
			return ErrLockdown
		}
	}
	return nil
}

// Door is the state machine of one door. Create it with New; it starts closed, strike
// locked, in door mode normal and site mode normal, and assumes the caller drives the
// actuator to locked when it creates it. If the contact is open at start, report it with
// Contact. A Door is not safe for concurrent use.
type Door struct {
	cfg Config

	// clock is the latest time seen; everything happens at clock.
	clock time.Time

	mode Mode
	site SiteMode
	// securedAt is when the effective mode last stopped releasing the strike.
	securedAt time.Time

	// until[c] is the end of the window of cause c; the window is running while it is after
	// clock. Ended windows keep their end (set to the ending time when cut short), which is
	// what the debounce grace looks at.
	until [numCauses]time.Time
	// last[c] is when the latest input of cause c was accepted.
	last [numCauses]time.Time

	// The commanded strike state: the last command emitted.
	cmdReleased bool
	cmdUntil    time.Time

	// raw is the undebounced contact, since rawSince; open is the debounced one.
	raw      bool
	rawSince time.Time
	open     bool
	openedAt time.Time
	forced   bool
	held     bool
	// heldFrom is when the held-open delay started (the opening, or the moment the door was
	// secured again while open).
	heldFrom time.Time
}

// New returns a Door for cfg (zero durations take their defaults).
func New(cfg Config) (*Door, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Door{cfg: cfg.WithDefaults(), mode: ModeNormal, site: SiteNormal}, nil
}

// Config returns the door's configuration with defaults applied.
func (d *Door) Config() Config { return d.cfg }

// Grant handles an access decision granted at this door at now: it releases the strike for
// StrikeDuration. It is refused with ErrDoorLocked in door mode locked and ErrLockdown in
// lockdown. The effects are valid even when an error is returned.
func (d *Door) Grant(now time.Time) ([]Effect, error) {
	return d.release(now, causeGrant)
}

// OpenMomentarily handles door.open from an operator at now: like Grant, but reported as
// manual, and honoured in door mode locked; refused with ErrLockdown in lockdown.
func (d *Door) OpenMomentarily(now time.Time) ([]Effect, error) {
	return d.release(now, causeManual)
}

// ExitRequest handles the exit button at now: it releases the strike for StrikeDuration in
// every mode, lockdown included. It is refused with ErrNoExitButton when the door has none.
func (d *Door) ExitRequest(now time.Time) ([]Effect, error) {
	if !d.cfg.ExitButton {
		return d.advance(now, nil), ErrNoExitButton
	}
	return d.release(now, causeExit)
}

func (d *Door) release(now time.Time, c cause) ([]Effect, error) {
	out := d.advance(now, nil)
	if err := allowed(c, d.effective()); err != nil {
		return out, err
	}
	d.last[c] = d.clock
	if u := d.clock.Add(d.cfg.StrikeDuration); u.After(d.until[c]) {
		d.until[c] = u
	}
	return d.reconcile(out), nil
}

// Contact handles a contact-sensor reading at now (open true = door open). Readings equal to
// the previous one are ignored, as is every reading on a door without a contact sensor.
func (d *Door) Contact(now time.Time, open bool) []Effect {
	out := d.advance(now, nil)
	if !d.cfg.ContactSensor || open == d.raw {
		return out
	}
	d.raw, d.rawSince = open, d.clock
	return d.advance(d.clock, out) // a disabled debounce confirms at once
}

// SetMode sets the door's own mode at now. Setting the current mode does nothing; an
// unknown mode returns an error wrapping ErrInvalidMode and changes nothing.
func (d *Door) SetMode(now time.Time, m Mode) ([]Effect, error) {
	if _, err := ParseMode(string(m)); err != nil {
		return nil, err
	}
	out := d.advance(now, nil)
	if m == d.mode {
		return out, nil
	}
	return d.setModes(m, d.site, out), nil
}

// SetSiteMode sets the site mode at now. Setting the current mode does nothing; an unknown
// mode returns an error wrapping ErrInvalidMode and changes nothing.
func (d *Door) SetSiteMode(now time.Time, s SiteMode) ([]Effect, error) {
	if _, err := ParseSiteMode(string(s)); err != nil {
		return nil, err
	}
	out := d.advance(now, nil)
	if s == d.site {
		return out, nil
	}
	return d.setModes(d.mode, s, out), nil
}

func (d *Door) setModes(m Mode, s SiteMode, out []Effect) []Effect {
	before := d.effective()
	d.mode, d.site = m, s
	after := d.effective()
	if before.Released() && !after.Released() {
		d.securedAt = d.clock
		if d.open {
			d.heldFrom = d.clock
		}
	}
	for c := range numCauses {
		if d.until[c].After(d.clock) && allowed(c, after) != nil {
			d.until[c] = d.clock
		}
	}
	out = append(out, Effect{Kind: Event, At: d.clock, Topic: TopicMode, Data: map[string]any{
		"mode": string(m), "effective": string(after), "site_mode": string(s),
	}})
	out = d.reconcile(out)
	return d.advance(d.clock, out) // a held-open delay may now be due
}

// Tick processes every deadline up to now. Calling it again with the same or an earlier time
// does nothing.
func (d *Door) Tick(now time.Time) []Effect {
	return d.advance(now, nil)
}

// NextDeadline returns when Tick must next be called, or the zero time when nothing is
// pending. It is always after the latest time the Door has seen.
func (d *Door) NextDeadline() time.Time {
	t, _ := d.next()
	return t
}

// State returns a snapshot of the door as of the latest time it has seen (call Tick first
// to bring it up to date).
func (d *Door) State() State {
	s := State{
		Open:      d.open,
		Locked:    !d.cmdReleased,
		Mode:      d.mode,
		SiteMode:  d.site,
		Effective: d.effective(),
		Forced:    d.forced,
		HeldOpen:  d.held,
	}
	if d.open {
		s.OpenedAt = d.openedAt
	}
	if d.cmdReleased {
		s.ReleaseUntil = d.cmdUntil
	}
	return s
}

func (d *Door) effective() Effective { return EffectiveOf(d.mode, d.site) }

// deadline kinds, in the order ties are processed.
const (
	dlNone = iota
	dlConfirm
	dlWindow
	dlHeld
)

// next returns the earliest pending deadline and its kind. Confirm and held deadlines may be
// at or before clock (overdue); window deadlines are always after it.
func (d *Door) next() (time.Time, int) {
	var t time.Time
	kind := dlNone
	consider := func(at time.Time, k int) {
		if kind == dlNone || at.Before(t) {
			t, kind = at, k
		}
	}
	if d.cfg.ContactSensor && d.raw != d.open {
		consider(d.rawSince.Add(max(d.cfg.Debounce, 0)), dlConfirm)
	}
	for c := range numCauses {
		if d.until[c].After(d.clock) {
			consider(d.until[c], dlWindow)
		}
	}
	if d.open && d.raw && !d.held && d.cfg.HeldOpenAfter > 0 && !d.effective().Released() {
		consider(d.heldFrom.Add(d.cfg.HeldOpenAfter), dlHeld)
	}
	return t, kind
}

// advance processes, in time order and each at its own time, every deadline up to now, then
// moves the clock to now (never backwards).
func (d *Door) advance(now time.Time, out []Effect) []Effect {
	target := now
	if target.Before(d.clock) {
		target = d.clock
	}
	for {
		t, kind := d.next()
		if kind == dlNone || t.After(target) {
			break
		}
		if t.After(d.clock) {
			d.clock = t
		}
		switch kind {
		case dlConfirm:
			out = d.confirm(out)
		case dlHeld:
			d.held = true
			out = append(out, Effect{Kind: Event, At: d.clock, Topic: TopicHeldOpen, Data: map[string]any{
				"open_ms":  d.clock.Sub(d.openedAt).Milliseconds(),
				"limit_ms": d.cfg.HeldOpenAfter.Milliseconds(),
			}})
		}
		// dlWindow: the window ended by the clock reaching it; reconcile locks.
		out = d.reconcile(out)
	}
	d.clock = target
	return out
}

// confirm makes the raw contact state the debounced one.
func (d *Door) confirm(out []Effect) []Effect {
	d.open = d.raw
	at := d.rawSince
	if d.open {
		d.openedAt = at
		d.held = false
		d.heldFrom = at
		if d.securedAt.After(at) {
			d.heldFrom = d.securedAt
		}
		// Covered if the strike was released at any instant since the contact changed.
		covered := d.effective().Released() || d.securedAt.After(at)
		data := map[string]any{}
		for c := range numCauses {
			w := d.until[c].After(at)
			data[c.key()] = w
			covered = covered || w
		}
		d.forced = !covered
		data["forced"] = d.forced
		out = append(out, Effect{Kind: Event, At: at, Topic: TopicOpened, Data: data})
		if d.forced {
			out = append(out, Effect{Kind: Event, At: at, Topic: TopicForced, Data: map[string]any{
				"mode": string(d.effective()),
			}})
		}
		return out
	}
	out = append(out, Effect{Kind: Event, At: at, Topic: TopicClosed, Data: map[string]any{
		"duration_ms": at.Sub(d.openedAt).Milliseconds(),
		"forced":      d.forced,
		"held_open":   d.held,
	}})
	d.forced, d.held = false, false
	// Relock on close: end the windows opened before the door closed.
	for c := range numCauses {
		if d.until[c].After(d.clock) && d.last[c].Before(at) {
			d.until[c] = d.clock
		}
	}
	return out
}

// reconcile emits a strike command when the desired strike state differs from the last one
// commanded.
func (d *Door) reconcile(out []Effect) []Effect {
	released, until := d.desired()
	if released == d.cmdReleased && until.Equal(d.cmdUntil) {
		return out
	}
	d.cmdReleased, d.cmdUntil = released, until
	if !released {
		return append(out, Effect{Kind: StrikeLock, At: d.clock})
	}
	return append(out, Effect{Kind: StrikeRelease, At: d.clock, Until: until})
}

// desired is the strike state the mode and the running windows call for.
func (d *Door) desired() (released bool, until time.Time) {
	if d.effective().Released() {
		return true, time.Time{}
	}
	for c := range numCauses {
		if d.until[c].After(d.clock) {
			released = true
			if d.until[c].After(until) {
				until = d.until[c]
			}
		}
	}
	return released, until
}
