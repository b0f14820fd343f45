package site_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"gatehouse/core"
)

func TestAccessPointsAndDoors(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin

	// Access points: validation.
	modelError(t, a.Call("access_point.create", map[string]any{"attributes": map[string]any{"alias": "AP"}}),
		"data/attributes/controller-module", "")
	modelError(t, a.Call("access_point.create", map[string]any{"attributes": map[string]any{"controller-module": "evoxs"}}),
		"data/attributes/controller-module", "Unknown controller module evoxs (use simulator, wiegand or mqtt).")
	modelError(t, a.Call("access_point.create", map[string]any{"attributes": map[string]any{"controller-module": "wiegand", "config": []int{1}}}),
		"data/attributes/config", "")
	modelError(t, a.Call("access_point.create", map[string]any{"attributes": map[string]any{"controller-module": "wiegand", "config": "x"}}),
		"data/attributes/config", "")

	r := ok(t, a.Call("access_point.create", map[string]any{"attributes": map[string]any{
		"alias": "Front reader", "controller-module": "wiegand", "config": map[string]any{"gpio_high": 17, "mode": "SIMPLE_WIEGAND"}}}))
	var ap struct{ Data object }
	r.Decode(t, &ap)
	ap1 := ap.Data.ID
	if ap.Data.Type != "access-point" || ap.Data.Attributes["controller-module"] != "wiegand" || ap.Data.Attributes["version"] != 1.0 ||
		ap.Data.one(t, "door") != 0 || !strings.Contains(string(r.Content), `"config":{"gpio_high":17,"mode":"SIMPLE_WIEGAND"}`) {
		t.Fatalf("access point: %s", r.Content)
	}
	ap2 := s.create("access_point", map[string]any{"alias": "Back reader", "controller-module": "LEOSAC-BUILTIN-ACCESS-POINT"})
	r = ok(t, a.Call("access_point.read", map[string]any{"access_point_id": ap2}))
	if !strings.Contains(string(r.Content), `"config":{}`) || !strings.Contains(string(r.Content), `"controller-module":"LEOSAC-BUILTIN-ACCESS-POINT"`) {
		t.Errorf("default config: %s", r.Content)
	}
	r = want(t, a.Call("access_point.read", map[string]any{"access_point_id": 999}), codeEntityNotFound)
	if !strings.Contains(string(r.Content), `"entity_type":"access-point"`) || !strings.Contains(string(r.Content), `"entity_id":"999"`) {
		t.Errorf("not found content: %s", r.Content)
	}
	want(t, a.Call("access_point.update", map[string]any{"access_point_id": 999, "attributes": map[string]any{}}), codeEntityNotFound)
	want(t, a.Call("access_point.delete", map[string]any{"access_point_id": 999}), codeEntityNotFound)

	// Doors: unknown access point; create with one; another door cannot take it.
	modelError(t, a.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "X", "access_point_id": 77}}),
		"data/attributes/access_point_id", "Access point 77 does not exist.")
	want(t, a.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "X", "access_point_id": "1"}}), codeInvalidArgument)
	r = ok(t, a.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "Front", "description": "main entrance", "access_point_id": ap1}}))
	var door struct{ Data object }
	r.Decode(t, &door)
	front := door.Data.ID
	if door.Data.Type != "door" || door.Data.Attributes["alias"] != "Front" || door.Data.one(t, "access-point") != ap1 ||
		len(door.Data.many(t, "zones")) != 0 {
		t.Fatalf("door: %s", r.Content)
	}
	modelError(t, a.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "Side", "access_point_id": ap1}}),
		"data/attributes/access_point_id", "The access point "+itoa(ap1)+" is already used by door "+itoa(front)+".")
	back := s.create("door", map[string]any{"alias": "Back", "access_point_id": 0})

	// Leosac bug §8.3-17: updating a door that keeps its own access point works.
	r = ok(t, a.Call("door.update", map[string]any{"door_id": front, "attributes": map[string]any{"alias": "Front door", "access_point_id": ap1}}))
	r.Decode(t, &door)
	if door.Data.Attributes["alias"] != "Front door" || door.Data.Attributes["description"] != "main entrance" ||
		door.Data.one(t, "access-point") != ap1 || door.Data.Attributes["version"] != 2.0 {
		t.Fatalf("updated door: %s", r.Content)
	}
	// Absent access_point_id keeps it; taking another door's access point fails.
	r = ok(t, a.Call("door.update", map[string]any{"door_id": front, "attributes": map[string]any{"description": "x"}}))
	r.Decode(t, &door)
	if door.Data.one(t, "access-point") != ap1 {
		t.Fatalf("kept access point: %s", r.Content)
	}
	modelError(t, a.Call("door.update", map[string]any{"door_id": back, "attributes": map[string]any{"access_point_id": ap1}}),
		"data/attributes/access_point_id", "The access point "+itoa(ap1)+" is already used by door "+itoa(front)+".")
	r = ok(t, a.Call("door.update", map[string]any{"door_id": back, "attributes": map[string]any{"access_point_id": ap2}}))
	r.Decode(t, &door)
	if door.Data.one(t, "access-point") != ap2 {
		t.Fatalf("back door: %s", r.Content)
	}
	// null detaches.
	r = ok(t, a.Call("door.update", map[string]any{"door_id": back, "attributes": map[string]any{"access_point_id": nil}}))
	r.Decode(t, &door)
	if door.Data.one(t, "access-point") != 0 || !strings.Contains(string(r.Content), `"access-point":{"data":null}`) {
		t.Fatalf("detached: %s", r.Content)
	}
	want(t, a.Call("door.update", map[string]any{"door_id": 999, "attributes": map[string]any{}}), codeEntityNotFound)
	r = want(t, a.Call("door.read", map[string]any{"door_id": 999}), codeEntityNotFound)
	if !strings.Contains(string(r.Content), `"entity_type":"door"`) {
		t.Errorf("door not found: %s", r.Content)
	}

	// The access point shows its door; deleting it leaves the door without one.
	r = ok(t, a.Call("access_point.read", map[string]any{"access_point_id": 0}))
	var aps struct{ Data []object }
	r.Decode(t, &aps)
	if len(aps.Data) != 2 || aps.Data[0].one(t, "door") != front || aps.Data[1].one(t, "door") != 0 {
		t.Fatalf("access points: %s", r.Content)
	}
	r = ok(t, a.Call("access_point.update", map[string]any{"access_point_id": ap1, "attributes": map[string]any{"config": nil, "alias": "Reader 1"}}))
	if !strings.Contains(string(r.Content), `"config":{}`) || !strings.Contains(string(r.Content), `"alias":"Reader 1"`) ||
		!strings.Contains(string(r.Content), `"controller-module":"wiegand"`) {
		t.Errorf("updated access point: %s", r.Content)
	}
	if r := ok(t, a.Call("access_point.delete", map[string]any{"access_point_id": ap1})); string(r.Content) != "null" {
		t.Errorf("delete content %s", r.Content)
	}
	r = ok(t, a.Call("door.read", map[string]any{"door_id": front}))
	r.Decode(t, &door)
	if door.Data.one(t, "access-point") != 0 {
		t.Fatalf("door after access point delete: %s", r.Content)
	}
	if got := ids(t, ok(t, a.Call("door.read", map[string]any{"door_id": 0}))); !equal(got, []int64{front, back}) {
		t.Errorf("door list %v", got)
	}
	if r := ok(t, a.Call("door.delete", map[string]any{"door_id": back})); string(r.Content) != "null" {
		t.Errorf("delete content %s", r.Content)
	}
	want(t, a.Call("door.delete", map[string]any{"door_id": back}), codeEntityNotFound)

	// Audit trail and event payloads.
	got := strings.Join(s.topics(), ",")
	wantTopics := "access_point.created,access_point.created,door.created,door.created,door.updated,door.updated,door.updated,door.updated," +
		"access_point.updated,access_point.deleted,door.deleted"
	if got != wantTopics {
		t.Errorf("events:\n got %s\nwant %s", got, wantTopics)
	}
	var ev struct {
		Kind  string
		Mask  int64 `gorm:"column:event_mask"`
		Data  string
		After *string
	}
	if err := s.srv.DB().Read.Raw(`SELECT kind, event_mask, data, after FROM events WHERE topic = 'door.updated' ORDER BY seq LIMIT 1`).Scan(&ev).Error; err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "audit-door-event" || ev.Mask != 1<<18 || data["alias"] != "Front door" || data["access_point_id"] != float64(ap1) || ev.After == nil {
		t.Errorf("door.updated event: %+v", ev)
	}
	if n := s.count(`SELECT COUNT(*) FROM events WHERE topic = 'access_point.deleted' AND kind = 'audit-access-point-event' AND event_mask = ? AND door_id = ?`, 1<<23, front); n != 1 {
		t.Errorf("access_point.deleted audit rows: %d", n)
	}
}

