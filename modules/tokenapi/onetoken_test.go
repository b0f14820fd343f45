package tokenapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/token"
	"gatehouse/modules/wsapi/wstest"
)

// One token everywhere (contract §3): a token from any front door works in all of them, and
// revoking it anywhere ends it everywhere, live Leosac sessions included.

// portalLogin logs in at the LemonLDAP::NG portal and returns the session id.
func portalLogin(t *testing.T, c *client, user, pw string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", c.srv.HTTPURL+"/", strings.NewReader(url.Values{"user": {user}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Result int    `json:"result"`
		Error  int    `json:"error"`
		ID     string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK || v.Result != 1 {
		t.Fatalf("portal login: %d %+v %v", resp.StatusCode, v, err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v.ID) {
		t.Fatalf("portal id %q is not 64 hex digits", v.ID)
	}
	return v.ID
}

// whoamiCookie asks the portal who the cookie belongs to ("" when it is not a session).
func whoamiCookie(t *testing.T, c *client, tok string) string {
	t.Helper()
	r := c.do("GET", "/mysession/?whoami", "", "", "Cookie", "lemonldap="+tok, "Accept", "application/json")
	if r.Status != http.StatusOK {
		return ""
	}
	var v struct {
		Result string `json:"result"`
	}
	r.json(t, &v)
	return v.Result
}

// leosacWithToken opens a Leosac websocket session with authenticate_with_token.
func leosacWithToken(t *testing.T, srv *coretest.Server, tok string) *wstest.Client {
	t.Helper()
	ws := wstest.Dial(t, srv.WSURL)
	r := ws.Call("authenticate_with_token", map[string]string{"token": tok})
	var v struct {
		Status   int    `json:"status"`
		Username string `json:"username"`
	}
	r.Decode(t, &v)
	if r.StatusCode != 0 || v.Status != 0 || v.Username != "foo" {
		t.Fatalf("authenticate_with_token: %d %s", r.StatusCode, r.Content)
	}
	return ws
}

// sysadmFrame is a frame of the sysadm websocket.
type sysadmFrame struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	ID        string          `json:"id"`
	Args      json.RawMessage `json:"args"`
}

// sysadmClient is a minimal client of the sysadm websocket (/sysadm).
type sysadmClient struct {
	t   *testing.T
	ws  *websocket.Conn
	seq int
}

func dialSysadm(t *testing.T, srv *coretest.Server) *sysadmClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.HTTPURL, "http")+"/sysadm", nil)
	if err != nil {
		t.Fatalf("dial sysadm: %v", err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &sysadmClient{t: t, ws: ws}
}

// next reads one frame; the error is the websocket's (a close included).
func (c *sysadmClient) next(timeout time.Duration) (sysadmFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return sysadmFrame{}, err
	}
	var f sysadmFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("sysadm frame %q: %v", b, err)
	}
	return f, nil
}

// send sends a request and returns its id without waiting for a reply.
func (c *sysadmClient) send(ns, name string, args any) string {
	c.t.Helper()
	c.seq++
	id := fmt.Sprintf("r%d", c.seq)
	b, _ := json.Marshal(map[string]any{"namespace": ns, "name": name, "id": id, "args": args})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("sysadm write: %v", err)
	}
	return id
}

// call sends a request and returns its reply frame ("response" or "error").
func (c *sysadmClient) call(ns, name string, args any) sysadmFrame {
	c.t.Helper()
	id := c.send(ns, name, args)
	for {
		f, err := c.next(10 * time.Second)
		if err != nil {
			c.t.Fatalf("sysadm %s/%s: %v", ns, name, err)
		}
		if f.ID == id {
			return f
		}
	}
}

// authToken runs rpc/auth_token and fails the test unless it succeeds.
func (c *sysadmClient) authToken(tok string) {
	c.t.Helper()
	if f := c.call("rpc", "auth_token", map[string]string{"token": tok}); f.Name != "response" {
		c.t.Fatalf("sysadm auth_token: %s %s", f.Name, f.Args)
	}
	if f := c.call("gatehouse", "whoami", map[string]any{}); f.Name != "response" || !strings.Contains(string(f.Args), `"username":"foo"`) {
		c.t.Fatalf("sysadm whoami after auth_token: %s %s", f.Name, f.Args)
	}
}

