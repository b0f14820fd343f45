// Package wsapi is the Leosac-dialect websocket module: it serves /websocket, decodes Leosac
// envelopes ({"uuid","type","content"}), dispatches every call through the shared method
// registry (core.Methods) and answers {"uuid","type","status_code","status_string","content"}.
// Malformed frames of any kind are answered MALFORMED and the connection keeps working; a
// frame over the size limit is answered and the connection is then closed with 1009.
package wsapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// ModuleID is the websocket module's ID.
const ModuleID = "wsapi"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the websocket module. Its exported fields are its configuration; zero values take
// the documented defaults.
type Module struct {
	// Path is where the websocket is served. Default "/websocket" (Leosac's web UI uses it).
	Path string `json:"path"`
	// ReadLimitAnonymous bounds a frame before login. Default 64 KiB.
	ReadLimitAnonymous int64 `json:"read_limit_anonymous"`
	// ReadLimit bounds a frame after login. Default 1 MiB.
	ReadLimit int64 `json:"read_limit"`
	// QueueSize bounds the frames waiting to be written to one client. Default 256.
	QueueSize int `json:"queue_size"`
	// EventQueue bounds the live events waiting for one subscribed client on top of QueueSize;
	// a client that falls further behind gets a lagged notice and close 4001. Default 4096.
	EventQueue int `json:"event_queue"`
	// SendBuffer is the kernel send buffer of a websocket connection, in bytes. It bounds what
	// a client that stopped reading holds in the kernel beyond EventQueue, so such a client is
	// found lagged within seconds and its memory stays small; it is far above what a live
	// client needs (an event is a few hundred bytes). Default 128 KiB; -1 leaves the kernel's
	// automatic sizing (megabytes on a fast link).
	SendBuffer int `json:"send_buffer"`
	// PingInterval and PingTimeout drive keep-alive pings. Defaults 30s and 15s.
	PingInterval core.Duration `json:"ping_interval"`
	PingTimeout  core.Duration `json:"ping_timeout"`
	// WriteTimeout bounds one frame write; a client slower than that is closed. Default 5s.
	WriteTimeout core.Duration `json:"write_timeout"`
	// CallTimeout bounds one call. Default 30s.
	CallTimeout core.Duration `json:"call_timeout"`
	// RateLimit is the sustained requests per second one connection may send (burst the same);
	// excess requests are answered RATE_LIMITED. 0 means the default 5000; -1 disables.
	RateLimit float64 `json:"rate_limit"`
	// OriginPatterns are extra browser origins (host patterns) allowed to connect, e.g. where a
	// Leosac web UI is served from. Same-origin and non-browser clients are always allowed.
	OriginPatterns []string `json:"origin_patterns"`

	log     zerolog.Logger
	methods *core.Methods
	started time.Time
	cfg     core.Config
	modules func() []string

	events *eventlog.Log // nil when the eventlog module is not loaded

	mu       sync.Mutex
	conns    map[*conn]struct{}
	bySess   map[*core.Session]*conn
	shutdown bool
	wg       sync.WaitGroup

	connGauge prometheus.Gauge
	slow      prometheus.Counter
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// Provision applies defaults, registers the route and the Leosac general calls.
func (m *Module) Provision(ctx *core.Context) error {
	if m.Path == "" {
		m.Path = "/websocket"
	}
	if m.ReadLimitAnonymous <= 0 {
		m.ReadLimitAnonymous = 64 << 10
	}
	if m.ReadLimit <= 0 {
		m.ReadLimit = 1 << 20
	}
	if m.QueueSize <= 0 {
		m.QueueSize = 256
	}
	if m.EventQueue <= 0 {
		m.EventQueue = 4096
	}
	if m.SendBuffer == 0 {
		m.SendBuffer = 128 << 10
	}
	if m.PingInterval <= 0 {
		m.PingInterval = core.Duration(30 * time.Second)
	}
	if m.PingTimeout <= 0 {
		m.PingTimeout = core.Duration(15 * time.Second)
	}
	if m.WriteTimeout <= 0 {
		m.WriteTimeout = core.Duration(5 * time.Second)
	}
	if m.CallTimeout <= 0 {
		m.CallTimeout = core.Duration(30 * time.Second)
	}
	switch {
	case m.RateLimit == 0:
		m.RateLimit = 5000
	case m.RateLimit < 0:
		m.RateLimit = 0
	}
	m.log = ctx.Logger
	m.methods = ctx.Methods()
	m.started = ctx.Started()
	m.cfg = ctx.Config()
	m.modules = ctx.ModuleIDs
	m.conns = make(map[*conn]struct{})
	m.bySess = make(map[*core.Session]*conn)
	m.connGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_ws_connections", Help: "Open Leosac-dialect websocket connections."})
	m.slow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_ws_slow_consumers_total", Help: "Websocket clients closed because they could not keep up."})
	if err := ctx.Metrics().Register(m.connGauge); err != nil {
		return err
	}
	if err := ctx.Metrics().Register(m.slow); err != nil {
		return err
	}
	ctx.Handle(m.Path, http.HandlerFunc(m.serveWS))
	m.registerGeneral(ctx.Methods())
	if mod, ok := ctx.Module(eventlog.ModuleID); ok {
		m.events = mod.(*eventlog.Module).Log()
		m.registerEvents(ctx.Methods())
	}
	return nil
}

// Run waits for ctx, then closes every connection with 1001 (going away) after writing what
// was queued for it, and returns when all of them have ended.
func (m *Module) Run(ctx context.Context) error {
	<-ctx.Done()
	m.mu.Lock()
	m.shutdown = true
	for c := range m.conns {
		c.requestClose(websocket.StatusGoingAway, "server shutting down", nil, false)
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		m.log.Warn().Msg("websocket connections still open after 15s; forcing them closed")
		m.mu.Lock()
		for c := range m.conns {
			c.cancel()
			_ = c.ws.CloseNow()
		}
		m.mu.Unlock()
		<-done
	}
	return nil
}

func (m *Module) serveWS(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()

	cw := &corkingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{OriginPatterns: m.OriginPatterns})
	if err != nil {
		m.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket accept failed")
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1) // the connection enforces its own, state-dependent limit
	if m.SendBuffer > 0 {
		setSendBuffer(cw.conn.Conn, m.SendBuffer)
	}

	var c *conn
	sess := core.NewSession("leosac", r.RemoteAddr, r.UserAgent(), func(reason string) {
		if c != nil {
			c.Push("session_closed", map[string]string{"reason": reason})
		}
	})
	id := shortID()
	log := m.log.With().Str("conn", id).Str("remote", r.RemoteAddr).Logger()
	c = newConn(m, id, ws, cw.conn, sess, log)

	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	m.conns[c] = struct{}{}
	m.bySess[sess] = c
	m.mu.Unlock()
	m.connGauge.Inc()
	log.Debug().Msg("websocket connected")

	c.serve()

	m.mu.Lock()
	delete(m.conns, c)
	delete(m.bySess, sess)
	m.mu.Unlock()
	m.connGauge.Dec()
	log.Debug().Msg("websocket closed")
}

// connOf returns the connection of a session (nil for sessions of other transports).
func (m *Module) connOf(s *core.Session) *conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bySess[s]
}

// Connections returns the number of open connections.
func (m *Module) Connections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}
