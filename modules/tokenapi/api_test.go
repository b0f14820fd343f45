package tokenapi_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/acl"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
	"gatehouse/modules/tokenapi"
)

// The tests below port wazo-auth's black-box suite (reference B.10, numbers in the comments)
// to gatehouse: a real server, a real HTTP client, the fixture user foo.

func isUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.String() == s
}

// B.10 #1, #2, #15, #18, #37: a token and its data, the same from POST and GET.
func TestCreateTokenReturnsItsData(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	fooID := addFoo(t, srv, core.RankUser)

	before := time.Now().UTC().Truncate(time.Second)
	r := c.do("POST", "/0.1/token", `{}`, fooBasic, "User-Agent", "wazo-test/1.0")
	if r.Status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.Status, r.Body)
	}
	var tr tokenReply
	r.json(t, &tr)
	d := tr.Data
	if !isUUID(d.Token) || !isUUID(d.AuthID) || !isUUID(d.XivoUUID) || !isUUID(d.SessionUUID) {
		t.Fatalf("token %q, auth_id %q, xivo_uuid %q, session_uuid %q: want UUIDs", d.Token, d.AuthID, d.XivoUUID, d.SessionUUID)
	}
	if d.XivoUserUUID != d.AuthID || d.Metadata.UUID != d.AuthID || d.Metadata.PBXUserUUID != d.AuthID {
		t.Fatalf("user uuids differ: %+v", d)
	}
	if d.Metadata.UserID != fooID || d.Metadata.Username != "foo" || d.Metadata.Rank != 0 || d.Metadata.TenantUUID != d.XivoUUID {
		t.Fatalf("metadata %+v", d.Metadata)
	}
	if !slices.Equal(d.ACL, acl.ForRank(core.RankUser)) {
		t.Fatalf("acl %q, want the user rank's", d.ACL)
	}
	if d.RemoteAddr != "127.0.0.1" || d.UserAgent != "wazo-test/1.0" {
		t.Fatalf("remote_addr %q user_agent %q", d.RemoteAddr, d.UserAgent)
	}
	if d.RefreshToken != "" {
		t.Fatal("refresh_token without access_type offline")
	}
	// Times: default expiration 7200 s; Z fields are RFC 3339 UTC; legacy fields agree.
	issued, err := time.Parse(time.RFC3339Nano, d.IssuedAtUTC)
	if err != nil || !strings.HasSuffix(d.IssuedAtUTC, "Z") || issued.Before(before) || issued.After(time.Now().Add(time.Second)) {
		t.Fatalf("issued_at_utc %q: %v", d.IssuedAtUTC, err)
	}
	expires, err := time.Parse(time.RFC3339Nano, d.ExpiresAtUTC)
	if err != nil || expires.Sub(issued) != 7200*time.Second {
		t.Fatalf("expires_at_utc %q - issued_at_utc = %v, %v; want 2h", d.ExpiresAtUTC, expires.Sub(issued), err)
	}
	if legacy, err := time.Parse("2006-01-02T15:04:05.999999", d.UTCIssuedAt); err != nil || !legacy.Equal(issued) {
		t.Fatalf("utc_issued_at %q vs %q: %v", d.UTCIssuedAt, d.IssuedAtUTC, err)
	}
	if local, err := time.ParseInLocation("2006-01-02T15:04:05.999999", d.IssuedAt, time.Local); err != nil || !local.Equal(issued) {
		t.Fatalf("issued_at %q (local) vs %q: %v", d.IssuedAt, d.IssuedAtUTC, err)
	}

	// #18: GET gives the same data (without a refresh token); the auth_id is stable.
	g := c.do("GET", "/0.1/token/"+d.Token, "", "")
	if g.Status != http.StatusOK {
		t.Fatalf("GET: %d %s", g.Status, g.Body)
	}
	var gr tokenReply
	g.json(t, &gr)
	if gr.Data.Token != d.Token || gr.Data.AuthID != d.AuthID || gr.Data.XivoUUID != d.XivoUUID ||
		gr.Data.SessionUUID != d.SessionUUID || gr.Data.ExpiresAtUTC != d.ExpiresAtUTC || gr.Data.UserAgent != "wazo-test/1.0" {
		t.Fatalf("GET data %+v differs from POST data %+v", gr.Data, d)
	}
	for _, key := range []string{`"xivo_user_uuid"`, `"pbx_user_uuid"`, `"xivo_uuid"`, `"utc_expires_at"`, `"expires_at_utc"`} {
		if !bytes.Contains(g.Body, []byte(key)) {
			t.Errorf("GET body lacks %s", key)
		}
	}
	if again := c.create(fooBasic, `{}`); again.AuthID != d.AuthID || again.Token == d.Token || again.SessionUUID == d.SessionUUID {
		t.Fatalf("second token: auth_id %q (want %q), token and session must be new", again.AuthID, d.AuthID)
	}
	// The installation id survives a restart, so user uuids do too.
	srv2 := srv.Restart()
	c2 := newClient(t, srv2)
	if d2 := c2.create(fooBasic, `{}`); d2.AuthID != d.AuthID || d2.XivoUUID != d.XivoUUID {
		t.Fatalf("after restart auth_id %q xivo_uuid %q, want %q %q", d2.AuthID, d2.XivoUUID, d.AuthID, d.XivoUUID)
	}
}

