package token

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A token is valid through a dialect only within the stricter of its minting dialect's policy
// and the using dialect's, limit by limit; failing the using dialect's policy leaves it valid
// (and unslid) in its own. The server-wide cap bounds issue and use, whatever the dialect.
func TestPolicies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.store
	s.SetMaxLifetime(24 * time.Hour)
	s.SetPolicy("rest", Policy{Max: 365 * 24 * time.Hour})
	s.SetPolicy("leosac", Policy{Idle: 20 * time.Minute, Max: 7 * 24 * time.Hour})
	s.SetPolicy("sysadm", Policy{Idle: 5 * time.Minute, Max: 12 * time.Hour})

	// Issue: a year asked through the token API is capped to the server-wide 24 h.
	raw, rec, err := s.Issue(ctx, IssueRequest{UserID: f.alice, Dialect: "rest", Lifetime: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.ExpiresAt.Sub(rec.IssuedAt); got != 24*time.Hour || rec.IdleSeconds != 0 {
		t.Fatalf("issued for %v, idle %ds; want the 24h cap, no idle", got, rec.IdleSeconds)
	}
	h := Hash(raw)
	// Through the Leosac dialect it has Leosac's idle timeout; through sysadm, sysadm's limits.
	if v, err := s.PeekVia(ctx, h, "leosac"); err != nil || v.IdleSeconds != 1200 || !v.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Fatalf("through leosac: %+v, %v", v, err)
	}
	if v, err := s.PeekVia(ctx, h, "sysadm"); err != nil || v.IdleSeconds != 300 || !v.ExpiresAt.Equal(rec.IssuedAt.Add(12*time.Hour)) {
		t.Fatalf("through sysadm: %+v, %v", v, err)
	}
	// Idle 30 minutes: invalid through leosac and sysadm, valid (and then slid) in its own dialect.
	f.clock.advance(30 * time.Minute)
	for _, d := range []string{"leosac", "sysadm"} {
		if _, err := s.UseVia(ctx, h, d); !errors.Is(err, ErrInvalid) {
			t.Fatalf("idle 30m through %s: %v", d, err)
		}
	}
	if _, err := s.UseVia(ctx, h, "rest"); err != nil {
		t.Fatalf("idle 30m in its own dialect: %v", err)
	}
	if _, err := s.UseVia(ctx, h, "leosac"); err != nil {
		t.Fatalf("through leosac right after a use: %v", err)
	}
	// Past sysadm's maximum (12 h from issue), even just used: invalid there only.
	f.clock.set(rec.IssuedAt.Add(13 * time.Hour))
	if _, err := s.UseVia(ctx, h, "rest"); err != nil {
		t.Fatalf("13h, own dialect: %v", err)
	}
	if _, err := s.UseVia(ctx, h, "sysadm"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("13h through sysadm (max 12h): %v", err)
	}

	// A Leosac token keeps its own idle timeout on the token API, whose policy has none.
	raw2, _, err := s.Issue(ctx, IssueRequest{UserID: f.bob, Dialect: "leosac", Lifetime: time.Hour, Idle: 20 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.advance(21 * time.Minute)
	if _, err := s.UseVia(ctx, Hash(raw2), "rest"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("idle Leosac token on the token API: %v", err)
	}

	// Lowering the cap applies to tokens already issued, through every dialect.
	f.clock.set(rec.IssuedAt.Add(13 * time.Hour))
	s.SetMaxLifetime(12 * time.Hour)
	if _, err := s.UseVia(ctx, h, "rest"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("after lowering the cap under the token's age: %v", err)
	}
	if _, err := s.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Use after lowering the cap: %v", err)
	}
}
