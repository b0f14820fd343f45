package door_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"gatehouse/modules/doorman/door"
)

// step is one scripted input of a scenario and what it must produce.
type step struct {
	at   int64    // ms after t0
	do   string   // see do()
	want []string // formatted effects, in order (see format)
	err  error    // expected error (errors.Is), nil for none
	// state, when set, is the formatted State after the step (see formatState).
	state string
	// next, when set, is NextDeadline after the step in ms after t0; -1 means none.
	next int64
}

type scenario struct {
	name  string
	cfg   *door.Config // nil = stdConfig
	steps []step
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg := stdConfig
			if sc.cfg != nil {
				cfg = *sc.cfg
			}
			d := newDoor(t, cfg)
			for i, st := range sc.steps {
				got, err := do(t, d, at(st.at), st.do)
				if !errors.Is(err, st.err) || (err == nil) != (st.err == nil) {
					t.Fatalf("step %d (%s @%d): err = %v, want %v", i, st.do, st.at, err, st.err)
				}
				if g := formatAll(got); !slices.Equal(g, st.want) {
					t.Fatalf("step %d (%s @%d): effects\n got %q\nwant %q", i, st.do, st.at, g, st.want)
				}
				if st.state != "" {
					if g := formatState(d.State()); g != st.state {
						t.Fatalf("step %d (%s @%d): state %q, want %q", i, st.do, st.at, g, st.state)
					}
				}
				switch {
				case st.next == -1:
					if nd := d.NextDeadline(); !nd.IsZero() {
						t.Fatalf("step %d (%s @%d): NextDeadline = %d, want none", i, st.do, st.at, msOf(nd))
					}
				case st.next != 0:
					if nd := d.NextDeadline(); nd.IsZero() || msOf(nd) != st.next {
						t.Fatalf("step %d (%s @%d): NextDeadline = %v (%d), want %d", i, st.do, st.at, nd, msOf(nd), st.next)
					}
				}
			}
		})
	}
}

