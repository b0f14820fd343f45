package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/wsapi/wstest"
)

// mountTmpfs mounts a tmpfs with the given options on a new directory and unmounts it at the
// end of the test. It fails, never skips, when the mount is refused: the tests run as root here
// and in CI.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs (%s) on %s (the test needs root): %v %s", opts, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// TestOfflineCommandsRefuseWhatTheyCannotDo: a backup of a missing data directory fails and
// creates nothing; user passwd refuses while a server runs (naming the API) and leaves the
// server's sessions and password alone; a second server refuses the same data; a too-short
// GATEHOUSE_ADMIN_PASSWORD creates nothing; an unwritable data directory is named as such.
func TestOfflineCommandsRefuseWhatTheyCannotDo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	code, _, errOut := runCmd([]string{"backup", filepath.Join(t.TempDir(), "b.tar.gz"), "--data", missing}, "")
	if code != 1 || !strings.Contains(errOut, missing) || !strings.Contains(errOut, "does not exist") {
		t.Errorf("backup of a missing data directory: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCmd([]string{"user", "passwd", "admin", "--data", missing}, "another-password\n")
	if code != 1 || !strings.Contains(errOut, missing) {
		t.Errorf("user passwd on a missing data directory: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an offline command created the missing data directory: %v", err)
	}

	// A too-short admin password is refused before anything is created.
	short := filepath.Join(t.TempDir(), "short")
	var out, errBuf strings.Builder
	code = run(t.Context(), []string{"serve", "--data", short, "--listen", "127.0.0.1:0"}, nil, &out, &errBuf,
		env(map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "short"}))
	if code != 1 || !strings.Contains(errBuf.String(), "ADMIN_PASSWORD") {
		t.Errorf("serve with a short admin password: exit %d: %s", code, errBuf.String())
	}
	if _, err := os.Stat(short); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused admin password left the data directory behind: %v", err)
	}

	// While a server runs: user passwd refuses and names the live alternative.
	data := t.TempDir()
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword})
	c := wstest.Dial(t, wsURL(url))
	c.Login("admin", testAdminPassword)
	code, out2, errOut := runCmd([]string{"user", "passwd", "admin", "--data", data}, "another-password\n")
	if code != 1 || !strings.Contains(errOut, "running") || !strings.Contains(errOut, "password_change") {
		t.Errorf("user passwd while serving: exit %d: %s %s", code, out2, errOut)
	}
	if strings.Contains(out2, "revoked") {
		t.Errorf("user passwd while serving claims to have revoked tokens: %s", out2)
	}
	if r := c.Call("whoami", map[string]any{}); r.StatusCode != 0 {
		t.Errorf("the session died after the refused user passwd: %s", r.Content)
	}
	wstest.Dial(t, wsURL(url)).Login("admin", testAdminPassword) // the password is unchanged
	// A second server on the same data refuses to start.
	code = run(t.Context(), []string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, nil, &out, &errBuf, env(nil))
	if code != 1 || !strings.Contains(errBuf.String(), "in use by a running gatehouse server") {
		t.Errorf("second server on the same data: exit %d: %s", code, errBuf.String())
	}
	// Backup works while the lock is held (covered with writes in TestBackupRestoreKeepsEveryDecision).
	if code, _, errOut := runCmd([]string{"backup", filepath.Join(t.TempDir(), "b.tar.gz"), "--data", data}, ""); code != 0 {
		t.Errorf("backup while serving: exit %d: %s", code, errOut)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	// Once stopped, user passwd works.
	if code, _, errOut := runCmd([]string{"user", "passwd", "admin", "--data", data}, "another-password\n"); code != 0 {
		t.Errorf("user passwd after the server stopped: exit %d: %s", code, errOut)
	}

	// An unwritable data directory (a read-only file system: root ignores modes) is named.
	ro := mountTmpfs(t, "ro,size=1m")
	errBuf.Reset()
	code = run(t.Context(), []string{"serve", "--data", ro, "--listen", "127.0.0.1:0"}, nil, &out, &errBuf,
		env(map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword}))
	if code != 1 || !strings.Contains(errBuf.String(), ro) || !strings.Contains(errBuf.String(), "read-only file system") ||
		strings.Contains(errBuf.String(), "out of memory") {
		t.Errorf("serve on a read-only data directory: exit %d: %s", code, errBuf.String())
	}
}

