package cert_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/cert"
	"gatehouse/modules/wsapi/wstest"
)

// cheapHashing keeps password hashing fast: the keys are what is tested.
var cheapHashing = coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`)

// site is a running server with an administrator and two users, alice and bob (rank user).
type site struct {
	srv            *coretest.Server
	mod            *cert.Module
	admin          *wstest.Client
	alice, bob     *wstest.Client
	aliceID, bobID int64
	aliceIdentity  *core.Identity
	bobIdentity    *core.Identity
	adminIdentity  *core.Identity
}

func startSite(t *testing.T, opts ...coretest.Option) *site {
	t.Helper()
	srv := coretest.Start(t, append([]coretest.Option{cheapHashing}, opts...)...)
	mod, ok := srv.App().Module(cert.ModuleID)
	if !ok {
		t.Fatal("cert module not loaded")
	}
	am, _ := srv.App().Module(auth.ModuleID)
	a := am.(*auth.Module)
	s := &site{srv: srv, mod: mod.(*cert.Module)}
	s.admin = wstest.Dial(t, srv.WSURL)
	s.admin.Login("admin", coretest.AdminPassword)
	adminUser, err := a.Users().ByUsername(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	s.adminIdentity = &core.Identity{UserID: adminUser.ID, Username: "admin", Rank: core.RankAdministrator}
	mk := func(name string) (*wstest.Client, int64) {
		hash, err := a.Hasher().Hash(context.Background(), "password-"+name)
		if err != nil {
			t.Fatal(err)
		}
		u := &auth.User{Username: name, PasswordHash: hash, Rank: core.RankUser, ValidityEnabled: true}
		if err := a.Users().Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		c := wstest.Dial(t, srv.WSURL)
		c.Login(name, "password-"+name)
		return c, u.ID
	}
	s.alice, s.aliceID = mk("alice")
	s.bob, s.bobID = mk("bob")
	s.aliceIdentity = &core.Identity{UserID: s.aliceID, Username: "alice", Rank: core.RankUser}
	s.bobIdentity = &core.Identity{UserID: s.bobID, Username: "bob", Rank: core.RankUser}
	return s
}

// certReply is a key as cert.list and cert.register send it.
type certReply struct {
	ID           int64  `json:"id"`
	UserID       int64  `json:"user_id"`
	Username     string `json:"username"`
	Fingerprint  string `json:"fingerprint"`
	Algorithm    string `json:"algorithm"`
	Nickname     string `json:"nickname"`
	Email        string `json:"email"`
	RegisteredAt string `json:"registered_at"`
}

func register(t *testing.T, c *wstest.Client, pubKey, nickname, email string) certReply {
	t.Helper()
	r := c.Call("cert.register", map[string]any{"pub_key": pubKey, "nickname": nickname, "email": email})
	if r.StatusCode != 0 {
		t.Fatalf("cert.register: %d %s %s", r.StatusCode, r.StatusString, r.Content)
	}
	var out certReply
	r.Decode(t, &out)
	return out
}

func list(t *testing.T, c *wstest.Client) []certReply {
	t.Helper()
	r := c.Call("cert.list", map[string]any{})
	if r.StatusCode != 0 {
		t.Fatalf("cert.list: %d %s", r.StatusCode, r.StatusString)
	}
	var out []certReply
	r.Decode(t, &out)
	return out
}

var rfc3339Z = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

func TestRegisterEveryKeyType(t *testing.T) {
	testKeys(t)
	s := startSite(t)
	ed := newEd25519(t)
	p256 := newECDSA(t, elliptic.P256())
	p256b := newECDSA(t, elliptic.P256())
	rk := rsaKeys[0]
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKeys[1].PublicKey)}))
	for _, tc := range []struct {
		name, input, alg string
		pub              crypto.PublicKey
	}{
		{"rsa-2048 PUBLIC KEY, base64", pubB64(t, &rk.PublicKey), "rsa", &rk.PublicKey},
		{"rsa-2048 RSA PUBLIC KEY, raw PEM", pkcs1, "rsa", &rsaKeys[1].PublicKey},
		{"ed25519 PUBLIC KEY, raw PEM", pemOf(t, ed.Public()), "ed25519", ed.Public()},
		{"ecdsa-p256 PUBLIC KEY, base64", pubB64(t, &p256.PublicKey), "ecdsa-p256", &p256.PublicKey},
		{"ecdsa-p256 expired CERTIFICATE, base64", b64(certPEM(t, p256b, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))), "ecdsa-p256", &p256b.PublicKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Second)
			got := register(t, s.alice, tc.input, "laptop "+tc.alg, "alice@example.com")
			if got.ID == 0 || got.UserID != s.aliceID || got.Username != "alice" || got.Algorithm != tc.alg ||
				got.Nickname != "laptop "+tc.alg || got.Email != "alice@example.com" {
				t.Errorf("registered %+v", got)
			}
			if want := fingerprint(t, tc.pub); got.Fingerprint != want {
				t.Errorf("fingerprint %s, want %s", got.Fingerprint, want)
			}
			at, err := time.Parse(time.RFC3339, got.RegisteredAt)
			if !rfc3339Z.MatchString(got.RegisteredAt) || err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("registered_at %q", got.RegisteredAt)
			}
		})
	}
	if n := len(list(t, s.alice)); n != 5 {
		t.Errorf("alice lists %d keys, want 5", n)
	}
}

func TestRegisterRejects(t *testing.T) {
	testKeys(t)
	s := startSite(t)
	p384 := newECDSA(t, elliptic.P384())
	taken := pubB64(t, &rsaKeys[2].PublicKey)
	register(t, s.bob, taken, "bob's", "")
	for _, tc := range []struct {
		name, pubKey, nickname, email string
		pointer, detail               string
	}{
		{"rsa-1024", pubB64(t, &rsa1024.PublicKey), "", "", "data/attributes/pub_key", "1024 bits is too small"},
		{"ecdsa p-384", pubB64(t, &p384.PublicKey), "", "", "data/attributes/pub_key", "P-384 is not supported"},
		{"not a key", b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}}))), "", "", "data/attributes/pub_key", "is not a public key"},
		{"garbage", "%%% garbage %%%", "", "", "data/attributes/pub_key", "neither PEM nor base64"},
		{"missing", "", "", "", "data/attributes/pub_key", "empty"},
		{"huge", strings.Repeat("QUFB", 5000), "", "", "data/attributes/pub_key", "longer than"},
		{"already registered by someone else", taken, "", "", "data/attributes/pub_key", "already registered"},
		{"nickname too long", pubB64(t, &rsaKeys[3].PublicKey), strings.Repeat("n", cert.MaxNickname+1), "", "data/attributes/nickname", "at most 64"},
		{"bad email", pubB64(t, &rsaKeys[3].PublicKey), "", "Alice <alice@example.com>", "data/attributes/email", "plain address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.alice.Call("cert.register", map[string]any{"pub_key": tc.pubKey, "nickname": tc.nickname, "email": tc.email})
			if r.StatusCode != int(core.ModelException) {
				t.Fatalf("status %d %q, want MODEL_EXCEPTION", r.StatusCode, r.StatusString)
			}
			var content struct {
				Errors []struct {
					Detail string `json:"detail"`
					Source struct {
						Pointer string `json:"pointer"`
					} `json:"source"`
				} `json:"errors"`
			}
			r.Decode(t, &content)
			if len(content.Errors) != 1 || content.Errors[0].Source.Pointer != tc.pointer || !strings.Contains(content.Errors[0].Detail, tc.detail) {
				t.Errorf("errors %+v, want one at %s mentioning %q", content.Errors, tc.pointer, tc.detail)
			}
			if strings.Contains(r.StatusString, "bob") {
				t.Errorf("the error names the owner: %q", r.StatusString)
			}
		})
	}
	if got := list(t, s.alice); len(got) != 0 {
		t.Errorf("alice has keys after refusals: %+v", got)
	}
	if r := s.alice.Call("cert.register", map[string]any{"pub_key": 12}); r.StatusCode != int(core.InvalidArgument) {
		t.Errorf("pub_key of the wrong type: %d, want INVALID_ARGUMENT", r.StatusCode)
	}
}

func TestListAndRevokeRights(t *testing.T) {
	s := startSite(t)
	aliceKey := register(t, s.alice, pubB64(t, newEd25519(t).Public()), "alice laptop", "")
	aliceKey2 := register(t, s.alice, pubB64(t, newEd25519(t).Public()), "alice phone", "")
	bobKey := register(t, s.bob, pubB64(t, &newECDSA(t, elliptic.P256()).PublicKey), "bob", "")

	ids := func(cs []certReply) string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%d:%s", c.ID, c.Username))
		}
		return strings.Join(out, ",")
	}
	if got, want := ids(list(t, s.alice)), fmt.Sprintf("%d:alice,%d:alice", aliceKey.ID, aliceKey2.ID); got != want {
		t.Errorf("alice lists %s, want %s", got, want)
	}
	if got, want := ids(list(t, s.bob)), fmt.Sprintf("%d:bob", bobKey.ID); got != want {
		t.Errorf("bob lists %s, want %s", got, want)
	}
	if got, want := ids(list(t, s.admin)), fmt.Sprintf("%d:alice,%d:alice,%d:bob", aliceKey.ID, aliceKey2.ID, bobKey.ID); got != want {
		t.Errorf("admin lists %s, want %s", got, want)
	}

	// Another user's key looks like no key at all.
	r := s.alice.Call("cert.revoke", map[string]any{"cert_id": bobKey.ID})
	if r.StatusCode != int(core.EntityNotFound) {
		t.Errorf("alice revoking bob's key: %d %q, want ENTITY_NOT_FOUND", r.StatusCode, r.StatusString)
	}
	unknown := s.alice.Call("cert.revoke", map[string]any{"cert_id": 9999})
	if unknown.StatusCode != int(core.EntityNotFound) || strings.ReplaceAll(unknown.StatusString, "9999", "") != strings.ReplaceAll(r.StatusString, fmt.Sprint(bobKey.ID), "") {
		t.Errorf("unknown id answers %d %q, someone else's %q: they must look alike", unknown.StatusCode, unknown.StatusString, r.StatusString)
	}
	if len(list(t, s.bob)) != 1 {
		t.Fatal("bob's key was revoked by alice")
	}
	if r := s.alice.Call("cert.revoke", map[string]any{"cert_id": "x"}); r.StatusCode != int(core.InvalidArgument) {
		t.Errorf("cert_id of the wrong type: %d", r.StatusCode)
	}

	// Own key: revoked.
	if r := s.alice.Call("cert.revoke", map[string]any{"cert_id": aliceKey.ID}); r.StatusCode != 0 || string(r.Content) != "{}" {
		t.Fatalf("alice revoking her key: %d %s %s", r.StatusCode, r.StatusString, r.Content)
	}
	if got, want := ids(list(t, s.alice)), fmt.Sprintf("%d:alice", aliceKey2.ID); got != want {
		t.Errorf("after revoke alice lists %s, want %s", got, want)
	}
	if r := s.alice.Call("cert.revoke", map[string]any{"cert_id": aliceKey.ID}); r.StatusCode != int(core.EntityNotFound) {
		t.Errorf("revoking twice: %d", r.StatusCode)
	}

	// Administrators revoke anyone's, by id or by fingerprint.
	if r := s.admin.Call("cert.revoke", map[string]any{"cert_id": bobKey.ID}); r.StatusCode != 0 {
		t.Fatalf("admin revoking bob's key: %d %s", r.StatusCode, r.StatusString)
	}
	if len(list(t, s.bob)) != 0 {
		t.Error("bob's key survived the administrator's revoke")
	}
	ctx := context.Background()
	if err := s.mod.RevokeByFingerprint(ctx, s.bobIdentity, aliceKey2.Fingerprint); codeOf(err) != core.EntityNotFound {
		t.Errorf("bob revoking alice's key by fingerprint: %v", err)
	}
	if err := s.mod.RevokeByFingerprint(ctx, s.adminIdentity, "zz"); codeOf(err) != core.InvalidArgument {
		t.Errorf("malformed fingerprint: %v", err)
	}
	if err := s.mod.RevokeByFingerprint(ctx, s.adminIdentity, strings.ToUpper(aliceKey2.Fingerprint)); err != nil {
		t.Errorf("admin revoking by fingerprint: %v", err)
	}
	if len(list(t, s.alice)) != 0 {
		t.Error("alice's key survived RevokeByFingerprint")
	}
}

// Rights come from the database as of the call, not from the Identity the caller passes.
func TestRightsRecheckedAgainstDatabase(t *testing.T) {
	s := startSite(t)
	bobKey := register(t, s.bob, pubB64(t, newEd25519(t).Public()), "bob", "")
	forged := &core.Identity{UserID: s.aliceID, Username: "alice", Rank: core.RankAdministrator}
	certs, err := s.mod.List(context.Background(), forged)
	if err != nil || len(certs) != 0 {
		t.Errorf("alice claiming to be administrator lists %d keys, %v", len(certs), err)
	}
	if err := s.mod.Revoke(context.Background(), forged, bobKey.ID); codeOf(err) != core.EntityNotFound {
		t.Errorf("alice claiming to be administrator revokes bob's key: %v", err)
	}
	ghost := &core.Identity{UserID: 9999, Username: "ghost"}
	if _, err := s.mod.Register(context.Background(), ghost, pubB64(t, newEd25519(t).Public()), "", ""); codeOf(err) != core.PermissionDenied {
		t.Errorf("a user that does not exist registers: %v", err)
	}
}

func TestEventsAndAudit(t *testing.T) {
	s := startSite(t)
	if r := s.admin.Call("events.subscribe", map[string]any{"topics": []string{"cert.>"}}); r.StatusCode != 0 {
		t.Fatalf("subscribe: %d %s", r.StatusCode, r.StatusString)
	}
	if r := s.alice.Call("events.subscribe", map[string]any{"topics": []string{"cert.>"}}); r.StatusCode != 0 {
		t.Fatalf("subscribe: %d %s", r.StatusCode, r.StatusString)
	}
	k := register(t, s.alice, pubB64(t, newEd25519(t).Public()), "laptop", "")
	if r := s.alice.Call("cert.revoke", map[string]any{"cert_id": k.ID}); r.StatusCode != 0 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	type push struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	for _, c := range []*wstest.Client{s.admin, s.alice} { // alice sees events about herself
		for _, topic := range []string{"cert.registered", "cert.revoked"} {
			var p push
			c.ExpectPush("event", 10*time.Second).Decode(t, &p)
			var data struct {
				ID          int64  `json:"id"`
				UserID      int64  `json:"user_id"`
				Fingerprint string `json:"fingerprint"`
				Algorithm   string `json:"algorithm"`
			}
			if err := json.Unmarshal(p.Data, &data); err != nil {
				t.Fatal(err)
			}
			if p.Topic != topic || data.ID != k.ID || data.UserID != s.aliceID || data.Fingerprint != k.Fingerprint || data.Algorithm != "ed25519" {
				t.Errorf("push %s %s, want %s of key %d", p.Topic, p.Data, topic, k.ID)
			}
			if strings.Contains(string(p.Data), "BEGIN") || strings.Contains(string(p.Data), "public_key") {
				t.Errorf("push carries key material: %s", p.Data)
			}
		}
	}
	// Bob does not see alice's key events in the audit trail; the administrator does.
	r := s.admin.Call("audit.get", map[string]any{"user_id": s.aliceID})
	if r.StatusCode != 0 {
		t.Fatalf("audit.get: %d %s", r.StatusCode, r.StatusString)
	}
	if !strings.Contains(string(r.Content), `"topic":"cert.registered"`) || !strings.Contains(string(r.Content), `"topic":"cert.revoked"`) {
		t.Errorf("audit trail misses the key events: %s", r.Content)
	}
	if strings.Contains(string(r.Content), "BEGIN PUBLIC KEY") {
		t.Errorf("audit trail carries the key: %s", r.Content)
	}
}

func TestKeysGoWithTheirUser(t *testing.T) {
	s := startSite(t)
	register(t, s.alice, pubB64(t, newEd25519(t).Public()), "", "")
	if r := s.admin.Call("user.delete", map[string]any{"user_id": s.aliceID}); r.StatusCode != 0 {
		t.Fatalf("user.delete: %d %s", r.StatusCode, r.StatusString)
	}
	if got := list(t, s.admin); len(got) != 0 {
		t.Errorf("keys of a deleted user remain: %+v", got)
	}
}

func codeOf(err error) core.Code {
	if err == nil {
		return core.Success
	}
	e, _ := core.StatusOf(err)
	return e.Code
}
