package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/wsapi/wstest"
)

// Leosac status codes as the wire carries them.
const (
	codeOK               = 0
	codeGeneralFailure   = 1
	codePermissionDenied = 2
	codeRateLimited      = 3
	codeSessionAborted   = 7
	codeEntityNotFound   = 8
	codeModelException   = 11
)

func authModule(t *testing.T, srv *coretest.Server) *auth.Module {
	t.Helper()
	m, ok := srv.App().Module(auth.ModuleID)
	if !ok {
		t.Fatal("auth module not loaded")
	}
	return m.(*auth.Module)
}

// addUser creates a user directly through the auth module's store.
func addUser(t *testing.T, srv *coretest.Server, name, pw string, rank core.Rank) int64 {
	t.Helper()
	m := authModule(t, srv)
	hash, err := m.Hasher().Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	u := &auth.User{Username: name, PasswordHash: hash, Rank: rank, ValidityEnabled: true}
	if err := m.Users().Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func wantCode(t *testing.T, r wstest.Reply, code int) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s: status_code %d (%q), want %d; content %s", r.Type, r.StatusCode, r.StatusString, code, r.Content)
	}
}

func TestLoginWhoamiAndVersion(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)

	r := c.Call("get_leosac_version", map[string]any{})
	wantCode(t, r, codeOK)
	var v struct{ Version, VersionShort string }
	r.Decode(t, &v)
	if v.Version != core.Version {
		t.Errorf("version %q, want %q", v.Version, core.Version)
	}

	// Usernames are case-insensitive.
	c.Login("ADMIN", coretest.AdminPassword)
	r = c.Call("whoami", map[string]any{})
	wantCode(t, r, codeOK)
	var who struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Rank     int    `json:"rank"`
	}
	r.Decode(t, &who)
	if who.UserID != 1 || who.Username != "admin" || who.Rank != int(core.RankAdministrator) {
		t.Errorf("whoami = %+v", who)
	}

	r = c.Call("system_overview", map[string]any{})
	wantCode(t, r, codeOK)
	var ov struct {
		InstanceName  string   `json:"instance_name"`
		ConfigVersion uint64   `json:"config_version"`
		Uptime        *int64   `json:"uptime"`
		Modules       []string `json:"modules"`
	}
	r.Decode(t, &ov)
	if ov.InstanceName != core.DefaultInstanceName || ov.Uptime == nil ||
		strings.Join(ov.Modules, ",") != strings.Join(srv.App().ModuleIDs(), ",") || len(ov.Modules) < 3 {
		t.Errorf("system_overview = %s", r.Content)
	}
}

func TestBadCredentialsAreADomainOutcome(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	for _, creds := range []map[string]string{
		{"username": "admin", "password": "wrong password"},
		{"username": "nobody", "password": "whatever1"},
		{"username": "", "password": ""},
	} {
		r := c.Call("create_auth_token", creds)
		wantCode(t, r, codeOK)
		var res struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
			Token   string `json:"token"`
		}
		r.Decode(t, &res)
		if res.Status != -1 || res.Message != "Invalid credentials" || res.Token != "" {
			t.Errorf("%v: content %s", creds, r.Content)
		}
	}
	r := c.Call("authenticate_with_token", map[string]string{"token": "00000000-0000-4000-8000-000000000000"})
	wantCode(t, r, codeOK)
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("unknown token: %s", r.Content)
	}
	r = c.Call("authenticate_with_token", map[string]string{"token": ""})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("empty token must never match: %s", r.Content)
	}
}

