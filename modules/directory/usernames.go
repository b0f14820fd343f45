package directory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// The username index keeps every user's (id, username) in memory, sorted by id, so that
// search.user_username scans a slice with strings.Contains instead of scanning the username
// index of the database through the SQLite driver (several milliseconds of CPU per search on
// a site of 100,000 users).
//
// It follows the technique of the user view (userview.go):
//
//   - It subscribes to user.created, user.updated and user.deleted BEFORE loading every
//     (id, username) in one query, so that every change committed after the load is queued and
//     applied on top of it (the changes are idempotent: a create of a held id sets its
//     username, an update reloads the row, a delete removes the id).
//   - Before each search, whatever is still queued is applied first, under the write lock:
//     the publishers publish after the commit and before replying, so a create, rename or
//     delete a client saw acknowledged is always visible to that client's next search.
//   - If the subscription lagged, or a change could not be understood, searches use the SQL
//     path until Run has rebuilt the index.
//
// Users created without an event (the auth module's Users.Create, used by the bootstrap of the
// first administrator and by tools, or SQL run by hand) are caught by one cheap query per
// search for the ids above the highest id the index has seen (ids are AUTOINCREMENT, so never
// reused): they are added before the search runs. Renames and deletes made without an event
// are not seen, as for the user view.

const (
	// usernameIndexQueue is the capacity of the index's subscription.
	usernameIndexQueue = 16384
	// usernameIndexTick is how often Run applies queued changes when no search does it first.
	usernameIndexTick = 10 * time.Millisecond
)

// usernameIndexTopics are the changes that can alter a username.
var usernameIndexTopics = []string{"user.created", "user.updated", "user.deleted"}

// usernameEntry is one user of the index.
type usernameEntry struct {
	id   int64
	name string
}

// usernameIndex is the in-memory index of usernames. It is safe for concurrent use.
type usernameIndex struct {
	db   *db.DB
	bus  *core.Bus
	log  zerolog.Logger
	wake chan struct{}

	mu      sync.RWMutex
	sub     *core.Subscription
	ready   bool            // built, and following sub
	entries []usernameEntry // sorted by id, distinct ids
	high    int64           // the highest user id loaded from the database (ids are never reused)
}

// newUsernameIndex subscribes to the changes of usernames; the index is empty (and searches
// use SQL) until build.
func newUsernameIndex(d *db.DB, bus *core.Bus, log zerolog.Logger) (*usernameIndex, error) {
	x := &usernameIndex{db: d, bus: bus, log: log, wake: make(chan struct{}, 1)}
	sub, err := x.subscribe()
	if err != nil {
		return nil, err
	}
	x.sub = sub
	return x, nil
}

func (x *usernameIndex) subscribe() (*core.Subscription, error) {
	sub, err := x.bus.Subscribe(core.SubscribeOptions{Name: "directory.username_index", Queue: usernameIndexQueue, OnFull: core.Stall},
		usernameIndexTopics...)
	if err != nil {
		return nil, fmt.Errorf("username index: subscribe: %w", err)
	}
	return sub, nil
}

// Close stops following changes; searches use SQL from then on.
func (x *usernameIndex) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ready, x.entries = false, nil
	x.sub.Close()
}

// Ready reports whether searches are served from the index.
func (x *usernameIndex) Ready() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ready && !lagged(x.sub)
}

// build loads every (id, username) in one query and starts serving searches. The subscription
// is taken (again, if it lagged) before the load; if it lagged during the load, the index stays
// unready (Run builds again).
func (x *usernameIndex) build(ctx context.Context) error {
	x.mu.Lock()
	if lagged(x.sub) {
		x.sub.Close()
		sub, err := x.subscribe()
		if err != nil {
			x.mu.Unlock()
			return err
		}
		x.sub = sub
	}
	sub := x.sub
	x.ready, x.entries = false, nil
	x.mu.Unlock()

	start := time.Now()
	entries, err := x.load(ctx, 0)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sub != sub || lagged(sub) {
		return nil
	}
	x.entries, x.ready, x.high = entries, true, 0
	if n := len(entries); n > 0 {
		x.high = entries[n-1].id
	}
	x.log.Info().Int("users", len(entries)).Dur("took_ms", time.Since(start)).Msg("username index built")
	return nil
}

// load reads the (id, username) of every user whose id is above after, by id.
func (x *usernameIndex) load(ctx context.Context, after int64) ([]usernameEntry, error) {
	pool, err := x.db.Read.DB()
	if err != nil {
		return nil, fmt.Errorf("username index: %w", err)
	}
	var out []usernameEntry
	err = eachRow(ctx, pool, `SELECT id, username FROM users WHERE id > ? ORDER BY id`, func(rows *sql.Rows) error {
		var e usernameEntry
		if err := rows.Scan(&e.id, &e.name); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}, after)
	if err != nil {
		return nil, fmt.Errorf("username index: load users after %d: %w", after, err)
	}
	return out, nil
}

// Run builds the index if Provision did not, then applies changes as they come until ctx is
// done. A lagged subscription, or a change the index does not understand, makes it rebuild.
func (x *usernameIndex) Run(ctx context.Context) error {
	return runFollower(ctx, x, usernameIndexTick, x.log, "username index", "searches use the database")
}

func (x *usernameIndex) state() (bool, <-chan struct{}, <-chan struct{}) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.ready, x.sub.Lagged(), x.wake
}

func (x *usernameIndex) reset() {
	x.mu.Lock()
	x.ready, x.entries = false, nil
	x.mu.Unlock()
}

