package tokenapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"gatehouse/core/coretest"
	"gatehouse/modules/token"
)

// checkAnswer fails unless r is a documented answer: one of the allowed statuses, a token on
// 200 (for token requests), wazo-auth's error shape otherwise; never a 500.
func checkAnswer(t *testing.T, body []byte, r response, allowed ...int) {
	t.Helper()
	ok := false
	for _, s := range allowed {
		ok = ok || r.Status == s
	}
	if !ok {
		t.Fatalf("body %q: status %d %s", body, r.Status, r.Body)
	}
	if r.Status == http.StatusOK {
		if !json.Valid(r.Body) {
			t.Fatalf("body %q: 200 with invalid JSON %q", body, r.Body)
		}
		return
	}
	var e struct {
		Reason     []string  `json:"reason"`
		Timestamp  []float64 `json:"timestamp"`
		StatusCode int       `json:"status_code"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.StatusCode != r.Status || len(e.Reason) != 1 || len(e.Timestamp) != 1 {
		t.Fatalf("body %q: error %d with body %q", body, r.Status, r.Body)
	}
}

var tokenBodySeeds = []string{`{}`, ``, `null`, `[]`, `{"expiration": 2}`, `{"expiration": "2"}`, `{"expiration": -1}`,
	`{"expiration": 9999999999999999999999}`, `{"expiration": 1.5}`, `{"backend": "wazo_user"}`, `{"backend": "x"}`,
	`{"access_type": "offline", "client_id": "c"}`, `{"access_type": "offline"}`, `{"refresh_token": "x", "client_id": "c"}`,
	`{"saml_session_id": "s"}`, `{"domain_name": "d", "tenant_id": 1}`, `{"client_id": ""}`, `{"a": {"b": [1, 2]}}`,
	"{\"backend\": \"\xff\"}", `{"expiration": 1e2}`, `{} trailing`}

// FuzzTokenRequestBody posts fuzzed bodies to POST /0.1/token with an administrator's Basic
// credentials (go test ./modules/tokenapi -run '^$' -fuzz FuzzTokenRequestBody): every answer is
// 200, 400, 401, 413 or 429 in the documented shape, and the server keeps answering.
func FuzzTokenRequestBody(f *testing.F) {
	srv := coretest.Start(f, cheapHashing)
	c := newClient(f, srv)
	for _, s := range tokenBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c.t = t
		r := c.do("POST", "/0.1/token", string(body), "admin:"+coretest.AdminPassword)
		checkAnswer(t, body, r, http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized,
			http.StatusRequestEntityTooLarge, http.StatusTooManyRequests)
		if r.Status == http.StatusOK {
			var tr tokenReply
			if err := json.Unmarshal(r.Body, &tr); err != nil || !token.Plausible(tr.Data.Token) {
				t.Fatalf("body %q: 200 without a token: %s", body, r.Body)
			}
			c.do("DELETE", "/0.1/token/"+tr.Data.Token, "", "") // stay under the session cap
		}
	})
}

// FuzzScopesCheckBody posts fuzzed bodies to POST /0.1/token/{token}/scopes/check with a valid
// token (go test ./modules/tokenapi -run '^$' -fuzz FuzzScopesCheckBody): every answer is 200
// with a {"scopes": {...}} object, 400, 403 (tenant) or 413, and the token stays valid.
func FuzzScopesCheckBody(f *testing.F) {
	srv := coretest.Start(f, cheapHashing)
	c := newClient(f, srv)
	tok := c.create("admin:"+coretest.AdminPassword, `{}`).Token
	for _, s := range []string{`{"scopes": []}`, `{"scopes": ["a.b.c", "#", "!x", "users.me.read"]}`, `{"scopes": [true]}`,
		`{"scopes": null}`, `{}`, ``, `[]`, `{"scopes": ["a"], "tenant_uuid": "x"}`, `{"scopes": ["a"], "tenant_uuid": 1}`,
		"{\"scopes\": [\"\xff\"]}", `{"scopes": [[]]}`, `{"scopes": ["` + "\u00e9ric" + `"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c.t = t
		r := c.do("POST", "/0.1/token/"+tok+"/scopes/check", string(body), "")
		checkAnswer(t, body, r, http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge)
		if r.Status == http.StatusOK {
			var v struct {
				Scopes map[string]bool `json:"scopes"`
			}
			if err := json.Unmarshal(r.Body, &v); err != nil || v.Scopes == nil {
				t.Fatalf("body %q: 200 without scopes: %s", body, r.Body)
			}
		}
	})
}
