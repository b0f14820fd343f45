package tokenapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/tokenapi"
	"gatehouse/modules/wsapi/wstest"
)

// answer is a response reduced to what must be identical between the path and header forms:
// the status and the body, without the error timestamp (it is the time of the answer).
func answer(t *testing.T, r response) string {
	t.Helper()
	if len(r.Body) == 0 {
		return fmt.Sprint(r.Status, " <empty>")
	}
	var v map[string]any
	r.json(t, &v)
	if _, ok := v["reason"]; ok {
		delete(v, "timestamp")
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(r.Status, " ", string(b))
}

// tokenCases are the tokens every form must answer alike: a valid one, an expired one, a
// revoked one, unknown ones and malformed ones.
func tokenCases(t *testing.T, c *client) map[string]string {
	t.Helper()
	expired := c.create(fooBasic, `{"expiration": 1}`).Token
	revoked := c.create(fooBasic, `{}`).Token
	if r := c.do("DELETE", "/0.1/token/"+revoked, "", ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE: %d", r.Status)
	}
	valid := c.create(fooBasic, `{}`).Token
	time.Sleep(1100 * time.Millisecond) // expired expires
	return map[string]string{
		"valid": valid, "expired": expired, "revoked": revoked, "unknown": uuid.NewString(),
		"malformed": "abcdef", "upper-case": strings.ToUpper(valid), "64-hex": strings.Repeat("ab", 32),
	}
}

// D.2 FIX: HEAD and GET /0.1/token with the token in X-Auth-Token or Authorization: Bearer
// answer exactly as the path form, for every kind of token, with and without ?scope= / ?tenant=.
func TestHeaderFormsMatchPathForm(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	cases := tokenCases(t, c)
	install := c.create(fooBasic, `{}`).XivoUUID

	queries := []string{"", "?scope=confd", "?scope=users.me.read", "?tenant=" + install, "?tenant=" + uuid.NewString(),
		"?scope=%C3%A9ric&tenant=" + install}
	statuses := map[string]bool{}
	for name, tok := range cases {
		for _, q := range queries {
			for _, method := range []string{"HEAD", "GET"} {
				want := answer(t, c.do(method, "/0.1/token/"+tok+q, "", ""))
				statuses[want[:3]] = true
				for form, h := range map[string][]string{
					"X-Auth-Token":     {tokenapi.AuthTokenHeader, tok},
					"Bearer":           {"Authorization", "Bearer " + tok},
					"bearer lowercase": {"Authorization", "bearer " + tok},
				} {
					if got := answer(t, c.do(method, "/0.1/token"+q, "", "", h...)); got != want {
						t.Errorf("%s %s token%s via %s: %s; path form: %s", method, name, q, form, got, want)
					}
				}
				// The path and the header together, naming the same token: as the path alone.
				if got := answer(t, c.do(method, "/0.1/token/"+tok+q, "", "", tokenapi.AuthTokenHeader, tok)); got != want {
					t.Errorf("%s %s token%s in path and header: %s; path form: %s", method, name, q, got, want)
				}
			}
		}
	}
	for _, s := range []string{"200", "204", "403", "404"} {
		if !statuses[s] {
			t.Errorf("no case answered %s (cases answered %v)", s, statuses)
		}
	}
	// The valid token's data comes whole through the header (a spot check beyond equality).
	var tr tokenReply
	c.do("GET", "/0.1/token", "", "", tokenapi.AuthTokenHeader, cases["valid"]).json(t, &tr)
	if tr.Data.Token != cases["valid"] || tr.Data.Metadata.Username != "foo" {
		t.Fatalf("GET via header: %+v", tr.Data)
	}
}

// D.2 FIX: POST /0.1/token/scopes/check with the token in a header or the body answers as the
// path form.
func TestScopesCheckHeaderAndBodyForms(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	cases := tokenCases(t, c)
	install := c.create(fooBasic, `{}`).XivoUUID

	bodies := []string{`"scopes": ["confd", "users.me.read", "fire.the.missiles", ""]`, `"scopes": []`,
		`"scopes": ["users.me.read"], "tenant_uuid": "` + install + `"`,
		`"scopes": ["users.me.read"], "tenant_uuid": "` + uuid.NewString() + `"`, `"scopes": [true]`, `"scopes": null`}
	statuses := map[string]bool{}
	for name, tok := range cases {
		for _, b := range bodies {
			body := "{" + b + "}"
			want := answer(t, c.do("POST", "/0.1/token/"+tok+"/scopes/check", body, ""))
			statuses[want[:3]] = true
			withToken := `{"token": "` + tok + `", ` + b + "}"
			for form, send := range map[string]func() response{
				"X-Auth-Token": func() response {
					return c.do("POST", "/0.1/token/scopes/check", body, "", tokenapi.AuthTokenHeader, tok)
				},
				"Bearer": func() response {
					return c.do("POST", "/0.1/token/scopes/check", body, "", "Authorization", "Bearer "+tok)
				},
				"body": func() response { return c.do("POST", "/0.1/token/scopes/check", withToken, "") },
				"body and header": func() response {
					return c.do("POST", "/0.1/token/scopes/check", withToken, "", tokenapi.AuthTokenHeader, tok)
				},
				"path and body": func() response { return c.do("POST", "/0.1/token/"+tok+"/scopes/check", withToken, "") },
				"path and header": func() response {
					return c.do("POST", "/0.1/token/"+tok+"/scopes/check", body, "", tokenapi.AuthTokenHeader, tok)
				},
			} {
				if got := answer(t, send()); got != want {
					t.Errorf("%s token, body %s, via %s: %s; path form: %s", name, b, form, got, want)
				}
			}
		}
	}
	for _, s := range []string{"200", "400", "403", "404"} {
		if !statuses[s] {
			t.Errorf("no case answered %s (cases answered %v)", s, statuses)
		}
	}
	r := c.do("POST", "/0.1/token/scopes/check", `{"scopes": ["users.me.read", "confd"]}`, "", tokenapi.AuthTokenHeader, cases["valid"])
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `{"scopes":{"confd":false,"users.me.read":true}}`) {
		t.Fatalf("scopes/check via header: %d %s", r.Status, r.Body)
	}
	wantError(t, c.do("POST", "/0.1/token/scopes/check", `{"token": 5, "scopes": []}`, ""), http.StatusBadRequest, "token: Not a valid string")
}

