package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/webhook"
	"gatehouse/modules/wsapi/wstest"
)

// TestDeliversMatchingEventsWithBodyHeadersAndSignature: a new target starts at the end of
// the log (no history), then gets exactly the events matching its topics, in seq order, each
// body being the event as pushed to websocket clients, with the documented headers, the
// configured ones and a valid HMAC signature.
func TestDeliversMatchingEventsWithBodyHeadersAndSignature(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := startServer(t, dir, "")
	history := []int64{
		old.appendEvent("access.granted", map[string]any{"history": true}),
		old.appendEvent("door.1.opened", map[string]any{"history": true}),
	}
	if err := old.stop(); err != nil {
		t.Fatal(err)
	}

	rc := newReceiver(t)
	srv := startServer(t, dir, webhookConfig(t, targetJSON("siem", rc.URL+"/hook?token=abc",
		[]string{"access.*", "door.>"},
		map[string]any{"headers": map[string]string{"Authorization": "Bearer xyz", "X-Custom": "1"}, "secret": "s3cret"})))
	var want []int64
	for _, ev := range []struct {
		topic string
		match bool
	}{
		{"access.granted", true}, {"user.created", false}, {"door.1.opened", true},
		{"access.granted.extra", false}, {"door", false}, {"access.denied", true}, {"door.2.forced", true},
	} {
		seq := srv.appendEvent(ev.topic, map[string]any{"topic": ev.topic})
		if ev.match {
			want = append(want, seq)
		}
	}
	got := rc.waitEvents(t, len(want), 10*time.Second)
	if !slices.Equal(seqs(got), want) {
		t.Fatalf("delivered seqs %v, want %v (history %v must not be sent)", seqs(got), want, history)
	}
	epoch := srv.eventLog().Epoch()
	for i, r := range rc.got() {
		seq := want[i]
		if body := srv.pushJSON(seq); string(r.body) != string(body) {
			t.Errorf("seq %d: body %s, want %s", seq, r.body, body)
		}
		var e pushed
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Epoch != epoch || !strings.HasSuffix(e.Time, "Z") || string(e.Data) != fmt.Sprintf(`{"topic":%q}`, e.Topic) {
			t.Errorf("seq %d: pushed %+v", seq, e)
		}
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(r.body)
		for h, v := range map[string]string{
			"Content-Type":          "application/json",
			"User-Agent":            "gatehouse/" + core.Version,
			"X-Gatehouse-Event":     e.Topic,
			"X-Gatehouse-Seq":       strconv.FormatInt(seq, 10),
			"X-Gatehouse-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
			"Authorization":         "Bearer xyz",
			"X-Custom":              "1",
		} {
			if r.header.Get(h) != v {
				t.Errorf("seq %d: header %s = %q, want %q", seq, h, r.header.Get(h), v)
			}
		}
		if r.path != "/hook?token=abc" {
			t.Errorf("path %q", r.path)
		}
	}
	// Nothing else arrives: the last matching event was the last one appended.
	if n := rc.attempts.Load(); n != int64(len(want)) {
		t.Errorf("%d requests, want %d", n, len(want))
	}
	if v := srv.metric("gatehouse_webhook_deliveries_total", "siem"); v != float64(len(want)) {
		t.Errorf("deliveries_total %v, want %d", v, len(want))
	}
	// Secrets and headers never reach the log.
	for _, l := range srv.logs.find("siem", "") {
		if s := fmt.Sprint(l); strings.Contains(s, "s3cret") || strings.Contains(s, "xyz") || strings.Contains(s, "token=abc") {
			t.Errorf("secret in log line %v", l)
		}
	}
}