func TestDoorScenarios(t *testing.T) {
	noExit := door.Config{ContactSensor: true}
	noDebounce := door.Config{ContactSensor: true, Debounce: -1}
	runScenarios(t, []scenario{
		{name: "grant open close relocks on close", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}, state: "closed released normal", next: 5000},
			{at: 1000, do: "open", next: 1100},
			{at: 1100, do: "tick", want: []string{"opened@1000 granted"}, state: "open released normal", next: 5000},
			{at: 3000, do: "close", next: 3100},
			{at: 3100, do: "tick", want: []string{"closed@3000 2000ms", "lock@3100"}, state: "closed locked normal", next: -1},
			{at: 9000, do: "tick"},
		}},
		{name: "grant not used: window expires and relocks", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 4999, do: "tick", state: "closed released normal", next: 5000},
			{at: 5000, do: "tick", want: []string{"lock@5000"}, state: "closed locked normal", next: -1},
			{at: 5000, do: "tick"},
			{at: 9000, do: "tick"},
		}},
		{name: "tick late processes the deadline at its own time", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 1000, do: "open"},
			{at: 60000, do: "tick", want: []string{"opened@1000 granted", "lock@5000", "held_open@31000 30000ms"}, state: "open locked normal held"},
		}},
		{name: "forced open stays in alarm until closed", steps: []step{
			{at: 0, do: "open", next: 100},
			{at: 100, do: "tick", want: []string{"opened@0 forced", "forced@0 normal"}, state: "open locked normal forced", next: 30000},
			{at: 5000, do: "grant", want: []string{"release@5000 until=10000"}, state: "open released normal forced"},
			{at: 6000, do: "close"},
			{at: 6100, do: "tick", want: []string{"closed@6000 6000ms forced", "lock@6100"}, state: "closed locked normal", next: -1},
		}},
		{name: "forced alarm survives a mode change to unlocked", steps: []step{
			{at: 0, do: "open"},
			{at: 100, do: "tick", want: []string{"opened@0 forced", "forced@0 normal"}},
			{at: 200, do: "mode=unlocked", want: []string{"mode@200 unlocked/unlocked/normal", "release@200 forever"}, state: "open released unlocked forced"},
			{at: 300, do: "close"},
			{at: 400, do: "tick", want: []string{"closed@300 300ms forced"}, state: "closed released unlocked"},
		}},
		{name: "forced and held open together", steps: []step{
			{at: 0, do: "open"},
			{at: 100, do: "tick", want: []string{"opened@0 forced", "forced@0 normal"}},
			{at: 30000, do: "tick", want: []string{"held_open@30000 30000ms"}, state: "open locked normal forced held"},
			{at: 31000, do: "close"},
			{at: 31100, do: "tick", want: []string{"closed@31000 31000ms forced held_open"}, state: "closed locked normal"},
		}},
		{name: "held open once per opening, not forced past the window", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 500, do: "open"},
			{at: 600, do: "tick", want: []string{"opened@500 granted"}, next: 5000},
			{at: 5000, do: "tick", want: []string{"lock@5000"}, state: "open locked normal", next: 30500},
			{at: 30499, do: "tick"},
			{at: 30500, do: "tick", want: []string{"held_open@30500 30000ms"}, state: "open locked normal held", next: -1},
			{at: 40000, do: "tick"},
			{at: 41000, do: "close", next: 41100},
			{at: 41100, do: "tick", want: []string{"closed@41000 40500ms held_open"}, state: "closed locked normal"},
			// The next opening gets its own held_open.
			{at: 50000, do: "grant", want: []string{"release@50000 until=55000"}},
			{at: 50100, do: "open"},
			{at: 80100, do: "tick", want: []string{"opened@50100 granted", "lock@55000", "held_open@80100 30000ms"}},
		}},
		{name: "held open disabled", cfg: &door.Config{ContactSensor: true, HeldOpenAfter: -1}, steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 500, do: "open"},
			{at: 5000, do: "tick", want: []string{"opened@500 granted", "lock@5000"}, next: -1},
			{at: 900000, do: "tick", state: "open locked normal"},
		}},
		{name: "exit request releases and is reported", steps: []step{
			{at: 0, do: "exit", want: []string{"release@0 until=5000"}, next: 5000},
			{at: 200, do: "open"},
			{at: 300, do: "tick", want: []string{"opened@200 exit"}},
			{at: 1000, do: "close"},
			{at: 1100, do: "tick", want: []string{"closed@1000 800ms", "lock@1100"}, next: -1},
		}},
		{name: "exit request without exit button is refused", cfg: &noExit, steps: []step{
			{at: 0, do: "exit", err: door.ErrNoExitButton, state: "closed locked normal", next: -1},
		}},
		{name: "operator open is reported manual", steps: []step{
			{at: 0, do: "manual", want: []string{"release@0 until=5000"}},
			{at: 100, do: "open"},
			{at: 200, do: "tick", want: []string{"opened@100 manual"}},
		}},
		{name: "overlapping windows report every cause", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 1000, do: "exit", want: []string{"release@1000 until=6000"}},
			{at: 1500, do: "open"},
			{at: 1600, do: "tick", want: []string{"opened@1500 granted exit"}},
		}},
		{name: "grant while already open: no second opened", steps: []step{
			{at: 0, do: "exit", want: []string{"release@0 until=5000"}},
			{at: 100, do: "open"},
			{at: 200, do: "tick", want: []string{"opened@100 exit"}},
			{at: 5000, do: "tick", want: []string{"lock@5000"}},
			{at: 6000, do: "grant", want: []string{"release@6000 until=11000"}, state: "open released normal"},
			{at: 7000, do: "close"},
			{at: 7100, do: "tick", want: []string{"closed@7000 6900ms", "lock@7100"}, next: -1},
		}},
		{name: "second grant extends the window", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 3000, do: "grant", want: []string{"release@3000 until=8000"}, next: 8000},
			{at: 5000, do: "tick"},
			{at: 8000, do: "tick", want: []string{"lock@8000"}},
		}},
		{name: "opening just before the window ends is not forced", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 4950, do: "open", next: 5000},
			{at: 5000, do: "tick", want: []string{"lock@5000"}, next: 5050},
			{at: 5050, do: "tick", want: []string{"opened@4950 granted"}, state: "open locked normal"},
		}},
		{name: "a grant after the door closed keeps its window", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 100, do: "open"},
			{at: 200, do: "tick", want: []string{"opened@100 granted"}},
			{at: 5000, do: "tick", want: []string{"lock@5000"}},
			{at: 10000, do: "close"},
			{at: 10050, do: "grant", want: []string{"release@10050 until=15050"}},
			{at: 10100, do: "tick", want: []string{"closed@10000 9900ms"}, state: "closed released normal", next: 15050},
			{at: 15050, do: "tick", want: []string{"lock@15050"}},
		}},
		{name: "closing just before the held-open limit raises no alarm", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 0, do: "open"},
			{at: 5000, do: "tick", want: []string{"opened@0 granted", "lock@5000"}, next: 30000},
			{at: 29950, do: "close", next: 30050},
			{at: 30100, do: "tick", want: []string{"closed@29950 29950ms"}, state: "closed locked normal"},
		}},
		{name: "a bounce at the held-open limit delays the alarm, not loses it", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 0, do: "open"},
			{at: 5000, do: "tick", want: []string{"opened@0 granted", "lock@5000"}},
			{at: 29950, do: "close"},
			{at: 30020, do: "open", want: []string{"held_open@30020 30020ms"}, state: "open locked normal held"},
		}},
		{name: "debounce disabled confirms at once", cfg: &noDebounce, steps: []step{
			{at: 0, do: "open", want: []string{"opened@0 forced", "forced@0 normal"}},
			{at: 10, do: "close", want: []string{"closed@10 10ms forced"}, next: -1},
		}},
		{name: "repeated identical contact readings are ignored", steps: []step{
			{at: 0, do: "open", next: 100},
			{at: 50, do: "open", next: 100},
			{at: 100, do: "open", want: []string{"opened@0 forced", "forced@0 normal"}},
			{at: 150, do: "open"},
		}},
		{name: "time going backwards is ignored safely", steps: []step{
			{at: 10000, do: "grant", want: []string{"release@10000 until=15000"}},
			{at: 5000, do: "tick", state: "closed released normal", next: 15000},
			{at: 3000, do: "grant", next: 15000}, // processed at 10000: same window
			{at: 2000, do: "open", next: 10100},  // processed at 10000
			{at: 10100, do: "tick", want: []string{"opened@10000 granted"}},
			{at: 1, do: "close", next: 10200}, // processed at 10100
			{at: 10200, do: "tick", want: []string{"closed@10100 100ms", "lock@10200"}, next: -1},
		}},
	})
}

