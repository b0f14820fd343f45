package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// t0 is a whole millisecond, so that SQLite's millisecond date arithmetic is exact.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	db    *db.DB
	clock *testClock
	store *Store
	bus   *core.Bus
	alice int64
	bob   int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d, err := db.Open(context.Background(), t.TempDir(), zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	bus := core.NewBus(zerolog.Nop(), time.Second)
	t.Cleanup(bus.Close)
	f := &fixture{db: d, clock: &testClock{t: t0}, bus: bus}
	f.store = f.newStore()
	f.alice = f.addUser(t, "alice")
	f.bob = f.addUser(t, "bob")
	return f
}

// newStore returns a store on the fixture's database and clock, as after a restart.
func (f *fixture) newStore() *Store {
	s := NewStore(f.db, f.bus, zerolog.Nop())
	s.now = f.clock.now
	return s
}

func (f *fixture) addUser(t *testing.T, name string) int64 {
	t.Helper()
	now := time.Now().UTC()
	if err := f.db.Write.Exec(`INSERT INTO users(username, created_at, updated_at) VALUES (?, ?, ?)`, name, now, now).Error; err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := f.db.Read.Raw(`SELECT id FROM users WHERE username = ?`, name).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) issue(t *testing.T, user int64, lifetime, idle time.Duration) (string, *Token) {
	t.Helper()
	raw, tok, err := f.store.Issue(context.Background(), IssueRequest{
		UserID: user, Dialect: "leosac", Lifetime: lifetime, Idle: idle, Remote: "192.0.2.1:5555", UserAgent: "test",
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return raw, tok
}

func (f *fixture) rowCount(t *testing.T, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := "SELECT count(*) FROM tokens"
	if where != "" {
		q += " WHERE " + where
	}
	if err := f.db.Read.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIssue(t *testing.T) {
	f := newFixture(t)
	raw, tok := f.issue(t, f.alice, time.Hour, 20*time.Minute)
	if len(raw) != 36 {
		t.Errorf("token %q is %d chars, want 36", raw, len(raw))
	}
	u, err := uuid.Parse(raw)
	if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 || u.String() != raw {
		t.Errorf("token %q is not a canonical UUIDv4 (%v, version %v)", raw, err, u.Version())
	}
	if !Plausible(raw) {
		t.Error("issued token not Plausible")
	}
	if tok.Hash != Hash(raw) || len(tok.Hash) != 64 {
		t.Errorf("record hash %q, want SHA-256 hex of the token", tok.Hash)
	}
	if tok.ID == raw || tok.ID == "" {
		t.Errorf("public id %q must differ from the token", tok.ID)
	}
	if tok.UserID != f.alice || !tok.IssuedAt.Equal(t0) || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) ||
		tok.Idle() != 20*time.Minute || !tok.LastUsedAt.Equal(t0) || tok.Dialect != "leosac" {
		t.Errorf("record %+v", tok)
	}

	// The raw token is nowhere in the database: look at every column of every row.
	rows, err := f.db.Read.Raw(`SELECT * FROM tokens`).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	sawHash := false
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			s := fmt.Sprintf("%v", v)
			if b, ok := v.([]byte); ok {
				s = string(b)
			}
			if strings.Contains(strings.ToLower(s), raw) || strings.Contains(s, strings.ReplaceAll(raw, "-", "")) {
				t.Errorf("column %s holds the raw token: %q", cols[i], s)
			}
			if cols[i] == "hash" && s == Hash(raw) {
				sawHash = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !sawHash {
		t.Error("the tokens table does not hold the token's SHA-256")
	}
}

func TestIssueErrors(t *testing.T) {
	f := newFixture(t)
	if _, _, err := f.store.Issue(context.Background(), IssueRequest{UserID: f.alice}); err == nil {
		t.Error("Issue with a zero lifetime succeeded")
	}
	if _, _, err := f.store.Issue(context.Background(), IssueRequest{UserID: 9999, Lifetime: time.Hour}); err == nil {
		t.Error("Issue for a user that does not exist succeeded")
	}
	raw, tok, err := f.store.Issue(context.Background(), IssueRequest{UserID: f.alice, Lifetime: time.Hour,
		Remote: strings.Repeat("r", 500), UserAgent: strings.Repeat("u", 500)})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.RemoteAddr) != 128 || len(tok.UserAgent) != 256 {
		t.Errorf("remote/user agent not truncated: %d, %d", len(tok.RemoteAddr), len(tok.UserAgent))
	}
	r2, _ := f.issue(t, f.alice, time.Hour, 0)
	if raw == r2 {
		t.Error("two issued tokens are equal")
	}
}

func TestUseSlides(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, _ := f.issue(t, f.alice, time.Hour, 10*time.Minute)
	f.clock.advance(5 * time.Minute)
	got, err := f.store.Use(ctx, Hash(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsedAt.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("LastUsedAt = %v, want %v", got.LastUsedAt, t0.Add(5*time.Minute))
	}
	if !got.Deadline().Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("Deadline = %v, want 15 min after t0", got.Deadline())
	}
	got.LastUsedAt = time.Time{} // a copy: changing it changes nothing in the store
	peek, err := f.store.Peek(ctx, Hash(raw))
	if err != nil || !peek.LastUsedAt.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("Peek = %+v, %v", peek, err)
	}
	f.clock.advance(time.Minute)
	if p, _ := f.store.Peek(ctx, Hash(raw)); !p.LastUsedAt.Equal(t0.Add(5 * time.Minute)) {
		t.Error("Peek slid the token")
	}
}

func TestIdleExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, _ := f.issue(t, f.alice, time.Hour, time.Second)
	h := Hash(raw)
	for range 5 { // used every 900 ms, it stays alive well past its idle timeout
		f.clock.advance(900 * time.Millisecond)
		if _, err := f.store.Use(ctx, h); err != nil {
			t.Fatalf("Use within the idle timeout: %v", err)
		}
	}
	f.clock.advance(1001 * time.Millisecond)
	if _, err := f.store.Peek(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("Peek after idle timeout = %v, want ErrInvalid", err)
	}
	if _, err := f.store.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after idle timeout = %v, want ErrInvalid", err)
	}
	if n := f.rowCount(t, "hash = ?", h); n != 0 {
		t.Error("expired token not deleted by Use")
	}
	if _, err := f.store.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("second Use = %v, want ErrInvalid", err)
	}
}

func TestAbsoluteExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, _ := f.issue(t, f.alice, 30*time.Second, 20*time.Second)
	h := Hash(raw)
	for _, at := range []time.Duration{15 * time.Second, 28 * time.Second, 30 * time.Second} {
		f.clock.set(t0.Add(at))
		if _, err := f.store.Use(ctx, h); err != nil {
			t.Fatalf("Use at +%v: %v", at, err)
		}
	}
	f.clock.set(t0.Add(30*time.Second + time.Nanosecond))
	if _, err := f.store.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after the absolute lifetime = %v, want ErrInvalid (sliding must not extend it)", err)
	}

	rawNoIdle, _ := f.issue(t, f.alice, time.Minute, 0)
	f.clock.advance(59 * time.Second)
	if _, err := f.store.Use(ctx, Hash(rawNoIdle)); err != nil {
		t.Errorf("token without idle timeout expired early: %v", err)
	}
	f.clock.advance(2 * time.Second)
	if _, err := f.store.Use(ctx, Hash(rawNoIdle)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after lifetime = %v, want ErrInvalid", err)
	}
}

func TestUseUnknownAndMalformed(t *testing.T) {
	f := newFixture(t)
	for _, h := range []string{"", "abc", Hash("not issued"), strings.Repeat("z", 64), strings.Repeat("a", 65)} {
		if _, err := f.store.Use(context.Background(), h); !errors.Is(err, ErrInvalid) {
			t.Errorf("Use(%q) = %v, want ErrInvalid", h, err)
		}
	}
}

