package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"gatehouse/modules/doorman"
	"gatehouse/modules/doorman/door"
	"gatehouse/modules/engine"
)

// doorTimings returns the doorman's effective contact debounce (0 when disabled) and held-open
// delay (negative when the alarm is disabled).
func doorTimings(d *doorman.Module) (debounce, heldOpenAfter time.Duration) {
	cfg := door.Config{HeldOpenAfter: d.HeldOpenAfter.D(), Debounce: d.Debounce.D()}.WithDefaults()
	return max(cfg.Debounce, 0), cfg.HeldOpenAfter
}

// credential is something a simulated person presents: a card, a PIN, or both.
type credential struct {
	Who    string // for logs
	CardID string
	NbBits int
	PIN    string
}

func (c credential) request(doorID int64) engine.Request {
	return engine.Request{DoorID: doorID, CardID: c.CardID, NbBits: c.NbBits, PIN: c.PIN}
}

func card(who string, number uint16) credential {
	id, bits := h10301(facilityCode, number)
	return credential{Who: who, CardID: id, NbBits: bits}
}

// doorRef is a door of the site as last read from the database.
type doorRef struct {
	ID    int64
	Alias string
}

// traffic runs the simulated people. The run goroutine picks the scenarios; passages (a door
// opening and closing) run in goroutines of their own, tracked by wg. A door in a passage is
// busy: no other passage starts on it, so that its contact tells one story at a time.
type traffic struct {
	m *Module
	// known are the credentials of the demo's people, as they present them.
	known []credential
	// serverPIN is the card + PIN credential used at the server room; expired and lost are
	// refused everywhere.
	serverPIN, expired, lost credential
	// scale shrinks the passages' durations when the pace is faster than the default.
	scale float64

	// Owned by the run goroutine.
	doors                []doorRef
	doorsRead            time.Time
	nextForced, nextHeld time.Time

	wg   sync.WaitGroup
	mu   sync.Mutex
	busy map[int64]bool
}

// doorsRefresh is how often the list of doors is read again (an operator may add some).
const doorsRefresh = 10 * time.Second

func newTraffic(m *Module) *traffic {
	t := &traffic{m: m, busy: map[int64]bool{}, lost: card("lost badge", lostBadge)}
	t.scale = min(1, float64(m.Interval.D())/float64(DefaultInterval))
	for _, p := range demoPeople {
		c := card(p.Username, p.Card)
		switch {
		case p.Expired:
			t.expired = c
			continue
		case p.CardPIN != "":
			c.PIN = p.CardPIN
			t.serverPIN = c
		}
		t.known = append(t.known, c)
		if p.PIN != "" {
			t.known = append(t.known, credential{Who: p.Username + " (PIN)", PIN: p.PIN})
		}
	}
	return t
}

// run simulates traffic until ctx is done, then waits for the passages in progress to stop.
func (t *traffic) run(ctx context.Context) {
	defer t.wg.Wait()
	now := time.Now()
	t.nextForced = now.Add(t.intervals(5, 10))
	t.nextHeld = now.Add(t.intervals(20, 40))
	timer := time.NewTimer(t.pause())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		t.tick(ctx)
		timer.Reset(t.pause())
	}
}

// pause is the wait before the next scenario: uniform in [Interval/2, 3·Interval/2].
func (t *traffic) pause() time.Duration {
	iv := t.m.Interval.D()
	return iv/2 + rand.N(iv+1)
}

// intervals is a random number of intervals between lo and hi.
func (t *traffic) intervals(lo, hi int) time.Duration {
	return t.m.Interval.D() * time.Duration(lo+rand.IntN(hi-lo+1))
}

// between is a random duration in [lo, hi], scaled to the pace.
func (t *traffic) between(lo, hi time.Duration) time.Duration {
	return time.Duration(float64(lo+rand.N(hi-lo+1)) * t.scale)
}

// minOpen is the shortest opening the doorman is sure to see through its debounce.
func (t *traffic) minOpen() time.Duration { return 2*t.m.debounce + 50*time.Millisecond }

// settle is how long after a close the door's state is final (the close is debounced).
func (t *traffic) settle() time.Duration { return t.m.debounce + 50*time.Millisecond }

