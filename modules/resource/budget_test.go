package resource

import (
	"strings"
	"testing"
	"time"

	"gatehouse/core"
)

func TestChangeBudget(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b := NewChangeBudget()
	b.now = func() time.Time { return now }
	plain := &core.Identity{UserID: 7, Rank: core.RankUser}
	other := &core.Identity{UserID: 8, Rank: core.RankViewer}
	manager := &core.Identity{UserID: 9, Rank: core.RankManager}
	for i := range SelfServiceChangesPerMinute {
		if err := b.Spend(plain); err != nil {
			t.Fatalf("change %d: %v", i+1, err)
		}
	}
	err := b.Spend(plain)
	if ce, ok := err.(*core.Error); !ok || ce.Code != core.RateLimited || !strings.Contains(ce.Msg, "try again in 1 s") {
		t.Fatalf("change %d: %v, want RATE_LIMITED", SelfServiceChangesPerMinute+1, err)
	}
	if err := b.Spend(other); err != nil {
		t.Fatalf("another user: %v", err)
	}
	for range 1000 {
		if err := b.Spend(manager); err != nil {
			t.Fatalf("manager: %v", err)
		}
	}
	now = now.Add(time.Second) // one change a second comes back
	if err := b.Spend(plain); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if err := b.Spend(plain); err == nil {
		t.Fatal("the refused change must not have been counted as room")
	}
	// Idle buckets are dropped once there are many.
	for id := range int64(maxIdleBuckets) {
		_ = b.Spend(&core.Identity{UserID: 1000 + id})
	}
	now = now.Add(2 * time.Minute)
	_ = b.Spend(&core.Identity{UserID: 1})
	if n := len(b.buckets); n > 2 {
		t.Errorf("%d buckets kept after they all refilled", n)
	}
}
