package sysadm_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
)

func unixServer(t *testing.T, unixUsers string) (*coretest.Server, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are read on Linux only")
	}
	dir, err := os.MkdirTemp("", "gh") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	srv := start(t, `{"unix_users": `+unixUsers+`}`, coretest.WithConfig(func(c *core.Config) { c.Unix = path }))
	return srv, path
}

// TestUnixSocketPeerCredentials maps the test process's own uid to a gatehouse user: its
// connections over the Unix socket are logged in without a password, over the websocket and
// REST alike; the same client over TCP loopback gets nothing.
func TestUnixSocketPeerCredentials(t *testing.T) {
	t.Parallel()
	srv, path := unixServer(t, fmt.Sprintf(`{"%d": "admin"}`, os.Getuid()))
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v %v", path, fi.Mode(), err)
	}

	c := dialUnix(t, path)
	var q map[string]string
	c.ok("rpc", "query", nil).decode(t, &q) // no auth call at all
	if q["gatehouse/reader.simulate"] != "read/write" {
		t.Errorf("query over the socket: %v", q)
	}
	wantLoggedInAs(t, c, "admin")
	// auth_clear logs it out like any session.
	c.sendRaw([]byte(`{"namespace":"rpc","name":"auth_clear","id":"c","args":""}`))
	c.wantCode("rpc", "query", nil, 401)

	hc := unixClient(path)
	if r := rest(t, hc, "GET", "http://unix/gatehouse/whoami", "", ""); r.status != 200 || !strings.Contains(string(r.args), `"username":"admin"`) {
		t.Errorf("REST over the socket: %d %s", r.status, r.args)
	}
	// Explicit credentials still take precedence.
	if r := rest(t, hc, "GET", "http://unix/gatehouse/whoami", basic("admin", "wrong"), ""); r.status != 401 {
		t.Errorf("wrong Basic over the socket: %d %s", r.status, r.args)
	}

	// Loopback TCP is not trusted.
	tcp := dial(t, wsURL(srv))
	tcp.wantCode("rpc", "query", nil, 401)

	// The socket goes away with the server.
	_ = c.ws.CloseNow()
	_ = tcp.ws.CloseNow()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
}

func TestUnixSocketByNameAndUnmapped(t *testing.T) {
	t.Parallel()
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	addCarol := func(srv *coretest.Server) { addUser(t, srv, "carol", "carol-password", core.RankUser) }

	srv, path := unixServer(t, fmt.Sprintf(`{%q: "carol"}`, me.Username))
	addCarol(srv)
	c := dialUnix(t, path)
	wantLoggedInAs(t, c, "carol")

	// A uid mapped to nobody (or to an unknown user) must authenticate normally.
	_, path2 := unixServer(t, `{"4294967290": "admin", "`+fmt.Sprint(os.Getuid())+`x": "admin"}`)
	c2 := dialUnix(t, path2)
	c2.wantCode("rpc", "query", nil, 401)
	c2.login("admin", coretest.AdminPassword)
	c2.ok("rpc", "query", nil)
	_, path3 := unixServer(t, fmt.Sprintf(`{"%d": "ghost"}`, os.Getuid()))
	dialUnix(t, path3).wantCode("rpc", "query", nil, 401)
	// A disabled account is not logged in either (auth.LoginUser checks it).
	srv4, path4 := unixServer(t, fmt.Sprintf(`{"%d": "dora"}`, os.Getuid()))
	mod, _ := srv4.App().Module(auth.ModuleID)
	if err := mod.(*auth.Module).Users().Create(context.Background(), &auth.User{Username: "dora", Rank: core.RankAdministrator}); err != nil {
		t.Fatal(err)
	}
	dialUnix(t, path4).wantCode("rpc", "query", nil, 401)
}
