package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// refRow is what the reference implementation needs of a row.
type refRow struct {
	Seq                                int64
	Time                               time.Time
	Kind                               string
	EventMask                          int64
	AuthorID, TargetID, UserID, DoorID *int64
}

func eq(p *int64, v int64) bool { return p != nil && *p == v }

// matches is the meaning of a filter, written the obvious way.
func (f filter) matches(r refRow) bool {
	switch {
	case r.Kind == "":
		return false
	case f.kinds != nil && !slices.Contains(f.kinds, r.Kind):
		return false
	case f.userID != 0 && !eq(r.UserID, f.userID) && !eq(r.AuthorID, f.userID) && !(r.Kind == eventlog.KindUser && eq(r.TargetID, f.userID)):
		return false
	case f.doorID != 0 && !eq(r.DoorID, f.doorID):
		return false
	case f.authorID != 0 && !eq(r.AuthorID, f.authorID):
		return false
	case f.since != nil && r.Time.Before(*f.since):
		return false
	case f.until != nil && !r.Time.Before(*f.until):
		return false
	case f.mask != 0 && r.EventMask&f.mask == 0:
		return false
	}
	return true
}

// TestQueryPlansAgreeWithReference checks every query plan (each driving index, unions, time
// windows, counts from event_counts or COUNT(*)) against a brute-force filter over the whole
// table, on a seeded log whose times and seqs do not agree exactly.
func TestQueryPlansAgreeWithReference(t *testing.T) {
	t.Parallel()
	m := newTestModule(t)
	const n = 6_000
	seedEvents(t, m.db, n, 7)
	var rows []refRow
	if err := m.db.Read.Raw(`SELECT seq, time, kind, event_mask, author_id, target_id, user_id, door_id FROM events ORDER BY seq DESC`).
		Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != n || rows[0].Time.IsZero() {
		t.Fatalf("seeded %d rows, first %+v", len(rows), rows[0])
	}
	// A user with a user event about them but none of their own, to hit the third branch.
	var targetOnly int64
	if err := m.db.Read.Raw(`SELECT target_id FROM events e WHERE kind = ? AND NOT EXISTS
		(SELECT 1 FROM events WHERE user_id = e.target_id OR author_id = e.target_id) LIMIT 1`, eventlog.KindUser).
		Scan(&targetOnly).Error; err != nil || targetOnly == 0 {
		t.Fatalf("no target-only user (%v)", err)
	}
	at := func(frac float64) *time.Time {
		t := seedBase.Add(time.Duration(frac * float64(n) * float64(seedStep)))
		return &t
	}
	var (
		kindsSets = [][]string{nil, {eventlog.KindAuth}, {eventlog.KindLogin, eventlog.KindUser},
			{eventlog.KindGroup, eventlog.KindMembership, eventlog.KindZone}, {"smtp-event"}}
		users   = []int64{0, 17, targetOnly}
		authors = []int64{0, 3}
		doors   = []int64{0, 7}
		windows = [][2]*time.Time{{nil, nil}, {at(0.4), nil}, {nil, at(0.6)}, {at(0.5), at(0.5001)}, {at(2), nil}}
		masks   = []int64{0, eventlog.AuthDenied, eventlog.AuthDenied | eventlog.LoginSucceeded | eventlog.UserEdited}
	)
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(k int) int { return rng.IntN(k) }
	ctx := context.Background()
	for i := range 150 {
		f := filter{
			kinds: kindsSets[pick(len(kindsSets))], userID: users[pick(len(users))], authorID: authors[pick(len(authors))],
			doorID: doors[pick(len(doors))], mask: masks[pick(len(masks))],
		}
		w := windows[pick(len(windows))]
		f.since, f.until = w[0], w[1]
		if i < 10 { // make sure the cheap paths are covered
			f = filter{kinds: kindsSets[i%len(kindsSets)]}
		}
		var want []int64
		for _, r := range rows {
			if f.matches(r) {
				want = append(want, r.Seq)
			}
		}
		for _, pg := range []struct{ page, size int64 }{{1, 7}, {3, 7}, {1, 500}} {
			q := query{page: pg.page, size: pg.size, filter: f}
			count, events, err := m.find(ctx, q, pg.page == 1)
			if err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
			from := min(len(want), int((pg.page-1)*pg.size))
			page := want[from:min(len(want), from+int(pg.size))]
			var got []int64
			for _, e := range events {
				got = append(got, e.Seq)
			}
			if count != int64(len(want)) || !slices.Equal(got, page) {
				t.Fatalf("%s p=%d ps=%d: count %d, want %d; page %v, want %v", describe(f), pg.page, pg.size, count, len(want), got, page)
			}
		}
	}
}

