package main

import (
	"bytes"
	"context"
	"gatehouse/core/coretest"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/core"
)

// TestXivoAuthFlagAliases checks that the xivo-auth daemon flags give the very configuration
// their gatehouse long forms give, with the precedence flags > environment > file kept.
func TestXivoAuthFlagAliases(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.json")
	if err := os.WriteFile(file, []byte(`{"listen": "127.0.0.1:1111", "log_level": "warn", "instance_name": "site-x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, args []string, environ map[string]string) core.Config {
		t.Helper()
		cfg, _, err := loadConfig(args, &bytes.Buffer{}, env(environ))
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return cfg
	}
	same := func(t *testing.T, alias, long []string, environ map[string]string) core.Config {
		t.Helper()
		a, l := load(t, alias, environ), load(t, long, environ)
		if !reflect.DeepEqual(a, l) {
			t.Errorf("%q gives\n%+v\nbut %q gives\n%+v", alias, a, long, l)
		}
		return a
	}
	for _, alias := range [][]string{{"-c", file}, {"--config-file", file}, {"-c=" + file}, {"--config-file=" + file}} {
		if cfg := same(t, alias, []string{"--config", file}, nil); cfg.InstanceName != "site-x" || cfg.LogLevel != "warn" {
			t.Errorf("%q: file not read: name %q level %q", alias, cfg.InstanceName, cfg.LogLevel)
		}
	}
	// -d is --log-level debug, and like any flag it beats the file and the environment.
	for _, alias := range []string{"-d", "--debug", "-d=true"} {
		cfg := same(t, []string{"-c", file, alias}, []string{"--config", file, "--log-level", "debug"},
			map[string]string{"GATEHOUSE_LOG_LEVEL": "error"})
		if cfg.LogLevel != "debug" {
			t.Errorf("%s: level %q, want debug", alias, cfg.LogLevel)
		}
	}
	if cfg := load(t, []string{"-c", file, "-d=false"}, nil); cfg.LogLevel != "warn" {
		t.Errorf("-d=false changed the file's level to %q", cfg.LogLevel)
	}
	// The last level flag wins, whichever spelling.
	if cfg := load(t, []string{"-l", "info", "-d"}, nil); cfg.LogLevel != "debug" {
		t.Errorf("-l info -d: level %q", cfg.LogLevel)
	}
	if cfg := load(t, []string{"-d", "-l", "error"}, nil); cfg.LogLevel != "error" {
		t.Errorf("-d -l error: level %q", cfg.LogLevel)
	}
	// Every xivo-auth level name, through -l, --log-level, the environment and the file.
	for wazo, zl := range map[string]string{"critical": "error", "error": "error", "warning": "warn", "info": "info", "debug": "debug", "WARNING": "warn"} {
		for _, flag := range []string{"-l", "--log-level"} {
			if cfg := same(t, []string{"-c", file, flag, wazo}, []string{"--config", file, "--log-level", zl}, nil); cfg.LogLevel != zl {
				t.Errorf("%s %s: level %q, want %q", flag, wazo, cfg.LogLevel, zl)
			}
		}
		if cfg := load(t, nil, map[string]string{"GATEHOUSE_LOG_LEVEL": wazo}); cfg.LogLevel != zl {
			t.Errorf("GATEHOUSE_LOG_LEVEL=%s: level %q, want %q", wazo, cfg.LogLevel, zl)
		}
		lf := filepath.Join(dir, "level-"+wazo+".json")
		if err := os.WriteFile(lf, []byte(`{"log_level": "`+wazo+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if cfg := load(t, []string{"-c", lf}, nil); cfg.LogLevel != zl {
			t.Errorf("file log_level %s: level %q, want %q", wazo, cfg.LogLevel, zl)
		}
	}
	// -f/--foreground changes nothing: gatehouse always runs in the foreground.
	for _, alias := range []string{"-f", "--foreground"} {
		same(t, []string{"-c", file, alias, "--listen", "127.0.0.1:4444"}, []string{"--config", file, "--listen", "127.0.0.1:4444"}, nil)
	}
	// All of them at once, as an xivo-auth service script passes them.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	cfg, f, err := loadConfigFlags([]string{"-c", file, "-u", me.Username, "-d", "-f", "-l", "warning"}, &bytes.Buffer{}, env(nil))
	if err != nil || cfg.LogLevel != "warn" || cfg.InstanceName != "site-x" || f.user != me.Username || !f.foreground {
		t.Errorf("combined xivo-auth flags: %v, level %q, name %q, user %q, foreground %v", err, cfg.LogLevel, cfg.InstanceName, f.user, f.foreground)
	}
}

// TestUnknownLogLevelRejected checks that a level outside the accepted names is a usage error
// naming the accepted ones, for serve and check-config, whatever its source.
func TestUnknownLogLevelRejected(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "-l", "verbose"},
		{"check-config", "--log-level", "notice"},
		{"-l", "fatal"}, // zerolog has it, xivo-auth does not: refused on the command line
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, nil, &out, &errOut, env(nil))
		if code != 2 || !strings.Contains(errOut.String(), "unknown log level") || !strings.Contains(errOut.String(), "critical") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"check-config"}, nil, &out, &errOut, env(map[string]string{"GATEHOUSE_LOG_LEVEL": "loud"})); code != 1 || !strings.Contains(errOut.String(), `log level "loud"`) {
		t.Errorf("GATEHOUSE_LOG_LEVEL=loud: check-config exit %d, stderr %q", code, errOut.String())
	}
}

