package sysadm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"gatehouse/core"
)

// Close codes (besides 1000 idle, 1001 shutdown, 1008 authentication window, 1009 over-size).
// As in the Leosac dialect: 4000–4499 the client may reconnect, 4500–4999 it should not
// without new credentials.
const (
	CloseLagged  = websocket.StatusCode(4001) // could not keep up; resubscribe with since
	CloseRevoked = websocket.StatusCode(4501) // the session's token was revoked or expired
)

// item is one frame read, for the dispatcher.
type item struct {
	frame    []byte
	binary   bool
	oversize bool // frame holds the prefix that was read; the connection closes after the answer
}

// conn is one sysadm websocket: the HTTP handler's goroutine reads, one goroutine dispatches
// requests in order, one writes through a bounded queue, one watches (pings, the
// authentication window, idleness). The shape is that of the Leosac dialect's connection.
type conn struct {
	m  *Module
	cl *client
	ws *websocket.Conn

	ctx    context.Context // cancelled when the connection is over
	cancel context.CancelFunc

	in  chan item
	out chan []byte

	closing    chan struct{}
	closeOnce  sync.Once
	closeCode  websocket.StatusCode
	closeWhy   string
	finalFrame []byte
	discard    atomic.Bool
	dispatched chan struct{}

	pending  atomic.Int32  // frames handed to the dispatcher and not yet answered
	settled  chan struct{} // signalled when pending drops to zero
	lastRead atomic.Int64  // unix nanoseconds of the last frame received
	limiter  *rate.Limiter

	events stream
}

func newConn(m *Module, cl *client, ws *websocket.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{m: m, cl: cl, ws: ws, ctx: ctx, cancel: cancel,
		in: make(chan item, 16), out: make(chan []byte, m.QueueSize),
		closing: make(chan struct{}), dispatched: make(chan struct{}), settled: make(chan struct{}, 1)}
	c.lastRead.Store(time.Now().UnixNano())
	if m.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(m.RateLimit), max(1, int(m.RateLimit)))
	}
	return c
}

// randomID returns 128 random bits in hex: a connection's challenge bind.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: m.OriginPatterns})
	if err != nil {
		m.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket accept failed")
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1) // the connection enforces its own, state-dependent limit

	var c *conn
	sess := core.NewSession(Dialect, remoteOf(r), r.UserAgent(), func(reason string) {
		if c != nil {
			c.sessionEnded(reason)
		}
	})
	id := randomID()
	cl := &client{sess: sess, bind: id, log: m.log.With().Str("conn", id[:8]).Str("remote", sess.Remote).Logger()}
	c = newConn(m, cl, ws)
	cl.conn = c

	m.mu.Lock()
	if m.shutdown {
		m.mu.Unlock()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	m.conns[c] = struct{}{}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), m.CallTimeout.D())
	m.peerLogin(ctx, r, cl)
	cancel()
	cl.log.Debug().Bool("logged_in", sess.LoggedIn()).Msg("sysadm websocket connected")

	c.serve()

	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	if m.certs != nil {
		m.certs.Forget(cl.bind)
	}
	m.finish(cl)
	cl.log.Debug().Msg("sysadm websocket closed")
}

// finish releases a client's session and revokes the token it never saw.
func (m *Module) finish(cl *client) {
	m.methods.Release(cl.sess)
	if cl.ephemeral == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.tokens.Revoke(ctx, cl.ephemeral, "Connection closed."); err != nil {
		cl.log.Warn().Err(err).Msg("revoke connection token")
	}
	cl.ephemeral = ""
}

// serve runs the connection until it ends, and returns once all its goroutines have stopped.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.dispatch() }()
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.watch() }()
	c.read()
	wg.Wait()
	c.events.mu.Lock()
	c.events.stop()
	c.events.mu.Unlock()
}

// requestClose asks the writer to flush the queue (or discard it), write final if not nil and
// close with code. The first request wins.
func (c *conn) requestClose(code websocket.StatusCode, why string, final []byte, discard bool) {
	c.closeOnce.Do(func() {
		if len(why) > 120 { // a close frame's reason is at most 123 bytes
			why = why[:120]
		}
		c.closeCode, c.closeWhy, c.finalFrame = code, why, final
		if discard {
			c.discard.Store(true)
		}
		close(c.closing)
	})
}

// sessionEnded is the session's notify: its token was revoked or expired elsewhere. The client
// gets a 401 error frame with the reason, then the close 4501.
func (c *conn) sessionEnded(reason string) {
	c.requestClose(CloseRevoked, "session ended: "+reason,
		errorFrame(Request{Namespace: "rpc"}, http.StatusUnauthorized, "Unauthorized: session ended: "+reason), false)
}

// lagged closes a client that could not keep up with its events (4001 after a notice).
func (c *conn) lagged() {
	notice := encodeFrame(frame{Namespace: "events", Name: "lagged",
		Args: map[string]string{"reason": "The client did not keep up; subscribe again with since."}})
	c.requestClose(CloseLagged, "lagged", notice, true)
	c.cl.log.Warn().Msg("slow sysadm client closed (lagged)")
}