// TestFailingTargetRecoversAndNothingElseWaits: while one target answers 500, a healthy target
// and a websocket subscriber get every event at once and producers are not slowed; when the
// target recovers it gets every event exactly once, in order — including those it had to read
// back from the log because its small in-memory queue overflowed. Each state change is logged
// once, not each retry.
func TestFailingTargetRecoversAndNothingElseWaits(t *testing.T) {
	t.Parallel()
	flaky, healthy := newReceiver(t), newReceiver(t)
	flaky.failWith(http.StatusInternalServerError)
	srv := startServer(t, t.TempDir(), webhookConfig(t,
		targetJSON("flaky", flaky.URL, []string{"access.>"}, map[string]any{"queue": 64}),
		targetJSON("healthy", healthy.URL, []string{"access.>"}, nil)))

	ws := wstest.Dial(t, srv.WSURL)
	ws.Login("admin", coretest.AdminPassword)
	if r := ws.Call("events.subscribe", map[string]any{"topics": []string{"access.>"}}); r.StatusCode != 0 {
		t.Fatalf("events.subscribe: %d %s", r.StatusCode, r.StatusString)
	}

	const n = 300
	var want []int64
	start := time.Now()
	for i := range n {
		want = append(want, srv.appendEvent("access.granted", map[string]any{"i": i}))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("appending %d events took %v", n, d)
	}
	if got := healthy.waitEvents(t, n, 15*time.Second); !slices.Equal(seqs(got), want) {
		t.Fatalf("healthy target got %v", seqs(got))
	}
	var wsSeqs []int64
	for range n {
		var e pushed
		ws.ExpectPush("event", 10*time.Second).Decode(t, &e)
		wsSeqs = append(wsSeqs, e.Seq)
	}
	if !slices.Equal(wsSeqs, want) {
		t.Fatalf("websocket subscriber got %v", wsSeqs)
	}
	// All of that happened while the flaky target was failing.
	coretest.Eventually(t, 5*time.Second, func() error {
		if a := flaky.attempts.Load(); a < 3 {
			return fmt.Errorf("%d attempts", a)
		}
		return nil
	})
	if got := len(flaky.got()); got != 0 {
		t.Fatalf("failing target accepted %d events", got)
	}
	if v := srv.metric("gatehouse_webhook_up", "flaky"); v != 0 {
		t.Errorf("up{flaky} = %v while failing", v)
	}

	flaky.ok()
	got := flaky.waitEvents(t, n, 15*time.Second)
	if !slices.Equal(seqs(got), want) {
		t.Fatalf("recovered target got %d events %v, want each of %v once in order", len(got), seqs(got), want)
	}
	for i, e := range got {
		if string(e.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("event %d data %s", i, e.Data)
		}
	}

	if l := srv.logs.find("flaky", "webhook target down"); len(l) != 1 || l[0]["level"] != "warn" ||
		!strings.Contains(fmt.Sprint(l[0]["error"]), "500") {
		t.Errorf("down logged %d times: %v", len(l), l)
	}
	if l := srv.logs.find("flaky", "webhook target recovered"); len(l) != 1 || l[0]["level"] != "info" {
		t.Errorf("recovery logged %d times: %v", len(l), l)
	}
	coretest.Eventually(t, 5*time.Second, func() error {
		l := srv.logs.find("flaky", "caught up")
		if len(l) != 1 {
			return fmt.Errorf("caught up logged %d times", len(l))
		}
		if l[0]["events"] != float64(n) {
			return fmt.Errorf("caught up %v events, want %d", l[0]["events"], n)
		}
		return nil
	})
	if v := srv.metric("gatehouse_webhook_deliveries_total", "flaky"); v != n {
		t.Errorf("deliveries_total{flaky} = %v", v)
	}
	if v := srv.metric("gatehouse_webhook_retries_total", "flaky"); v < 3 {
		t.Errorf("retries_total{flaky} = %v", v)
	}
	if v := srv.metric("gatehouse_webhook_failures_total", "flaky"); v != 0 {
		t.Errorf("failures_total{flaky} = %v", v)
	}
	coretest.Eventually(t, 5*time.Second, func() error {
		if v := srv.metric("gatehouse_webhook_lag_events", "flaky"); v != 0 {
			return fmt.Errorf("lag %v", v)
		}
		if v := srv.metric("gatehouse_webhook_up", "flaky"); v != 1 {
			return fmt.Errorf("up %v", v)
		}
		return nil
	})
	if l := srv.logs.find("healthy", "down"); len(l) != 0 {
		t.Errorf("healthy target logged %v", l)
	}
}