// tick runs one scenario. A forced door or a door held open that is due takes the next free
// door; until one is free, only refusals run (they take no door).
func (t *traffic) tick(ctx context.Context) {
	if time.Since(t.doorsRead) > doorsRefresh {
		t.readDoors(ctx)
	}
	if len(t.doors) == 0 {
		return
	}
	now := time.Now()
	if t.m.heldOpenAfter >= 0 && !now.Before(t.nextHeld) {
		if t.heldOpen(ctx) {
			t.nextHeld = now.Add(t.intervals(150, 300))
		} else {
			t.refusal(ctx)
		}
		return
	}
	if !now.Before(t.nextForced) {
		if t.forced(ctx) {
			t.nextForced = now.Add(t.intervals(15, 30))
		} else {
			t.refusal(ctx)
		}
		return
	}
	switch r := rand.IntN(100); {
	case r < 45:
		if !t.granted(ctx) {
			t.refusal(ctx)
		}
	case r < 62:
		t.notAllowed(ctx)
	case r < 75:
		t.unknown(ctx)
	case r < 88:
		t.serverRoom(ctx)
	case r < 94:
		t.invalid(ctx)
	default:
		t.exit(ctx)
	}
}

// refusal runs one of the scenarios that take no door.
func (t *traffic) refusal(ctx context.Context) {
	switch rand.IntN(3) {
	case 0:
		t.notAllowed(ctx)
	case 1:
		t.unknown(ctx)
	default:
		t.invalid(ctx)
	}
}

// readDoors reads the site's doors.
func (t *traffic) readDoors(ctx context.Context) {
	var doors []doorRef
	if err := t.m.db.Read.WithContext(ctx).Raw(`SELECT id, alias FROM doors ORDER BY id`).Scan(&doors).Error; err != nil {
		if ctx.Err() == nil {
			t.m.log.Warn().Err(err).Msg("demo: read the doors")
		}
		return
	}
	t.doors, t.doorsRead = doors, time.Now()
}

func (t *traffic) doorNamed(alias string) (int64, bool) {
	for _, d := range t.doors {
		if d.Alias == alias {
			return d.ID, true
		}
	}
	return 0, false
}

func (t *traffic) randomDoor() int64 { return t.doors[rand.IntN(len(t.doors))].ID }

// claim marks a door busy; it reports false when it already was.
func (t *traffic) claim(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.busy[id] {
		return false
	}
	t.busy[id] = true
	return true
}

func (t *traffic) free(id int64) {
	t.mu.Lock()
	delete(t.busy, id)
	t.mu.Unlock()
}

func (t *traffic) isBusy(id int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.busy[id]
}

// present runs the real access path and reports whether the door was granted.
func (t *traffic) present(ctx context.Context, c credential, doorID int64) bool {
	dec, _, err := t.m.doorman.Present(ctx, c.request(doorID))
	if err != nil {
		if ctx.Err() == nil {
			t.m.log.Warn().Err(err).Str("who", c.Who).Int64("door_id", doorID).Msg("demo: presentation failed")
		}
		return false
	}
	t.m.log.Debug().Str("who", c.Who).Int64("door_id", doorID).Str("reason", dec.Reason).Msg("demo: presented")
	return dec.Granted
}

// pick returns a credential and door, in random order, whose dry-run decision (the engine's,
// in memory, with nothing logged) has one of the reasons; with needFree only doors that are not
// busy are considered.
func (t *traffic) pick(ctx context.Context, creds []credential, needFree bool, reasons ...string) (credential, int64, bool) {
	now := time.Now()
	type pair struct{ c, d int }
	pairs := make([]pair, 0, len(creds)*len(t.doors))
	for ci := range creds {
		for di := range t.doors {
			pairs = append(pairs, pair{ci, di})
		}
	}
	rand.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	for _, want := range reasons {
		for _, p := range pairs {
			c, d := creds[p.c], t.doors[p.d].ID
			if needFree && t.isBusy(d) {
				continue
			}
			r := c.request(d)
			r.Now = now
			if t.m.engine.Decide(ctx, r).Reason == want {
				return c, d, true
			}
		}
	}
	return credential{}, 0, false
}

// granted: someone presents a credential at a door they may open now, then walks through.
func (t *traffic) granted(ctx context.Context) bool {
	c, d, ok := t.pick(ctx, t.known, true, engine.ReasonGranted)
	if !ok || !t.claim(d) {
		return false
	}
	if !t.present(ctx, c, d) {
		t.free(d)
		return true
	}
	t.walk(ctx, d, t.between(300*time.Millisecond, 800*time.Millisecond), t.between(time.Second, 2500*time.Millisecond))
	return true
}

// notAllowed: someone presents a credential at a door no schedule gives them (or not now).
func (t *traffic) notAllowed(ctx context.Context) {
	c, d, ok := t.pick(ctx, t.known, false, engine.ReasonNoSchedule, engine.ReasonOutsideSchedule)
	if !ok {
		t.unknown(ctx)
		return
	}
	t.present(ctx, c, d)
}

