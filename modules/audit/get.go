package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// Paging limits of audit.get.
const (
	defaultPageSize = 20
	maxPageSize     = 500
	// MaxReplyBytes bounds the encoded content of an audit.get reply (issue 10, point 5): a
	// page whose entries would exceed it ends early, and meta says so ("truncated": true,
	// "returned": n). One entry is at most about 1.3 MiB (description, data and snapshots are
	// read bounded, see boundedColumn), so a reply always holds at least one entry.
	MaxReplyBytes = 4 << 20
	// maxDataBytes bounds an entry's data as read; a larger one reads as {"truncated": true}.
	maxDataBytes = 64 << 10
)

// extraTypes are Leosac audit type ids that gatehouse never writes but that Leosac clients may
// ask for: they are accepted and match nothing.
var extraTypes = map[string]string{
	"Leosac::Module::SMTP::SMTPAudit": "smtp-event",
}

// knownKinds are the kind names accepted in enabled_type(s) besides Leosac's type ids.
var knownKinds = func() map[string]bool {
	k := map[string]bool{}
	for _, kind := range eventlog.LeosacTypes {
		k[kind] = true
	}
	for _, kind := range extraTypes {
		k[kind] = true
	}
	return k
}()

// getRequest is the content of audit.get.
type getRequest struct {
	P            *int64   `json:"p"`
	PS           *int64   `json:"ps"`
	EnabledType  []string `json:"enabled_type"`
	EnabledTypes []string `json:"enabled_types"`
	UserID       *int64   `json:"user_id"`
	DoorID       *int64   `json:"door_id"`
	AuthorID     *int64   `json:"author_id"`
	Since        *string  `json:"since"`
	Until        *string  `json:"until"`
	Mask         *int64   `json:"mask"`
}

// auditGet (viewers and above; "before"/"after" for administrators only) pages through the
// audit trail, newest first (reference §4.2, with Leosac's bugs fixed).
//
// Request, every key optional:
//   - p: page, 1-based (default 1); ps: page size, 1..500 (default 20). Anything else is
//     INVALID_ARGUMENT.
//   - enabled_type or enabled_types (both accepted, Leosac's code and documentation
//     disagreed; their union applies): the audit types to show, as Leosac type ids
//     ("Leosac::Audit::UserEvent", …, "Gatehouse::Audit::LoginEvent") or as the entries' JSON
//     types ("audit-user-event", …). An unknown one is INVALID_ARGUMENT naming its index.
//     Empty or absent means every type.
//
// gatehouse extensions, for the dashboard (absent, null, 0 or "" = no filter):
//   - user_id: entries that concern the user: its user_id is the user's (the person an
//     access decision, login or membership is about), the user wrote it (author), or it is
//     a user event about the user.
//   - door_id: entries about the door. author_id: entries written by the user.
//   - since, until: RFC 3339 dates (any offset); entries with since <= time < until.
//   - mask: entries whose event-mask has any of these bits.
//
// Response: {"meta": {"count": N, "total_page": ceil(N/ps)}, "data": [entries]}. A reply is
// at most MaxReplyBytes (4 MiB) of JSON: when the entries of a page would not fit, the page
// holds only the first ones that do and meta adds "truncated": true and "returned": <how
// many> (the rest of the page is reached with a smaller ps). An entry's snapshots and data
// are also bounded as read (older rows than the bounds on writes included): a before/after
// over eventlog.MaxSnapshotBytes or a data over 64 KiB reads as {"truncated": true}, a
// description is cut to 2048 characters. An entry is
//
//	{"id": seq, "type": kind, "attributes": {"event-mask", "timestamp" (unix seconds),
//	"time" (RFC 3339 UTC), "description", "finalized": true, "topic", "data" (the payload
//	pushed to live subscribers), "before"/"after" (administrators: JSON strings or null)},
//	"relationships": {"author": {"data": {"id", "type": "user"}} (when there is one), and per
//	type: "target" (user, group, credential, schedule, door, zone, access-point, update);
//	membership "target-user" and "target-group"; access decision "user", "door",
//	"credential"; login "user"}}
//
// Relationships are JSON:API {"data": {…}}, {"data": null} when not set.
//
// A client of the Leosac dialect that did not opt into gatehouse's types
// (core.Session.LeosacTypes) sees only the kinds Leosac's web GUI knows
// (eventlog.LeosacKinds), whatever enabled_type says (asking only for other kinds finds
// nothing), with event-masks as the GUI reads them (eventlog.LeosacMask, below 2^30), and a
// card + PIN credential in a credential entry's data and snapshots as an "rfid-card" with
// "pin-required" (descriptions are text, written once, and keep gatehouse's type name).
func (m *Module) auditGet(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	var req getRequest
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	q, err := req.query()
	if err != nil {
		return nil, err
	}
	leosac := call.Session.LeosacTypes()
	if leosac {
		if q.kinds = leosacKinds(q.kinds); len(q.kinds) == 0 {
			return getReply{Meta: getMeta{}, Data: []json.RawMessage{}}, nil
		}
	}
	full := resource.IsAdmin(call.Caller)
	count, events, err := m.find(ctx, q, full)
	if err != nil {
		return nil, err
	}
	data, truncated, err := encodeEntries(events, full, leosac, MaxReplyBytes-1024) // 1 KiB for meta and brackets
	if err != nil {
		return nil, err
	}
	meta := getMeta{Count: count, TotalPage: (count + q.size - 1) / q.size}
	if truncated {
		meta.Truncated, meta.Returned = true, len(data)
	}
	return getReply{Meta: meta, Data: data}, nil
}