func TestModes(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "unlocked: no credential needed, never forced, no held open", steps: []step{
			{at: 0, do: "mode=unlocked", want: []string{"mode@0 unlocked/unlocked/normal", "release@0 forever"}, state: "closed released unlocked", next: -1},
			{at: 1000, do: "open"},
			{at: 1100, do: "tick", want: []string{"opened@1000"}, next: -1},
			{at: 100000, do: "tick", state: "open released unlocked"},
			{at: 101000, do: "close"},
			{at: 101100, do: "tick", want: []string{"closed@101000 100000ms"}, state: "closed released unlocked"},
			{at: 102000, do: "mode=normal", want: []string{"mode@102000 normal/normal/normal", "lock@102000"}, state: "closed locked normal"},
		}},
		{name: "unlocked to normal while open restarts the held-open delay", steps: []step{
			{at: 0, do: "mode=unlocked", want: []string{"mode@0 unlocked/unlocked/normal", "release@0 forever"}},
			{at: 1000, do: "open"},
			{at: 1100, do: "tick", want: []string{"opened@1000"}},
			{at: 10000, do: "mode=normal", want: []string{"mode@10000 normal/normal/normal", "lock@10000"}, state: "open locked normal", next: 40000},
			{at: 40000, do: "tick", want: []string{"held_open@40000 39000ms"}},
		}},
		{name: "grant in unlocked mode is accepted and its window outlives the mode", steps: []step{
			{at: 0, do: "mode=unlocked", want: []string{"mode@0 unlocked/unlocked/normal", "release@0 forever"}},
			{at: 1000, do: "grant"},
			{at: 2000, do: "open"},
			{at: 2100, do: "tick", want: []string{"opened@2000 granted"}},
			{at: 3000, do: "mode=normal", want: []string{"mode@3000 normal/normal/normal", "release@3000 until=6000"}},
			{at: 4000, do: "close"},
			{at: 4100, do: "tick", want: []string{"closed@4000 2000ms", "lock@4100"}},
		}},
		{name: "locked: grant refused, operator open and exit release", steps: []step{
			{at: 0, do: "mode=locked", want: []string{"mode@0 locked/locked/normal"}, state: "closed locked locked"},
			{at: 1000, do: "grant", err: door.ErrDoorLocked, state: "closed locked locked", next: -1},
			{at: 2000, do: "manual", want: []string{"release@2000 until=7000"}},
			{at: 2500, do: "open"},
			{at: 2600, do: "tick", want: []string{"opened@2500 manual"}},
			{at: 3000, do: "close"},
			{at: 3100, do: "tick", want: []string{"closed@3000 500ms", "lock@3100"}},
			{at: 4000, do: "exit", want: []string{"release@4000 until=9000"}},
			{at: 9000, do: "tick", want: []string{"lock@9000"}},
			{at: 10000, do: "open"},
			{at: 10100, do: "tick", want: []string{"opened@10000 forced", "forced@10000 locked"}, state: "open locked locked forced"},
		}},
		{name: "entering locked cuts a grant window short", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 1000, do: "mode=locked", want: []string{"mode@1000 locked/locked/normal", "lock@1000"}, next: -1},
		}},
		{name: "lockdown: grant and operator refused, exit still releases", steps: []step{
			{at: 0, do: "site=lockdown", want: []string{"mode@0 normal/lockdown/lockdown"}, state: "closed locked lockdown"},
			{at: 1000, do: "grant", err: door.ErrLockdown, state: "closed locked lockdown"},
			{at: 1500, do: "manual", err: door.ErrLockdown, state: "closed locked lockdown"},
			{at: 2000, do: "exit", want: []string{"release@2000 until=7000"}, state: "closed released lockdown"},
			{at: 2100, do: "open"},
			{at: 2200, do: "tick", want: []string{"opened@2100 exit"}},
			{at: 3000, do: "close"},
			{at: 3100, do: "tick", want: []string{"closed@3000 900ms", "lock@3100"}},
			{at: 4000, do: "open"},
			{at: 4100, do: "tick", want: []string{"opened@4000 forced", "forced@4000 lockdown"}, state: "open locked lockdown forced"},
		}},
		{name: "lockdown cuts grant windows short", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 1000, do: "site=lockdown", want: []string{"mode@1000 normal/lockdown/lockdown", "lock@1000"}, next: -1},
		}},
		{name: "lockdown lets a running exit window finish", steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 1000, do: "exit", want: []string{"release@1000 until=6000"}},
			{at: 2000, do: "site=lockdown", want: []string{"mode@2000 normal/lockdown/lockdown"}, state: "closed released lockdown", next: 6000},
			{at: 6000, do: "tick", want: []string{"lock@6000"}},
		}},
		{name: "lockdown overrides an unlocked door; lifting it restores the door's mode", steps: []step{
			{at: 0, do: "mode=unlocked", want: []string{"mode@0 unlocked/unlocked/normal", "release@0 forever"}},
			{at: 1000, do: "site=lockdown", want: []string{"mode@1000 unlocked/lockdown/lockdown", "lock@1000"}, state: "closed locked lockdown"},
			{at: 1500, do: "mode=normal", want: []string{"mode@1500 normal/lockdown/lockdown"}, state: "closed locked lockdown"},
			{at: 1600, do: "mode=unlocked", want: []string{"mode@1600 unlocked/lockdown/lockdown"}},
			{at: 2000, do: "site=normal", want: []string{"mode@2000 unlocked/unlocked/normal", "release@2000 forever"}, state: "closed released unlocked"},
		}},
		{name: "evacuation releases every door, nothing forced or held", steps: []step{
			{at: 0, do: "mode=locked", want: []string{"mode@0 locked/locked/normal"}},
			{at: 1000, do: "site=evacuation", want: []string{"mode@1000 locked/evacuation/evacuation", "release@1000 forever"}, state: "closed released evacuation"},
			{at: 2000, do: "open"},
			{at: 2100, do: "tick", want: []string{"opened@2000"}, next: -1},
			{at: 100000, do: "tick", state: "open released evacuation"},
			{at: 200000, do: "site=normal", want: []string{"mode@200000 locked/locked/normal", "lock@200000"}, state: "open locked locked", next: 230000},
			{at: 201000, do: "close"},
			{at: 201100, do: "tick", want: []string{"closed@201000 199000ms"}, state: "closed locked locked"},
		}},
		{name: "evacuation accepts grants and operator opens", steps: []step{
			{at: 0, do: "site=evacuation", want: []string{"mode@0 normal/evacuation/evacuation", "release@0 forever"}},
			{at: 1000, do: "grant"},
			{at: 1100, do: "manual"},
			{at: 1200, do: "exit"},
			{at: 1300, do: "open"},
			{at: 1400, do: "tick", want: []string{"opened@1300 granted manual exit"}},
		}},
		{name: "evacuation then lockdown then normal", steps: []step{
			{at: 0, do: "site=evacuation", want: []string{"mode@0 normal/evacuation/evacuation", "release@0 forever"}},
			{at: 100, do: "manual"},
			{at: 1000, do: "site=lockdown", want: []string{"mode@1000 normal/lockdown/lockdown", "lock@1000"}, next: -1},
			{at: 2000, do: "site=normal", want: []string{"mode@2000 normal/normal/normal"}, state: "closed locked normal"},
		}},
		{name: "opened just before leaving unlocked mode: not forced", steps: []step{
			{at: 0, do: "mode=unlocked", want: []string{"mode@0 unlocked/unlocked/normal", "release@0 forever"}},
			{at: 1000, do: "open"},
			{at: 1050, do: "mode=normal", want: []string{"mode@1050 normal/normal/normal", "lock@1050"}},
			{at: 1100, do: "tick", want: []string{"opened@1000"}, state: "open locked normal", next: 31050},
			{at: 31050, do: "tick", want: []string{"held_open@31050 30050ms"}},
		}},
		{name: "evacuation while an opening is being debounced: not forced", steps: []step{
			{at: 0, do: "open"},
			{at: 50, do: "site=evacuation", want: []string{"mode@50 normal/evacuation/evacuation", "release@50 forever"}},
			{at: 100, do: "tick", want: []string{"opened@0"}, state: "open released evacuation"},
		}},
		{name: "setting the current mode does nothing", steps: []step{
			{at: 0, do: "mode=normal"},
			{at: 0, do: "site=normal"},
			{at: 10, do: "mode=locked", want: []string{"mode@10 locked/locked/normal"}},
			{at: 20, do: "mode=locked"},
		}},
	})
}

