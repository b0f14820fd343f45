package cert_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/cert"
)

// clock is a settable time source for the module's challenges and limits.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func withClock(s *site) *clock {
	c := &clock{t: time.Now()}
	cert.SetClock(s.mod, c.now)
	return c
}

func signModern(t *testing.T, priv crypto.Signer, challenge string) []byte {
	t.Helper()
	msg := []byte(cert.ModernContext + challenge)
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(msg)
		sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	t.Fatalf("no modern signature with %T", priv)
	return nil
}

// signLegacy signs as sysadm clients do: PKCS#1 v1.5, no hash, over the raw challenge.
func signLegacy(t *testing.T, k *rsa.PrivateKey, challenge string) []byte {
	t.Helper()
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.Hash(0), []byte(challenge))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func challenge(t *testing.T, m *cert.Module, bind string, key *cert.KeyRef) string {
	t.Helper()
	c, err := m.NewChallenge(bind, bind, key) // each bind its own source
	if err != nil {
		t.Fatalf("NewChallenge(%s): %v", bind, err)
	}
	return c
}

func wantDenied(t *testing.T, what string, uid int64, err error) {
	t.Helper()
	if uid != 0 || codeOf(err) != core.PermissionDenied {
		t.Errorf("%s: user %d, %v; want PERMISSION_DENIED", what, uid, err)
	}
}

func TestChallengeShape(t *testing.T) {
	s := startSite(t)
	seen := map[string]bool{}
	for i := range 5 {
		c := challenge(t, s.mod, "shape"+string(rune('a'+i)), nil)
		if len(c) != cert.ChallengeLength {
			t.Fatalf("challenge %q: length %d", c, len(c))
		}
		for _, r := range c {
			if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
				t.Fatalf("challenge %q: not alphanumeric", c)
			}
		}
		if seen[c] {
			t.Fatalf("challenge %q issued twice", c)
		}
		seen[c] = true
	}
	if _, err := s.mod.NewChallenge("", "", nil); codeOf(err) != core.InvalidArgument {
		t.Errorf("empty bind: %v", err)
	}
}

