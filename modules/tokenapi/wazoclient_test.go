package tokenapi_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/google/uuid"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
)

// The requests of today's wazo-auth-client (wazo-platform/wazo-auth-client, master):
// client.py's default prefix "/api/auth" and version "0.1"; wazo_lib_rest_client's session
// carries "X-Auth-Token" once set_token was called and every command sends
// "Accept: application/json" (plus "Wazo-Tenant" when given a tenant); token.new posts
// requests' json= body (json.dumps: ", " and ": " separators, keys in the order the command
// adds them) with User-Agent "Wazo Python auth client" and HTTP Basic. Each helper names the
// command it replays.
const clientPrefix = "/api/auth/0.1"

// wazoClient is one wazo-auth-client instance, with or without a token set.
type wazoClient struct {
	*client
	token string
}

func (w wazoClient) headers(extra ...string) []string {
	h := []string{"Accept", "application/json"}
	if w.token != "" {
		h = append(h, "X-Auth-Token", w.token)
	}
	return append(h, extra...)
}

// get, del and head replay a command's session.get, session.delete and session.head.
func (w wazoClient) get(path string) response {
	return w.do("GET", clientPrefix+path, "", "", w.headers()...)
}
func (w wazoClient) del(path string) response {
	return w.do("DELETE", clientPrefix+path, "", "", w.headers()...)
}
func (w wazoClient) head(path string) response {
	return w.do("HEAD", clientPrefix+path, "", "", w.headers()...)
}

// newToken replays token.new(username, password, expiration=3600, client_id, access_type='offline').
func (w wazoClient) newToken(basic, clientID string) tokenReply {
	w.t.Helper()
	body := `{"expiration": 3600, "client_id": "` + clientID + `", "access_type": "offline"}`
	r := w.do("POST", clientPrefix+"/token", body, basic, "Accept", "application/json", "User-Agent", "Wazo Python auth client")
	if r.Status != http.StatusOK {
		w.t.Fatalf("token.new: %d %s", r.Status, r.Body)
	}
	var tr tokenReply
	r.json(w.t, &tr)
	if tr.Data.Token == "" || tr.Data.RefreshToken == "" || tr.Data.AuthID == "" || tr.Data.Metadata.UUID != tr.Data.AuthID {
		w.t.Fatalf("token.new data: %+v", tr.Data)
	}
	return tr
}

type refreshList struct {
	Items []struct {
		ClientID   string         `json:"client_id"`
		CreatedAt  string         `json:"created_at"`
		Mobile     *bool          `json:"mobile"`
		UserUUID   string         `json:"user_uuid"`
		TenantUUID string         `json:"tenant_uuid"`
		Metadata   map[string]any `json:"metadata"`
	} `json:"items"`
	Total    *int `json:"total"`
	Filtered *int `json:"filtered"`
}

type sessionList struct {
	Items []struct {
		UUID       string `json:"uuid"`
		Mobile     *bool  `json:"mobile"`
		TenantUUID string `json:"tenant_uuid"`
		UserUUID   string `json:"user_uuid"`
	} `json:"items"`
	Total    *int `json:"total"`
	Filtered *int `json:"filtered"`
}

func (l sessionList) has(id string) bool {
	return slices.ContainsFunc(l.Items, func(s struct {
		UUID       string `json:"uuid"`
		Mobile     *bool  `json:"mobile"`
		TenantUUID string `json:"tenant_uuid"`
		UserUUID   string `json:"user_uuid"`
	}) bool {
		return s.UUID == id
	})
}