// B.10 #3–#7, #37: every authentication failure is 401 "Authentication Failed"; bodies that are
// not a JSON object are 400.
func TestCreateTokenFailures(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	addUser(t, srv, auth.User{Username: "nopass", ValidityEnabled: true}, "")
	addUser(t, srv, auth.User{Username: "disabled", ValidityEnabled: false}, "disabled-password")

	for _, tc := range []struct{ name, basic, body string }{
		{"wrong password", "foo:wrong-password", `{}`},
		{"unknown user", "nobody:bar-password", `{}`},
		{"user without password", "nopass:", `{}`},
		{"user without password, any password", "nopass:anything-at-all", `{}`},
		{"disabled account", "disabled:disabled-password", `{}`},
		{"no Authorization", "", `{}`},
		{"unknown backend", fooBasic, `{"backend": "unexistant_backend"}`},
		{"saml session", fooBasic, `{"saml_session_id": "abc"}`},
	} {
		wantError(t, c.do("POST", "/0.1/token", tc.body, tc.basic), http.StatusUnauthorized, "Authentication Failed")
	}
	// Known backends, including the 2015 name, are fine.
	c.create(fooBasic, `{"backend": "wazo_user"}`)
	c.create(fooBasic, `{"backend": "xivo_user"}`)
	// Bearer instead of Basic is not a login.
	wantError(t, c.do("POST", "/0.1/token", `{}`, "", "Authorization", "Bearer x"), http.StatusUnauthorized, "")

	for _, body := range []string{"", " ", "null", "[]", `"x"`, "42", "{", `{} {}`, "not json", `{"expiration": }`} {
		r := c.do("POST", "/0.1/token", body, fooBasic)
		wantError(t, r, http.StatusBadRequest, "")
	}
	// #6: no body at all, with a JSON content type.
	req, _ := http.NewRequest("POST", srv.HTTPURL+"/0.1/token", nil)
	req.SetBasicAuth("foo", "bar-password")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no body: %d, want 400", resp.StatusCode)
	}
	// Over the body limit: 413, never read whole.
	big := `{"backend": "` + strings.Repeat("x", 70<<10) + `"}`
	wantError(t, c.do("POST", "/0.1/token", big, fooBasic), http.StatusRequestEntityTooLarge, "")
}

