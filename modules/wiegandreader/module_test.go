package wiegandreader_test

import (
	"encoding/json"
	"testing"
	"time"

	"gatehouse/core/coretest"
	"gatehouse/modules/reader/wiegand"
	"gatehouse/modules/wiegandreader"
	"gatehouse/modules/wsapi/wstest"
)

func mustCall(t *testing.T, c *wstest.Client, typ string, content any) json.RawMessage {
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
		Data struct{ ID int64 } `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.Data.ID
}

// TestWiegandReadOpensTheDoor drives a reader with a synthetic pulse train of an H10301 card
// (facility 42, number 1001) and expects the access path to grant it at the reader's door;
// then a train with a parity error is denied as bad_read.
func TestWiegandReadOpensTheDoor(t *testing.T) {
	srv := coretest.Start(t, coretest.WithModuleConfig("wiegand", `{"retry_interval": "1h"}`))
	mod, _ := srv.App().Module(wiegandreader.ModuleID)
	m := mod.(*wiegandreader.Module)

	bits, err := wiegand.Encode(wiegand.FormatH10301, 42, 1001)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := wiegand.Decode(bits)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]bool(nil), bits...)
	bad[len(bad)-1] = !bad[len(bad)-1] // break the odd parity
	train := wiegand.PulseTrain(bits, time.Now(), 2*time.Millisecond)
	train = append(train, wiegand.PulseTrain(bad, time.Now().Add(500*time.Millisecond), 2*time.Millisecond)...)
	m.SetSource(func(int64, wiegandreader.ReaderConfig) wiegand.Source { return &wiegand.PulseSource{Edges: train} })

	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	ap := idOf(t, mustCall(t, admin, "access_point.create", map[string]any{"attributes": map[string]any{"alias": "reader", "controller-module": "simulator"}}))
	door := idOf(t, mustCall(t, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Gate", "access_point_id": ap}}))
	uid := idOf(t, mustCall(t, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "carol"}}))
	mustCall(t, admin, "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "carol", "owner_id": uid, "card-id": frame.Card, "nb-bits": 26}})
	var frames []map[string]any
	for d := range 7 {
		frames = append(frames, map[string]any{"day": d, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := idOf(t, mustCall(t, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	mustCall(t, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"users": []int64{uid}, "doors": []int64{door}}}})
	mustCall(t, admin, "events.subscribe", map[string]any{"topics": []string{"access.*"}})

	// Turning the access point into a Wiegand reader starts it.
	mustCall(t, admin, "access_point.update", map[string]any{"access_point_id": ap,
		"attributes": map[string]any{"controller-module": "wiegand", "config": map[string]any{"chip": "gpiochip0", "d0": 1, "d1": 2}}})
	for i, want := range []struct {
		topic, reason string
	}{{"access.granted", "granted"}, {"access.denied", "bad_read"}} {
		p := admin.ExpectPush("event", 10*time.Second)
		var e struct {
			Topic string         `json:"topic"`
			Data  map[string]any `json:"data"`
		}
		p.Decode(t, &e)
		if e.Topic != want.topic || e.Data["reason"] != want.reason || int64(e.Data["reader_id"].(float64)) != ap ||
			int64(e.Data["door_id"].(float64)) != door {
			t.Errorf("read %d: %s %v, want %s %s", i, e.Topic, e.Data, want.topic, want.reason)
		}
	}
}
