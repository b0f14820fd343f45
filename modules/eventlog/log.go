// Package eventlog is gatehouse's append-only event log: every change, login, access decision
// and door event is a row of the events table with a monotonically increasing seq. The same
// rows are the audit trail (audit.get) and the history of the live stream (events.subscribe
// replays from them), so what a subscriber was pushed is always in the log.
//
// Writes that append events go through Log.Write: the caller's changes and their events are
// committed in one transaction on the single writer connection, and the events are published
// on the bus (topic = the event's topic, Data = *Event with its Seq) after the commit and in
// seq order. Publication order equals commit order because Write serialises commits and
// publications under one mutex; writes that do not append events use the writer directly.
package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/db"
)

// Event is one row of the log. Kind is the audit type in Leosac's JSON naming
// ("audit-user-event", "audit-auth-event", …); Mask its event-mask bits.
type Event struct {
	Seq         int64     `gorm:"column:seq;primaryKey;autoIncrement"`
	Time        time.Time `gorm:"column:time"`
	Topic       string    `gorm:"column:topic"`
	Kind        string    `gorm:"column:kind"`
	Mask        int64     `gorm:"column:event_mask"`
	AuthorID    *int64    `gorm:"column:author_id"`
	AuthorName  string    `gorm:"column:author_name"`
	TargetID    *int64    `gorm:"column:target_id"`
	Target2ID   *int64    `gorm:"column:target2_id"`
	UserID      *int64    `gorm:"column:user_id"`
	DoorID      *int64    `gorm:"column:door_id"`
	Description string    `gorm:"column:description"`
	Before      *string   `gorm:"column:before"`
	After       *string   `gorm:"column:after"`
	// Data is the topic's payload as pushed to subscribers (JSON object).
	Data json.RawMessage `gorm:"column:data"`

	// pushJSON is the encoded push content, set once before the event is published (so
	// subscribers share it read-only) or by the one goroutine that replays it.
	pushJSON []byte
}

// Visible reports whether the caller may see the event: viewers and above see every event;
// other users only the events about themselves (their access decisions, their logins) or
// done by them.
func Visible(c *core.Identity, e *Event) bool {
	if c.Rank >= core.RankViewer {
		return true
	}
	return e.UserID != nil && *e.UserID == c.UserID || e.AuthorID != nil && *e.AuthorID == c.UserID
}

// TableName implements GORM's tabler.
func (Event) TableName() string { return "events" }

// Log appends events and publishes them.
type Log struct {
	db  *db.DB
	bus *core.Bus
	log zerolog.Logger

	mu     sync.Mutex
	epoch  string
	purged atomic.Int64 // highest seq deleted by retention
}

// Open returns the log of the database, creating its epoch on first use.
func Open(ctx context.Context, d *db.DB, bus *core.Bus, log zerolog.Logger) (*Log, error) {
	l := &Log{db: d, bus: bus, log: log}
	err := d.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var v, purged string
		if err := tx.Raw(`SELECT value FROM meta WHERE key = 'epoch'`).Scan(&v).Error; err != nil {
			return err
		}
		if v == "" {
			v = uuid.NewString()
			if err := tx.Exec(`INSERT INTO meta(key, value) VALUES ('epoch', ?)`, v).Error; err != nil {
				return err
			}
		}
		if err := tx.Raw(`SELECT value FROM meta WHERE key = 'events_purged_up_to'`).Scan(&purged).Error; err != nil {
			return err
		}
		if n, err := strconv.ParseInt(purged, 10, 64); err == nil {
			l.purged.Store(n)
		}
		l.epoch = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	return l, nil
}

// Epoch returns the id of this database's history. It changes only when the database is
// replaced (a restored backup gets a new one), telling clients that their seq means nothing
// here.
func (l *Log) Epoch() string { return l.epoch }

// Tx is the transaction handed to Write's function: the GORM transaction for the caller's
// changes, and Append for its events.
type Tx struct {
	*gorm.DB
	pending []*Event
}

