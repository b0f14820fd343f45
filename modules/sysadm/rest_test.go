package sysadm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
)

type restReply struct {
	status int
	header http.Header
	args   json.RawMessage
}

func (r restReply) code() int {
	var a struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(r.args, &a)
	return a.Code
}

// rest sends one request; auth is the Authorization header ("" = none).
func rest(t *testing.T, hc *http.Client, method, url, auth, body string) restReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Args json.RawMessage `json:"args"`
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s %s: body %q is not {\"args\":…}: %v", method, url, b, err)
		}
	}
	return restReply{status: resp.StatusCode, header: resp.Header, args: env.Args}
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestREST(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	u := srv.HTTPURL
	adminBasic := basic("admin", coretest.AdminPassword)
	mod, _ := srv.App().Module(auth.ModuleID)
	tokens := mod.(*auth.Module).Tokens()
	before, _ := tokens.List(context.Background(), 0)

	// No login needed for identify; the rest needs one (401 with a Basic challenge).
	if r := rest(t, hc, "GET", u+"/rpc/identify", "", ""); r.status != 200 || !strings.Contains(string(r.args), `"type":"server"`) {
		t.Errorf("identify: %d %s", r.status, r.args)
	}
	r := rest(t, hc, "PUT", u+"/rpc/query", "", `{"junk":"junk"}`)
	if r.status != 401 || r.code() != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("query without auth: %d %v %s", r.status, r.header, r.args)
	}
	// Basic auth per request.
	r = rest(t, hc, "PUT", u+"/rpc/query", adminBasic, `{"junk":"junk"}`)
	var q map[string]string
	if err := json.Unmarshal(r.args, &q); r.status != 200 || err != nil || q["gatehouse/door.create"] != "read/write" {
		t.Errorf("query with Basic: %d %s", r.status, r.args)
	}
	for _, bad := range []string{basic("admin", "wrong"), "Basic !!!not-base64!!!", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), "Digest x", "Bearer not-a-token"} {
		if r := rest(t, hc, "POST", u+"/rpc/query", bad, ""); r.status != 401 || r.code() != 401 {
			t.Errorf("%q: %d %s", bad, r.status, r.args)
		}
	}
	// A token from rpc/auth (or any dialect) works as a Bearer token.
	r = rest(t, hc, "POST", u+"/rpc/auth", "", `{"username":"admin","password":"`+coretest.AdminPassword+`"}`)
	var tok []any
	if err := json.Unmarshal(r.args, &tok); r.status != 200 || err != nil || len(tok) != 2 {
		t.Fatalf("rpc/auth over REST: %d %s", r.status, r.args)
	}
	bearer := "Bearer " + tok[0].(string)
	if r := rest(t, hc, "GET", u+"/gatehouse/whoami", bearer, ""); r.status != 200 || !strings.Contains(string(r.args), `"username":"admin"`) {
		t.Errorf("whoami with Bearer: %d %s", r.status, r.args)
	}
	// The body's args member, or the whole body, is the args.
	if r := rest(t, hc, "POST", u+"/gatehouse/door.read", bearer, `{"args":{"door_id":999}}`); r.status != 404 || r.code() != 404 {
		t.Errorf("door.read 999: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "POST", u+"/gatehouse/door.read", bearer, `{"door_id":"x"}`); r.status != 400 {
		t.Errorf("door.read bad id: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "PUT", u+"/sysadm/settings", bearer, `{"action":"list_ssl_certs"}`); r.status != 200 || string(r.args) != "{}" {
		t.Errorf("settings over REST: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "PUT", u+"/settings/sysadm", bearer, `{"action":"list_ssl_certificates"}`); r.status != 200 {
		t.Errorf("settings alias over REST: %d %s", r.status, r.args)
	}
	for body, want := range map[string]int{`{"namespace":`: 400, `[1,2]`: 400, `"x"`: 400, `{"action":"nope"}`: 400} {
		if r := rest(t, hc, "POST", u+"/rpc/settings", bearer, body); r.status != want || r.code() != want {
			t.Errorf("body %q: %d %s", body, r.status, r.args)
		}
	}
	if r := rest(t, hc, "POST", u+"/rpc/query", bearer, `{"x":"`+strings.Repeat("a", 2<<20)+`"}`); r.status != 413 {
		t.Errorf("oversize body: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "POST", u+"/rpc/nosuch", bearer, ""); r.status != 404 {
		t.Errorf("unknown name: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "POST", u+"/rpc/auth_ssl", "", `{"args":""}`); r.status != 400 {
		t.Errorf("auth_ssl over REST: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "DELETE", u+"/rpc/query", bearer, ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", r.status)
	}
	// Cross-site browser requests are refused, whatever the verb; same-origin ones pass.
	for hdr, want := range map[[2]string]int{
		{"Sec-Fetch-Site", "cross-site"}:   403,
		{"Origin", "https://evil.example"}: 403,
		{"Sec-Fetch-Site", "same-origin"}:  200,
		{"Origin", u}:                      200,
	} {
		req, _ := http.NewRequest("GET", u+"/gatehouse/whoami", nil)
		req.Header.Set("Authorization", adminBasic)
		req.Header.Set(hdr[0], hdr[1])
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %s → %d, want %d", hdr[0], hdr[1], resp.StatusCode, want)
		}
	}
	// Basic logins leave no token behind; the rpc/auth one is there until auth_clear.
	after, _ := tokens.List(context.Background(), 0)
	if len(after) != len(before)+1 {
		t.Errorf("tokens: %d before, %d after (want one more: rpc/auth's)", len(before), len(after))
	}
	if r := rest(t, hc, "POST", u+"/rpc/auth_clear", bearer, ""); r.status != 200 {
		t.Errorf("auth_clear: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "GET", u+"/gatehouse/whoami", bearer, ""); r.status != 401 {
		t.Errorf("after auth_clear: %d %s", r.status, r.args)
	}
}

// TestRESTPasswordEncodings logs in with a non-ASCII password sent in UTF-8 and in Latin-1,
// and checks that Basic failures are throttled (429).
func TestRESTPasswordEncodings(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "lena", "pässwörd-1", core.RankUser)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := srv.HTTPURL + "/gatehouse/whoami"
	latin1 := []byte("lena:p\xe4ssw\xf6rd-1")
	for name, hdr := range map[string]string{
		"utf-8":   basic("lena", "pässwörd-1"),
		"latin-1": "Basic " + base64.StdEncoding.EncodeToString(latin1),
	} {
		if r := rest(t, hc, "GET", url, hdr, ""); r.status != 200 || !bytes.Contains(r.args, []byte(`"username":"lena"`)) {
			t.Errorf("%s password: %d %s", name, r.status, r.args)
		}
	}
	got := 0
	for range 10 {
		got = rest(t, hc, "GET", url, basic("lena", "wrong"), "").status
		if got == 429 {
			break
		}
		if got != 401 {
			t.Fatalf("wrong password: %d", got)
		}
	}
	if got != 429 {
		t.Errorf("repeated failures never throttled")
	}
}
