package site_test

import (
	"fmt"
	"strings"
	"testing"

	sitemod "gatehouse/modules/site"
)

// TestStoredStringsAreBounded (issue 10, point 5): every string the site stores — aliases,
// descriptions, an access point's config, mapping aliases — and the schedule lists have a
// limit; beyond it the call is a MODEL_EXCEPTION pointing at the field and nothing is stored
// (no row changes, no audit entry).
func TestStoredStringsAreBounded(t *testing.T) {
	t.Parallel()
	s := start(t)
	ap := s.create("access_point", map[string]any{"alias": "ap", "controller-module": "simulator"})
	door := s.create("door", map[string]any{"alias": "Front"})
	zone := s.create("zone", map[string]any{"alias": "Wing"})
	sched := s.create("schedule", map[string]any{"name": "office"})

	huge := strings.Repeat("x", 20<<10)
	long := func(n int) string { return strings.Repeat("é", n) }
	bigConfig := `{"k":"` + strings.Repeat("y", 16<<10) + `"}`
	var frames []map[string]any
	for i := range sitemod.MaxTimeframes + 1 {
		frames = append(frames, map[string]any{"day": i % 7, "start-time": "08:00", "end-time": "09:00"})
	}
	cases := []struct {
		name    string
		typ     string
		content map[string]any
		pointer string
		detail  string
	}{
		{"door alias", "door.create", map[string]any{"attributes": map[string]any{"alias": long(51)}}, "data/attributes/alias", "Alias must not be longer than 50."},
		{"door description", "door.update", map[string]any{"door_id": door, "attributes": map[string]any{"description": huge}}, "data/attributes/description", "Description must not be longer than 1000."},
		{"zone alias", "zone.create", map[string]any{"attributes": map[string]any{"alias": huge}}, "data/attributes/alias", "Alias must not be longer than 50."},
		{"zone description", "zone.update", map[string]any{"zone_id": zone, "attributes": map[string]any{"description": long(1001)}}, "data/attributes/description", "Description must not be longer than 1000."},
		{"access point alias", "access_point.create", map[string]any{"attributes": map[string]any{"alias": huge, "controller-module": "simulator"}}, "data/attributes/alias", "Alias must not be longer than 50."},
		{"access point config", "access_point.update", map[string]any{"access_point_id": ap, "attributes": map[string]any{"config": map[string]any{"k": huge}}}, "data/attributes/config", "Config must not be longer than 16384 bytes."},
		{"access point config at creation", "access_point.create", map[string]any{"attributes": map[string]any{"alias": "ap2", "controller-module": "simulator", "config": jsonRaw(bigConfig)}}, "data/attributes/config", "Config must not be longer than 16384 bytes."},
		{"schedule description", "schedule.update", map[string]any{"schedule_id": sched, "attributes": map[string]any{"description": huge}}, "data/attributes/description", "Description must not be longer than 1000."},
		{"mapping alias", "schedule.update", map[string]any{"schedule_id": sched, "attributes": map[string]any{},
			"mapping": []map[string]any{{"alias": "ok"}, {"alias": huge}}}, "mapping/1/alias", "Alias must not be longer than 50."},
		{"timeframes", "schedule.update", map[string]any{"schedule_id": sched, "attributes": map[string]any{"timeframes": frames}}, "data/attributes/timeframes",
			fmt.Sprintf("A schedule has at most %d timeframes.", sitemod.MaxTimeframes)},
		{"mappings", "schedule.update", map[string]any{"schedule_id": sched, "attributes": map[string]any{},
			"mapping": make([]map[string]any, sitemod.MaxMappings+1)}, "mapping", fmt.Sprintf("A schedule has at most %d mappings.", sitemod.MaxMappings)},
	}
	before := s.topics()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			modelError(t, s.admin.Call(tc.typ, tc.content), tc.pointer, tc.detail)
		})
	}
	if after := s.topics(); len(after) != len(before) {
		t.Errorf("refused calls were audited: %v", after[len(before):])
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM doors WHERE length(alias) > 50 OR length(description) > 1000`,
		`SELECT COUNT(*) FROM zones WHERE length(alias) > 50 OR length(description) > 1000`,
		`SELECT COUNT(*) FROM access_points WHERE length(alias) > 50 OR length(config) > 16384 OR alias = 'ap2'`,
		`SELECT COUNT(*) FROM schedules WHERE length(description) > 1000 OR length(timeframes) > 2`,
		`SELECT COUNT(*) FROM schedule_mappings`,
	} {
		if n := s.count(q); n != 0 {
			t.Errorf("%s: %d rows stored", q, n)
		}
	}
	// At the limits, it is stored.
	ok(t, s.admin.Call("door.update", map[string]any{"door_id": door, "attributes": map[string]any{"alias": long(50), "description": long(1000)}}))
	ok(t, s.admin.Call("access_point.update", map[string]any{"access_point_id": ap, "attributes": map[string]any{"config": map[string]any{"k": strings.Repeat("y", 16<<10-8)}}}))
}

// jsonRaw is a JSON value sent as is.
type jsonRaw string

// MarshalJSON implements json.Marshaler.
func (r jsonRaw) MarshalJSON() ([]byte, error) { return []byte(r), nil }
