package portal_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/all"
	"gatehouse/modules/auth"
	"gatehouse/modules/portal"
)

var cheapHashing = coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

// newClient returns a client of srv (nil: set base yourself).
func newClient(t *testing.T, srv *coretest.Server) *client {
	base := ""
	if srv != nil {
		base = srv.HTTPURL
	}
	return &client{t: t, base: base, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // the test server's own self-signed certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// answer is the portal's JSON body.
type answer struct {
	Result any    `json:"result"`
	Error  *int   `json:"error"`
	ID     string `json:"id"`
	Status *int   `json:"status"`
}

func (r response) answer(t *testing.T) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("%d: body %q is not JSON: %v", r.Status, r.Body, err)
	}
	return a
}

// do sends a request; header is pairs of name, value.
func (c *client) do(method, path, contentType, body string, header ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

const form = "application/x-www-form-urlencoded"

func creds(user, pw string) string { return url.Values{"user": {user}, "password": {pw}}.Encode() }

// login posts a form login with Accept: application/json.
func (c *client) login(user, pw string, header ...string) response {
	c.t.Helper()
	return c.do("POST", "/", form, creds(user, pw), append([]string{"Accept", "application/json"}, header...)...)
}

// wantFail checks a failed login: status, error code, WWW-Authenticate.
func wantFail(t *testing.T, c *client, r response, status, code int) {
	t.Helper()
	a := r.answer(t)
	if r.Status != status || a.Error == nil || *a.Error != code || fmt.Sprint(a.Result) != "0" || a.ID != "" {
		t.Fatalf("got %d %s, want %d {result 0, error %d}", r.Status, r.Body, status, code)
	}
	if got, want := r.Header.Get("WWW-Authenticate"), "SSO "+c.base+"/"; got != want {
		t.Fatalf("WWW-Authenticate %q, want %q", got, want)
	}
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Value != "0" { // only an expiry (logout) may come with a failure
			t.Fatalf("a failure set the cookie %s", ck)
		}
	}
}

func addUser(t *testing.T, srv *coretest.Server, u auth.User, pw string) {
	t.Helper()
	m, _ := srv.App().Module(auth.ModuleID)
	am := m.(*auth.Module)
	hash, err := am.Hasher().Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = hash
	if err := am.Users().Create(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
}

func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == "lemonldap" {
			return ck
		}
	}
	t.Fatalf("no lemonldap cookie in %q", r.Header.Values("Set-Cookie"))
	return nil
}