func TestNoContactSensor(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "contact ignored, windows run to their end", cfg: &door.Config{ExitButton: true}, steps: []step{
			{at: 0, do: "grant", want: []string{"release@0 until=5000"}},
			{at: 100, do: "open", next: 5000},
			{at: 200, do: "tick", state: "closed released normal"},
			{at: 300, do: "close", next: 5000}, // no relock on close without a sensor
			{at: 5000, do: "tick", want: []string{"lock@5000"}, next: -1},
			{at: 6000, do: "open"}, // would be forced with a sensor
			{at: 7000, do: "tick", state: "closed locked normal", next: -1},
			{at: 900000, do: "tick"},
			{at: 900001, do: "exit", want: []string{"release@900001 until=905001"}},
		}},
	})
}

func TestFlappingContact(t *testing.T) {
	d := newDoor(t, stdConfig)
	var all []door.Effect
	// 20 changes 10 ms apart: open, closed, open, … ending closed.
	for i := range int64(20) {
		got := d.Contact(at(i*10), i%2 == 0)
		all = append(all, got...)
	}
	all = append(all, d.Tick(at(1000))...)
	if len(all) != 0 {
		t.Fatalf("flapping produced %q, want nothing", formatAll(all))
	}
	if s := formatState(d.State()); s != "closed locked normal" {
		t.Fatalf("state after flapping %q", s)
	}
	if nd := d.NextDeadline(); !nd.IsZero() {
		t.Fatalf("NextDeadline after flapping = %v", nd)
	}

	// Then a real 1 s opening after a grant: exactly one opened and one closed.
	var got []door.Effect
	g, _ := d.Grant(at(1900))
	got = append(got, g...)
	got = append(got, d.Contact(at(2000), true)...)
	closed := false
	for ms := int64(2001); ms < 5000; ms += 7 { // tick often; must not matter
		if !closed && ms >= 3000 {
			got = append(got, d.Contact(at(3000), false)...)
			closed = true
		}
		got = append(got, d.Tick(at(ms))...)
	}
	want := []string{"release@1900 until=6900", "opened@2000 granted", "closed@3000 1000ms", "lock@3100"}
	if g := formatAll(got); !slices.Equal(g, want) {
		t.Fatalf("got %q\nwant %q", g, want)
	}

	// Bounces while the door stands open produce nothing either.
	got = nil
	got = append(got, d.Contact(at(10000), true)...)
	got = append(got, d.Tick(at(10100))...) // opened (forced)
	for i := range int64(10) {
		got = append(got, d.Contact(at(11000+i*100), false)...)
		got = append(got, d.Contact(at(11000+i*100+30), true)...)
	}
	got = append(got, d.Tick(at(13000))...)
	want = []string{"opened@10000 forced", "forced@10000 normal"}
	if g := formatAll(got); !slices.Equal(g, want) {
		t.Fatalf("bounces while open: got %q\nwant %q", g, want)
	}
}