// TestWazoAuthClientTokenFlows replays today's wazo-auth-client, as one user and as an
// administrator: status.check, token.new (offline), token.list, users.get,
// users.get_sessions, refresh_tokens.list, sessions.list, token.delete,
// users.remove_session, sessions.delete, token.revoke; and checks the rights (a user reaches
// only their own tokens, sessions and user; an administrator everyone's).
func TestWazoAuthClientTokenFlows(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	addUser(t, srv, auth.User{Username: "bar", Rank: core.RankViewer, ValidityEnabled: true}, "bar-password-2")
	anon := wazoClient{client: c}

	// status.check: HEAD {prefix}/status, no token; GET too.
	if r := anon.head("/status"); r.Status != http.StatusOK {
		t.Fatalf("status.check: %d", r.Status)
	}
	var st map[string]map[string]string
	anon.get("/status").json(t, &st)
	if st["rest_api"]["status"] != "ok" || st["database"]["status"] != "ok" {
		t.Errorf("GET status: %v", st)
	}
	if r := c.do("HEAD", "/0.1/status", "", ""); r.Status != http.StatusOK {
		t.Errorf("HEAD /0.1/status without prefix: %d", r.Status)
	}

	// token.new as foo, twice (two client ids), as bar and as admin.
	fooTok := anon.newToken(fooBasic, "my-app")
	anon.newToken(fooBasic, "other-app")
	barTok := anon.newToken("bar:bar-password-2", "bar-app")
	admTok := anon.newToken("admin:"+coretest.AdminPassword, "adm-app")
	foo := wazoClient{client: c, token: fooTok.Data.Token}
	bar := wazoClient{client: c, token: barTok.Data.Token}
	adm := wazoClient{client: c, token: admTok.Data.Token}
	fooUUID, barUUID := fooTok.Data.Metadata.UUID, barTok.Data.Metadata.UUID
	install := fooTok.Data.XivoUUID

	// token.list(user_uuid): GET {prefix}/users/{uuid}/tokens.
	var rl refreshList
	r := foo.get("/users/" + fooUUID + "/tokens")
	r.json(t, &rl)
	if r.Status != http.StatusOK || rl.Total == nil || *rl.Total != 2 || rl.Filtered == nil || *rl.Filtered != 2 || len(rl.Items) != 2 {
		t.Fatalf("token.list: %d %s", r.Status, r.Body)
	}
	for _, it := range rl.Items {
		if it.UserUUID != fooUUID || it.TenantUUID != install || it.Mobile == nil || it.Metadata == nil || len(it.CreatedAt) < 20 ||
			(it.ClientID != "my-app" && it.ClientID != "other-app") {
			t.Errorf("token.list item %+v", it)
		}
	}
	// Paging: limit and offset; total and filtered count the whole list.
	rl = refreshList{}
	foo.get("/users/me/tokens?limit=1&offset=1").json(t, &rl)
	if len(rl.Items) != 1 || *rl.Total != 2 {
		t.Errorf("token.list limit=1 offset=1: %+v", rl)
	}
	wantError(t, foo.get("/users/me/tokens?limit=-1"), http.StatusBadRequest, "limit")

	// Rights: foo reaches neither bar's tokens nor the whole list; bar (a viewer) neither.
	wantError(t, foo.get("/users/"+barUUID+"/tokens"), http.StatusForbidden, "auth.users."+barUUID+".tokens.read")
	wantError(t, foo.get("/tokens"), http.StatusForbidden, "auth.tokens.read")
	wantError(t, bar.get("/tokens"), http.StatusForbidden, "auth.tokens.read")
	wantError(t, bar.get("/users/"+fooUUID+"/tokens"), http.StatusForbidden, "")
	wantError(t, foo.del("/users/"+barUUID+"/tokens/bar-app"), http.StatusForbidden, "")
	wantError(t, anon.get("/tokens"), http.StatusUnauthorized, "")
	wantError(t, wazoClient{client: c, token: uuid.NewString()}.get("/users/me/tokens"), http.StatusUnauthorized, "")
	// The administrator: refresh_tokens.list (GET {prefix}/tokens) and anyone's.
	rl = refreshList{}
	adm.get("/tokens").json(t, &rl)
	if *rl.Total != 4 {
		t.Errorf("refresh_tokens.list as admin: %+v", rl)
	}
	rl = refreshList{}
	adm.get("/users/"+barUUID+"/tokens").json(t, &rl)
	if len(rl.Items) != 1 || rl.Items[0].ClientID != "bar-app" {
		t.Errorf("admin token.list(bar): %+v", rl)
	}
	wantError(t, adm.get("/users/"+uuid.NewString()+"/tokens"), http.StatusNotFound, "No such user")

	// users.get: one's own; not another's (bar, a viewer, reads users as everywhere in
	// gatehouse); administrators any.
	var u map[string]any
	r = foo.get("/users/" + fooUUID)
	r.json(t, &u)
	if r.Status != http.StatusOK || u["uuid"] != fooUUID || u["username"] != "foo" || u["tenant_uuid"] != install || u["enabled"] != true {
		t.Fatalf("users.get(own): %d %s", r.Status, r.Body)
	}
	if em, _ := u["emails"].([]any); len(em) != 1 || em[0].(map[string]any)["address"] != "foo@example.com" {
		t.Errorf("users.get emails: %v", u["emails"])
	}
	wantError(t, foo.get("/users/"+barUUID), http.StatusForbidden, "auth.users."+barUUID+".read")
	u = nil
	adm.get("/users/"+barUUID).json(t, &u)
	if u["username"] != "bar" {
		t.Errorf("users.get(bar) as admin: %v", u)
	}

	// users.get_sessions: GET {prefix}/users/{uuid}/sessions; the session uuid is the
	// token's session_uuid. sessions.list: administrators only.
	var sl sessionList
	foo.get("/users/"+fooUUID+"/sessions").json(t, &sl)
	if *sl.Total != 2 || !sl.has(fooTok.Data.SessionUUID) || sl.Items[0].UserUUID != fooUUID || sl.Items[0].TenantUUID != install {
		t.Fatalf("users.get_sessions: %+v", sl)
	}
	wantError(t, foo.get("/users/"+barUUID+"/sessions"), http.StatusForbidden, "")
	wantError(t, foo.get("/sessions"), http.StatusForbidden, "auth.sessions.read")
	wantError(t, bar.get("/sessions"), http.StatusForbidden, "auth.sessions.read")
	sl = sessionList{}
	adm.get("/sessions").json(t, &sl)
	if *sl.Total != 4 || !sl.has(barTok.Data.SessionUUID) || !sl.has(admTok.Data.SessionUUID) {
		t.Errorf("sessions.list as admin: %+v", sl)
	}

	// token.delete(user_uuid, client_id): 204, then 404; not another user's.
	if r := foo.del("/users/" + fooUUID + "/tokens/other-app"); r.Status != http.StatusNoContent {
		t.Fatalf("token.delete: %d %s", r.Status, r.Body)
	}
	wantError(t, foo.del("/users/"+fooUUID+"/tokens/other-app"), http.StatusNotFound, "")
	if r := adm.del("/users/" + barUUID + "/tokens/bar-app"); r.Status != http.StatusNoContent {
		t.Fatalf("token.delete by admin: %d %s", r.Status, r.Body)
	}
	// The deleted refresh token no longer logs in; the kept one does.
	wantError(t, c.do("POST", clientPrefix+"/token", `{"refresh_token": "`+barTok.Data.RefreshToken+`", "client_id": "bar-app"}`, ""), http.StatusUnauthorized, "")
	if r := c.do("POST", clientPrefix+"/token", `{"refresh_token": "`+fooTok.Data.RefreshToken+`", "client_id": "my-app"}`, ""); r.Status != http.StatusOK {
		t.Fatalf("refresh with the kept token: %d %s", r.Status, r.Body)
	}

	// users.remove_session: foo cannot end bar's session; ends their own (the token is gone).
	if r := foo.del("/users/" + barUUID + "/sessions/" + barTok.Data.SessionUUID); r.Status != http.StatusForbidden {
		t.Fatalf("remove_session of another user: %d", r.Status)
	}
	// A session of bar named under foo's uuid is not foo's: nothing ends (204, as wazo).
	if r := foo.del("/users/" + fooUUID + "/sessions/" + barTok.Data.SessionUUID); r.Status != http.StatusNoContent {
		t.Fatalf("remove_session of bar's session under foo: %d", r.Status)
	}
	if r := c.do("HEAD", "/0.1/token/"+barTok.Data.Token, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("bar's token after foo named it: %d", r.Status)
	}
	second := anon.newToken(fooBasic, "third-app")
	if r := foo.del("/users/" + fooUUID + "/sessions/" + second.Data.SessionUUID); r.Status != http.StatusNoContent {
		t.Fatalf("users.remove_session: %d %s", r.Status, r.Body)
	}
	if r := c.do("HEAD", "/0.1/token/"+second.Data.Token, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("token of the removed session: %d", r.Status)
	}
	// sessions.delete: administrators; 403 for others.
	wantError(t, bar.del("/sessions/"+fooTok.Data.SessionUUID), http.StatusForbidden, "")
	if r := adm.del("/sessions/" + barTok.Data.SessionUUID); r.Status != http.StatusNoContent {
		t.Fatalf("sessions.delete: %d", r.Status)
	}
	wantError(t, bar.get("/users/me/tokens"), http.StatusUnauthorized, "")

	// token.revoke: DELETE {prefix}/token/{token}; a malformed token answers as an unknown one.
	gone := c.do("DELETE", clientPrefix+"/token/"+fooTok.Data.Token, "", "", "Accept", "application/json")
	unknown := c.do("DELETE", clientPrefix+"/token/"+uuid.NewString(), "", "", "Accept", "application/json")
	malformed := c.do("DELETE", clientPrefix+"/token/not-a-token", "", "", "Accept", "application/json")
	if gone.Status != http.StatusOK || string(unknown.Body) != string(gone.Body) || malformed.Status != unknown.Status || string(malformed.Body) != string(unknown.Body) {
		t.Fatalf("token.revoke: %d %s / unknown %d %s / malformed %d %s", gone.Status, gone.Body, unknown.Status, unknown.Body, malformed.Status, malformed.Body)
	}
	wantError(t, foo.get("/users/me/tokens"), http.StatusUnauthorized, "")
	// Other paths under the prefix answer in wazo's error shape.
	wantError(t, anon.get("/nothing"), http.StatusNotFound, "")
}

