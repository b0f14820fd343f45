package sysadm_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/eventlog"
)

type pushArgs struct {
	Seq   int64          `json:"seq"`
	Epoch string         `json:"epoch"`
	Time  string         `json:"time"`
	Data  map[string]any `json:"data"`
}

func dataID(t *testing.T, f frame) int64 {
	t.Helper()
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	f.decode(t, &v)
	if v.Data.ID == 0 {
		t.Fatalf("no id in %s", f.Args)
	}
	return v.Data.ID
}

// TestEventsPush subscribes over sysadm and checks the pushes of access decisions simulated
// through the gatehouse namespace: shape, seq order, rights re-checked at push time (a plain
// user sees only events about themselves), unsubscribe, and resuming with since.
func TestEventsPush(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	carolID := addUser(t, srv, "carol", "carol-password", core.RankUser)
	admin := dial(t, wsURL(srv))
	admin.login("admin", coretest.AdminPassword)
	doorID := dataID(t, admin.ok("gatehouse", "door.create", map[string]any{"attributes": map[string]any{"alias": "Front"}}))
	admin.ok("gatehouse", "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "carol card", "owner_id": carolID, "card-id": "12:af:cd:40", "nb-bits": 26}})
	simulate := func(card string) int64 {
		var r struct {
			Granted bool   `json:"granted"`
			Reason  string `json:"reason"`
			Seq     int64  `json:"seq"`
		}
		admin.ok("gatehouse", "reader.simulate", map[string]any{"door_id": doorID, "card_id": card, "nb_bits": 26}).decode(t, &r)
		return r.Seq
	}

	watcher := dial(t, wsURL(srv))
	watcher.login("admin", coretest.AdminPassword)
	var sub map[string]any
	watcher.ok("events", "subscribe", "access.*").decode(t, &sub)
	if sub["subscribe"] != "access.*" || sub["epoch"] == "" {
		t.Errorf("subscribe reply %v", sub)
	}
	carol := dial(t, wsURL(srv))
	carol.login("carol", "carol-password")
	carol.ok("events", "subscribe", []string{"door.>", "access.denied"})
	watcher.wantCode("events", "subscribe", []string{}, 400)
	watcher.wantCode("events", "subscribe", "bad..pattern", 400)
	watcher.wantCode("events", "subscribe", 5, 400)
	watcher.wantCode("events", "nosuch", "access.*", 404)

	unknownSeq := simulate("ff:ff:ff:c0") // nobody's card
	carolSeq := simulate("12:af:cd:40")   // carol's card, denied (no schedule)

	f := watcher.push("access.denied")
	var p pushArgs
	f.decode(t, &p)
	if f.Namespace != "events" || f.ID != "" || p.Seq != unknownSeq || p.Epoch == "" || p.Data["door_id"] != float64(doorID) || p.Data["reason"] != "unknown_credential" {
		t.Errorf("push %+v %s", f, f.Args)
	}
	if _, err := time.Parse(time.RFC3339Nano, p.Time); err != nil {
		t.Errorf("push time %q: %v", p.Time, err)
	}
	watcher.push("access.denied").decode(t, &p)
	if p.Seq != carolSeq {
		t.Errorf("second push seq %d, want %d", p.Seq, carolSeq)
	}
	// carol sees her own decision only.
	carol.push("access.denied").decode(t, &p)
	if p.Seq != carolSeq || p.Data["user_id"] != float64(carolID) {
		t.Errorf("carol's push %+v", p)
	}
	carol.ok("rpc", "identify", nil)
	for _, f := range carol.pushes {
		t.Errorf("carol got a push she may not see: %s %s", f.Name, f.Args)
	}

	// Unsubscribed: no more pushes. Resubscribing with since replays what was missed.
	var unsub map[string]any
	watcher.ok("events", "unsubscribe", "access.*").decode(t, &unsub)
	if unsub["unsubscribe"] != "access.*" {
		t.Errorf("unsubscribe reply %v", unsub)
	}
	missed := simulate("ff:ff:ff:c0")
	watcher.ok("rpc", "identify", nil)
	if len(watcher.pushes) != 0 {
		t.Errorf("pushes after unsubscribe: %+v", watcher.pushes)
	}
	watcher.ok("events", "subscribe", map[string]any{"topics": []string{"access.*"}, "since": carolSeq})
	watcher.push("access.denied").decode(t, &p)
	if p.Seq != missed {
		t.Errorf("replayed seq %d, want %d", p.Seq, missed)
	}
	var raw json.RawMessage
	watcher.ok("events", "subscribe", map[string]any{"topics": []string{"access.*"}, "since": 1 << 40}).decode(t, &raw)
	if string(raw) == "" || !json.Valid(raw) {
		t.Fatal("no reply")
	}
	var rs map[string]any
	_ = json.Unmarshal(raw, &rs)
	if rs["resync"] != true {
		t.Errorf("since beyond the log: %s", raw)
	}
}

// TestSlowSubscriberLagged: a subscriber that does not read, while more events happen than
// the socket buffers and its queues hold, is closed in one of the two documented ways: sent
// events/lagged and closed with 4001, or, when a write timed out on its full socket first,
// dropped with no notice. Either way it is counted as a slow consumer.
func TestSlowSubscriberLagged(t *testing.T) {
	t.Parallel()
	srv := start(t, `{"queue_size": 4, "event_queue": 16}`)
	slow := dial(t, wsURL(srv))
	slow.login("admin", coretest.AdminPassword)
	slow.ok("events", "subscribe", "door.>")
	mod, _ := srv.App().Module(eventlog.ModuleID)
	l := mod.(*eventlog.Module).Log()
	// 200 events of 24 KiB (5 MB) in transactions of 10, while slow reads nothing.
	pad := strings.Repeat("x", 24<<10)
	for b := range 20 {
		err := l.Write(context.Background(), func(tx *eventlog.Tx) error {
			for i := range 10 {
				if err := tx.Record(eventlog.Change{Topic: "door.1.opened", Kind: eventlog.KindDoor,
					TargetID: int64(b*10 + i + 1), Description: "burst", Data: map[string]string{"pad": pad}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, why := slow.closedWith(60 * time.Second)
	n := len(slow.pushes)
	switch code {
	case 4001:
		if n == 0 || n >= 200 || slow.pushes[n-1].Name != "lagged" {
			t.Errorf("%d frames before the close 4001, want some events then events/lagged", n)
		}
	case -1:
		if n >= 200 || (n > 0 && slow.pushes[n-1].Name == "lagged") {
			t.Errorf("dropped after %d frames (last %q), want fewer than 200 and no lagged notice", n, slow.pushes[n-1].Name)
		}
		t.Logf("slow subscriber dropped after a write timeout (%s)", why)
	default:
		t.Errorf("slow subscriber closed with %d %q, want 4001 or a drop", code, why)
	}
	if got := srv.Metric("gatehouse_sysadm_slow_consumers_total"); got != 1 {
		t.Errorf("gatehouse_sysadm_slow_consumers_total = %v, want 1", got)
	}
}
