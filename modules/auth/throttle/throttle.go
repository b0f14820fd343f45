// Package throttle bounds the password checks of logins, per key and per window, whatever
// number of attempts arrive at once.
//
// An attempt is counted when it is admitted, not when it fails: Begin reserves a slot on
// every key the attempt falls under, atomically with the check, and the reservation counts
// as a failure until the attempt ends (Attempt.Fail keeps it as a failure, Attempt.Succeed
// and Attempt.Release give it back). So however many attempts arrive in parallel, at most
// the limit of each key reaches the password check in a window; the others are refused at
// once, with the time after which to retry.
//
// Keys (contract §4):
//
//   - username + source address: after UserAddrLimit failures within Window, attempts for that
//     username from that address are refused;
//   - source address: after AddrLimit failures within Window, every attempt from that address
//     is refused;
//   - username alone (any address): after UserLimit failures within Window from untrusted
//     clients, untrusted clients are refused for that username until the oldest failure
//     leaves the window (OWASP "device cookies": a distributed attacker locks out only
//     untrusted clients). Trusted clients are a username+address pair that logged in
//     successfully before (within TrustFor), and a client presenting a valid device token of
//     the username: they are not refused by the username key; each device token has its own
//     budget of DeviceLimit failures within Window.
//
// An attempt that finds a key's slots all held by attempts still in flight (and not yet its
// failures) waits for them to end, at most BusyWait and never with more than MaxWaiters others
// on that key: if they fail, it is refused; if they succeed (many correct logins at once, one
// service opening many sessions), it is admitted. Nothing else waits.
//
// A refusal by the username+address, address or device key lasts BaseDelay and doubles with
// every further refusal-triggering failure, up to MaxDelay; once a lock has ended, attempts are
// admitted one at a time (each failure locking again) until the failures leave the window.
// Loopback addresses are not exempt. Keys with nothing to remember are evicted by Sweep.
package throttle

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"
)

// Config holds the limits. Zero fields take the defaults of the contract.
type Config struct {
	UserAddrLimit int           // default 5
	AddrLimit     int           // default 20
	UserLimit     int           // default 50
	DeviceLimit   int           // default 5
	Window        time.Duration // default 10 min
	BaseDelay     time.Duration // default 30 s
	MaxDelay      time.Duration // default 15 min
	BusyWait      time.Duration // default 5 s; negative: never wait
}

// MaxWaiters bounds the attempts waiting on one key for attempts in flight to end.
const MaxWaiters = 64

// WithDefaults returns c with every zero limit set to its default (the contract's: 5 per
// username+address, 20 per address, 50 per username, 5 per device token, a 10 min window, locks
// of 30 s doubling up to 15 min, 5 s of waiting for attempts in flight).
func (c Config) WithDefaults() Config {
	if c.UserAddrLimit <= 0 {
		c.UserAddrLimit = 5
	}
	if c.AddrLimit <= 0 {
		c.AddrLimit = 20
	}
	if c.UserLimit <= 0 {
		c.UserLimit = 50
	}
	if c.DeviceLimit <= 0 {
		c.DeviceLimit = 5
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = 30 * time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.BusyWait == 0 {
		c.BusyWait = 5 * time.Second
	}
	return c
}

// State is what a key remembers: its failures within the window (oldest first), its running
// lock and how many locks it had. It is exported so that device-token state can be persisted.
type State struct {
	Fails       []time.Time
	LockedUntil time.Time
	Locks       int
}

type record struct {
	State
	pending int // admitted attempts not yet ended
	waiting int // attempts waiting for pending ones to end
}

// Throttle is safe for concurrent use.
type Throttle struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	recs    map[string]*record
	changed chan struct{} // closed (and replaced) whenever an attempt ends
	// trusted holds the username+address pairs that logged in successfully, until when they
	// are trusted: they are not refused by the username key.
	trusted map[string]time.Time
}

