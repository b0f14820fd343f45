package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
	"gatehouse/modules/wsapi/wstest"
)

// cheapHashes makes password checks cheap: the tests count them, they do not time them.
var cheapHashes = coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 256, "iterations": 1}}`)

// failedCounter counts the auth.failed events by reason. It works on any version of the
// server: a "bad_credentials" failure of a password login is one password check.
type failedCounter struct {
	mu      sync.Mutex
	reasons map[string]int
}

func countFailed(t *testing.T, srv *coretest.Server) (*failedCounter, func()) {
	t.Helper()
	sub, err := srv.App().Bus().Subscribe(core.SubscribeOptions{Name: "test-failed", Queue: 100_000}, "auth.failed")
	if err != nil {
		t.Fatal(err)
	}
	fc := &failedCounter{reasons: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-sub.C():
				if f, ok := ev.Data.(auth.FailedEvent); ok && ev.Source == auth.ModuleID {
					fc.mu.Lock()
					fc.reasons[f.Reason]++
					fc.mu.Unlock()
				}
			case <-sub.Done():
				return
			}
		}
	}()
	return fc, func() { sub.Close(); <-done }
}

func (fc *failedCounter) get(reason string) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.reasons[reason]
}

// httpFrom returns an HTTP client whose connections come from the local address ip (any of
// 127.0.0.0/8 reaches the test server on the loopback interface).
func httpFrom(ip string, jar http.CookieJar) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout:       30 * time.Second,
		Jar:           jar,
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// wsReply is a Leosac reply as read by wsCall.
type wsReply struct {
	StatusCode int             `json:"status_code"`
	Content    json.RawMessage `json:"content"`
}

// wsDialFrom opens a Leosac websocket from the local address ip.
func wsDialFrom(t *testing.T, srv *coretest.Server, ip string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPClient: httpFrom(ip, nil)})
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// wsCall sends one request on c and reads its reply (the connection carries nothing else).
func wsCall(c *websocket.Conn, typ string, content any) (wsReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uuid.NewString()
	b, _ := json.Marshal(map[string]any{"uuid": id, "type": typ, "content": content})
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		return wsReply{}, err
	}
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return wsReply{}, err
		}
		var r struct {
			UUID string `json:"uuid"`
			wsReply
		}
		if err := json.Unmarshal(msg, &r); err != nil {
			return wsReply{}, err
		}
		if r.UUID == id {
			return r.wsReply, nil
		}
	}
}

// dialectAttempt is one wrong-password login through one dialect: it returns "bad" (invalid
// credentials), "limited" (429 / RATE_LIMITED) or an error.
type dialectAttempt func(user string) (string, error)

func dialectAttempts(t *testing.T, srv *coretest.Server, ip string, wsConns []*websocket.Conn) map[string]func(i int, user string) (string, error) {
	hc := httpFrom(ip, nil)
	post := func(req *http.Request) (int, error) {
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	classify := func(status int, err error) (string, error) {
		switch {
		case err != nil:
			return "", err
		case status == http.StatusTooManyRequests:
			return "limited", nil
		case status == http.StatusUnauthorized:
			return "bad", nil
		}
		return "", fmt.Errorf("status %d", status)
	}
	basic := func(user string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":wrong-password"))
	}
	return map[string]func(int, string) (string, error){
		"leosac": func(i int, user string) (string, error) {
			r, err := wsCall(wsConns[i%len(wsConns)], "create_auth_token", map[string]string{"username": user, "password": "wrong-password"})
			switch {
			case err != nil:
				return "", err
			case r.StatusCode == codeRateLimited:
				return "limited", nil
			case r.StatusCode == codeOK && strings.Contains(string(r.Content), `"status":-1`):
				return "bad", nil
			}
			return "", fmt.Errorf("leosac reply %d %s", r.StatusCode, r.Content)
		},
		"rest": func(_ int, user string) (string, error) {
			req, _ := http.NewRequest(http.MethodPost, srv.HTTPURL+"/0.1/token", strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", basic(user))
			return classify(post(req))
		},
		"portal": func(_ int, user string) (string, error) {
			req, _ := http.NewRequest(http.MethodPost, srv.HTTPURL+"/", strings.NewReader(url.Values{"user": {user}, "password": {"wrong-password"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			return classify(post(req))
		},
		"sysadm": func(_ int, user string) (string, error) {
			req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL+"/gatehouse/whoami", nil)
			req.Header.Set("Authorization", basic(user))
			return classify(post(req))
		},
	}
}

// burst sends 200 wrong-password logins at once from ip, 50 through each dialect, and returns
// how many were answered "invalid credentials" and how many were refused as rate limited.
func burst(t *testing.T, srv *coretest.Server, ip string, user func(i int) string) (bad, limited int) {
	t.Helper()
	var conns []*websocket.Conn
	for range 10 {
		conns = append(conns, wsDialFrom(t, srv, ip))
	}
	var mu sync.Mutex
	var connMu [10]sync.Mutex
	attempts := dialectAttempts(t, srv, ip, conns)
	start := make(chan struct{})
	var wg sync.WaitGroup
	i := 0
	for _, name := range []string{"leosac", "rest", "portal", "sysadm"} {
		for range 50 {
			n := i
			i++
			wg.Go(func() {
				<-start
				if name == "leosac" { // one call at a time per connection
					connMu[n%10].Lock()
					defer connMu[n%10].Unlock()
				}
				got, err := attempts[name](n, user(n))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("%s attempt %d: %v", name, n, err)
				case got == "bad":
					bad++
				default:
					limited++
				}
			})
		}
	}
	close(start)
	wg.Wait()
	return bad, limited
}

// TestBurstFromOneAddressChecksAtMostTheLimit is issue 10 point 1: 200 wrong-password logins
// arriving at once from one address, through every dialect, check the password at most the
// configured number of times; the rest are refused without hashing. Another address's login
// meanwhile is admitted and succeeds.
func TestBurstFromOneAddressChecksAtMostTheLimit(t *testing.T) {
	t.Parallel()
	// Production hash parameters: the attempts of a burst overlap as they do in production.
	srv := coretest.Start(t)
	m := authModule(t, srv)
	fc, stop := countFailed(t, srv)
	defer stop()

	checks0 := m.PasswordChecks()
	other := make(chan error, 1)
	go func() {
		start := time.Now()
		res, err := m.Login(context.Background(), auth.LoginRequest{Username: "admin", Password: coretest.AdminPassword,
			Remote: "192.0.2.77:5000", Dialect: "rest", Lifetime: time.Minute})
		if err == nil && res.Outcome != auth.Granted {
			err = fmt.Errorf("outcome %v", res.Outcome)
		}
		t.Logf("another address's login during the burst answered in %v", time.Since(start).Round(time.Millisecond))
		other <- err
	}()
	bad, limited := burst(t, srv, "127.0.0.1", func(int) string { return "admin" })
	checks := m.PasswordChecks() - checks0 - 1 // minus the other address's login
	t.Logf("one username, 200 parallel attempts from one address: %d password checks, %d answered invalid, %d refused 429/RATE_LIMITED", checks, bad, limited)
	if err := <-other; err != nil {
		t.Errorf("another address's login during the burst: %v", err)
	}
	if bad+limited != 200 || bad > 5 || bad < 1 {
		t.Errorf("%d invalid + %d refused; want at most 5 (user_addr_limit) invalid, the rest refused", bad, limited)
	}
	if checks != int64(bad) {
		t.Errorf("%d password checks, %d invalid answers: they must agree", checks, bad)
	}
	coretest.Eventually(t, time.Minute, func() error { // the bus delivers asynchronously
		if n := fc.get("bad_credentials"); n != bad {
			return fmt.Errorf("%d bad_credentials events, want %d", n, bad)
		}
		return nil
	})

	// Many usernames from one address: the address limit (20) bounds the checks.
	srv2 := coretest.Start(t)
	m2 := authModule(t, srv2)
	checks0 = m2.PasswordChecks()
	bad, limited = burst(t, srv2, "127.0.0.1", func(i int) string { return fmt.Sprintf("nobody%d", i) })
	checks = m2.PasswordChecks() - checks0
	t.Logf("200 usernames, 200 parallel attempts from one address: %d password checks, %d refused", checks, limited)
	if bad+limited != 200 || bad > 20 || checks != int64(bad) {
		t.Errorf("%d invalid + %d refused, %d checks; want at most 20 (addr_limit) checked, the rest refused", bad, limited, checks)
	}
}

// loginAs logs in at the auth module from remote, as a dialect would.
func loginAs(m *auth.Module, user, pw, remote, device string) (auth.LoginResult, time.Duration, error) {
	start := time.Now()
	res, err := m.Login(context.Background(), auth.LoginRequest{Username: user, Password: pw, Remote: remote,
		Dialect: "leosac", Lifetime: time.Hour, DeviceToken: device})
	return res, time.Since(start), err
}

// attack sends wrong passwords for user from 50 addresses (rounds attempts each, all at once),
// then more rounds if needed until the username's limit of 50 failures is reached (an attempt
// may give up waiting on a loaded machine), and returns how many were checked.
func attack(m *auth.Module, user string, rounds int) int64 {
	before := m.PasswordChecks()
	send := func(from, to int) {
		var wg sync.WaitGroup
		for a := range 50 {
			for r := from; r < to; r++ {
				wg.Go(func() {
					_, _, _ = loginAs(m, user, fmt.Sprint("guess-", a, "-", r), fmt.Sprintf("203.0.113.%d:%d", a+1, 40000+r), "")
				})
			}
		}
		wg.Wait()
	}
	send(0, rounds)
	for r := rounds; m.PasswordChecks()-before < 50 && r < rounds+20; r++ {
		send(r, r+1)
	}
	return m.PasswordChecks() - before
}

func wantRateLimited(t *testing.T, what string, err error) {
	t.Helper()
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.RateLimited {
		t.Fatalf("%s: %v, want RATE_LIMITED", what, err)
	}
	if c, _ := ce.Content.(map[string]int); c["retry_after"] < 1 {
		t.Errorf("%s: retry_after %v, want ≥ 1", what, ce.Content)
	}
}

func wantGranted(t *testing.T, what string, res auth.LoginResult, err error) {
	t.Helper()
	if err != nil || res.Outcome != auth.Granted || res.Token == "" || res.DeviceToken == "" {
		t.Fatalf("%s: outcome %v err %v, want granted with a token and a device token", what, res.Outcome, err)
	}
}

// TestAttackFrom50AddressesNeverLocksOutTheUser is issue 10 point 2: after failures on a
// username from 50 addresses, the real user is answered at once: from a new address without a
// device token, a refusal with retry_after; with the device token of an earlier login, or from
// the address they logged in from before, a success. Trust and device-token failures survive a
// restart on the same data directory.
func TestAttackFrom50AddressesNeverLocksOutTheUser(t *testing.T) {
	t.Parallel()
	// Locks last an hour, so that the phone's lock taken before the restart still holds after
	// it however slowly a loaded machine gets there (the default 30 s may pass meanwhile).
	srv := coretest.Start(t, coretest.WithModuleConfig("auth",
		`{"password_hash": {"memory_kib": 256, "iterations": 1}, "throttle": {"base_delay": "1h", "max_delay": "1h"}}`))
	m := authModule(t, srv)
	addUser(t, srv, "alice", "alice-password", core.RankUser)
	sub, err := srv.App().Bus().Subscribe(core.SubscribeOptions{Name: "test-logins", Queue: 100_000}, "auth.login", "auth.failed")
	if err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		for {
			select {
			case ev := <-sub.C():
				if ev.Source == auth.ModuleID {
					published.Add(1)
				}
			case <-sub.Done():
				return
			}
		}
	}()
	defer func() { sub.Close(); <-counted }()

	// Alice's earlier logins: from home (a trusted pair from now on), and from a laptop whose
	// device token she keeps; a second device token for the failure-budget check.
	res, _, err := loginAs(m, "alice", "alice-password", "198.51.100.7:1000", "")
	wantGranted(t, "login from home", res, err)
	res, _, err = loginAs(m, "alice", "alice-password", "198.51.100.8:1000", "")
	wantGranted(t, "login from the laptop", res, err)
	laptop := res.DeviceToken
	res, _, err = loginAs(m, "alice", "alice-password", "198.51.100.9:1000", "")
	wantGranted(t, "login from a phone", res, err)
	phone := res.DeviceToken

	checks := attack(m, "alice", 4) // 200 wrong passwords from 50 addresses
	t.Logf("attack: 200 wrong passwords from 50 addresses, %d checked", checks)
	if checks > 50 {
		t.Errorf("%d wrong passwords checked, want at most the username limit (50)", checks)
	}

	// While the attack goes on.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var storm atomic.Int64
	for a := range 50 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, _, _ = loginAs(m, "alice", "guess", fmt.Sprintf("203.0.113.%d:%d", a+1, i%60000), "")
				storm.Add(1)
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	_, took, err := loginAs(m, "alice", "alice-password", "192.0.2.200:1000", "")
	t.Logf("real user, new address, no device token: answered in %v (%v)", took.Round(time.Millisecond), err)
	wantRateLimited(t, "new address without a device token", err)
	if took > 5*time.Second { // the issue demands 1 s; generous under CPU contention
		t.Errorf("refusal took %v", took)
	}
	_, _, err = loginAs(m, "alice", "alice-password", "192.0.2.201:1000", laptop[:len(laptop)-2]+"xx")
	wantRateLimited(t, "tampered device token (untrusted)", err)
	if res, _, err := loginAs(m, "bob", "x", "192.0.2.201:1000", laptop); err != nil || res.Outcome != auth.BadCredentials {
		t.Errorf("another username with alice's device token: %v %v, want bad credentials", res.Outcome, err)
	}

	res, took, err = loginAs(m, "alice", "alice-password", "192.0.2.202:1000", laptop)
	t.Logf("real user, new address, device token: answered in %v", took.Round(time.Millisecond))
	wantGranted(t, "new address with the device token", res, err)
	if took > 5*time.Second {
		t.Errorf("login with the device token took %v", took)
	}
	res, took, err = loginAs(m, "alice", "alice-password", "198.51.100.7:2000", "")
	t.Logf("real user, trusted address: answered in %v", took.Round(time.Millisecond))
	wantGranted(t, "trusted address", res, err)

	// The phone's token gets its own small budget (5): then it is locked.
	for i := range 5 {
		if _, _, err := loginAs(m, "alice", "wrong", fmt.Sprintf("192.0.2.%d:1", 210+i), phone); err != nil {
			t.Fatalf("phone attempt %d: %v", i, err)
		}
	}
	_, _, err = loginAs(m, "alice", "alice-password", "192.0.2.220:1", phone)
	wantRateLimited(t, "device token over its budget", err)
	cancel()
	wg.Wait()
	t.Logf("%d attack attempts during the checks", storm.Load())

	// Restart on the same data directory, attack again: trust and device state are kept.
	// Let the audit trail catch up with the attack first: stopping would otherwise have to
	// write it, which under heavy CPU load may take longer than the stop's bound.
	coretest.Eventually(t, 2*time.Minute, func() error {
		var n int64
		if err := srv.DB().Read.Raw(`SELECT COUNT(*) FROM events WHERE kind = 'audit-login-event'`).Scan(&n).Error; err != nil {
			return err
		}
		if want := int64(published.Load()); n != want {
			return fmt.Errorf("%d login events recorded, %d published", n, want)
		}
		return nil
	})
	srv = srv.Restart()
	m = authModule(t, srv)
	attack(m, "alice", 2)
	_, _, err = loginAs(m, "alice", "alice-password", "192.0.2.230:1000", "")
	wantRateLimited(t, "after restart, new address without a device token", err)
	res, _, err = loginAs(m, "alice", "alice-password", "198.51.100.7:3000", "")
	wantGranted(t, "after restart, trusted address", res, err)
	res, _, err = loginAs(m, "alice", "alice-password", "192.0.2.231:1000", laptop)
	wantGranted(t, "after restart, device token", res, err)
	_, _, err = loginAs(m, "alice", "alice-password", "192.0.2.232:1", phone)
	wantRateLimited(t, "after restart, device token over its budget", err)
}

// TestDeviceTokenThroughDashboardAndPortal: the Leosac create_auth_token reply carries a device
// token that a later create_auth_token may present; the portal sets it as an HttpOnly cookie.
// Both let the user in from a new address while the username is under attack.
func TestDeviceTokenThroughDashboardAndPortal(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashes)
	m := authModule(t, srv)
	addUser(t, srv, "carol", "carol-password", core.RankUser)

	// Leosac websocket: first login from 127.0.0.2 gets a device token.
	r, err := wsCall(wsDialFrom(t, srv, "127.0.0.2"), "create_auth_token", map[string]string{"username": "carol", "password": "carol-password"})
	var reply struct {
		Status      int    `json:"status"`
		DeviceToken string `json:"device_token"`
	}
	if err != nil || r.StatusCode != codeOK || json.Unmarshal(r.Content, &reply) != nil || reply.Status != 0 || reply.DeviceToken == "" {
		t.Fatalf("first login: %v %d %s", err, r.StatusCode, r.Content)
	}
	// Portal: first login from 127.0.0.4 sets the device cookie.
	jar, _ := cookiejar.New(nil)
	portalLogin := func(ip string, jar http.CookieJar) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.HTTPURL+"/", strings.NewReader(url.Values{"user": {"carol"}, "password": {"carol-password"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := httpFrom(ip, jar).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := portalLogin("127.0.0.4", jar)
	var device *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == auth.DeviceCookieName("carol") {
			device = c
		}
	}
	if resp.StatusCode != http.StatusOK || device == nil || !device.HttpOnly || device.MaxAge <= 0 {
		t.Fatalf("portal login: %d, device cookie %+v", resp.StatusCode, device)
	}
	// The session cookie would make the next POST a no-op "already logged in": keep only the
	// device cookie.
	u, _ := url.Parse(srv.HTTPURL)
	deviceJar, _ := cookiejar.New(nil)
	deviceJar.SetCookies(u, []*http.Cookie{{Name: device.Name, Value: device.Value, Path: "/"}})

	attack(m, "carol", 2)

	// A new address without a device token: refused at once with retry_after / Retry-After.
	r, err = wsCall(wsDialFrom(t, srv, "127.0.0.3"), "create_auth_token", map[string]string{"username": "carol", "password": "carol-password"})
	if err != nil || r.StatusCode != codeRateLimited || !strings.Contains(string(r.Content), `"retry_after"`) {
		t.Errorf("leosac login without device token under attack: %v %d %s", err, r.StatusCode, r.Content)
	}
	if resp := portalLogin("127.0.0.5", nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("portal login without device cookie under attack: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// With it: logged in.
	r, err = wsCall(wsDialFrom(t, srv, "127.0.0.3"), "create_auth_token",
		map[string]string{"username": "carol", "password": "carol-password", "device_token": reply.DeviceToken})
	if err != nil || r.StatusCode != codeOK || !strings.Contains(string(r.Content), `"status":0`) {
		t.Errorf("leosac login with the device token under attack: %v %d %s", err, r.StatusCode, r.Content)
	}
	if resp := portalLogin("127.0.0.5", deviceJar); resp.StatusCode != http.StatusOK {
		t.Errorf("portal login with the device cookie under attack: %d", resp.StatusCode)
	}
}

// TestPasswordChangeWinsAgainstRacingLogins is issue 10 point 3: logins with the old password
// racing a password change (hundreds of interleavings) never leave a valid token behind.
func TestPasswordChangeWinsAgainstRacingLogins(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashes, coretest.WithModuleConfig("auth",
		`{"password_hash": {"memory_kib": 256, "iterations": 1}, "throttle": {"user_addr_limit": 100000, "addr_limit": 100000, "user_limit": 100000}}`))
	m := authModule(t, srv)
	fc, stop := countFailed(t, srv)
	defer stop()
	id := addUser(t, srv, "dave", "password-0", core.RankUser)
	ctx := context.Background()
	var granted, refused int
	const rounds, logins = 40, 12
	for round := range rounds {
		old := fmt.Sprint("password-", round)
		var mu sync.Mutex
		var tokens []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range logins {
			wg.Go(func() {
				<-start
				res, err := m.Login(ctx, auth.LoginRequest{Username: "dave", Password: old,
					Remote: fmt.Sprintf("10.%d.%d.1:1", round, g), Dialect: "rest", Lifetime: time.Hour})
				if err != nil {
					t.Errorf("login: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if res.Outcome == auth.Granted {
					granted++
					tokens = append(tokens, res.Token)
				} else {
					refused++
				}
			})
		}
		close(start)
		// Let a few logins get ahead, so the change lands in the middle of them.
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := m.ChangePassword(ctx, id, fmt.Sprint("password-", round+1), ""); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for _, raw := range tokens {
			if _, err := m.Tokens().Peek(ctx, token.Hash(raw)); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("round %d: a token issued with the old password is still valid after the change (%v)", round, err)
			}
		}
	}
	t.Logf("%d logins with the old password racing %d password changes: %d granted (then revoked), %d refused (%d of them verified the old password and were refused at issue)",
		rounds*logins, rounds, granted, refused, fc.get("credentials_changed"))
	if granted+refused != rounds*logins {
		t.Errorf("%d answers, want %d", granted+refused, rounds*logins)
	}
}

// TestFailedLoginsAreLogged is issue 10 point 15 (part): a failed login is logged at warn with
// the address, the dialect and the reason, and the username only when the account exists; the
// password never.
func TestFailedLoginsAreLogged(t *testing.T) {
	t.Parallel()
	var logs coretest.LogBuffer
	srv := coretest.Start(t, cheapHashes, coretest.WithLog(&logs, zerolog.InfoLevel))
	m := authModule(t, srv)
	_, _, _ = loginAs(m, "admin", "Wrong-Password-1", "192.0.2.44:1234", "")
	_, _, _ = loginAs(m, "Typed-Secret-In-Username", "Wrong-Password-2", "192.0.2.45:1234", "")
	var lines []map[string]any
	coretest.Eventually(t, 5*time.Second, func() error {
		lines = nil
		for _, l := range strings.Split(logs.String(), "\n") {
			var v map[string]any
			if json.Unmarshal([]byte(l), &v) == nil && v["message"] == "login failed" {
				lines = append(lines, v)
			}
		}
		if len(lines) != 2 {
			return fmt.Errorf("%d login failed lines", len(lines))
		}
		return nil
	})
	want := []map[string]any{
		{"level": "warn", "remote_ip": "192.0.2.44", "dialect": "leosac", "reason": "bad_credentials", "username": "admin"},
		{"level": "warn", "remote_ip": "192.0.2.45", "dialect": "leosac", "reason": "bad_credentials"},
	}
	for i, l := range lines {
		for k, v := range want[i] {
			if l[k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, l[k], v, l)
			}
		}
		if _, ok := l["username"]; i == 1 && ok {
			t.Errorf("unknown username logged: %v", l)
		}
	}
	for _, secret := range []string{"Wrong-Password-1", "Wrong-Password-2", "Typed-Secret-In-Username", "typed-secret-in-username"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("%q is in the log", secret)
		}
	}
}

// TestDisableAndDeleteWinAgainstRacingLogins: disabling a user (user.update) or deleting it
// (user.delete) while logins with its password run leaves no valid token behind either.
func TestDisableAndDeleteWinAgainstRacingLogins(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("auth",
		`{"password_hash": {"memory_kib": 256, "iterations": 1}, "throttle": {"user_addr_limit": 100000, "addr_limit": 100000, "user_limit": 100000}}`))
	m := authModule(t, srv)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	ctx := context.Background()
	granted := 0
	for round := range 20 {
		name := fmt.Sprint("erin", round)
		id := addUser(t, srv, name, "erin-password", core.RankUser)
		var mu sync.Mutex
		var tokens []string
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 10 {
			wg.Go(func() {
				<-start
				res, err := m.Login(ctx, auth.LoginRequest{Username: name, Password: "erin-password",
					Remote: fmt.Sprintf("10.%d.%d.2:1", round, g), Dialect: "rest", Lifetime: time.Hour})
				if err != nil {
					t.Errorf("login: %v", err)
					return
				}
				if res.Outcome == auth.Granted {
					mu.Lock()
					tokens = append(tokens, res.Token)
					granted++
					mu.Unlock()
				}
			})
		}
		close(start)
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		if round%2 == 0 {
			wantCode(t, admin.Call("user.update", map[string]any{"user_id": id, "attributes": map[string]any{"validity-enabled": false}}), codeOK)
		} else {
			wantCode(t, admin.Call("user.delete", map[string]any{"user_id": id}), codeOK)
		}
		wg.Wait()
		for _, raw := range tokens {
			if _, err := m.Tokens().Peek(ctx, token.Hash(raw)); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("round %d: a token issued to a user racing its disable/delete is still valid (%v)", round, err)
			}
		}
	}
	t.Logf("200 logins racing 10 disables and 10 deletes: %d granted (then revoked)", granted)
}

// TestManyCorrectLoginsAtOnceFromOneAddress: reserving slots at admission does not refuse a
// client opening many sessions at once with the right password (the load generator logs 32
// connections in together): attempts finding the slots held by attempts in flight wait for
// them, and are admitted when those succeed.
func TestManyCorrectLoginsAtOnceFromOneAddress(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashes)
	m := authModule(t, srv)
	var wg sync.WaitGroup
	var granted atomic.Int64
	for range 32 {
		wg.Go(func() {
			res, _, err := loginAs(m, "admin", coretest.AdminPassword, "127.0.0.1:1", "")
			if err != nil || res.Outcome != auth.Granted {
				t.Errorf("login: %v %v", res.Outcome, err)
				return
			}
			granted.Add(1)
		})
	}
	wg.Wait()
	if granted.Load() != 32 {
		t.Errorf("%d of 32 correct logins granted", granted.Load())
	}
}