func TestPlausible(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{uuid.NewString(), true},
		{"9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b", true},
		{"", false},
		{"not-a-token", false},
		{"9b2f5a1e3c4d4e5f8a6b7c8d9e0f1a2b", false},                   // 32 hex, no dashes
		{"{9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b}", false},             // braces
		{"urn:uuid:9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b", false},      // URN
		{"9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2", false},                // 35 chars
		{"9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2bc", false},              // 37 chars
		{"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", false},               // 36-char garbage
		{"9b2f5a1e+3c4d+4e5f+8a6b+7c8d9e0f1a2b", false},               // wrong separators
		{"                                    ", false},               // 36 spaces
		{strings.Repeat("-", 36), false},                              // 36 dashes
		{"9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2" + "\x00", false},       // NUL
		{"9b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2" + "\u00e9"[:1], false}, // broken UTF-8
	}
	for _, tc := range tests {
		if got := Plausible(tc.in); got != tc.want {
			t.Errorf("Plausible(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// recordingSession returns a logged-in session whose notifications are recorded.
func recordingSession(userID int64, hash string) (*core.Session, *[]string, *sync.Mutex) {
	var mu sync.Mutex
	var reasons []string
	s := core.NewSession("leosac", "192.0.2.1:5555", "test", func(reason string) {
		mu.Lock()
		reasons = append(reasons, reason)
		mu.Unlock()
	})
	s.Login(userID, hash)
	return s, &reasons, &mu
}

func TestRevokeEndsAttachedSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sub, err := f.bus.Subscribe(core.SubscribeOptions{Queue: 10}, "auth.token.revoked")
	if err != nil {
		t.Fatal(err)
	}
	raw, tok := f.issue(t, f.alice, time.Hour, 0)
	h := Hash(raw)
	s1, reasons1, mu1 := recordingSession(f.alice, h)
	s2, reasons2, mu2 := recordingSession(f.alice, h)
	detached, reasons3, mu3 := recordingSession(f.alice, h)
	f.store.Attach(h, s1)
	f.store.Attach(h, s2)
	f.store.Attach(h, detached)
	f.store.Detach(h, detached)

	if err := f.store.Revoke(ctx, h, "Logged out."); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		s       *core.Session
		reasons *[]string
		mu      *sync.Mutex
	}{{s1, reasons1, mu1}, {s2, reasons2, mu2}} {
		c.mu.Lock()
		if len(*c.reasons) != 1 || (*c.reasons)[0] != "Logged out." {
			t.Errorf("session %d notified %v, want [Logged out.]", i+1, *c.reasons)
		}
		c.mu.Unlock()
		if c.s.LoggedIn() {
			t.Errorf("session %d still logged in", i+1)
		}
	}
	mu3.Lock()
	if len(*reasons3) != 0 {
		t.Errorf("detached session notified: %v", *reasons3)
	}
	mu3.Unlock()
	if _, err := f.store.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after Revoke = %v", err)
	}
	if f.rowCount(t, "hash = ?", h) != 0 {
		t.Error("revoked token still in the database")
	}
	select {
	case ev := <-sub.C():
		re, ok := ev.Data.(RevokedEvent)
		if !ok || re.TokenID != tok.ID || re.UserID != f.alice || re.Reason != "Logged out." {
			t.Errorf("revoked event %+v", ev.Data)
		}
	default:
		t.Error("no auth.token.revoked event")
	}
	// Revoking an unknown token is not an error.
	if err := f.store.Revoke(ctx, Hash("never issued"), "x"); err != nil {
		t.Errorf("Revoke(unknown) = %v", err)
	}
	// A restarted store does not accept the revoked token either.
	if _, err := f.newStore().Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("restarted store accepts a revoked token: %v", err)
	}
}

func TestRevokeLeavesReloggedSessionAlone(t *testing.T) {
	f := newFixture(t)
	raw1, _ := f.issue(t, f.alice, time.Hour, 0)
	raw2, _ := f.issue(t, f.alice, time.Hour, 0)
	s, reasons, mu := recordingSession(f.alice, Hash(raw1))
	f.store.Attach(Hash(raw1), s)
	s.Login(f.alice, Hash(raw2)) // logged in again with another token
	if err := f.store.Revoke(context.Background(), Hash(raw1), "Logged out."); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*reasons) != 0 || !s.LoggedIn() {
		t.Errorf("session with a new token was ended: %v", *reasons)
	}
}