// TestWazoPrefixServesTheTokenAPI: every /0.1 route is also under /api/auth, and the seed's
// era (no prefix, wazo-16.16's client) still works on the same server.
func TestWazoPrefixServesTheTokenAPI(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	for _, prefix := range []string{"/api/auth", ""} {
		r := c.do("POST", prefix+"/0.1/token", `{"backend": "wazo_user", "expiration": 60}`, fooBasic)
		var tr tokenReply
		r.json(t, &tr)
		if r.Status != http.StatusOK || tr.Data.Token == "" {
			t.Fatalf("POST %s/0.1/token: %d %s", prefix, r.Status, r.Body)
		}
		if r := c.do("HEAD", prefix+"/0.1/token/"+tr.Data.Token, "", ""); r.Status != http.StatusNoContent {
			t.Errorf("HEAD %s/0.1/token/{t}: %d", prefix, r.Status)
		}
		var sc map[string]map[string]bool
		c.do("POST", prefix+"/0.1/token/"+tr.Data.Token+"/scopes/check", `{"scopes": ["auth.users.me.tokens.read", "auth.tokens.read"]}`, "").json(t, &sc)
		if !sc["scopes"]["auth.users.me.tokens.read"] || sc["scopes"]["auth.tokens.read"] {
			t.Errorf("%s scopes/check: %v", prefix, sc)
		}
		var b map[string][]string
		c.do("GET", prefix+"/0.1/backends", "", "").json(t, &b)
		if len(b["data"]) == 0 {
			t.Errorf("%s/0.1/backends: %v", prefix, b)
		}
		if r := c.do("PUT", prefix+"/0.1/token", "{}", ""); r.Status != http.StatusMethodNotAllowed {
			t.Errorf("PUT %s/0.1/token: %d", prefix, r.Status)
		}
	}
}
