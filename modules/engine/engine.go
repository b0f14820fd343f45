// Package engine is the access engine: it decides, in memory, whether a credential presented
// at a reader opens a door (contract §10).
//
// The engine keeps an index of users, memberships, credentials, schedules, mappings, doors and
// the zone tree, built from the database at start and kept current from the change events the
// domain modules publish (user.updated, credential.created, schedule.updated, …). A decision
// reads no database. Change events are applied by the engine's own goroutine as they come and,
// before every decision, whatever is still queued is applied first: a change that a client saw
// acknowledged is always visible to the next decision.
package engine

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
	"gatehouse/modules/directory"
	"gatehouse/modules/eventlog"
)

// Reasons of decisions, as they appear in access events.
const (
	ReasonGranted           = "granted"            // a schedule applies now
	ReasonUnlocked          = "door_unlocked"      // the door is in unlocked mode
	ReasonEvacuation        = "evacuation"         // the site is evacuating: every door is open
	ReasonLockdown          = "lockdown"           // the site is locked down
	ReasonDoorLocked        = "door_locked"        // the door is in locked mode
	ReasonUnknownDoor       = "unknown_door"       // no such door
	ReasonUnknownReader     = "unknown_reader"     // no door has this reader (access point)
	ReasonBadRead           = "bad_read"           // the read could not be decoded (parity, bit count)
	ReasonUnknownCredential = "unknown_credential" // no credential matches
	ReasonPINRequired       = "pin_required"       // the card is a card+PIN credential: a PIN is needed
	ReasonWrongPIN          = "wrong_pin"          // a card+PIN credential's card with another PIN: names the cardholder (a possibly stolen card)
	ReasonCredentialInvalid = "credential_invalid" // disabled or outside its validity
	ReasonUserInvalid       = "user_invalid"       // the owner is disabled, outside validity, or gone
	ReasonNoSchedule        = "no_schedule"        // no mapping gives this person this door
	ReasonOutsideSchedule   = "outside_schedule"   // mappings exist, but no timeframe contains now
)

// Door and site modes (contract §5).
const (
	ModeNormal     = "normal"
	ModeUnlocked   = "unlocked"
	ModeLocked     = "locked"
	SiteLockdown   = "lockdown"
	SiteEvacuation = "evacuation"
)

// Request is one credential presentation.
type Request struct {
	DoorID   int64  // the door, or 0 to find it from ReaderID
	ReaderID int64  // the access point the read came from (0 if unknown)
	CardID   string // raw card bits, "aa:bb:cc:dd" (lower case), or "" for a PIN-only read
	NbBits   int    // bits of the card read
	PIN      string // PIN typed, or ""
	BadRead  bool   // the reader could not decode the frame (parity error…)
	DoorMode string // the door's mode now (normal, unlocked, locked); "" = normal
	SiteMode string // the site's mode now (normal, lockdown, evacuation); "" = normal
	Now      time.Time
}

// Decision is the engine's answer, with what an access event carries (contract §10).
type Decision struct {
	Granted      bool   `json:"granted"`
	Reason       string `json:"reason"`
	DoorID       int64  `json:"door_id"`
	Door         string `json:"door"`
	ReaderID     int64  `json:"reader_id"`
	UserID       int64  `json:"user_id,omitempty"`
	Username     string `json:"username,omitempty"`
	CredentialID int64  `json:"credential_id,omitempty"`
	CardID       string `json:"card_id,omitempty"`
	NbBits       int    `json:"nb_bits,omitempty"`
	PIN          bool   `json:"pin,omitempty"` // a PIN was typed (never its value)
}

// Engine decides. It is safe for concurrent use.
type Engine struct {
	db   *db.DB
	pins *directory.PINHasher
	loc  *time.Location
	log  zerolog.Logger
	bus  *core.Bus
	sub  *core.Subscription

	applyMu sync.Mutex // serialises applying change events
	mu      sync.RWMutex
	people  *people
	layout  *layout
}

// changeTopics are the change events the index follows (two-token topics only: runtime door
// events like door.7.opened are not changes).
var changeTopics = []string{"user.*", "credential.*", "membership.*", "group.*", "schedule.*", "door.*", "access_point.*", "zone.*"}

// New builds the engine's index from the database and subscribes to change events.
func New(ctx context.Context, d *db.DB, bus *core.Bus, pins *directory.PINHasher, loc *time.Location, log zerolog.Logger) (*Engine, error) {
	e := &Engine{db: d, bus: bus, pins: pins, loc: loc, log: log}
	// Subscribe before loading: a change committed during the load is applied again after it,
	// which is harmless (every apply reads the current row).
	sub, err := bus.Subscribe(core.SubscribeOptions{Name: "engine", Queue: 8192, OnFull: core.Stall}, changeTopics...)
	if err != nil {
		return nil, err
	}
	e.sub = sub
	if err := e.reloadAll(ctx); err != nil {
		sub.Close()
		return nil, err
	}
	return e, nil
}

// Close stops following changes.
func (e *Engine) Close() { e.sub.Close() }

