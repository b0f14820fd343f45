package tokenapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

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

	// Revoking via DELETE /0.1/token ends the live Leosac session at once.
	if r := c.do("DELETE", "/0.1/token/"+restTok, "", ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d", r.Status)
	}
	live.ExpectPush("session_closed", 5*time.Second)
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
