package wsapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsapi/wstest"
)

type pushed struct {
	Seq   int64           `json:"seq"`
	Epoch string          `json:"epoch"`
	Time  string          `json:"time"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

func eventLog(t *testing.T, srv *coretest.Server) *eventlog.Log {
	t.Helper()
	mod, ok := srv.App().Module(eventlog.ModuleID)
	if !ok {
		t.Fatal("eventlog module not loaded")
	}
	return mod.(*eventlog.Module).Log()
}

// appendEvents appends n events of the topic in one transaction each (or all in one when
// batch), as the domain modules do.
func appendEvents(t testing.TB, l *eventlog.Log, topic string, n int, userID int64) {
	t.Helper()
	for i := range n {
		err := l.Write(context.Background(), func(tx *eventlog.Tx) error {
			return tx.Record(eventlog.Change{Topic: topic, Kind: eventlog.KindDoor, Mask: eventlog.DoorOpened,
				TargetID: int64(i + 1), UserID: userID, Description: "test", Data: map[string]any{"i": i}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// events waits for n event pushes and returns their contents.
func events(t *testing.T, c *wstest.Client, n int) []pushed {
	t.Helper()
	var out []pushed
	for len(out) < n {
		p := c.ExpectPush("event", 10*time.Second)
		var e pushed
		p.Decode(t, &e)
		if p.StatusCode != 0 || p.UUID == "" || len(p.UUID) != 36 {
			t.Fatalf("event push envelope: %+v", p)
		}
		out = append(out, e)
	}
	return out
}

func subscribe(t *testing.T, c *wstest.Client, content map[string]any) (seq int64, epoch string, resync bool) {
	t.Helper()
	r := c.Call("events.subscribe", content)
	if r.StatusCode != 0 {
		t.Fatalf("events.subscribe: %d %s", r.StatusCode, r.StatusString)
	}
	var res struct {
		Seq    int64  `json:"seq"`
		Epoch  string `json:"epoch"`
		Resync bool   `json:"resync"`
	}
	r.Decode(t, &res)
	return res.Seq, res.Epoch, res.Resync
}

func TestEventsLiveReplayAndResume(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	l := eventLog(t, srv)
	appendEvents(t, l, "door.1.opened", 3, 0)

	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	last, epoch, resync := subscribe(t, c, map[string]any{"topics": []string{"door.*.opened"}, "since": 0})
	if resync || epoch == "" || last < 3 {
		t.Fatalf("subscribe reply: seq %d epoch %q resync %v", last, epoch, resync)
	}
	got := events(t, c, 3)
	for i, e := range got {
		if e.Topic != "door.1.opened" || e.Epoch != epoch || (i > 0 && e.Seq <= got[i-1].Seq) {
			t.Errorf("replayed event %d: %+v", i, e)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || e.Time[len(e.Time)-1] != 'Z' {
			t.Errorf("time %q", e.Time)
		}
	}
	// Live after the replay; other topics are not delivered.
	appendEvents(t, l, "door.2.closed", 1, 0)
	appendEvents(t, l, "door.2.opened", 1, 0)
	live := events(t, c, 1)[0]
	if live.Topic != "door.2.opened" || live.Seq <= got[2].Seq {
		t.Errorf("live event %+v", live)
	}

	// A new connection resumes from the last seq it saw: it gets exactly what it missed.
	appendEvents(t, l, "door.3.opened", 2, 0)
	c2 := wstest.Dial(t, srv.WSURL)
	c2.Login("admin", coretest.AdminPassword)
	subscribe(t, c2, map[string]any{"topics": []string{"door.>"}, "since": live.Seq, "epoch": epoch})
	missed := events(t, c2, 2)
	if missed[0].Seq <= live.Seq || missed[0].Topic != "door.3.opened" || missed[1].Seq <= missed[0].Seq {
		t.Errorf("resumed events %+v after %d", missed, live.Seq)
	}
	// Without since: only what happens from now on.
	c3 := wstest.Dial(t, srv.WSURL)
	c3.Login("admin", coretest.AdminPassword)
	subscribe(t, c3, map[string]any{"topics": []string{">"}})
	appendEvents(t, l, "door.4.opened", 1, 0)
	if e := events(t, c3, 1)[0]; e.Topic != "door.4.opened" {
		t.Errorf("from-now subscriber got %+v first", e)
	}
}

// TestEventsNoGapNoDuplicateDuringReplay subscribes with since=0 while events are being
// appended as fast as possible, and checks that the client receives exactly the log's events,
// in order, once each.
func TestEventsNoGapNoDuplicateDuringReplay(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("wsapi", `{"queue_size": 4096}`))
	l := eventLog(t, srv)
	appendEvents(t, l, "door.1.opened", 300, 0)

	const produced = 600
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		appendEvents(t, l, "door.1.opened", produced, 0)
	}()
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	time.Sleep(20 * time.Millisecond) // let the producer get going
	subscribe(t, c, map[string]any{"topics": []string{"door.>"}, "since": 0})
	wg.Wait()
	var want []int64
	if err := srv.DB().Read.Raw(`SELECT seq FROM events WHERE topic = 'door.1.opened' ORDER BY seq`).Scan(&want).Error; err != nil {
		t.Fatal(err)
	}
	got := events(t, c, len(want))
	for i := range want {
		if got[i].Seq != want[i] {
			t.Fatalf("event %d: seq %d, want %d (gap or duplicate)", i, got[i].Seq, want[i])
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range c.Pushes() {
		if p.Type == "event" {
			t.Fatalf("extra event after the last one: %s", p.Content)
		}
	}
}

func TestEventsResync(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	l := eventLog(t, srv)
	appendEvents(t, l, "door.1.opened", 5, 0)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	if _, _, resync := subscribe(t, c, map[string]any{"topics": []string{"door.>"}, "since": 2, "epoch": "another-database"}); !resync {
		t.Error("other epoch: no resync")
	}
	if _, _, resync := subscribe(t, c, map[string]any{"topics": []string{"door.>"}, "since": 1_000_000}); !resync {
		t.Error("since beyond the end of the log: no resync")
	}
	// Retention deletes the first events: a since before them cannot be resumed.
	if _, err := l.Prune(context.Background(), time.Now().Add(time.Hour), 2); err != nil {
		t.Fatal(err)
	}
	if _, _, resync := subscribe(t, c, map[string]any{"topics": []string{"door.>"}, "since": 1}); !resync {
		t.Error("since older than retention: no resync")
	}
	// After a resync the subscription still delivers live events.
	appendEvents(t, l, "door.9.opened", 1, 0)
	if e := events(t, c, 1)[0]; e.Topic != "door.9.opened" {
		t.Errorf("after resync got %+v", e)
	}
	var counts int64
	srv.DB().Read.Raw(`SELECT COALESCE(SUM(n), 0) FROM event_counts`).Scan(&counts)
	var rows int64
	srv.DB().Read.Raw(`SELECT COUNT(*) FROM events WHERE kind <> ''`).Scan(&rows)
	if counts != rows {
		t.Errorf("event_counts %d, rows %d after pruning", counts, rows)
	}
}

// TestEventsLaggedSubscriber: a client that does not read is sent a lagged notice and closed
// with 4001; the producer is never slowed and other subscribers get everything.
func TestEventsLaggedSubscriber(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("wsapi", `{"queue_size": 8, "event_queue": 64}`))
	l := eventLog(t, srv)

	// The stalled client: a raw connection that subscribes and then never reads.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	raw, _, err := websocket.Dial(ctx, srv.WSURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	raw.SetReadLimit(1 << 20)
	send := func(typ string, content any) {
		b, _ := json.Marshal(map[string]any{"uuid": typ, "type": typ, "content": content})
		if err := raw.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		if _, _, err := raw.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword})
	send("events.subscribe", map[string]any{"topics": []string{">"}})

	healthy := wstest.Dial(t, srv.WSURL)
	healthy.Login("admin", coretest.AdminPassword)
	subscribe(t, healthy, map[string]any{"topics": []string{">"}})

	// 400 events of about 24 KiB (10 MB), in transactions of 10: more than the socket buffers,
	// the connection queue and the subscription queue of the stalled client can hold. Each
	// batch waits until the healthy subscriber has it, so that one never falls behind, however
	// slow the machine.
	const n, batch = 400, 10
	pad := strings.Repeat("x", 24<<10)
	got := 0
	for b := 0; b < n/batch; b++ {
		err := l.Write(ctx, func(tx *eventlog.Tx) error {
			for i := range batch {
				if err := tx.Record(eventlog.Change{Topic: "door.1.opened", Kind: eventlog.KindDoor,
					TargetID: int64(b*batch + i + 1), Description: "burst", Data: map[string]string{"pad": pad}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got += len(events(t, healthy, batch))
	}
	if got != n {
		t.Errorf("healthy subscriber got %d of %d", got, n)
	}
	// Now the stalled client reads. The server has closed it in one of the two documented
	// ways, depending on how far its writes got before the socket filled:
	//   - lagged: whatever was buffered, then the lagged notice, then close 4001;
	//   - dropped: a write timed out on the full socket, so the connection ends with no notice
	//     and no close frame.
	// Either way it is counted as a slow consumer, and the healthy subscriber was not held up.
	sawLagged := false
	for {
		_, b, err := raw.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the stalled client was never closed")
			}
			code := websocket.CloseStatus(err)
			switch {
			case code == 4001 && sawLagged:
			case code == 4001:
				t.Error("closed 4001 without the lagged notice")
			case code == -1 && !sawLagged:
				t.Logf("stalled client dropped after a write timeout (%v)", err)
			default:
				t.Errorf("close status %d after lagged notice %v (%v); want the notice and 4001, or a drop", code, sawLagged, err)
			}
			break
		}
		var r struct{ Type string }
		json.Unmarshal(b, &r)
		if r.Type == "lagged" {
			sawLagged = true
		}
	}
	if slow := srv.Metric("gatehouse_ws_slow_consumers_total"); slow != 1 {
		t.Errorf("gatehouse_ws_slow_consumers_total = %v, want 1 (the stalled client only)", slow)
	}
}

func TestEventsRights(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	l := eventLog(t, srv)
	mod, _ := srv.App().Module(auth.ModuleID)
	am := mod.(*auth.Module)
	hash, _ := am.Hasher().Hash(context.Background(), "bob-password")
	bob := &auth.User{Username: "bob", PasswordHash: hash, Rank: core.RankUser, ValidityEnabled: true}
	if err := am.Users().Create(context.Background(), bob); err != nil {
		t.Fatal(err)
	}

	// Not logged in: no stream.
	anon := wstest.Dial(t, srv.WSURL)
	if r := anon.Call("events.subscribe", map[string]any{"topics": []string{">"}}); r.StatusCode != 2 {
		t.Errorf("anonymous subscribe: %d", r.StatusCode)
	}
	b := wstest.Dial(t, srv.WSURL)
	tok := b.Login("bob", "bob-password")
	subscribe(t, b, map[string]any{"topics": []string{"door.>"}, "since": 0})
	appendEvents(t, l, "door.1.opened", 1, 999)    // someone else's
	appendEvents(t, l, "door.1.opened", 1, bob.ID) // bob's own
	e := events(t, b, 1)[0]
	var data map[string]any
	json.Unmarshal(e.Data, &data)
	var owner int64
	srv.DB().Read.Raw(`SELECT user_id FROM events WHERE seq = ?`, e.Seq).Scan(&owner)
	if owner != bob.ID {
		t.Errorf("bob received an event about user %d", owner)
	}
	// Rights are checked at push time: once bob's token is revoked, nothing more is pushed.
	other := wstest.Dial(t, srv.WSURL)
	if r := other.Call("authenticate_with_token", map[string]string{"token": tok}); r.StatusCode != 0 {
		t.Fatal(r.StatusString)
	}
	other.Call("logout", nil)
	b.ExpectPush("session_closed", 5*time.Second)
	appendEvents(t, l, "door.1.opened", 1, bob.ID)
	time.Sleep(200 * time.Millisecond)
	for _, p := range b.Pushes() {
		if p.Type == "event" {
			t.Errorf("event pushed after the session ended: %s", p.Content)
		}
	}
	// Bad requests.
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	for _, content := range []map[string]any{
		{}, {"topics": []string{}}, {"topics": []string{"a..b"}}, {"topics": []string{"a.>.b"}},
		{"topics": []string{"x"}, "since": -1},
	} {
		if r := admin.Call("events.subscribe", content); r.StatusCode != 12 {
			t.Errorf("%v: status %d, want 12", content, r.StatusCode)
		}
	}
}

func TestEventsUnsubscribe(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	l := eventLog(t, srv)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	subscribe(t, c, map[string]any{"topics": []string{"door.1.>", "door.2.>"}})
	if r := c.Call("events.unsubscribe", map[string]any{"topics": []string{"door.1.>"}}); r.StatusCode != 0 {
		t.Fatal(r.StatusString)
	}
	appendEvents(t, l, "door.1.opened", 1, 0)
	appendEvents(t, l, "door.2.opened", 1, 0)
	if e := events(t, c, 1)[0]; e.Topic != "door.2.opened" {
		t.Errorf("got %+v after unsubscribing door.1.>", e)
	}
	c.Call("events.unsubscribe", map[string]any{})
	appendEvents(t, l, "door.2.opened", 3, 0)
	time.Sleep(200 * time.Millisecond)
	for _, p := range c.Pushes() {
		if p.Type == "event" {
			t.Errorf("event after unsubscribing all: %s", p.Content)
		}
	}
}

// A rank raised while a client is subscribed takes effect at the next push: the check of the
// subscriber's rights is remembered between pushes only while no user changes. (Lowering a
// rank revokes the user's tokens, which ends the stream.)
func TestEventsRightsFollowRankChange(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	l := eventLog(t, srv)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	r := admin.Call("user.create", map[string]any{"attributes": map[string]any{
		"username": "carol", "password": "carol-password", "rank": 0, "validity-enabled": true}})
	if r.StatusCode != 0 {
		t.Fatalf("user.create: %d %s %s", r.StatusCode, r.StatusString, r.Content)
	}
	var created struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	r.Decode(t, &created)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("carol", "carol-password")
	subscribe(t, c, map[string]any{"topics": []string{"door.>"}})
	appendEvents(t, l, "door.1.opened", 1, 999)             // someone else's: not for a user
	appendEvents(t, l, "door.2.opened", 1, created.Data.ID) // her own
	if e := events(t, c, 1)[0]; e.Topic != "door.2.opened" {
		t.Fatalf("carol (rank user) got %s, want only her own door.2.opened", e.Topic)
	}
	if r := admin.Call("user.update", map[string]any{"user_id": created.Data.ID, "attributes": map[string]any{"rank": 1}}); r.StatusCode != 0 {
		t.Fatalf("user.update: %d %s %s", r.StatusCode, r.StatusString, r.Content)
	}
	appendEvents(t, l, "door.3.opened", 1, 999) // a viewer sees everyone's events
	if e := events(t, c, 1)[0]; e.Topic != "door.3.opened" {
		t.Errorf("carol (now a viewer) got %s, want door.3.opened", e.Topic)
	}
}