func (e *Engine) reloadAll(ctx context.Context) error {
	p, err := loadPeople(ctx, e.db.Read)
	if err != nil {
		return err
	}
	l, err := loadLayout(ctx, e.db.Read)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.people, e.layout = p, l
	e.mu.Unlock()
	return nil
}

// Run applies queued change events every few milliseconds until ctx is done. Events are only
// ever taken off the queue under the apply lock (here and in Decide's sync), so a decision can
// never run while an acknowledged change is off the queue but not yet applied. If the engine
// fell behind (its queue overflowed), it reloads everything.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.sub.Lagged():
			e.log.Error().Msg("engine fell behind the change events; reloading the whole index")
			if err := e.recover(ctx); err != nil {
				return err
			}
		case <-t.C:
			e.sync(ctx)
		}
	}
}

// recover replaces the lagged subscription and reloads the whole index: after a gap in the
// change events, nothing short of a reload is known to be right.
func (e *Engine) recover(ctx context.Context) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	e.sub.Close()
	sub, err := e.bus.Subscribe(core.SubscribeOptions{Name: "engine", Queue: 8192, OnFull: core.Stall}, changeTopics...)
	if err != nil {
		return fmt.Errorf("engine: resubscribe: %w", err)
	}
	e.sub = sub
	return e.reloadAll(ctx)
}

// sync applies every change event already queued. Called before each decision.
func (e *Engine) sync(ctx context.Context) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	for {
		select {
		case ev := <-e.sub.C():
			e.apply(ctx, ev)
		default:
			return
		}
	}
}

// apply brings the index up to date with one change event. Failures are logged; the index
// then keeps its previous state for that entity (the next change to it repairs it).
func (e *Engine) apply(ctx context.Context, ev core.Event) {
	le, ok := ev.Data.(*eventlog.Event)
	if !ok || ev.Source != "eventlog" {
		return
	}
	resource, verb, _ := strings.Cut(le.Topic, ".")
	var data struct {
		ID     int64 `json:"id"`
		UserID int64 `json:"user_id"`
	}
	_ = json.Unmarshal(le.Data, &data)
	var err error
	switch resource {
	case "user":
		if verb == "deleted" {
			e.mu.Lock()
			e.people.removeUser(data.ID)
			e.mu.Unlock()
			err = e.reloadLayout(ctx) // its mapping links went with it
		} else {
			err = e.reloadUser(ctx, data.ID)
		}
	case "credential":
		if verb == "deleted" {
			e.mu.Lock()
			e.people.removeCredential(data.ID)
			_, mapped := e.layout.byCred[data.ID]
			e.mu.Unlock()
			if mapped {
				err = e.reloadLayout(ctx)
			}
		} else {
			err = e.reloadCredential(ctx, data.ID)
		}
	case "membership":
		err = e.reloadMemberships(ctx, data.UserID)
	case "group":
		if verb == "deleted" {
			if err = e.reloadAllMemberships(ctx); err == nil {
				err = e.reloadLayout(ctx)
			}
		}
	case "schedule", "door", "access_point", "zone":
		err = e.reloadLayout(ctx)
	}
	if err != nil {
		e.log.Error().Err(err).Str("topic", le.Topic).Int64("seq", le.Seq).Msg("engine could not apply a change")
	}
}