func TestLogin(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addUser(t, srv, auth.User{Username: "rtyler", Rank: core.RankUser, ValidityEnabled: true}, "rtyler-password")

	r := c.login("rtyler", "rtyler-password")
	a := r.answer(t)
	if r.Status != http.StatusOK || fmt.Sprint(a.Result) != "1" || a.Error == nil || *a.Error != portal.PeOK || !hex64.MatchString(a.ID) {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	sc := r.Header.Get("Set-Cookie")
	for _, part := range []string{"lemonldap=" + a.ID, "Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, part) {
			t.Errorf("Set-Cookie %q lacks %q", sc, part)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie %q: Secure over plain HTTP", sc)
	}
	if r.Header.Get("Cache-Control") != "no-cache, no-store, must-revalidate" || r.Header.Get("Pragma") != "no-cache" {
		t.Errorf("cache headers %v", r.Header)
	}
	// The cookie is a session: whoami, ping.
	ck := "lemonldap=" + a.ID
	w := c.do("GET", "/mysession/?whoami", "", "", "Cookie", ck, "Accept", "application/json")
	if w.Status != http.StatusOK || w.answer(t).Result != "rtyler" {
		t.Fatalf("whoami: %d %s", w.Status, w.Body)
	}
	if p := c.do("GET", "/ping", "", "", "Cookie", ck).answer(t); p.Status == nil || *p.Status != 1 {
		t.Fatal("ping with session")
	}
	// Logging in again with the session cookie: success, but no new session.
	again := c.do("POST", "/", form, creds("rtyler", "rtyler-password"), "Accept", "application/json", "Cookie", ck)
	if aa := again.answer(t); again.Status != http.StatusOK || aa.ID != "" || fmt.Sprint(aa.Result) != "1" {
		t.Fatalf("login with a session: %d %s", again.Status, again.Body)
	}
	// JSON bodies work too (an extension) and give a fresh session.
	j := c.do("POST", "/", "application/json", `{"user": "rtyler", "password": "rtyler-password"}`, "Accept", "application/json")
	if ja := j.answer(t); j.Status != http.StatusOK || !hex64.MatchString(ja.ID) || ja.ID == a.ID {
		t.Fatalf("JSON login: %d %s", j.Status, j.Body)
	}
	// text/json is a JSON Accept as well; multipart forms are forms.
	if r := c.login("rtyler", "rtyler-password", "Accept", "text/json"); r.Status != http.StatusOK {
		t.Fatalf("text/json: %d", r.Status)
	}
	mp := "--XX\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nrtyler\r\n--XX\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nrtyler-password\r\n--XX--\r\n"
	if r := c.do("POST", "/", "multipart/form-data; boundary=XX", mp, "Accept", "application/json"); r.Status != http.StatusOK {
		t.Fatalf("multipart: %d %s", r.Status, r.Body)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing, coretest.WithModuleConfig("portal", `{"allowed_origins": ["https://intranet.example.com"]}`))
	c := newClient(t, srv)
	addUser(t, srv, auth.User{Username: "alice", ValidityEnabled: true}, "alice-password")
	addUser(t, srv, auth.User{Username: "gone", ValidityEnabled: false}, "gone-password")

	wantFail(t, c, c.login("alice", "wrong-password"), 401, portal.PeBadCredentials)
	wantFail(t, c, c.login("nobody", "wrong-password"), 401, portal.PeBadCredentials) // no enumeration
	wantFail(t, c, c.login("", "x"), 401, portal.PeFormEmpty)
	wantFail(t, c, c.login("alice", ""), 401, portal.PeFormEmpty)
	wantFail(t, c, c.do("POST", "/", form, "", "Accept", "application/json"), 401, portal.PeFormEmpty)
	wantFail(t, c, c.do("POST", "/", "application/json", `{"user": 5}`, "Accept", "application/json"), 401, portal.PeFormEmpty)
	wantFail(t, c, c.do("POST", "/", "application/json", `not json`, "Accept", "application/json"), 401, portal.PeFormEmpty)
	wantFail(t, c, c.login("alice bob", "x"), 401, portal.PeMalformedUser)
	wantFail(t, c, c.login("a/b", "x"), 401, portal.PeMalformedUser)
	wantFail(t, c, c.login(strings.Repeat("a", 300), "x"), 401, portal.PeMalformedUser)
	wantFail(t, c, c.login("gone", "gone-password"), 401, portal.PeSessionNotGranted)
	// A form token this portal never issued.
	wantFail(t, c, c.do("POST", "/", form, creds("alice", "alice-password")+"&token=1234", "Accept", "application/json"), 401, portal.PeTokenExpired)
	// Credentials in the query string are not read.
	wantFail(t, c, c.do("POST", "/?user=alice&password=alice-password", form, "", "Accept", "application/json"), 401, portal.PeFormEmpty)
	// Over the body limit.
	wantFail(t, c, c.do("POST", "/", form, creds("alice", strings.Repeat("p", 70<<10)), "Accept", "application/json"), 401, portal.PeFormEmpty)

	// Cross-site logins are refused before the password is looked at; same-origin and allowed
	// origins are fine.
	for _, origin := range []string{"https://evil.example", "null", c.base + ".evil.example", "http://" + strings.TrimPrefix(c.base, "http://") + "/x",
		"https://" + strings.TrimPrefix(c.base, "http://")} {
		wantFail(t, c, c.login("alice", "alice-password", "Origin", origin), 401, portal.PeNoToken)
	}
	wantFail(t, c, c.login("alice", "alice-password", "Sec-Fetch-Site", "cross-site"), 401, portal.PeNoToken)
	for _, h := range [][]string{{"Origin", c.base}, {"Origin", "https://intranet.example.com"}, {"Sec-Fetch-Site", "same-origin"}} {
		if r := c.login("alice", "alice-password", h...); r.Status != http.StatusOK {
			t.Fatalf("login with %v: %d %s", h, r.Status, r.Body)
		}
	}
}

func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addUser(t, srv, auth.User{Username: "alice", ValidityEnabled: true}, "alice-password")
	for range 5 {
		wantFail(t, c, c.login("alice", "wrong-password"), 401, portal.PeBadCredentials)
	}
	r := c.login("alice", "alice-password")
	if a := r.answer(t); r.Status != http.StatusTooManyRequests || a.Error == nil || *a.Error != portal.PeWait || r.Header.Get("Retry-After") == "" {
		t.Fatalf("throttled: %d %s %v", r.Status, r.Body, r.Header)
	}
}