// B.10 #8–#11 and the one-year cap of contract §4.
func TestExpiration(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)

	d := c.create(fooBasic, `{"expiration": 2}`)
	issued, _ := time.Parse(time.RFC3339Nano, d.IssuedAtUTC)
	expires, _ := time.Parse(time.RFC3339Nano, d.ExpiresAtUTC)
	if expires.Sub(issued) != 2*time.Second {
		t.Fatalf("expiration 2: expires - issued = %v", expires.Sub(issued))
	}
	li, _ := time.Parse("2006-01-02T15:04:05.999999", d.IssuedAt)
	le, _ := time.Parse("2006-01-02T15:04:05.999999", d.ExpiresAt)
	ui, _ := time.Parse("2006-01-02T15:04:05.999999", d.UTCIssuedAt)
	ue, _ := time.Parse("2006-01-02T15:04:05.999999", d.UTCExpiresAt)
	if le.Sub(li) != 2*time.Second || ue.Sub(ui) != 2*time.Second {
		t.Fatalf("legacy fields: %v / %v", le.Sub(li), ue.Sub(ui))
	}
	_, offset := issued.In(time.Local).Zone()
	if li.Sub(ui) != time.Duration(offset)*time.Second {
		t.Fatalf("issued_at - utc_issued_at = %v, want the server's UTC offset %ds", li.Sub(ui), offset)
	}
	// A year is a valid request, granted up to the server-wide cap (token.max_lifetime,
	// default 7 days): the reply says what was granted.
	year := c.create(fooBasic, fmt.Sprintf(`{"expiration": %d}`, tokenapi.MaxYear))
	yi, _ := time.Parse(time.RFC3339Nano, year.IssuedAtUTC)
	if e, _ := time.Parse(time.RFC3339Nano, year.ExpiresAtUTC); e.Sub(yi) != 7*24*time.Hour {
		t.Fatalf("one-year request: issued %v, expires %v, want the 7-day cap", yi, e)
	}
	for _, exp := range []string{`"string"`, `"60"`, `-1`, `0`, `2.5`, `2.0`, `1e3`, `true`, `null`, `[]`,
		`9999999999999999999999`, fmt.Sprint(tokenapi.MaxYear + 1), `315360000`} {
		wantError(t, c.do("POST", "/0.1/token", `{"expiration": `+exp+`}`, fooBasic), http.StatusBadRequest, "expiration")
	}
	for _, body := range []string{`{"access_type": "sometimes"}`, `{"access_type": 1}`, `{"backend": 7}`,
		`{"client_id": ""}`, `{"client_id": "` + strings.Repeat("c", 1025) + `"}`, `{"domain_name": false}`} {
		wantError(t, c.do("POST", "/0.1/token", body, fooBasic), http.StatusBadRequest, "")
	}
}

// B.10 #12 and #13: an email stands for its user; Basic credentials in UTF-8 or Latin-1.
func TestEmailAndEncodings(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	fooID := addFoo(t, srv, core.RankUser)
	if d := c.create("FOO@example.com:bar-password", `{}`); d.Metadata.UserID != fooID {
		t.Fatalf("email login: user %d, want %d", d.Metadata.UserID, fooID)
	}
	wantError(t, c.do("POST", "/0.1/token", `{}`, "nobody@example.com:bar-password"), http.StatusUnauthorized, "")
	// Two users cannot share an email, in any case (issue 10, point 8: the database refuses
	// it), so an email names at most one user: nobody takes over another's login email.
	twin := addUser(t, srv, auth.User{Username: "twin1", Email: "twin@example.com", ValidityEnabled: true}, "twin-password")
	if err := authModule(t, srv).Users().Create(t.Context(),
		&auth.User{Username: "twin2", Email: "TWIN@example.com", ValidityEnabled: true}); err == nil {
		t.Fatal("a second user was given the same email in another case")
	}
	if d := c.create("twin@example.com:twin-password", `{}`); d.Metadata.UserID != twin {
		t.Fatalf("email login: user %d, want %d", d.Metadata.UserID, twin)
	}

	uid := addUser(t, srv, auth.User{Username: "eric", ValidityEnabled: true}, "pässwörd-é")
	if d := c.create("eric:pässwörd-é", `{}`); d.Metadata.UserID != uid {
		t.Fatal("UTF-8 password")
	}
	if d := c.create("eric:p\xe4ssw\xf6rd-\xe9", `{}`); d.Metadata.UserID != uid {
		t.Fatal("Latin-1 password")
	}
}

