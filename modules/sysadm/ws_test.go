package sysadm_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

func TestIdentifyAuthQueryAndClear(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	c := dial(t, wsURL(srv))

	// identify needs no login.
	var id map[string]string
	c.ok("rpc", "identify", "").decode(t, &id)
	host, _ := os.Hostname()
	if id["type"] != "server" || id["hostname"] != host {
		t.Errorf("identify = %v", id)
	}
	// Everything else does: 401 with the documented shape.
	f := c.wantCode("rpc", "query", map[string]any{}, 401)
	var e struct {
		Code    json.Number `json:"code"`
		Message string      `json:"message"`
	}
	f.decode(t, &e)
	if e.Code != "401" || e.Message != "Unauthorized" || f.ID == "" {
		t.Errorf("error frame %+v / %s", f, f.Args)
	}
	c.wantCode("sysadm", "settings", map[string]any{"action": "list_ssl_certs"}, 401)
	c.wantCode("events", "subscribe", "access.*", 401)

	// Wrong password, unknown user, wrong types.
	c.wantCode("rpc", "auth", map[string]string{"username": "admin", "password": "nope"}, 401)
	c.wantCode("rpc", "auth", map[string]string{"username": "ghost", "password": "nope"}, 401)
	c.wantCode("rpc", "auth", map[string]any{"username": 12, "password": "x"}, 400)

	tok, secs := c.login("admin", coretest.AdminPassword)
	if _, err := uuid.Parse(tok); err != nil || secs < 299 || secs > 300 {
		t.Errorf("auth = [%q, %d], want a UUID token valid 300 s", tok, secs)
	}
	var q map[string]string
	c.ok("rpc", "query", "junk").decode(t, &q)
	for k, want := range map[string]string{"rpc/settings": "read/write", "rpc/query": "read", "events/subscribe": "read",
		"gatehouse/user.read": "read", "gatehouse/user.create": "read/write", "gatehouse/reader.simulate": "read/write"} {
		if q[k] != want {
			t.Errorf("query[%q] = %q, want %q", k, q[k], want)
		}
	}
	if _, ok := q["gatehouse/create_auth_token"]; ok {
		t.Error("query lists create_auth_token to a logged-in session")
	}
	c.wantCode("sysadm", "nosuch", map[string]any{}, 404)
	c.wantCode("rpc", "nosuch", map[string]any{}, 404)

	// The token works on another connection, and in the Leosac dialect.
	c2 := dial(t, wsURL(srv))
	var res []any
	c2.ok("rpc", "auth_token", map[string]string{"token": tok}).decode(t, &res)
	if res[0] != tok {
		t.Errorf("auth_token = %v", res)
	}
	bad := dial(t, wsURL(srv))
	bad.login("admin", coretest.AdminPassword)
	bad.wantCode("rpc", "auth_token", map[string]string{"token": "00000000-0000-4000-8000-000000000000"}, 401)
	bad.wantCode("rpc", "query", nil, 401) // a failed auth* clears the connection's login
	leo := wstest.Dial(t, srv.WSURL)
	if r := leo.Call("authenticate_with_token", map[string]string{"token": tok}); r.StatusCode != 0 || !strings.Contains(string(r.Content), `"status":0`) {
		t.Errorf("sysadm token in the Leosac dialect: %d %s", r.StatusCode, r.Content)
	}

	// A Leosac token works here.
	leo2 := wstest.Dial(t, srv.WSURL)
	ltok := leo2.Login("admin", coretest.AdminPassword)
	c3 := dial(t, wsURL(srv))
	c3.ok("rpc", "auth_token", map[string]string{"token": ltok})
	c3.ok("rpc", "query", nil)

	// auth_clear: no reply, logged out, token revoked everywhere (c2's connection is ended).
	c.sendRaw([]byte(`{"namespace":"rpc","name":"auth_clear","id":"clr","args":"junk argument"}`))
	f = c.wantCode("rpc", "query", nil, 401)
	if len(c.pushes) != 0 {
		t.Errorf("auth_clear answered: %+v", c.pushes)
	}
	if code, reason := c2.closedWith(5 * time.Second); code != 4501 || !strings.Contains(reason, "Logged out") {
		t.Errorf("other connection of the token closed with %d %q", code, reason)
	}
	if len(c2.pushes) != 1 || c2.pushes[0].code() != 401 {
		t.Errorf("other connection got %+v before the close", c2.pushes)
	}
	c4 := dial(t, wsURL(srv))
	c4.wantCode("rpc", "auth_token", map[string]string{"token": tok}, 401)
}

