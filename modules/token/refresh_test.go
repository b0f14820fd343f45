package token

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestPortalTokensAreHex: the portal dialect's tokens are 64 hex digits (LemonLDAP::NG session
// ids) and live in the same store: they are used, peeked and revoked like any other token.
func TestPortalTokensAreHex(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, rec, err := f.store.Issue(ctx, IssueRequest{UserID: f.alice, Dialect: DialectPortal, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !hex64.MatchString(raw) || !Plausible(raw) {
		t.Fatalf("portal token %q is not 64 lower-case hex digits", raw)
	}
	if rec.Hash != Hash(raw) || strings.Contains(rec.Hash, raw) {
		t.Fatal("portal token not stored as its hash")
	}
	if f.rowCount(t, "hash = ?", Hash(raw)) != 1 || f.rowCount(t, "hash = ?", raw) != 0 {
		t.Fatal("portal token row not found by hash, or the raw token is stored")
	}
	got, err := f.newStore().Use(ctx, Hash(raw)) // from the database, as after a restart
	if err != nil || got.UserID != f.alice || got.Dialect != DialectPortal {
		t.Fatalf("Use(portal token) = %+v, %v", got, err)
	}
	other, _, err := f.store.Issue(ctx, IssueRequest{UserID: f.alice, Dialect: DialectPortal, Lifetime: time.Hour})
	if err != nil || other == raw {
		t.Fatalf("second portal token %q, %v: not fresh", other, err)
	}
	if err := f.store.Revoke(ctx, Hash(raw), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Use(ctx, Hash(raw)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked portal token: %v", err)
	}
	// Other dialects keep UUIDs.
	leosac, _ := f.issue(t, f.alice, time.Hour, 0)
	if len(leosac) != 36 {
		t.Fatalf("leosac token %q is not a UUID", leosac)
	}
}

func TestPlausibleHex(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{strings.Repeat("a", 64), true},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{strings.Repeat("A", 64), false}, // upper case: never issued
		{strings.Repeat("a", 63), false},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("g", 64), false},
		{strings.Repeat("a", 63) + "\x00", false},
		{strings.Repeat(" ", 64), false},
		{strings.Repeat("a", 62) + "é", false}, // 64 bytes, not hex
	}
	for _, tc := range tests {
		if got := Plausible(tc.in); got != tc.want {
			t.Errorf("Plausible(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.issue(t, f.alice, time.Hour, 0)
	f.issue(t, f.alice, time.Hour, time.Minute)
	f.issue(t, f.alice, time.Minute, 0)
	f.issue(t, f.bob, time.Hour, 0)
	if n, err := f.store.Count(ctx, f.alice); err != nil || n != 3 {
		t.Fatalf("Count(alice) = %d, %v; want 3", n, err)
	}
	f.clock.advance(2 * time.Minute) // the idle one and the short one are over
	if n, err := f.store.Count(ctx, f.alice); err != nil || n != 1 {
		t.Fatalf("Count(alice) after 2 min = %d, %v; want 1", n, err)
	}
	if n, err := f.store.Count(ctx, 9999); err != nil || n != 0 {
		t.Fatalf("Count(nobody) = %d, %v", n, err)
	}
}

func (f *fixture) refreshCount(t *testing.T, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.db.Read.Raw("SELECT count(*) FROM refresh_tokens WHERE "+where, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRefreshTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, rec, err := f.store.IssueRefresh(ctx, f.alice, "my-app", "192.0.2.1:1", "ua")
	if err != nil {
		t.Fatal(err)
	}
	if !Plausible(raw) || len(raw) != 36 || rec.Hash != Hash(raw) {
		t.Fatalf("refresh token %q / %+v", raw, rec)
	}
	if f.refreshCount(t, "hash = ?", raw) != 0 || f.refreshCount(t, "hash = ?", Hash(raw)) != 1 {
		t.Fatal("refresh token not stored as its hash only")
	}
	got, err := f.store.UseRefresh(ctx, raw, "my-app")
	if err != nil || got.UserID != f.alice || got.ClientID != "my-app" {
		t.Fatalf("UseRefresh = %+v, %v", got, err)
	}
	for _, bad := range []struct{ raw, client string }{
		{raw, "other-app"}, {raw, ""}, {raw, "my-app "}, {"", "my-app"}, {"x", "my-app"},
		{strings.ToUpper(raw), "my-app"}, {"00000000-0000-4000-8000-000000000000", "my-app"},
	} {
		if _, err := f.store.UseRefresh(ctx, bad.raw, bad.client); !errors.Is(err, ErrInvalid) {
			t.Errorf("UseRefresh(%q, %q) = %v, want ErrInvalid", bad.raw, bad.client, err)
		}
	}
	// One per (user, client id): a new one replaces the old one.
	raw2, _, err := f.store.IssueRefresh(ctx, f.alice, "my-app", "", "")
	if err != nil || raw2 == raw {
		t.Fatalf("second IssueRefresh = %q, %v", raw2, err)
	}
	if _, err := f.store.UseRefresh(ctx, raw, "my-app"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replaced refresh token still works: %v", err)
	}
	if f.refreshCount(t, "user_id = ?", f.alice) != 1 {
		t.Fatal("more than one refresh token for (alice, my-app)")
	}
	// Other client ids and users are separate.
	rawOther, _, _ := f.store.IssueRefresh(ctx, f.alice, "other-app", "", "")
	rawBob, _, _ := f.store.IssueRefresh(ctx, f.bob, "my-app", "", "")
	if _, err := f.store.UseRefresh(ctx, rawBob, "my-app"); err != nil {
		t.Fatal(err)
	}
	// RevokeRefresh deletes one; RevokeUser (password change, account disabled) all of a user's.
	if err := f.store.RevokeRefresh(ctx, f.alice, "other-app"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.UseRefresh(ctx, rawOther, "other-app"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("revoked refresh token works: %v", err)
	}
	if _, err := f.store.RevokeUser(ctx, f.alice, "", "Password changed."); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.UseRefresh(ctx, raw2, "my-app"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("refresh token survived RevokeUser: %v", err)
	}
	if _, err := f.store.UseRefresh(ctx, rawBob, "my-app"); err != nil {
		t.Fatalf("bob's refresh token revoked with alice's: %v", err)
	}
	// Deleting the user deletes the rows.
	if err := f.db.Write.Exec(`DELETE FROM users WHERE id = ?`, f.bob).Error; err != nil {
		t.Fatal(err)
	}
	if f.refreshCount(t, "user_id = ?", f.bob) != 0 {
		t.Fatal("refresh token outlived its user")
	}
	if _, _, err := f.store.IssueRefresh(ctx, f.alice, "", "", ""); err == nil {
		t.Fatal("empty client id accepted")
	}
	if _, _, err := f.store.IssueRefresh(ctx, f.alice, strings.Repeat("c", MaxClientIDLen+1), "", ""); err == nil {
		t.Fatal("over-long client id accepted")
	}
}