// ended waits for the server to end the session: a 401 error frame, then the close 4501.
func (c *sysadmClient) ended() {
	c.t.Helper()
	saw401 := false
	for {
		f, err := c.next(5 * time.Second)
		var ce websocket.CloseError
		switch {
		case err == nil:
			saw401 = saw401 || (f.Name == "error" && strings.Contains(string(f.Args), `"code":401`))
			continue
		case errors.As(err, &ce):
			if ce.Code != 4501 || !saw401 {
				c.t.Fatalf("sysadm session ended with %d (401 frame seen: %v), want a 401 frame and 4501", ce.Code, saw401)
			}
			return
		}
		c.t.Fatalf("sysadm session did not end: %v", err)
	}
}

func TestOneTokenEverywhere(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)

	// A Leosac token works at /0.1 and as the portal cookie.
	ws := wstest.Dial(t, srv.WSURL)
	leosacTok := ws.Login("foo", "bar-password")
	if r := c.do("HEAD", "/0.1/token/"+leosacTok, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("Leosac token at HEAD /0.1/token: %d", r.Status)
	}
	if r := c.do("HEAD", "/0.1/token/"+leosacTok+"?scope=users.me.read", "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("Leosac token with scope: %d", r.Status)
	}
	if who := whoamiCookie(t, c, leosacTok); who != "foo" {
		t.Fatalf("Leosac token as portal cookie: whoami %q", who)
	}
	// … and in sysadm: rpc/auth_token on the websocket, Bearer on REST.
	dialSysadm(t, srv).authToken(leosacTok)
	if r := c.do("PUT", "/rpc/query", `{}`, "", "Authorization", "Bearer "+leosacTok); r.Status != http.StatusOK ||
		!strings.Contains(string(r.Body), `"gatehouse/whoami":"read"`) {
		t.Fatalf("Leosac token as sysadm REST Bearer: %d %s", r.Status, r.Body)
	}

	// A sysadm token works at /0.1 and in Leosac's authenticate_with_token.
	sys := dialSysadm(t, srv)
	f := sys.call("rpc", "auth", map[string]string{"username": "foo", "password": "bar-password"})
	var sysReply []any
	if err := json.Unmarshal(f.Args, &sysReply); f.Name != "response" || err != nil || len(sysReply) != 2 {
		t.Fatalf("sysadm rpc/auth: %s %s", f.Name, f.Args)
	}
	sysTok, _ := sysReply[0].(string)
	if r := c.do("HEAD", "/0.1/token/"+sysTok, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("sysadm token at HEAD /0.1/token: %d", r.Status)
	}
	viaSysadm := leosacWithToken(t, srv, sysTok)
	// Revoking it with sysadm's rpc/auth_clear (no reply) ends that Leosac session and the token.
	sys.send("rpc", "auth_clear", nil) // no reply: the next call's answer shows the logout
	if f := sys.call("rpc", "query", nil); f.Name != "error" || !strings.Contains(string(f.Args), `"code":401`) {
		t.Fatalf("sysadm query after auth_clear: %s %s", f.Name, f.Args)
	}
	viaSysadm.ExpectPush("session_closed", 5*time.Second)
	if r := c.do("HEAD", "/0.1/token/"+sysTok, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("sysadm token after auth_clear at HEAD /0.1/token: %d", r.Status)
	}

	// A /0.1 token works in Leosac's authenticate_with_token and as the cookie.
	restTok := c.create(fooBasic, `{}`).Token
	live := leosacWithToken(t, srv, restTok)
	if r := live.Call("whoami", map[string]any{}); r.StatusCode != 0 {
		t.Fatalf("whoami with a /0.1 token: %d", r.StatusCode)
	}
	if who := whoamiCookie(t, c, restTok); who != "foo" {
		t.Fatalf("/0.1 token as portal cookie: whoami %q", who)
	}

	// The portal's 64-hex session id works in Leosac and at /0.1.
	portalTok := portalLogin(t, c, "foo", "bar-password")
	viaPortal := leosacWithToken(t, srv, portalTok)
	if r := c.do("GET", "/0.1/token/"+portalTok, "", ""); r.Status != http.StatusOK {
		t.Fatalf("portal id at GET /0.1/token: %d %s", r.Status, r.Body)
	}
	dialSysadm(t, srv).authToken(portalTok)

	// token.list shows them all, by public id and dialect, never the tokens.
	r := ws.Call("token.list", map[string]any{})
	var list []struct {
		ID, Dialect string
		Current     bool
	}
	r.Decode(t, &list)
	dialects := map[string]bool{}
	for _, it := range list {
		dialects[it.Dialect] = true
	}
	if r.StatusCode != 0 || !dialects["leosac"] || !dialects["rest"] || !dialects[token.DialectPortal] {
		t.Fatalf("token.list: %d %s", r.StatusCode, r.Content)
	}
	for _, tk := range []string{leosacTok, restTok, portalTok} {
		if strings.Contains(string(r.Content), tk) {
			t.Fatal("token.list shows a token")
		}
	}

	// Revoking via DELETE /0.1/token ends the live Leosac and sysadm sessions at once.
	liveSysadm := dialSysadm(t, srv)
	liveSysadm.authToken(restTok)
	if r := c.do("DELETE", "/0.1/token/"+restTok, "", ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d", r.Status)
	}
	live.ExpectPush("session_closed", 5*time.Second)
	liveSysadm.ended()
	if r := live.Call("whoami", map[string]any{}); r.StatusCode != 2 {
		t.Fatalf("whoami after revocation: %d, want PERMISSION_DENIED", r.StatusCode)
	}
	if r := ws.Call("authenticate_with_token", map[string]string{"token": restTok}); r.StatusCode == 0 && strings.Contains(string(r.Content), `"status":0`) {
		t.Fatal("revoked token accepted again")
	}

	// Logging out of the portal ends the Leosac session that used its id.
	if r := c.do("DELETE", "/session/my", "", "", "Cookie", "lemonldap="+portalTok, "Accept", "application/json"); r.Status != http.StatusOK {
		t.Fatalf("DELETE /session/my: %d %s", r.Status, r.Body)
	}
	viaPortal.ExpectPush("session_closed", 5*time.Second)
	if r := c.do("HEAD", "/0.1/token/"+portalTok, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("portal id after logout: %d", r.Status)
	}

	// The Leosac login itself is still fine: nothing else was revoked.
	if r := ws.Call("whoami", map[string]any{}); r.StatusCode != 0 {
		t.Fatalf("first session: %d", r.StatusCode)
	}
}