// TestHangingTargetStallsNothingAndShutdownIsPrompt is not parallel: it checks that no
// goroutine survives the server. A target that never answers is bounded by its timeout and
// reported; the other target and the producer do not wait; stopping the server cancels the
// hanging request at once.
func TestHangingTargetStallsNothingAndShutdownIsPrompt(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	release := make(chan struct{})
	var hangAttempts atomic.Int64
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangAttempts.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // from then on, r.Context() ends when the client goes away
		select {                           // never answers; returns when the client goes away or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) }) // before hang.Close, even when the test fails
	ok := newReceiver(t)
	srv := startServer(t, t.TempDir(), webhookConfig(t,
		targetJSON("hang", hang.URL, []string{">"}, map[string]any{"timeout": "100ms"}),
		targetJSON("ok", ok.URL, []string{"access.*"}, nil)))

	const n = 20
	start := time.Now()
	var want []int64
	for i := range n {
		want = append(want, srv.appendEvent("access.granted", map[string]any{"i": i}))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("appending %d events took %v", n, d)
	}
	if got := ok.waitEvents(t, n, 10*time.Second); !slices.Equal(seqs(got), want) {
		t.Fatalf("ok target got %v, want %v", seqs(got), want)
	}
	coretest.Eventually(t, 10*time.Second, func() error {
		l := srv.logs.find("hang", "webhook target down")
		if len(l) != 1 {
			return fmt.Errorf("down logged %d times", len(l))
		}
		if e := fmt.Sprint(l[0]["error"]); e != "no answer within 100ms" {
			return fmt.Errorf("down error %q", e)
		}
		if hangAttempts.Load() < 2 {
			return fmt.Errorf("%d attempts", hangAttempts.Load())
		}
		return nil
	})

	start = time.Now()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a hanging target", d)
	}
	releaseOnce.Do(func() { close(release) })
	hang.Close()
	ok.Close()
}

// TestRestartResumesFromSavedCursor: a target down when the server stops, events appended
// while the webhook module does not run, then a restart with the target back: it receives
// everything it missed, once, in order, and nothing it had already accepted.
func TestRestartResumesFromSavedCursor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rc := newReceiver(t)
	cfg := webhookConfig(t, targetJSON("t1", rc.URL, []string{"access.*"}, nil))
	var want []int64
	add := func(s *server) { want = append(want, s.appendEvent("access.granted", map[string]any{"i": len(want)})) }

	s1 := startServer(t, dir, cfg)
	for range 3 {
		add(s1)
	}
	rc.waitEvents(t, 3, 10*time.Second)
	rc.failWith(http.StatusServiceUnavailable)
	add(s1)
	add(s1)
	coretest.Eventually(t, 10*time.Second, func() error {
		if a := rc.attempts.Load(); a < 5 {
			return fmt.Errorf("%d attempts", a)
		}
		return nil
	})
	if err := s1.stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, dir, "") // the webhook module is not running
	add(s2)
	add(s2)
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}

	rc.ok()
	s3 := startServer(t, dir, cfg)
	add(s3)
	got := rc.waitEvents(t, len(want), 10*time.Second)
	if !slices.Equal(seqs(got), want) {
		t.Fatalf("got %v, want each of %v once in order", seqs(got), want)
	}
	coretest.Eventually(t, 5*time.Second, func() error {
		var v string
		if err := s3.DB().Read.Raw(`SELECT value FROM meta WHERE key = 'webhook.t1.cursor'`).Scan(&v).Error; err != nil {
			return err
		}
		if v != strconv.FormatInt(want[len(want)-1], 10) {
			return fmt.Errorf("saved cursor %q, want %d", v, want[len(want)-1])
		}
		return nil
	})
}