// D.2 FIX: DELETE /0.1/token with the token in a header answers as the path form and revokes
// the token.
func TestDeleteHeaderForm(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	cases := tokenCases(t, c)
	for name, tok := range cases {
		if name == "valid" || name == "upper-case" {
			continue // DELETE uses them up: below, one fresh token per form
		}
		want := answer(t, c.do("DELETE", "/0.1/token/"+tok, "", ""))
		for _, h := range [][]string{{tokenapi.AuthTokenHeader, tok}, {"Authorization", "Bearer " + tok}} {
			if got := answer(t, c.do("DELETE", "/0.1/token", "", "", h...)); got != want {
				t.Errorf("DELETE %s token via %s: %s; path form: %s", name, h[0], got, want)
			}
		}
	}
	var want string
	for i, h := range []string{"", tokenapi.AuthTokenHeader, "Authorization"} {
		tok := c.create(fooBasic, `{}`).Token
		var r response
		switch h {
		case "":
			r = c.do("DELETE", "/0.1/token/"+tok, "", "")
		case "Authorization":
			r = c.do("DELETE", "/0.1/token", "", "", h, "Bearer "+tok)
		default:
			r = c.do("DELETE", "/0.1/token", "", "", h, tok)
		}
		if i == 0 {
			want = answer(t, r)
		} else if got := answer(t, r); got != want {
			t.Errorf("DELETE valid token via %s: %s; path form: %s", h, got, want)
		}
		if r := c.do("HEAD", "/0.1/token/"+tok, "", ""); r.Status != http.StatusNotFound {
			t.Errorf("token deleted via %q still valid: %d", h, r.Status)
		}
	}
	if want != `200 {"data":{"message":"success"}}` {
		t.Fatalf("DELETE valid: %s", want)
	}
}

