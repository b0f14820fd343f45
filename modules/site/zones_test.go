package site_test

import (
	"strings"
	"testing"
)

const (
	physical = 0
	logical  = 1
)

// TestZoneRules ports Leosac's test_ws_zone.py (invalid type 42, two physical parents, cycle
// Z0→Z1→Z2→Z0) and adds a logical zone under a physical one and a zone that is its own child.
// A refused change writes nothing.
func TestZoneRules(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin

	// Leosac's test_create_zone: the list starts empty, the type is kept.
	if got := ids(t, ok(t, a.Call("zone.read", map[string]any{"zone_id": 0}))); len(got) != 0 {
		t.Fatalf("zones: %v", got)
	}
	r := ok(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{
		"alias": "My Zone", "type": physical, "description": "A very nice zone", "doors": []int64{}, "children": []int64{}}}))
	var z struct{ Data object }
	r.Decode(t, &z)
	if z.Data.Type != "zone" || z.Data.Attributes["type"] != 0.0 || z.Data.Attributes["alias"] != "My Zone" ||
		!strings.Contains(string(r.Content), `"children":{"data":[]}`) || !strings.Contains(string(r.Content), `"parents":{"data":[]}`) {
		t.Fatalf("zone: %s", r.Content)
	}
	// Absent type = logical.
	r = ok(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "L"}}))
	r.Decode(t, &z)
	if z.Data.Attributes["type"] != 1.0 {
		t.Fatalf("default type: %s", r.Content)
	}

	events := len(s.topics())
	zones := s.count(`SELECT COUNT(*) FROM zones`)
	unchanged := func(what string) {
		t.Helper()
		if n := len(s.topics()); n != events {
			t.Errorf("%s: events %d → %d", what, events, n)
		}
		if n := s.count(`SELECT COUNT(*) FROM zones`); n != zones {
			t.Errorf("%s: zones %d → %d", what, zones, n)
		}
	}

	// test_zone_invalid_type.
	modelError(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "My Zone", "type": 42, "description": "A bugged zone"}}),
		"data/attributes/type", "Invalid zone type.")
	unchanged("invalid type")

	// test_zone_multiple_physical_parent.
	child := s.create("zone", map[string]any{"alias": "Child", "type": physical})
	parent := s.create("zone", map[string]any{"alias": "Parent", "type": physical, "children": []int64{child}})
	events, zones = len(s.topics()), zones+2
	modelError(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "SecondParent", "type": physical, "children": []int64{child}}}),
		"", "A physical zone cannot have more than one physical parent.")
	unchanged("second physical parent")
	// A logical zone may also contain it.
	logicalParent := s.create("zone", map[string]any{"alias": "Logical parent", "type": logical, "children": []int64{child}})
	r = ok(t, a.Call("zone.read", map[string]any{"zone_id": child}))
	r.Decode(t, &z)
	if got := z.Data.many(t, "parents"); !equal(got, []int64{parent, logicalParent}) {
		t.Errorf("parents of child: %v", got)
	}
	events, zones = len(s.topics()), zones+1

	// Cycle Z0→Z1→Z2→Z0.
	z2 := s.create("zone", map[string]any{"alias": "Z2"})
	z1 := s.create("zone", map[string]any{"alias": "Z1", "children": []int64{z2}})
	z0 := s.create("zone", map[string]any{"alias": "Z0", "children": []int64{z1}})
	events, zones = len(s.topics()), zones+3
	modelError(t, a.Call("zone.update", map[string]any{"zone_id": z2, "attributes": map[string]any{"children": []int64{z0}}}),
		"", "There cannot be cycle in parent/child relationship.")
	unchanged("cycle")
	r = ok(t, a.Call("zone.read", map[string]any{"zone_id": z2}))
	r.Decode(t, &z)
	if len(z.Data.many(t, "children")) != 0 || z.Data.Attributes["version"] != 1.0 {
		t.Errorf("refused update changed z2: %s", r.Content)
	}
	// Its own child.
	modelError(t, a.Call("zone.update", map[string]any{"zone_id": z0, "attributes": map[string]any{"children": []int64{z1, z0}}}),
		"", "There cannot be cycle in parent/child relationship.")
	unchanged("own child")

	// A logical zone under a physical one, at creation and by changing a child's type.
	modelError(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "P", "type": physical, "children": []int64{z0}}}),
		"", "A logical zone cannot have physical zone as a parent")
	unchanged("logical under physical")
	modelError(t, a.Call("zone.update", map[string]any{"zone_id": child, "attributes": map[string]any{"type": logical}}),
		"", "A logical zone cannot have physical zone as a parent")
	unchanged("type change")

	// Unknown ids.
	modelError(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Q", "doors": []int64{404}}}),
		"data/attributes/doors", "Door 404 does not exist.")
	modelError(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Q", "children": []int64{405}}}),
		"data/attributes/children", "Zone 405 does not exist.")
	want(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Q", "type": "physical"}}), codeInvalidArgument)
	r = want(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Q", "doors": "all"}}), codeInvalidArgument)
	if !strings.Contains(r.StatusString, "doors") {
		t.Errorf("type error does not name the field: %q", r.StatusString)
	}
	want(t, a.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Q", "children": []any{1.5}}}), codeInvalidArgument)
	want(t, a.Call("zone.update", map[string]any{"zone_id": 999, "attributes": map[string]any{}}), codeEntityNotFound)
	r = want(t, a.Call("zone.read", map[string]any{"zone_id": 999}), codeEntityNotFound)
	if !strings.Contains(string(r.Content), `"entity_type":"zone"`) {
		t.Errorf("not found: %s", r.Content)
	}
	unchanged("unknown ids")
}

// TestZoneLinksAndCascades: doors and children kept when absent on update, replaced when
// present; deleting a zone removes its links and its places in mappings; deleting a door
// removes it from zones and mappings.
func TestZoneLinksAndCascades(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin
	d1 := s.create("door", map[string]any{"alias": "D1"})
	d2 := s.create("door", map[string]any{"alias": "D2"})
	d3 := s.create("door", map[string]any{"alias": "D3"})
	leaf := s.create("zone", map[string]any{"alias": "Leaf", "doors": []int64{d3}})
	// Leosac's web UI sends "doors": 0 when a new zone has none.
	mid := s.create("zone", map[string]any{"alias": "Mid", "doors": 0, "children": []int64{leaf}})
	top := s.create("zone", map[string]any{"alias": "Top", "doors": []int64{d1, d2, d1}, "children": []int64{mid}})

	var z struct{ Data object }
	ok(t, a.Call("zone.read", map[string]any{"zone_id": top})).Decode(t, &z)
	if !equal(z.Data.many(t, "doors"), []int64{d1, d2}) || !equal(z.Data.many(t, "children"), []int64{mid}) {
		t.Fatalf("top: %+v", z.Data)
	}
	// The door shows the zones it is in.
	var door struct{ Data object }
	ok(t, a.Call("door.read", map[string]any{"door_id": d1})).Decode(t, &door)
	if !equal(door.Data.many(t, "zones"), []int64{top}) {
		t.Errorf("zones of d1: %v", door.Data.many(t, "zones"))
	}
	// Absent lists are kept; present ones replace.
	ok(t, a.Call("zone.update", map[string]any{"zone_id": top, "attributes": map[string]any{"alias": "Top zone"}})).Decode(t, &z)
	if !equal(z.Data.many(t, "doors"), []int64{d1, d2}) || !equal(z.Data.many(t, "children"), []int64{mid}) || z.Data.Attributes["alias"] != "Top zone" {
		t.Fatalf("kept lists: %+v", z.Data)
	}
	ok(t, a.Call("zone.update", map[string]any{"zone_id": top, "attributes": map[string]any{"doors": []int64{d2}}})).Decode(t, &z)
	if !equal(z.Data.many(t, "doors"), []int64{d2}) || !equal(z.Data.many(t, "children"), []int64{mid}) {
		t.Fatalf("replaced doors: %+v", z.Data)
	}

	// Mappings naming zones and doors.
	sched := s.create("schedule", map[string]any{"name": "Cascade"})
	bob := s.addUser("bob", 0)
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": sched, "mapping": []map[string]any{
		{"alias": "mid and door", "users": []int64{bob}, "zones": []int64{mid}, "doors": []int64{d1}},
		{"alias": "mid only", "users": []int64{bob}, "zones": []int64{mid}},
		{"alias": "d2 only", "users": []int64{bob}, "doors": []int64{d2}},
	}}))
	if n := s.count(`SELECT COUNT(*) FROM mapping_zones WHERE zone_id = ?`, mid); n != 2 {
		t.Fatalf("mapping_zones: %d", n)
	}

	// Deleting Mid removes its child and parent links, its doors' links, and its mapping links;
	// the mapping whose only target it was goes too (it would otherwise target every door).
	ok(t, a.Call("zone.delete", map[string]any{"zone_id": mid}))
	for q, want := range map[string]int64{
		`SELECT COUNT(*) FROM zone_children WHERE parent_id = ? OR child_id = ?`: 0,
		`SELECT COUNT(*) FROM zone_doors WHERE zone_id = ? AND ? > 0`:            0,
		`SELECT COUNT(*) FROM mapping_zones WHERE zone_id = ? AND ? > 0`:         0,
	} {
		if n := s.count(q, mid, mid); n != want {
			t.Errorf("%s: %d", q, n)
		}
	}
	var aliases []string
	if err := s.srv.DB().Read.Raw(`SELECT alias FROM schedule_mappings WHERE schedule_id = ? ORDER BY position`, sched).Scan(&aliases).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Join(aliases, ",") != "mid and door,d2 only" {
		t.Errorf("mappings after zone delete: %v", aliases)
	}
	ok(t, a.Call("zone.read", map[string]any{"zone_id": top})).Decode(t, &z)
	if len(z.Data.many(t, "children")) != 0 {
		t.Errorf("top still has children: %+v", z.Data)
	}
	ok(t, a.Call("zone.read", map[string]any{"zone_id": leaf})).Decode(t, &z)
	if len(z.Data.many(t, "parents")) != 0 {
		t.Errorf("leaf still has parents: %+v", z.Data)
	}

	// Deleting a door removes its zone and mapping links; "d2 only" loses its only target and goes.
	ok(t, a.Call("door.delete", map[string]any{"door_id": d2}))
	if n := s.count(`SELECT COUNT(*) FROM zone_doors WHERE door_id = ?`, d2); n != 0 {
		t.Errorf("zone_doors of deleted door: %d", n)
	}
	if n := s.count(`SELECT COUNT(*) FROM mapping_doors WHERE door_id = ?`, d2); n != 0 {
		t.Errorf("mapping_doors of deleted door: %d", n)
	}
	aliases = nil
	if err := s.srv.DB().Read.Raw(`SELECT alias FROM schedule_mappings WHERE schedule_id = ? ORDER BY position`, sched).Scan(&aliases).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Join(aliases, ",") != "mid and door" {
		t.Errorf("mappings after door delete: %v", aliases)
	}
	// Deleting d1 leaves "mid and door" without any target: it goes as well, so that bob is not
	// suddenly allowed everywhere.
	ok(t, a.Call("door.delete", map[string]any{"door_id": d1}))
	if n := s.count(`SELECT COUNT(*) FROM schedule_mappings WHERE schedule_id = ?`, sched); n != 0 {
		t.Errorf("mappings left: %d", n)
	}
	bobC := wstestLogin(t, s, "bob")
	if got := ids(t, ok(t, bobC.Call("door.read", map[string]any{"door_id": 0}))); len(got) != 0 {
		t.Errorf("bob reads doors %v", got)
	}
	wantTopics := "zone.deleted,schedule.updated,door.deleted,schedule.updated,door.deleted,schedule.updated"
	got := s.topics()
	if tail := strings.Join(got[len(got)-6:], ","); tail != wantTopics {
		t.Errorf("events: %s", tail)
	}
	if n := s.count(`SELECT COUNT(*) FROM events WHERE topic = 'zone.deleted' AND kind = 'audit-zone-event' AND event_mask = ? AND before IS NOT NULL`, 1<<29); n != 1 {
		t.Errorf("zone.deleted audit: %d", n)
	}
}
