package sysadm_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"regexp"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// TestListSSLCertsShape checks list_ssl_certs against the reference (A.6): per username, the
// base64 of the key's PEM mapped to "Nickname: …\nEmail: …\nDate Registered: …", plus the
// fingerprint and algorithm gatehouse adds; and that each listed key, as listed, revokes it
// (as sysadm clients do), as do its PEM text and its fingerprint.
func TestListSSLCertsShape(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "ines", "ines-password", core.RankUser)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2Key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edB64, edFP := pubB64PEM(t, edPub)
	ecB64, ecFP := pubB64PEM(t, &ecKey.PublicKey)
	ec2B64, ec2FP := pubB64PEM(t, &ec2Key.PublicKey)

	ines := dial(t, wsURL(srv))
	ines.login("ines", "ines-password")
	var list map[string]map[string]string
	ines.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if list == nil || len(list) != 0 {
		t.Fatalf("empty list: %v", list)
	}
	ines.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": edB64, "nickname": "yubikey", "email": "ines@example.org"})
	ines.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": ecB64})
	ines.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": ec2B64, "nickname": "phone"})
	admin := dial(t, wsURL(srv))
	admin.login("admin", coretest.AdminPassword)
	admin.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b, _ := pubB64PEM(t, &k.PublicKey)
		return b
	}()})

	list = nil
	ines.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if len(list) != 1 || len(list["ines"]) != 3 {
		t.Fatalf("ines's list: %v", list)
	}
	details := regexp.MustCompile(`^Nickname: ([^\n]*)\nEmail: ([^\n]*)\nDate Registered: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\nFingerprint: ([0-9a-f]{64})\nAlgorithm: (ed25519|ecdsa-p256|rsa)$`)
	want := map[string][3]string{ // base64 PEM → nickname, email, algorithm
		edB64:  {"yubikey", "ines@example.org", "ed25519"},
		ecB64:  {"", "", "ecdsa-p256"},
		ec2B64: {"phone", "", "ecdsa-p256"},
	}
	for key, value := range list["ines"] {
		w, ok := want[key]
		if !ok {
			t.Fatalf("listed key %q is not the base64 PEM of a registered key", key)
		}
		m := details.FindStringSubmatch(value)
		if m == nil || m[1] != w[0] || m[2] != w[1] || m[5] != w[2] {
			t.Fatalf("details of %s: %q", w[2], value)
		}
		// The key decodes to a PEM PUBLIC KEY whose SPKI has the listed fingerprint.
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			t.Fatalf("key is not base64: %v", err)
		}
		block, _ := pem.Decode(raw)
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("key is not a PEM PUBLIC KEY: %q", raw)
		}
		if sum := sha256.Sum256(block.Bytes); hex.EncodeToString(sum[:]) != m[4] {
			t.Fatalf("fingerprint %s is not the key's", m[4])
		}
	}
	// The administrator sees both users.
	list = nil
	admin.ok("rpc", "settings", map[string]any{"action": "list_ssl_certificates"}).decode(t, &list)
	if len(list["ines"]) != 3 || len(list["admin"]) != 1 {
		t.Fatalf("administrator's list: %v", list)
	}

	// Revoke with a key exactly as listed (base64 PEM), with the PEM text, with the fingerprint.
	pemText, _ := base64.StdEncoding.DecodeString(ecB64)
	ines.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": edB64})
	ines.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": string(pemText)})
	ines.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_certificate", "pub_key": ec2FP})
	for _, gone := range []string{edFP, ecFP, edB64} {
		ines.wantCode("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": gone}, 400)
	}
	list = nil
	ines.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("after revoking all: %v", list)
	}
	for _, bad := range []any{5, []string{"x"}, "not a key"} {
		ines.wantCode("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": bad}, 400)
	}
}