func TestDebounceBoundary(t *testing.T) {
	tests := []struct {
		name   string
		lastMs int64 // how long the contact stays open
		want   []string
	}{
		{"shorter than debounce", 99, nil},
		{"exactly debounce", 100, []string{"opened@0 forced", "forced@0 normal", "closed@100 100ms forced"}},
		{"longer", 250, []string{"opened@0 forced", "forced@0 normal", "closed@250 250ms forced"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDoor(t, stdConfig)
			var got []door.Effect
			got = append(got, d.Contact(at(0), true)...)
			got = append(got, d.Contact(at(tc.lastMs), false)...)
			got = append(got, d.Tick(at(10000))...)
			if g := formatAll(got); !slices.Equal(g, tc.want) {
				t.Fatalf("got %q\nwant %q", g, tc.want)
			}
		})
	}
}

func TestNextDeadline(t *testing.T) {
	d := newDoor(t, door.Config{ContactSensor: true, ExitButton: true, StrikeDuration: 3 * time.Second, HeldOpenAfter: 10 * time.Second, Debounce: 50 * time.Millisecond})
	check := func(want int64) {
		t.Helper()
		nd := d.NextDeadline()
		if want < 0 {
			if !nd.IsZero() {
				t.Fatalf("NextDeadline = %d, want none", msOf(nd))
			}
			return
		}
		if nd.IsZero() || msOf(nd) != want {
			t.Fatalf("NextDeadline = %v, want %d", nd, want)
		}
	}
	check(-1)
	d.Grant(at(0))
	check(3000) // window end
	d.Contact(at(1000), true)
	check(1050) // confirmation comes first
	d.Tick(at(1050))
	check(3000) // window end before held-open (11000)
	d.Tick(at(3000))
	check(11000) // held open
	d.Contact(at(5000), false)
	check(5050) // a pending close suspends held-open supervision
	d.Contact(at(5020), true)
	check(11000) // the close was a bounce: held open again
	d.Tick(at(11000))
	check(-1) // held open fired once; nothing left
	d.Contact(at(12000), false)
	check(12050)
	d.Tick(at(12050))
	check(-1)
	d.ExitRequest(at(13000))
	d.SetMode(at(13500), door.ModeUnlocked)
	check(16000) // the exit window still ends, though the strike stays released
	d.Tick(at(16000))
	check(-1)
}

