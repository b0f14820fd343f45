package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gatehouse/modules/directory"
	"gatehouse/modules/site"
)

// fixture builds an index by hand: no database, so the decision logic is tested alone.
type fixture struct {
	p    *people
	l    *layout
	pins *directory.PINHasher
	loc  *time.Location
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pins, err := directory.LoadPINHasher(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	l := &layout{schedules: map[int64]site.Frames{}, byUser: map[int64][]*site.Mapping{}, byGroup: map[int64][]*site.Mapping{},
		byCred: map[int64][]*site.Mapping{}, targets: map[int64]target{}, doors: map[int64]*door{}, doorOfAP: map[int64]int64{}}
	return &fixture{p: newPeople(), l: l, pins: pins, loc: loc}
}

func (f *fixture) door(id, ap int64) {
	f.l.doors[id] = &door{ID: id, Alias: fmt.Sprintf("Door %d", id), AccessPointID: ap}
	if ap != 0 {
		f.l.doorOfAP[ap] = id
	}
}

func (f *fixture) user(id int64, enabled bool) {
	f.p.putUser(userRow{ID: id, Username: fmt.Sprintf("u%d", id), ValidityEnabled: enabled})
}

func (f *fixture) card(id, owner int64, card string, bits int) {
	var o *int64
	if owner != 0 {
		o = &owner
	}
	f.p.putCredential(credRow{ID: id, Type: "rfid-card", OwnerID: o, CardID: card, NbBits: bits, ValidityEnabled: true})
}

// mapping adds a mapping of schedule sid (frames) for users/groups/creds to doors (none = all).
func (f *fixture) mapping(id, sid int64, frames site.Frames, users, groups, creds, doors []int64) {
	f.l.schedules[sid] = frames
	m := &site.Mapping{ID: id, ScheduleID: sid, Users: users, Groups: groups, Credentials: creds, Doors: doors}
	f.l.mappings = append(f.l.mappings, m)
	for _, u := range users {
		f.l.byUser[u] = append(f.l.byUser[u], m)
	}
	for _, g := range groups {
		f.l.byGroup[g] = append(f.l.byGroup[g], m)
	}
	for _, c := range creds {
		f.l.byCred[c] = append(f.l.byCred[c], m)
	}
	t := target{every: len(doors) == 0, doors: map[int64]bool{}}
	for _, d := range doors {
		t.doors[d] = true
	}
	f.l.targets[id] = t
}

func (f *fixture) decide(r Request) Decision { return decide(f.p, f.l, f.pins, f.loc, r) }

var allWeek = site.Frames{{Day: 0, Start: 0, End: 1439}, {Day: 1, Start: 0, End: 1439}, {Day: 2, Start: 0, End: 1439},
	{Day: 3, Start: 0, End: 1439}, {Day: 4, Start: 0, End: 1439}, {Day: 5, Start: 0, End: 1439}, {Day: 6, Start: 0, End: 1439}}

func TestDecideReasons(t *testing.T) {
	f := newFixture(t)
	f.door(1, 11)
	f.door(2, 12)
	f.user(100, true)
	f.user(101, false)
	f.card(1000, 100, "aa:bb:cc:dd", 26)
	f.card(1001, 101, "aa:bb:cc:de", 26)
	f.card(1002, 0, "aa:bb:cc:df", 26)   // unowned
	f.card(1003, 999, "aa:bb:cc:e0", 26) // owner gone
	f.p.putCredential(credRow{ID: 1004, Type: "rfid-card", OwnerID: ptr(int64(100)), CardID: "aa:bb:cc:e1", NbBits: 26})
	f.p.putCredential(credRow{ID: 1005, Type: "pin-code", OwnerID: ptr(int64(100)), PinHash: f.pins.Hash("4321"), ValidityEnabled: true})
	f.p.putCredential(credRow{ID: 1006, Type: "rfid-card-pin", OwnerID: ptr(int64(100)), CardID: "01:02:03:04", NbBits: 32,
		PinHash: f.pins.HashFor("01:02:03:04", 32, "9999"), ValidityEnabled: true})
	f.p.addMembership(100, 7)
	f.mapping(1, 1, allWeek, nil, []int64{7}, nil, []int64{1})    // group 7 → door 1
	f.mapping(2, 2, allWeek, nil, nil, []int64{1002}, []int64{1}) // unowned card → door 1
	f.mapping(3, 3, allWeek, []int64{101}, nil, nil, nil)         // disabled user → everywhere
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		r      Request
		reason string
		user   int64
	}{
		{"group grants door 1", Request{DoorID: 1, CardID: "aa:bb:cc:dd", NbBits: 26}, ReasonGranted, 100},
		{"by reader id", Request{ReaderID: 11, CardID: "aa:bb:cc:dd", NbBits: 26}, ReasonGranted, 100},
		{"no mapping for door 2", Request{DoorID: 2, CardID: "aa:bb:cc:dd", NbBits: 26}, ReasonNoSchedule, 100},
		{"unknown card", Request{DoorID: 1, CardID: "ff:ff:ff:ff", NbBits: 26}, ReasonUnknownCredential, 0},
		{"same bits other length", Request{DoorID: 1, CardID: "aa:bb:cc:dd", NbBits: 32}, ReasonUnknownCredential, 0},
		{"disabled owner", Request{DoorID: 1, CardID: "aa:bb:cc:de", NbBits: 26}, ReasonUserInvalid, 101},
		{"owner gone", Request{DoorID: 1, CardID: "aa:bb:cc:e0", NbBits: 26}, ReasonUserInvalid, 999},
		{"disabled credential", Request{DoorID: 1, CardID: "aa:bb:cc:e1", NbBits: 26}, ReasonCredentialInvalid, 100},
		{"unowned card mapped directly", Request{DoorID: 1, CardID: "aa:bb:cc:df", NbBits: 26}, ReasonGranted, 0},
		{"pin code", Request{DoorID: 1, PIN: "4321"}, ReasonGranted, 100},
		{"wrong pin", Request{DoorID: 1, PIN: "4322"}, ReasonUnknownCredential, 0},
		{"card+pin", Request{DoorID: 1, CardID: "01:02:03:04", NbBits: 32, PIN: "9999"}, ReasonGranted, 100},
		{"card+pin wrong pin names the cardholder", Request{DoorID: 1, CardID: "01:02:03:04", NbBits: 32, PIN: "9998"}, ReasonWrongPIN, 100},
		{"card+pin card alone", Request{DoorID: 1, CardID: "01:02:03:04", NbBits: 32}, ReasonPINRequired, 0},
		{"unknown door", Request{DoorID: 9, CardID: "aa:bb:cc:dd", NbBits: 26}, ReasonUnknownDoor, 0},
		{"unknown reader", Request{ReaderID: 99, CardID: "aa:bb:cc:dd", NbBits: 26}, ReasonUnknownReader, 0},
		{"bad read", Request{DoorID: 1, BadRead: true}, ReasonBadRead, 0},
		{"lockdown beats everything, naming the person", Request{DoorID: 1, CardID: "aa:bb:cc:dd", NbBits: 26, SiteMode: SiteLockdown}, ReasonLockdown, 100},
		{"lockdown beats an unlocked door", Request{DoorID: 1, CardID: "ff:ff:ff:ff", NbBits: 26, DoorMode: ModeUnlocked, SiteMode: SiteLockdown}, ReasonLockdown, 0},
		{"door locked, naming the person", Request{DoorID: 1, CardID: "aa:bb:cc:dd", NbBits: 26, DoorMode: ModeLocked}, ReasonDoorLocked, 100},
		{"door unlocked opens for anyone", Request{DoorID: 2, CardID: "ff:ff:ff:ff", NbBits: 26, DoorMode: ModeUnlocked}, ReasonUnlocked, 0},
		{"evacuation opens a locked door", Request{DoorID: 1, CardID: "ff:ff:ff:ff", NbBits: 26, DoorMode: ModeLocked, SiteMode: SiteEvacuation}, ReasonEvacuation, 0},
		{"unlocked still names the person", Request{DoorID: 2, CardID: "aa:bb:cc:dd", NbBits: 26, DoorMode: ModeUnlocked}, ReasonUnlocked, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Now = now
			d := f.decide(tc.r)
			wantGranted := slices.Contains([]string{ReasonGranted, ReasonUnlocked, ReasonEvacuation}, tc.reason)
			if d.Reason != tc.reason || d.Granted != wantGranted || d.UserID != tc.user {
				t.Errorf("got %+v, want reason %s granted %v user %d", d, tc.reason, wantGranted, tc.user)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDecideSchedules checks timeframes in the site's time zone: overnight frames, the day
// boundary (0 = Monday), and the two DST changes of Europe/Paris in 2026 (29 March 02:00 →
// 03:00, 25 October 03:00 → 02:00).
func TestDecideSchedules(t *testing.T) {
	f := newFixture(t)
	f.door(1, 0)
	f.user(100, true)
	f.card(1000, 100, "aa:bb:cc:dd", 26)
	frames := site.Frames{
		{Day: 0, Start: 8 * 60, End: 18 * 60},      // Monday 08:00–18:00
		{Day: 4, Start: 22 * 60, End: 6 * 60},      // Friday 22:00 → Saturday 06:00
		{Day: 6, Start: 1*60 + 30, End: 3*60 + 30}, // Sunday 01:30–03:30 (DST days in 2026 are Sundays)
	}
	f.mapping(1, 1, frames, []int64{100}, nil, nil, nil)
	paris := f.loc
	for _, tc := range []struct {
		at      time.Time
		granted bool
	}{
		{time.Date(2026, 11, 23, 8, 0, 0, 0, paris), true},    // Monday 08:00 local
		{time.Date(2026, 11, 23, 7, 59, 59, 0, paris), false}, // just before
		{time.Date(2026, 11, 23, 18, 0, 59, 0, paris), true},  // end minute inclusive
		{time.Date(2026, 11, 23, 18, 1, 0, 0, paris), false},
		{time.Date(2026, 11, 23, 7, 30, 0, 0, time.UTC), true}, // 08:30 in Paris (UTC+1)
		{time.Date(2026, 11, 24, 9, 0, 0, 0, paris), false},    // Tuesday
		{time.Date(2026, 11, 27, 23, 0, 0, 0, paris), true},    // Friday night
		{time.Date(2026, 11, 28, 5, 59, 0, 0, paris), true},    // Saturday early, same frame
		{time.Date(2026, 11, 28, 6, 1, 0, 0, paris), false},
		{time.Date(2026, 11, 27, 21, 59, 0, 0, paris), false},
		// Spring forward, Sunday 29 March 2026: 02:00 → 03:00. 01:45 and 03:15 exist and are in
		// the frame; the instant after 01:59:59 is 03:00.
		{time.Date(2026, 3, 29, 0, 45, 0, 0, time.UTC), true},  // 01:45 CET
		{time.Date(2026, 3, 29, 1, 15, 0, 0, time.UTC), true},  // 03:15 CEST
		{time.Date(2026, 3, 29, 1, 31, 0, 0, time.UTC), false}, // 03:31 CEST
		// Fall back, Sunday 25 October 2026: 03:00 → 02:00. 02:30 happens twice: both are in.
		{time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true},  // 02:30 CEST
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true},  // 02:30 CET
		{time.Date(2026, 10, 25, 2, 31, 0, 0, time.UTC), false}, // 03:31 CET
	} {
		d := f.decide(Request{DoorID: 1, CardID: "aa:bb:cc:dd", NbBits: 26, Now: tc.at})
		if d.Granted != tc.granted {
			t.Errorf("%v (%v local): granted %v (%s), want %v", tc.at.UTC(), tc.at.In(paris), d.Granted, d.Reason, tc.granted)
		}
		if !tc.granted && d.Reason != ReasonOutsideSchedule {
			t.Errorf("%v: reason %s, want outside_schedule", tc.at, d.Reason)
		}
	}
}

// BenchmarkDecide measures decisions on an index of 100,000 users and 200,000 credentials (two
// cards each), 1,000 doors, 100 groups and 5,000 mappings, and reports the p99 of a decision.
func BenchmarkDecide(b *testing.B) {
	f := newFixture(b)
	const users, doors, groups, mappings = 100_000, 1_000, 100, 5_000
	rng := rand.New(rand.NewPCG(1, 2))
	for d := int64(1); d <= doors; d++ {
		f.door(d, 10_000+d)
	}
	cards := make([]string, 0, 2*users)
	for u := int64(1); u <= users; u++ {
		f.user(u, true)
		f.p.addMembership(u, 1+rng.Int64N(groups))
		for k := range int64(2) {
			c := fmt.Sprintf("%02x:%02x:%02x:%02x", byte(u>>16), byte(u>>8), byte(u), byte(k))
			f.card(2*u+k, u, c, 26)
			cards = append(cards, c)
		}
	}
	for m := int64(1); m <= mappings; m++ {
		f.mapping(m, 1+m%500, site.Frames{{Day: int(m % 7), Start: 8 * 60, End: 18 * 60}},
			[]int64{1 + rng.Int64N(users), 1 + rng.Int64N(users)}, []int64{1 + rng.Int64N(groups)}, nil,
			[]int64{1 + rng.Int64N(doors), 1 + rng.Int64N(doors)})
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, f.loc)
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := Request{DoorID: 1 + rng.Int64N(doors), CardID: cards[rng.IntN(len(cards))], NbBits: 26, Now: now}
		start := time.Now()
		_ = f.decide(r)
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	p99 := durations[len(durations)*99/100]
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds()), "p50-ns")
}