// TestFilesArePrivate runs a server, a backup and a restore under umask 0 and checks that the
// data directory is 0700 and every file in it, the backup and the restored files are 0600.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	data := filepath.Join(t.TempDir(), "data")
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0", "--tls-self-signed"}, nil)
	_ = url
	backupFile := filepath.Join(t.TempDir(), "b.tar.gz")
	if code, _, errOut := runCmd([]string{"backup", backupFile, "--data", data}, ""); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	checkPrivate := func(dir string, want ...string) {
		t.Helper()
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("data directory %s: %v %v, want 0700", dir, err, st)
		}
		seen := map[string]bool{}
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return nil // a WAL checkpointed away meanwhile
			}
			rel, _ := filepath.Rel(dir, p)
			seen[filepath.ToSlash(rel)] = true
			switch {
			case d.IsDir() && info.Mode().Perm() != 0o700:
				t.Errorf("directory %s has mode %#o, want 0700", p, info.Mode().Perm())
			case !d.IsDir() && info.Mode().Perm() != 0o600:
				t.Errorf("file %s has mode %#o, want 0600", p, info.Mode().Perm())
			}
			return nil
		})
		for _, w := range want {
			if !seen[w] {
				t.Errorf("%s: no %s (seen %v)", dir, w, seen)
			}
		}
	}
	checkPrivate(data, db.FileName, db.FileName+"-wal", db.FileName+"-shm", db.LockFile, core.PINKeyFile,
		core.InitialPasswordFile, core.SelfSignedCertFile, core.SelfSignedKeyFile)
	if st, err := os.Stat(backupFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup: %v %v, want 0600", err, st)
	}
	stop()
	restored := filepath.Join(t.TempDir(), "restored")
	if code, _, errOut := runCmd([]string{"restore", backupFile, "--data", restored}, ""); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut)
	}
	checkPrivate(restored, db.FileName, core.PINKeyFile, core.SelfSignedKeyFile, core.InitialPasswordFile)
}

// TestInitialPasswordFileGoesWithTheChange checks that the generated admin password's file is
// deleted when that password is changed, over the API or offline, and that whoami tells the
// admin to change it until then.
func TestInitialPasswordFileGoesWithTheChange(t *testing.T) {
	pwRE := regexp.MustCompile(`created user "admin" with password (\S+)`)
	start := func(data string) (string, string, func() int) {
		url, stderr, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"}, nil)
		m := pwRE.FindStringSubmatch(stderr.String())
		if m == nil {
			t.Fatalf("no generated password: %s", stderr.String())
		}
		return url, m[1], stop
	}
	whoamiInitial := func(c *wstest.Client) bool {
		var w struct {
			InitialPassword bool `json:"initial_password"`
		}
		r := c.Call("whoami", map[string]any{})
		mustOK(t, r)
		r.Decode(t, &w)
		return w.InitialPassword
	}

	// Over the API.
	data := t.TempDir()
	file := filepath.Join(data, core.InitialPasswordFile)
	url, pw, stop := start(data)
	c := wstest.Dial(t, wsURL(url))
	c.Login("admin", pw)
	if !whoamiInitial(c) {
		t.Error("whoami does not flag the generated password")
	}
	// Another user's password change leaves it alone.
	uid := createdID(t, c.Call("user.create", map[string]any{"attributes": map[string]any{"username": "other"}}))
	mustOK(t, c.Call("password_change", map[string]any{"user_id": uid, "new_password": "other-password"}))
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the initial password file went with another user's change: %v", err)
	}
	mustOK(t, c.Call("password_change", map[string]any{"current_password": pw, "new_password": "a-chosen-password"}))
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("initial password file after password_change: %v, want it deleted", err)
	}
	if whoamiInitial(c) {
		t.Error("whoami still flags the generated password after the change")
	}
	stop()
	url, _, stop = startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"}, nil)
	c = wstest.Dial(t, wsURL(url))
	c.Login("admin", "a-chosen-password")
	if whoamiInitial(c) {
		t.Error("whoami flags the generated password again after a restart")
	}
	stop()

	// Offline.
	data2 := t.TempDir()
	_, _, stop2 := start(data2)
	stop2()
	code, out, errOut := runCmd([]string{"user", "passwd", "admin", "--data", data2}, "a-chosen-password\n")
	if code != 0 {
		t.Fatalf("user passwd: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(data2, core.InitialPasswordFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("initial password file after user passwd: %v, want it deleted (%s)", err, out)
	}
}