// New returns a Throttle with the given limits.
func New(cfg Config) *Throttle {
	return &Throttle{cfg: cfg.WithDefaults(), now: time.Now, recs: make(map[string]*record),
		trusted: make(map[string]time.Time), changed: make(chan struct{})}
}

// SetClock replaces the clock (tests).
func (t *Throttle) SetClock(now func() time.Time) { t.now = now }

// Host returns the host part of a host:port address, the unit throttling is keyed on.
func Host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func userAddrKey(user, addr string) string {
	return "ua\x00" + strings.ToLower(user) + "\x00" + Host(addr)
}
func addrKey(addr string) string     { return "a\x00" + Host(addr) }
func userKey(user string) string     { return "u\x00" + strings.ToLower(user) }
func deviceKey(device string) string { return "d\x00" + device }

// Attempt is an admitted login attempt holding a reservation on its keys until it ends. End
// it exactly once with Fail, Succeed or Release; later calls do nothing.
type Attempt struct {
	t        *Throttle
	user     string
	addr     string
	device   string
	keys     []string
	userSlot bool // the attempt holds a slot of the username key (untrusted client)
	ended    bool
}

// Trusted reports whether the attempt was admitted as a trusted client (known address or
// valid device token) rather than on the username's budget for untrusted clients.
func (a *Attempt) Trusted() bool { return a != nil && a.user != "" && !a.userSlot }

// limited is one key's check: its record and limit, and whether it locks with a growing delay.
type limited struct {
	key   string
	limit int
	lock  bool
}

// Begin admits an attempt for user (may be "" for token logins) from addr, with device the id
// of a valid device token of user ("" = none), and reserves its slots; or refuses it and
// returns how long until a retry may be admitted. It waits only while the slots it needs are
// held by attempts in flight (see the package comment), bounded by BusyWait and ctx.
func (t *Throttle) Begin(ctx context.Context, user, addr, device string) (a *Attempt, retryAfter time.Duration, ok bool) {
	var deadline <-chan time.Time
	var waitingOn []string
	t.mu.Lock()
	defer func() {
		for _, k := range waitingOn {
			if r := t.recs[k]; r != nil && r.waiting > 0 {
				r.waiting--
			}
		}
		t.mu.Unlock()
	}()
	for {
		a, retry, busy := t.try(user, addr, device)
		if a != nil || len(busy) == 0 || t.cfg.BusyWait < 0 {
			return a, retry, a != nil
		}
		if waitingOn == nil {
			for _, k := range busy {
				if t.recs[k].waiting >= MaxWaiters {
					return nil, retry, false
				}
			}
			for _, k := range busy {
				t.recs[k].waiting++
			}
			waitingOn = busy
			timer := time.NewTimer(t.cfg.BusyWait)
			defer timer.Stop()
			deadline = timer.C
		}
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
			t.mu.Lock()
		case <-deadline:
			t.mu.Lock()
			a, retry, _ := t.try(user, addr, device)
			return a, retry, a != nil
		case <-ctx.Done():
			t.mu.Lock()
			return nil, retry, false
		}
	}
}

// try admits an attempt now, or returns the refusal's delay and the keys whose slots are held
// by attempts in flight (empty when the refusal does not depend on them). t.mu is held.
func (t *Throttle) try(user, addr, device string) (*Attempt, time.Duration, []string) {
	now := t.now()
	checks := []limited{{addrKey(addr), t.cfg.AddrLimit, true}}
	a := &Attempt{t: t, user: user, addr: addr}
	if user != "" {
		checks = append(checks, limited{userAddrKey(user, addr), t.cfg.UserAddrLimit, true})
		switch {
		case device != "":
			a.device = device
			checks = append(checks, limited{deviceKey(device), t.cfg.DeviceLimit, true})
		case t.trusted[userAddrKey(user, addr)].After(now):
		default:
			a.userSlot = true
			checks = append(checks, limited{userKey(user), t.cfg.UserLimit, false})
		}
	}
	var wait time.Duration
	var busy []string
	final := false
	for _, c := range checks {
		d, b := t.refusal(t.recs[c.key], c.limit, c.lock, now)
		if d > wait {
			wait = d
		}
		switch {
		case b:
			busy = append(busy, c.key)
		case d > 0:
			final = true
		}
	}
	if final {
		busy = nil
	}
	if wait > 0 {
		return nil, ceilSecond(wait), busy
	}
	for _, c := range checks {
		r := t.recs[c.key]
		if r == nil {
			r = &record{}
			t.recs[c.key] = r
		}
		r.pending++
		a.keys = append(a.keys, c.key)
	}
	return a, 0, nil
}