// encodeEntries encodes the entries of events in order until the next one would take the
// total past budget bytes (the first one is always kept); truncated reports that some were
// left out.
func encodeEntries(events []eventlog.Event, full, leosac bool, budget int) (data []json.RawMessage, truncated bool, err error) {
	data = make([]json.RawMessage, 0, len(events))
	total := 0
	for i := range events {
		b, err := json.Marshal(newEntry(&events[i], full, leosac))
		if err != nil {
			return nil, false, fmt.Errorf("encode audit entry %d: %w", events[i].Seq, err)
		}
		if len(data) > 0 && total+len(b)+1 > budget {
			return data, true, nil
		}
		total += len(b) + 1 // and a comma
		data = append(data, b)
	}
	return data, false, nil
}

type getReply struct {
	Meta getMeta           `json:"meta"`
	Data []json.RawMessage `json:"data"`
}

type getMeta struct {
	Count     int64 `json:"count"`
	TotalPage int64 `json:"total_page"`
	// Truncated: the page ends early, its entries would have exceeded MaxReplyBytes.
	Truncated bool `json:"truncated,omitempty"`
	// Returned is how many entries the truncated page holds.
	Returned int `json:"returned,omitempty"`
}

// query is a validated audit.get request.
type query struct {
	page, size int64
	filter
}

// filter selects audit entries. Zero values do not filter.
type filter struct {
	kinds                    []string // sorted, distinct; nil = every kind
	userID, doorID, authorID int64
	since, until             *time.Time
	mask                     int64
}

// onlyKinds reports whether the filter is on kinds alone, whose count the event log keeps.
func (f filter) onlyKinds() bool {
	return f.userID == 0 && f.doorID == 0 && f.authorID == 0 && f.since == nil && f.until == nil && f.mask == 0
}

