package sysadm_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/all"
	"gatehouse/modules/auth"
)

// tlsServer is a real server with a self-signed certificate and, when sysadmListen is set, the
// sysadm listener on that address.
type tlsServer struct {
	*core.Server
	cancel context.CancelFunc
	done   chan error
}

func startTLS(t *testing.T, sysadmListen string) *tlsServer {
	t.Helper()
	mods := all.DefaultModules()
	for i := range mods {
		if mods[i].Module == auth.ModuleID {
			mods[i].Config = json.RawMessage(cheapHashing)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Registry: all.Registry(), Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Config: core.Config{Data: t.TempDir(), Listen: "127.0.0.1:0", SysadmListen: sysadmListen, TLSSelfSigned: true,
			AdminPassword: coretest.AdminPassword, Modules: mods}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &tlsServer{Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() { _ = s.stop() })
	coretest.Eventually(t, 10*time.Second, func() error {
		resp, err := insecureClient().Get(srv.URL() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return s
}

// stop shuts the server down as SIGTERM does; a second call returns nil.
func (s *tlsServer) stop() error {
	if s.done == nil {
		return nil
	}
	s.cancel()
	defer func() { s.done = nil }()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("server did not stop within 30s")
	}
}

// insecureClient accepts the self-signed certificate, as the Qt client does (ignoreSslErrors)
// and as sysadm's tests do (NODE_TLS_REJECT_UNAUTHORIZED=0).
func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// wssRoot is the URL the sysadm clients open: "wss://" + host:port, no path.
func wssRoot(base string) string { return "wss://" + strings.TrimPrefix(base, "https://") }

// raw sends a frame exactly as given and returns the reply carrying id.
func (c *client) raw(frameText, id string) frame {
	c.t.Helper()
	c.sendRaw([]byte(frameText))
	return c.await(id)
}

// TestQtClientAtRoot replays the frames of the sysadm Qt client (trueos/sysadm-ui-qt,
// src-qt5/Core/sysadm-client.cpp: setupSocket opens "wss://"+host+":12150" with no path;
// QJsonDocument::Compact with QJsonObject's sorted keys; the fixed ids
// "sysadm_client_identify", "sysadm-client-auth-auto", "sysadm-auto-cert-register" and
// "sysadm-client-event-auto"; SSL_Encode_String's RSA_private_encrypt with RSA_PKCS1_PADDING,
// i.e. a hash-less PKCS#1 v1.5 signature of the challenge, base64) against the sysadm listener
// (--sysadm-listen) over TLS, and asserts the fields the client reads: identify's "type",
// the auth replies' array whose first element is the token, stage 1's "test_string".
func TestQtClientAtRoot(t *testing.T) {
	t.Parallel()
	srv := startTLS(t, "127.0.0.1:0")
	if srv.SysadmURL() == "" || srv.SysadmURL() == srv.URL() {
		t.Fatalf("sysadm URL %q (main %q)", srv.SysadmURL(), srv.URL())
	}
	url := wssRoot(srv.SysadmURL())
	hc := insecureClient()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubB64, _ := pubB64PEM(t, &key.PublicKey)

	// Password login, certificate registration, event subscription, auth_clear.
	c, err := dialErr(t, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	var ident map[string]string
	c.raw(`{"args":"","id":"sysadm_client_identify","name":"identify","namespace":"rpc"}`, "sysadm_client_identify").decode(t, &ident)
	if ident["type"] != "server" {
		t.Fatalf("identify: %v, the client closes on any type but server or bridge", ident)
	}
	f := c.raw(`{"args":{"password":"`+coretest.AdminPassword+`","username":"admin"},"id":"sysadm-client-auth-auto","name":"auth","namespace":"rpc"}`, "sysadm-client-auth-auto")
	var res []any
	f.decode(t, &res)
	token, _ := res[0].(string)
	if f.Name != "response" || len(res) < 2 || token == "" {
		t.Fatalf("auth reply %s %s: the client wants an array of at least 2, the token first", f.Name, f.Args)
	}
	reg, _ := json.Marshal(map[string]any{"args": map[string]string{"action": "register_ssl_cert", "email": "", "nickname": "", "pub_key": pubB64},
		"id": "sysadm-auto-cert-register", "name": "settings", "namespace": "rpc"}) // Go sorts map keys as Qt does
	if f := c.raw(string(reg), "sysadm-auto-cert-register"); f.Name != "response" {
		t.Fatalf("register_ssl_cert: %s %s", f.Name, f.Args)
	}
	if f := c.raw(`{"args":"system-state","id":"sysadm-client-event-auto","name":"subscribe","namespace":"events"}`, "sysadm-client-event-auto"); f.Name != "response" {
		t.Fatalf("events subscribe: %s %s", f.Name, f.Args)
	}
	c.sendRaw([]byte(`{"args":"","id":"sysadm-client-auth-auto","name":"auth_clear","namespace":"rpc"}`))
	if f := c.raw(`{"args":"","id":"q1","name":"query","namespace":"rpc"}`, "q1"); f.code() != 401 {
		t.Fatalf("query after auth_clear: %s %s, want error 401", f.Name, f.Args)
	}

	// Certificate login: stage 1 with args "", stage 2 with the PKCS#1 v1.5 "encryption" by
	// the private key of the challenge.
	c2, err := dialErr(t, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	c2.raw(`{"args":"","id":"sysadm_client_identify","name":"identify","namespace":"rpc"}`, "sysadm_client_identify")
	ch := testString(t, c2.raw(`{"args":"","id":"sysadm-client-auth-auto","name":"auth_ssl","namespace":"rpc"}`, "sysadm-client-auth-auto"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.Hash(0), []byte(ch))
	if err != nil {
		t.Fatal(err)
	}
	f = c2.raw(`{"args":{"encrypted_string":"`+base64.StdEncoding.EncodeToString(sig)+`"},"id":"sysadm-client-auth-auto","name":"auth_ssl","namespace":"rpc"}`, "sysadm-client-auth-auto")
	res = nil
	f.decode(t, &res)
	if f.Name != "response" || len(res) < 2 {
		t.Fatalf("auth_ssl stage 2: %s %s", f.Name, f.Args)
	}
	sslToken, _ := res[0].(string)
	wantLoggedInAs(t, c2, "admin")

	// Saved-token login (cauthkey) on a new connection.
	c3, err := dialErr(t, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	f = c3.raw(`{"args":{"token":"`+sslToken+`"},"id":"sysadm-client-auth-auto","name":"auth_token","namespace":"rpc"}`, "sysadm-client-auth-auto")
	res = nil
	f.decode(t, &res)
	if f.Name != "response" || len(res) < 2 {
		t.Fatalf("auth_token: %s %s", f.Name, f.Args)
	}
	wantLoggedInAs(t, c3, "admin")

	// The listener serves sysadm only: REST at /rpc/<name>, nothing of the main listener.
	req, _ := http.NewRequest(http.MethodPut, srv.SysadmURL()+"/rpc/query", strings.NewReader(`{}`))
	req.SetBasicAuth("admin", coretest.AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	if code, body := do(t, hc, req); code != http.StatusOK {
		t.Errorf("REST PUT /rpc/query on the sysadm listener: %d %s", code, body)
	}
	for _, p := range []string{"/healthz", "/api/auth/0.1/token", "/websocket", "/sysadm"} {
		req, _ := http.NewRequest(http.MethodGet, srv.SysadmURL()+p, nil)
		if code, _ := do(t, hc, req); code != http.StatusNotFound {
			t.Errorf("GET %s on the sysadm listener: %d, want 404", p, code)
		}
	}
	// The same Host check as the main listener (DNS rebinding), and HSTS under TLS.
	req, _ = http.NewRequest(http.MethodGet, srv.SysadmURL()+"/", nil)
	req.Host = "attacker.example"
	if code, _ := do(t, hc, req); code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host on the sysadm listener: %d, want 421", code)
	}

	// Graceful shutdown: the open websocket is closed with 1001, the port no longer accepts.
	if err := srv.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if code, _ := c3.closedWith(10 * time.Second); code != websocket.StatusGoingAway {
		t.Errorf("websocket on the sysadm listener closed with %d, want 1001", code)
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.SysadmURL(), "https://"), 5*time.Second); err == nil {
		conn.Close()
		t.Error("the sysadm listener still accepts connections after the server stopped")
	}
}

func do(t *testing.T, hc *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// TestSendWebsocketJSAtMainRoot replays sysadm's tests/sendwebsocket.js (trueos/sysadm: the
// node "ws" client opens "wss://127.0.0.1:12150", sends its hand-written auth frame with the
// id "authrequest", then the frame api-test.sh pipes in, id "fooid", newline included) against
// the root path of the main listener, where a websocket upgrade is served as sysadm while a
// browser's GET / still gets the dashboard.
func TestSendWebsocketJSAtMainRoot(t *testing.T) {
	t.Parallel()
	srv := startTLS(t, "")
	if srv.SysadmURL() != "" {
		t.Fatalf("sysadm URL %q without sysadm_listen", srv.SysadmURL())
	}
	hc := insecureClient()
	c, err := dialErr(t, wssRoot(srv.URL()), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("websocket at the main listener's root: %v", err)
	}
	c.sendRaw([]byte(`{ "namespace":"rpc", "name":"auth", "id":"authrequest", "args": { "username":"admin", "password":"` + coretest.AdminPassword + `" } }`))
	c.sendRaw([]byte("{ \"namespace\":\"rpc\", \"name\":\"query\", \"id\":\"fooid\", \"args\":{} }\n"))
	if f := c.await("authrequest"); f.Name != "response" {
		t.Fatalf("auth: %s %s", f.Name, f.Args)
	}
	f := c.await("fooid")
	var q map[string]any
	f.decode(t, &q)
	if f.Name != "response" || f.Namespace != "rpc" || len(q) == 0 {
		t.Fatalf("query: %s/%s %s", f.Namespace, f.Name, f.Args)
	}

	// A browser's GET / is still the dashboard.
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / without upgrade: %d %s, want the dashboard", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Only the root: an upgrade to another unrouted path is not sysadm.
	if _, err := dialErr(t, wssRoot(srv.URL())+"/nothing-here", &websocket.DialOptions{HTTPClient: hc}); err == nil {
		t.Error("websocket upgrade at /nothing-here accepted")
	}
}

// TestSysadmListenRequiresModule: sysadm_listen with the sysadm module disabled is refused at
// start, before anything is served.
func TestSysadmListenRequiresModule(t *testing.T) {
	t.Parallel()
	mods := all.DefaultModules()
	for i := range mods {
		if mods[i].Module == "sysadm" {
			mods[i].Disabled = true
		}
	}
	_, err := core.NewServer(context.Background(), core.ServerOptions{Registry: all.Registry(), Log: zerolog.Nop(),
		Config: core.Config{Data: t.TempDir(), Listen: "127.0.0.1:0", SysadmListen: "127.0.0.1:0", Modules: mods}})
	if err == nil || !strings.Contains(err.Error(), "sysadm_listen") {
		t.Fatalf("NewServer: %v, want a sysadm_listen error", err)
	}
	_, err = core.NewServer(context.Background(), core.ServerOptions{Registry: all.Registry(), Log: zerolog.Nop(),
		Config: core.Config{Data: t.TempDir(), Listen: "127.0.0.1:0", SysadmListen: "127.0.0.1:http-alt", Modules: all.DefaultModules()}})
	if err == nil || !strings.Contains(err.Error(), "sysadm_listen") {
		t.Fatalf("NewServer with a bad address: %v", err)
	}
}
