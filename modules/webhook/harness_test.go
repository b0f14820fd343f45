package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/all"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/webhook"
)

// server is a real gatehouse server (real SQLite file, every standard module, a real
// listener) with the webhook module added — it is not (yet) in modules/all, so coretest
// cannot start it.
type server struct {
	*core.Server
	t       testing.TB
	HTTPURL string
	WSURL   string
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	logs    *logBuffer
}

// startServer starts a server on dir. webhookConfig is the webhook module's JSON
// configuration; "" starts the server without the webhook module. The server is stopped at
// the end of the test if the test has not stopped it.
func startServer(t testing.TB, dir, webhookConfig string) *server {
	t.Helper()
	s, err := tryStart(t, dir, webhookConfig)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return s
}

func tryStart(t testing.TB, dir, webhookConfig string) (*server, error) {
	var mods []core.ModuleConfig
	for _, m := range all.DefaultModules() {
		if m.Module != webhook.ModuleID {
			mods = append(mods, m)
		}
	}
	if webhookConfig != "" {
		mods = append(mods, core.ModuleConfig{Module: webhook.ModuleID, Config: json.RawMessage(webhookConfig)})
	}
	reg := all.Registry()
	if _, ok := reg.Lookup(webhook.ModuleID); !ok {
		reg.Register(webhook.Info())
	}
	cfg := core.Config{Data: dir, Listen: "127.0.0.1:0", AdminPassword: coretest.AdminPassword, Modules: mods}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	logs := &logBuffer{}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Config: cfg, Registry: reg, Log: log, Listener: ln})
	if err != nil {
		cancel()
		_ = ln.Close()
		return nil, err
	}
	s := &server{Server: srv, t: t, cancel: cancel, done: make(chan error, 1), logs: logs}
	s.HTTPURL = srv.URL()
	s.WSURL = "ws" + strings.TrimPrefix(s.HTTPURL, "http") + "/websocket"
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		if !s.stopped {
			if err := s.stop(); err != nil {
				t.Errorf("stop server: %v", err)
			}
		}
	})
	coretest.Eventually(t, 10*time.Second, func() error {
		resp, err := httpGet(s.HTTPURL + "/healthz")
		if err != nil {
			return err
		}
		if resp.status != http.StatusOK {
			return fmt.Errorf("healthz: %d", resp.status)
		}
		return nil
	})
	return s, nil
}

// stop shuts the server down as SIGTERM does and returns Run's error.
func (s *server) stop() error {
	if s.stopped {
		return errors.New("already stopped")
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("server did not stop within 30s")
	}
}

func (s *server) eventLog() *eventlog.Log {
	s.t.Helper()
	mod, ok := s.App().Module(eventlog.ModuleID)
	if !ok {
		s.t.Fatal("eventlog module not loaded")
	}
	return mod.(*eventlog.Module).Log()
}

// appendEvent appends one event as the domain modules do and returns its seq.
func (s *server) appendEvent(topic string, data map[string]any) int64 {
	s.t.Helper()
	var seq int64
	err := s.eventLog().Write(context.Background(), func(tx *eventlog.Tx) error {
		if err := tx.Record(eventlog.Change{Topic: topic, Kind: eventlog.KindAuth, Mask: eventlog.AuthGranted,
			Description: "test", Data: data}); err != nil {
			return err
		}
		return tx.Raw(`SELECT MAX(seq) FROM events`).Scan(&seq).Error
	})
	if err != nil {
		s.t.Fatalf("append %s: %v", topic, err)
	}
	return seq
}

// pushJSON returns the event of seq as pushed to websocket clients.
func (s *server) pushJSON(seq int64) []byte {
	s.t.Helper()
	var e eventlog.Event
	if err := s.DB().Read.Where("seq = ?", seq).First(&e).Error; err != nil {
		s.t.Fatalf("read event %d: %v", seq, err)
	}
	return s.eventLog().PushJSON(&e)
}

