package wsapi_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// TestSecretsNeverLoggedOrStoredInClear logs in, changes the password, fails a login, uses and
// misuses tokens and sends malformed and oversize frames carrying the password, with the
// server logging everything (trace level). Afterwards neither the log, nor any reply's
// status_string, nor any file of the data directory contains a password or a raw token.
func TestSecretsNeverLoggedOrStoredInClear(t *testing.T) {
	t.Parallel()
	var logs coretest.LogBuffer
	srv := coretest.Start(t, coretest.WithLog(&logs, zerolog.TraceLevel))
	wsURL, dataDir := srv.WSURL, srv.Config.Data

	const (
		newPassword   = "Sentinel-NewPassword-5e1f0a9d"
		wrongPassword = "Sentinel-WrongPassword-c0ffee42"
	)
	var statusStrings []string
	call := func(c *wstest.Client, typ string, content any) wstest.Reply {
		t.Helper()
		r := c.Call(typ, content)
		statusStrings = append(statusStrings, r.StatusString)
		return r
	}

	a := wstest.Dial(t, wsURL)
	tokenA := a.Login("admin", coretest.AdminPassword)
	expectStatus(t, call(a, "password_change", map[string]string{
		"current_password": coretest.AdminPassword, "new_password": newPassword}), statusSuccess, "password_change")
	r := call(a, "password_change", map[string]string{"current_password": wrongPassword, "new_password": wrongPassword})
	expectStatus(t, r, statusPermissionDenied, "password_change with a wrong current_password")

	b := wstest.Dial(t, wsURL)
	r = call(b, "create_auth_token", map[string]string{"username": "admin", "password": wrongPassword})
	expectStatus(t, r, statusSuccess, "login with a wrong password")
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Fatalf("login with a wrong password: %s", r.Content)
	}
	tokenB := b.Login("admin", newPassword)

	c := wstest.Dial(t, wsURL)
	expectStatus(t, call(c, "authenticate_with_token", map[string]string{"token": tokenB}), statusSuccess, "authenticate_with_token")
	expectStatus(t, call(c, "whoami", map[string]any{}), statusSuccess, "whoami with the token")

	badToken := tokenB[:len(tokenB)-1] + "f"
	if badToken == tokenB {
		badToken = tokenB[:len(tokenB)-1] + "e"
	}
	d := wstest.Dial(t, wsURL)
	r = call(d, "authenticate_with_token", map[string]string{"token": badToken})
	expectStatus(t, r, statusSuccess, "authenticate_with_token with a wrong token")
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Fatalf("wrong token accepted: %s", r.Content)
	}

	// Bad frames that carry the secrets.
	e := wstest.Dial(t, wsURL)
	rs := newReplies(e)
	for _, f := range []string{
		`{"uuid":"s1","type":"create_auth_token","content":{"username":"admin","password":"` + newPassword + `"`,
		`{"uuid":"s2","type":"create_auth_token","content":{"username":"admin","password":"` + newPassword + `"}} trailing`,
		`{"uuid":"s3","type":"create_auth_token","content":{"username":["` + newPassword + `"],"password":"` + newPassword + `"}}`,
		`{"uuid":"s4","type":"create_auth_token","content":{"username":"admin","password":{"p":"` + newPassword + `"}}}`,
		`{"uuid":"s5","type":"authenticate_with_token","content":{"token":["` + tokenB + `"]}}`,
		`{"uuid":"s6","type":"authenticate_with_token","content":{"token":"` + tokenB + `"`,
		`{"uuid":"s7","type":"no.such.type","content":{"password":"` + newPassword + `","token":"` + tokenB + `"}}`,
	} {
		writeFrame(t, e, websocket.MessageText, []byte(f))
		statusStrings = append(statusStrings, rs.Next(t).StatusString)
	}
	expectOversize(t, e, rs, []byte(`{"uuid":"s8","type":"create_auth_token","content":{"username":"admin","password":"`+
		newPassword+strings.Repeat("x", anonymousLimit)+`"}}`), "s8", "create_auth_token")

	expectStatus(t, call(a, "logout", map[string]any{}), statusSuccess, "logout")
	expectStatus(t, call(c, "logout", map[string]any{}), statusSuccess, "logout")

	if err := srv.Stop(); err != nil { // flushes every log line
		t.Fatalf("stop: %v", err)
	}
	log := logs.String()
	for _, want := range []string{`"create_auth_token"`, `"authenticate_with_token"`, `"password_change"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the captured log does not mention %s: is debug logging captured?\n%s", want, log)
		}
	}
	secrets := map[string]string{
		"admin password": coretest.AdminPassword, "new password": newPassword,
		"wrong password": wrongPassword, "token A": tokenA, "token B": tokenB, "wrong token": badToken,
	}
	for name, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains the %s %q", name, secret)
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, secret) {
					t.Logf("  %s", line)
				}
			}
		}
		for _, s := range statusStrings {
			if strings.Contains(s, secret) {
				t.Errorf("a status_string contains the %s: %q", name, s)
			}
		}
	}
	err := filepath.WalkDir(dataDir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, secret := range secrets {
			if bytes.Contains(content, []byte(secret)) {
				t.Errorf("%s contains the %s in clear", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan data directory: %v", err)
	}
}
