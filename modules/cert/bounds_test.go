package cert_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"

	"gatehouse/modules/cert"
	"gatehouse/modules/resource"
)

// TestKeysPerUserBounded (issue 10, point 5): nobody grows the database by registering keys
// without end; beyond cert.MaxKeysPerUser the registration is a MODEL_EXCEPTION on pub_key,
// and revoking one makes room again. (The administrator registers here: a plain user also
// meets the budget of changes per minute, tested below.)
func TestKeysPerUserBounded(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	newKey := func() string {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		return pubB64(t, pub)
	}
	var first certReply
	for i := range cert.MaxKeysPerUser {
		k := register(t, s.admin, newKey(), fmt.Sprint("key ", i), "")
		if i == 0 {
			first = k
		}
	}
	r := s.admin.Call("cert.register", map[string]any{"pub_key": newKey(), "nickname": "one too many"})
	var v struct {
		Errors []struct {
			Detail string
			Source struct{ Pointer string }
		}
	}
	if err := json.Unmarshal(r.Content, &v); err != nil || r.StatusCode != 11 || len(v.Errors) != 1 ||
		v.Errors[0].Source.Pointer != "data/attributes/pub_key" {
		t.Fatalf("key %d: %d %s, want a MODEL_EXCEPTION on pub_key", cert.MaxKeysPerUser+1, r.StatusCode, r.Content)
	}
	var mine int
	for _, k := range list(t, s.admin) {
		if k.UserID == s.adminIdentity.UserID {
			mine++
		}
	}
	if mine != cert.MaxKeysPerUser {
		t.Fatalf("the administrator holds %d keys, want %d", mine, cert.MaxKeysPerUser)
	}
	// Another user is not affected; a revocation makes room.
	register(t, s.bob, newKey(), "bob's", "")
	if r := s.admin.Call("cert.revoke", map[string]any{"cert_id": first.ID}); r.StatusCode != 0 {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Content)
	}
	register(t, s.admin, newKey(), "replacement", "")
}

// TestKeyChangesBudgeted: a plain user's registrations and revocations draw on the budget of
// changes a minute (resource.SelfServiceChangesPerMinute); beyond it they are RATE_LIMITED and
// nothing is written.
func TestKeyChangesBudgeted(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	ok, refused := 0, false
	for i := 0; i < 4*resource.SelfServiceChangesPerMinute && !refused; i++ {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		r := s.alice.Call("cert.register", map[string]any{"pub_key": pubB64(t, pub), "nickname": fmt.Sprint("key ", i)})
		switch r.StatusCode {
		case 0:
			ok++
		case 3: // RATE_LIMITED
			refused = true
		default:
			t.Fatalf("register %d: %d %s", i, r.StatusCode, r.Content)
		}
	}
	if !refused || ok < resource.SelfServiceChangesPerMinute {
		t.Fatalf("%d registrations accepted, refused: %v", ok, refused)
	}
	if n := len(list(t, s.alice)); n != ok {
		t.Errorf("alice holds %d keys after %d accepted registrations", n, ok)
	}
	// Bob's budget is his own.
	pub, _, _ := ed25519.GenerateKey(nil)
	register(t, s.bob, pubB64(t, pub), "bob's", "")
}
