package directory

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// The user view keeps, in memory, what user.read of one id shows of each user, so that the
// hot path of user.read runs no SQL (the SQLite driver compiles every statement again on each
// execution, which costs more than the rest of the call).
//
// It is a read-through cache with precise invalidation, warmed in bulk at start:
//
//   - At start it subscribes to the change topics, then loads every user, membership, owned
//     credential and direct schedule mapping in four bulk queries. Until that is done (and
//     whenever it is being rebuilt) user.read reads the database as before.
//   - A user the view does not hold is read from the database by the first user.read of it,
//     and kept (unless a change was applied while it was being read).
//   - A change never patches an entry: it drops the entries it may affect, and the next read
//     of those users goes to the database. Every change published on the bus names what it
//     touches (user.* and auth.login: the user; membership.*: its user; credential.*: the
//     owner after the change, and the owner before it through credOwner; group.deleted: its
//     members; schedule.*: the users its mappings list, before (from the view) and after (one
//     query)). A change the view does not understand drops everything and rebuilds.
//   - Changes are applied by Run as they come and, before any read, whatever is still queued
//     is applied first: the publishers publish after the commit and before replying, so a
//     change a client saw acknowledged is always applied before that client's next read. Only
//     a holder of the write lock takes events off the queue, so a reader that finds the queue
//     empty under the read lock knows every event taken off it has been applied.
//   - If the queue ever overflowed (the subscription lagged), reads go to the database until
//     a new subscription is taken and the view rebuilt.
//
// Changes that publish nothing on the bus (SQL run by hand, another process such as the
// password-reset command) are not seen for users the view already holds, exactly as for the
// auth module's cache of users; the two writes of the users table outside the event log
// publish something the view follows (auth.login after a rehash of the password,
// user.password_changed).
//
// A read of one id is always allowed to see the whole object: user.read of one id is refused
// unless the caller reads everything (viewer and above) or reads themself, and in both cases
// the email and every relationship are shown. So the view keeps one caller-independent entry
// per user and encodes it directly.

const (
	// userViewQueue is the capacity of the view's subscription.
	userViewQueue = 16384
	// userViewTick is how often Run applies queued changes when no read does it first.
	userViewTick = 10 * time.Millisecond
	// userViewSyncBuild is the largest number of users for which Provision builds the view
	// before the server starts serving (some tens of milliseconds at most); larger sites build
	// it in Run while user.read reads the database.
	userViewSyncBuild = 5_000
)

// userViewTopics are the changes that can alter what user.read shows.
var userViewTopics = []string{"user.*", "membership.*", "credential.*", "group.deleted", "schedule.*", "auth.login"}

// viewUser is what user.read of one id shows of a user. It is never modified once built.
type viewUser struct {
	id                                   int64
	username, firstname, lastname, email string
	rank                                 core.Rank
	validityEnabled                      bool
	validityStart, validityEnd           *time.Time
	version                              int64
	memberships, schedules               []int64 // sorted, distinct
	credentials                          []viewCredential
}

// viewCredential is a credential of a user: its id and concrete type.
type viewCredential struct {
	id  int64
	typ string
}

// userColumns are the columns of the users table that user.read shows, as scanUser reads them.
const userColumns = `id, username, firstname, lastname, email, rank, validity_enabled, validity_start, validity_end, version`

// scanUser reads a row of userColumns.
func scanUser(row interface{ Scan(dest ...any) error }, u *auth.User) error {
	var start, end sql.NullTime
	if err := row.Scan(&u.ID, &u.Username, &u.Firstname, &u.Lastname, &u.Email, &u.Rank, &u.ValidityEnabled,
		&start, &end, &u.Version); err != nil {
		return err
	}
	u.ValidityStart, u.ValidityEnd = nil, nil
	if start.Valid {
		t := start.Time
		u.ValidityStart = &t
	}
	if end.Valid {
		t := end.Time
		u.ValidityEnd = &t
	}
	return nil
}