// TestDeadlineDriving drives a door the way the doorman module will, with one timer armed
// at NextDeadline, and checks that the effects are exactly those of ticking every millisecond.
func TestDeadlineDriving(t *testing.T) {
	type input struct {
		ms int64
		do string
	}
	inputs := []input{
		{0, "grant"}, {700, "open"}, {2500, "close"}, {2540, "open"}, {9000, "exit"},
		{12000, "mode=unlocked"}, {20000, "mode=normal"}, {61000, "close"}, {61010, "open"},
		{61020, "close"}, {70000, "site=lockdown"}, {70500, "exit"}, {70600, "grant"},
		{71000, "open"}, {80000, "site=evacuation"}, {90000, "close"}, {95000, "site=normal"},
		{96000, "open"}, {140000, "close"},
	}
	const end = 200000

	byTimer := newDoor(t, stdConfig)
	var timerEffects []door.Effect
	byMs := newDoor(t, stdConfig)
	var msEffects []door.Effect

	next := 0
	for ms := int64(0); ms <= end; ms++ {
		for next < len(inputs) && inputs[next].ms == ms {
			// The timer-driven door fires its timer for every deadline before the input.
			for nd := byTimer.NextDeadline(); !nd.IsZero() && !nd.After(at(ms)); nd = byTimer.NextDeadline() {
				timerEffects = append(timerEffects, byTimer.Tick(nd)...)
			}
			e, _ := do(t, byTimer, at(ms), inputs[next].do)
			timerEffects = append(timerEffects, e...)
			e, _ = do(t, byMs, at(ms), inputs[next].do)
			msEffects = append(msEffects, e...)
			next++
		}
		msEffects = append(msEffects, byMs.Tick(at(ms))...)
	}
	for nd := byTimer.NextDeadline(); !nd.IsZero(); nd = byTimer.NextDeadline() {
		if nd.After(at(end)) {
			t.Fatalf("deadline %d left after the end", msOf(nd))
		}
		timerEffects = append(timerEffects, byTimer.Tick(nd)...)
	}
	if g, w := formatAll(timerEffects), formatAll(msEffects); !slices.Equal(g, w) {
		t.Fatalf("timer-driven effects differ from ms ticking:\n timer %q\n    ms %q", g, w)
	}
	if !reflect.DeepEqual(timerEffects, msEffects) {
		t.Fatal("effects format equal but differ in detail")
	}
	if byTimer.State() != byMs.State() {
		t.Fatalf("states differ: %+v vs %+v", byTimer.State(), byMs.State())
	}
	if len(timerEffects) < 20 {
		t.Fatalf("scenario too thin: %q", formatAll(timerEffects))
	}
}

