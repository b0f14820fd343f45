package site

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseAndFormatClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"08:05", 8*60 + 5, true},
		{"8:5", 8*60 + 5, true},
		{"0:0", 0, true},
		{"00:00", 0, true},
		{"23:59", 23*60 + 59, true},
		{"18:30", 18*60 + 30, true},
		{"24:00", 0, false},
		{"12:60", 0, false},
		{"-1:00", 0, false},
		{"123:00", 0, false},
		{"12:000", 0, false},
		{"12", 0, false},
		{"", 0, false},
		{"12:", 0, false},
		{":30", 0, false},
		{"ab:cd", 0, false},
		{"12:30:00", 0, false},
		{" 8:00", 0, false},
		{"８:00", 0, false}, // full-width digit
	} {
		got, err := ParseClock(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseClock(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		min  int
		want string
	}{{0, "00:00"}, {485, "08:05"}, {1439, "23:59"}, {600, "10:00"}} {
		if got := FormatClock(tc.min); got != tc.want {
			t.Errorf("FormatClock(%d) = %q, want %q", tc.min, got, tc.want)
		}
	}
}

func TestFrameContains(t *testing.T) {
	t.Parallel()
	at := func(h, m int) int { return h*60 + m }
	office := Frame{Day: 0, Start: at(8, 0), End: at(18, 0)}  // Monday 08:00–18:00
	night := Frame{Day: 4, Start: at(22, 0), End: at(6, 0)}   // Friday 22:00 → Saturday 06:00
	sunday := Frame{Day: 6, Start: at(23, 0), End: at(1, 0)}  // Sunday 23:00 → Monday 01:00
	minute := Frame{Day: 2, Start: at(12, 0), End: at(12, 0)} // Wednesday 12:00 only
	allDay := Frame{Day: 3, Start: at(0, 0), End: at(23, 59)} // Thursday, whole day
	for _, tc := range []struct {
		name   string
		f      Frame
		day, m int
		want   bool
	}{
		{"start inclusive", office, 0, at(8, 0), true},
		{"end inclusive", office, 0, at(18, 0), true},
		{"before start", office, 0, at(7, 59), false},
		{"after end", office, 0, at(18, 1), false},
		{"other day", office, 1, at(9, 0), false},
		{"overnight evening", night, 4, at(23, 30), true},
		{"overnight start", night, 4, at(22, 0), true},
		{"overnight before start", night, 4, at(21, 59), false},
		{"overnight next morning", night, 5, at(5, 59), true},
		{"overnight next morning end", night, 5, at(6, 0), true},
		{"overnight next morning after", night, 5, at(6, 1), false},
		{"overnight same-day morning", night, 4, at(3, 0), false},
		{"overnight next evening", night, 5, at(23, 0), false},
		{"sunday wraps to monday", sunday, 0, at(0, 30), true},
		{"sunday late", sunday, 6, at(23, 59), true},
		{"sunday frame not saturday", sunday, 5, at(0, 30), false},
		{"one minute", minute, 2, at(12, 0), true},
		{"one minute after", minute, 2, at(12, 1), false},
		{"whole day start", allDay, 3, 0, true},
		{"whole day end", allDay, 3, at(23, 59), true},
		{"whole day next", allDay, 4, 0, false},
	} {
		if got := tc.f.Contains(tc.day, tc.m); got != tc.want {
			t.Errorf("%s: %+v.Contains(%d, %d) = %v, want %v", tc.name, tc.f, tc.day, tc.m, got, tc.want)
		}
	}
	if !(Frames{office, night}).Contains(5, at(1, 0)) || (Frames{office, night}).Contains(1, at(9, 0)) {
		t.Error("Frames.Contains")
	}
	// Weekday numbering: 2024-01-01 was a Monday.
	mon := time.Date(2024, 1, 1, 8, 30, 0, 0, time.UTC)
	if Weekday(mon) != 0 || Weekday(mon.AddDate(0, 0, 6)) != 6 {
		t.Errorf("Weekday: %d %d", Weekday(mon), Weekday(mon.AddDate(0, 0, 6)))
	}
	if !office.ContainsTime(mon) || office.ContainsTime(mon.Add(10*time.Hour)) {
		t.Error("ContainsTime")
	}
	// Wall clock in the site's zone, across a DST change (Europe/Paris, 2024-03-31 02:00 → 03:00).
	if loc, err := time.LoadLocation("Europe/Paris"); err == nil {
		sun := Frame{Day: 6, Start: at(3, 0), End: at(3, 30)}
		if !sun.ContainsTime(time.Date(2024, 3, 31, 1, 15, 0, 0, time.UTC).In(loc)) { // 03:15 CEST
			t.Error("DST: 03:15 local not covered")
		}
	}
}

func TestFrameJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Frames{{Day: 1, Start: 485, End: 1110}})
	if err != nil || string(b) != `[{"day":1,"start-time":"08:05","end-time":"18:30"}]` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var fs Frames
	if err := json.Unmarshal(b, &fs); err != nil || len(fs) != 1 || fs[0] != (Frame{Day: 1, Start: 485, End: 1110}) {
		t.Fatalf("unmarshal: %+v %v", fs, err)
	}
	frames, errs := parseFrames([]frameInput{{Day: ptr(7), Start: ptr("8:0"), End: ptr("25:00")}, {Day: ptr(0), Start: ptr("8:5"), End: ptr("7:00")}})
	if len(errs) != 2 || errs[0].Pointer != "data/attributes/timeframes/0/day" || errs[1].Pointer != "data/attributes/timeframes/0/end-time" ||
		errs[1].Detail != "Invalid time 25:00 (use HH:MM)." {
		t.Fatalf("errors: %+v", errs)
	}
	if frames[1] != (Frame{Day: 0, Start: 485, End: 420}) || !frames[1].Overnight() {
		t.Fatalf("frames: %+v", frames)
	}
}

