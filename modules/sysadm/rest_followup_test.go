package sysadm_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// TestRESTBadInput covers issue 5's bad input for sysadm REST beyond TestREST: malformed Basic
// headers, passwords in either encoding and with colons, bounded bodies whatever their framing,
// and wrong JSON types in every auth and settings call. Each answers the documented 4xx
// {"args": {"code", "message"}}, never a 500, and the server keeps serving.
func TestRESTBadInput(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	addUser(t, srv, "zoe", "p:ss:wörd", core.RankUser)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	u := srv.HTTPURL
	whoami := u + "/gatehouse/whoami"

	// Malformed Basic credentials: 401 with the Basic challenge, never a 500.
	for _, hdr := range []string{
		"Basic", "Basic ", "Basic ====", "Basic Zm9v YmFy", "Basic " + strings.Repeat("A", 32<<10) + "!",
		"Basic " + base64.RawStdEncoding.EncodeToString([]byte("zoe:p:ss:wörd")) + "#",
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("zoe:p:ss:wörd\x00")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte("\xff\xfe:\x00\x01")),
		"Bearer ", "bearer " + strings.Repeat("z", 10000),
	} {
		r := rest(t, hc, "GET", whoami, hdr, "")
		if r.status != 401 || r.code() != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("Authorization %.40q: %d %s", hdr, r.status, r.args)
		}
	}
	// The password is everything after the first colon; UTF-8 and Latin-1 passwords both work.
	for name, hdr := range map[string]string{
		"utf-8":   basic("zoe", "p:ss:wörd"),
		"latin-1": "Basic " + base64.StdEncoding.EncodeToString([]byte("zoe:p:ss:w\xf6rd")),
	} {
		if r := rest(t, hc, "GET", whoami, hdr, ""); r.status != 200 || !strings.Contains(string(r.args), `"username":"zoe"`) {
			t.Errorf("%s credentials: %d %s", name, r.status, r.args)
		}
	}

	// Bodies are bounded (1 MiB) before any login, with or without a Content-Length; a body
	// just under the limit is read.
	tooBig := `{"x":"` + strings.Repeat("a", 1<<20) + `"}`
	if r := rest(t, hc, "POST", u+"/rpc/auth", "", tooBig); r.status != 413 || r.code() != 413 {
		t.Errorf("oversize anonymous body: %d %s", r.status, r.args)
	}
	req, _ := http.NewRequest("POST", whoami, io.MultiReader(strings.NewReader(tooBig))) // no length: chunked
	req.Header.Set("Authorization", basic("zoe", "p:ss:wörd"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("oversize chunked body: %d", resp.StatusCode)
	}
	if r := rest(t, hc, "POST", whoami, basic("zoe", "p:ss:wörd"), `{"x":"`+strings.Repeat("a", 1<<20-100)+`"}`); r.status != 200 {
		t.Errorf("body under the limit: %d %s", r.status, r.args)
	}
	if r := rest(t, hc, "POST", whoami, basic("zoe", "p:ss:wörd"), strings.Repeat("[", 200_000)); r.status != 400 {
		t.Errorf("deeply nested body: %d %s", r.status, r.args)
	}

	// Wrong JSON types: 400 naming the problem, never a login failure or a 500.
	r := rest(t, hc, "POST", u+"/rpc/auth", "", `{"username":"admin","password":"`+coretest.AdminPassword+`"}`)
	if r.status != 200 {
		t.Fatalf("rpc/auth: %d %s", r.status, r.args)
	}
	var tok []any
	if err := json.Unmarshal(r.args, &tok); err != nil || len(tok) != 2 {
		t.Fatalf("rpc/auth reply %s", r.args)
	}
	bearer := "Bearer " + tok[0].(string)
	for _, c := range []struct{ path, auth, body string }{
		{"/rpc/auth", "", `{"username":5,"password":"x"}`},
		{"/rpc/auth", "", `{"username":"admin","password":["x"]}`},
		{"/rpc/auth", "", `{"args":[1,2]}`},
		{"/rpc/auth", "", `{"args":"admin"}`},
		{"/rpc/auth_token", "", `{"token":12345}`},
		{"/rpc/auth_token", "", `{"token":{"t":"x"}}`},
		{"/rpc/auth_ssl", "", `{"pub_key":7}`},
		{"/rpc/settings", bearer, `{"action":5}`},
		{"/rpc/settings", bearer, `{"args":{"action":"register_ssl_cert","pub_key":true}}`},
		{"/rpc/settings", bearer, `{"args":5}`},
		{"/gatehouse/door.read", bearer, `{"door_id":[1]}`},
		{"/gatehouse/user.update", bearer, `{"user_id":1,"attributes":"x"}`},
	} {
		r := rest(t, hc, "POST", u+c.path, c.auth, c.body)
		if r.status != 400 || r.code() != 400 {
			t.Errorf("%s %s: %d %s", c.path, c.body, r.status, r.args)
		}
	}
	// args null is no args.
	if r := rest(t, hc, "POST", u+"/rpc/query", bearer, `{"args":null}`); r.status != 200 {
		t.Errorf("args null: %d %s", r.status, r.args)
	}
	// The server still serves logins after all this.
	if r := rest(t, hc, "GET", whoami, basic("admin", coretest.AdminPassword), ""); r.status != 200 {
		t.Errorf("admin after bad input: %d %s", r.status, r.args)
	}
}