// newViewUser returns the entry of a user given its row (without relationships).
func newViewUser(u *auth.User) *viewUser {
	return &viewUser{
		id: u.ID, username: u.Username, firstname: u.Firstname, lastname: u.Lastname, email: u.Email,
		rank: u.Rank, validityEnabled: u.ValidityEnabled, validityStart: u.ValidityStart,
		validityEnd: u.ValidityEnd, version: u.Version,
	}
}

// viewUserOf returns the entry of a user given its row and the rows of its relationships, as
// readUser returns them.
func viewUserOf(u *auth.User, links []userLink) *viewUser {
	vu := newViewUser(u)
	for _, l := range links {
		switch l.Kind {
		case "m":
			vu.memberships = append(vu.memberships, l.Ref)
		case "c":
			vu.credentials = append(vu.credentials, viewCredential{id: l.Ref, typ: credentialType(l.Typ)})
		case "s":
			vu.schedules = append(vu.schedules, l.Ref)
		}
	}
	vu.normalize()
	return vu
}

// normalize sorts the relationships by id and removes duplicates, as userObjectsOf does.
func (u *viewUser) normalize() {
	slices.Sort(u.memberships)
	u.memberships = slices.Clip(slices.Compact(u.memberships))
	slices.Sort(u.schedules)
	u.schedules = slices.Clip(slices.Compact(u.schedules))
	slices.SortFunc(u.credentials, func(a, b viewCredential) int {
		return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(a.typ, b.typ))
	})
	u.credentials = slices.Clip(slices.Compact(u.credentials))
}

// credentialType returns the credential type t without a copy of its own for the known types
// (a large site has hundreds of thousands of credentials).
func credentialType(t string) string {
	switch t {
	case TypeRFIDCard:
		return TypeRFIDCard
	case TypePINCode:
		return TypePINCode
	case TypeRFIDCardPIN:
		return TypeRFIDCardPIN
	}
	return strings.Clone(t)
}

// appendReply appends the reply of user.read of this user, byte for byte what encoding/json
// writes of resource.Single(<the user's resource.Object>) with every attribute and
// relationship shown (maps in key order, HTML-safe string escapes). leosac: the reader gets
// only Leosac's types (card + PIN credentials are referenced as rfid-card).
func (u *viewUser) appendReply(dst []byte, leosac bool) []byte {
	dst = append(dst, `{"data":{"id":`...)
	dst = strconv.AppendInt(dst, u.id, 10)
	dst = append(dst, `,"type":"user","attributes":{"email":`...)
	dst = appendJSONString(dst, u.email)
	dst = append(dst, `,"firstname":`...)
	dst = appendJSONString(dst, u.firstname)
	dst = append(dst, `,"lastname":`...)
	dst = appendJSONString(dst, u.lastname)
	dst = append(dst, `,"rank":`...)
	dst = strconv.AppendInt(dst, int64(u.rank), 10)
	dst = append(dst, `,"username":`...)
	dst = appendJSONString(dst, u.username)
	dst = append(dst, `,"validity-enabled":`...)
	dst = strconv.AppendBool(dst, u.validityEnabled)
	dst = append(dst, `,"validity-end":`...)
	dst = appendJSONTime(dst, u.validityEnd)
	dst = append(dst, `,"validity-start":`...)
	dst = appendJSONTime(dst, u.validityStart)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, u.version, 10)
	dst = append(dst, `},"relationships":{"credentials":{"data":[`...)
	for i, c := range u.credentials {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, c.id, 10)
		dst = append(dst, `,"type":`...)
		typ := c.typ
		if leosac && typ == TypeRFIDCardPIN {
			typ = TypeRFIDCard
		}
		dst = appendJSONString(dst, typ)
		dst = append(dst, '}')
	}
	dst = append(dst, `]},"memberships":{"data":[`...)
	dst = appendRefs(dst, u.memberships, `,"type":"user-group-membership"}`)
	dst = append(dst, `]},"schedules":{"data":[`...)
	dst = appendRefs(dst, u.schedules, `,"type":"schedule"}`)
	return append(dst, `]}}}}`...)
}

// appendRefs appends {"id":N<tail>, … for each id (tail closes the object with its type).
func appendRefs(dst []byte, ids []int64, tail string) []byte {
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, id, 10)
		dst = append(dst, tail...)
	}
	return dst
}