// TestPermanentRefusalSkipsEvent: a 400 skips that event (once, not retried) and delivery goes
// on; a 429 is retried (honouring Retry-After).
func TestPermanentRefusalSkipsEvent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	var throttled atomic.Bool
	rc.setRespond(func(w http.ResponseWriter, r *request) int {
		var e struct {
			Data struct{ Kind string } `json:"data"`
		}
		_ = json.Unmarshal(r.body, &e)
		switch e.Data.Kind {
		case "reject":
			return http.StatusBadRequest
		case "throttle":
			if throttled.CompareAndSwap(false, true) {
				w.Header().Set("Retry-After", "0")
				return http.StatusTooManyRequests
			}
		}
		return http.StatusOK
	})
	srv := startServer(t, t.TempDir(), webhookConfig(t, targetJSON("strict", rc.URL, []string{"access.*"}, nil)))
	a := srv.appendEvent("access.granted", map[string]any{"kind": "ok"})
	rejected := srv.appendEvent("access.granted", map[string]any{"kind": "reject"})
	b := srv.appendEvent("access.granted", map[string]any{"kind": "throttle"})
	c := srv.appendEvent("access.granted", map[string]any{"kind": "ok"})
	if got := rc.waitEvents(t, 3, 10*time.Second); !slices.Equal(seqs(got), []int64{a, b, c}) {
		t.Fatalf("accepted %v, want %v", seqs(got), []int64{a, b, c})
	}
	if n := rc.attempts.Load(); n != 5 { // a, rejected once, b twice, c
		t.Errorf("%d requests, want 5", n)
	}
	l := srv.logs.find("strict", "refused")
	if len(l) != 1 || l[0]["seq"] != float64(rejected) || l[0]["status"] != float64(400) || l[0]["level"] != "warn" {
		t.Errorf("refusal log %v", l)
	}
	for name, want := range map[string]float64{
		"gatehouse_webhook_deliveries_total": 3,
		"gatehouse_webhook_failures_total":   1,
		"gatehouse_webhook_retries_total":    1,
	} {
		if v := srv.metric(name, "strict"); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// TestBatchPostsArrays: with batch > 1, the events waiting are posted together as a JSON
// array, in order, with X-Gatehouse-Batch and the last seq.
func TestBatchPostsArrays(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rc.failWith(http.StatusBadGateway)
	srv := startServer(t, t.TempDir(), webhookConfig(t, targetJSON("bulk", rc.URL, []string{"door.>"}, map[string]any{"batch": 10})))
	var want []int64
	for i := range 5 {
		want = append(want, srv.appendEvent("door.1.opened", map[string]any{"i": i}))
	}
	coretest.Eventually(t, 10*time.Second, func() error {
		if a := rc.attempts.Load(); a < 3 {
			return fmt.Errorf("%d attempts", a)
		}
		return nil
	})
	rc.ok()
	if got := rc.waitEvents(t, 5, 10*time.Second); !slices.Equal(seqs(got), want) {
		t.Fatalf("got %v, want %v", seqs(got), want)
	}
	biggest := 0
	for _, r := range rc.got() {
		var es []pushed
		if err := json.Unmarshal(r.body, &es); err != nil {
			t.Fatalf("batch body %s: %v", r.body, err)
		}
		biggest = max(biggest, len(es))
		if r.header.Get("X-Gatehouse-Batch") != strconv.Itoa(len(es)) ||
			r.header.Get("X-Gatehouse-Seq") != strconv.FormatInt(es[len(es)-1].Seq, 10) ||
			r.header.Get("X-Gatehouse-Event") != "" {
			t.Errorf("batch headers %v for %d events", r.header, len(es))
		}
	}
	if biggest < 2 {
		t.Errorf("the events waiting during the outage were not batched (largest batch %d)", biggest)
	}
}

// TestConfigValidation: every invalid setting is reported with the target it concerns, and a
// bad configuration stops the server from starting.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	valid := `{"name": "a", "url": "https://example.test/hook", "topics": ["access.*"]}`
	cases := []struct {
		name, targets, want string
	}{
		{"no name", `{"url": "http://x.test", "topics": [">"]}`, "targets[0]: name is required"},
		{"bad name", `{"name": "Bad Name", "url": "http://x.test", "topics": [">"]}`, `name "Bad Name"`},
		{"duplicate", valid + "," + valid, `targets[1] (a): name "a" is used by another target`},
		{"no url", `{"name": "a", "topics": [">"]}`, "url is required"},
		{"ftp", `{"name": "a", "url": "ftp://x.test/", "topics": [">"]}`, "want an absolute http:// or https:// URL"},
		{"relative", `{"name": "a", "url": "/hook", "topics": [">"]}`, "want an absolute http:// or https:// URL"},
		{"no topics", `{"name": "a", "url": "http://x.test"}`, "at least one topic pattern"},
		{"bad pattern", `{"name": "a", "url": "http://x.test", "topics": ["door.>.x"]}`, "'>' must be the last token"},
		{"header name", `{"name": "a", "url": "http://x.test", "topics": [">"], "headers": {"X Bad": "1"}}`, `invalid header name "X Bad"`},
		{"reserved header", `{"name": "a", "url": "http://x.test", "topics": [">"], "headers": {"content-type": "text/plain"}}`, "Content-Type is set by the notifier"},
		{"gatehouse header", `{"name": "a", "url": "http://x.test", "topics": [">"], "headers": {"X-Gatehouse-Seq": "1"}}`, "X-Gatehouse-Seq is set by the notifier"},
		{"header value", `{"name": "a", "url": "http://x.test", "topics": [">"], "headers": {"X-A": "1\r\nX-B: 2"}}`, "line break"},
		{"negative timeout", `{"name": "a", "url": "http://x.test", "topics": [">"], "timeout": "-1s"}`, "timeout must not be negative"},
		{"base over max", `{"name": "a", "url": "http://x.test", "topics": [">"], "retry_base": "1m", "max_backoff": "10s"}`, "retry_base (1m0s) is longer than max_backoff (10s)"},
		{"batch", `{"name": "a", "url": "http://x.test", "topics": [">"], "batch": 1001}`, "batch 1001"},
		{"queue", `{"name": "a", "url": "http://x.test", "topics": [">"], "queue": -1}`, "queue must not be negative"},
		{"too many topics", `{"name": "a", "url": "http://x.test", "topics": ["t.0"` + strings.Repeat(`, "t.x"`, 64) + `]}`, "at most 64 topic patterns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m webhook.Module
			if err := core.StrictUnmarshal([]byte(`{"targets": [`+tc.targets+`]}`), &m); err != nil {
				t.Fatalf("decode: %v", err)
			}
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	var m webhook.Module
	if err := core.StrictUnmarshal([]byte(`{"targets": [`+valid+`, {"name": "b_2-x", "url": "http://127.0.0.1:9/", "topics": [">", "door.*.opened"],
		"headers": {"Authorization": "Bearer t"}, "secret": "s", "timeout": 2, "max_backoff": "1m", "retry_base": "1s", "batch": 50, "queue": 10}]}`), &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("valid configuration refused: %v", err)
	}

	// Through a real start: unknown keys and invalid targets stop the server.
	for cfg, want := range map[string]string{
		`{"targets": [{"name": "a", "url": "http://x.test", "topics": [">"], "bogus": 1}]}`: `module "webhook": config: json: unknown field "bogus"`,
		`{"targets": [{"name": "a", "url": "http://x.test", "topics": []}]}`:                `module "webhook": validate: targets[0] (a): topics`,
	} {
		if _, err := tryStart(t, t.TempDir(), cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start with %s: %v, want %q", cfg, err, want)
		}
	}
}

// TestNoTargets: the module without configuration loads, runs and stops.
func TestNoTargets(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), `{}`)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}