func (r getRequest) query() (query, error) {
	q := query{page: 1, size: defaultPageSize}
	if r.P != nil {
		if q.page = *r.P; q.page <= 0 {
			return q, invalidArgument("page", q.page, "page > 0")
		}
	}
	if r.PS != nil {
		if q.size = *r.PS; q.size <= 0 {
			return q, invalidArgument("page_size", q.size, "page_size > 0")
		} else if q.size > maxPageSize {
			return q, invalidArgument("page_size", q.size, fmt.Sprintf("page_size <= %d", maxPageSize))
		}
	}
	seen := map[string]bool{}
	for _, list := range []struct {
		name  string
		types []string
	}{{"enabled_type", r.EnabledType}, {"enabled_types", r.EnabledTypes}} {
		for i, t := range list.types {
			kind, ok := eventlog.LeosacTypes[t]
			if !ok {
				kind, ok = extraTypes[t]
			}
			if !ok && knownKinds[t] {
				kind, ok = t, true
			}
			if !ok {
				return q, core.Errorf(core.InvalidArgument, "Invalid Argument %s[%d]: unknown audit type.", list.name, i)
			}
			if !seen[kind] {
				seen[kind] = true
				q.kinds = append(q.kinds, kind)
			}
		}
	}
	slices.Sort(q.kinds)
	for _, id := range []struct {
		name string
		v    *int64
		dst  *int64
	}{{"user_id", r.UserID, &q.userID}, {"door_id", r.DoorID, &q.doorID}, {"author_id", r.AuthorID, &q.authorID}} {
		if id.v == nil {
			continue
		}
		if *id.v < 0 {
			return q, invalidArgument(id.name, *id.v, id.name+" >= 0")
		}
		*id.dst = *id.v
	}
	for _, d := range []struct {
		name string
		v    *string
		dst  **time.Time
	}{{"since", r.Since, &q.since}, {"until", r.Until, &q.until}} {
		if d.v == nil || *d.v == "" {
			continue
		}
		t, err := resource.ParseTime(*d.v)
		if err != nil {
			return q, core.Errorf(core.InvalidArgument, "Invalid Argument %s: want an RFC 3339 date.", d.name)
		}
		*d.dst = &t
	}
	if r.Mask != nil {
		q.mask = *r.Mask
	}
	return q, nil
}

// entry is one audit entry as sent.
type entry struct {
	ID            int64                   `json:"id"`
	Type          string                  `json:"type"`
	Attributes    entryAttributes         `json:"attributes"`
	Relationships map[string]resource.Rel `json:"relationships"`
}

type entryAttributes struct {
	EventMask   int64           `json:"event-mask"`
	Timestamp   int64           `json:"timestamp"`
	Time        any             `json:"time"`
	Description string          `json:"description"`
	Finalized   bool            `json:"finalized"`
	Topic       string          `json:"topic"`
	Data        json.RawMessage `json:"data"`
	*snapshots                  // administrators only
}

type snapshots struct {
	Before *string `json:"before"`
	After  *string `json:"after"`
}

// targetTypes are the resource types of target_id for the kinds that have one "target".
var targetTypes = map[string]string{
	eventlog.KindUser:        "user",
	eventlog.KindGroup:       "group",
	eventlog.KindCredential:  "credential",
	eventlog.KindSchedule:    "schedule",
	eventlog.KindDoor:        "door",
	eventlog.KindZone:        "zone",
	eventlog.KindAccessPoint: "access-point",
	eventlog.KindUpdate:      "update",
}