// B.10 #16, #17, #19, #20: HEAD, GET, DELETE.
func TestHeadGetDelete(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	tok := c.create(fooBasic, `{}`).Token

	if r := c.do("HEAD", "/0.1/token/"+tok, "", ""); r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("HEAD valid: %d %q", r.Status, r.Body)
	}
	for _, bad := range []string{"abcdef", strings.ToUpper(tok), tok + "0", "%20", uuid.NewString(), strings.Repeat("a", 64)} {
		if r := c.do("HEAD", "/0.1/token/"+bad, "", ""); r.Status != http.StatusNotFound {
			t.Fatalf("HEAD %q: %d, want 404", bad, r.Status)
		}
		wantError(t, c.do("GET", "/0.1/token/"+bad, "", ""), http.StatusNotFound, "No such token")
	}
	r := c.do("DELETE", "/0.1/token/"+tok, "", "")
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`{"data":{"message":"success"}}`)) {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	wantError(t, c.do("GET", "/0.1/token/"+tok, "", ""), http.StatusNotFound, "No such token")
	if r := c.do("HEAD", "/0.1/token/"+tok, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("HEAD after DELETE: %d", r.Status)
	}
	// Idempotent: again, and for a token that never existed.
	for _, tk := range []string{tok, uuid.NewString()} {
		if r := c.do("DELETE", "/0.1/token/"+tk, "", ""); r.Status != http.StatusOK {
			t.Fatalf("DELETE %s: %d", tk, r.Status)
		}
	}
	// A malformed token is answered exactly as an unknown one.
	unknown := c.do("DELETE", "/0.1/token/"+uuid.NewString(), "", "")
	for _, bad := range []string{"not-a-token", "abcdef", strings.Repeat("a", 64) + "z"} {
		if r := c.do("DELETE", "/0.1/token/"+bad, "", ""); r.Status != unknown.Status || !bytes.Equal(r.Body, unknown.Body) ||
			r.Header.Get("Content-Type") != unknown.Header.Get("Content-Type") {
			t.Fatalf("DELETE malformed %q: %d %s; unknown: %d %s", bad, r.Status, r.Body, unknown.Status, unknown.Body)
		}
	}
	// Other paths under /0.1 answer in the same shape.
	wantError(t, c.do("GET", "/0.1/nothing", "", ""), http.StatusNotFound, "")
	wantError(t, c.do("PUT", "/0.1/token", "{}", fooBasic), http.StatusMethodNotAllowed, "")
	wantError(t, c.do("GET", "/0.1/token", "", ""), http.StatusBadRequest, "Missing token") // no header either
	if r := c.do("PATCH", "/0.1/token", "", ""); r.Header.Get("Allow") != "DELETE, GET, HEAD, POST" {
		t.Fatalf("PATCH /0.1/token: %d, Allow %q", r.Status, r.Header.Get("Allow"))
	}
	wantError(t, c.do("GET", "/0.1/token/", "", ""), http.StatusNotFound, "")
}

// B.10 #21, #22: an expired token is 404 at once and purged from the database soon after.
func TestExpiredTokens(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing, coretest.WithModuleConfig("token", `{"purge_interval": "100ms", "flush_interval": "100ms"}`))
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	d := c.create(fooBasic, `{"expiration": 1}`)
	if r := c.do("HEAD", "/0.1/token/"+d.Token, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("fresh: %d", r.Status)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := c.do("HEAD", "/0.1/token/"+d.Token, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("expired HEAD: %d", r.Status)
	}
	wantError(t, c.do("POST", "/0.1/token/"+d.Token+"/scopes/check", `{"scopes": ["a"]}`, ""), http.StatusNotFound, "No such token")
	// Another expired token, never looked at again, is purged by the token module.
	d2 := c.create(fooBasic, `{"expiration": 1}`)
	coretest.Eventually(t, 5*time.Second, func() error {
		var n int64
		if err := srv.DB().Read.Raw(`SELECT count(*) FROM tokens WHERE id IN ?`, []string{d.SessionUUID, d2.SessionUUID}).Scan(&n).Error; err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d expired tokens still stored", n)
		}
		return nil
	})
}

