package core_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "8m") on a new directory and unmounts it at
// the end of the test. It fails, never skips, when the mount is refused: the tests run as root
// here and in CI.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs on %s (the test needs root): %v %s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return p
		}
	}
}

func health(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func metric(t *testing.T, url, name string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestHealthzReportsFullDisk puts a real server's data on a small tmpfs, fills it, and checks
// that once writes fail /healthz answers 503 with the reason, the metric and a log line say so,
// and that health comes back by itself once space is freed.
func TestHealthzReportsFullDisk(t *testing.T) {
	data := mountTmpfs(t, "8m")
	var logs coretest.LogBuffer
	srv := coretest.Start(t,
		coretest.WithConfig(func(c *core.Config) { c.Data = data }),
		coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`),
		coretest.WithLog(&logs, zerolog.InfoLevel))
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	create := func(i int) wstest.Reply {
		return admin.Call("user.create", map[string]any{"attributes": map[string]any{
			"username": fmt.Sprintf("filler%d", i), "firstname": strings.Repeat("f", 100), "lastname": strings.Repeat("l", 100)}})
	}
	if r := create(0); r.StatusCode != 0 {
		t.Fatalf("user.create before the disk is full: %d %s", r.StatusCode, r.Content)
	}
	if code, _ := health(t, srv.HTTPURL); code != http.StatusOK {
		t.Fatalf("healthz before the disk is full: %d", code)
	}
	if v := metric(t, srv.HTTPURL, "gatehouse_db_failing"); v != "0" {
		t.Errorf("gatehouse_db_failing before = %q, want 0", v)
	}

	filler := fill(t, data)
	// Writes may still squeeze into the WAL's reused space for a while: write until one fails.
	failed := false
	for i := 1; i < 5000 && !failed; i++ {
		switch r := create(i); r.StatusCode {
		case 0:
		case 9: // DATABASE_ERROR: the commit failed
			failed = true
		default:
			t.Fatalf("user.create %d on a filling disk: %d %q %s, want success or a database error; log:\n%s", i, r.StatusCode, r.StatusString, r.Content, logs.String())
		}
	}
	if !failed {
		t.Fatal("no write failed on a full disk")
	}
	code, body := health(t, srv.HTTPURL)
	if code != http.StatusServiceUnavailable || body["status"] != "failing" ||
		!strings.Contains(fmt.Sprint(body["reason"]), "full") {
		t.Errorf("healthz on a full disk: %d %v, want 503 failing with the reason", code, body)
	}
	if v := metric(t, srv.HTTPURL, "gatehouse_db_failing"); v != "1" {
		t.Errorf("gatehouse_db_failing on a full disk = %q, want 1", v)
	}
	if !strings.Contains(logs.String(), "database cannot commit") {
		t.Errorf("no log line about the failing database:\n%s", logs.String())
	}
	// Still failing a while later: the state does not clear while the disk is full.
	time.Sleep(3 * time.Second) // more than one probe interval (2 s)
	if code, body := health(t, srv.HTTPURL); code != http.StatusServiceUnavailable {
		t.Errorf("healthz while the disk is still full: %d %v", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	coretest.Eventually(t, 30*time.Second, func() error {
		if code, body := health(t, srv.HTTPURL); code != http.StatusOK {
			return fmt.Errorf("healthz %d %v", code, body)
		}
		return nil
	})
	if r := create(10000); r.StatusCode != 0 {
		t.Errorf("user.create after recovery: %d %s", r.StatusCode, r.Content)
	}
	if v := metric(t, srv.HTTPURL, "gatehouse_db_failing"); v != "0" {
		t.Errorf("gatehouse_db_failing after recovery = %q, want 0", v)
	}
	if !strings.Contains(logs.String(), "database commits again") {
		t.Errorf("no log line about the recovery")
	}
}