func itoa(n int64) string { return strings.TrimSpace(string(must(json.Marshal(n)))) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRankMatrix checks who may read and change the site's resources: users read only what
// concerns them, viewers read everything and change nothing, managers and above change.
func TestRankMatrix(t *testing.T) {
	t.Parallel()
	s := start(t)
	apID := s.create("access_point", map[string]any{"alias": "AP", "controller-module": "simulator"})
	doorID := s.create("door", map[string]any{"alias": "D"})
	zoneID := s.create("zone", map[string]any{"alias": "Z"})
	schedID := s.create("schedule", map[string]any{"name": "Sched1"})

	for _, rc := range []struct {
		rank         core.Rank
		reads, write bool
	}{
		{core.RankUser, false, false},
		{core.RankViewer, true, false},
		{core.RankManager, true, true},
		{core.RankSupervisor, true, true},
		{core.RankAdministrator, true, true},
	} {
		c, _ := s.login("u-"+rc.rank.String(), rc.rank)
		t.Run(rc.rank.String(), func(t *testing.T) {
			readCode, writeCode := codePermissionDenied, codePermissionDenied
			if rc.reads {
				readCode = codeOK
			}
			if rc.write {
				writeCode = codeOK
			}
			// Reads reserved to viewers and above.
			for _, call := range []struct {
				typ     string
				content map[string]any
			}{
				{"access_point.read", map[string]any{"access_point_id": 0}},
				{"access_point.read", map[string]any{"access_point_id": apID}},
				{"zone.read", map[string]any{"zone_id": 0}},
				{"zone.read", map[string]any{"zone_id": zoneID}},
				{"search.access_point_alias", map[string]any{"partial_name": "%"}},
				{"search.zone_alias", map[string]any{"partial_name": "%"}},
				{"access_overview", map[string]any{}},
			} {
				want(t, c.Call(call.typ, call.content), readCode)
			}
			// Reads open to everyone, filtered for users.
			list := ids(t, ok(t, c.Call("door.read", map[string]any{"door_id": 0})))
			sched := ids(t, ok(t, c.Call("schedule.read", map[string]any{"schedule_id": 0})))
			if rc.reads != slices.Contains(list, doorID) || rc.reads != slices.Contains(sched, schedID) || (!rc.reads && len(list)+len(sched) > 0) {
				t.Errorf("door list %v, schedule list %v", list, sched)
			}
			want(t, c.Call("door.read", map[string]any{"door_id": doorID}), readCode)
			want(t, c.Call("schedule.read", map[string]any{"schedule_id": schedID}), readCode)

			// Writes.
			name := "x-" + rc.rank.String()
			for _, call := range []struct {
				typ     string
				content map[string]any
			}{
				{"access_point.create", map[string]any{"attributes": map[string]any{"alias": name, "controller-module": "mqtt"}}},
				{"access_point.update", map[string]any{"access_point_id": apID, "attributes": map[string]any{"description": name}}},
				{"door.create", map[string]any{"attributes": map[string]any{"alias": name}}},
				{"door.update", map[string]any{"door_id": doorID, "attributes": map[string]any{"description": name}}},
				{"zone.create", map[string]any{"attributes": map[string]any{"alias": name}}},
				{"zone.update", map[string]any{"zone_id": zoneID, "attributes": map[string]any{"description": name}}},
				{"schedule.create", map[string]any{"attributes": map[string]any{"name": name}}},
				{"schedule.update", map[string]any{"schedule_id": schedID, "attributes": map[string]any{"description": name}}},
			} {
				want(t, c.Call(call.typ, call.content), writeCode)
			}
			if !rc.write {
				// Refused deletes change nothing, even of an unknown id.
				for _, typ := range []string{"access_point", "door", "zone", "schedule"} {
					key := typ + "_id"
					want(t, c.Call(typ+".delete", map[string]any{key: 1}), codePermissionDenied)
					want(t, c.Call(typ+".delete", map[string]any{key: 999}), codePermissionDenied)
				}
				return
			}
			// Managers delete what they created.
			for _, typ := range []string{"access_point", "door", "zone", "schedule"} {
				attrs := map[string]any{"alias": name + "-del", "name": name + "-del"}
				if typ == "access_point" {
					attrs["controller-module"] = "simulator"
				}
				var r struct{ Data object }
				ok(t, c.Call(typ+".create", map[string]any{"attributes": attrs})).Decode(t, &r)
				ok(t, c.Call(typ+".delete", map[string]any{typ + "_id": r.Data.ID}))
			}
		})
	}
	if n := s.count(`SELECT COUNT(*) FROM doors`); n != 1+3 {
		t.Errorf("doors: %d (one per rank that manages, plus D)", n)
	}
}
