package audit_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsapi/wstest"
)

func TestLoginsAreAudited(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.UseGatehouseTypes()
	c.Login("admin", coretest.AdminPassword)
	const wrong = "Wrong-Secret-Passw0rd"
	bad := wstest.Dial(t, srv.WSURL)
	for _, call := range []struct {
		typ     string
		content map[string]string
	}{
		{"create_auth_token", map[string]string{"username": "admin", "password": wrong}},
		{"authenticate_with_token", map[string]string{"token": "0b0e3d7c-8f0a-4c5e-9d6b-2a1f3e4d5c6b"}},
		{"create_auth_token", map[string]string{"username": strings.Repeat("x", 300), "password": wrong}},
	} {
		r := bad.Call(call.typ, call.content)
		want(t, r, codeOK)
		if !strings.Contains(string(r.Content), `"status":-1`) {
			t.Fatalf("%s: %s", call.typ, r.Content)
		}
	}

	// Newest first: the long unknown username, the bad token, the bad password, the login.
	r := waitLogins(t, c, 4)
	okEntry, badPassword, badToken, unknown := r.Data[3], r.Data[2], r.Data[1], r.Data[0]
	for _, e := range r.Data {
		if e.Type != "audit-login-event" || e.str(t, "topic") != map[bool]string{true: "auth.login", false: "auth.failed"}[e.ID == okEntry.ID] {
			t.Errorf("entry %d: type %s topic %s", e.ID, e.Type, e.Attributes["topic"])
		}
	}
	if okEntry.num(t, "event-mask") != eventlog.LoginSucceeded || okEntry.rel("author") != "user:1" || okEntry.rel("user") != "user:1" ||
		!regexp.MustCompile(`^User admin logged in \(leosac, password\) from 127\.0\.0\.1:\d+\.$`).MatchString(okEntry.str(t, "description")) {
		t.Errorf("successful login: %+v", okEntry)
	}
	var data auth.LoginEvent
	if err := json.Unmarshal(okEntry.Attributes["data"], &data); err != nil || data.UserID != 1 || data.Username != "admin" ||
		data.Dialect != "leosac" || data.Method != "password" || !strings.HasPrefix(data.Remote, "127.0.0.1:") {
		t.Errorf("login data %s", okEntry.Attributes["data"])
	}
	// A failed login of an existing account shows under the account (the user_id filter).
	if badPassword.num(t, "event-mask") != eventlog.LoginFailed || badPassword.rel("author") != "" || badPassword.rel("user") != "user:1" ||
		!regexp.MustCompile(`^Failed login as "admin" \(leosac\) from 127\.0\.0\.1:\d+: invalid credentials\.$`).MatchString(badPassword.str(t, "description")) {
		t.Errorf("bad password: %+v", badPassword)
	}
	if badToken.rel("user") != "null" || !strings.HasPrefix(badToken.str(t, "description"), "Failed login (leosac) from 127.0.0.1:") ||
		!strings.HasSuffix(badToken.str(t, "description"), ": invalid or expired token.") {
		t.Errorf("bad token: %+v", badToken)
	}
	// The username of an unknown account (maybe a password typed in the wrong field) is for
	// administrators only: in the after snapshot, not in the description nor the data.
	if d := unknown.str(t, "description"); strings.Contains(d, "xxx") || unknown.rel("user") != "null" ||
		!regexp.MustCompile(`^Failed login as an unknown user \(leosac\) from 127\.0\.0\.1:\d+: invalid credentials\.$`).MatchString(d) {
		t.Errorf("unknown user: %q", d)
	}
	if strings.Contains(string(unknown.Attributes["data"]), "xxx") {
		t.Errorf("unknown user's data shows the attempted username: %s", unknown.Attributes["data"])
	}
	var after string
	var attempted struct {
		Username string `json:"attempted_username"`
	}
	if err := json.Unmarshal(unknown.Attributes["after"], &after); err != nil || json.Unmarshal([]byte(after), &attempted) != nil ||
		attempted.Username != strings.Repeat("x", 128) {
		t.Errorf("administrators do not see the attempted username: after = %s", unknown.Attributes["after"])
	}
	adminOnly := get(t, c, map[string]any{"user_id": 1, "enabled_type": []string{"Gatehouse::Audit::LoginEvent"}})
	if len(adminOnly.Data) != 2 || adminOnly.Data[0].ID != badPassword.ID || adminOnly.Data[1].ID != okEntry.ID {
		t.Errorf("admin's logins: %v", ids(adminOnly))
	}

	// No secret anywhere in the log, and the log's own re-publication of the entries is not
	// recorded again: the count stays at 4.
	time.Sleep(200 * time.Millisecond)
	var rows []struct {
		Topic, Kind, AuthorName, Description string
		Before, After                        *string
		Data                                 string
	}
	if err := srv.DB().Read.Raw(`SELECT topic, kind, author_name, description, before, after, CAST(data AS TEXT) AS data FROM events`).
		Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	logins := 0
	for _, row := range rows {
		text := row.Topic + row.Kind + row.AuthorName + row.Description + row.Data
		if row.Before != nil {
			text += *row.Before
		}
		if row.After != nil {
			text += *row.After
		}
		for _, secret := range []string{wrong, coretest.AdminPassword, "0b0e3d7c-8f0a-4c5e-9d6b-2a1f3e4d5c6b"} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret is in the events table: %+v", row)
			}
		}
		if row.Kind == eventlog.KindLogin {
			logins++
		}
	}
	if logins != 4 {
		t.Errorf("%d login entries in the table, want 4", logins)
	}

	// A viewer reads the entries without it.
	addUser(t, srv, "viewer1", "viewer-password-1", core.RankViewer)
	viewer := wstest.Dial(t, srv.WSURL)
	viewer.UseGatehouseTypes()
	viewer.Login("viewer1", "viewer-password-1")
	seen := get(t, viewer, map[string]any{"enabled_type": []string{"Gatehouse::Audit::LoginEvent"}})
	found := false
	for _, e := range seen.Data {
		if e.ID != unknown.ID {
			continue
		}
		found = true
		if b, _ := json.Marshal(e); strings.Contains(string(b), "xxx") {
			t.Errorf("a viewer reads the unknown username: %s", b)
		}
	}
	if !found {
		t.Errorf("the viewer does not see the failed login at all: %v", ids(seen))
	}
}