// B.10 #23–#26: ?scope= and ?tenant=.
func TestScopeAndTenant(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	d := c.create(fooBasic, `{}`)
	path := "/0.1/token/" + d.Token

	for _, scope := range []string{"confd", "éric", "users.read", "users.7.read", "#", "users." + uuid.NewString() + ".read"} {
		q := "?scope=" + url.QueryEscape(scope)
		if r := c.do("HEAD", path+q, "", ""); r.Status != http.StatusForbidden {
			t.Errorf("HEAD scope %q: %d, want 403", scope, r.Status)
		}
		wantError(t, c.do("GET", path+q, "", ""), http.StatusForbidden, "Unauthorized for "+scope)
	}
	for _, scope := range []string{"users.me.read", "users." + d.AuthID + ".read", "users.me.password.update", "events.me.read", ""} {
		q := "?scope=" + url.QueryEscape(scope)
		if r := c.do("HEAD", path+q, "", ""); r.Status != http.StatusNoContent {
			t.Errorf("HEAD scope %q: %d, want 204", scope, r.Status)
		}
		if r := c.do("GET", path+q, "", ""); r.Status != http.StatusOK {
			t.Errorf("GET scope %q: %d, want 200", scope, r.Status)
		}
	}
	// An administrator's token grants every scope.
	admin := c.create("admin:"+coretest.AdminPassword, `{}`)
	if r := c.do("HEAD", "/0.1/token/"+admin.Token+"?scope=confd.users.read", "", ""); r.Status != http.StatusNoContent {
		t.Errorf("admin scope: %d", r.Status)
	}
	// Tenants: the one tenant is this installation.
	if r := c.do("HEAD", path+"?tenant="+d.XivoUUID, "", ""); r.Status != http.StatusNoContent {
		t.Errorf("own tenant: %d", r.Status)
	}
	for _, tn := range []string{uuid.NewString(), "x"} {
		if r := c.do("HEAD", path+"?tenant="+tn, "", ""); r.Status != http.StatusForbidden {
			t.Errorf("tenant %s: %d", tn, r.Status)
		}
		wantError(t, c.do("GET", path+"?tenant="+tn, "", ""), http.StatusForbidden, "Unauthorized for tenant")
	}
}

// B.10 #27–#31: scopes/check.
func TestScopesCheck(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	d := c.create(fooBasic, `{}`)
	path := "/0.1/token/" + d.Token + "/scopes/check"

	check := func(body string) map[string]bool {
		t.Helper()
		r := c.do("POST", path, body, "")
		if r.Status != http.StatusOK {
			t.Fatalf("scopes/check %s: %d %s", body, r.Status, r.Body)
		}
		var v struct {
			Scopes map[string]bool `json:"scopes"`
		}
		r.json(t, &v)
		if v.Scopes == nil {
			t.Fatalf("scopes/check %s: no scopes object in %s", body, r.Body)
		}
		return v.Scopes
	}
	other := uuid.NewString()
	got := check(fmt.Sprintf(`{"scopes": ["confd", "foo", "bar", "users.me.read", "users.%s.read", "users.%s.read",
		"users.me.password.update", "fire.the.missiles", ""]}`, d.AuthID, other))
	want := map[string]bool{"confd": false, "foo": false, "bar": false, "users.me.read": true,
		"users." + d.AuthID + ".read": true, "users." + other + ".read": false,
		"users.me.password.update": true, "fire.the.missiles": false, "": false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scopes/check = %v, want %v", got, want)
	}
	if got := check(`{"scopes": []}`); len(got) != 0 {
		t.Fatalf("[] → %v, want {}", got)
	}
	if got := check(`{"scopes": ["users.me.read"], "tenant_uuid": "` + d.XivoUUID + `"}`); !got["users.me.read"] {
		t.Fatal("own tenant refused")
	}
	for _, body := range []string{`{"scopes": [true]}`, `{"scopes": [null]}`, `{"scopes": "a"}`, `{"scopes": null}`, `{}`,
		`[]`, ``, `{"scopes": [], "tenant_uuid": 5}`} {
		wantError(t, c.do("POST", path, body, ""), http.StatusBadRequest, "")
	}
	wantError(t, c.do("POST", path, `{"scopes": [], "tenant_uuid": "`+uuid.NewString()+`"}`, ""), http.StatusForbidden, "Unauthorized for tenant")
	wantError(t, c.do("POST", "/0.1/token/"+uuid.NewString()+"/scopes/check", `{"scopes": []}`, ""), http.StatusNotFound, "No such token")
	wantError(t, c.do("POST", "/0.1/token/abc/scopes/check", `{"scopes": []}`, ""), http.StatusNotFound, "No such token")
}

// B.10 #32.
func TestBackends(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	r := newClient(t, srv).do("GET", "/0.1/backends", "", "")
	var v struct {
		Data []string `json:"data"`
	}
	r.json(t, &v)
	if r.Status != http.StatusOK || !slices.Equal(v.Data, tokenapi.Backends) || !slices.Contains(v.Data, "wazo_user") {
		t.Fatalf("backends: %d %s", r.Status, r.Body)
	}
}

