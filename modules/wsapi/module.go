// Package wsapi is the Leosac-dialect websocket module: it serves /websocket, decodes Leosac
// envelopes ({"uuid","type","content"}), dispatches every call through the shared method
// registry (core.Methods) and answers {"uuid","type","status_code","status_string","content"}.
// Malformed frames of any kind are answered MALFORMED and the connection keeps working; a
// frame over the size limit is answered and the connection is then closed with 1009.
package wsapi

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsconn"
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
	// Settings are the keys shared with the other websocket dialects, with their defaults
	// (wsconn.Settings.ApplyDefaults); excess requests are answered RATE_LIMITED.
	// origin_patterns are e.g. where a Leosac web UI is served from.
	wsconn.Settings

	log     zerolog.Logger
	methods *core.Methods
	started time.Time
	cfg     core.Config
	modules func() []string

	events *eventlog.Log // nil when the eventlog module is not loaded

	hub    *wsconn.Hub
	mu     sync.Mutex
	bySess map[*core.Session]*conn

	connGauge prometheus.Gauge
	slow      prometheus.Counter
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: the path and the shared websocket settings.
func (m *Module) ApplyDefaults() {
	if m.Path == "" {
		m.Path = "/websocket"
	}
	m.Settings.ApplyDefaults()
}

// Provision applies defaults, registers the route and the Leosac general calls.
func (m *Module) Provision(ctx *core.Context) error {
	m.ApplyDefaults()
	m.log = ctx.Logger
	m.methods = ctx.Methods()
	m.started = ctx.Started()
	m.cfg = ctx.Config()
	m.modules = ctx.ModuleIDs
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
	cfg := m.Config()
	cfg.OnSlow = m.slow.Inc
	m.hub = wsconn.NewHub(cfg, "websocket", m.log)
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
func (m *Module) Run(ctx context.Context) error { return m.hub.Run(ctx) }

func (m *Module) serveWS(w http.ResponseWriter, r *http.Request) {
	var c *conn
	sess := core.NewSession(core.DialectLeosac, r.RemoteAddr, r.UserAgent(), func(reason string) {
		if c != nil {
			c.push("session_closed", map[string]string{"reason": reason})
		}
	})
	id := shortID()
	log := m.log.With().Str("conn", id).Str("remote", r.RemoteAddr).Logger()
	wc := m.hub.Accept(w, r, sess, log)
	if wc == nil {
		return
	}
	defer m.hub.Leave(wc)
	c = &conn{Conn: wc, m: m, id: id, sess: sess, log: log, uuids: newUUIDGen()}
	if m.events != nil {
		c.events = wsconn.NewEvents(wc, wsconn.EventsConfig{
			Log: m.events, Methods: m.methods, Name: "ws-" + id, Queue: m.EventQueue,
			Frame: func(e *eventlog.Event) *bytes.Buffer { return c.encodeEvent(m.events.PushJSON(e)) },
			BadTopics: func(err error) error {
				return core.E(core.InvalidArgument, "topics: "+err.Error(), err)
			},
		})
	}

	m.mu.Lock()
	m.bySess[sess] = c
	m.mu.Unlock()
	m.connGauge.Inc()
	log.Debug().Msg("websocket connected")

	c.Serve(c)
	if c.events != nil {
		c.events.Stop()
	}
	m.methods.Release(sess)

	m.mu.Lock()
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
func (m *Module) Connections() int { return m.hub.Len() }