func TestRanksInQueryAndGatehouseNamespace(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "vera", "vera-password", core.RankViewer)
	c := dial(t, wsURL(srv))

	// Public gatehouse calls work before login; the others answer 401.
	var ver map[string]string
	c.ok("gatehouse", "get_leosac_version", map[string]any{}).decode(t, &ver)
	if ver["server"] != "gatehouse" {
		t.Errorf("version = %v", ver)
	}
	c.wantCode("gatehouse", "door.read", map[string]any{"door_id": 0}, 401)

	c.login("vera", "vera-password")
	var q map[string]string
	c.ok("rpc", "query", nil).decode(t, &q)
	if q["gatehouse/door.read"] != "read" || q["gatehouse/password_change"] != "read/write" {
		t.Errorf("viewer query: door.read %q password_change %q", q["gatehouse/door.read"], q["gatehouse/password_change"])
	}
	for _, k := range []string{"gatehouse/door.create", "gatehouse/reader.simulate", "gatehouse/user.delete"} {
		if _, ok := q[k]; ok {
			t.Errorf("viewer query lists %s", k)
		}
	}
	var who map[string]any
	c.ok("gatehouse", "whoami", map[string]any{}).decode(t, &who)
	if who["username"] != "vera" || who["rank"] != float64(1) {
		t.Errorf("whoami = %v", who)
	}
	// Leosac errors map to sysadm codes.
	c.wantCode("gatehouse", "door.create", map[string]any{"attributes": map[string]any{"alias": "X"}}, 403)
	c.wantCode("gatehouse", "no.such.type", map[string]any{}, 404)
	c.wantCode("gatehouse", "door.read", map[string]any{"door_id": 424242}, 404)
	c.wantCode("gatehouse", "door.read", map[string]any{"door_id": "x"}, 400)
	c.wantCode("gatehouse", "events.subscribe", map[string]any{"topics": []string{"door.>"}}, 404)

	admin := dial(t, wsURL(srv))
	admin.login("admin", coretest.AdminPassword)
	f := admin.ok("gatehouse", "door.create", map[string]any{"attributes": map[string]any{"alias": "Front"}})
	var door struct {
		Data struct {
			ID         int64          `json:"id"`
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	f.decode(t, &door)
	if door.Data.ID == 0 || door.Data.Attributes["alias"] != "Front" {
		t.Errorf("door.create = %s", f.Args)
	}
	// Bad arguments are 400 with the detail in the message.
	f = admin.wantCode("gatehouse", "door.create", map[string]any{"attributes": map[string]any{"alias": 5}}, 400)
	if !strings.Contains(string(f.Args), "alias") {
		t.Errorf("validation error without detail: %s", f.Args)
	}
}

func TestMalformedFrames(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	c := dial(t, wsURL(srv))
	for _, tc := range []struct {
		name, frame, ns, id string
	}{
		{"not JSON", `{"namespace":"rpc","name":`, "", ""},
		{"empty", ``, "", ""},
		{"array", `["rpc","identify"]`, "", ""},
		{"string", `"hello"`, "", ""},
		{"missing namespace", `{"name":"identify","id":"a1","args":{}}`, "", "a1"},
		{"missing name", `{"namespace":"rpc","id":"a2","args":{}}`, "rpc", "a2"},
		{"numeric name", `{"namespace":"rpc","name":5,"id":"a3"}`, "rpc", "a3"},
		{"empty name", `{"namespace":"rpc","name":"","id":"a4"}`, "rpc", "a4"},
		{"numeric id", `{"namespace":"rpc","name":"identify","id":7}`, "rpc", ""},
		{"object namespace", `{"namespace":{},"name":"identify","id":"a5"}`, "", "a5"},
		{"huge id", `{"namespace":"rpc","name":"identify","id":"` + strings.Repeat("x", 300) + `"}`, "rpc", ""},
	} {
		c.sendRaw([]byte(tc.frame))
		f, err := c.next(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if f.code() != 400 || f.Namespace != tc.ns || f.ID != tc.id || !strings.HasPrefix(string(f.Args), `{"code":400,"message":"Bad Request`) {
			t.Errorf("%s: got %+v %s", tc.name, f, f.Args)
		}
	}
	// Binary frames are refused the same way.
	ctx, cancel := contextTimeout()
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, []byte(`{"namespace":"rpc","name":"identify","id":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if f, err := c.next(5 * time.Second); err != nil || f.code() != 400 {
		t.Errorf("binary frame: %+v %v", f, err)
	}
	// A request without args uses the whole object as args (sysadm), and the connection still
	// works after all that.
	c.sendRaw([]byte(`{"namespace":"rpc","name":"auth","id":"x","username":"admin","password":"` + coretest.AdminPassword + `"}`))
	if f := c.await("x"); f.Name != "response" {
		t.Errorf("auth without args: %+v %s", f, f.Args)
	}
	c.ok("rpc", "identify", nil)

	// Over the size limit: answered 400, then closed with 1009.
	c2 := dial(t, wsURL(srv))
	c2.sendRaw([]byte(`{"namespace":"rpc","name":"identify","id":"big","args":"` + strings.Repeat("a", 70<<10) + `"}`))
	if code, _ := c2.closedWith(5 * time.Second); code != websocket.StatusMessageTooBig {
		t.Errorf("oversize closed with %d", code)
	}
	if len(c2.pushes) != 1 || c2.pushes[0].code() != 400 {
		t.Errorf("oversize answer: %+v", c2.pushes)
	}
}

func TestAuthWindowAndIdleClose(t *testing.T) {
	t.Parallel()
	srv := start(t, `{"auth_window": "300ms", "idle_timeout": "700ms"}`)
	anon := dial(t, wsURL(srv))
	anon.ok("rpc", "identify", nil) // activity does not extend the authentication window
	if code, reason := anon.closedWith(5 * time.Second); code != websocket.StatusPolicyViolation || reason != "authentication timeout" {
		t.Errorf("unauthenticated connection closed with %d %q", code, reason)
	}
	c := dial(t, wsURL(srv))
	c.login("admin", coretest.AdminPassword)
	// Activity keeps it open past the idle timeout…
	for range 5 {
		time.Sleep(250 * time.Millisecond)
		c.ok("rpc", "identify", nil)
	}
	// …silence closes it.
	start := time.Now()
	if code, reason := c.closedWith(5 * time.Second); code != websocket.StatusNormalClosure || reason != "idle timeout" {
		t.Errorf("idle connection closed with %d %q", code, reason)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("idle close after %v", d)
	}
}

func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("auth",
		`{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}, "throttle": {"user_addr_limit": 2, "base_delay": "1m"}}`))
	c := dial(t, wsURL(srv))
	c.wantCode("rpc", "auth", map[string]string{"username": "admin", "password": "x"}, 401)
	c.wantCode("rpc", "auth", map[string]string{"username": "admin", "password": "x"}, 401)
	f := c.wantCode("rpc", "auth", map[string]string{"username": "admin", "password": coretest.AdminPassword}, 429)
	if !strings.Contains(string(f.Args), "Too Many Requests") {
		t.Errorf("429 message: %s", f.Args)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	samID := addUser(t, srv, "sam", "sam-password", core.RankUser)
	c := dial(t, wsURL(srv))
	c.login("sam", "sam-password")
	c.ok("events", "subscribe", []string{"access.*"})
	// An administrator changes sam's password from the Leosac dialect: every token of sam is
	// revoked, and this connection is told and closed.
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	if r := admin.Call("password_change", map[string]any{"user_id": samID, "new_password": "another-password"}); r.StatusCode != 0 {
		t.Fatalf("password_change: %d %s", r.StatusCode, r.StatusString)
	}
	code, reason := c.closedWith(5 * time.Second)
	if code != 4501 || !strings.Contains(reason, "Password changed") {
		t.Errorf("closed with %d %q", code, reason)
	}
	if len(c.pushes) == 0 || c.pushes[len(c.pushes)-1].code() != 401 {
		t.Errorf("no 401 frame before the close: %+v", c.pushes)
	}
}

func TestShutdownClosesConnections(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	c := dial(t, wsURL(srv))
	c.login("admin", coretest.AdminPassword)
	done := make(chan error, 1)
	go func() { done <- srv.Stop() }()
	if code, _ := c.closedWith(10 * time.Second); code != websocket.StatusGoingAway {
		t.Errorf("closed with %d on shutdown", code)
	}
	if err := <-done; err != nil {
		t.Errorf("stop: %v", err)
	}
}
