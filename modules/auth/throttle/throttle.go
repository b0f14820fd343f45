// Package throttle counts failed logins and refuses further attempts for a growing delay.
//
// Three keys are checked for every attempt (contract §4):
//
//   - username + source address: after UserAddrLimit failures within Window, attempts for that
//     username from that address are refused;
//   - source address: after AddrLimit failures within Window, every attempt from that address
//     is refused;
//   - username alone (any address): after UserLimit failures within Window, attempts for that
//     username are slowed to one per UserInterval across all addresses — never refused, so a
//     distributed attacker cannot lock the real user out, only slow guessing to a crawl; a
//     username+address pair that logged in successfully before (within TrustFor) is not
//     slowed at all.
//
// A refusal lasts BaseDelay and doubles with every further refusal-triggering failure, up to
// MaxDelay. Loopback addresses are not exempt. Keys with nothing to remember are evicted by
// Sweep.
package throttle

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config holds the limits. Zero fields take the defaults of the contract.
type Config struct {
	UserAddrLimit int           `json:"user_addr_limit"` // default 5
	AddrLimit     int           `json:"addr_limit"`      // default 20
	UserLimit     int           `json:"user_limit"`      // default 50
	Window        time.Duration `json:"-"`               // default 10 min
	BaseDelay     time.Duration `json:"-"`               // default 30 s
	MaxDelay      time.Duration `json:"-"`               // default 15 min
	UserInterval  time.Duration `json:"-"`               // default 1 s
}

func (c Config) withDefaults() Config {
	if c.UserAddrLimit <= 0 {
		c.UserAddrLimit = 5
	}
	if c.AddrLimit <= 0 {
		c.AddrLimit = 20
	}
	if c.UserLimit <= 0 {
		c.UserLimit = 50
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
	if c.UserInterval <= 0 {
		c.UserInterval = time.Second
	}
	return c
}

type record struct {
	fails       []time.Time // within the window, oldest first
	lockedUntil time.Time
	locks       int
	slow        *rate.Limiter // username key only, once under attack
}

// Throttle is safe for concurrent use.
type Throttle struct {
	cfg Config
	now func() time.Time

	mu   sync.Mutex
	recs map[string]*record
	// trusted holds the username+address pairs that logged in successfully, until when they
	// are trusted: they skip the per-username slow-down, so an attack on a username from
	// elsewhere does not slow its owner logging in from their usual address.
	trusted map[string]time.Time
}

// New returns a Throttle with the given limits.
func New(cfg Config) *Throttle {
	return &Throttle{cfg: cfg.withDefaults(), now: time.Now, recs: make(map[string]*record), trusted: make(map[string]time.Time)}
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
func addrKey(addr string) string { return "a\x00" + Host(addr) }
func userKey(user string) string { return "u\x00" + strings.ToLower(user) }

// Allow reports whether an attempt for user (may be "" for token logins) from addr may proceed.
// When it may not, it returns how long until it may. When the username is under a distributed
// attack, Allow waits for the username's turn (bounded by ctx) instead of refusing.
func (t *Throttle) Allow(ctx context.Context, user, addr string) (retryAfter time.Duration, ok bool) {
	now := t.now()
	t.mu.Lock()
	var wait time.Duration
	for _, k := range t.keys(user, addr) {
		if r := t.recs[k]; r != nil && now.Before(r.lockedUntil) {
			wait = max(wait, r.lockedUntil.Sub(now))
		}
	}
	var slow *rate.Limiter
	if user != "" && !t.trusted[userAddrKey(user, addr)].After(now) {
		if r := t.recs[userKey(user)]; r != nil {
			slow = r.slow
		}
	}
	t.mu.Unlock()
	if wait > 0 {
		return wait.Round(time.Second) + time.Second, false
	}
	if slow != nil {
		// Slowed, never refused: wait for the username's turn for as long as the request may.
		if err := slow.Wait(ctx); err != nil {
			return t.cfg.UserInterval, false
		}
	}
	return 0, true
}

func (t *Throttle) keys(user, addr string) []string {
	if user == "" {
		return []string{addrKey(addr)}
	}
	return []string{userAddrKey(user, addr), addrKey(addr)}
}

// Fail records a failed attempt.
func (t *Throttle) Fail(user, addr string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if user != "" {
		t.fail(userAddrKey(user, addr), t.cfg.UserAddrLimit, now, true)
		r := t.fail(userKey(user), t.cfg.UserLimit, now, false)
		if len(r.fails) >= t.cfg.UserLimit && r.slow == nil {
			r.slow = rate.NewLimiter(rate.Every(t.cfg.UserInterval), 1)
		}
	}
	t.fail(addrKey(addr), t.cfg.AddrLimit, now, true)
}

func (t *Throttle) fail(key string, limit int, now time.Time, lock bool) *record {
	r := t.recs[key]
	if r == nil {
		r = &record{}
		t.recs[key] = r
	}
	r.prune(now, t.cfg.Window)
	r.fails = append(r.fails, now)
	if len(r.fails) > limit { // remember no more than needed
		r.fails = r.fails[len(r.fails)-limit:]
	}
	if lock && len(r.fails) >= limit {
		delay := t.cfg.BaseDelay << min(r.locks, 20)
		if delay > t.cfg.MaxDelay || delay <= 0 {
			delay = t.cfg.MaxDelay
		}
		r.locks++
		r.lockedUntil = now.Add(delay)
	}
	return r
}

func (r *record) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(r.fails) && now.Sub(r.fails[i]) > window {
		i++
	}
	r.fails = r.fails[i:]
}

// Succeed records a successful login: the username+address record is cleared. The address
// and username records are kept, so a valid account cannot be used to reset them.
func (t *Throttle) Succeed(user, addr string) {
	t.mu.Lock()
	k := userAddrKey(user, addr)
	delete(t.recs, k)
	t.trusted[k] = t.now().Add(TrustFor)
	t.mu.Unlock()
}

// TrustFor is how long a username+address pair stays trusted after a successful login.
const TrustFor = 30 * 24 * time.Hour

// Sweep forgets records with no failure inside the window and no running lock. Call it now
// and then; it returns how many records remain.
func (t *Throttle) Sweep() int {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, r := range t.recs {
		r.prune(now, t.cfg.Window)
		if len(r.fails) == 0 && !now.Before(r.lockedUntil) {
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