func TestSessionEndpoints(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	addUser(t, srv, auth.User{Username: "alice", ValidityEnabled: true}, "alice-password")
	jsonAccept := []string{"Accept", "application/json"}

	// Without a session.
	for _, ck := range []string{"", "lemonldap=", "lemonldap=0", "lemonldap=" + strings.Repeat("a", 64), "lemonldap=zz"} {
		h := append([]string{"Cookie", ck}, jsonAccept...)
		wantFail(t, c, c.do("GET", "/mysession/?whoami", "", "", h...), 401, portal.PeFirstAccess)
		wantFail(t, c, c.do("GET", "/", "", "", h...), 401, portal.PeFirstAccess)
		if p := c.do("GET", "/ping", "", "", h...); p.Status != 200 || *p.answer(t).Status != 0 {
			t.Fatalf("ping without session: %d %s", p.Status, p.Body)
		}
		if r := c.do("DELETE", "/session/my", "", "", h...); r.Status != 401 || fmt.Sprint(r.answer(t).Result) != "0" {
			t.Fatalf("DELETE /session/my without session: %d %s", r.Status, r.Body)
		}
		wantFail(t, c, c.do("GET", "/?logout=1", "", "", h...), 401, portal.PeLogoutOK)
	}

	newSession := func() string {
		r := c.login("alice", "alice-password")
		return "lemonldap=" + r.answer(t).ID
	}
	ck := newSession()
	if r := c.do("GET", "/", "", "", "Cookie", ck, "Accept", "application/json"); r.Status != 200 || r.answer(t).ID != "" {
		t.Fatalf("GET / with session: %d %s", r.Status, r.Body)
	}
	if r := c.do("GET", "/mysession/?gettoken", "", "", "Cookie", ck, "Accept", "application/json"); r.Status != 400 {
		t.Fatalf("unsupported mysession query: %d", r.Status)
	}

	// DELETE /session/my logs out; the cookie is expired; the session is gone everywhere.
	r := c.do("DELETE", "/session/my", "", "", "Cookie", ck, "Accept", "application/json")
	if r.Status != 200 || fmt.Sprint(r.answer(t).Result) != "1" {
		t.Fatalf("DELETE /session/my: %d %s", r.Status, r.Body)
	}
	if exp := sessionCookie(t, r); exp.Value != "0" || exp.MaxAge >= 0 && exp.Expires.After(time.Now()) {
		t.Fatalf("cookie not expired: %+v", exp)
	}
	if p := c.do("GET", "/ping", "", "", "Cookie", ck); *p.answer(t).Status != 0 {
		t.Fatal("session alive after DELETE /session/my")
	}
	// A cross-site DELETE is refused and ends nothing.
	ck = newSession()
	wantFail(t, c, c.do("DELETE", "/session/my", "", "", "Cookie", ck, "Origin", "https://evil.example"), 401, portal.PeNoToken)
	if p := c.do("GET", "/ping", "", "", "Cookie", ck); *p.answer(t).Status != 1 {
		t.Fatal("cross-site DELETE ended the session")
	}

	// GET /?logout=1: JSON 200 {"result":1,"error":47}; a browser is sent to the dashboard.
	r = c.do("GET", "/?logout=1", "", "", "Cookie", ck, "Accept", "application/json")
	if a := r.answer(t); r.Status != 200 || fmt.Sprint(a.Result) != "1" || *a.Error != portal.PeLogoutOK {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if sessionCookie(t, r).Value != "0" {
		t.Fatal("logout did not expire the cookie")
	}
	if p := c.do("GET", "/ping", "", "", "Cookie", ck); *p.answer(t).Status != 0 {
		t.Fatal("session alive after logout")
	}
	ck = newSession()
	r = c.do("GET", "/?logout=1", "", "", "Cookie", ck, "Accept", "text/html")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("browser logout: %d %v", r.Status, r.Header)
	}
	if p := c.do("GET", "/ping", "", "", "Cookie", ck); *p.answer(t).Status != 0 {
		t.Fatal("session alive after browser logout")
	}
}