func (e *Engine) reloadUser(ctx context.Context, id int64) error {
	var rows []userRow
	if err := e.db.Read.WithContext(ctx).Table("users").Select("id, username, validity_enabled, validity_start, validity_end").
		Where("id = ?", id).Find(&rows).Error; err != nil {
		return fmt.Errorf("reload user %d: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(rows) == 0 {
		e.people.removeUser(id)
		return nil
	}
	e.people.putUser(rows[0])
	return nil
}

func (e *Engine) reloadCredential(ctx context.Context, id int64) error {
	var rows []credRow
	if err := e.db.Read.WithContext(ctx).Table("credentials").
		Select("id, type, owner_id, card_id, nb_bits, pin_hash, validity_enabled, validity_start, validity_end").
		Where("id = ?", id).Find(&rows).Error; err != nil {
		return fmt.Errorf("reload credential %d: %w", id, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(rows) == 0 {
		e.people.removeCredential(id)
		return nil
	}
	e.people.putCredential(rows[0])
	return nil
}

func (e *Engine) reloadMemberships(ctx context.Context, userID int64) error {
	var groups []int64
	if err := e.db.Read.WithContext(ctx).Raw(`SELECT group_id FROM memberships WHERE user_id = ?`, userID).
		Scan(&groups).Error; err != nil {
		return fmt.Errorf("reload memberships of %d: %w", userID, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.people.groupsOf, userID)
	for _, g := range groups {
		e.people.addMembership(userID, g)
	}
	return nil
}

func (e *Engine) reloadAllMemberships(ctx context.Context) error {
	var ms []struct{ UserID, GroupID int64 }
	if err := e.db.Read.WithContext(ctx).Raw(`SELECT user_id, group_id FROM memberships`).Scan(&ms).Error; err != nil {
		return fmt.Errorf("reload memberships: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.people.groupsOf = map[int64]map[int64]bool{}
	for _, m := range ms {
		e.people.addMembership(m.UserID, m.GroupID)
	}
	return nil
}

func (e *Engine) reloadLayout(ctx context.Context) error {
	l, err := loadLayout(ctx, e.db.Read)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.layout = l
	e.mu.Unlock()
	return nil
}

// DoorOfReader returns the door an access point is installed on.
func (e *Engine) DoorOfReader(readerID int64) (int64, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.layout.doorOfAP[readerID]
	return d, ok
}

// DoorAlias returns a door's alias, and whether the door exists.
func (e *Engine) DoorAlias(doorID int64) (string, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.layout.doors[doorID]
	if !ok {
		return "", false
	}
	return d.Alias, true
}

// Decide answers one request. It reads no database.
func (e *Engine) Decide(ctx context.Context, r Request) Decision {
	e.sync(ctx)
	e.mu.RLock()
	defer e.mu.RUnlock()
	return decide(e.people, e.layout, e.pins, e.loc, r)
}

// decide is the decision itself, on one consistent view of the index (contract §10).
func decide(p *people, l *layout, pins *directory.PINHasher, loc *time.Location, r Request) Decision {
	d := Decision{DoorID: r.DoorID, ReaderID: r.ReaderID, CardID: r.CardID, NbBits: r.NbBits, PIN: r.PIN != ""}
	if d.DoorID == 0 {
		id, ok := l.doorOfAP[r.ReaderID]
		if !ok {
			d.Reason = ReasonUnknownReader
			return d
		}
		d.DoorID = id
	}
	dr, ok := l.doors[d.DoorID]
	if !ok {
		d.Reason = ReasonUnknownDoor
		return d
	}
	d.Door = dr.Alias
	if d.ReaderID == 0 {
		d.ReaderID = dr.AccessPointID
	}
	// Identify the person even when the mode decides alone (lockdown, locked, unlocked,
	// evacuation): the event says who it was.
	var cred *credential
	reason := ""
	wrongPIN := false // cred is the card's card+PIN credential, but the PIN typed is not its own
	switch {
	case r.BadRead:
		reason = ReasonBadRead
	case r.CardID != "" && r.PIN != "":
		cred = p.byPIN[pins.HashFor(r.CardID, r.NbBits, r.PIN)]
		if cred == nil || cred.Type != "rfid-card-pin" || cred.CardID != r.CardID || cred.NbBits != r.NbBits {
			cred = nil
			reason = ReasonUnknownCredential
			// The card is known, the PIN is not its own: say whose card it is, so that an
			// operator sees a possibly stolen card being tried (issue 10, point 16).
			if c := p.cardPIN[cardKey{r.CardID, r.NbBits}]; c != nil {
				cred, wrongPIN = c, true
			}
		}
	case r.CardID != "":
		cred = p.byCard[cardKey{r.CardID, r.NbBits}]
		if cred == nil {
			reason = ReasonUnknownCredential
			if p.cardPIN[cardKey{r.CardID, r.NbBits}] != nil {
				reason = ReasonPINRequired
			}
		}
	case r.PIN != "":
		cred = p.byPIN[pins.Hash(r.PIN)]
		if cred == nil || cred.Type != "pin-code" {
			cred = nil
			reason = ReasonUnknownCredential
		}
	default:
		reason = ReasonBadRead
	}
	var owner *user
	if cred != nil {
		d.CredentialID = cred.ID
		if cred.OwnerID != 0 {
			d.UserID = cred.OwnerID
			if owner = p.users[cred.OwnerID]; owner != nil {
				d.Username = owner.Username
			}
		}
	}
	switch {
	case r.SiteMode == SiteLockdown:
		d.Reason = ReasonLockdown
		return d
	case r.DoorMode == ModeLocked && r.SiteMode != SiteEvacuation:
		d.Reason = ReasonDoorLocked
		return d
	case r.SiteMode == SiteEvacuation:
		d.Granted, d.Reason = true, ReasonEvacuation
		return d
	case r.DoorMode == ModeUnlocked:
		d.Granted, d.Reason = true, ReasonUnlocked
		return d
	case cred == nil:
		d.Reason = reason
		return d
	case wrongPIN:
		d.Reason = ReasonWrongPIN
		return d
	}
	now := r.Now
	if !cred.validAt(now) {
		d.Reason = ReasonCredentialInvalid
		return d
	}
	if cred.OwnerID != 0 && (owner == nil || !owner.validAt(now)) {
		d.Reason = ReasonUserInvalid
		return d
	}
	found, inTime := l.applies(p, cred.OwnerID, cred.ID, d.DoorID, now.In(loc))
	switch {
	case inTime:
		d.Granted, d.Reason = true, ReasonGranted
	case found:
		d.Reason = ReasonOutsideSchedule
	default:
		d.Reason = ReasonNoSchedule
	}
	return d
}
