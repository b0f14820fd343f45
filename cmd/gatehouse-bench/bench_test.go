package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"gatehouse/db"
	"gatehouse/modules/auth/password"
)

// TestMain lets the test binary act as the bench's child servers: the bench re-executes
// os.Executable() with a hidden subcommand, which is this binary under go test.
func TestMain(m *testing.M) {
	if code, ok := runChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole tool in -quick -json mode against real child servers, the small
// seeded site included, and checks that everything was measured. Timing targets are not
// asserted: machines are noisy.
func TestQuick(t *testing.T) {
	defer goleak.VerifyNone(t)
	// A bound for a machine under heavy load (the quick run takes 1 to 2 minutes on an idle
	// 2-core machine, seeding included); go test's own 10-minute limit stays above it.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
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
	nTargets := 0
	for _, sc := range scenarios {
		for _, shape := range []string{"throughput", "latency", "dashboard"} {
			if sc.server != baselineServer && sc.runsAt(shape) {
				want[sc.name+"/"+shape] = true
				want[sc.baselineName()+"/"+shape] = true
			}
		}
		nTargets += len(sc.targets)
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
	// The token check is compared with the bare HTTP handler, the sysadm round trip with
	// whoami of the same run (and with the echo baseline).
	compared := map[string]bool{}
	for _, a := range rep.Results {
		switch a.Scenario {
		case "token.head":
			if a.Baseline != "baseline.http" || a.ThroughputRatio <= 0 || a.Shape.Inflight != 1 {
				t.Errorf("token.head: baseline %q, ratio %v, shape %v", a.Baseline, a.ThroughputRatio, a.Shape)
			}
			compared[a.Scenario] = true
		case "sysadm.query":
			if a.Baseline != "baseline" || a.ThroughputRatio <= 0 || a.Compare == nil || a.Compare.Scenario != "whoami" ||
				a.Compare.ThroughputRatio <= 0 || a.Compare.P99Ratio <= 0 {
				t.Errorf("sysadm.query at %s: baseline %q, ratio %v, compare %+v", a.Shape.Name, a.Baseline, a.ThroughputRatio, a.Compare)
			}
			compared[a.Scenario+"/"+a.Shape.Name] = true
		}
	}
	if len(compared) != 3 {
		t.Errorf("compared results: %v, want token.head and sysadm.query at throughput and latency", compared)
	}
	if len(rep.Startup) != 4 {
		t.Errorf("startup: %d results, want 4", len(rep.Startup))
	}
	seeded := 0
	for _, s := range rep.Startup {
		if s.StartToHealthy <= 0 || s.IdleRSS <= 0 {
			t.Errorf("startup of %s: start %v, RSS %d", s.Server, s.StartToHealthy, s.IdleRSS)
		}
		if s.Seeded {
			seeded++
		}
	}
	if seeded != 1 {
		t.Errorf("%d starts on the seeded site, want 1", seeded)
	}
	if rep.Seed == nil || rep.Seed.Size != quickSite || rep.Seed.Total <= 0 || len(rep.Seed.Parts) == 0 {
		t.Errorf("seed: %+v, want the quick site seeded", rep.Seed)
	}
	// The access path and the fan-out, each on the baseline and on gatehouse: events were
	// produced and every one of them was delivered.
	access := map[string]bool{}
	for _, a := range rep.Access {
		access[a.Name+"/"+string(a.Server)] = true
		if a.Events <= 0 || a.Missing != 0 || a.Delivered != a.Expected || a.Errors != 0 || a.P50 <= 0 || a.P99 < a.P50 {
			t.Errorf("%s on %s: %+v", a.Name, a.Server, a)
		}
		if a.Name == fanoutName && (a.Subscribers != fanoutSubsQuick || a.Expected != a.Events*int64(fanoutSubsQuick)) {
			t.Errorf("fan-out on %s: %d subscribers, %d expected of %d events", a.Server, a.Subscribers, a.Expected, a.Events)
		}
	}
	for _, name := range accessNames {
		for _, srv := range []serverKind{baselineServer, gatehouseServer} {
			if !access[name+"/"+string(srv)] {
				t.Errorf("%s on %s: not run", name, srv)
			}
		}
	}
	// Every scenario target, RSS and start for both fresh gatehouse starts, the seeding, the
	// access path and the fan-out.
	if n := len(rep.Targets); n != nTargets+4+1+2 {
		t.Errorf("%d targets evaluated, want %d:\n%+v", n, nTargets+7, rep.Targets)
	}
	human := stderr.String()
	for _, label := range []string{"startup:", "seeding a site", "seeded site:", "dashboard shape:", "results", "targets",
		"conns×inflight", "vs baseline", "access:", "deliveries/s", "side by side", "vs whoami"} {
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
	if o.duration != 500*time.Millisecond || o.rounds != 1 || len(o.shapes) != 3 || !o.site || !o.access ||
		o.shapes[0].Conns != 4 || o.shapes[0].Inflight != 2 || o.shapes[1].Conns != 1 || o.shapes[1].Inflight != 1 ||
		o.shapes[2].Name != "dashboard" || o.shapes[2].Conns != 4 || o.shapes[2].Inflight != 1 || o.shapes[2].Rate != dashboardRate ||
		!o.shapes[2].Poisson {
		t.Errorf("-quick: %+v", o)
	}
	o, err = parseFlags([]string{"-site=false", "-shapes", "latency"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if o.site || len(o.shapes) != 1 || o.shapes[0].Name != "latency" {
		t.Errorf("-site=false -shapes latency: %+v", o)
	}
	o, err = parseFlags([]string{"-duration", "2s", "-rounds", "3", "-scenarios", "whoami,startup"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 2*time.Second || o.rounds != 3 || !o.selected("whoami") || !o.selected("startup") || o.selected("get_leosac_version") {
		t.Errorf("flags: %+v", o)
	}
	o, err = parseFlags([]string{"-access=false", "-scenarios", "access.path,fanout"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if o.access || !o.selected(accessPathName) || !o.selected(fanoutName) || o.selected("whoami") {
		t.Errorf("-access=false -scenarios access.path,fanout: %+v", o)
	}
	for _, args := range [][]string{{"-scenarios", "nope"}, {"-shapes", "nope"}, {"-rounds", "0"}, {"-duration", "0s"}, {"extra"},
		{"-site=false", "-scenarios", "user.read"}} {
		if _, err := parseFlags(args, &out); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if code := run(context.Background(), []string{"-scenarios", "nope"}, &out, &out); code != 2 {
		t.Errorf("bad flag: exit code %d, want 2", code)
	}
}

// TestSelectLoad checks that a scenario brings along its baseline and the scenario it is
// shown next to, and nothing else.
func TestSelectLoad(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-site=false", "-scenarios", "token.head"}, "baseline.http,token.head"},
		{[]string{"-site=false", "-scenarios", "sysadm.query"}, "baseline,whoami,sysadm.query"},
		{[]string{"-site=false", "-scenarios", "whoami,token.head"}, "baseline,whoami,baseline.http,token.head"},
		{[]string{"-site=false", "-scenarios", "token.head", "-shapes", "latency"}, ""},
		{[]string{"-site=false", "-scenarios", "baseline,startup"}, ""},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sc := range selectLoad(o) {
			names = append(names, sc.name)
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("%q: runs %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestSysadmReply checks the sysadm reply decoding: successes by the fast path or the decoder,
// error codes, and pushes that answer no request.
func TestSysadmReply(t *testing.T) {
	for _, tc := range []struct {
		name, frame string
		id          string
		code        int
	}{
		{"response", `{"namespace":"rpc","name":"response","id":"abc","args":{"rpc/query":"read"}}`, "abc", 0},
		{"other order", `{"name":"response","id":"abc","namespace":"rpc","args":{}}`, "abc", 0},
		{"escaped id", `{"namespace":"rpc","name":"response","id":"a\"b","args":{}}`, `a"b`, 0},
		{"rate limited", `{"namespace":"rpc","name":"error","id":"abc","args":{"code":429,"message":"Too Many Requests: slow down."}}`, "abc", 429},
		{"error without code", `{"namespace":"rpc","name":"error","id":"abc","args":{}}`, "abc", 500},
		{"push", `{"namespace":"events","name":"door.7.opened","id":"","args":{"seq":1}}`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, code, err := protoSysadm.decodeReply([]byte(tc.frame))
			if err != nil || string(id) != tc.id || code != tc.code {
				t.Errorf("decodeReply(%s) = %q, %d, %v; want %q, %d", tc.frame, id, code, err, tc.id, tc.code)
			}
		})
	}
	if _, _, err := protoSysadm.decodeReply([]byte("not json")); err == nil {
		t.Error("a non-JSON frame was accepted")
	}
	if got := protoSysadm.statusText([]byte(`{"namespace":"rpc","name":"error","id":"x","args":{"code":403,"message":"Forbidden"}}`)); got != "Forbidden" {
		t.Errorf("statusText = %q", got)
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

// testSite is small: under the race detector the pure-Go SQLite inserts some 20 times slower.
var testSite = siteSize{Users: 300, Credentials: 600, Doors: 20, Groups: 5, MembersPerGroup: 30,
	Schedules: 10, MappingsPerSchedule: 4, Events: 3_000}

// TestSeed seeds a small site and checks what gatehouse will find: the row counts, a schema
// identical to the migrations' (the seeder drops and recreates indexes), foreign keys and
// integrity intact, unique 26-bit card numbers, event counts that match the log, and an admin
// whose password is the bench password.
func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	res, err := seedSite(ctx, dir, testSite, &out)
	if err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	if res.Total <= 0 || res.DBBytes <= 0 || res.part("users") <= 0 || res.part("events") <= 0 {
		t.Errorf("seed result %+v", res)
	}
	if _, err := seedSite(ctx, dir, testSite, io.Discard); err == nil {
		t.Error("seeding a directory that has users again: no error")
	}

	d, err := db.Open(ctx, dir, zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fresh, err := db.Open(ctx, t.TempDir(), zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	schema := func(d *db.DB) string {
		var rows []string
		if err := d.Read.Raw(`SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
			WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name`).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		return strings.Join(rows, "\n")
	}
	if got, want := schema(d), schema(fresh); got != want {
		t.Errorf("schema of the seeded database differs from a fresh one:\n%s\n---\n%s", got, want)
	}

	s := testSite
	mappings := s.Schedules * s.MappingsPerSchedule
	for _, c := range []struct {
		query string
		want  int64
	}{
		{`SELECT count(*) FROM users`, int64(s.Users) + 1},
		{`SELECT count(*) FROM users WHERE username GLOB 'user[0-9][0-9][0-9][0-9][0-9][0-9]' AND rank = 0
			AND password_hash = '' AND validity_enabled = 1 AND version = 1`, int64(s.Users)},
		{`SELECT count(*) FROM credentials WHERE type = 'rfid-card' AND nb_bits = 26 AND alias_fold = lower(alias)
			AND owner_id IS NOT NULL AND card_id GLOB '0[0-3]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]'`, int64(s.Credentials)},
		{`SELECT count(DISTINCT card_id) FROM credentials`, int64(s.Credentials)},
		{`SELECT max(n) FROM (SELECT count(*) AS n FROM credentials GROUP BY owner_id)`, 2},
		{`SELECT count(*) FROM doors d JOIN access_points a ON a.id = d.access_point_id WHERE d.alias_fold = lower(d.alias)`, int64(s.Doors)},
		{`SELECT count(*) FROM groups`, int64(s.Groups)},
		{`SELECT count(*) FROM memberships`, int64(s.Groups * s.MembersPerGroup)},
		{`SELECT count(*) FROM schedules`, int64(s.Schedules)},
		{`SELECT count(*) FROM schedule_mappings`, int64(mappings)},
		{`SELECT count(*) FROM mapping_users`, int64(mappings * usersPerMapping)},
		{`SELECT count(*) FROM mapping_groups`, int64(mappings * groupsPerMapping)},
		{`SELECT count(*) FROM mapping_doors`, int64(mappings * doorsPerMapping)},
		{`SELECT count(*) FROM events`, int64(s.Events)},
		{`SELECT sum(n) FROM event_counts`, int64(s.Events)},
		{`SELECT count(*) FROM event_counts c WHERE n = (SELECT count(*) FROM events e WHERE e.kind = c.kind)`, 4},
		{`SELECT count(*) FROM events a JOIN events b ON b.seq = a.seq + 1 WHERE b.time < a.time`, 0},
		{`SELECT count(*) FROM events WHERE kind = 'audit-auth-event' AND (user_id IS NULL OR door_id IS NULL
			OR event_mask NOT IN (1 << 30, 1 << 31) OR topic NOT IN ('access.granted', 'access.denied'))`, 0},
		{`SELECT count(*) FROM events WHERE kind = 'audit-door-event' AND (door_id IS NULL OR event_mask <> 1 << 32
			OR topic <> 'door.' || door_id || '.opened')`, 0},
	} {
		var n int64
		if err := d.Read.Raw(c.query).Scan(&n).Error; err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if n != c.want {
			t.Errorf("%s = %d, want %d", c.query, n, c.want)
		}
	}
	var check string
	if err := d.Read.Raw(`PRAGMA integrity_check`).Scan(&check).Error; err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
	var violations []map[string]any
	if err := d.Read.Raw(`PRAGMA foreign_key_check`).Scan(&violations).Error; err != nil || len(violations) > 0 {
		t.Errorf("foreign_key_check = %v, %v", violations, err)
	}
	var admin struct {
		ID           int64
		Username     string
		PasswordHash string
		Rank         int
	}
	if err := d.Read.Raw(`SELECT id, username, password_hash, rank FROM users WHERE id = ?`, adminID).Scan(&admin).Error; err != nil {
		t.Fatal(err)
	}
	if admin.Username != adminUser || admin.Rank != 4 {
		t.Errorf("admin row %+v", admin)
	}
	if err := password.NewHasher(password.DefaultParams, 1).Verify(ctx, admin.PasswordHash, benchPassword); err != nil {
		t.Errorf("the admin's hash does not verify the bench password: %v", err)
	}
	var created time.Time
	if err := d.Read.Raw(`SELECT created_at FROM users WHERE id = 2`).Scan(&created).Error; err != nil ||
		time.Since(created) < 0 || time.Since(created) > time.Hour {
		t.Errorf("created_at of a seeded user reads back as %v, %v", created, err)
	}
}

// TestCardID checks that card numbers are distinct 26-bit values written as four hex bytes.
func TestCardID(t *testing.T) {
	seen := map[string]bool{}
	for c := 1; c <= fullSite.Credentials; c++ {
		id := cardID(c)
		if len(id) != 11 || id[2] != ':' || id[5] != ':' || id[8] != ':' || id[0] != '0' || id[1] > '3' {
			t.Fatalf("cardID(%d) = %q", c, id)
		}
		if seen[id] {
			t.Fatalf("cardID(%d) = %q repeats", c, id)
		}
		seen[id] = true
	}
}

// TestInserterJSON checks the inserter's JSON encoding of awkward strings round-trips.
func TestInserterJSON(t *testing.T) {
	for _, s := range []string{"", `a"b`, `back\slash`, "tab\tnew\nline\x01", "é漢😀", `{"json":[1,"x"]}`} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil || back != s {
			t.Errorf("appendJSONString(%q) → %q, %v", s, back, err)
		}
	}
}

// TestPoissonPacing checks the schedule of a Poisson-paced connection: exponential gaps of the
// right mean, a random first one, and a next send always in the future of the last. Nothing
// here depends on how fast the machine is.
func TestPoissonPacing(t *testing.T) {
	t.Parallel()
	const rate = 200
	b := newTokenBucket(rate, true)
	defer b.timer.Stop()
	const n = 20_000
	var sum, sumSq float64
	for range n {
		g := b.gap().Seconds()
		sum += g
		sumSq += g * g
	}
	mean := sum / n
	cv := math.Sqrt(sumSq/n-mean*mean) / mean // 1 for an exponential distribution
	if mean < 0.9/rate || mean > 1.1/rate || cv < 0.9 || cv > 1.1 {
		t.Errorf("gaps: mean %v (want %v), coefficient of variation %.2f (want 1)", mean, 1.0/rate, cv)
	}
	firsts := map[time.Duration]bool{}
	for range 10 {
		b := newTokenBucket(rate, true)
		firsts[b.next.Sub(b.last)] = true
		b.timer.Stop()
	}
	if len(firsts) < 9 {
		t.Errorf("the first sends are not at random moments: %v", firsts)
	}
	ctx := context.Background()
	for range 5 {
		before := time.Now()
		if err := b.take(ctx); err != nil {
			t.Fatal(err)
		}
		if !b.next.After(before) {
			t.Errorf("the next send is due at %v, before this one was taken at %v", b.next, before)
		}
	}
	var nilBucket *tokenBucket
	if err := nilBucket.take(ctx); err != nil || newTokenBucket(0, true) != nil {
		t.Error("rate 0 should not pace")
	}
}

// TestEventHead checks the push parser on both servers' event frames and that it declines
// other frames.
func TestEventHead(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, frame := range []string{
		`{"uuid":"x","type":"event","status_code":0,"status_string":"","content":{"seq":42,"epoch":"e","time":"2026-01-02T03:04:05.123456789Z","topic":"access.granted","data":{"seq":7}}}`,
		`{"uuid":"","type":"event","status_code":0,"status_string":"","content":{"seq":42,"time":"2026-01-02T03:04:05.123456789Z"}}`,
	} {
		seq, got, ok := eventHead([]byte(frame))
		if !ok || seq != 42 || !got.Equal(at) {
			t.Errorf("eventHead(%s) = %d, %v, %v", frame, seq, got, ok)
		}
	}
	if _, _, ok := eventHead([]byte(`{"uuid":"x","type":"reader.simulate","status_code":0,"content":{"seq":3}}`)); ok {
		t.Error("a reply was taken for an event")
	}
}