// D.2 FIX: a token in the query string is refused (400, nothing looked up or revoked); a request
// with no token, or two different ones, is refused too.
func TestTokenPlacementRefusals(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	tok := c.create(fooBasic, `{}`).Token
	other := c.create(fooBasic, `{}`).Token
	hdr := []string{tokenapi.AuthTokenHeader, tok}

	type req struct {
		method, path, body string
		header             []string
	}
	const useHeader = "X-Auth-Token"
	for _, rq := range []req{
		{"GET", "/0.1/token?token=" + tok, "", nil},
		{"HEAD", "/0.1/token?token=" + tok, "", nil},
		{"DELETE", "/0.1/token?token=" + tok, "", nil},
		{"DELETE", "/0.1/token?access_token=" + tok, "", nil},
		{"GET", "/0.1/token?scope=a&token=", "", hdr},
		{"GET", "/0.1/token/" + tok + "?token=" + tok, "", nil},
		{"DELETE", "/0.1/token/" + tok + "?token=" + tok, "", nil},
		{"POST", "/0.1/token/scopes/check?token=" + tok, `{"scopes": []}`, nil},
		{"POST", "/0.1/token/" + tok + "/scopes/check?token=" + tok, `{"scopes": []}`, nil},
	} {
		r := c.do(rq.method, rq.path, rq.body, "", rq.header...)
		if rq.method == "HEAD" {
			if r.Status != http.StatusBadRequest {
				t.Errorf("HEAD %s: %d, want 400", rq.path, r.Status)
			}
			continue
		}
		wantError(t, r, http.StatusBadRequest, "not accepted in the query string")
		wantError(t, r, http.StatusBadRequest, useHeader)
	}
	// The DELETEs with ?token= revoked nothing.
	if r := c.do("HEAD", "/0.1/token", "", "", hdr...); r.Status != http.StatusNoContent {
		t.Fatalf("token after refused ?token= DELETEs: %d", r.Status)
	}

	// Two different tokens: path and header, X-Auth-Token and Bearer, header and body, path and body.
	for _, rq := range []req{
		{"GET", "/0.1/token/" + other, "", hdr},
		{"GET", "/0.1/token", "", []string{tokenapi.AuthTokenHeader, tok, "Authorization", "Bearer " + other}},
		{"DELETE", "/0.1/token/" + other, "", hdr},
		{"DELETE", "/0.1/token/abcdef", "", hdr},
		{"POST", "/0.1/token/scopes/check", `{"token": "` + other + `", "scopes": []}`, hdr},
		{"POST", "/0.1/token/" + other + "/scopes/check", `{"token": "` + tok + `", "scopes": []}`, nil},
		{"POST", "/0.1/token/" + other + "/scopes/check", `{"scopes": []}`, hdr},
	} {
		wantError(t, c.do(rq.method, rq.path, rq.body, "", rq.header...), http.StatusBadRequest, "Two different tokens")
	}
	for _, tk := range []string{tok, other} { // neither was revoked by the refused DELETEs
		if r := c.do("HEAD", "/0.1/token/"+tk, "", ""); r.Status != http.StatusNoContent {
			t.Fatalf("token after refused DELETEs: %d", r.Status)
		}
	}

	// No token anywhere (Basic credentials are not a token; empty values count as absent).
	for _, rq := range []req{
		{"GET", "/0.1/token", "", nil},
		{"DELETE", "/0.1/token", "", nil},
		{"GET", "/0.1/token", "", []string{"Authorization", "Bearer "}},
		{"POST", "/0.1/token/scopes/check", `{"scopes": []}`, nil},
		{"POST", "/0.1/token/scopes/check", `{"token": "", "scopes": []}`, nil},
	} {
		wantError(t, c.do(rq.method, rq.path, rq.body, "", rq.header...), http.StatusBadRequest, "Missing token")
	}
	wantError(t, c.do("GET", "/0.1/token", "", fooBasic), http.StatusBadRequest, "Missing token")
}

// One token everywhere: a Leosac token is checked, scope-checked and revoked through
// X-Auth-Token, and revoking it ends the live Leosac session.
func TestLeosacTokenViaHeader(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	ws := wstest.Dial(t, srv.WSURL)
	tok := ws.Login("foo", "bar-password")
	hdr := []string{tokenapi.AuthTokenHeader, tok}

	if r := c.do("HEAD", "/0.1/token?scope=users.me.read", "", "", hdr...); r.Status != http.StatusNoContent {
		t.Fatalf("Leosac token via X-Auth-Token: %d", r.Status)
	}
	var tr tokenReply
	r := c.do("GET", "/0.1/token", "", "", hdr...)
	r.json(t, &tr)
	if r.Status != http.StatusOK || tr.Data.Metadata.Username != "foo" || tr.Data.Metadata.Dialect != "leosac" {
		t.Fatalf("GET Leosac token via X-Auth-Token: %d %s", r.Status, r.Body)
	}
	if r := c.do("POST", "/0.1/token/scopes/check", `{"scopes": ["users.me.read"]}`, "", hdr...); !strings.Contains(string(r.Body), `"users.me.read":true`) {
		t.Fatalf("scopes/check Leosac token via X-Auth-Token: %d %s", r.Status, r.Body)
	}
	if r := c.do("DELETE", "/0.1/token", "", "", hdr...); r.Status != http.StatusOK {
		t.Fatalf("DELETE Leosac token via X-Auth-Token: %d", r.Status)
	}
	ws.ExpectPush("session_closed", 5*time.Second)
	if r := c.do("HEAD", "/0.1/token", "", "", hdr...); r.Status != http.StatusNotFound {
		t.Fatalf("revoked Leosac token via X-Auth-Token: %d", r.Status)
	}
}
