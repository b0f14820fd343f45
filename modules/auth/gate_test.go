package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHostGate: one password check at a time per address; other addresses are not held up,
// a waiter gives up with its context, and nothing is left behind.
func TestHostGate(t *testing.T) {
	var g hostGate
	ctx := context.Background()
	leaveA, err := g.enter(ctx, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.enter(short, "192.0.2.1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second check from the same address got in: %v", err)
	}
	leaveB, err := g.enter(ctx, "192.0.2.2")
	if err != nil {
		t.Fatalf("another address waited: %v", err)
	}
	leaveB()
	leaveA()
	leaveA2, err := g.enter(ctx, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	leaveA2()
	if len(g.hosts) != 0 {
		t.Errorf("%d gate entries left", len(g.hosts))
	}
}
