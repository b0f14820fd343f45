package site_test

import (
	"encoding/json"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/modules/wsapi/wstest"
)

type scheduleReply struct {
	Data     object
	Included []object
}

func mappingsOf(t *testing.T, r wstest.Reply) (scheduleReply, map[string]object) {
	t.Helper()
	var sr scheduleReply
	r.Decode(t, &sr)
	byAlias := map[string]object{}
	for _, m := range sr.Included {
		if m.Type != "schedule-mapping" {
			t.Fatalf("included %s", m.Type)
		}
		byAlias[m.Attributes["alias"].(string)] = m
	}
	return sr, byAlias
}

func TestScheduleCRUD(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin
	bob := s.addUser("bob", core.RankUser)
	card := s.addCredential("Bob card", bob)
	staff := s.group("Staff", bob)
	front := s.create("door", map[string]any{"alias": "Front"})
	back := s.create("door", map[string]any{"alias": "Back"})
	hall := s.create("zone", map[string]any{"alias": "Hall", "doors": []int64{back}})

	// Validation: name, days, times, all reported at once with pointers.
	r := a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "ab", "timeframes": []map[string]any{
		{"day": 7, "start-time": "08:00", "end-time": "18:00"},
		{"day": 1, "start-time": "8h", "end-time": "24:00"},
	}}})
	modelError(t, r, "data/attributes/name", "Length must be >=3 and <=50.")
	modelError(t, r, "data/attributes/timeframes/0/day", "Day must be 0 (Monday) to 6 (Sunday).")
	modelError(t, r, "data/attributes/timeframes/1/start-time", "Invalid time 8h (use HH:MM).")
	modelError(t, r, "data/attributes/timeframes/1/end-time", "Invalid time 24:00 (use HH:MM).")
	want(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "Bad", "timeframes": []map[string]any{{"day": "mon"}}}}), codeInvalidArgument)

	// Create with timeframes (web form "8:5", overnight frame) and no mapping.
	r = ok(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "Office", "description": "office hours",
		"timeframes": []map[string]any{{"day": 0, "start-time": "8:5", "end-time": "18:30"}, {"day": 4, "start-time": "22:00", "end-time": "06:00"}}}}))
	sr, _ := mappingsOf(t, r)
	office := sr.Data.ID
	if !strings.Contains(string(r.Content), `"timeframes":[{"day":0,"end-time":"18:30","id":0,"start-time":"08:05"},{"day":4,"end-time":"06:00","id":1,"start-time":"22:00"}]`) ||
		!strings.Contains(string(r.Content), `"mapping":{"data":[]}`) || !strings.Contains(string(r.Content), `"included":[]`) {
		t.Fatalf("created: %s", r.Content)
	}
	modelError(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "OFFICE"}}),
		"data/attributes/name", "A schedule named OFFICE already exists.")
	// null timeframes = none.
	r = ok(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "Empty", "timeframes": nil}}))
	if !strings.Contains(string(r.Content), `"timeframes":[]`) {
		t.Errorf("null timeframes: %s", r.Content)
	}

	// Unknown members, at mapping/<i>/<field>; nothing written.
	before := len(s.topics())
	r = a.Call("schedule.update", map[string]any{"schedule_id": office, "mapping": []map[string]any{
		{"alias": "ok", "users": []int64{bob}},
		{"alias": "bad", "users": []int64{900}, "groups": []int64{901}, "credentials": []int64{902}, "doors": []int64{903}, "zones": []int64{904}},
	}})
	modelError(t, r, "mapping/1/users", "User 900 does not exist.")
	modelError(t, r, "mapping/1/groups", "Group 901 does not exist.")
	modelError(t, r, "mapping/1/credentials", "Credential 902 does not exist.")
	modelError(t, r, "mapping/1/doors", "Door 903 does not exist.")
	modelError(t, r, "mapping/1/zones", "Zone 904 does not exist.")
	if len(s.topics()) != before || s.count(`SELECT COUNT(*) FROM schedule_mappings`) != 0 {
		t.Fatal("refused update wrote something")
	}

	// Set three mappings.
	r = ok(t, a.Call("schedule.update", map[string]any{"schedule_id": office, "mapping": []map[string]any{
		{"alias": "people", "users": []int64{bob}, "groups": []int64{staff}, "doors": []int64{front}},
		{"alias": "cards", "credentials": []int64{card}, "zones": []int64{hall}},
		{"alias": "everywhere", "users": []int64{bob}},
	}}))
	sr, byAlias := mappingsOf(t, r)
	if len(sr.Included) != 3 || len(sr.Data.many(t, "mapping")) != 3 || sr.Data.Attributes["version"] != 2.0 {
		t.Fatalf("mappings: %s", r.Content)
	}
	people, cards, everywhere := byAlias["people"], byAlias["cards"], byAlias["everywhere"]
	if !equal(people.many(t, "users"), []int64{bob}) || !equal(people.many(t, "groups"), []int64{staff}) ||
		!equal(people.many(t, "doors"), []int64{front}) || len(people.many(t, "zones")) != 0 || len(people.many(t, "credentials")) != 0 {
		t.Errorf("people mapping: %+v", people)
	}
	if !strings.Contains(string(cards.Relationships["credentials"]), `{"id":`+itoa(card)+`,"type":"rfid-card"}`) ||
		!equal(cards.many(t, "zones"), []int64{hall}) {
		t.Errorf("cards mapping: %+v", cards)
	}
	// Timeframes are kept when absent.
	if !strings.Contains(string(r.Content), `"start-time":"08:05"`) {
		t.Errorf("timeframes lost: %s", r.Content)
	}

	// Update: ids of kept mappings stay, absent member lists are kept for them, a new entry
	// creates a mapping, an unlisted one is deleted, an id of another schedule is a new mapping.
	r = ok(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "Other"},
		"mapping": []map[string]any{{"alias": "other's", "users": []int64{bob}}}}))
	otherSr, _ := mappingsOf(t, r)
	othersMapping := otherSr.Included[0].ID
	r = ok(t, a.Call("schedule.update", map[string]any{"schedule_id": office, "attributes": map[string]any{"description": "changed"},
		"mapping": []map[string]any{
			{"id": cards.ID, "alias": "cards renamed"},
			{"id": people.ID, "alias": "people", "users": []int64{}, "doors": []int64{front, back}},
			{"id": othersMapping, "alias": "new", "users": []int64{bob}, "doors": []int64{back}},
		}}))
	sr, byAlias = mappingsOf(t, r)
	if len(sr.Included) != 3 || sr.Data.Attributes["description"] != "changed" {
		t.Fatalf("updated: %s", r.Content)
	}
	if m := byAlias["cards renamed"]; m.ID != cards.ID || !equal(m.many(t, "zones"), []int64{hall}) || len(m.many(t, "credentials")) != 1 ||
		m.Attributes["version"] != 2.0 {
		t.Errorf("cards kept in place: %+v", m)
	}
	if m := byAlias["people"]; m.ID != people.ID || len(m.many(t, "users")) != 0 || !equal(m.many(t, "groups"), []int64{staff}) ||
		!equal(m.many(t, "doors"), []int64{front, back}) {
		t.Errorf("people kept in place: %+v", m)
	}
	if m := byAlias["new"]; m.ID == 0 || m.ID == othersMapping || m.ID == everywhere.ID {
		t.Errorf("new mapping: %+v", m)
	}
	if n := s.count(`SELECT COUNT(*) FROM mapping_users WHERE mapping_id = ?`, othersMapping); n != 1 {
		t.Errorf("the other schedule's mapping changed")
	}
	if got := sr.Data.many(t, "mapping"); !equal(got, []int64{cards.ID, people.ID, byAlias["new"].ID}) {
		t.Errorf("mapping order %v", got)
	}
	if n := s.count(`SELECT COUNT(*) FROM schedule_mappings WHERE id = ?`, everywhere.ID); n != 0 {
		t.Errorf("unlisted mapping kept")
	}
	if n := s.count(`SELECT COUNT(*) FROM mapping_users WHERE mapping_id = ?`, everywhere.ID); n != 0 {
		t.Errorf("links of unlisted mapping kept")
	}
	// Listing one of this schedule's mappings twice is refused.
	modelError(t, a.Call("schedule.update", map[string]any{"schedule_id": office, "mapping": []map[string]any{{"id": cards.ID}, {"id": cards.ID}}}),
		"mapping/1/id", "")
	// Absent "mapping" keeps the mappings.
	r = ok(t, a.Call("schedule.update", map[string]any{"schedule_id": office, "attributes": map[string]any{"name": "Office2"}}))
	if sr, _ = mappingsOf(t, r); len(sr.Included) != 3 || sr.Data.Attributes["name"] != "Office2" {
		t.Errorf("absent mapping: %s", r.Content)
	}
	want(t, a.Call("schedule.update", map[string]any{"schedule_id": 999, "attributes": map[string]any{}}), codeEntityNotFound)

	// Reads: one (with its mappings) and the list (every mapping in "included").
	r = ok(t, a.Call("schedule.read", map[string]any{"schedule_id": office}))
	if sr, _ = mappingsOf(t, r); len(sr.Included) != 3 {
		t.Errorf("read one: %s", r.Content)
	}
	r = ok(t, a.Call("schedule.read", map[string]any{"schedule_id": 0}))
	var list struct {
		Data     []object
		Included []object
	}
	r.Decode(t, &list)
	if len(list.Data) != 3 || len(list.Included) != 4 {
		t.Errorf("list: %s", r.Content)
	}
	r = want(t, a.Call("schedule.read", map[string]any{"schedule_id": 999}), codeEntityNotFound)
	if !strings.Contains(string(r.Content), `"entity_type":"schedule"`) {
		t.Errorf("not found: %s", r.Content)
	}

	// Audit: before/after with mappings, mask SCHEDULE_UPDATED|MAPPING_MAY_HAVE_CHANGED, data doors.
	var ev struct {
		Mask          int64 `gorm:"column:event_mask"`
		Before, After string
		Data          string
	}
	if err := s.srv.DB().Read.Raw(`SELECT event_mask, before, after, data FROM events WHERE topic = 'schedule.updated' AND kind = 'audit-schedule-event'
		ORDER BY seq LIMIT 1 OFFSET 1`).Scan(&ev).Error; err != nil {
		t.Fatal(err)
	}
	var data struct{ Doors, Zones []int64 }
	if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
		t.Fatal(err)
	}
	if ev.Mask != 1<<16|1<<20 || !strings.Contains(ev.Before, `"alias":"everywhere"`) || !strings.Contains(ev.After, `"alias":"cards renamed"`) ||
		!equal(data.Doors, []int64{front, back}) || !equal(data.Zones, []int64{hall}) {
		t.Errorf("schedule.updated audit: %+v", ev)
	}

	// Delete: its mappings and their links go.
	mappingIDs := sr.Data.many(t, "mapping")
	if r := ok(t, a.Call("schedule.delete", map[string]any{"schedule_id": office})); string(r.Content) != "null" {
		t.Errorf("delete: %s", r.Content)
	}
	for _, table := range []string{"mapping_users", "mapping_groups", "mapping_credentials", "mapping_doors", "mapping_zones"} {
		if n := s.count(`SELECT COUNT(*) FROM `+table+` WHERE mapping_id IN ?`, mappingIDs); n != 0 {
			t.Errorf("%s rows left: %d", table, n)
		}
	}
	if n := s.count(`SELECT COUNT(*) FROM schedule_mappings WHERE schedule_id = ?`, office); n != 0 {
		t.Errorf("mappings left: %d", n)
	}
	want(t, a.Call("schedule.delete", map[string]any{"schedule_id": office}), codeEntityNotFound)
	if n := s.count(`SELECT COUNT(*) FROM events WHERE topic = 'schedule.deleted' AND event_mask & ? <> 0 AND before LIKE '%cards renamed%'`, 1<<15); n != 1 {
		t.Errorf("schedule.deleted audit rows: %d", n)
	}

	// Create with a mapping at once.
	r = ok(t, a.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "WithMapping"},
		"mapping": []map[string]any{{"alias": "m", "groups": []int64{staff}}}}))
	if sr, _ = mappingsOf(t, r); len(sr.Included) != 1 || !equal(sr.Included[0].many(t, "groups"), []int64{staff}) {
		t.Errorf("create with mapping: %s", r.Content)
	}
}