// appendJSONTime appends a date as resource.FormatTime writes it, or null.
func appendJSONTime(dst []byte, t *time.Time) []byte {
	if t == nil {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, t.UTC().Format(resource.TimeLayout))
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json.Marshal writes a string: quotes, backslashes,
// control characters and the HTML-sensitive <, > and & escaped, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// userView is the in-memory view of users (see the comment at the top of this file). It is
// safe for concurrent use.
type userView struct {
	db   *db.DB
	bus  *core.Bus
	log  zerolog.Logger
	wake chan struct{} // tells Run that the view must be rebuilt

	// mu guards everything below. Events are taken off sub only by a holder of the write lock.
	mu        sync.RWMutex
	sub       *core.Subscription
	ready     bool   // built, and following sub
	gen       uint64 // bumped by every applied change and every (re)build
	users     map[int64]*viewUser
	credOwner map[int64]int64 // credential → the user whose entry lists it
}

// newUserView subscribes to the changes of users; the view is empty (and reads go to the
// database) until build.
func newUserView(d *db.DB, bus *core.Bus, log zerolog.Logger) (*userView, error) {
	v := &userView{db: d, bus: bus, log: log, wake: make(chan struct{}, 1)}
	sub, err := v.subscribe()
	if err != nil {
		return nil, err
	}
	v.sub = sub
	return v, nil
}

func (v *userView) subscribe() (*core.Subscription, error) {
	sub, err := v.bus.Subscribe(core.SubscribeOptions{Name: "directory.user_view", Queue: userViewQueue, OnFull: core.Stall},
		userViewTopics...)
	if err != nil {
		return nil, fmt.Errorf("user view: subscribe: %w", err)
	}
	return sub, nil
}

// Close stops following changes; reads go to the database from then on.
func (v *userView) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ready, v.users, v.credOwner = false, nil, nil
	v.sub.Close()
}

// Ready reports whether reads are served from the view.
func (v *userView) Ready() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.ready && !lagged(v.sub)
}

func lagged(sub *core.Subscription) bool {
	select {
	case <-sub.Lagged():
		return true
	default:
		return false
	}
}

// buildIfSmall builds the view at once when the site is small enough for it to take no
// noticeable time; otherwise Run builds it.
func (v *userView) buildIfSmall(ctx context.Context) error {
	var n int64
	if err := v.db.Read.WithContext(ctx).Raw(`SELECT COUNT(*) FROM users`).Scan(&n).Error; err != nil {
		return fmt.Errorf("user view: count users: %w", err)
	}
	if n > userViewSyncBuild {
		return nil
	}
	return v.build(ctx)
}

// build loads the whole view and starts serving reads from it. The subscription is taken (again,
// if it lagged) before the load, so that every change committed after the load's queries is
// queued and applied after it. If the subscription lagged during the load, the view stays
// unready (Run builds again).
func (v *userView) build(ctx context.Context) error {
	v.mu.Lock()
	if lagged(v.sub) {
		v.sub.Close()
		sub, err := v.subscribe()
		if err != nil {
			v.mu.Unlock()
			return err
		}
		v.sub = sub
	}
	sub := v.sub
	v.ready, v.users, v.credOwner = false, nil, nil
	v.gen++
	v.mu.Unlock()

	start := time.Now()
	users, owners, err := loadUserView(ctx, v.db)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sub != sub || lagged(sub) {
		return nil
	}
	v.users, v.credOwner, v.ready = users, owners, true
	v.gen++
	v.log.Info().Int("users", len(users)).Dur("took_ms", time.Since(start)).Msg("user view built")
	return nil
}

