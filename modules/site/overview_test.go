package site_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
)

type doorUsers struct {
	DoorID  int64   `json:"door_id"`
	UserIDs []int64 `json:"user_ids"`
}

// TestAccessOverview: who could ever open each door, through users, groups, owned credentials,
// zone trees and mappings without targets.
func TestAccessOverview(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin

	if r := ok(t, a.Call("access_overview", map[string]any{})); string(r.Content) != "[]" {
		t.Fatalf("empty overview: %s", r.Content)
	}

	u1 := s.addUser("u1", core.RankUser)
	u2 := s.addUser("u2", core.RankUser)
	u3 := s.addUser("u3", core.RankUser)
	u4 := s.addUser("u4", core.RankUser)
	u5 := s.addUser("u5", core.RankUser)
	g := s.group("Group", u2)
	card := s.addCredential("u3 card", u3)
	ownerless := s.addCredential("lost card", 0)
	d := make([]int64, 5)
	for i := range d {
		d[i] = s.create("door", map[string]any{"alias": fmt.Sprint("D", i)})
	}
	child := s.create("zone", map[string]any{"alias": "Child", "doors": []int64{d[2]}})
	top := s.create("zone", map[string]any{"alias": "Top", "doors": []int64{d[1]}, "children": []int64{child}})
	empty := s.create("zone", map[string]any{"alias": "Empty"})
	sched := s.create("schedule", map[string]any{"name": "All", "timeframes": []map[string]any{{"day": 0, "start-time": "00:00", "end-time": "00:01"}}})
	ok(t, a.Call("schedule.update", map[string]any{"schedule_id": sched, "mapping": []map[string]any{
		{"alias": "u1 at d0", "users": []int64{u1}, "doors": []int64{d[0]}},
		{"alias": "group in top", "groups": []int64{g}, "zones": []int64{top}},
		{"alias": "card at d3", "credentials": []int64{card}, "doors": []int64{d[3]}},
		{"alias": "u4 everywhere", "users": []int64{u4}},
		{"alias": "u5 in an empty zone", "users": []int64{u5}, "zones": []int64{empty}},
		{"alias": "lost card everywhere", "credentials": []int64{ownerless}},
		{"alias": "u1 again at d0 and d1", "users": []int64{u1}, "doors": []int64{d[0], d[1]}},
	}}))

	var got []doorUsers
	ok(t, a.Call("access_overview", map[string]any{})).Decode(t, &got)
	wantOverview := []doorUsers{
		{d[0], []int64{u1, u4}},
		{d[1], []int64{u1, u2, u4}},
		{d[2], []int64{u2, u4}},
		{d[3], []int64{u3, u4}},
		{d[4], []int64{u4}},
	}
	if fmt.Sprint(got) != fmt.Sprint(wantOverview) {
		t.Errorf("overview\n got %v\nwant %v", got, wantOverview)
	}

	// A viewer may see it; nobody's list is null.
	v, _ := s.login("viewer", core.RankViewer)
	r := ok(t, v.Call("access_overview", map[string]any{}))
	if strings.Contains(string(r.Content), "null") {
		t.Errorf("null in overview: %s", r.Content)
	}
}

