package doorman_test

import (
	"encoding/json"
	"testing"
	"time"

	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

type ev struct {
	Seq   int64          `json:"seq"`
	Topic string         `json:"topic"`
	Data  map[string]any `json:"data"`
}

func call(t *testing.T, c *wstest.Client, typ string, content any) json.RawMessage {
	t.Helper()
	r := c.Call(typ, content)
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", typ, r.StatusCode, r.StatusString, r.Content)
	}
	return r.Content
}

func idOf(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.Data.ID
}

// nextEvent waits for the next pushed event whose topic is one of topics (others are skipped).
func nextEvent(t *testing.T, c *wstest.Client, topics ...string) ev {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p := c.ExpectPush("event", time.Until(deadline))
		var e ev
		p.Decode(t, &e)
		for _, want := range topics {
			if e.Topic == want {
				return e
			}
		}
	}
	t.Fatalf("no event among %v", topics)
	return ev{}
}

// site builds: a door, a user "bob" with a 26-bit card, and a schedule giving bob the door on
// every day, all through the API.
func site(t *testing.T, admin *wstest.Client) (doorID int64, doorTopic string) {
	t.Helper()
	doorID = idOf(t, call(t, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Front"}}))
	uid := idOf(t, call(t, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "bob"}}))
	call(t, admin, "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "bob card", "owner_id": uid, "card-id": "12:af:cd:40", "nb-bits": 26}})
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := idOf(t, call(t, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	call(t, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"alias": "bob front", "users": []int64{uid}, "doors": []int64{doorID}}}})
	return doorID, "door." + itoa(doorID)
}

func itoa(i int64) string { b, _ := json.Marshal(i); return string(b) }

func TestAccessPathEndToEnd(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("doorman", `{"strike_duration": "300ms", "held_open_after": "500ms", "debounce": "20ms"}`))
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	doorID, dt := site(t, admin)

	watcher := wstest.Dial(t, srv.WSURL)
	watcher.Login("admin", coretest.AdminPassword)
	call(t, watcher, "events.subscribe", map[string]any{"topics": []string{"access.*", "door.>", "site.mode"}})

	swipe := func(card string) map[string]any {
		var res map[string]any
		json.Unmarshal(call(t, admin, "reader.simulate", map[string]any{"door_id": doorID, "card_id": card, "nb_bits": 26}), &res)
		return res
	}
	// Granted, with the right reason, pushed live with the same seq.
	res := swipe("12:af:cd:40")
	if res["granted"] != true || res["reason"] != "granted" {
		t.Fatalf("swipe: %v", res)
	}
	e := nextEvent(t, watcher, "access.granted", "access.denied")
	if e.Topic != "access.granted" || int64(e.Data["door_id"].(float64)) != doorID || e.Data["username"] != "bob" ||
		e.Data["card_id"] != "12:af:cd:40" || int64(res["seq"].(float64)) != e.Seq {
		t.Errorf("access event %+v (reply %v)", e, res)
	}
	// The door opens within the window: opened (granted), then closed.
	call(t, admin, "door.simulate", map[string]any{"door_id": doorID, "contact": "open"})
	time.Sleep(50 * time.Millisecond)
	call(t, admin, "door.simulate", map[string]any{"door_id": doorID, "contact": "closed"})
	if e := nextEvent(t, watcher, dt+".opened"); e.Data["granted"] != true {
		t.Errorf("opened: %+v", e)
	}
	nextEvent(t, watcher, dt+".closed")

	// Unknown card: denied with its reason.
	if res := swipe("ff:ff:ff:c0"); res["granted"] != false || res["reason"] != "unknown_credential" {
		t.Errorf("unknown card: %v", res)
	}
	nextEvent(t, watcher, "access.denied")

	// Forced: opened with no grant. Held open: still open after 500 ms.
	time.Sleep(400 * time.Millisecond) // past the strike window
	call(t, admin, "door.simulate", map[string]any{"door_id": doorID, "contact": "open"})
	nextEvent(t, watcher, dt+".forced")
	nextEvent(t, watcher, dt+".held_open")
	call(t, admin, "door.simulate", map[string]any{"door_id": doorID, "contact": "closed"})
	nextEvent(t, watcher, dt+".closed")

	// Door mode locked: denied door_locked; back to normal.
	call(t, admin, "door.set_mode", map[string]any{"door_id": doorID, "mode": "locked"})
	nextEvent(t, watcher, dt+".mode")
	if res := swipe("12:af:cd:40"); res["reason"] != "door_locked" {
		t.Errorf("locked door: %v", res)
	}
	call(t, admin, "door.set_mode", map[string]any{"door_id": doorID, "mode": "normal"})
	// Site lockdown: denied lockdown, then evacuation opens for anyone.
	call(t, admin, "site.set_mode", map[string]any{"mode": "lockdown"})
	nextEvent(t, watcher, "site.mode")
	if res := swipe("12:af:cd:40"); res["granted"] != false || res["reason"] != "lockdown" {
		t.Errorf("lockdown: %v", res)
	}
	call(t, admin, "site.set_mode", map[string]any{"mode": "evacuation"})
	if res := swipe("ff:ff:ff:c0"); res["granted"] != true || res["reason"] != "evacuation" {
		t.Errorf("evacuation: %v", res)
	}
	var st struct {
		SiteMode string `json:"site_mode"`
		Doors    []struct {
			DoorID int64          `json:"door_id"`
			State  map[string]any `json:"state"`
		} `json:"doors"`
	}
	json.Unmarshal(call(t, admin, "door.state", map[string]any{"door_id": 0}), &st)
	if st.SiteMode != "evacuation" || len(st.Doors) != 1 || st.Doors[0].State["effective"] != "evacuation" {
		t.Errorf("door.state: %+v", st)
	}
	// The site mode survives a restart.
	srv2 := srv.Restart()
	admin2 := wstest.Dial(t, srv2.WSURL)
	admin2.Login("admin", coretest.AdminPassword)
	json.Unmarshal(call(t, admin2, "door.state", map[string]any{"door_id": doorID}), &st)
	if st.SiteMode != "evacuation" {
		t.Errorf("site mode after restart: %q", st.SiteMode)
	}
	call(t, admin2, "site.set_mode", map[string]any{"mode": "normal"})

	// An empty reader.simulate answers INVALID_ARGUMENT, so clients can probe for it (rights per
	// rank are in modules/all's permission table).
	if r := admin2.Call("reader.simulate", map[string]any{}); r.StatusCode != 12 {
		t.Errorf("reader.simulate with empty content: %d, want 12", r.StatusCode)
	}
}
