package main

import (
	"bytes"
	"context"
	"encoding/json"
	"gatehouse/core/coretest"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/wsapi/wstest"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, nil, &out, &out, env(nil)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "gatehouse 0.") {
		t.Errorf("version output %q", out.String())
	}
}

func TestUnknownCommandAndBadFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, nil, &out, &out, env(nil)); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run(context.Background(), []string{"check-config", "--no-such-flag"}, nil, &out, &out, env(nil)); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}

func TestConfigPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.json")
	if err := os.WriteFile(file, []byte(`{"listen": "127.0.0.1:1111", "data": "/from/file", "log_level": "warn", "instance_name": "site-a"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig([]string{"--config", file, "--listen", "127.0.0.1:3333"}, &bytes.Buffer{},
		env(map[string]string{"GATEHOUSE_LISTEN": "127.0.0.1:2222", "GATEHOUSE_DATA": "/from/env"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3333" || cfg.Data != "/from/env" || cfg.LogLevel != "warn" || cfg.InstanceName != "site-a" {
		t.Errorf("config = listen %q data %q level %q name %q", cfg.Listen, cfg.Data, cfg.LogLevel, cfg.InstanceName)
	}
	if len(cfg.Modules) == 0 {
		t.Error("default modules not applied")
	}
	// The config file can also come from the environment.
	cfg, _, err = loadConfig(nil, &bytes.Buffer{}, env(map[string]string{"GATEHOUSE_CONFIG": file}))
	if err != nil || cfg.InstanceName != "site-a" {
		t.Errorf("GATEHOUSE_CONFIG: %v %q", err, cfg.InstanceName)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"modules": [{"module": "token", "config": {"leosac": {"idle": "5m", "max": "24h"}}}, {"module": "auth"}, {"module": "wsapi"}]}`), 0o600)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "--config", good}, nil, &out, &errOut, env(nil)); code != 0 {
		t.Fatalf("valid config: exit %d: %s", code, errOut.String())
	}
	// The verdict goes to stderr; stdout is the effective configuration alone, as JSON.
	if !strings.Contains(errOut.String(), "configuration is valid") {
		t.Errorf("output %q", errOut.String())
	}
	var eff map[string]any
	if err := json.Unmarshal(out.Bytes(), &eff); err != nil {
		t.Errorf("stdout is not the effective configuration as JSON: %v\n%s", err, out.String())
	}
	for name, body := range map[string]string{
		"unknown key":      `{"listn": "x"}`,
		"unknown module":   `{"modules": [{"module": "nope"}]}`,
		"bad module field": `{"modules": [{"module": "wsapi", "config": {"paht": "/x"}}]}`,
		"not json":         `{`,
		"bad timezone":     `{"timezone": "Mars/Olympus"}`,
		"half tls":         `{"tls_cert": "/x.pem"}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		os.WriteFile(p, []byte(body), 0o600)
		errOut.Reset()
		if code := run(context.Background(), []string{"check-config", "--config", p}, nil, &out, &errOut, env(nil)); code == 0 {
			t.Errorf("%s: accepted", name)
		} else if errOut.Len() == 0 {
			t.Errorf("%s: no error message", name)
		}
	}
}

// startServe runs `gatehouse serve` in the background and returns its base URL and a stop
// function that returns the exit code.
func startServe(t *testing.T, args []string, environ map[string]string) (string, *coretest.LogBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr coretest.LogBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), nil, &bytes.Buffer{}, &stderr, env(environ))
	}()
	urlRE := regexp.MustCompile(`"url":"(http[^"]+)"`)
	deadline := time.Now().Add(10 * time.Second)
	var url string
	for time.Now().Before(deadline) {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("server did not report its URL: %s", stderr.String())
	}
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return url, &stderr, stop
}