// newEntry returns the entry of an event; leosac: as a client of the Leosac dialect sees it.
func newEntry(e *eventlog.Event, full, leosac bool) entry {
	data := e.Data
	if !json.Valid(data) {
		data = json.RawMessage("{}")
	}
	mask := e.Mask
	if leosac {
		mask = eventlog.LeosacMask(mask)
		if e.Kind == eventlog.KindCredential {
			data = leosacCredentialData(data)
		}
	}
	out := entry{
		ID: e.Seq, Type: e.Kind,
		Attributes: entryAttributes{
			EventMask: mask, Timestamp: e.Time.Unix(), Time: resource.FormatTime(&e.Time),
			Description: e.Description, Finalized: true, Topic: e.Topic, Data: data,
		},
		Relationships: map[string]resource.Rel{},
	}
	if full {
		out.Attributes.snapshots = &snapshots{Before: e.Before, After: e.After}
		if leosac && e.Kind == eventlog.KindCredential {
			out.Attributes.snapshots = &snapshots{Before: leosacSnapshot(e.Before), After: leosacSnapshot(e.After)}
		}
	}
	rels := out.Relationships
	if e.AuthorID != nil {
		rels["author"] = resource.One("user", *e.AuthorID)
	}
	switch e.Kind {
	case eventlog.KindMembership:
		rels["target-user"] = one("user", e.TargetID)
		rels["target-group"] = one("group", e.Target2ID)
	case eventlog.KindAuth:
		rels["user"] = one("user", e.UserID)
		rels["door"] = one("door", e.DoorID)
		rels["credential"] = one("credential", e.TargetID)
	case eventlog.KindLogin:
		rels["user"] = one("user", e.UserID)
	default:
		if typ, ok := targetTypes[e.Kind]; ok {
			rels["target"] = one(typ, e.TargetID)
		}
	}
	return out
}

// leosacKinds returns the kinds of a filter that a Leosac client may see: all of
// eventlog.LeosacKinds for no filter, else those of kinds among them (possibly none), sorted.
func leosacKinds(kinds []string) []string {
	if kinds == nil {
		return slices.Sorted(slices.Values(eventlog.LeosacKinds))
	}
	out := []string{}
	for _, k := range kinds {
		if slices.Contains(eventlog.LeosacKinds, k) {
			out = append(out, k)
		}
	}
	return out
}

// leosacCredentialData returns the data of a credential entry with a card + PIN credential's
// type as Leosac clients see it: {"type": "rfid-card", "pin-required": true, …}.
func leosacCredentialData(data json.RawMessage) json.RawMessage {
	var d map[string]json.RawMessage
	if json.Unmarshal(data, &d) != nil || string(d["type"]) != `"`+resource.TypeRFIDCardPIN+`"` {
		return data
	}
	d["type"], d[resource.PINRequiredAttr] = json.RawMessage(`"`+resource.TypeRFIDCard+`"`), json.RawMessage("true")
	out, err := json.Marshal(d)
	if err != nil {
		return data
	}
	return out
}

// leosacSnapshot is leosacCredentialData for a before/after snapshot (a JSON string).
func leosacSnapshot(s *string) *string {
	if s == nil {
		return nil
	}
	out := string(leosacCredentialData(json.RawMessage(*s)))
	return &out
}

func one(typ string, id *int64) resource.Rel {
	if id == nil {
		return resource.Rel{Data: nil}
	}
	return resource.One(typ, *id)
}

// Querying. Every query is driven by one index that yields the entries newest first, so that
// a page costs about its size plus its offset whatever the size of the log:
//
//   - door_id: events_door (door_id, seq); else author_id: events_author (author_id, seq);
//   - else user_id: the union of events_user (user_id, seq), events_author and, for user
//     events about the user, events_kind (kind, seq);
//   - else explicit kinds: the union of one events_kind range per kind;
//   - else every kind: the table itself (seq is its rowid), skipping kind = ''.
//
// The other conditions filter the rows the driving index yields. A time window filters too,
// except when only kinds drive the query: then events_time bounds the rows examined instead.
// meta.count comes from the event log's per-kind counters when the filter is on kinds alone
// (kept in the transaction of every append, so exact); otherwise it is a COUNT(*) over the
// same indexed query.