// TestUserFlagCurrentUserAccepted checks that -u naming the user gatehouse already runs as is
// accepted (nothing to switch) by serve and check-config, and that an unknown user is refused.
func TestUserFlagCurrentUserAccepted(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{me.Username, me.Uid} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"check-config", "-u", u}, nil, &out, &errOut, env(nil)); code != 0 {
			t.Errorf("check-config -u %s: exit %d: %s", u, code, errOut.String())
		}
		url, stderr, stop := startServe(t, []string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "-u", u, "-f"}, nil)
		if code, _ := getHealth(t, url); code != http.StatusOK {
			t.Errorf("serve -u %s: healthz %d", u, code)
		}
		if code := stop(); code != 0 {
			t.Errorf("serve -u %s: exit %d: %s", u, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "privileges dropped") {
			t.Errorf("serve -u %s (the current user) claims to have dropped privileges", u)
		}
	}
	for _, args := range [][]string{{"serve", "-u", "no-such-user-gh"}, {"check-config", "--user", "no-such-user-gh"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, nil, &out, &errOut, env(nil)); code != 1 || !strings.Contains(errOut.String(), "no-such-user-gh") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	// Offline commands do not switch users: they say how to run them instead.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"backup", filepath.Join(t.TempDir(), "b.db"), "-u", me.Username}, nil, &out, &errOut, env(nil)); code != 2 || !strings.Contains(errOut.String(), "sudo -u") {
		t.Errorf("backup -u: exit %d, stderr %q", code, errOut.String())
	}
}