func TestAccessRulesBeforeAndAfterLogin(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	for _, typ := range []string{"whoami", "system_overview", "logout", "password_change"} {
		wantCode(t, c.Call(typ, map[string]any{}), codePermissionDenied)
	}
	wantCode(t, c.Call("get_leosac_version", nil), codeOK)

	tok := c.Login("admin", coretest.AdminPassword)
	// Logging in again on a logged-in connection is refused: log out first.
	wantCode(t, c.Call("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword}), codePermissionDenied)
	wantCode(t, c.Call("authenticate_with_token", map[string]string{"token": tok}), codePermissionDenied)
	wantCode(t, c.Call("get_leosac_version", nil), codeOK)
}

func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	addUser(t, srv, "bob", "bob-password", core.RankUser)
	c := wstest.Dial(t, srv.WSURL)

	for i := range 5 {
		r := c.Call("create_auth_token", map[string]string{"username": "admin", "password": "guess-" + string(rune('a'+i))})
		wantCode(t, r, codeOK)
	}
	// The sixth attempt is refused even with the right password, and says when to retry.
	r := c.Call("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword})
	wantCode(t, r, codeRateLimited)
	var rl struct {
		RetryAfter int `json:"retry_after"`
	}
	r.Decode(t, &rl)
	if rl.RetryAfter <= 0 {
		t.Errorf("retry_after = %d in %s", rl.RetryAfter, r.Content)
	}
	// Another user from the same address is not locked out by admin's failures.
	c.Login("bob", "bob-password")
}

func TestAddressThrottlingAcrossUsernames(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	for i := range 20 {
		r := c.Call("create_auth_token", map[string]string{"username": "user" + string(rune('a'+i)), "password": "nope-nope"})
		wantCode(t, r, codeOK)
	}
	r := c.Call("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword})
	wantCode(t, r, codeRateLimited)
	// Token logins from that address are refused too while it is locked.
	wantCode(t, c.Call("authenticate_with_token", map[string]string{"token": "x"}), codeRateLimited)
}

func TestIdleTokenExpiryAbortsSessionAndDropsRights(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("token", `{"leosac": {"idle": "1s", "max": "1h"}}`))
	c := wstest.Dial(t, srv.WSURL)
	tok := c.Login("admin", coretest.AdminPassword)

	// Each successful call slides the idle timeout.
	for range 4 {
		time.Sleep(400 * time.Millisecond)
		wantCode(t, c.Call("whoami", nil), codeOK)
	}
	time.Sleep(1500 * time.Millisecond)
	r := c.Call("whoami", nil)
	wantCode(t, r, codeSessionAborted)
	// The connection lost every right at once.
	wantCode(t, c.Call("whoami", nil), codePermissionDenied)
	wantCode(t, c.Call("system_overview", nil), codePermissionDenied)
	wantCode(t, c.Call("get_leosac_version", nil), codeOK)
	// The expired token is dead for every connection.
	c2 := wstest.Dial(t, srv.WSURL)
	r = c2.Call("authenticate_with_token", map[string]string{"token": tok})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("expired token accepted: %s", r.Content)
	}
	// The connection may log in again.
	c.Login("admin", coretest.AdminPassword)
	wantCode(t, c.Call("whoami", nil), codeOK)
}

func TestAbsoluteTokenExpiry(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("token", `{"leosac": {"idle": "1h", "max": "1s"}}`))
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	wantCode(t, c.Call("whoami", nil), codeOK)
	time.Sleep(1200 * time.Millisecond)
	wantCode(t, c.Call("whoami", nil), codeSessionAborted)
}

