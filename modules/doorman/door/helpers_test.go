package door_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/doorman/door"
)

// t0 is the origin of every scenario; times in tests are milliseconds after it.
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func msOf(t time.Time) int64 { return t.Sub(t0).Milliseconds() }

// stdConfig is a door with a contact sensor and an exit button and default timings
// (strike 5 s, held open 30 s, debounce 100 ms).
var stdConfig = door.Config{ContactSensor: true, ExitButton: true}

func newDoor(t testing.TB, cfg door.Config) *door.Door {
	t.Helper()
	d, err := door.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// format renders an effect compactly, times in ms after t0:
//
//	release@0 until=5000 · release@0 forever · lock@5000 · opened@100 granted exit ·
//	forced@100 normal · closed@3000 2000ms forced held_open · held_open@30500 30000ms ·
//	mode@0 locked/lockdown/lockdown (mode/effective/site_mode)
func format(e door.Effect) string {
	switch e.Kind {
	case door.StrikeRelease:
		if e.Until.IsZero() {
			return fmt.Sprintf("release@%d forever", msOf(e.At))
		}
		return fmt.Sprintf("release@%d until=%d", msOf(e.At), msOf(e.Until))
	case door.StrikeLock:
		return fmt.Sprintf("lock@%d", msOf(e.At))
	}
	s := fmt.Sprintf("%s@%d", e.Topic, msOf(e.At))
	flags := func(keys ...string) {
		for _, k := range keys {
			if e.Data[k] == true {
				s += " " + k
			}
		}
	}
	switch e.Topic {
	case door.TopicOpened:
		flags("granted", "manual", "exit", "forced")
	case door.TopicClosed:
		s += fmt.Sprintf(" %dms", e.Data["duration_ms"])
		flags("forced", "held_open")
	case door.TopicHeldOpen:
		s += fmt.Sprintf(" %dms", e.Data["open_ms"])
	case door.TopicForced:
		s += fmt.Sprintf(" %s", e.Data["mode"])
	case door.TopicMode:
		s += fmt.Sprintf(" %s/%s/%s", e.Data["mode"], e.Data["effective"], e.Data["site_mode"])
	}
	return s
}

func formatAll(effects []door.Effect) []string {
	var out []string
	for _, e := range effects {
		out = append(out, format(e))
	}
	return out
}

// formatState renders a State as "open|closed locked|released <effective> [forced] [held]".
func formatState(s door.State) string {
	var b strings.Builder
	b.WriteString(map[bool]string{true: "open", false: "closed"}[s.Open])
	b.WriteString(map[bool]string{true: " locked", false: " released"}[s.Locked])
	b.WriteString(" " + string(s.Effective))
	if s.Forced {
		b.WriteString(" forced")
	}
	if s.HeldOpen {
		b.WriteString(" held")
	}
	return b.String()
}

// do applies a scripted input: grant, manual, exit, open, close, tick, mode=<m>, site=<m>.
func do(t testing.TB, d *door.Door, now time.Time, input string) ([]door.Effect, error) {
	t.Helper()
	switch input {
	case "grant":
		return d.Grant(now)
	case "manual":
		return d.OpenMomentarily(now)
	case "exit":
		return d.ExitRequest(now)
	case "open":
		return d.Contact(now, true), nil
	case "close":
		return d.Contact(now, false), nil
	case "tick":
		return d.Tick(now), nil
	}
	if m, ok := strings.CutPrefix(input, "mode="); ok {
		return d.SetMode(now, door.Mode(m))
	}
	if m, ok := strings.CutPrefix(input, "site="); ok {
		return d.SetSiteMode(now, door.SiteMode(m))
	}
	t.Fatalf("unknown scripted input %q", input)
	return nil, nil
}
