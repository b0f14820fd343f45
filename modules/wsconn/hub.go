package wsconn

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"gatehouse/core"
)

// shutdownGrace is how long Shutdown lets connections write what is queued for them before
// it forces them closed.
const shutdownGrace = 15 * time.Second

// Hub accepts a dialect's websocket connections, tracks them, and ends them at shutdown. The
// zero value is not usable: use NewHub.
type Hub struct {
	cfg  *Config
	log  zerolog.Logger
	name string // names the dialect in log lines

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	shutdown bool
	wg       sync.WaitGroup
}

// NewHub returns a hub whose connections follow cfg (which must not change afterwards). name
// names the dialect's connections in log lines ("websocket", "sysadm").
func NewHub(cfg Config, name string, log zerolog.Logger) *Hub {
	return &Hub{cfg: &cfg, name: name, log: log, conns: make(map[*Conn]struct{})}
}

// Accept upgrades the request to a websocket connection for sess (log tags its lines). It
// returns nil when the connection was refused (shutting down: 503 or close 1001) or the upgrade
// failed; otherwise the caller runs Conn.Serve and must call Leave with the connection once it
// has finished with it.
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, sess *core.Session, log zerolog.Logger) *Conn {
	h.mu.Lock()
	if h.shutdown {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return nil
	}
	h.wg.Add(1)
	h.mu.Unlock()

	cw := &corkingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns})
	if err != nil {
		h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg(h.name + " accept failed")
		h.wg.Done()
		return nil
	}
	ws.SetReadLimit(-1) // the connection enforces its own, state-dependent limit
	if h.cfg.SendBuffer > 0 {
		setSendBuffer(cw.conn.Conn, h.cfg.SendBuffer)
	}
	c := newConn(h.cfg, ws, cw.conn, sess, log)

	h.mu.Lock()
	if h.shutdown {
		h.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		_ = ws.CloseNow()
		h.wg.Done()
		return nil
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	return c
}

// Leave forgets a connection Accept returned, once Serve has returned and the dialect has
// released what it held for it.
func (h *Hub) Leave(c *Conn) {
	_ = c.ws.CloseNow()
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.wg.Done()
}

// Len returns the number of open connections.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Shutdown refuses new connections, closes every open one with 1001 (going away) after writing
// what was queued for it, and returns when all of them have ended (forcing them closed after
// 15 s).
func (h *Hub) Shutdown() {
	h.mu.Lock()
	h.shutdown = true
	for c := range h.conns {
		c.Close(websocket.StatusGoingAway, "server shutting down", nil, false)
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		h.log.Warn().Msg(h.name + " connections still open after 15s; forcing them closed")
		h.mu.Lock()
		for c := range h.conns {
			c.kill()
		}
		h.mu.Unlock()
		<-done
	}
}

// Run waits for ctx and then shuts the hub down (see Shutdown): a module's core.Runner.
func (h *Hub) Run(ctx context.Context) error {
	<-ctx.Done()
	h.Shutdown()
	return nil
}