func TestModernProof(t *testing.T) {
	s := startSite(t)
	clk := withClock(s)
	ctx := context.Background()
	ed := newEd25519(t)
	p256 := newECDSA(t, elliptic.P256())
	edReg, err := s.mod.Register(ctx, s.aliceIdentity, pubB64(t, ed.Public()), "alice ed", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.mod.Register(ctx, s.bobIdentity, pemOf(t, &p256.PublicKey), "bob ec", ""); err != nil {
		t.Fatal(err)
	}

	t.Run("ed25519 by pub_key", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-1", &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())})
		sig := signModern(t, ed, c)
		uid, err := s.mod.Verify(ctx, "conn-1", sig)
		if err != nil || uid != s.aliceID {
			t.Fatalf("Verify = %d, %v; want alice %d", uid, err, s.aliceID)
		}
		uid, err = s.mod.Verify(ctx, "conn-1", sig)
		wantDenied(t, "replayed signature", uid, err)
	})
	t.Run("ecdsa-p256 by key_id", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-2", &cert.KeyRef{KeyID: fingerprint(t, &p256.PublicKey)})
		uid, err := s.mod.Verify(ctx, "conn-2", signModern(t, p256, c))
		if err != nil || uid != s.bobID {
			t.Fatalf("Verify = %d, %v; want bob %d", uid, err, s.bobID)
		}
	})
	t.Run("ed25519 key_id in upper case", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-2b", &cert.KeyRef{KeyID: upper(edReg.Fingerprint)})
		if uid, err := s.mod.Verify(ctx, "conn-2b", signModern(t, ed, c)); err != nil || uid != s.aliceID {
			t.Fatalf("Verify = %d, %v", uid, err)
		}
	})
	t.Run("signature without the context prefix", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-3", &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())})
		uid, err := s.mod.Verify(ctx, "conn-3", ed25519.Sign(ed, []byte(c)))
		wantDenied(t, "raw challenge signed", uid, err)
	})
	t.Run("only the named key is tried", func(t *testing.T) {
		// Alice names bob's key but signs with her own registered key.
		c := challenge(t, s.mod, "conn-4", &cert.KeyRef{PubKeyB64PEM: pubB64(t, &p256.PublicKey)})
		uid, err := s.mod.Verify(ctx, "conn-4", signModern(t, ed, c))
		wantDenied(t, "signature by another registered key", uid, err)
	})
	t.Run("unregistered key", func(t *testing.T) {
		other := newEd25519(t)
		c, err := s.mod.NewChallenge("conn-5", "conn-5", &cert.KeyRef{PubKeyB64PEM: pubB64(t, other.Public())})
		if err != nil {
			t.Fatalf("issuance must not reveal whether a key is registered: %v", err)
		}
		uid, err := s.mod.Verify(ctx, "conn-5", signModern(t, other, c))
		wantDenied(t, "unregistered key", uid, err)
	})
	t.Run("challenge of another bind", func(t *testing.T) {
		ref := &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())}
		a := challenge(t, s.mod, "conn-a", ref)
		challenge(t, s.mod, "conn-b", ref)
		uid, err := s.mod.Verify(ctx, "conn-b", signModern(t, ed, a))
		wantDenied(t, "conn-a's challenge answered on conn-b", uid, err)
		uid, err = s.mod.Verify(ctx, "conn-nothing", signModern(t, ed, a))
		wantDenied(t, "answer on a bind with no challenge", uid, err)
	})
	t.Run("a new challenge replaces the old", func(t *testing.T) {
		ref := &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())}
		old := challenge(t, s.mod, "conn-6", ref)
		challenge(t, s.mod, "conn-6", ref)
		uid, err := s.mod.Verify(ctx, "conn-6", signModern(t, ed, old))
		wantDenied(t, "superseded challenge", uid, err)
	})
	t.Run("expiry", func(t *testing.T) {
		ref := &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())}
		c := challenge(t, s.mod, "conn-7", ref)
		clk.advance(cert.ChallengeTTL - time.Second)
		if uid, err := s.mod.Verify(ctx, "conn-7", signModern(t, ed, c)); err != nil || uid != s.aliceID {
			t.Fatalf("answered within 30s: %d, %v", uid, err)
		}
		c = challenge(t, s.mod, "conn-7", ref)
		clk.advance(cert.ChallengeTTL + time.Second)
		uid, err := s.mod.Verify(ctx, "conn-7", signModern(t, ed, c))
		wantDenied(t, "expired challenge", uid, err)
	})
	t.Run("a failed answer consumes the challenge", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-8", &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())})
		uid, err := s.mod.Verify(ctx, "conn-8", make([]byte, ed25519.SignatureSize))
		wantDenied(t, "zero signature", uid, err)
		uid, err = s.mod.Verify(ctx, "conn-8", signModern(t, ed, c))
		wantDenied(t, "good signature after a failed one", uid, err)
	})
	t.Run("revoked key", func(t *testing.T) {
		c := challenge(t, s.mod, "conn-9", &cert.KeyRef{PubKeyB64PEM: pubB64(t, ed.Public())})
		if err := s.mod.Revoke(ctx, s.aliceIdentity, edReg.ID); err != nil {
			t.Fatal(err)
		}
		uid, err := s.mod.Verify(ctx, "conn-9", signModern(t, ed, c))
		wantDenied(t, "key revoked after issuance", uid, err)
	})
	t.Run("bad key references", func(t *testing.T) {
		testKeys(t)
		for name, ref := range map[string]*cert.KeyRef{
			"none":            {},
			"both":            {PubKeyB64PEM: pubB64(t, ed.Public()), KeyID: edReg.Fingerprint},
			"short key_id":    {KeyID: "abcd"},
			"garbage pub_key": {PubKeyB64PEM: "garbage"},
			"rsa is legacy":   {PubKeyB64PEM: pubB64(t, &rsaKeys[0].PublicKey)},
			"non-hex key_id":  {KeyID: "g" + edReg.Fingerprint[1:]},
		} {
			if _, err := s.mod.NewChallenge("conn-bad", "conn-bad", ref); codeOf(err) != core.InvalidArgument {
				t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
			}
		}
	})
	if _, err := s.mod.Verify(ctx, "conn-1", nil); codeOf(err) != core.InvalidArgument {
		t.Errorf("empty signature: %v", err)
	}
}