// TestLogoutNeedsSameOrigin: GET /?logout=1 is what a cross-site link, image or redirect makes
// a browser send with the Lax cookie. Without same-origin evidence from the browser it ends
// nothing (JSON: 401 error 81; a page: back to the dashboard, cookie untouched); with it
// (Sec-Fetch-Site same-origin or none, an Origin or Referer of this server or of
// allowed_origins), or from a client that is not a browser, it logs out.
func TestLogoutNeedsSameOrigin(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing, coretest.WithModuleConfig("portal", `{"allowed_origins": ["https://intranet.example.com"]}`))
	c := newClient(t, srv)
	addUser(t, srv, auth.User{Username: "alice", ValidityEnabled: true}, "alice-password")
	newSession := func() string { return "lemonldap=" + c.login("alice", "alice-password").answer(t).ID }
	alive := func(ck string) bool { return *c.do("GET", "/ping", "", "", "Cookie", ck).answer(t).Status == 1 }

	ck := newSession()
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Referer", srv.HTTPURL + "/"},
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Referer", "https://evil.example/page.html"},
	} {
		r := c.do("GET", "/?logout=1", "", "", append([]string{"Cookie", ck, "Accept", "text/html"}, h...)...)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/" || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("cross-site browser logout %v: %d %v", h, r.Status, r.Header)
		}
		wantFail(t, c, c.do("GET", "/?logout=1", "", "", append([]string{"Cookie", ck, "Accept", "application/json"}, h...)...), 401, portal.PeNoToken)
		if !alive(ck) {
			t.Fatalf("a cross-site GET /?logout=1 (%v) ended the session", h)
		}
	}
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "same-origin"},
		{"Sec-Fetch-Site", "none"}, // typed into the address bar
		{"Origin", srv.HTTPURL},
		{"Referer", srv.HTTPURL + "/#/live"},
		{"Referer", "https://intranet.example.com/apps"},
		{}, // not a browser
	} {
		ck := newSession()
		r := c.do("GET", "/?logout=1", "", "", append([]string{"Cookie", ck, "Accept", "application/json"}, h...)...)
		if a := r.answer(t); r.Status != 200 || fmt.Sprint(a.Result) != "1" || *a.Error != portal.PeLogoutOK {
			t.Errorf("same-origin logout %v: %d %s", h, r.Status, r.Body)
		}
		if alive(ck) {
			t.Errorf("session alive after a same-origin logout %v", h)
		}
	}
}

// GET / without a JSON Accept is the dashboard.
func TestRootServesDashboard(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing)
	c := newClient(t, srv)
	r := c.do("GET", "/", "", "", "Accept", "text/html")
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
		r.Header.Get("Content-Security-Policy") == "" || !strings.Contains(strings.ToLower(string(r.Body)), "<!doctype html") {
		t.Fatalf("GET /: %d %v %.200s", r.Status, r.Header, r.Body)
	}
}

// Under TLS the cookie is Secure and the portal URL is https. (coretest waits for plain HTTP,
// so this test runs its own server with a self-signed certificate.)
func TestTLSCookieIsSecure(t *testing.T) {
	t.Parallel()
	mods := all.DefaultModules()
	for i := range mods {
		if mods[i].Module == auth.ModuleID {
			mods[i].Config = json.RawMessage(`{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Registry: all.Registry(), Log: zerolog.Nop(), Listener: ln,
		Config: core.Config{Data: t.TempDir(), Listen: ln.Addr().String(), AdminPassword: coretest.AdminPassword,
			Modules: mods, TLSSelfSigned: true}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	c := &client{t: t, base: srv.URL(), hc: newClient(t, nil).hc}
	if !strings.HasPrefix(c.base, "https://") {
		t.Fatalf("server URL %s is not https", c.base)
	}
	coretest.Eventually(t, 10*time.Second, func() error {
		resp, err := c.hc.Get(c.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	m, _ := srv.App().Module(auth.ModuleID)
	am := m.(*auth.Module)
	hash, _ := am.Hasher().Hash(ctx, "alice-password")
	if err := am.Users().Create(ctx, &auth.User{Username: "alice", PasswordHash: hash, ValidityEnabled: true}); err != nil {
		t.Fatal(err)
	}
	r := c.login("alice", "alice-password", "Origin", c.base)
	if r.Status != 200 || !sessionCookie(t, r).Secure {
		t.Fatalf("TLS login: %d %v", r.Status, r.Header.Values("Set-Cookie"))
	}
	wantFail(t, c, c.login("alice", "wrong-password"), 401, portal.PeBadCredentials)
	// The same host over plain http is another origin.
	wantFail(t, c, c.login("alice", "alice-password", "Origin", "http://"+strings.TrimPrefix(c.base, "https://")), 401, portal.PeNoToken)
}