// Append adds an event to the transaction. Time defaults to now; Data defaults to {}.
func (t *Tx) Append(e *Event) error {
	if !core.ValidSubject(e.Topic) {
		return fmt.Errorf("append event: invalid topic %q", e.Topic)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC() // stored as text: one offset keeps comparisons right
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	e.Description = Cut(e.Description, MaxDescriptionBytes)
	if err := t.DB.Create(e).Error; err != nil {
		return fmt.Errorf("append event %s: %w", e.Topic, err)
	}
	if e.Kind != "" {
		if err := t.DB.Exec(`INSERT INTO event_counts(kind, n) VALUES (?, 1)
			ON CONFLICT(kind) DO UPDATE SET n = n + 1`, e.Kind).Error; err != nil {
			return fmt.Errorf("count event %s: %w", e.Kind, err)
		}
	}
	t.pending = append(t.pending, e)
	return nil
}

// LastSeq returns the seq of the event last appended in this transaction (0 if none).
func (t *Tx) LastSeq() int64 {
	if len(t.pending) == 0 {
		return 0
	}
	return t.pending[len(t.pending)-1].Seq
}

// Write runs fn in one transaction on the writer; if fn returns nil the transaction commits
// and every appended event is published on the bus, in seq order, before Write returns.
func (l *Log) Write(ctx context.Context, fn func(tx *Tx) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var events []*Event
	err := l.db.Write.WithContext(ctx).Transaction(func(gtx *gorm.DB) error {
		tx := &Tx{DB: gtx}
		if err := fn(tx); err != nil {
			return err
		}
		events = tx.pending
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range events {
		l.PushJSON(e) // encode once, before any subscriber shares it
		l.bus.Publish(core.Event{Topic: e.Topic, Time: e.Time, Source: "eventlog", Data: e})
	}
	return nil
}

// Count returns how many audit entries of the given kinds the log holds (all when none).
func (l *Log) Count(ctx context.Context, kinds []string) (int64, error) {
	q := l.db.Read.WithContext(ctx).Table("event_counts").Select("COALESCE(SUM(n), 0)")
	if len(kinds) > 0 {
		q = q.Where("kind IN ?", kinds)
	}
	var n int64
	if err := q.Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// LastSeq returns the newest seq ever assigned (0 for a log that never held an event); it
// does not go back when retention deletes old events.
func (l *Log) LastSeq(ctx context.Context) (int64, error) { return l.lastAssigned(ctx) }

func (l *Log) lastAssigned(ctx context.Context) (int64, error) {
	var n int64
	err := l.db.Read.WithContext(ctx).Raw(`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`).Scan(&n).Error
	return n, err
}

// Purged returns the highest seq that retention has deleted: a client whose since is older
// cannot resume.
func (l *Log) Purged() int64 { return l.purged.Load() }

// secretKeys are the keys whose values are replaced by "***" in snapshots.
var secretKeys = map[string]bool{
	"password": true, "new_password": true, "current_password": true, "password_hash": true,
	"token": true, "code": true, "pin": true, "pin_hash": true, "secret": true,
}

// Size bounds of what an audit entry stores (issue 10, point 5). The API already bounds every
// string a client stores (resource.Limits); these bounds make the audit trail safe whatever a
// module records.
const (
	// MaxSnapshotString is the most bytes of one string value kept in a before/after
	// snapshot; a longer one is cut (on a character boundary) and ends with "…".
	MaxSnapshotString = 4096
	// MaxSnapshotBytes is the most bytes of a before/after snapshot. A larger one is stored as
	// {"truncated": true, "bytes": <its size>}.
	MaxSnapshotBytes = 64 << 10
	// MaxDescriptionBytes is the most bytes of an entry's description; a longer one is cut
	// and ends with "…".
	MaxDescriptionBytes = 2048
)

// Snapshot returns v as a JSON string for an audit before/after, with every secret field
// (password, token, PIN code, hashes…) replaced by "***", at any depth, and bounded: strings
// longer than MaxSnapshotString bytes are cut, and a snapshot still larger than
// MaxSnapshotBytes is replaced by {"truncated": true, "bytes": N}.
func Snapshot(v any) (*string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit snapshot: %w", err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return nil, fmt.Errorf("audit snapshot: %w", err)
	}
	b, err = json.Marshal(clip(redact(generic)))
	if err != nil {
		return nil, fmt.Errorf("audit snapshot: %w", err)
	}
	if len(b) > MaxSnapshotBytes {
		b, _ = json.Marshal(map[string]any{"truncated": true, "bytes": len(b)})
	}
	s := string(b)
	return &s, nil
}

// clip cuts every string longer than MaxSnapshotString bytes, at any depth.
func clip(v any) any {
	switch x := v.(type) {
	case string:
		return Cut(x, MaxSnapshotString)
	case map[string]any:
		for k, val := range x {
			x[k] = clip(val)
		}
	case []any:
		for i := range x {
			x[i] = clip(x[i])
		}
	}
	return v
}

// Cut returns s when it has at most n bytes, else its longest prefix of at most n-3 bytes that
// ends on a character boundary, followed by "…" (3 bytes): at most n bytes in all (for n ≥ 3).
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := max(n-len("…"), 0)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretKeys[strings.ToLower(k)] {
				x[k] = "***"
			} else {
				x[k] = redact(val)
			}
		}
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
	}
	return v
}

// Ptr returns a pointer to v (for the optional id columns).
func Ptr[T any](v T) *T { return &v }

func errMissing(who string) error {
	return fmt.Errorf("the %q module must be loaded before %q", ModuleID, who)
}

// Change describes one audited change, for Tx.Record.
type Change struct {
	Topic       string         // bus topic, e.g. "group.created"
	Kind        string         // audit kind, e.g. KindGroup
	Mask        Mask           // event-mask bits
	Caller      *core.Identity // who did it (nil for the system)
	TargetID    int64          // the resource changed
	Target2ID   int64          // a second resource (membership: the group)
	UserID      int64          // the person concerned, when there is one
	DoorID      int64          // the door concerned, when there is one
	Description string         // human text
	Before      any            // snapshot before the change (secrets redacted); nil = none
	After       any            // snapshot after the change (secrets redacted); nil = none
	Data        any            // payload pushed to subscribers; nil = {"id": TargetID}
}

// Record appends the audit entry and event of a change to the transaction.
func (t *Tx) Record(c Change) error {
	e := &Event{Topic: c.Topic, Kind: c.Kind, Mask: c.Mask, Description: c.Description}
	if c.Caller != nil {
		e.AuthorID, e.AuthorName = Ptr(c.Caller.UserID), c.Caller.Username
	}
	e.TargetID, e.Target2ID = optional(c.TargetID), optional(c.Target2ID)
	e.UserID, e.DoorID = optional(c.UserID), optional(c.DoorID)
	var err error
	if c.Before != nil {
		if e.Before, err = Snapshot(c.Before); err != nil {
			return err
		}
	}
	if c.After != nil {
		if e.After, err = Snapshot(c.After); err != nil {
			return err
		}
	}
	data := c.Data
	if data == nil {
		data = map[string]int64{"id": c.TargetID}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("record %s: %w", c.Topic, err)
	}
	e.Data = b
	return t.Append(e)
}

func optional(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