// TestEventData pins the exact payloads the doorman module publishes.
func TestEventData(t *testing.T) {
	d := newDoor(t, stdConfig)
	var got []door.Effect
	add := func(e []door.Effect, _ ...any) { got = append(got, e...) }
	add(d.Grant(at(0)))
	add(d.Contact(at(1000), true), nil)
	add(d.Tick(at(40000)), nil)
	add(d.SetSiteMode(at(41000), door.SiteLockdown))
	add(d.Contact(at(42000), false), nil)
	add(d.Tick(at(42100)), nil)
	add(d.Contact(at(43000), true), nil)
	add(d.Tick(at(43100)), nil)

	type ev struct {
		topic string
		at    int64
		data  map[string]any
	}
	want := []ev{
		{door.TopicOpened, 1000, map[string]any{"granted": true, "manual": false, "exit": false, "forced": false}},
		{door.TopicHeldOpen, 31000, map[string]any{"open_ms": int64(30000), "limit_ms": int64(30000)}},
		{door.TopicMode, 41000, map[string]any{"mode": "normal", "effective": "lockdown", "site_mode": "lockdown"}},
		{door.TopicClosed, 42000, map[string]any{"duration_ms": int64(41000), "forced": false, "held_open": true}},
		{door.TopicOpened, 43000, map[string]any{"granted": false, "manual": false, "exit": false, "forced": true}},
		{door.TopicForced, 43000, map[string]any{"mode": "lockdown"}},
	}
	var events []ev
	for _, e := range got {
		if e.Kind != door.Event {
			if e.Topic != "" || e.Data != nil {
				t.Fatalf("strike command with event fields: %v", e)
			}
			continue
		}
		events = append(events, ev{e.Topic, msOf(e.At), e.Data})
		if _, err := json.Marshal(e.Data); err != nil {
			t.Fatalf("data of %s does not marshal: %v", e.Topic, err)
		}
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events\n got %v\nwant %v", events, want)
	}
	// The release commands carry their planned end.
	if got[0].Kind != door.StrikeRelease || !got[0].Until.Equal(at(5000)) {
		t.Fatalf("first effect %v, want a release until 5000", got[0])
	}
}