// TestUserFlagSwitchesUsers runs the real binary: started by root with -u nobody it binds its
// listeners, then serves as nobody (checked in /proc); a data directory nobody cannot write is
// refused with a message naming the fix; started as nobody, -u another user is refused.
func TestUserFlagSwitchesUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gatehouse binary; skipped with -short")
	}
	if os.Getuid() != 0 {
		t.Skip("switching users needs root (the CI runs the tests as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the nobody account is needed: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	bin := buildGatehouse(t)
	// t.TempDir()s live in a 0700 directory: open the way down to the binary and the data.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base, filepath.Dir(bin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("root drops to nobody", func(t *testing.T) {
		data := filepath.Join(base, "data-nobody")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(data, "gatehouse.sock")
		p := spawnGatehouse(t, bin, nil, "serve", "--data", data, "--listen", "127.0.0.1:0", "--unix", sock, "-u", "nobody", "-f", "-l", "info")
		if code, health := getHealth(t, p.url); code != http.StatusOK || health["status"] != "ok" {
			t.Fatalf("healthz as nobody: %d %v\n%s", code, health, p.stderr.String())
		}
		status, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		ids := func(field string) string {
			m := regexp.MustCompile(`(?m)^` + field + `:\s*(.*)$`).FindSubmatch(status)
			if m == nil {
				t.Fatalf("no %s line in /proc status:\n%s", field, status)
			}
			return strings.Join(strings.Fields(string(m[1])), " ")
		}
		wantUID := strings.Repeat(nobody.Uid+" ", 4)
		wantGID := strings.Repeat(nobody.Gid+" ", 4)
		if got := ids("Uid"); got+" " != wantUID {
			t.Errorf("Uid (real, effective, saved, fs) = %q, want all %s", got, nobody.Uid)
		}
		if got := ids("Gid"); got+" " != wantGID {
			t.Errorf("Gid (real, effective, saved, fs) = %q, want all %s", got, nobody.Gid)
		}
		if got := ids("Groups"); strings.Contains(" "+got+" ", " 0 ") {
			t.Errorf("supplementary groups %q still hold root's", got)
		}
		// What it created, it created as nobody; the socket was handed over.
		for _, f := range []string{sock, filepath.Join(data, "gatehouse.db")} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
				t.Errorf("%s owned by uid %d, want nobody (%d)", f, st.Uid, uid)
			}
		}
		if !strings.Contains(p.stderr.String(), `"privileges dropped"`) {
			t.Errorf("no privileges dropped line in the log:\n%s", p.stderr.String())
		}
		if code := p.stop(t, 20*time.Second); code != 0 {
			t.Errorf("exit %d on SIGTERM:\n%s", code, tail(p.stderr.String(), 20))
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("unix socket left behind after shutdown: %v", err)
		}
	})

	t.Run("data directory nobody cannot write", func(t *testing.T) {
		data := filepath.Join(base, "data-root")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		p := spawnGatehouse(t, bin, nil, "serve", "--data", data, "--listen", "127.0.0.1:0", "-u", "nobody")
		p.wait(t, 20*time.Second)
		out := p.stderr.String()
		if p.exitCode != 1 || !strings.Contains(out, "data directory "+data+" is not readable and writable by the user") ||
			!strings.Contains(out, "chown -R nobody "+data) {
			t.Errorf("exit %d, output:\n%s", p.exitCode, out)
		}
		if _, err := os.Stat(filepath.Join(data, "gatehouse.db")); !os.IsNotExist(err) {
			t.Errorf("the database was created although the switch failed: %v", err)
		}
	})

	t.Run("non-root cannot switch", func(t *testing.T) {
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		data := filepath.Join(base, "data-refused")
		for _, args := range [][]string{
			{"serve", "--data", data, "--listen", "127.0.0.1:0", "-u", "root"},
			{"check-config", "--user", "daemon"},
		} {
			p := spawnGatehouse(t, bin, cred, args...)
			p.wait(t, 20*time.Second)
			out := p.stderr.String()
			if p.exitCode != 1 || !strings.Contains(out, "only root can switch users") || !strings.Contains(out, "User=") {
				t.Errorf("%q as nobody: exit %d, output:\n%s", args, p.exitCode, out)
			}
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("the refused serve touched its data directory: %v", err)
		}
		// Naming itself is fine.
		p := spawnGatehouse(t, bin, cred, "check-config", "-u", "nobody")
		p.wait(t, 20*time.Second)
		if p.exitCode != 0 {
			t.Errorf("check-config -u nobody as nobody: exit %d\n%s", p.exitCode, p.stderr.String())
		}
	})
}

// spawnGatehouse starts the binary with args (as cred when not nil) and, for serve, waits for
// its ready line unless it exits first; other commands are left to run (use p.wait).
func spawnGatehouse(t *testing.T, bin string, cred *syscall.Credential, args ...string) *process {
	t.Helper()
	p := &process{stderr: new(coretest.LogBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = "/"
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "GATEHOUSE_ADMIN_PASSWORD="+binPassword)
	if cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitCode = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	if args[0] != "serve" {
		return p
	}
	urlRE := regexp.MustCompile(`"url":"(http[^"]+)"`)
	for deadline := time.Now().Add(30 * time.Second); p.url == ""; {
		if m := urlRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = m[1]
			break
		}
		select {
		case <-p.done:
			return p // exited before it was ready: the caller checks the exit code
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse not ready within 30s:\n%s", p.stderr.String())
		}
	}
	return p
}