// TestUserReads checks what a user of rank "user" reads: the schedules with a mapping that
// applies to them (directly, through a group, through an owned credential) and only those
// mappings, and the doors those mappings target (through zones and their descendants too).
func TestUserReads(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin
	bob, bobID := s.login("bob", core.RankUser)
	carol, carolID := s.login("carol", core.RankUser)
	dave, daveID := s.login("dave", core.RankUser)
	eve, _ := s.login("eve", core.RankUser)
	card := s.addCredential("Carol card", carolID)
	staff := s.group("Staff", daveID)

	d := make([]int64, 6)
	for i := range d {
		d[i] = s.create("door", map[string]any{"alias": "Door " + string(rune('A'+i))})
	}
	// Zones: site ⊃ building ⊃ floor; doors: building {d1}, floor {d2}.
	floor := s.create("zone", map[string]any{"alias": "Floor", "doors": []int64{d[2]}})
	building := s.create("zone", map[string]any{"alias": "Building", "doors": []int64{d[1]}, "children": []int64{floor}})
	s.create("zone", map[string]any{"alias": "Site", "children": []int64{building}})

	direct := s.create("schedule", map[string]any{"name": "Direct"})
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": direct, "mapping": []map[string]any{
		{"alias": "bob at d0", "users": []int64{bobID}, "doors": []int64{d[0]}},
		{"alias": "nobody", "users": []int64{}, "doors": []int64{d[5]}},
	}}))
	viaCard := s.create("schedule", map[string]any{"name": "ViaCard"})
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": viaCard, "mapping": []map[string]any{
		{"alias": "carol's card in the building", "credentials": []int64{card}, "zones": []int64{building}},
	}}))
	viaGroup := s.create("schedule", map[string]any{"name": "ViaGroup"})
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": viaGroup, "mapping": []map[string]any{
		{"alias": "staff everywhere", "groups": []int64{staff}},
	}}))

	for _, tc := range []struct {
		name      string
		c         *wstest.Client
		doors     []int64
		schedules []int64
		mappings  int
	}{
		{"bob (direct)", bob, []int64{d[0]}, []int64{direct}, 1},
		{"carol (owned credential, zone descendants)", carol, []int64{d[1], d[2]}, []int64{viaCard}, 1},
		{"dave (group, mapping without targets = every door)", dave, d, []int64{viaGroup}, 1},
		{"eve (nothing)", eve, []int64{}, []int64{}, 0},
	} {
		if got := ids(t, ok(t, tc.c.Call("door.read", map[string]any{"door_id": 0}))); !equal(got, tc.doors) {
			t.Errorf("%s: doors %v, want %v", tc.name, got, tc.doors)
		}
		r := ok(t, tc.c.Call("schedule.read", map[string]any{"schedule_id": 0}))
		var list struct {
			Data     []object
			Included []object
		}
		r.Decode(t, &list)
		got := []int64{}
		for _, o := range list.Data {
			got = append(got, o.ID)
		}
		if !equal(got, tc.schedules) || len(list.Included) != tc.mappings {
			t.Errorf("%s: schedules %s", tc.name, r.Content)
		}
		var found []struct{ ID int64 }
		ok(t, tc.c.Call("search.schedule_name", map[string]any{"partial_name": "%"})).Decode(t, &found)
		if len(found) != len(tc.schedules) {
			t.Errorf("%s: schedule search %v", tc.name, found)
		}
		var doors []struct{ ID int64 }
		ok(t, tc.c.Call("search.door_alias", map[string]any{"partial_name": "door"})).Decode(t, &doors)
		if len(doors) != len(tc.doors) {
			t.Errorf("%s: door search %v", tc.name, doors)
		}
	}
	// Single reads: readable ones work, others are PERMISSION_DENIED, unknown ENTITY_NOT_FOUND.
	ok(t, bob.Call("door.read", map[string]any{"door_id": d[0]}))
	want(t, bob.Call("door.read", map[string]any{"door_id": d[1]}), codePermissionDenied)
	want(t, bob.Call("door.read", map[string]any{"door_id": 999}), codeEntityNotFound)
	ok(t, carol.Call("door.read", map[string]any{"door_id": d[2]}))
	r := ok(t, bob.Call("schedule.read", map[string]any{"schedule_id": direct}))
	if sr, _ := mappingsOf(t, r); len(sr.Included) != 1 || sr.Included[0].Attributes["alias"] != "bob at d0" {
		t.Errorf("bob's view of Direct: %s", r.Content)
	}
	want(t, bob.Call("schedule.read", map[string]any{"schedule_id": viaCard}), codePermissionDenied)
	want(t, eve.Call("schedule.read", map[string]any{"schedule_id": direct}), codePermissionDenied)

	// Rights follow changes at once: carol leaves nothing, bob is removed from his mapping.
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": direct, "mapping": []map[string]any{{"alias": "d0", "doors": []int64{d[0]}}}}))
	want(t, bob.Call("door.read", map[string]any{"door_id": d[0]}), codePermissionDenied)
	if got := ids(t, ok(t, bob.Call("schedule.read", map[string]any{"schedule_id": 0}))); len(got) != 0 {
		t.Errorf("bob still reads schedules %v", got)
	}
}