func TestStateSnapshot(t *testing.T) {
	d := newDoor(t, stdConfig)
	d.Grant(at(0))
	d.Contact(at(1000), true)
	d.Tick(at(1100))
	want := door.State{
		Open: true, OpenedAt: at(1000), Locked: false,
		Mode: door.ModeNormal, SiteMode: door.SiteNormal, Effective: door.EffectiveNormal,
		ReleaseUntil: at(5000),
	}
	if got := d.State(); got != want {
		t.Fatalf("State = %+v\nwant %+v", got, want)
	}
	b, err := json.Marshal(d.State())
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"open":true,"opened_at":"2026-03-02T08:00:01Z","locked":false,"mode":"normal","site_mode":"normal","effective":"normal","forced":false,"held_open":false,"release_until":"2026-03-02T08:00:05Z"}`
	if string(b) != wantJSON {
		t.Fatalf("State JSON\n got %s\nwant %s", b, wantJSON)
	}
	d.Contact(at(2000), false)
	d.Tick(at(2100))
	if got := d.State(); !got.OpenedAt.IsZero() || !got.ReleaseUntil.IsZero() || !got.Locked {
		t.Fatalf("closed and relocked door State = %+v", got)
	}
}

func TestConfigAndParsing(t *testing.T) {
	cfg := door.Config{}.WithDefaults()
	if cfg.StrikeDuration != 5*time.Second || cfg.HeldOpenAfter != 30*time.Second || cfg.Debounce != 100*time.Millisecond {
		t.Fatalf("defaults %+v", cfg)
	}
	if _, err := door.New(door.Config{StrikeDuration: -time.Second}); err == nil {
		t.Fatal("negative strike duration accepted")
	}
	d := newDoor(t, door.Config{HeldOpenAfter: -5, Debounce: -7})
	if c := d.Config(); c.HeldOpenAfter != -1 || c.Debounce != -1 || c.StrikeDuration != door.DefaultStrikeDuration {
		t.Fatalf("Config() = %+v", c)
	}

	for _, s := range []string{"normal", "unlocked", "locked"} {
		if m, err := door.ParseMode(s); err != nil || string(m) != s {
			t.Fatalf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"normal", "lockdown", "evacuation"} {
		if m, err := door.ParseSiteMode(s); err != nil || string(m) != s {
			t.Fatalf("ParseSiteMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Normal", "lockdown", "open"} {
		if _, err := door.ParseMode(s); !errors.Is(err, door.ErrInvalidMode) {
			t.Fatalf("ParseMode(%q) err = %v", s, err)
		}
	}
	if _, err := door.ParseSiteMode("unlocked"); !errors.Is(err, door.ErrInvalidMode) {
		t.Fatalf("ParseSiteMode(unlocked) err = %v", err)
	}

	// Invalid modes change nothing.
	if e, err := d.SetMode(at(0), "open"); !errors.Is(err, door.ErrInvalidMode) || e != nil {
		t.Fatalf("SetMode(open) = %v, %v", e, err)
	}
	if e, err := d.SetSiteMode(at(0), "panic"); !errors.Is(err, door.ErrInvalidMode) || e != nil {
		t.Fatalf("SetSiteMode(panic) = %v, %v", e, err)
	}
	if s := d.State(); s.Mode != door.ModeNormal || s.SiteMode != door.SiteNormal {
		t.Fatalf("state after invalid modes %+v", s)
	}

	for err, want := range map[error]string{
		door.ErrDoorLocked: "door_locked", door.ErrLockdown: "lockdown",
		door.ErrNoExitButton: "", nil: "",
	} {
		if got := door.Reason(err); got != want {
			t.Fatalf("Reason(%v) = %q, want %q", err, got, want)
		}
	}

	if !door.EffectiveUnlocked.Released() || !door.EffectiveEvacuation.Released() ||
		door.EffectiveNormal.Released() || door.EffectiveLocked.Released() || door.EffectiveLockdown.Released() {
		t.Fatal("Effective.Released wrong")
	}
	for _, k := range []door.Kind{door.StrikeRelease, door.StrikeLock, door.Event, 0} {
		if k.String() == "" {
			t.Fatalf("Kind(%d).String() empty", k)
		}
	}
	if s := (door.Effect{Kind: door.StrikeRelease, At: at(0)}).String(); s == "" {
		t.Fatal("Effect.String empty")
	}
}