func TestTokenMethods(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	fooID := addFoo(t, srv, core.RankUser)

	foo := wstest.Dial(t, srv.WSURL)
	foo.Login("foo", "bar-password")
	rest := c.create(fooBasic, `{}`)
	live := leosacWithToken(t, srv, rest.Token)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	adminRest := c.create("admin:"+coretest.AdminPassword, `{}`)

	type item struct {
		ID         string    `json:"id"`
		UserID     int64     `json:"user_id"`
		Username   string    `json:"username"`
		Dialect    string    `json:"dialect"`
		IssuedAt   time.Time `json:"issued_at"`
		ExpiresAt  time.Time `json:"expires_at"`
		LastUsedAt time.Time `json:"last_used_at"`
		RemoteAddr string    `json:"remote_addr"`
		Current    bool      `json:"current"`
	}
	list := func(cl *wstest.Client, content any) []item {
		t.Helper()
		r := cl.Call("token.list", content)
		if r.StatusCode != 0 {
			t.Fatalf("token.list: %d %s", r.StatusCode, r.Content)
		}
		var out []item
		r.Decode(t, &out)
		return out
	}
	// A user sees their own tokens only, the calling session's marked current.
	own := list(foo, map[string]any{"user_id": 1}) // the filter is for administrators only
	if len(own) != 2 {
		t.Fatalf("foo sees %d tokens, want 2: %+v", len(own), own)
	}
	current := 0
	for _, it := range own {
		if it.UserID != fooID || it.Username != "foo" || it.IssuedAt.IsZero() || !it.ExpiresAt.After(it.IssuedAt) ||
			!strings.HasPrefix(it.RemoteAddr, "127.0.0.1:") {
			t.Fatalf("item %+v", it)
		}
		if it.Current {
			current++
			if it.Dialect != "leosac" {
				t.Fatalf("current token is %s", it.Dialect)
			}
		}
	}
	if current != 1 {
		t.Fatalf("%d current tokens", current)
	}
	// An administrator sees everyone's, or one user's.
	if all := list(admin, map[string]any{}); len(all) != 4 {
		t.Fatalf("admin sees %d tokens, want 4", len(all))
	}
	if one := list(admin, map[string]any{"user_id": fooID}); len(one) != 2 || one[0].UserID != fooID {
		t.Fatalf("admin filter: %+v", one)
	}
	if r := foo.Call("token.list", map[string]any{"user_id": "x"}); r.StatusCode != int(core.InvalidArgument) {
		t.Fatalf("bad filter: %d", r.StatusCode)
	}

	// A user cannot revoke someone else's token: it does not exist for them.
	r := foo.Call("token.revoke", map[string]any{"token_id": adminRest.SessionUUID})
	if r.StatusCode != int(core.EntityNotFound) {
		t.Fatalf("foo revoking admin's token: %d", r.StatusCode)
	}
	if r := c.do("HEAD", "/0.1/token/"+adminRest.Token, "", ""); r.Status != http.StatusNoContent {
		t.Fatal("admin's token was revoked by foo")
	}
	for _, content := range []any{map[string]any{"token_id": "nope"}, map[string]any{}} {
		if r := foo.Call("token.revoke", content); r.StatusCode != int(core.EntityNotFound) {
			t.Fatalf("token.revoke %v: %d", content, r.StatusCode)
		}
	}
	if r := foo.Call("token.revoke", map[string]any{"token_id": 5}); r.StatusCode != int(core.InvalidArgument) {
		t.Fatalf("token.revoke with a number: %d", r.StatusCode)
	}
	// Revoking one's own /0.1 token by id ends the live session using it and the token.
	r = foo.Call("token.revoke", map[string]any{"token_id": rest.SessionUUID})
	if r.StatusCode != 0 {
		t.Fatalf("token.revoke own: %d %s", r.StatusCode, r.Content)
	}
	live.ExpectPush("session_closed", 5*time.Second)
	if r := c.do("HEAD", "/0.1/token/"+rest.Token, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("revoked token at /0.1: %d", r.Status)
	}
	// An administrator revokes anyone's.
	fooTokens := list(admin, map[string]any{"user_id": fooID})
	if len(fooTokens) != 1 {
		t.Fatalf("foo has %d tokens left", len(fooTokens))
	}
	if r := admin.Call("token.revoke", map[string]any{"token_id": fooTokens[0].ID}); r.StatusCode != 0 {
		t.Fatalf("admin revoking foo's token: %d", r.StatusCode)
	}
	foo.ExpectPush("session_closed", 5*time.Second)
	// Revoking the calling session's own token is a logout: a reply, no session_closed.
	mine := list(admin, map[string]any{"user_id": 1})
	for _, it := range mine {
		if it.Current {
			if r := admin.Call("token.revoke", map[string]any{"token_id": it.ID}); r.StatusCode != 0 {
				t.Fatalf("revoking own current token: %d", r.StatusCode)
			}
		}
	}
	if r := admin.Call("whoami", map[string]any{}); r.StatusCode != 2 {
		t.Fatalf("whoami after revoking own token: %d, want 2", r.StatusCode)
	}
	for _, p := range admin.Pushes() {
		if p.Type == "session_closed" {
			t.Fatal("session_closed pushed to the session that revoked its own token")
		}
	}
}
