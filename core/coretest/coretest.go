// Package coretest runs a real gatehouse server for tests: a real SQLite file in t.TempDir()
// opened with the production settings, every standard module, a real HTTP listener on
// 127.0.0.1:0. Nothing is mocked.
package coretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/all"
)

// AdminPassword is the admin password of test servers (set through the same path as
// GATEHOUSE_ADMIN_PASSWORD).
const AdminPassword = "test-admin-password"

// Option changes how a test server is started.
type Option func(*settings)

type settings struct {
	cfg      core.Config
	logW     io.Writer // nil: the test log
	logLevel zerolog.Level
}

// WithModuleConfig sets the JSON configuration of one standard module.
func WithModuleConfig(id, config string) Option {
	return func(s *settings) {
		for i := range s.cfg.Modules {
			if s.cfg.Modules[i].Module == id {
				s.cfg.Modules[i].Config = json.RawMessage(config)
				return
			}
		}
		panic("coretest: no module " + id)
	}
}

// WithConfig lets a test edit the configuration directly.
func WithConfig(f func(*core.Config)) Option { return func(s *settings) { f(&s.cfg) } }

// WithLog sends the server's log to w at the given level (tests that inspect log lines).
func WithLog(w io.Writer, level zerolog.Level) Option {
	return func(s *settings) { s.logW, s.logLevel = w, level }
}

// Server is a running test server.
type Server struct {
	*core.Server
	t      testing.TB
	Config core.Config
	// HTTPURL is the base URL (http://127.0.0.1:port); WSURL the Leosac websocket URL.
	HTTPURL, WSURL string
	cancel         context.CancelFunc
	done           chan error
	stopped        bool
	settings       settings
}

// Start starts a server with a fresh data directory and stops it at the end of the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	st := settings{cfg: core.Config{
		Data:          t.TempDir(),
		Listen:        "127.0.0.1:0",
		AdminPassword: AdminPassword,
		Modules:       all.DefaultModules(),
	}, logLevel: logLevel()}
	for _, o := range opts {
		o(&st)
	}
	return start(t, st)
}

// StartConfig starts a server with exactly this configuration.
func StartConfig(t testing.TB, cfg core.Config) *Server {
	t.Helper()
	return start(t, settings{cfg: cfg, logLevel: logLevel()})
}

func start(t testing.TB, st settings) *Server {
	t.Helper()
	cfg := st.cfg
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var w io.Writer = zerolog.NewTestWriter(t)
	if st.logW != nil {
		w = st.logW
	}
	ring := core.NewLogRing(1000)
	log := zerolog.New(io.MultiWriter(w, ring)).Level(st.logLevel)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Config: cfg, Registry: all.Registry(), Log: log, Listener: ln, LogRing: ring})
	if err != nil {
		cancel()
		_ = ln.Close()
		t.Fatalf("start server: %v", err)
	}
	s := &Server{Server: srv, t: t, Config: cfg, cancel: cancel, done: make(chan error, 1), settings: st}
	s.HTTPURL = srv.URL()
	s.WSURL = "ws" + strings.TrimPrefix(s.HTTPURL, "http") + "/websocket"
	go func() { s.done <- srv.Run(ctx) }()
	s.waitHealthy()
	t.Cleanup(func() {
		if !s.stopped {
			if err := s.Stop(); err != nil {
				t.Errorf("server stopped with error: %v", err)
			}
		}
	})
	return s
}

func logLevel() zerolog.Level {
	if lvl, err := zerolog.ParseLevel(os.Getenv("GATEHOUSE_TEST_LOG")); err == nil && os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		return lvl
	}
	return zerolog.WarnLevel
}

func (s *Server) waitHealthy() {
	s.t.Helper()
	// No keep-alive: an idle pooled connection would outlive the server and look like a leak.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.HTTPURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.t.Fatalf("server at %s not healthy after 10s", s.HTTPURL)
}

// Stop shuts the server down gracefully (as SIGTERM does) and returns Run's error.
func (s *Server) Stop() error {
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

// Restart stops the server and starts a new one on the same data directory and configuration
// (on a new port).
func (s *Server) Restart() *Server {
	s.t.Helper()
	if err := s.Stop(); err != nil {
		s.t.Fatalf("stop: %v", err)
	}
	st := s.settings
	st.cfg.Listen = "127.0.0.1:0"
	return start(s.t, st)
}

// Eventually polls cond every 10ms until it returns nil or the timeout passes, then fails the
// test with the last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LogBuffer is an io.Writer safe for a server's concurrent loggers (see WithLog), whose content
// a test reads with String. The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Metric returns the value of the sample called series (a metric name, with its labels as
// /metrics prints them, e.g. `gatehouse_x_total{target="a"}`) on the server's /metrics page.
// It fails the test when the page cannot be read or has no such sample.
func (s *Server) Metric(series string) float64 {
	s.t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Get(s.HTTPURL + "/metrics")
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("read /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				s.t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	s.t.Fatalf("no sample %s on /metrics", series)
	return 0
}
