package tokenapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/tokenapi"
)

// cheapHashing keeps password hashing fast: these tests are about the protocol.
var cheapHashing = coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`)

// client is a real HTTP client of a test server.
type client struct {
	t   testing.TB
	srv *coretest.Server
	hc  *http.Client
}

func newClient(t testing.TB, srv *coretest.Server) *client {
	// No keep-alive: a pooled connection would outlive the server.
	return &client{t: t, srv: srv, hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// response is a received answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("status %d: body %q is not the expected JSON: %v", r.Status, r.Body, err)
	}
}

// do sends a request; basic is "user:password" (raw bytes) or "" for none.
func (c *client) do(method, path, body, basic string, header ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.srv.HTTPURL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if basic != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(basic)))
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// tokenReply is the body of POST and GET /0.1/token.
type tokenReply struct {
	Data tokenapi.TokenData `json:"data"`
}

// create posts a token request and fails unless it succeeds.
func (c *client) create(basic, body string) tokenapi.TokenData {
	c.t.Helper()
	r := c.do("POST", "/0.1/token", body, basic)
	if r.Status != http.StatusOK {
		c.t.Fatalf("POST /0.1/token %s: %d %s", body, r.Status, r.Body)
	}
	var tr tokenReply
	r.json(c.t, &tr)
	return tr.Data
}

// wantError checks wazo-auth's error shape and status.
func wantError(t testing.TB, r response, status int, reason string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	var e struct {
		Reason     []string  `json:"reason"`
		Timestamp  []float64 `json:"timestamp"`
		StatusCode int       `json:"status_code"`
	}
	r.json(t, &e)
	if e.StatusCode != status || len(e.Reason) != 1 || len(e.Timestamp) != 1 {
		t.Fatalf("error body %s: want reason[1], timestamp[1], status_code %d", r.Body, status)
	}
	if reason != "" && !strings.Contains(e.Reason[0], reason) {
		t.Fatalf("reason %q, want it to contain %q", e.Reason[0], reason)
	}
	if d := time.Since(time.UnixMicro(int64(e.Timestamp[0] * 1e6))); d < -time.Minute || d > time.Minute {
		t.Fatalf("timestamp %v is not now", e.Timestamp[0])
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func authModule(t testing.TB, srv *coretest.Server) *auth.Module {
	t.Helper()
	m, ok := srv.App().Module(auth.ModuleID)
	if !ok {
		t.Fatal("auth module not loaded")
	}
	return m.(*auth.Module)
}

// addUser creates a user through the auth module's store.
func addUser(t testing.TB, srv *coretest.Server, u auth.User, pw string) int64 {
	t.Helper()
	m := authModule(t, srv)
	if pw != "" {
		hash, err := m.Hasher().Hash(context.Background(), pw)
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash = hash
	}
	if err := m.Users().Create(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// foo is the wazo suites' fixture user foo/bar (here a password long enough for gatehouse).
func addFoo(t testing.TB, srv *coretest.Server, rank core.Rank) int64 {
	t.Helper()
	return addUser(t, srv, auth.User{Username: "foo", Email: "foo@example.com", Rank: rank, ValidityEnabled: true}, "bar-password")
}

const fooBasic = "foo:bar-password"