// selectColumns are the columns read; before and after only for administrators. data is
// read as a BLOB whichever way it was stored (GORM writes json.RawMessage as a BLOB, raw SQL
// may have written TEXT).
var (
	selectColumns = `seq, time, topic, kind, event_mask, author_id, author_name, target_id, target2_id, user_id, door_id, ` +
		fmt.Sprintf("substr(description, 1, %d) AS description, ", eventlog.MaxDescriptionBytes) +
		boundedColumn("CAST(data AS BLOB)", "data", maxDataBytes, `CAST('{"truncated":true}' AS BLOB)`)
	selectColumnsFull = selectColumns + ", " +
		boundedColumn("before", "before", eventlog.MaxSnapshotBytes, `'{"truncated":true}'`) + ", " +
		boundedColumn("after", "after", eventlog.MaxSnapshotBytes, `'{"truncated":true}'`)
)

// boundedColumn returns the SQL that reads expr as name, or instead when expr is longer than
// limit bytes: rows written before sizes were bounded (issue 10, point 5) cannot make a page
// load unbounded values.
func boundedColumn(expr, name string, limit int, instead string) string {
	return fmt.Sprintf("CASE WHEN length(CAST(%s AS BLOB)) > %d THEN %s ELSE %s END AS %s", expr, limit, instead, expr, name)
}

// branch is one index range of a query.
type branch struct {
	index string // INDEXED BY this index, or the table itself when "" (NOT INDEXED: seq order)
	where []string
	args  []any
}

func (b branch) sql(columns string) (string, []any) {
	var s strings.Builder
	s.WriteString("SELECT ")
	s.WriteString(columns)
	s.WriteString(" FROM events")
	if b.index != "" {
		s.WriteString(" INDEXED BY ")
		s.WriteString(b.index)
	} else {
		s.WriteString(" NOT INDEXED")
	}
	if len(b.where) > 0 {
		s.WriteString(" WHERE ")
		s.WriteString(strings.Join(b.where, " AND "))
	}
	return s.String(), b.args
}

// plan returns the branches of a filter and whether they may overlap (a UNION must then
// remove duplicates).
func (f filter) plan() (branches []branch, overlap bool) {
	var common branch
	add := func(b *branch, cond string, args ...any) {
		b.where = append(b.where, cond)
		b.args = append(b.args, args...)
	}
	driver := "kinds"
	switch {
	case f.doorID != 0:
		driver = "door"
	case f.authorID != 0:
		driver = "author"
	case f.userID != 0:
		driver = "user"
	case f.kinds == nil:
		driver = "all"
	}
	if driver != "kinds" {
		if f.kinds == nil {
			add(&common, "kind <> ''")
		} else {
			add(&common, "kind IN ?", f.kinds)
		}
	}
	if f.doorID != 0 && driver != "door" {
		add(&common, "door_id = ?", f.doorID)
	}
	if f.authorID != 0 && driver != "author" {
		add(&common, "author_id = ?", f.authorID)
	}
	if f.userID != 0 && driver != "user" {
		add(&common, "(user_id = ? OR author_id = ? OR (kind = ? AND target_id = ?))", f.userID, f.userID, eventlog.KindUser, f.userID)
	}
	// The time column is compared as text: bound values are written exactly as stored
	// (UTC, by the SQLite driver).
	if f.since != nil {
		add(&common, "time >= ?", f.since.UTC())
	}
	if f.until != nil {
		add(&common, "time < ?", f.until.UTC())
	}
	if f.mask != 0 {
		add(&common, "(event_mask & ?) <> 0", f.mask)
	}
	withCommon := func(b branch) branch {
		b.where = append(b.where, common.where...)
		b.args = append(b.args, common.args...)
		return b
	}
	switch driver {
	case "door":
		return []branch{withCommon(branch{index: "events_door", where: []string{"door_id = ?"}, args: []any{f.doorID}})}, false
	case "author":
		return []branch{withCommon(branch{index: "events_author", where: []string{"author_id = ?"}, args: []any{f.authorID}})}, false
	case "user":
		branches = []branch{
			withCommon(branch{index: "events_user", where: []string{"user_id = ?"}, args: []any{f.userID}}),
			withCommon(branch{index: "events_author", where: []string{"author_id = ?"}, args: []any{f.userID}}),
		}
		if f.kinds == nil || slices.Contains(f.kinds, eventlog.KindUser) {
			branches = append(branches, withCommon(branch{index: "events_kind",
				where: []string{"kind = ?", "target_id = ?"}, args: []any{eventlog.KindUser, f.userID}}))
		}
		return branches, true
	case "all":
		b := withCommon(branch{})
		if f.since != nil || f.until != nil {
			b.index = "events_time"
		}
		return []branch{b}, false
	}
	if f.since != nil || f.until != nil {
		return []branch{withCommon(branch{index: "events_time", where: []string{"kind IN ?"}, args: []any{f.kinds}})}, false
	}
	for _, k := range f.kinds {
		branches = append(branches, withCommon(branch{index: "events_kind", where: []string{"kind = ?"}, args: []any{k}}))
	}
	return branches, false
}