func TestRevokeUserKeepsOne(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	keep, _ := f.issue(t, f.alice, time.Hour, 0)
	other1, _ := f.issue(t, f.alice, time.Hour, 0)
	other2, _ := f.issue(t, f.alice, time.Hour, 0)
	bobs, _ := f.issue(t, f.bob, time.Hour, 0)
	sKeep, rKeep, muKeep := recordingSession(f.alice, Hash(keep))
	sOther, rOther, muOther := recordingSession(f.alice, Hash(other1))
	f.store.Attach(Hash(keep), sKeep)
	f.store.Attach(Hash(other1), sOther)

	n, err := f.store.RevokeUser(ctx, f.alice, Hash(keep), "Password changed.")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("RevokeUser revoked %d tokens, want 2", n)
	}
	for _, raw := range []string{keep, bobs} {
		if _, err := f.store.Use(ctx, Hash(raw)); err != nil {
			t.Errorf("token that should survive: %v", err)
		}
	}
	for _, raw := range []string{other1, other2} {
		if _, err := f.store.Use(ctx, Hash(raw)); !errors.Is(err, ErrInvalid) {
			t.Errorf("revoked token: %v, want ErrInvalid", err)
		}
	}
	muKeep.Lock()
	if len(*rKeep) != 0 || !sKeep.LoggedIn() {
		t.Errorf("kept session ended: %v", *rKeep)
	}
	muKeep.Unlock()
	muOther.Lock()
	if len(*rOther) != 1 || (*rOther)[0] != "Password changed." || sOther.LoggedIn() {
		t.Errorf("other session not ended: %v", *rOther)
	}
	muOther.Unlock()
	if got := f.rowCount(t, "user_id = ?", f.alice); got != 1 {
		t.Errorf("alice has %d tokens in the database, want 1", got)
	}

	// keep "" revokes all.
	if n, err := f.store.RevokeUser(ctx, f.alice, "", "Disabled."); err != nil || n != 1 {
		t.Errorf("RevokeUser(keep none) = %d, %v; want 1", n, err)
	}
	if _, err := f.store.Use(ctx, Hash(keep)); !errors.Is(err, ErrInvalid) {
		t.Errorf("token survived RevokeUser with keep \"\": %v", err)
	}
}

func TestRevokeID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, tok := f.issue(t, f.alice, time.Hour, 0)
	if err := f.store.RevokeID(ctx, tok.ID, f.bob, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("RevokeID by the wrong owner = %v, want ErrInvalid", err)
	}
	if _, err := f.store.Use(ctx, Hash(raw)); err != nil {
		t.Errorf("token revoked by the wrong owner: %v", err)
	}
	if err := f.store.RevokeID(ctx, "no-such-id", 0, "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("RevokeID(unknown) = %v, want ErrInvalid", err)
	}
	if err := f.store.RevokeID(ctx, tok.ID, f.alice, "x"); err != nil {
		t.Errorf("RevokeID by the owner = %v", err)
	}
	if _, err := f.store.Use(ctx, Hash(raw)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after RevokeID = %v", err)
	}
	raw2, tok2 := f.issue(t, f.bob, time.Hour, 0)
	if err := f.store.RevokeID(ctx, tok2.ID, 0, "admin"); err != nil { // owner 0: anyone's
		t.Errorf("RevokeID with owner 0 = %v", err)
	}
	if _, err := f.store.Use(ctx, Hash(raw2)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Use after RevokeID(owner 0) = %v", err)
	}
}

