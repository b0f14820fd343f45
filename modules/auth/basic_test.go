package auth

import (
	"encoding/base64"
	"net/http"
	"testing"
)

func TestDecodeBasic(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, cred, user, pass string
		ok                     bool
	}{
		{"ascii", b64("alice:s3cret"), "alice", "s3cret", true},
		{"colon in the password", b64("alice:a:b:c"), "alice", "a:b:c", true},
		{"utf-8", b64("zoé:mot de passe é"), "zoé", "mot de passe é", true},
		{"latin-1", b64("zo\xe9:pass\xe9"), "zoé", "passé", true},
		{"empty user and password", b64(":"), "", "", true},
		{"no colon", b64("alice"), "", "", false},
		{"not base64", "!!!", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, p, ok := DecodeBasic(tc.cred)
			if u != tc.user || p != tc.pass || ok != tc.ok {
				t.Errorf("DecodeBasic(%q) = %q, %q, %v; want %q, %q, %v", tc.cred, u, p, ok, tc.user, tc.pass, tc.ok)
			}
		})
	}
	r, _ := http.NewRequest("GET", "/", nil)
	for _, h := range []string{"", "Bearer abc", "Basic", "Basic " + b64("alice")} {
		r.Header.Set("Authorization", h)
		if _, _, ok := BasicAuth(r); ok {
			t.Errorf("BasicAuth with %q: ok", h)
		}
	}
	r.Header.Set("Authorization", "basic "+b64("zo\xe9:x"))
	if u, p, ok := BasicAuth(r); !ok || u != "zoé" || p != "x" {
		t.Errorf("BasicAuth lower-case scheme, Latin-1: %q %q %v", u, p, ok)
	}
}