// read is the one reader. Frames are bounded by the limit of the session's state; a frame
// over the anonymous limit that follows requests still being dispatched (a pipelined login)
// waits for them and is then held to the limit of the state it will be handled in.
func (c *conn) read() {
	defer close(c.in)
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			c.requestClose(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		limit := c.limit()
		buf, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err == nil && int64(len(buf)) > limit && limit < c.m.ReadLimit && c.pending.Load() > 0 {
			if !c.waitDispatched() {
				return
			}
			if c.limit() > limit {
				limit = c.limit()
				var more []byte
				more, err = io.ReadAll(io.LimitReader(r, limit+1-int64(len(buf))))
				buf = append(buf, more...)
			}
		}
		if err != nil {
			c.requestClose(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		it := item{frame: buf, binary: typ == websocket.MessageBinary, oversize: int64(len(buf)) > limit}
		c.pending.Add(1)
		select {
		case c.in <- it:
		case <-c.ctx.Done():
			return
		}
		if it.oversize {
			return
		}
	}
}

func (c *conn) limit() int64 {
	if c.cl.sess.LoggedIn() {
		return c.m.ReadLimit
	}
	return c.m.ReadLimitAnonymous
}

// waitDispatched waits until every frame handed to the dispatcher is answered; false if the
// connection ended meanwhile.
func (c *conn) waitDispatched() bool {
	for c.pending.Load() > 0 {
		select {
		case <-c.settled:
		case <-c.closing:
			return false
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// dispatch handles requests one after the other, in arrival order, so a client may pipeline
// a login and the calls that need it.
func (c *conn) dispatch() {
	defer close(c.dispatched)
	for {
		select {
		case <-c.closing:
			return
		case it, ok := <-c.in:
			if !ok {
				return
			}
			c.handle(it)
			if c.pending.Add(-1) == 0 {
				select {
				case c.settled <- struct{}{}:
				default:
				}
			}
			if it.oversize {
				return
			}
		}
	}
}

func (c *conn) handle(it item) {
	var req Request
	var derr *core.Error
	switch {
	case it.oversize:
		c.send(errorFrame(req, http.StatusBadRequest, "Bad Request: message over the size limit; closing."))
		c.requestClose(websocket.StatusMessageTooBig, "message too big", nil, false)
		return
	case it.binary:
		derr = malformed("binary frames are not accepted; send JSON text")
	default:
		req, derr = DecodeRequest(it.frame)
	}
	if derr != nil {
		c.cl.log.Debug().Str("error", derr.Msg).Msg("malformed frame")
		c.send(errorFrame(req, http.StatusBadRequest, "Bad Request: "+derr.Msg))
		return
	}
	if c.limiter != nil && !c.limiter.Allow() {
		c.send(errorFrame(req, http.StatusTooManyRequests, "Too Many Requests: slow down."))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.m.CallTimeout.D())
	res, err := c.m.exec(ctx, c.cl, req)
	cancel()
	if err != nil {
		code, msg := c.m.failure(c.cl, req, err)
		c.send(errorFrame(req, code, msg))
		return
	}
	if res.silent {
		return
	}
	c.send(replyFrame(req, res.args))
	if res.after != nil {
		res.after()
	}
}

// failure maps a failed request to its status and message and logs it at the right level.
func (m *Module) failure(cl *client, req Request, err error) (int, string) {
	code, msg, incident := status(err, cl.sess.LoggedIn())
	ev := cl.log.Debug()
	switch {
	case incident != "":
		ev = cl.log.Error().Err(err).Str("incident", incident)
	case code == http.StatusInternalServerError:
		ev = cl.log.Warn().Err(err)
	}
	ev.Str("req", req.ID).Str("namespace", req.Namespace).Str("name", req.Name).Int("code", code).Msg("sysadm call failed")
	return code, msg
}

// send queues a reply, waiting for room: a client that sends requests must read replies.
func (c *conn) send(b []byte) {
	select {
	case c.out <- b:
	case <-c.ctx.Done():
	}
}

// write is the one writer. On a close request it waits (bounded) for the request in hand,
// flushes the queue (or discards it), writes the final frame if any and closes.
func (c *conn) write() {
	defer c.cancel()
	for {
		select {
		case b := <-c.out:
			if !c.writeFrame(b) {
				return
			}
			continue
		case <-c.closing:
		}
		break
	}
	select {
	case <-c.dispatched:
	case <-time.After(c.m.WriteTimeout.D()):
	}
	for flushing := true; flushing; {
		select {
		case b := <-c.out:
			if !c.discard.Load() && !c.writeFrame(b) {
				return
			}
		default:
			flushing = false
		}
	}
	if c.finalFrame != nil && !c.writeFrame(c.finalFrame) {
		return
	}
	_ = c.ws.Close(c.closeCode, c.closeWhy)
}

func (c *conn) writeFrame(b []byte) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.m.WriteTimeout.D())
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.cl.log.Debug().Err(err).Msg("websocket write failed")
		return false
	}
	return true
}

// watch pings the peer, closes the connection when it is still unauthenticated at the end of
// the authentication window (1008), and when it has sent nothing for IdleTimeout (1000).
func (c *conn) watch() {
	ping := time.NewTicker(c.m.PingInterval.D())
	defer ping.Stop()
	authT := time.NewTimer(c.m.AuthWindow.D())
	defer authT.Stop()
	idleT := time.NewTimer(c.m.IdleTimeout.D())
	defer idleT.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-authT.C:
			if !c.cl.sess.LoggedIn() {
				c.requestClose(websocket.StatusPolicyViolation, "authentication timeout", nil, false)
			}
		case <-idleT.C:
			idle := time.Since(time.Unix(0, c.lastRead.Load()))
			if idle >= c.m.IdleTimeout.D() {
				c.requestClose(websocket.StatusNormalClosure, "idle timeout", nil, false)
				continue
			}
			idleT.Reset(c.m.IdleTimeout.D() - idle)
		case <-ping.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.m.PingTimeout.D())
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				c.cl.log.Debug().Err(err).Msg("ping failed; closing")
				c.cancel()
				_ = c.ws.CloseNow()
				return
			}
		}
	}
}