// ceilSecond rounds a wait up to whole seconds (at least one), the unit of Retry-After.
func ceilSecond(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// refusal returns how long a key refuses attempts (0 = it admits one now), and whether that is
// only because attempts in flight hold its slots (busy: their ends may change the answer).
func (t *Throttle) refusal(r *record, limit int, lock bool, now time.Time) (time.Duration, bool) {
	if r == nil {
		return 0, false
	}
	r.prune(now, t.cfg.Window)
	if now.Before(r.LockedUntil) {
		return r.LockedUntil.Sub(now), false
	}
	if len(r.Fails)+r.pending < limit {
		return 0, false
	}
	if lock && r.Locks > 0 {
		// A lock has ended: one attempt at a time, its failure locks again for longer.
		if r.pending == 0 {
			return 0, false
		}
		return time.Second, true
	}
	if len(r.Fails) < limit {
		return time.Second, true // slots held by attempts in flight
	}
	// Refused until enough failures leave the window.
	return r.Fails[len(r.Fails)-limit].Add(t.cfg.Window).Sub(now), false
}

// end ends the attempt once: under the throttle's lock, its reservations are given back, then
// outcome (if not nil) records what the attempt came to, then waiting attempts are woken.
func (a *Attempt) end(outcome func(t *Throttle)) {
	if a == nil {
		return
	}
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.ended {
		return
	}
	a.ended = true
	for _, k := range a.keys {
		t.release(k)
	}
	if outcome != nil {
		outcome(t)
	}
	t.ended()
}

// Fail ends the attempt as a failed password check: its reservations become failures.
func (a *Attempt) Fail() {
	if a == nil {
		return
	}
	now := a.t.now()
	a.end(func(t *Throttle) { t.fail(a.user, a.addr, a.device, a.userSlot, now) })
}

// Succeed ends the attempt as a successful login: its reservations are given back, the
// username+address record is cleared, the pair becomes trusted for TrustFor and the device
// token's failures are forgotten. The address and username records keep their failures, so a
// valid account cannot be used to reset them.
func (a *Attempt) Succeed() {
	a.end(func(t *Throttle) {
		t.succeed(a.user, a.addr)
		if a.device != "" {
			if r := t.recs[deviceKey(a.device)]; r != nil && r.pending == 0 && r.waiting == 0 {
				delete(t.recs, deviceKey(a.device))
			}
		}
	})
}

// Release ends the attempt without counting it (the password was not checked: a technical
// error).
func (a *Attempt) Release() { a.end(nil) }

func (t *Throttle) release(key string) {
	if r := t.recs[key]; r != nil && r.pending > 0 {
		r.pending--
	}
}

// ended wakes the attempts waiting for attempts in flight. t.mu is held.
func (t *Throttle) ended() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Fail records a failed attempt of an untrusted client that held no reservation.
func (t *Throttle) Fail(user, addr string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fail(user, addr, "", true, now)
}

func (t *Throttle) fail(user, addr, device string, userSlot bool, now time.Time) {
	if user != "" {
		t.failKey(userAddrKey(user, addr), t.cfg.UserAddrLimit, now, true)
		if device != "" {
			t.failKey(deviceKey(device), t.cfg.DeviceLimit, now, true)
		} else if userSlot {
			t.failKey(userKey(user), t.cfg.UserLimit, now, false)
		}
	}
	t.failKey(addrKey(addr), t.cfg.AddrLimit, now, true)
}

func (t *Throttle) failKey(key string, limit int, now time.Time, lock bool) {
	r := t.recs[key]
	if r == nil {
		r = &record{}
		t.recs[key] = r
	}
	r.prune(now, t.cfg.Window)
	r.Fails = append(r.Fails, now)
	if len(r.Fails) > limit { // remember no more than needed
		r.Fails = r.Fails[len(r.Fails)-limit:]
	}
	if lock && len(r.Fails) >= limit {
		delay := t.cfg.BaseDelay << min(r.Locks, 20)
		if delay > t.cfg.MaxDelay || delay <= 0 {
			delay = t.cfg.MaxDelay
		}
		r.Locks++
		r.LockedUntil = now.Add(delay)
	}
}

func (r *record) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(r.Fails) && now.Sub(r.Fails[i]) > window {
		i++
	}
	r.Fails = r.Fails[i:]
}

