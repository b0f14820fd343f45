//go:build linux

package wiegand

import (
	"testing"
	"time"
)

func TestClockRef(t *testing.T) {
	wall := time.Now()
	c := clockRef{wall: wall, mono: 1000 * time.Second, real: time.Duration(wall.UnixNano())}
	// CLOCK_MONOTONIC timestamps (Linux ≥ 5.7): relative to boot.
	if got := c.time(1000*time.Second + 5*time.Millisecond); got.Sub(wall) != 5*time.Millisecond {
		t.Errorf("monotonic: %v after the reference, want 5ms", got.Sub(wall))
	}
	if got := c.time(999 * time.Second); got.Sub(wall) != -time.Second {
		t.Errorf("monotonic in the past: %v, want -1s", got.Sub(wall))
	}
	// CLOCK_REALTIME timestamps (older kernels): relative to the Unix epoch.
	if got := c.time(c.real + 7*time.Millisecond); got.Sub(wall) != 7*time.Millisecond {
		t.Errorf("realtime: %v after the reference, want 7ms", got.Sub(wall))
	}
	// The result keeps the monotonic reading of time.Now, so it compares with later calls.
	if got := c.time(c.mono); time.Since(got) < 0 {
		t.Error("converted time is after now")
	}
	// A real reference reads the clocks consistently.
	r := newClockRef()
	if r.mono <= 0 || r.real <= 0 || r.wall.IsZero() {
		t.Fatalf("newClockRef() = %+v", r)
	}
	if d := time.Since(r.wall); d < 0 || d > time.Minute {
		t.Fatalf("reference wall time off by %v", d)
	}
}