// B.10 #33–#35: refresh tokens; one per (user, client id), hashed, so a new offline login
// replaces the previous one; a password change ends them.
func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	fooID := addFoo(t, srv, core.RankUser)

	d := c.create(fooBasic, `{"access_type": "offline", "client_id": "my-app"}`)
	if !isUUID(d.RefreshToken) {
		t.Fatalf("refresh_token %q", d.RefreshToken)
	}
	var n int64
	srv.DB().Read.Raw(`SELECT count(*) FROM refresh_tokens WHERE hash = ?`, token.Hash(d.RefreshToken)).Scan(&n)
	if n != 1 {
		t.Fatal("refresh token not stored as its hash")
	}
	// A token from the refresh token, without a password, and without a new refresh token.
	r := c.do("POST", "/0.1/token", `{"refresh_token": "`+d.RefreshToken+`", "client_id": "my-app", "expiration": 60}`, "")
	if r.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	var tr tokenReply
	r.json(t, &tr)
	if tr.Data.Metadata.UserID != fooID || tr.Data.RefreshToken != "" || tr.Data.Token == d.Token {
		t.Fatalf("refreshed token %+v", tr.Data)
	}
	if r := c.do("HEAD", "/0.1/token/"+tr.Data.Token, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("refreshed token HEAD: %d", r.Status)
	}
	// #34: wrong client id; unknown refresh token.
	wantError(t, c.do("POST", "/0.1/token", `{"refresh_token": "`+d.RefreshToken+`", "client_id": "other"}`, ""), http.StatusUnauthorized, "Authentication Failed")
	wantError(t, c.do("POST", "/0.1/token", `{"refresh_token": "`+uuid.NewString()+`", "client_id": "my-app"}`, ""), http.StatusUnauthorized, "")
	// Schema rules.
	for _, body := range []string{`{"access_type": "offline"}`, `{"refresh_token": "x"}`,
		`{"refresh_token": "` + d.RefreshToken + `", "client_id": "my-app", "access_type": "offline"}`} {
		wantError(t, c.do("POST", "/0.1/token", body, fooBasic), http.StatusBadRequest, "")
	}
	// #35: one refresh token per (user, client id): a second offline login replaces the first.
	d2 := c.create(fooBasic, `{"access_type": "offline", "client_id": "my-app"}`)
	srv.DB().Read.Raw(`SELECT count(*) FROM refresh_tokens WHERE user_id = ? AND client_id = 'my-app'`, fooID).Scan(&n)
	if n != 1 || d2.RefreshToken == d.RefreshToken {
		t.Fatalf("%d refresh tokens for (foo, my-app)", n)
	}
	wantError(t, c.do("POST", "/0.1/token", `{"refresh_token": "`+d.RefreshToken+`", "client_id": "my-app"}`, ""), http.StatusUnauthorized, "")
	c.create("", `{"refresh_token": "`+d2.RefreshToken+`", "client_id": "my-app"}`)
	// A password change ends every token and refresh token of the user.
	if err := authModule(t, srv).ChangePassword(t.Context(), fooID, "new-bar-password", ""); err != nil {
		t.Fatal(err)
	}
	wantError(t, c.do("POST", "/0.1/token", `{"refresh_token": "`+d2.RefreshToken+`", "client_id": "my-app"}`, ""), http.StatusUnauthorized, "")
	if r := c.do("HEAD", "/0.1/token/"+tr.Data.Token, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("token after password change: %d", r.Status)
	}
}

// B.10 #36: more live tokens than the cap → 429, and the refused login leaves no token.
func TestSessionCap(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing, coretest.WithModuleConfig("tokenapi", `{"max_user_sessions": 2}`))
	c := newClient(t, srv)
	fooID := addFoo(t, srv, core.RankUser)
	first := c.create(fooBasic, `{}`)
	c.create(fooBasic, `{}`)
	authID := tokenapi.UserUUID(uuid.MustParse(first.XivoUUID), fooID).String()
	wantError(t, c.do("POST", "/0.1/token", `{}`, fooBasic), http.StatusTooManyRequests,
		"User "+authID+" has exceeded the maximum number of active sessions")
	var n int64
	srv.DB().Read.Raw(`SELECT count(*) FROM tokens WHERE user_id = ?`, fooID).Scan(&n)
	if n != 2 {
		t.Fatalf("%d tokens stored, want 2", n)
	}
	// Another user is not affected; freeing a session makes room.
	c.create("admin:"+coretest.AdminPassword, `{}`)
	c.do("DELETE", "/0.1/token/"+first.Token, "", "")
	c.create(fooBasic, `{}`)
}