// Succeed records a successful login that held no reservation: the username+address record
// is cleared and the pair trusted for TrustFor.
func (t *Throttle) Succeed(user, addr string) {
	t.mu.Lock()
	t.succeed(user, addr)
	t.mu.Unlock()
}

func (t *Throttle) succeed(user, addr string) {
	if user == "" {
		return
	}
	k := userAddrKey(user, addr)
	if r := t.recs[k]; r != nil {
		if r.pending == 0 && r.waiting == 0 {
			delete(t.recs, k)
		} else {
			r.State = State{}
		}
	}
	t.trusted[k] = t.now().Add(TrustFor)
}

// TrustFor is how long a username+address pair stays trusted after a successful login.
const TrustFor = 30 * 24 * time.Hour

// Trust marks the username+address pair trusted until the given time (restoring persisted
// trust).
func (t *Throttle) Trust(user, addr string, until time.Time) {
	t.mu.Lock()
	k := userAddrKey(user, addr)
	if until.After(t.trusted[k]) {
		t.trusted[k] = until
	}
	t.mu.Unlock()
}

// TrustedUntil returns until when the username+address pair is trusted (zero if it is not).
func (t *Throttle) TrustedUntil(user, addr string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	until := t.trusted[userAddrKey(user, addr)]
	if !until.After(t.now()) {
		return time.Time{}
	}
	return until
}

// DeviceState returns what the throttle remembers of a device token (for persisting it).
func (t *Throttle) DeviceState(device string) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.recs[deviceKey(device)]
	if r == nil {
		return State{}
	}
	r.prune(t.now(), t.cfg.Window)
	return State{Fails: append([]time.Time(nil), r.Fails...), LockedUntil: r.LockedUntil, Locks: r.Locks}
}

// RestoreDevice sets the remembered state of a device token (restoring persisted state).
func (t *Throttle) RestoreDevice(device string, s State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := deviceKey(device)
	r := t.recs[k]
	if r == nil {
		r = &record{}
		t.recs[k] = r
	}
	r.State = State{Fails: append([]time.Time(nil), s.Fails...), LockedUntil: s.LockedUntil, Locks: s.Locks}
}

// Sweep forgets records with no failure inside the window, no running lock and no attempt in
// flight, and trust that has expired. Call it now and then; it returns how many records
// remain.
func (t *Throttle) Sweep() int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, r := range t.recs {
		r.prune(now, t.cfg.Window)
		if len(r.Fails) == 0 && !now.Before(r.LockedUntil) && r.pending == 0 && r.waiting == 0 {
			delete(t.recs, k)
		}
	}
	for k, until := range t.trusted {
		if !until.After(now) {
			delete(t.trusted, k)
		}
	}
	return len(t.recs)
}