// find returns how many entries match q and the entries of its page, newest first.
func (m *Module) find(ctx context.Context, q query, full bool) (int64, []eventlog.Event, error) {
	count, err := m.count(ctx, q.filter)
	if err != nil {
		return 0, nil, err
	}
	events := []eventlog.Event{}
	if count == 0 || q.page-1 > (math.MaxInt64-q.size)/q.size {
		return count, events, nil
	}
	offset := (q.page - 1) * q.size
	if offset >= count {
		return count, events, nil
	}
	columns := selectColumns
	if full {
		columns = selectColumnsFull
	}
	branches, overlap := q.plan()
	var (
		sql  string
		args []any
	)
	if len(branches) == 1 {
		sql, args = branches[0].sql(columns)
		sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
		args = append(args, q.size, offset)
	} else {
		// Each branch contributes at most the rows up to the end of the page; the union is
		// then paged. SQLite allows no ORDER BY/LIMIT on a compound's members, hence the
		// sub-selects.
		union := " UNION ALL "
		if overlap {
			union = " UNION "
		}
		parts := make([]string, len(branches))
		for i, b := range branches {
			s, a := b.sql("seq")
			parts[i] = "SELECT seq FROM (" + s + " ORDER BY seq DESC LIMIT ?)"
			args = append(args, a...)
			args = append(args, offset+q.size)
		}
		sql = "SELECT " + columns + " FROM events WHERE seq IN (" + strings.Join(parts, union) +
			" ORDER BY seq DESC LIMIT ? OFFSET ?) ORDER BY seq DESC"
		args = append(args, q.size, offset)
	}
	if err := m.db.Read.WithContext(ctx).Raw(sql, args...).Scan(&events).Error; err != nil {
		return 0, nil, resource.DBError(fmt.Errorf("read audit entries: %w", err))
	}
	return count, events, nil
}

// count returns how many entries match f.
func (m *Module) count(ctx context.Context, f filter) (int64, error) {
	if f.onlyKinds() {
		n, err := m.events.Count(ctx, f.kinds)
		return n, resource.DBError(err)
	}
	branches, overlap := f.plan()
	var (
		sql  string
		args []any
	)
	switch {
	case len(branches) == 1:
		sql, args = branches[0].sql("COUNT(*)")
	case overlap:
		parts := make([]string, len(branches))
		for i, b := range branches {
			s, a := b.sql("seq")
			parts[i] = s
			args = append(args, a...)
		}
		sql = "SELECT COUNT(*) FROM (" + strings.Join(parts, " UNION ") + ")"
	default:
		parts := make([]string, len(branches))
		for i, b := range branches {
			s, a := b.sql("COUNT(*) AS n")
			parts[i] = s
			args = append(args, a...)
		}
		sql = "SELECT SUM(n) FROM (" + strings.Join(parts, " UNION ALL ") + ")"
	}
	var n int64
	if err := m.db.Read.WithContext(ctx).Raw(sql, args...).Scan(&n).Error; err != nil {
		return 0, resource.DBError(fmt.Errorf("count audit entries: %w", err))
	}
	return n, nil
}