func TestLegacyProof(t *testing.T) {
	testKeys(t)
	s := startSite(t)
	withClock(s)
	ctx := context.Background()
	aliceRSA, bobRSA := rsaKeys[0], rsaKeys[1]
	if _, err := s.mod.Register(ctx, s.aliceIdentity, pubB64(t, &aliceRSA.PublicKey), "alice rsa", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mod.Register(ctx, s.bobIdentity, pubB64(t, &bobRSA.PublicKey), "bob rsa", ""); err != nil {
		t.Fatal(err)
	}
	// An Ed25519 key is never tried by a legacy proof.
	if _, err := s.mod.Register(ctx, s.bobIdentity, pubB64(t, newEd25519(t).Public()), "", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who  string
		key  *rsa.PrivateKey
		want int64
	}{{"alice", aliceRSA, s.aliceID}, {"bob", bobRSA, s.bobID}} {
		c := challenge(t, s.mod, "legacy-"+tc.who, nil)
		sig := signLegacy(t, tc.key, c)
		if uid, err := s.mod.Verify(ctx, "legacy-"+tc.who, sig); err != nil || uid != tc.want {
			t.Fatalf("%s: Verify = %d, %v; want %d", tc.who, uid, err, tc.want)
		}
		uid, err := s.mod.Verify(ctx, "legacy-"+tc.who, sig)
		wantDenied(t, tc.who+" replay", uid, err)
	}

	c := challenge(t, s.mod, "legacy-x", nil)
	sig := signLegacy(t, aliceRSA, c)
	uid, err := s.mod.Verify(ctx, "legacy-x", sig[:len(sig)-1])
	wantDenied(t, "signature one byte short", uid, err)

	c = challenge(t, s.mod, "legacy-x", nil)
	uid, err = s.mod.Verify(ctx, "legacy-x", append(signLegacy(t, aliceRSA, c), 0))
	wantDenied(t, "signature one byte long", uid, err)

	c = challenge(t, s.mod, "legacy-x", nil)
	uid, err = s.mod.Verify(ctx, "legacy-x", signLegacy(t, rsaKeys[3], c))
	wantDenied(t, "signature by an unregistered RSA key", uid, err)

	c = challenge(t, s.mod, "legacy-x", nil)
	sig, err = rsa.SignPKCS1v15(nil, aliceRSA, crypto.SHA256, sha256sum(c))
	if err != nil {
		t.Fatal(err)
	}
	uid, err = s.mod.Verify(ctx, "legacy-x", sig)
	wantDenied(t, "hashed signature where the raw one is expected", uid, err)

	// A modern challenge cannot be answered with a legacy signature, nor the reverse.
	c = challenge(t, s.mod, "legacy-x", &cert.KeyRef{KeyID: fingerprint(t, &aliceRSA.PublicKey)})
	uid, err = s.mod.Verify(ctx, "legacy-x", signLegacy(t, aliceRSA, c))
	wantDenied(t, "legacy signature to a modern challenge", uid, err)

	a := challenge(t, s.mod, "legacy-a", nil)
	challenge(t, s.mod, "legacy-b", nil)
	uid, err = s.mod.Verify(ctx, "legacy-b", signLegacy(t, aliceRSA, a))
	wantDenied(t, "legacy challenge of another bind", uid, err)
}

func sha256sum(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// The legacy proof tries at most legacy_max_keys keys and spends a per-minute budget of key
// checks; beyond it, RATE_LIMITED until the budget refills.
func TestLegacyProofIsBounded(t *testing.T) {
	testKeys(t)
	s := startSite(t, coretest.WithModuleConfig("cert", `{"legacy_max_keys": 2, "legacy_checks_per_minute": 4}`))
	clk := withClock(s)
	ctx := context.Background()
	for i, who := range []*core.Identity{s.aliceIdentity, s.bobIdentity, s.bobIdentity} {
		if _, err := s.mod.Register(ctx, who, pubB64(t, &rsaKeys[i].PublicKey), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	// The third key (bob's newest) is beyond legacy_max_keys: it cannot log in this way.
	c := challenge(t, s.mod, "b", nil)
	uid, err := s.mod.Verify(ctx, "b", signLegacy(t, rsaKeys[2], c))
	wantDenied(t, "key beyond legacy_max_keys", uid, err) // spent 2 checks

	c = challenge(t, s.mod, "b", nil)
	if uid, err := s.mod.Verify(ctx, "b", signLegacy(t, rsaKeys[1], c)); err != nil || uid != s.bobID {
		t.Fatalf("bob within budget: %d, %v", uid, err) // spent 2 more: budget empty
	}
	c = challenge(t, s.mod, "b", nil)
	if uid, err := s.mod.Verify(ctx, "b", signLegacy(t, rsaKeys[0], c)); codeOf(err) != core.RateLimited || uid != 0 {
		t.Fatalf("over budget: %d, %v; want RATE_LIMITED", uid, err)
	}
	clk.advance(time.Minute)
	c = challenge(t, s.mod, "b", nil)
	if uid, err := s.mod.Verify(ctx, "b", signLegacy(t, rsaKeys[0], c)); err != nil || uid != s.aliceID {
		t.Fatalf("after a minute: %d, %v", uid, err)
	}
}

func TestChallengeIssuanceIsRateLimited(t *testing.T) {
	s := startSite(t, coretest.WithModuleConfig("cert", `{"bind_challenges_per_minute": 12, "challenges_per_second": 2}`))
	clk := withClock(s)
	// Per bind: a burst of 5, then one every 5 s.
	for i := range 5 {
		if _, err := s.mod.NewChallenge("one", "one", nil); err != nil {
			t.Fatalf("challenge %d of the burst: %v", i+1, err)
		}
	}
	if _, err := s.mod.NewChallenge("one", "one", nil); codeOf(err) != core.RateLimited {
		t.Fatalf("6th challenge on one bind: %v, want RATE_LIMITED", err)
	}
	clk.advance(5 * time.Second)
	if _, err := s.mod.NewChallenge("one", "one", nil); err != nil {
		t.Fatalf("after 5s: %v", err)
	}
	// Globally: 2 per second with a burst of 10; the first bind spent 6 of it.
	clk.advance(2 * time.Second) // +4
	var limited bool
	for i := range 12 {
		if _, err := s.mod.NewChallenge("many-"+string(rune('a'+i)), "many-"+string(rune('a'+i)), nil); codeOf(err) == core.RateLimited {
			limited = true
			if i < 8 {
				t.Fatalf("global limit hit after %d binds", i)
			}
			break
		}
	}
	if !limited {
		t.Fatal("12 binds at once were never limited globally")
	}
}

// One source address, however many binds (connections) it opens, gets a burst of 20 and then
// source_challenges_per_minute; the refused requests spend no other budget, and every other
// source still gets its challenges. IPv6 clients are budgeted by /64.
func TestChallengesAreBudgetedPerSource(t *testing.T) {
	s := startSite(t, coretest.WithModuleConfig("cert", `{"source_challenges_per_minute": 30, "challenges_per_second": 5}`))
	clk := withClock(s)
	for i := range 20 {
		if _, err := s.mod.NewChallenge(fmt.Sprint("loop-", i), fmt.Sprintf("192.0.2.1:%d", 40000+i), nil); err != nil {
			t.Fatalf("challenge %d of the source's burst: %v", i+1, err)
		}
	}
	for i := range 100 {
		if _, err := s.mod.NewChallenge(fmt.Sprint("loop-more-", i), fmt.Sprintf("192.0.2.1:%d", 50000+i), nil); codeOf(err) != core.RateLimited {
			t.Fatalf("connection %d from the same address: %v, want RATE_LIMITED", i, err)
		}
	}
	// The global budget (5/s, burst 25) kept 5 for everyone else: the refusals spent none.
	for i := range 5 {
		if _, err := s.mod.NewChallenge(fmt.Sprint("legit-", i), fmt.Sprintf("198.51.100.%d:1234", i), nil); err != nil {
			t.Fatalf("another address (%d): %v", i, err)
		}
	}
	// The source's budget refills at 30/min: one more every 2 s.
	clk.advance(2 * time.Second)
	if _, err := s.mod.NewChallenge("loop-late", "192.0.2.1:1", nil); err != nil {
		t.Fatalf("after 2 s, the looping address gets one: %v", err)
	}
	if _, err := s.mod.NewChallenge("loop-later", "192.0.2.1:2", nil); codeOf(err) != core.RateLimited {
		t.Fatalf("and only one: %v", err)
	}

	for remote, want := range map[string]string{
		"192.0.2.1:80":              "192.0.2.1",
		"[::ffff:192.0.2.1]:80":     "192.0.2.1",
		"[2001:db8:1:2:3::4]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":          "fe80::/64",
		"unix(uid=1000)":            "unix(uid=1000)",
	} {
		if got := cert.SourceKey(remote); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", remote, got, want)
		}
	}
}

// Binds that stopped asking are forgotten (lazily, on a later issuance): the store does not
// grow with every connection ever seen.
func TestForgottenBindsAreSwept(t *testing.T) {
	s := startSite(t, coretest.WithModuleConfig("cert", `{"challenges_per_second": 1000}`))
	clk := withClock(s)
	for i := range 50 {
		challenge(t, s.mod, "sweep-"+string(rune('A'+i)), nil)
	}
	if n := cert.Binds(s.mod); n != 50 {
		t.Fatalf("%d binds remembered, want 50", n)
	}
	clk.advance(2 * time.Minute)
	challenge(t, s.mod, "late", nil)
	if n := cert.Binds(s.mod); n != 1 {
		t.Errorf("%d binds remembered after sweeping, want 1", n)
	}
	s.mod.Forget("late")
	if n := cert.Binds(s.mod); n != 0 {
		t.Errorf("%d binds remembered after Forget, want 0", n)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