// metric returns the value of a webhook metric for a target as /metrics shows it.
func (s *server) metric(name, target string) float64 {
	s.t.Helper()
	resp, err := httpGet(s.HTTPURL + "/metrics")
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	prefix := name + `{target="` + target + `"} `
	sc := bufio.NewScanner(bytes.NewReader(resp.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return f
		}
	}
	s.t.Fatalf("metric %s not in /metrics", prefix)
	return 0
}

type response struct {
	status int
	body   []byte
}

// httpGet makes a request without keep-alive (an idle pooled connection would outlive the
// server and look like a leak).
func httpGet(url string) (response, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: b}, err
}

// logBuffer keeps the server's log lines for tests that check what was logged.
type logBuffer struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (b *logBuffer) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err == nil {
		b.mu.Lock()
		b.lines = append(b.lines, m)
		b.mu.Unlock()
	}
	return len(p), nil
}

// find returns the log lines of the target whose message contains msg.
func (b *logBuffer) find(target, msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range b.lines {
		if l["target"] == target && strings.Contains(fmt.Sprint(l["message"]), msg) {
			out = append(out, l)
		}
	}
	return out
}

// request is one request a receiver got.
type request struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is an httptest webhook target. respond decides the status of each request (nil:
// 200); requests answered 2xx are kept in accepted.
type receiver struct {
	*httptest.Server
	respond  atomic.Pointer[func(w http.ResponseWriter, r *request) int]
	attempts atomic.Int64

	mu       sync.Mutex
	accepted []request
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.attempts.Add(1)
		b, _ := io.ReadAll(r.Body)
		req := &request{path: r.URL.RequestURI(), header: r.Header.Clone(), body: b}
		status := http.StatusOK
		if f := rc.respond.Load(); f != nil {
			status = (*f)(w, req)
		}
		if status >= 200 && status < 300 {
			rc.mu.Lock()
			rc.accepted = append(rc.accepted, *req)
			rc.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// setRespond replaces the answering function.
func (rc *receiver) setRespond(f func(w http.ResponseWriter, r *request) int) { rc.respond.Store(&f) }

// failWith makes every request answer status until ok is called.
func (rc *receiver) failWith(status int) {
	rc.setRespond(func(http.ResponseWriter, *request) int { return status })
}

func (rc *receiver) ok() {
	rc.setRespond(func(http.ResponseWriter, *request) int { return http.StatusOK })
}

func (rc *receiver) got() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.accepted...)
}

// pushed is the JSON body of one event.
type pushed struct {
	Seq   int64           `json:"seq"`
	Epoch string          `json:"epoch"`
	Time  string          `json:"time"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// events decodes the accepted requests' bodies (objects, or arrays when batching) in order.
func (rc *receiver) events(t *testing.T) []pushed {
	t.Helper()
	var out []pushed
	for _, r := range rc.got() {
		if bytes.HasPrefix(r.body, []byte("[")) {
			var es []pushed
			if err := json.Unmarshal(r.body, &es); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			out = append(out, es...)
			continue
		}
		var e pushed
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		out = append(out, e)
	}
	return out
}

// waitEvents waits until the receiver accepted n events and returns them.
func (rc *receiver) waitEvents(t *testing.T, n int, timeout time.Duration) []pushed {
	t.Helper()
	coretest.Eventually(t, timeout, func() error {
		if got := len(rc.events(t)); got < n {
			return fmt.Errorf("receiver accepted %d events, want %d", got, n)
		}
		return nil
	})
	return rc.events(t)
}

func seqs(es []pushed) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// targetJSON builds one target's configuration.
func targetJSON(name, url string, topics []string, extra map[string]any) map[string]any {
	m := map[string]any{"name": name, "url": url, "topics": topics, "retry_base": "10ms", "max_backoff": "100ms"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func webhookConfig(t testing.TB, targets ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"targets": targets})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