func TestServePrintsGeneratedAdminPasswordOnce(t *testing.T) {
	data := t.TempDir()
	url, stderr, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"}, nil)
	m := regexp.MustCompile(`created user "admin" with password (\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no generated password on stderr: %s", stderr.String())
	}
	pw := m[1]
	// The password is printed for the operator, never written into a log record.
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, pw) {
			t.Errorf("password in a log record: %s", line)
		}
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(url, "http")+"/websocket")
	c.Login("admin", pw)
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}
	// Second start on the same data: no new password.
	_, stderr2, stop2 := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"}, nil)
	if strings.Contains(stderr2.String(), "created user") {
		t.Error("admin created again on second start")
	}
	stop2()
}

func TestServeWarnsWithoutTLSOnNonLoopback(t *testing.T) {
	_, stderr, stop := startServe(t, []string{"--data", t.TempDir(), "--listen", "0.0.0.0:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "long-enough-pw"})
	stop()
	if !strings.Contains(stderr.String(), "without TLS") {
		t.Errorf("no TLS warning: %s", stderr.String())
	}
}

func TestServeSelfSignedTLS(t *testing.T) {
	data := t.TempDir()
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0", "--tls-self-signed"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "long-enough-pw"})
	defer stop()
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("url %q", url)
	}
	st, err := os.Stat(filepath.Join(data, "tls", "self-signed.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", err, st)
	}
}

func TestUserPasswdOffline(t *testing.T) {
	data := t.TempDir()
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "first-password"})
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(url, "http")+"/websocket")
	tok := c.Login("admin", "first-password")
	stop()

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"user", "passwd", "admin", "--data", data}, strings.NewReader("second-password\n"), &out, &errOut, env(nil)); code != 0 {
		t.Fatalf("user passwd: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "1 token(s) revoked") {
		t.Errorf("output %q", out.String())
	}
	if code := run(context.Background(), []string{"user", "passwd", "admin", "--data", data}, strings.NewReader("short\n"), &out, &errOut, env(nil)); code != 1 {
		t.Errorf("short password: exit %d", code)
	}
	if code := run(context.Background(), []string{"user", "passwd", "nobody", "--data", data}, strings.NewReader("long-enough-pw\n"), &out, &errOut, env(nil)); code != 1 {
		t.Errorf("unknown user: exit %d", code)
	}

	url, _, stop = startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"}, nil)
	defer stop()
	c = wstest.Dial(t, "ws"+strings.TrimPrefix(url, "http")+"/websocket")
	r := c.Call("authenticate_with_token", map[string]string{"token": tok})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("old token survived the reset: %s", r.Content)
	}
	r = c.Call("create_auth_token", map[string]string{"username": "admin", "password": "first-password"})
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("old password still works: %s", r.Content)
	}
	c.Login("admin", "second-password")
}

func TestBackupWhileServing(t *testing.T) {
	data := t.TempDir()
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "first-password"})
	defer stop()
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(url, "http")+"/websocket")
	c.Login("admin", "first-password")

	file := filepath.Join(t.TempDir(), "snapshot.tar.gz")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"backup", file, "--data", data}, nil, &out, &errOut, env(nil)); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut.String())
	}
	// The archive holds a complete database: a server started on its restore knows the admin.
	restored := t.TempDir()
	if code := run(context.Background(), []string{"restore", file, "--data", restored}, nil, &out, &errOut, env(nil)); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut.String())
	}
	url2, _, stop2 := startServe(t, []string{"--data", restored, "--listen", "127.0.0.1:0"}, nil)
	defer stop2()
	wstest.Dial(t, "ws"+strings.TrimPrefix(url2, "http")+"/websocket").Login("admin", "first-password")

	if code := run(context.Background(), []string{"backup", file, "--data", data}, nil, &out, &errOut, env(nil)); code != 1 {
		t.Errorf("backup over an existing file: exit %d", code)
	}
	var health map[string]any
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if health["status"] != "ok" {
		t.Errorf("server unhealthy after backup: %v", health)
	}
}