// TestSearches: case-insensitive in every script, "%" lists all, [] when nothing matches, at
// most 100 results ordered by id, item shapes as Leosac's.
func TestSearches(t *testing.T) {
	t.Parallel()
	s := start(t)
	a := s.admin
	e1 := s.create("door", map[string]any{"alias": "Entrée principale"})
	e2 := s.create("door", map[string]any{"alias": "ENTRÉE de service"})
	s.create("door", map[string]any{"alias": "Sortie"})
	z := s.create("zone", map[string]any{"alias": "Bâtiment Ärzte"})
	s.create("zone", map[string]any{"alias": "Garage"})
	ap := s.create("access_point", map[string]any{"alias": "Lecteur Ω", "controller-module": "simulator"})
	sc := s.create("schedule", map[string]any{"name": "Office.Hours"})

	for _, tc := range []struct {
		typ, query string
		want       string
	}{
		{"search.door_alias", "entrée", fmt.Sprintf(`[{"id":%d,"alias":"Entrée principale"},{"id":%d,"alias":"ENTRÉE de service"}]`, e1, e2)},
		{"search.door_alias", "ÉE", fmt.Sprintf(`[{"id":%d,"alias":"Entrée principale"},{"id":%d,"alias":"ENTRÉE de service"}]`, e1, e2)},
		{"search.door_alias", "zzz", `[]`},
		{"search.zone_alias", "ärz", fmt.Sprintf(`[{"id":%d,"alias":"Bâtiment Ärzte"}]`, z)},
		{"search.zone_alias", "BÂT", fmt.Sprintf(`[{"id":%d,"alias":"Bâtiment Ärzte"}]`, z)},
		{"search.zone_alias", "nothing", `[]`},
		{"search.access_point_alias", "ω", fmt.Sprintf(`[{"id":%d,"alias":"Lecteur Ω"}]`, ap)},
		{"search.schedule_name", "hours", fmt.Sprintf(`[{"id":%d,"name":"Office.Hours"}]`, sc)},
		{"search.schedule_name", "nothing", `[]`},
	} {
		if r := ok(t, a.Call(tc.typ, map[string]any{"partial_name": tc.query})); string(r.Content) != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.typ, tc.query, r.Content, tc.want)
		}
	}
	var all []struct{ ID int64 }
	ok(t, a.Call("search.door_alias", map[string]any{"partial_name": "%"})).Decode(t, &all)
	if len(all) != 3 {
		t.Errorf("%% lists %d doors", len(all))
	}
	want(t, a.Call("search.door_alias", map[string]any{}), codeInvalidArgument)
	want(t, a.Call("search.door_alias", map[string]any{"partial_name": 3}), codeInvalidArgument)

	// At most 100, ordered by id.
	err := s.srv.DB().Write.Transaction(func(tx *gorm.DB) error {
		for i := range 120 {
			if err := tx.Exec(`INSERT INTO doors(alias, alias_fold, created_at, updated_at) VALUES (?, ?, datetime('now'), datetime('now'))`,
				fmt.Sprint("bulk ", i), fmt.Sprint("bulk ", i)).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all = nil
	ok(t, a.Call("search.door_alias", map[string]any{"partial_name": "BULK"})).Decode(t, &all)
	if len(all) != 100 {
		t.Fatalf("bulk search: %d results", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("not ordered by id: %v", all)
		}
	}
}

// TestLargeSite checks that the reads that join everything stay fast with 1,000 doors and
// 5,000 mappings.
func TestLargeSite(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a timing test: not in -short runs nor under the race detector")
	}
	t.Parallel()
	s := start(t)
	const (
		nDoors     = 1000
		nZones     = 100
		nUsers     = 2000
		nGroups    = 100
		nSchedules = 500
		nMappings  = 5000
	)
	now := time.Now().UTC()
	rows := func(tx *gorm.DB, table, cols string, n int, row func(i int) []any) error {
		width := strings.Count(cols, ",") + 1
		ph := "(" + strings.TrimSuffix(strings.Repeat("?,", width), ",") + ")"
		for start := 0; start < n; start += 300 {
			end := min(n, start+300)
			var args []any
			for i := start; i < end; i++ {
				args = append(args, row(i)...)
			}
			stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", table, cols, strings.TrimSuffix(strings.Repeat(ph+",", end-start), ","))
			if err := tx.Exec(stmt, args...).Error; err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	}
	var mappingDoors [][]any
	for m := 1; m <= nMappings; m++ {
		if m%5 == 0 || m%97 == 0 {
			continue
		}
		for k := range 3 {
			mappingDoors = append(mappingDoors, []any{m, (m*13+k*337)%nDoors + 1})
		}
	}
	err := s.srv.DB().Write.Transaction(func(tx *gorm.DB) error {
		// Ids follow insertion order in fresh tables (the admin is user 1).
		steps := []error{
			rows(tx, "doors", "alias, alias_fold, created_at, updated_at", nDoors, func(i int) []any {
				return []any{fmt.Sprint("door ", i), fmt.Sprint("door ", i), now, now}
			}),
			rows(tx, "zones", "alias, alias_fold, type, created_at, updated_at", nZones, func(i int) []any {
				return []any{fmt.Sprint("zone ", i), fmt.Sprint("zone ", i), 1, now, now}
			}),
			rows(tx, "zone_children", "parent_id, child_id", nZones-1, func(i int) []any { return []any{(i+1)/2 + 1, i + 2} }),
			rows(tx, "zone_doors", "zone_id, door_id", nDoors, func(i int) []any { return []any{i%nZones + 1, i + 1} }),
			rows(tx, "users", "username, created_at, updated_at", nUsers, func(i int) []any { return []any{fmt.Sprint("user", i), now, now} }),
			rows(tx, "groups", "name, name_fold, created_at, updated_at", nGroups, func(i int) []any {
				return []any{fmt.Sprint("group", i), fmt.Sprint("group", i), now, now}
			}),
			rows(tx, "memberships", "user_id, group_id, created_at", nUsers, func(i int) []any { return []any{i + 2, i%nGroups + 1, now} }),
			rows(tx, "schedules", "name, name_fold, created_at, updated_at", nSchedules, func(i int) []any {
				return []any{fmt.Sprint("sched", i), fmt.Sprint("sched", i), now, now}
			}),
			rows(tx, "schedule_mappings", "schedule_id, alias, position", nMappings, func(i int) []any {
				return []any{i%nSchedules + 1, fmt.Sprint("m", i), i / nSchedules}
			}),
			rows(tx, "mapping_users", "mapping_id, user_id", nMappings*2, func(i int) []any { return []any{i/2 + 1, (i*7)%nUsers + 2} }),
			rows(tx, "mapping_groups", "mapping_id, group_id", nMappings, func(i int) []any { return []any{i + 1, i%nGroups + 1} }),
			// Most mappings name 3 doors, every 5th a zone instead, every 97th nothing (every door).
			rows(tx, "mapping_doors", "mapping_id, door_id", len(mappingDoors), func(i int) []any { return mappingDoors[i] }),
		}
		for _, err := range steps {
			if err != nil {
				return err
			}
		}
		for m := 5; m <= nMappings; m += 5 {
			if m%97 == 0 {
				continue
			}
			if err := tx.Exec(`INSERT INTO mapping_zones(mapping_id, zone_id) VALUES (?, ?)`, m, m%nZones+1).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	// A user of rank "user" in group 1 (which is in 50 mappings).
	bob, bobID := s.login("bob", core.RankUser)
	if err := s.srv.DB().Write.Exec(`INSERT INTO memberships(user_id, group_id, created_at) VALUES (?, 1, ?)`, bobID, now).Error; err != nil {
		t.Fatal(err)
	}

	a := s.admin
	for _, call := range []struct {
		typ     string
		content map[string]any
	}{
		{"access_overview", map[string]any{}},
		{"door.read", map[string]any{"door_id": 0}},
		{"schedule.read", map[string]any{"schedule_id": 0}},
		{"zone.read", map[string]any{"zone_id": 0}},
	} {
		begin := time.Now()
		r := ok(t, a.Call(call.typ, call.content))
		took := time.Since(begin)
		t.Logf("%s: %v, %d KiB", call.typ, took, len(r.Content)/1024)
		if took > 2*time.Second {
			t.Errorf("%s took %v", call.typ, took)
		}
	}
	for _, typ := range []string{"door.read", "schedule.read"} {
		begin := time.Now()
		r := ok(t, bob.Call(typ, map[string]any{}))
		t.Logf("%s as a user: %v, %d KiB", typ, time.Since(begin), len(r.Content)/1024)
	}
	var overview []doorUsers
	ok(t, a.Call("access_overview", map[string]any{})).Decode(t, &overview)
	if len(overview) != nDoors || len(overview[0].UserIDs) == 0 {
		t.Fatalf("overview: %d doors", len(overview))
	}
}