func TestFlushPersistsSlides(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, tok := f.issue(t, f.alice, time.Hour, 10*time.Minute)
	f.clock.advance(7*time.Minute + 123456789*time.Nanosecond)
	slid := f.clock.now()
	if _, err := f.store.Use(ctx, Hash(raw)); err != nil {
		t.Fatal(err)
	}
	// Not yet written back.
	var stored Token
	if err := f.db.Read.Take(&stored, "id = ?", tok.ID).Error; err != nil {
		t.Fatal(err)
	}
	if !stored.LastUsedAt.Equal(t0) {
		t.Errorf("slide written before Flush: %v", stored.LastUsedAt)
	}
	if err := f.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Read.Take(&stored, "id = ?", tok.ID).Error; err != nil {
		t.Fatal(err)
	}
	if !stored.LastUsedAt.Equal(slid) {
		t.Errorf("after Flush the database has %v, want %v", stored.LastUsedAt, slid)
	}
	// A new store (restart) sees the slide.
	got, err := f.newStore().Peek(ctx, Hash(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsedAt.Equal(slid) {
		t.Errorf("restarted store: LastUsedAt %v, want %v", got.LastUsedAt, slid)
	}
	if err := f.store.Flush(ctx); err != nil { // nothing dirty
		t.Error(err)
	}
}

func TestPurge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alive, _ := f.issue(t, f.alice, time.Hour, 10*time.Minute) // slid in memory only
	idle, _ := f.issue(t, f.alice, time.Hour, 10*time.Minute)  // idle-expired
	short, _ := f.issue(t, f.alice, 5*time.Minute, 0)          // absolute-expired
	long, _ := f.issue(t, f.bob, 24*time.Hour, 0)              // valid, no idle timeout
	elsewhere, _, _ := f.newStore().Issue(ctx, IssueRequest{UserID: f.bob, Dialect: "rest",
		Lifetime: 5 * time.Minute}) // not in this store's cache, absolute-expired later

	f.clock.advance(9 * time.Minute)
	if _, err := f.store.Use(ctx, Hash(alive)); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(2 * time.Minute) // t0+11m: stored last use of "alive" is 11 min old

	n, err := f.store.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Purge deleted %d rows, want 3 (idle, short, elsewhere)", n)
	}
	for name, raw := range map[string]string{"idle": idle, "short": short, "elsewhere": elsewhere} {
		if f.rowCount(t, "hash = ?", Hash(raw)) != 0 {
			t.Errorf("expired token %s not purged", name)
		}
	}
	for name, raw := range map[string]string{"alive": alive, "long": long} {
		if f.rowCount(t, "hash = ?", Hash(raw)) != 1 {
			t.Errorf("live token %s purged", name)
		}
		if _, err := f.store.Use(ctx, Hash(raw)); err != nil {
			t.Errorf("live token %s: %v", name, err)
		}
		if _, err := f.newStore().Use(ctx, Hash(raw)); err != nil {
			t.Errorf("live token %s after restart: %v", name, err)
		}
	}
	f.store.mu.RLock()
	_, cached := f.store.byHash[Hash(idle)]
	f.store.mu.RUnlock()
	if cached {
		t.Error("expired token still cached after Purge")
	}
}

func TestList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _ := f.issue(t, f.alice, time.Hour, 10*time.Minute)
	f.clock.advance(time.Second)
	_, _ = f.issue(t, f.alice, 2*time.Minute, 0) // absolute-expired below
	f.clock.advance(time.Second)
	_, _ = f.issue(t, f.alice, time.Hour, time.Minute) // idle-expired below
	f.clock.advance(time.Second)
	newest, newestTok := f.issue(t, f.alice, time.Hour, 0)
	_, bobTok := f.issue(t, f.bob, time.Hour, 0)

	f.clock.advance(5 * time.Minute)
	if _, err := f.store.Use(ctx, Hash(first)); err != nil { // slide in memory only
		t.Fatal(err)
	}
	toks, err := f.store.List(ctx, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 {
		t.Fatalf("List(alice) returned %d tokens, want 2: %+v", len(toks), toks)
	}
	if toks[0].ID != newestTok.ID || toks[1].Hash != Hash(first) {
		t.Errorf("List order: %s, %s; want newest first", toks[0].ID, toks[1].ID)
	}
	if !toks[1].LastUsedAt.Equal(f.clock.now()) {
		t.Errorf("List shows LastUsedAt %v, want the in-memory slide %v", toks[1].LastUsedAt, f.clock.now())
	}
	_ = newest
	all, err := f.store.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("List(all) returned %d tokens, want 3", len(all))
	}
	found := false
	for _, tk := range all {
		found = found || tk.ID == bobTok.ID
	}
	if !found {
		t.Error("List(all) misses bob's token")
	}
	if none, err := f.store.List(ctx, 424242); err != nil || none == nil || len(none) != 0 {
		t.Errorf("List(no tokens) = %v, %v; want an empty, non-nil slice", none, err)
	}
}

func TestRestartAcceptsValidToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, tok := f.issue(t, f.alice, time.Hour, 10*time.Minute)
	f.clock.advance(5 * time.Minute)
	s2 := f.newStore()
	got, err := s2.Use(ctx, Hash(raw))
	if err != nil {
		t.Fatalf("restarted store rejects a valid token: %v", err)
	}
	if got.ID != tok.ID || got.UserID != f.alice || !got.ExpiresAt.Equal(tok.ExpiresAt) || !got.IssuedAt.Equal(tok.IssuedAt) {
		t.Errorf("restarted store returned %+v, want %+v", got, tok)
	}
	// The stored (not slid) last use governs idle expiry after a restart.
	f.clock.advance(6 * time.Minute)
	if _, err := f.newStore().Use(ctx, Hash(raw)); !errors.Is(err, ErrInvalid) {
		t.Errorf("restarted store accepts a token idle for 11 min: %v", err)
	}
}

func TestConcurrentUseFlushList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var hashes []string
	for range 5 {
		raw, _ := f.issue(t, f.alice, time.Hour, 10*time.Minute)
		hashes = append(hashes, Hash(raw))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := f.store.Use(ctx, hashes[(g+i)%len(hashes)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if err := f.store.Flush(ctx); err != nil {
				t.Error(err)
			}
			if _, err := f.store.List(ctx, f.alice); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		s := core.NewSession("leosac", "", "", nil)
		for i := range 50 {
			f.store.Attach(hashes[i%len(hashes)], s)
			f.store.Detach(hashes[i%len(hashes)], s)
		}
	})
	wg.Wait()
}

// TestPurgeNeverDeletesTokenValidInMemory pins the boundary where the database and the cache
// disagree: SQLite date arithmetic has millisecond precision and Purge deletes at "<=", while
// the cache expires only "After" the deadline. A token still valid in memory is purged from the
// database, then slid by Use; from then on it lives only in the cache, so Revoke (logout) and
// RevokeID no longer find it and it keeps working.
func TestPurgeNeverDeletesTokenValidInMemory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	raw, tok := f.issue(t, f.alice, time.Hour, 10*time.Second)
	h := Hash(raw)
	f.clock.set(t0.Add(10*time.Second - 300*time.Microsecond)) // 0.3 ms before the idle deadline
	if _, err := f.store.Peek(ctx, h); err != nil {
		t.Fatalf("token not valid just before its deadline: %v", err)
	}
	if _, err := f.store.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if f.rowCount(t, "id = ?", tok.ID) != 1 {
		t.Error("Purge deleted a token that the cache still holds valid")
	}
	// Consequence: the token lives on in the cache only, and logout cannot end it.
	if _, err := f.store.Use(ctx, h); err != nil {
		t.Fatalf("Use: %v", err)
	}
	if err := f.store.Revoke(ctx, h, "Logged out."); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Use(ctx, h); !errors.Is(err, ErrInvalid) {
		t.Errorf("after Revoke (logout) the token still works: Use = %v", err)
	}
}

// TestRevokeUserRaceWithUse: RevokeUser copies cached entries (e.tok) of tokens missing from
// the database while holding only the store lock, not the entry lock that Use writes under.
// Run with -race.
func TestRevokeUserRaceWithUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 20 {
		raw, tok := f.issue(t, f.alice, time.Hour, 10*time.Minute)
		// The row disappears behind the cache's back (e.g. purged at the boundary); the cache
		// entry stays, so RevokeUser copies it from the cache.
		if err := f.db.Write.Exec(`DELETE FROM tokens WHERE id = ?`, tok.ID).Error; err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = f.store.Use(ctx, Hash(raw))
				}
			}
		})
		if _, err := f.store.RevokeUser(ctx, f.alice, "", "x"); err != nil {
			t.Error(err)
		}
		close(stop)
		wg.Wait()
	}
}

func TestSubSecondIdleIsNotDropped(t *testing.T) {
	f := newFixture(t)
	raw, tok := f.issue(t, f.alice, time.Hour, 500*time.Millisecond)
	if tok.IdleSeconds == 0 {
		t.Errorf("Idle 500ms stored as IdleSeconds 0, which means no idle timeout")
	}
	f.clock.advance(time.Minute)
	if _, err := f.store.Use(context.Background(), Hash(raw)); !errors.Is(err, ErrInvalid) {
		t.Errorf("token with a 500ms idle timeout still valid after a minute idle: %v", err)
	}
}
