package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain lets the test binary act as the bench's child servers: the bench re-executes
// os.Executable() with a hidden subcommand, which is this binary under go test.
func TestMain(m *testing.M) {
	if code, ok := runChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole tool in -quick -json mode against real child servers and checks
// that everything was measured. Timing targets are not asserted: machines are noisy.
func TestQuick(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"-quick", "-json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	t.Logf("report:\n%s", stderr.String())

	var rep report
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Fatalf("stdout has more than one JSON value")
	}

	want := map[string]bool{}
	for _, sc := range scenarios {
		for _, shape := range []string{"throughput", "latency"} {
			want[sc.name+"/"+shape] = true
		}
	}
	for _, r := range rep.Runs {
		key := r.Scenario + "/" + r.Shape.Name
		delete(want, key)
		if r.Requests <= 0 || r.ReqPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s: requests %d, %.0f req/s, p50 %v, p99 %v", key, r.Requests, r.ReqPerSec, r.P50, r.P99)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors (statuses %v %v)", key, r.Errors, r.Statuses, r.StatusText)
		}
	}
	for key := range want {
		t.Errorf("%s: not run", key)
	}
	if len(rep.Startup) != 3 {
		t.Errorf("startup: %d results, want 3", len(rep.Startup))
	}
	for _, s := range rep.Startup {
		if s.StartToHealthy <= 0 || s.IdleRSS <= 0 {
			t.Errorf("startup of %s: start %v, RSS %d", s.Server, s.StartToHealthy, s.IdleRSS)
		}
	}
	// Two load targets per gatehouse scenario, RSS and start for both gatehouse starts.
	if n := len(rep.Targets); n != 2*(len(scenarios)-1)+4 {
		t.Errorf("%d targets evaluated:\n%+v", n, rep.Targets)
	}
	human := stderr.String()
	for _, label := range []string{"startup:", "results", "targets", "conns×inflight", "vs baseline"} {
		if !strings.Contains(human, label) {
			t.Errorf("the human-readable report lacks %q", label)
		}
	}
	if !strings.Contains(human, "PASS") && !strings.Contains(human, "MISS") {
		t.Error("the human-readable report has no PASS/MISS verdicts")
	}
}

// TestFlags checks the flag handling that does not need servers.
func TestFlags(t *testing.T) {
	var out bytes.Buffer
	o, err := parseFlags([]string{"-quick"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 500*time.Millisecond || o.rounds != 1 || len(o.shapes) != 2 ||
		o.shapes[0].Conns != 4 || o.shapes[0].Inflight != 2 || o.shapes[1].Conns != 1 || o.shapes[1].Inflight != 1 {
		t.Errorf("-quick: %+v", o)
	}
	o, err = parseFlags([]string{"-duration", "2s", "-rounds", "3", "-scenarios", "whoami,startup"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 2*time.Second || o.rounds != 3 || !o.selected("whoami") || !o.selected("startup") || o.selected("get_leosac_version") {
		t.Errorf("flags: %+v", o)
	}
	for _, args := range [][]string{{"-scenarios", "nope"}, {"-shapes", "nope"}, {"-rounds", "0"}, {"-duration", "0s"}, {"extra"}} {
		if _, err := parseFlags(args, &out); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if code := run(context.Background(), []string{"-scenarios", "nope"}, &out, &out); code != 2 {
		t.Errorf("bad flag: exit code %d, want 2", code)
	}
}

// TestClientIDs checks that request ids round-trip to their sequence numbers.
func TestClientIDs(t *testing.T) {
	c := &client{}
	copy(c.prefix[:], "0000002a-0000-4000-8000-")
	for range 300 {
		id, seq := c.next()
		got, ok := c.seqOf(id)
		if !ok || got != seq {
			t.Fatalf("seqOf(%s) = %d, %v; want %d", id, got, ok, seq)
		}
	}
	if _, ok := c.seqOf([]byte("0000002b-0000-4000-8000-000000000001")); ok {
		t.Error("an id of another connection matched")
	}
}

// TestParseHead checks the fast reply parser and that it declines what it cannot handle.
func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		name, frame string
		id          string
		code        int
		ok          bool
	}{
		{"ok", `{"uuid":"abc","type":"whoami","status_code":0,"status_string":"","content":{}}`, "abc", 0, true},
		{"rate limited", `{"uuid":"abc","type":"x","status_code":3,"status_string":"slow down","content":null}`, "abc", 3, true},
		{"last field", `{"uuid":"abc","status_code":12}`, "abc", 12, true},
		{"other order", `{"type":"x","uuid":"abc","status_code":0}`, "", 0, false},
		{"escaped uuid", `{"uuid":"a\\"b","status_code":0}`, "", 0, false},
		{"no code", `{"uuid":"abc","type":"x"}`, "", 0, false},
		{"negative code", `{"uuid":"abc","status_code":-1}`, "", 0, false},
		{"cut", `{"uuid":"abc","status_code":1`, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, code, ok := parseHead([]byte(tc.frame))
			if ok != tc.ok || ok && (string(id) != tc.id || code != tc.code) {
				t.Errorf("parseHead(%s) = %q, %d, %v; want %q, %d, %v", tc.frame, id, code, ok, tc.id, tc.code, tc.ok)
			}
		})
	}
}
