package wsapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"gatehouse/core/coretest"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsapi/wstest"
)

// TestEventsPatternsBoundedPerConnection (issue 10, point 5): the topic patterns of one
// connection are bounded in total, not only per call: a subscription that would take the
// connection past eventlog.MaxPatterns is refused with INVALID_ARGUMENT, and the subscription
// goes on as it was. Before, 64 patterns per call could be repeated without end.
func TestEventsPatternsBoundedPerConnection(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	pats := func(from, n int) []string {
		var out []string
		for i := from; i < from+n; i++ {
			out = append(out, fmt.Sprintf("p%d.>", i))
		}
		return out
	}
	half := eventlog.MaxPatterns / 2
	subscribe(t, c, map[string]any{"topics": pats(0, half)})
	subscribe(t, c, map[string]any{"topics": pats(half, eventlog.MaxPatterns-half)})
	subscribe(t, c, map[string]any{"topics": pats(0, 10)}) // already held: nothing added
	r := c.Call("events.subscribe", map[string]any{"topics": []string{"one.more"}})
	if r.StatusCode != 12 || !strings.Contains(r.StatusString, fmt.Sprint("at most ", eventlog.MaxPatterns)) {
		t.Fatalf("pattern %d: %d %q, want INVALID_ARGUMENT naming the bound", eventlog.MaxPatterns+1, r.StatusCode, r.StatusString)
	}
	// The subscription still delivers what it held.
	appendEvents(t, eventLog(t, srv), "p3.x", 1, 0)
	if e := events(t, c, 1); e[0].Topic != "p3.x" {
		t.Errorf("after the refusal: pushed %s", e[0].Topic)
	}
	// Room is made by unsubscribing.
	if r := c.Call("events.unsubscribe", map[string]any{"topics": pats(0, 1)}); r.StatusCode != 0 {
		t.Fatalf("unsubscribe: %d %s", r.StatusCode, r.StatusString)
	}
	subscribe(t, c, map[string]any{"topics": []string{"one.more"}})
}

// TestEventsReplayFromZeroOverALargeLog: a subscription since 0 over a log of many thousand
// events (each with large audit snapshots) replays, page by page, exactly the matching events
// in order, then goes on live.
func TestEventsReplayFromZeroOverALargeLog(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	const n = 6000
	snap := `{"pad":"` + strings.Repeat("s", 4000) + `"}`
	now := time.Now().UTC()
	err := srv.DB().Write.Transaction(func(tx *gorm.DB) error {
		for i := range n {
			topic := "bulk.even"
			if i%2 == 1 {
				topic = "bulk.odd"
			}
			if err := tx.Exec(`INSERT INTO events (time, topic, kind, description, before, after, data) VALUES (?, ?, 'audit-door-event', 'x', ?, ?, ?)`,
				now, topic, snap, snap, fmt.Sprintf(`{"i":%d}`, i)).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	if err := srv.DB().Read.Raw(`SELECT MIN(seq) FROM events WHERE topic LIKE 'bulk.%'`).Scan(&first).Error; err != nil {
		t.Fatal(err)
	}
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	subscribe(t, c, map[string]any{"topics": []string{"bulk.odd"}, "since": 0})
	got := events(t, c, n/2)
	for i, e := range got {
		if want := first + int64(2*i+1); e.Seq != want || e.Topic != "bulk.odd" {
			t.Fatalf("replayed event %d: seq %d %s, want seq %d bulk.odd", i, e.Seq, e.Topic, want)
		}
	}
	appendEvents(t, eventLog(t, srv), "bulk.odd", 1, 0)
	if e := events(t, c, 1); e[0].Seq <= got[len(got)-1].Seq {
		t.Errorf("live event %d after replay ending at %d", e[0].Seq, got[len(got)-1].Seq)
	}
}