func describe(f filter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kinds=%v user=%d author=%d door=%d mask=%#x", f.kinds, f.userID, f.authorID, f.doorID, f.mask)
	if f.since != nil {
		fmt.Fprintf(&b, " since=%s", f.since.Format(time.RFC3339))
	}
	if f.until != nil {
		fmt.Fprintf(&b, " until=%s", f.until.Format(time.RFC3339))
	}
	return b.String()
}

// TestQueryPlansUseTheirIndexes checks with EXPLAIN QUERY PLAN that no plan scans the whole
// table except the unfiltered one (which walks it newest first and stops after a page).
func TestQueryPlansUseTheirIndexes(t *testing.T) {
	t.Parallel()
	m := newTestModule(t)
	since := time.Now()
	for _, tc := range []struct {
		f    filter
		want []string
	}{
		{filter{}, []string{"SCAN events"}},
		{filter{kinds: []string{eventlog.KindAuth, eventlog.KindLogin}}, []string{"events_kind", "events_kind"}},
		{filter{userID: 5}, []string{"events_user", "events_author", "events_kind"}},
		{filter{userID: 5, kinds: []string{eventlog.KindAuth}}, []string{"events_user", "events_author"}},
		{filter{doorID: 5, userID: 3, mask: 1}, []string{"events_door"}},
		{filter{authorID: 5, since: &since}, []string{"events_author"}},
		{filter{since: &since}, []string{"events_time"}},
		{filter{kinds: []string{eventlog.KindAuth}, since: &since, until: &since}, []string{"events_time"}},
	} {
		branches, _ := tc.f.plan()
		if len(branches) != len(tc.want) {
			t.Fatalf("%s: %d branches, want %d", describe(tc.f), len(branches), len(tc.want))
		}
		for i, b := range branches {
			sql, args := b.sql("seq")
			var plan []struct{ Detail string }
			if err := m.db.Read.Raw("EXPLAIN QUERY PLAN "+sql+" ORDER BY seq DESC LIMIT 20", args...).Scan(&plan).Error; err != nil {
				t.Fatalf("%s: %v", describe(tc.f), err)
			}
			var details []string
			for _, p := range plan {
				details = append(details, p.Detail)
			}
			text := strings.Join(details, "; ")
			if !strings.Contains(text, tc.want[i]) || (tc.want[i] != "SCAN events" && strings.Contains(text, "SCAN events")) {
				t.Errorf("%s branch %d: plan %q, want %s", describe(tc.f), i, text, tc.want[i])
			}
		}
	}
}

// TestGetHandlerArithmetic checks meta and paging through the handler on a seeded log.
func TestGetHandlerArithmetic(t *testing.T) {
	t.Parallel()
	m := newTestModule(t)
	seedEvents(t, m.db, 400, 3) // about 360 entries: every page size below fits the 500 limit
	var all int64
	if err := m.db.Read.Raw(`SELECT COUNT(*) FROM events WHERE kind <> ''`).Scan(&all).Error; err != nil {
		t.Fatal(err)
	}
	for _, ps := range []int64{1, 7, all, all - 1, all + 1, 500} {
		r, err := callGet(t, m, core.RankViewer, map[string]any{"ps": ps, "p": 1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Meta.Count != all || r.Meta.TotalPage != (all+ps-1)/ps || int64(len(r.Data)) != min(ps, all) {
			t.Errorf("ps=%d: meta %+v, %d entries (all %d)", ps, r.Meta, len(r.Data), all)
		}
		last, err := callGet(t, m, core.RankViewer, map[string]any{"ps": ps, "p": r.Meta.TotalPage})
		if err != nil {
			t.Fatal(err)
		}
		if want := all - (r.Meta.TotalPage-1)*ps; int64(len(last.Data)) != want {
			t.Errorf("ps=%d last page: %d entries, want %d", ps, len(last.Data), want)
		}
		past, err := callGet(t, m, core.RankViewer, map[string]any{"ps": ps, "p": r.Meta.TotalPage + 1})
		if err != nil || past.Data == nil || len(past.Data) != 0 {
			t.Errorf("ps=%d past the end: %+v %v", ps, past, err)
		}
	}
	r, err := callGet(t, m, core.RankViewer, map[string]any{"p": int64(1) << 62, "ps": 500})
	if err != nil || len(r.Data) != 0 || r.Meta.Count != all {
		t.Errorf("huge page: %+v %v", r.Meta, err)
	}
}