func ptr[T any](v T) *T { return &v }

func TestCheckZoneGraph(t *testing.T) {
	t.Parallel()
	P, L := ZonePhysical, ZoneLogical
	for _, tc := range []struct {
		name     string
		types    map[int64]ZoneType
		children map[int64][]int64
		want     string
	}{
		{"empty", nil, nil, ""},
		{"tree", map[int64]ZoneType{1: P, 2: P, 3: P, 4: L}, map[int64][]int64{1: {2, 3}, 4: {1, 2}}, ""},
		{"self", map[int64]ZoneType{1: L}, map[int64][]int64{1: {1}}, msgZoneCycle},
		{"cycle of three", map[int64]ZoneType{1: L, 2: L, 3: L}, map[int64][]int64{1: {2}, 2: {3}, 3: {1}}, msgZoneCycle},
		{"physical cycle", map[int64]ZoneType{1: P, 2: P}, map[int64][]int64{1: {2}, 2: {1}}, msgZoneCycle},
		{"diamond is no cycle", map[int64]ZoneType{1: L, 2: L, 3: L, 4: P}, map[int64][]int64{1: {2, 3}, 2: {4}, 3: {4}}, ""},
		{"two physical parents", map[int64]ZoneType{1: P, 2: P, 3: P}, map[int64][]int64{1: {3}, 2: {3}}, msgZoneTwoPhysical},
		{"physical + logical parent", map[int64]ZoneType{1: P, 2: L, 3: P}, map[int64][]int64{1: {3}, 2: {3}}, ""},
		{"logical under physical", map[int64]ZoneType{1: P, 2: L}, map[int64][]int64{1: {2}}, msgZoneLogicalInPhysical},
		{"logical under logical", map[int64]ZoneType{1: L, 2: L}, map[int64][]int64{1: {2}}, ""},
	} {
		fe := CheckZoneGraph(tc.types, tc.children)
		got := ""
		if fe != nil {
			got = fe.Detail
			if fe.Pointer != "" {
				t.Errorf("%s: pointer %q", tc.name, fe.Pointer)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMappingSemantics(t *testing.T) {
	t.Parallel()
	// Zones: 10 ⊃ {11, 12}, 11 ⊃ {13}; doors: 10:{1}, 11:{2}, 12:{3}, 13:{4}; 20:{5}.
	tree := NewZoneTree(map[int64][]int64{10: {11, 12}, 11: {13}}, map[int64][]int64{10: {1}, 11: {2}, 12: {3}, 13: {4}, 20: {5}})
	for _, tc := range []struct {
		name  string
		m     Mapping
		doors []int64
		every bool
	}{
		{"doors only", Mapping{Doors: []int64{7, 9}}, []int64{7, 9}, false},
		{"zone walks descendants", Mapping{Zones: []int64{11}}, []int64{2, 4}, false},
		{"root zone", Mapping{Zones: []int64{10}}, []int64{1, 2, 3, 4}, false},
		{"doors and zones", Mapping{Doors: []int64{9}, Zones: []int64{20}}, []int64{5, 9}, false},
		{"unknown zone", Mapping{Zones: []int64{99}}, []int64{}, false},
		{"nothing = every door", Mapping{}, nil, true},
	} {
		got, every := tree.Targets(&tc.m)
		if every != tc.every || len(got) != len(tc.doors) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, keys(got), every, tc.doors, tc.every)
			continue
		}
		for _, d := range tc.doors {
			if !got[d] {
				t.Errorf("%s: door %d missing from %v", tc.name, d, keys(got))
			}
		}
	}
	// A cyclic tree (refused by the rules, but never an endless walk).
	cyc := NewZoneTree(map[int64][]int64{1: {2}, 2: {1}}, map[int64][]int64{2: {8}})
	if d := cyc.DoorsUnder(1); len(d) != 1 || !d[8] {
		t.Errorf("cycle: %v", d)
	}

	m := &Mapping{Users: []int64{3}, Groups: []int64{40}, Credentials: []int64{500}}
	for _, tc := range []struct {
		s    Subject
		want bool
	}{
		{Subject{UserID: 3}, true},
		{Subject{UserID: 4}, false},
		{Subject{UserID: 4, Groups: map[int64]bool{40: true}}, true},
		{Subject{UserID: 4, Groups: map[int64]bool{41: true}}, false},
		{Subject{Credentials: map[int64]bool{500: true}}, true},
		{Subject{Credentials: map[int64]bool{501: true}}, false},
		{Subject{}, false},
	} {
		if got := m.AppliesTo(tc.s); got != tc.want {
			t.Errorf("AppliesTo(%+v) = %v", tc.s, got)
		}
	}
	p := &People{GroupMembers: map[int64][]int64{40: {5, 6}}, CredentialOwner: map[int64]int64{500: 7}}
	if got := keys(p.Users(&Mapping{Users: []int64{3}, Groups: []int64{40}, Credentials: []int64{500, 501}})); len(got) != 4 ||
		got[0] != 3 || got[1] != 5 || got[2] != 6 || got[3] != 7 {
		t.Errorf("People.Users = %v", got)
	}
}