func TestPasswordChangeRevokesOtherTokensAndClosesTheirSessions(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)

	a := wstest.Dial(t, srv.WSURL)
	b := wstest.Dial(t, srv.WSURL)
	shared := wstest.Dial(t, srv.WSURL)
	a.Login("bob", "bob-password")
	tokB := b.Login("bob", "bob-password")
	wantCode(t, shared.Call("authenticate_with_token", map[string]string{"token": tokB}), codeOK)
	// A token held by no live connection must be revoked as well.
	offline := wstest.Dial(t, srv.WSURL)
	tokOffline := offline.Login("bob", "bob-password")
	_ = offline.Conn.Close(websocket.StatusNormalClosure, "")

	r := a.Call("password_change", map[string]any{"user_id": bobID, "current_password": "wrong-one", "new_password": "new-bob-password"})
	wantCode(t, r, codePermissionDenied)
	r = a.Call("password_change", map[string]any{"user_id": bobID, "current_password": "bob-password", "new_password": "short"})
	wantCode(t, r, codeModelException)
	r = a.Call("password_change", map[string]any{"user_id": bobID, "current_password": "bob-password", "new_password": "new-bob-password"})
	wantCode(t, r, codeOK)
	if string(r.Content) != "null" {
		t.Errorf("password_change content %s, want null", r.Content)
	}

	for _, other := range []*wstest.Client{b, shared} {
		p := other.ExpectPush("session_closed", 5*time.Second)
		var pc struct {
			Reason string `json:"reason"`
		}
		p.Decode(t, &pc)
		if p.StatusCode != 0 || pc.Reason == "" || p.UUID == "" {
			t.Errorf("session_closed push = %+v %s", p, p.Content)
		}
		// The kicked connection has no rights left, but stays open.
		wantCode(t, other.Call("whoami", nil), codePermissionDenied)
	}
	// The caller keeps its session.
	wantCode(t, a.Call("whoami", nil), codeOK)

	fresh := wstest.Dial(t, srv.WSURL)
	for _, tok := range []string{tokB, tokOffline} {
		r := fresh.Call("authenticate_with_token", map[string]string{"token": tok})
		if !strings.Contains(string(r.Content), `"status":-1`) {
			t.Errorf("revoked token still accepted: %s", r.Content)
		}
	}
	r = fresh.Call("create_auth_token", map[string]string{"username": "bob", "password": "bob-password"})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("old password still accepted: %s", r.Content)
	}
	fresh.Login("bob", "new-bob-password")
}

func TestPasswordChangeRights(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)
	carolID := addUser(t, srv, "carol", "carol-password", core.RankManager)
	_ = addUser(t, srv, "dave", "dave-password", core.RankManager)

	bob := wstest.Dial(t, srv.WSURL)
	bob.Login("bob", "bob-password")
	wantCode(t, bob.Call("password_change", map[string]any{"user_id": carolID, "new_password": "hijacked-pw"}), codePermissionDenied)
	wantCode(t, bob.Call("password_change", map[string]any{"user_id": 999, "new_password": "whatever-pw"}), codeEntityNotFound)

	dave := wstest.Dial(t, srv.WSURL)
	dave.Login("dave", "dave-password")
	// A manager may reset a lower-ranked user's password, not a peer's or an admin's.
	wantCode(t, dave.Call("password_change", map[string]any{"user_id": bobID, "new_password": "reset-by-dave"}), codeOK)
	bob.ExpectPush("session_closed", 5*time.Second)
	wantCode(t, dave.Call("password_change", map[string]any{"user_id": carolID, "new_password": "reset-by-dave"}), codePermissionDenied)
	wantCode(t, dave.Call("password_change", map[string]any{"user_id": 1, "new_password": "reset-by-dave"}), codePermissionDenied)

	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	wantCode(t, admin.Call("password_change", map[string]any{"user_id": carolID, "new_password": "reset-by-admin"}), codeOK)
	wstest.Dial(t, srv.WSURL).Login("carol", "reset-by-admin")
}

func TestLogoutRevokesTheTokenEverywhere(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	a := wstest.Dial(t, srv.WSURL)
	tok := a.Login("admin", coretest.AdminPassword)
	b := wstest.Dial(t, srv.WSURL)
	wantCode(t, b.Call("authenticate_with_token", map[string]string{"token": tok}), codeOK)

	r := a.Call("logout", nil)
	wantCode(t, r, codeOK)
	if string(r.Content) != "null" {
		t.Errorf("logout content %s", r.Content)
	}
	wantCode(t, a.Call("whoami", nil), codePermissionDenied)
	b.ExpectPush("session_closed", 5*time.Second)
	wantCode(t, b.Call("whoami", nil), codePermissionDenied)
	if len(a.Pushes()) != 0 {
		t.Errorf("the logging-out connection got pushes: %v", a.Pushes())
	}
	r = wstest.Dial(t, srv.WSURL).Call("authenticate_with_token", map[string]string{"token": tok})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("token valid after logout: %s", r.Content)
	}
}

func TestTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	tok := c.Login("admin", coretest.AdminPassword)
	wantCode(t, c.Call("whoami", nil), codeOK)

	srv2 := srv.Restart()
	c2 := wstest.Dial(t, srv2.WSURL)
	r := c2.Call("authenticate_with_token", map[string]string{"token": tok})
	wantCode(t, r, codeOK)
	var res struct {
		Status   int    `json:"status"`
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}
	r.Decode(t, &res)
	if res.Status != 0 || res.UserID != 1 || res.Username != "admin" {
		t.Errorf("authenticate_with_token after restart: %s", r.Content)
	}
	wantCode(t, c2.Call("whoami", nil), codeOK)
}

func TestDisabledAccount(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("bob", "bob-password")

	m := authModule(t, srv)
	if err := srv.DB().Write.Exec(`UPDATE users SET validity_enabled = 0 WHERE id = ?`, bobID).Error; err != nil {
		t.Fatal(err)
	}
	m.Users().Invalidate(bobID)
	// Rights are re-evaluated on every call.
	wantCode(t, c.Call("whoami", nil), codeSessionAborted)
	wantCode(t, c.Call("whoami", nil), codePermissionDenied)

	r := c.Call("create_auth_token", map[string]string{"username": "bob", "password": "bob-password"})
	wantCode(t, r, codeGeneralFailure)
	if !strings.Contains(r.StatusString, "disabled") {
		t.Errorf("status_string %q", r.StatusString)
	}
	// A wrong password on a disabled account reveals nothing about the account.
	r = c.Call("create_auth_token", map[string]string{"username": "bob", "password": "not-bobs"})
	wantCode(t, r, codeOK)
}

func TestFirstStartWithoutPasswordGeneratesOne(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithConfig(func(c *core.Config) { c.AdminPassword = "" }))
	path := filepath.Join(srv.Config.Data, auth.InitialPasswordFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 {
		t.Fatalf("generated password %q too short", pw)
	}
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", pw)
	// No well-known default works.
	for _, guess := range []string{"admin", "password", "gatehouse", ""} {
		r := c.Call("logout", nil)
		wantCode(t, r, codeOK)
		r = c.Call("create_auth_token", map[string]string{"username": "admin", "password": guess})
		if !strings.Contains(string(r.Content), `"status":-1`) {
			t.Errorf("password %q accepted", guess)
		}
		c.Login("admin", pw)
	}
	// A restart does not create another admin or another password.
	srv2 := srv.Restart()
	b2, _ := os.ReadFile(path)
	if string(b2) != string(b) {
		t.Error("the initial password file changed on restart")
	}
	wstest.Dial(t, srv2.WSURL).Login("admin", pw)
}

// TestShutdownClosesConnectionsAndLeavesNoGoroutine is not parallel: it checks that after a
// graceful stop every goroutine the server started has ended.
func TestShutdownClosesConnectionsAndLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := coretest.Start(t)
	var clients []*wstest.Client
	for range 5 {
		c := wstest.Dial(t, srv.WSURL)
		c.Login("admin", coretest.AdminPassword)
		clients = append(clients, c)
	}
	anon := wstest.Dial(t, srv.WSURL)
	wantCode(t, anon.Call("get_leosac_version", nil), codeOK)
	clients = append(clients, anon)

	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, c := range clients {
		if code := c.WaitClosed(5 * time.Second); code != websocket.StatusGoingAway {
			t.Errorf("close status %v, want 1001 (going away)", code)
		}
	}
}