// Failed logins are throttled with the auth module's throttle (contract §4), answered 429.
func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	for i := range 5 {
		wantError(t, c.do("POST", "/0.1/token", `{}`, "foo:wrong-"+fmt.Sprint(i)), http.StatusUnauthorized, "")
	}
	r := c.do("POST", "/0.1/token", `{}`, fooBasic) // even the right password now
	wantError(t, r, http.StatusTooManyRequests, "retry")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// B.10 #14 and contract §7: no token, refresh token or password reaches a log line, even at
// debug level; the access log shows redacted paths.
func TestLogsNeverCarryTokens(t *testing.T) {
	t.Parallel()
	logs := &coretest.LogBuffer{}
	srv := coretest.Start(t, cheapHashing, coretest.WithLog(logs, zerolog.DebugLevel))
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	c.do("POST", "/0.1/token", `{}`, "foo:wrong-secret-password")
	d := c.create(fooBasic, `{"access_type": "offline", "client_id": "app"}`)
	refreshed := c.create("", `{"refresh_token": "`+d.RefreshToken+`", "client_id": "app"}`)
	for _, p := range []string{"/0.1/token/" + d.Token, "/0.1/token/" + d.Token + "?scope=confd"} {
		c.do("HEAD", p, "", "")
		c.do("GET", p, "", "")
	}
	c.do("POST", "/0.1/token/"+d.Token+"/scopes/check", `{"scopes": ["a"]}`, "")
	// The header and body forms, and a refused query-string token.
	for _, h := range [][]string{{tokenapi.AuthTokenHeader, d.Token}, {"Authorization", "Bearer " + d.Token}} {
		c.do("HEAD", "/0.1/token?scope=confd", "", "", h...)
		c.do("GET", "/0.1/token", "", "", h...)
		c.do("POST", "/0.1/token/scopes/check", `{"scopes": ["a"]}`, "", h...)
	}
	c.do("POST", "/0.1/token/scopes/check", `{"token": "`+d.Token+`", "scopes": ["a"]}`, "")
	c.do("GET", "/0.1/token?token="+refreshed.Token, "", "")
	c.do("DELETE", "/0.1/token/"+uuid.NewString(), "", "", tokenapi.AuthTokenHeader, d.Token) // two tokens: 400
	c.do("DELETE", "/0.1/token", "", "", tokenapi.AuthTokenHeader, d.Token)
	c.do("DELETE", "/0.1/token/"+d.Token, "", "")
	c.do("GET", "/0.1/token/"+d.Token, "", "")
	out := logs.String()
	for _, secret := range []string{d.Token, d.RefreshToken, refreshed.Token, "wrong-secret-password", "bar-password",
		base64.StdEncoding.EncodeToString([]byte(fooBasic))} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
	if !regexp.MustCompile(`"path":"/0.1/token/\*\*\*/scopes/check"`).MatchString(out) {
		t.Errorf("no redacted access-log line for scopes/check in:\n%s", out)
	}
	for _, line := range []string{`"method":"GET","path":"/0.1/token","status":400`, `"method":"DELETE","path":"/0.1/token","status":200`,
		`"path":"/0.1/token/scopes/check","status":200`} {
		if !strings.Contains(out, line) {
			t.Errorf("no access-log line with %s in:\n%s", line, out)
		}
	}
	if !strings.Contains(out, d.SessionUUID) {
		t.Error("the token's public id is not logged at creation")
	}
}

func TestRedactPath(t *testing.T) {
	tok := uuid.NewString()
	for in, want := range map[string]string{
		"/0.1/token/" + tok:                    "/0.1/token/***",
		"/0.1/token/" + tok + "/scopes/check":  "/0.1/token/***/scopes/check",
		"/0.1/token/garbage":                   "/0.1/token/***",
		"/0.1/token":                           "/0.1/token",
		"/0.1/token/":                          "/0.1/token/",
		"/0.1/token/scopes/check":              "/0.1/token/scopes/check",
		"/0.1/token/scopes/check/" + tok:       "/0.1/token/***/check/***",
		"/0.1/backends":                        "/0.1/backends",
		"/x/" + strings.Repeat("ab", 32) + "/": "/x/***/",
	} {
		if got := tokenapi.RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