func TestLoginFloodIsRecorded(t *testing.T) {
	t.Parallel()
	srv := start(t)
	bus := srv.App().Bus()
	const n = 600 // three full batches
	start := time.Now()
	for i := range n {
		bus.Publish(core.Event{Topic: "auth.failed", Source: auth.ModuleID,
			Data: auth.FailedEvent{Username: fmt.Sprintf("guess%d", i), Remote: "192.0.2.1:4000", Dialect: "leosac", Reason: "rate_limited"}})
		// Not the auth module's: ignored.
		bus.Publish(core.Event{Topic: "auth.failed", Source: "impostor",
			Data: auth.FailedEvent{Username: "impostor", Remote: "192.0.2.2:4000", Dialect: "leosac", Reason: "bad_credentials"}})
	}
	count := func() (int64, error) {
		var c int64
		err := srv.DB().Read.Raw(`SELECT COUNT(*) FROM events WHERE kind = ?`, eventlog.KindLogin).Scan(&c).Error
		return c, err
	}
	coretest.Eventually(t, 40*time.Second, func() error {
		if c, err := count(); err != nil || c != n {
			return fmt.Errorf("%d login entries (%v), want %d", c, err, n)
		}
		return nil
	})
	t.Logf("%d failed logins recorded in %v", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(150 * time.Millisecond)
	if c, _ := count(); c != n {
		t.Errorf("%d login entries after the flood settled, want %d", c, n)
	}
	var order []int64
	// The usernames are unknown accounts: recorded only in the after snapshot.
	if err := srv.DB().Read.Raw(`SELECT CAST(substr(json_extract(after, '$.attempted_username'), 6) AS INTEGER) FROM events
		WHERE kind = ? ORDER BY seq`, eventlog.KindLogin).Scan(&order).Error; err != nil {
		t.Fatal(err)
	}
	for i, v := range order {
		if v != int64(i) {
			t.Fatalf("entry %d is guess%d: the log is not in publication order", i, v)
		}
	}
}

func TestLoginAuditDrainsOnStop(t *testing.T) {
	t.Parallel()
	srv := start(t)
	const n = 300
	for i := range n {
		srv.App().Bus().Publish(core.Event{Topic: "auth.login", Source: auth.ModuleID,
			Data: auth.LoginEvent{UserID: 1, Username: "admin", Remote: fmt.Sprintf("192.0.2.1:%d", 1000+i), Dialect: "leosac", Method: "token"}})
	}
	srv = srv.Restart() // stops at once: what was received must still be written
	var c int64
	if err := srv.DB().Read.Raw(`SELECT COUNT(*) FROM events WHERE kind = ?`, eventlog.KindLogin).Scan(&c).Error; err != nil {
		t.Fatal(err)
	}
	if c != n {
		t.Errorf("%d login entries after stop, want %d", c, n)
	}
}
