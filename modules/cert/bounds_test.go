package cert_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"

	"gatehouse/modules/cert"
)

// TestKeysPerUserBounded (issue 10, point 5): a plain user cannot grow the database by
// registering keys without end; beyond cert.MaxKeysPerUser the registration is a
// MODEL_EXCEPTION on pub_key, and revoking one makes room again.
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
		k := register(t, s.alice, newKey(), fmt.Sprint("key ", i), "")
		if i == 0 {
			first = k
		}
	}
	r := s.alice.Call("cert.register", map[string]any{"pub_key": newKey(), "nickname": "one too many"})
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
	if n := len(list(t, s.alice)); n != cert.MaxKeysPerUser {
		t.Fatalf("alice holds %d keys, want %d", n, cert.MaxKeysPerUser)
	}
	// Another user is not affected; a revocation makes room.
	register(t, s.bob, newKey(), "bob's", "")
	if r := s.alice.Call("cert.revoke", map[string]any{"cert_id": first.ID}); r.StatusCode != 0 {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.Content)
	}
	register(t, s.alice, newKey(), "replacement", "")
}