// loadUserView reads every user and their relationships in four queries.
func loadUserView(ctx context.Context, d *db.DB) (map[int64]*viewUser, map[int64]int64, error) {
	pool, err := d.Read.DB()
	if err != nil {
		return nil, nil, fmt.Errorf("user view: %w", err)
	}
	users := map[int64]*viewUser{}
	err = eachRow(ctx, pool, `SELECT `+userColumns+` FROM users`, func(rows *sql.Rows) error {
		var u auth.User
		if err := scanUser(rows, &u); err != nil {
			return err
		}
		users[u.ID] = newViewUser(&u)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("user view: load users: %w", err)
	}
	// Rows of users created after the first query are ignored: their entries are loaded by
	// their first read.
	var owner, ref int64
	err = eachRow(ctx, pool, `SELECT user_id, id FROM memberships`, func(rows *sql.Rows) error {
		if err := rows.Scan(&owner, &ref); err != nil {
			return err
		}
		if u := users[owner]; u != nil {
			u.memberships = append(u.memberships, ref)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("user view: load memberships: %w", err)
	}
	var typ sql.RawBytes
	err = eachRow(ctx, pool, `SELECT owner_id, id, type FROM credentials WHERE owner_id IS NOT NULL`, func(rows *sql.Rows) error {
		if err := rows.Scan(&owner, &ref, &typ); err != nil {
			return err
		}
		if u := users[owner]; u != nil {
			u.credentials = append(u.credentials, viewCredential{id: ref, typ: credentialType(string(typ))})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("user view: load credentials: %w", err)
	}
	err = eachRow(ctx, pool, `SELECT mu.user_id, sm.schedule_id FROM mapping_users mu
		JOIN schedule_mappings sm ON sm.id = mu.mapping_id`, func(rows *sql.Rows) error {
		if err := rows.Scan(&owner, &ref); err != nil {
			return err
		}
		if u := users[owner]; u != nil {
			u.schedules = append(u.schedules, ref)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("user view: load schedules: %w", err)
	}
	owners := make(map[int64]int64, len(users))
	for _, u := range users {
		u.normalize()
		for _, c := range u.credentials {
			owners[c.id] = u.id
		}
	}
	return users, owners, nil
}

// eachRow runs a query and calls fn on each row.
func eachRow(ctx context.Context, pool *sql.DB, query string, fn func(*sql.Rows) error, args ...any) error {
	rows, err := pool.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Run builds the view if Provision did not, then applies changes as they come until ctx is
// done. A lagged subscription, or a change the view does not understand, makes it rebuild.
func (v *userView) Run(ctx context.Context) error {
	return runFollower(ctx, v, userViewTick, v.log, "user view", "user.read reads the database")
}

func (v *userView) state() (bool, <-chan struct{}, <-chan struct{}) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.ready, v.sub.Lagged(), v.wake
}

func (v *userView) reset() {
	v.mu.Lock()
	v.ready, v.users, v.credOwner = false, nil, nil
	v.gen++
	v.mu.Unlock()
}

// sync applies the queued changes, if any.
func (v *userView) sync() {
	v.mu.RLock()
	idle := !v.ready || len(v.sub.C()) == 0
	v.mu.RUnlock()
	if idle {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ready && !lagged(v.sub) {
		v.drainLocked()
	}
}

// lookup returns the view's entry of a user (nil if the view does not hold it) and the
// generation it was found at, after applying every queued change; ok is false when reads must
// go to the database (the view is not built, or its subscription lagged).
func (v *userView) lookup(id int64) (u *viewUser, gen uint64, ok bool) {
	v.mu.RLock()
	if v.ready && len(v.sub.C()) == 0 && !lagged(v.sub) {
		u, gen = v.users[id], v.gen
		v.mu.RUnlock()
		return u, gen, true
	}
	v.mu.RUnlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready || lagged(v.sub) {
		return nil, 0, false
	}
	v.drainLocked()
	if !v.ready {
		return nil, 0, false
	}
	return v.users[id], v.gen, true
}

// put keeps an entry read from the database, unless a change was applied since lookup
// returned gen (the entry may predate it). A change committed after lookup is still queued and
// drops the entry when it is applied.
func (v *userView) put(u *viewUser, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready || v.gen != gen {
		return
	}
	v.dropLocked(u.id)
	for _, c := range u.credentials {
		// A credential has one owner: another entry listing it predates a change of owner
		// whose event is still queued.
		if o, ok := v.credOwner[c.id]; ok && o != u.id {
			v.dropLocked(o)
		}
		v.credOwner[c.id] = u.id
	}
	v.users[u.id] = u
}

// dropLocked forgets a user's entry.
func (v *userView) dropLocked(id int64) {
	u := v.users[id]
	if u == nil {
		return
	}
	delete(v.users, id)
	for _, c := range u.credentials {
		if v.credOwner[c.id] == id {
			delete(v.credOwner, c.id)
		}
	}
}

// drainLocked applies every queued change.
func (v *userView) drainLocked() {
	for v.ready {
		select {
		case ev := <-v.sub.C():
			v.applyLocked(ev)
		default:
			return
		}
	}
}

// flushLocked forgets everything and has Run rebuild the view.
func (v *userView) flushLocked() {
	v.ready, v.users, v.credOwner = false, nil, nil
	v.gen++
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// applyLocked drops the entries a change may affect.
func (v *userView) applyLocked(ev core.Event) {
	v.gen++
	ch, err := parseUserChange(ev)
	if err != nil {
		v.log.Error().Err(err).Str("topic", ev.Topic).Msg("user view: change not understood; rebuilding the view")
		v.flushLocked()
		return
	}
	for _, c := range ch.credentials {
		if o, ok := v.credOwner[c]; ok {
			v.dropLocked(o)
		}
	}
	for _, id := range ch.users {
		v.dropLocked(id)
	}
	if ch.schedule != 0 {
		if err := v.dropScheduleLocked(ch.schedule); err != nil {
			v.log.Error().Err(err).Str("topic", ev.Topic).Msg("user view: rebuilding the view")
			v.flushLocked()
		}
	}
}

// dropScheduleLocked drops the entries of the users a schedule's mappings list: those the view
// lists it for (before the change) and those the database lists now.
func (v *userView) dropScheduleLocked(schedule int64) error {
	pool, err := v.db.Read.DB()
	if err != nil {
		return fmt.Errorf("users of schedule %d: %w", schedule, err)
	}
	var ids []int64
	err = eachRow(context.Background(), pool, `SELECT mu.user_id FROM mapping_users mu
		JOIN schedule_mappings sm ON sm.id = mu.mapping_id WHERE sm.schedule_id = ?`, func(rows *sql.Rows) error {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	}, schedule)
	if err != nil {
		return fmt.Errorf("users of schedule %d: %w", schedule, err)
	}
	for _, id := range ids {
		v.dropLocked(id)
	}
	for id, u := range v.users {
		if slices.Contains(u.schedules, schedule) {
			v.dropLocked(id)
		}
	}
	return nil
}

// userChange is what a change event says about the entries it affects.
type userChange struct {
	users       []int64 // users whose entries are stale
	credentials []int64 // credentials whose listing entry (the previous owner's) is stale
	schedule    int64   // schedule whose mappings changed, or 0
}

// parseUserChange reads a change event of userViewTopics. An event that does not carry what
// its topic should is an error (the view is then rebuilt rather than trusted).
func parseUserChange(ev core.Event) (userChange, error) {
	var ch userChange
	switch d := ev.Data.(type) {
	case *eventlog.Event:
		var p struct {
			ID      int64           `json:"id"`
			UserID  int64           `json:"user_id"`
			OwnerID *int64          `json:"owner_id"`
			Members json.RawMessage `json:"members"`
		}
		if err := json.Unmarshal(d.Data, &p); err != nil {
			return ch, fmt.Errorf("decode the data of %s: %w", d.Topic, err)
		}
		kind, _, _ := strings.Cut(d.Topic, ".")
		switch kind {
		case "auth": // the audit module's record of a login, already applied when it happened
			if p.UserID != 0 {
				ch.users = []int64{p.UserID}
			}
			return ch, nil
		case "user":
			for _, id := range []int64{p.ID, p.UserID} {
				if id != 0 {
					ch.users = append(ch.users, id)
				}
			}
			if len(ch.users) == 0 {
				return ch, fmt.Errorf("%s does not name its user", d.Topic)
			}
			return ch, nil
		case "membership":
			ch.users = []int64{p.UserID}
		case "credential":
			ch.credentials = []int64{p.ID}
			if p.OwnerID != nil {
				ch.users = []int64{*p.OwnerID}
			}
		case "group":
			if len(p.Members) == 0 {
				return ch, fmt.Errorf("%s does not list the group's members", d.Topic)
			}
			if err := json.Unmarshal(p.Members, &ch.users); err != nil {
				return ch, fmt.Errorf("decode the members of %s: %w", d.Topic, err)
			}
			return ch, nil
		case "schedule":
			ch.schedule = p.ID
		default:
			return ch, fmt.Errorf("unexpected topic %s", d.Topic)
		}
		if p.ID == 0 || len(ch.users) == 1 && ch.users[0] == 0 {
			return ch, fmt.Errorf("%s does not name what changed", d.Topic)
		}
	case auth.LoginEvent: // a password login may have rehashed the password (a new version)
		ch.users = []int64{d.UserID}
	case *auth.LoginEvent:
		ch.users = []int64{d.UserID}
	case map[string]any: // user.password_changed, published by the auth module
		id, ok := d["user_id"].(int64)
		if !ok {
			return ch, fmt.Errorf("%s does not name its user", ev.Topic)
		}
		ch.users = []int64{id}
	default:
		return ch, fmt.Errorf("%s carries an unexpected %T", ev.Topic, ev.Data)
	}
	return ch, nil
}

// read answers user.read of one id from the view: ok is false when the view cannot answer
// (the caller reads the database). A user the view does not hold is read by load (readUser)
// and kept. The caller has checked that the caller may read this user.
func (v *userView) read(ctx context.Context, leosac bool, id int64, load func(context.Context, int64) (auth.User, []userLink, error)) (json.RawMessage, bool, error) {
	u, gen, ok := v.lookup(id)
	if !ok {
		return nil, false, nil
	}
	if u == nil {
		au, links, err := load(ctx, id)
		if err != nil {
			return nil, true, err
		}
		u = viewUserOf(&au, links)
		v.put(u, gen)
	}
	return u.appendReply(make([]byte, 0, 512), leosac), true, nil
}

// ErrUserViewNotReady is returned by VerifyUserView when the view is not serving reads.
var ErrUserViewNotReady = errors.New("the user view is not built")

// UserViewReady reports whether user.read of one id is served from the in-memory view of
// users (false before it is built, while it is rebuilt, and when it is disabled).
func (m *Module) UserViewReady() bool { return m.view != nil && m.view.Ready() }

// VerifyUserView compares every entry of the in-memory view of users, after applying the
// queued changes, with what user.read answers from the database, and returns an error naming
// each difference (nil when they agree). Reads wait while it runs (one database read per user
// held), and a write committed meanwhile may show as a difference: it is a check for tests and
// diagnosis on a quiet server. It returns ErrUserViewNotReady when the view is not serving.
func (m *Module) VerifyUserView(ctx context.Context) error {
	v := m.view
	if v == nil {
		return ErrUserViewNotReady
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready || lagged(v.sub) {
		return ErrUserViewNotReady
	}
	v.drainLocked()
	if !v.ready {
		return ErrUserViewNotReady
	}
	reader := &core.Identity{Rank: core.RankAdministrator}
	var errs []error
	for id, u := range v.users {
		got := u.appendReply(nil, false)
		au, links, err := m.readUser(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("user %d: the view holds %s; the database: %w", id, got, err))
			continue
		}
		want, err := json.Marshal(resource.Single(userObjectsOf(nil, reader, []auth.User{au}, links)[0]))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			errs = append(errs, fmt.Errorf("user %d: the view holds %s; the database says %s", id, got, want))
		}
		for _, c := range u.credentials {
			if v.credOwner[c.id] != id {
				errs = append(errs, fmt.Errorf("user %d: credential %d is indexed under user %d", id, c.id, v.credOwner[c.id]))
			}
		}
	}
	for c, id := range v.credOwner {
		if v.users[id] == nil {
			errs = append(errs, fmt.Errorf("credential %d is indexed under user %d, whom the view does not hold", c, id))
		}
	}
	return errors.Join(errs...)
}