// sync applies the queued changes, if any.
func (x *usernameIndex) sync() {
	x.mu.RLock()
	idle := !x.ready || len(x.sub.C()) == 0
	x.mu.RUnlock()
	if idle {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ready && !lagged(x.sub) {
		x.drainLocked()
	}
}

// drainLocked applies every queued change.
func (x *usernameIndex) drainLocked() {
	for x.ready {
		select {
		case ev := <-x.sub.C():
			x.applyLocked(ev)
		default:
			return
		}
	}
}

// flushLocked forgets everything and has Run rebuild the index.
func (x *usernameIndex) flushLocked() {
	x.ready, x.entries = false, nil
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// applyLocked applies one change.
func (x *usernameIndex) applyLocked(ev core.Event) {
	if err := x.applyChangeLocked(ev); err != nil {
		x.log.Error().Err(err).Str("topic", ev.Topic).Msg("username index: rebuilding the index")
		x.flushLocked()
	}
}

func (x *usernameIndex) applyChangeLocked(ev core.Event) error {
	d, ok := ev.Data.(*eventlog.Event)
	if !ok {
		return fmt.Errorf("%s carries an unexpected %T", ev.Topic, ev.Data)
	}
	var p struct {
		ID       int64   `json:"id"`
		Username *string `json:"username"`
	}
	if err := json.Unmarshal(d.Data, &p); err != nil {
		return fmt.Errorf("decode the data of %s: %w", d.Topic, err)
	}
	if p.ID == 0 {
		return fmt.Errorf("%s does not name its user", d.Topic)
	}
	switch d.Topic {
	case "user.created":
		if p.Username != nil {
			x.putLocked(usernameEntry{id: p.ID, name: *p.Username})
			return nil
		}
		return x.reloadLocked(p.ID)
	case "user.updated":
		return x.reloadLocked(p.ID)
	case "user.deleted":
		x.removeLocked(p.ID)
		return nil
	}
	return fmt.Errorf("unexpected topic %s", d.Topic)
}

// reloadLocked reads one user's username from the database (a later change of it is still
// queued); a user that no longer exists is removed.
func (x *usernameIndex) reloadLocked(id int64) error {
	var rows []struct {
		ID       int64
		Username string
	}
	if err := x.db.Read.Raw(`SELECT id, username FROM users WHERE id = ?`, id).Scan(&rows).Error; err != nil {
		return fmt.Errorf("reload user %d: %w", id, err)
	}
	if len(rows) == 0 {
		x.removeLocked(id)
		return nil
	}
	x.putLocked(usernameEntry{id: id, name: rows[0].Username})
	return nil
}

func (x *usernameIndex) find(id int64) (int, bool) {
	return slices.BinarySearchFunc(x.entries, id, func(e usernameEntry, id int64) int { return cmp.Compare(e.id, id) })
}

// putLocked sets a user's username, adding the user if needed.
func (x *usernameIndex) putLocked(e usernameEntry) {
	i, ok := x.find(e.id)
	if ok {
		x.entries[i].name = e.name
		return
	}
	x.entries = slices.Insert(x.entries, i, e)
}

// removeLocked forgets a user.
func (x *usernameIndex) removeLocked(id int64) {
	if i, ok := x.find(id); ok {
		x.entries = slices.Delete(x.entries, i, i+1)
	}
}

// search returns at most searchLimit users, by id, whose username contains partial (already
// folded; it must not contain '%' or '_', except that a partial of only '%' lists everyone),
// after applying every queued change and adding the users created without an event. ok is
// false when the caller must use SQL. The result is never nil.
func (x *usernameIndex) search(ctx context.Context, partial string) (hits []UsernameHit, ok bool, err error) {
	if strings.Trim(partial, "%") == "" {
		partial = ""
	}
	x.mu.RLock()
	if !x.ready || len(x.sub.C()) != 0 || lagged(x.sub) {
		x.mu.RUnlock()
		if !x.catchUp(ctx, -1) {
			return nil, false, nil
		}
		x.mu.RLock()
	}
	high := x.high
	x.mu.RUnlock()

	// Users created without an event (rare): add them, then search.
	fresh, err := x.load(ctx, high)
	if err != nil {
		return nil, true, err
	}
	if len(fresh) > 0 && !x.catchUp(ctx, high) {
		return nil, false, nil
	}

	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready {
		return nil, false, nil
	}
	hits = []UsernameHit{}
	for _, e := range x.entries {
		if strings.Contains(e.name, partial) {
			hits = append(hits, UsernameHit{ID: e.id, Username: e.name})
			if len(hits) == searchLimit {
				break
			}
		}
	}
	return hits, true, nil
}

// catchUp applies the queued changes and, if high ≥ 0, adds the users above the highest id
// loaded, under the write lock. It reports whether the index is serving.
func (x *usernameIndex) catchUp(ctx context.Context, high int64) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready || lagged(x.sub) {
		return false
	}
	x.drainLocked()
	if !x.ready {
		return false
	}
	if high < 0 {
		return true
	}
	// Under the lock, after draining: a change committed after this query is queued and
	// applied after it. Every user committed after the last load has a higher id than any
	// loaded (AUTOINCREMENT), so none is missed.
	fresh, err := x.load(ctx, x.high)
	if err != nil {
		x.log.Error().Err(err).Msg("username index: rebuilding the index")
		x.flushLocked()
		return false
	}
	for _, e := range fresh {
		x.putLocked(e)
		x.high = max(x.high, e.id)
	}
	return true
}

// UsernameIndexReady reports whether search.user_username is served from the in-memory index
// of usernames (false before it is built, while it is rebuilt, and when it is disabled).
func (m *Module) UsernameIndexReady() bool { return m.names != nil && m.names.Ready() }
