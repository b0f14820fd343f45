package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/core/coretest"
)

// TestLogsServeOperations: console lines carry no colour codes when stderr is not a terminal;
// timestamps have milliseconds in both formats.
func TestLogsServeOperations(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var stderr coretest.LogBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--log-format", "console"},
			nil, io.Discard, &stderr, env(map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword}))
	}()
	coretestEventually(t, 20*time.Second, func() error {
		if !strings.Contains(stderr.String(), "gatehouse ready") {
			return errors.New("not ready")
		}
		return nil
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, stderr.String())
	}
	out := stderr.String()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in console logs written to a non-terminal:\n%q", out)
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z .*gatehouse ready`).MatchString(out) {
		t.Errorf("console lines without a millisecond UTC timestamp:\n%s", out)
	}
	_, jsonErr, stop := startServe(t, []string{"--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword})
	stop()
	if !regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`).MatchString(jsonErr.String()) {
		t.Errorf("JSON lines without a millisecond UTC timestamp:\n%s", jsonErr.String())
	}
}

// TestDurationFieldsNameTheirUnit scans the non-test code for zerolog duration fields: each
// name must end in its unit (zerolog.DurationFieldUnit is milliseconds, set in main).
func TestDurationFieldsNameTheirUnit(t *testing.T) {
	durRE := regexp.MustCompile(`\.Dur\("([^"]+)"`)
	n := 0
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range durRE.FindAllStringSubmatch(string(b), -1) {
			n++
			if !strings.HasSuffix(m[1], "_ms") {
				t.Errorf("%s: duration field %q does not name its unit (want a _ms suffix)", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("no duration field found: the scan is broken")
	}
}

// TestHelpAndVersionFlags: -h lists the subcommands, --version prints the version.
func TestHelpAndVersionFlags(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		code, out, errOut := runCmd([]string{arg}, "")
		if code != 0 {
			t.Errorf("%s: exit %d: %s", arg, code, errOut)
		}
		for _, sub := range []string{"serve", "version", "check-config", "user passwd", "backup", "restore"} {
			if !strings.Contains(out, sub) {
				t.Errorf("%s does not list %q:\n%s", arg, sub, out)
			}
		}
	}
	for _, arg := range []string{"--version", "-version", "-v", "version"} {
		code, out, errOut := runCmd([]string{arg}, "")
		if code != 0 || !strings.HasPrefix(out, "gatehouse 0.") {
			t.Errorf("%s: exit %d: %q %s", arg, code, out, errOut)
		}
	}
}
