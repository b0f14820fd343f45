package sysadm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// pubB64PEM returns the key as sysadm clients send it: base64 of the PEM PUBLIC KEY block.
func pubB64PEM(t *testing.T, pub crypto.PublicKey) (b64 string, fingerprint string) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), hex.EncodeToString(sum[:])
}

// testString returns the challenge of a stage-1 reply.
func testString(t *testing.T, f frame) string {
	t.Helper()
	var a struct {
		TestString string `json:"test_string"`
	}
	f.decode(t, &a)
	if len(a.TestString) != 20 {
		t.Fatalf("stage 1 reply %s", f.Args)
	}
	return a.TestString
}

// wantLoggedInAs checks the connection's identity through the gatehouse namespace.
func wantLoggedInAs(t *testing.T, c *client, username string) {
	t.Helper()
	var who map[string]any
	c.ok("gatehouse", "whoami", map[string]any{}).decode(t, &who)
	if who["username"] != username {
		t.Fatalf("logged in as %v, want %s", who["username"], username)
	}
}

// TestCertificateLogin registers an RSA-2048, an Ed25519 and an ECDSA P-256 key through
// rpc/settings and logs in with each: the legacy proof (hash-less PKCS#1 v1.5 over the raw
// challenge, as sysadm clients make it) and the modern ones (over "gatehouse-auth-v1\n" +
// challenge, naming the key by pub_key or key_id).
func TestCertificateLogin(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "kim", "kim-password", core.RankUser)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaB64, rsaFP := pubB64PEM(t, &rsaKey.PublicKey)
	edB64, _ := pubB64PEM(t, edPub)
	ecB64, ecFP := pubB64PEM(t, &ecKey.PublicKey)

	kim := dial(t, wsURL(srv))
	kim.login("kim", "kim-password")
	kim.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": rsaB64, "nickname": "laptop", "email": "kim@example.org"})
	kim.ok("sysadm", "settings", map[string]any{"action": "register_ssl_certificate", "pub_key": edB64, "nickname": "yubikey"})
	kim.ok("settings", "sysadm", map[string]any{"action": "register_ssl_cert", "pub_key": ecB64})
	kim.wantCode("rpc", "settings", map[string]any{"action": "register_ssl_cert"}, 400)
	kim.wantCode("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": "bm90IGEga2V5"}, 400)

	var list map[string]map[string]string
	kim.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if len(list) != 1 || len(list["kim"]) != 3 || !strings.HasPrefix(list["kim"][rsaB64], "Nickname: laptop\nEmail: kim@example.org\nDate Registered: ") {
		t.Fatalf("list_ssl_certs = %v", list)
	}

	// Legacy: stage 1 args "", stage 2 encrypted_string.
	c := dial(t, wsURL(srv))
	ch := testString(t, c.ok("rpc", "auth_ssl", ""))
	sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.Hash(0), []byte(ch))
	if err != nil {
		t.Fatal(err)
	}
	var res []any
	c.ok("rpc", "auth_ssl", map[string]string{"encrypted_string": base64.StdEncoding.EncodeToString(sig)}).decode(t, &res)
	if len(res) != 2 || res[1].(float64) < 299 {
		t.Errorf("auth_ssl reply %v", res)
	}
	wantLoggedInAs(t, c, "kim")

	// The challenge is single use, and bound to the connection that asked for it.
	c.wantCode("rpc", "auth_ssl", map[string]string{"encrypted_string": base64.StdEncoding.EncodeToString(sig)}, 401)
	c.wantCode("rpc", "query", nil, 401)
	other := dial(t, wsURL(srv))
	ch = testString(t, c.ok("rpc", "auth_ssl", map[string]any{}))
	sig, _ = rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.Hash(0), []byte(ch))
	other.wantCode("rpc", "auth_ssl", map[string]string{"encrypted_string": base64.StdEncoding.EncodeToString(sig)}, 401)

	// Modern, Ed25519 named by its key: signature over the context-prefixed challenge.
	ch = testString(t, c.ok("rpc", "auth_ssl", map[string]string{"pub_key": edB64}))
	c.ok("rpc", "auth_ssl", map[string]string{"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(edPriv, []byte("gatehouse-auth-v1\n"+ch)))})
	wantLoggedInAs(t, c, "kim")
	// A raw-challenge Ed25519 signature (no context) is refused.
	ch = testString(t, c.ok("rpc", "auth_ssl", map[string]string{"pub_key": edB64}))
	c.wantCode("rpc", "auth_ssl", map[string]string{"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(edPriv, []byte(ch)))}, 401)

	// Modern, ECDSA named by key_id, proof sent as encrypted_string (alias).
	ch = testString(t, c.ok("rpc", "auth_ssl", map[string]string{"key_id": ecFP}))
	digest := sha256.Sum256([]byte("gatehouse-auth-v1\n" + ch))
	esig, _ := ecdsa.SignASN1(rand.Reader, ecKey, digest[:])
	c.ok("rpc", "auth_ssl", map[string]string{"encrypted_string": base64.StdEncoding.EncodeToString(esig)})
	wantLoggedInAs(t, c, "kim")

	// Malformed proofs are 400; a proof with no challenge 401. (A connection gets a few
	// challenges at once, then is rate limited: use a new one.)
	c = dial(t, wsURL(srv))
	c.ok("rpc", "auth_ssl", "")
	c.wantCode("rpc", "auth_ssl", map[string]string{"signature": "***not base64***"}, 400)
	c.wantCode("rpc", "auth_ssl", map[string]any{"signature": 5}, 400)
	c.wantCode("rpc", "auth_ssl", map[string]string{"signature": base64.StdEncoding.EncodeToString([]byte("x"))}, 401)

	// Challenges are rate limited per connection: 429.
	burst := dial(t, wsURL(srv))
	for i := 0; ; i++ {
		f := burst.call("rpc", "auth_ssl", "")
		if f.code() == 429 {
			break
		}
		if f.Name != "response" || i > 20 {
			t.Fatalf("challenge %d: %s %s", i, f.Name, f.Args)
		}
	}

	// Revoking a key ends logins with it: by the base64 PEM (sysadm) and by the fingerprint
	// list_ssl_certs shows.
	kim.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": edB64})
	kim.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_certificate", "pub_key": rsaFP})
	kim.wantCode("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": edB64}, 400)
	ch = testString(t, c.ok("rpc", "auth_ssl", map[string]string{"pub_key": edB64}))
	c.wantCode("rpc", "auth_ssl", map[string]string{"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(edPriv, []byte("gatehouse-auth-v1\n"+ch)))}, 401)
	list = nil
	kim.ok("rpc", "settings", map[string]any{"action": "list_ssl_certificates"}).decode(t, &list)
	if len(list["kim"]) != 1 || list["kim"][ecB64] == "" || list["kim"][edB64] != "" {
		t.Errorf("after revocations: %v", list)
	}

	// Others' keys: a plain user sees only their own and cannot name another user; an
	// administrator sees and revokes all.
	kim.wantCode("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": ecFP, "user": "admin"}, 400)
	kim.wantCode("rpc", "settings", map[string]any{"action": "frobnicate"}, 400)
	admin := dial(t, wsURL(srv))
	admin.login("admin", coretest.AdminPassword)
	list = nil
	admin.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if list["kim"][ecB64] == "" {
		t.Errorf("administrator's list: %v", list)
	}
	admin.wantCode("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": ecB64}, 400) // not admin's own
	admin.ok("rpc", "settings", map[string]any{"action": "revoke_ssl_cert", "pub_key": ecB64, "user": "kim"})
	list = nil
	kim.ok("rpc", "settings", map[string]any{"action": "list_ssl_certs"}).decode(t, &list)
	if len(list) != 0 {
		t.Errorf("kim's keys after the administrator revoked the last: %v", list)
	}
}

// TestChallengeLoopFromOneAddress: a client that reconnects in a loop from one address,
// asking for certificate challenges on every new connection, spends only that address's
// budget: meanwhile a client from another address (127.0.0.2) still gets its challenge and
// logs in with its key.
func TestChallengeLoopFromOneAddress(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "kim", "kim-password", core.RankUser)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edB64, _ := pubB64PEM(t, edPub)
	kim := dial(t, wsURL(srv))
	kim.login("kim", "kim-password")
	kim.ok("rpc", "settings", map[string]any{"action": "register_ssl_cert", "pub_key": edB64})

	// The loop: 4 goroutines reconnecting from 127.0.0.1, each connection asking until refused.
	ctx, stop := context.WithCancel(context.Background())
	var refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				challengeLoop(ctx, wsURL(srv), &refused)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	coretest.Eventually(t, 30*time.Second, func() error {
		if n := refused.Load(); n < 100 {
			return fmt.Errorf("%d challenge requests of the loop refused so far", n)
		}
		return nil
	})

	// The legitimate client, from another address, while the loop goes on.
	legit, err := dialErr(t, wsURL(srv), &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}})
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	f := legit.call("rpc", "auth_ssl", map[string]string{"pub_key": edB64})
	if f.Name != "response" {
		t.Fatalf("challenge for the client at 127.0.0.2 during the loop: %s %s", f.Name, f.Args)
	}
	ch := testString(t, f)
	legit.ok("rpc", "auth_ssl", map[string]string{"signature": base64.StdEncoding.EncodeToString(ed25519.Sign(edPriv, []byte("gatehouse-auth-v1\n"+ch)))})
	wantLoggedInAs(t, legit, "kim")
	if refused.Load() == 0 {
		t.Fatal("the loop was never refused")
	}
}

// challengeLoop opens one connection and asks for legacy challenges until refused (429),
// counting refusals; errors end it quietly (the server may be shutting down).
func challengeLoop(ctx context.Context, url string, refused *atomic.Int64) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	if err != nil {
		return
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	defer ws.CloseNow()
	for i := range 10 {
		req, _ := json.Marshal(map[string]any{"namespace": "rpc", "name": "auth_ssl", "id": fmt.Sprint("loop-", i), "args": ""})
		if ws.Write(dctx, websocket.MessageText, req) != nil {
			return
		}
		_, b, err := ws.Read(dctx)
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			return
		}
		if f.code() == http.StatusTooManyRequests {
			refused.Add(1)
			return
		}
	}
}