// unknown: a card the site does not know (a badge of another site, a card number never issued).
func (t *traffic) unknown(ctx context.Context) {
	n := uint16(unknownCardsFrom + rand.IntN(unknownCardsTo-unknownCardsFrom+1))
	t.present(ctx, card(fmt.Sprintf("unknown card %d", n), n), t.randomDoor())
}

// invalid: the expired contractor, or the lost badge, tries a door.
func (t *traffic) invalid(ctx context.Context) {
	c := t.expired
	if rand.IntN(2) == 0 {
		c = t.lost
	}
	t.present(ctx, c, t.randomDoor())
}

// serverRoom: the card + PIN holder at the server room: mostly the right PIN (and in she goes),
// sometimes a mistyped PIN, sometimes the card alone (the reader then asks for the PIN).
func (t *traffic) serverRoom(ctx context.Context) {
	d, ok := t.doorNamed(doorServer)
	if !ok {
		t.unknown(ctx)
		return
	}
	c := t.serverPIN
	switch r := rand.IntN(10); {
	case r < 7 && t.claim(d):
		if t.present(ctx, c, d) {
			t.walk(ctx, d, t.between(500*time.Millisecond, time.Second), t.between(time.Second, 2*time.Second))
		} else {
			t.free(d)
		}
		return
	case r < 9:
		wrong := c.PIN
		for wrong == c.PIN {
			wrong = fmt.Sprintf("%04d", rand.IntN(10000))
		}
		c.PIN = wrong
	default:
		c.PIN = ""
	}
	t.present(ctx, c, d)
}

// exit: someone leaves through a door with its exit button.
func (t *traffic) exit(ctx context.Context) {
	d := t.randomDoor()
	if !t.claim(d) {
		t.unknown(ctx)
		return
	}
	if err := t.m.doorman.ExitRequest(ctx, d); err != nil {
		if ctx.Err() == nil {
			t.m.log.Debug().Err(err).Int64("door_id", d).Msg("demo: exit request refused")
		}
		t.free(d)
		return
	}
	t.walk(ctx, d, t.between(200*time.Millisecond, 600*time.Millisecond), t.between(time.Second, 2*time.Second))
}

// forced: a free, closed and locked door is pushed open without any grant and closed again a
// few seconds later. It reports false when no door qualifies now.
func (t *traffic) forced(ctx context.Context) bool {
	for _, i := range rand.Perm(len(t.doors)) {
		d := t.doors[i].ID
		if !t.claim(d) {
			continue
		}
		st, ok := t.m.doorman.State(d)
		if !ok || st.Open || !st.Locked || st.Effective.Released() {
			t.free(d)
			continue
		}
		t.walk(ctx, d, 0, max(t.between(3*time.Second, 8*time.Second), t.minOpen()))
		return true
	}
	return false
}

// heldOpen: someone is let in and props the door open past the held-open delay.
func (t *traffic) heldOpen(ctx context.Context) bool {
	c, d, ok := t.pick(ctx, t.known, true, engine.ReasonGranted)
	if !ok || !t.claim(d) {
		return false
	}
	if !t.present(ctx, c, d) {
		t.free(d)
		return false
	}
	t.walk(ctx, d, t.between(300*time.Millisecond, 800*time.Millisecond),
		t.m.heldOpenAfter+max(t.between(3*time.Second, 6*time.Second), t.minOpen()))
	return true
}

// walk opens the claimed door's contact after delay, closes it after open (at least minOpen),
// and frees the door once the close has settled. It returns at once; the passage stops early
// when ctx ends.
func (t *traffic) walk(ctx context.Context, doorID int64, delay, open time.Duration) {
	open = max(open, t.minOpen())
	t.wg.Go(func() {
		defer t.free(doorID)
		if !sleep(ctx, delay) || !t.contact(ctx, doorID, true) || !sleep(ctx, open) || !t.contact(ctx, doorID, false) {
			return
		}
		sleep(ctx, t.settle())
	})
}

// contact reports the door's contact and says whether the passage should go on.
func (t *traffic) contact(ctx context.Context, doorID int64, open bool) bool {
	if err := t.m.doorman.Contact(ctx, doorID, open); err != nil {
		if ctx.Err() == nil {
			t.m.log.Warn().Err(err).Int64("door_id", doorID).Bool("open", open).Msg("demo: door contact")
		}
		return false
	}
	return true
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
