// Package wsconn is the connection machinery shared by gatehouse's websocket dialects (the
// Leosac dialect in wsapi, the TrueOS sysadm dialect in sysadm). A dialect supplies its
// envelope, its dispatch and its replies; wsconn runs everything else.
//
// Contract, per connection:
//   - One goroutine reads (the HTTP handler's, inside Conn.Serve), one dispatches the frames in
//     the order they arrived (Handler.Handle, one at a time, so a client may pipeline a login and
//     the calls that need it), one writes, one pings and watches the timers. Serve returns once
//     all of them have stopped.
//   - Frames are bounded by the limit of the session's state (ReadLimitAnonymous before login,
//     ReadLimit after). A frame over the anonymous limit that follows requests still being
//     dispatched waits for them and is then held to the limit of the state it will be handled
//     in. A frame over its limit is handed to Handle with Oversize set (so that the dialect can
//     answer it), then the connection closes with 1009; nothing after it is read.
//   - Everything written goes through one bounded queue of QueueSize frames to the writer:
//     replies wait for room (Send), events wait for room or the close (Deliver), pushes never
//     wait (Push: a full queue closes the client as lagged). The frames that are ready leave in
//     one write (a user-space cork), under one WriteTimeout; the kernel send buffer is bounded
//     by SendBuffer so that a client that stopped reading is found out within seconds.
//   - Close requests: the first wins. The writer waits (at most WriteTimeout) for the request
//     in hand, writes what is queued (or discards it, for a lagged client), then the final
//     frame if any, then the close frame. A lagged client gets the dialect's notice and 4001;
//     a client whose write times out is dropped without one; both count as slow (OnSlow).
//   - Hub tracks a dialect's connections: it refuses new ones once shutting down and closes the
//     open ones with 1001 after their queues are written.
package wsconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"gatehouse/core"
)

// CloseLagged is the close code of a client that could not keep up; it may resume with since.
// Application codes follow Centrifuge's split: 4000–4499 the client should reconnect,
// 4500–4999 it should not.
const CloseLagged = websocket.StatusCode(4001)

// Config is what a dialect sets for its connections. Zero durations and sizes disable what
// they bound, except where said; the dialects apply their documented defaults.
type Config struct {
	// ReadLimitAnonymous and ReadLimit bound a frame before and after login.
	ReadLimitAnonymous int64
	ReadLimit          int64
	// QueueSize bounds the frames waiting to be written to one client (at least 1).
	QueueSize int
	// SendBuffer, when > 0, is the kernel send buffer of a TCP connection, in bytes.
	SendBuffer int
	// PingInterval and PingTimeout drive keep-alive pings; a missing pong ends the connection.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// WriteTimeout bounds one batch of writes; a client slower than that is dropped.
	WriteTimeout time.Duration
	// AuthWindow, when > 0, closes a connection still not logged in after that long (1008).
	AuthWindow time.Duration
	// IdleTimeout, when > 0, closes a connection that sent nothing for that long (1000).
	IdleTimeout time.Duration
	// RateLimit, when > 0, is the sustained requests per second of a connection (Conn.Allow).
	RateLimit float64
	// OriginPatterns are extra browser origins allowed to connect.
	OriginPatterns []string
	// OnSlow, if not nil, is called for each client closed as lagged or dropped because a
	// write timed out.
	OnSlow func()
}

// Frame is one message read from the client.
type Frame struct {
	// Data is the message; it is only valid during Handle.
	Data []byte
	// Binary is set for a binary message.
	Binary bool
	// Oversize is set when the message was over the limit: Data holds the prefix that was
	// read, and the connection closes with 1009 after Handle returns.
	Oversize bool
}

// Handler is the dialect's side of one connection.
type Handler interface {
	// Handle answers one frame, typically with Conn.Send. It is called by the dispatcher, one
	// frame at a time, in arrival order.
	Handle(f Frame)
	// LaggedNotice returns the frame written before the close 4001 of a lagged client.
	LaggedNotice() []byte
}

// item is one unit of work for the dispatcher.
type item struct {
	frame    *bytes.Buffer // pooled; the dispatcher returns it
	binary   bool
	oversize bool
}

// Conn is one websocket connection. Its exported methods are safe for concurrent use.
type Conn struct {
	sess *core.Session
	log  zerolog.Logger
	cfg  *Config
	ws   *websocket.Conn
	cork *corkConn // the connection under ws; batches of frames go out in one write
	h    Handler

	ctx    context.Context // cancelled when the connection is over
	cancel context.CancelFunc

	in  chan item          // reader → dispatcher
	out chan *bytes.Buffer // dispatcher and pushers → writer; pooled buffers

	closing    chan struct{} // closed when a close was requested
	closeOnce  sync.Once
	closeCode  websocket.StatusCode
	closeWhy   string
	finalFrame []byte // written after the queue is flushed (or discarded), before the close

	pending    atomic.Int32  // frames handed to the dispatcher and not yet answered
	settled    chan struct{} // signalled when pending drops to zero
	discard    atomic.Bool   // drop queued frames instead of flushing them (lagged clients)
	dispatched chan struct{} // closed when the dispatcher has stopped
	lastRead   atomic.Int64  // unix nanoseconds of the last frame received
	limiter    *rate.Limiter
}

func newConn(cfg *Config, ws *websocket.Conn, cork *corkConn, sess *core.Session, log zerolog.Logger) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		sess: sess, log: log, cfg: cfg, ws: ws, cork: cork,
		ctx: ctx, cancel: cancel,
		in:         make(chan item, 16),
		out:        make(chan *bytes.Buffer, max(1, cfg.QueueSize)),
		closing:    make(chan struct{}),
		dispatched: make(chan struct{}),
		settled:    make(chan struct{}, 1),
	}
	c.lastRead.Store(time.Now().UnixNano())
	if cfg.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), max(1, int(cfg.RateLimit)))
	}
	return c
}

// Context returns a context cancelled when the connection is over (event streams run in it).
func (c *Conn) Context() context.Context { return c.ctx }

// Serve runs the connection with h until it ends, and returns once every goroutine of the
// connection has stopped. It is called once, from the HTTP handler that accepted it.
func (c *Conn) Serve(h Handler) {
	c.h = h
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.dispatch() }()
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.watch() }()
	c.read()
	wg.Wait()
}

// Close asks the writer to flush the queue (or discard it), write final if not nil, and close
// the connection with code and why (cut to fit a close frame). The first request wins.
func (c *Conn) Close(code websocket.StatusCode, why string, final []byte, discard bool) {
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

// Closing returns a channel closed once a close was requested.
func (c *Conn) Closing() <-chan struct{} { return c.closing }

// kill ends the connection at once, without a close handshake.
func (c *Conn) kill() {
	c.cancel()
	_ = c.ws.CloseNow()
}

// Allow reports whether one more request fits the connection's rate limit.
func (c *Conn) Allow() bool { return c.limiter == nil || c.limiter.Allow() }

// Send queues a reply, waiting for room: a client that sends requests must read replies. The
// buffer is the connection's from then on (returned to the pool once written or dropped).
func (c *Conn) Send(b *bytes.Buffer) {
	select {
	case c.out <- b:
	case <-c.ctx.Done():
		PutBuf(b)
	}
}

// SendBytes is Send for a frame that is not in a pooled buffer.
func (c *Conn) SendBytes(p []byte) {
	b := GetBuf()
	b.Write(p)
	c.Send(b)
}

// Deliver queues an event frame, waiting for room, ctx, or a close request. It returns nil
// once the frame is queued.
func (c *Conn) Deliver(ctx context.Context, b *bytes.Buffer) error {
	select {
	case c.out <- b:
		return nil
	case <-ctx.Done():
		PutBuf(b)
		return ctx.Err()
	case <-c.closing:
		PutBuf(b)
		return context.Canceled
	}
}

// Push queues a server-initiated frame without waiting. It reports false when a close was
// requested, or when the queue is full: the client is then closed as lagged.
func (c *Conn) Push(b *bytes.Buffer) bool {
	select {
	case <-c.closing:
		PutBuf(b)
		return false
	default:
	}
	select {
	case c.out <- b:
		return true
	default:
		PutBuf(b)
		c.Lagged()
		return false
	}
}

// Lagged closes a client that cannot keep up: its queue is dropped, it gets the dialect's
// lagged notice and the close code 4001.
func (c *Conn) Lagged() {
	if c.cfg.OnSlow != nil {
		c.cfg.OnSlow()
	}
	var notice []byte
	if c.h != nil {
		notice = c.h.LaggedNotice()
	}
	c.Close(CloseLagged, "lagged", notice, true)
	c.log.Warn().Msg("slow client closed (lagged)")
}

// limit returns the frame limit of the session's current state.
func (c *Conn) limit() int64 {
	if c.sess.LoggedIn() {
		return c.cfg.ReadLimit
	}
	return c.cfg.ReadLimitAnonymous
}

// read is the one reader: it reads frames within the size limit for the session's state and
// hands them to the dispatcher in order (see the package contract for pipelined logins).
func (c *Conn) read() {
	defer close(c.in)
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			c.logReadEnd(err)
			c.Close(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		buf := GetBuf()
		anonymous := !c.sess.LoggedIn()
		limit := c.limit()
		_, err = buf.ReadFrom(io.LimitReader(r, limit+1))
		if err == nil && anonymous && int64(buf.Len()) > limit && c.pending.Load() > 0 {
			if !c.waitDispatched() {
				PutBuf(buf)
				return
			}
			if c.sess.LoggedIn() {
				limit = c.cfg.ReadLimit
				_, err = buf.ReadFrom(io.LimitReader(r, limit+1-int64(buf.Len())))
			}
		}
		if err != nil {
			PutBuf(buf)
			c.logReadEnd(err)
			c.Close(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		// Over the limit: answered, then closed with 1009; the close discards the rest.
		it := item{frame: buf, binary: typ == websocket.MessageBinary, oversize: int64(buf.Len()) > limit}
		c.pending.Add(1)
		select {
		case c.in <- it:
		case <-c.ctx.Done():
			PutBuf(buf)
			return
		}
		if it.oversize {
			return
		}
	}
}

// waitDispatched waits until the dispatcher has answered every frame handed to it. It returns
// false if the connection ended meanwhile.
func (c *Conn) waitDispatched() bool {
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

func (c *Conn) logReadEnd(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return
	}
	c.log.Debug().Err(err).Msg("websocket read ended")
}

// dispatch hands the frames to the dialect one after the other, in the order they arrived.
func (c *Conn) dispatch() {
	defer close(c.dispatched)
	for {
		select {
		case <-c.closing:
			return
		case it, ok := <-c.in:
			if !ok {
				return
			}
			c.h.Handle(Frame{Data: it.frame.Bytes(), Binary: it.binary, Oversize: it.oversize})
			PutBuf(it.frame)
			if it.oversize {
				c.Close(websocket.StatusMessageTooBig, "message too big", nil, false)
				return
			}
			if c.pending.Add(-1) == 0 {
				select {
				case c.settled <- struct{}{}:
				default:
				}
			}
		}
	}
}

// write is the one writer. It writes every frame that is ready under one write deadline. On a
// close request it waits (bounded) for the dispatcher to finish the request in hand, flushes
// the queue (unless told to discard it), writes the final frame if any, and closes with the
// requested code.
func (c *Conn) write() {
	defer c.cancel()
	for {
		select {
		case b := <-c.out:
			if !c.writeBatch(b) {
				return
			}
			continue
		case <-c.closing:
		}
		break
	}
	select {
	case <-c.dispatched:
	case <-time.After(c.cfg.WriteTimeout):
	}
	if c.discard.Load() {
		for {
			select {
			case b := <-c.out:
				PutBuf(b)
				continue
			default:
			}
			break
		}
	} else {
		select {
		case b := <-c.out:
			if !c.writeBatch(b) {
				return
			}
		default:
		}
	}
	if c.finalFrame != nil {
		b := GetBuf()
		b.Write(c.finalFrame)
		if !c.writeBatch(b) {
			return
		}
	}
	_ = c.ws.Close(c.closeCode, c.closeWhy)
}

// writeBatch writes first and then every frame already queued, under one deadline, and
// returns the buffers to the pool. The frames of a batch leave in one write (the connection
// is corked meanwhile), so a client that fell behind costs one system call per batch, not per
// frame. It reports false when a write failed (the connection is then closed).
func (c *Conn) writeBatch(first *bytes.Buffer) bool {
	deadline := time.Now().Add(c.cfg.WriteTimeout)
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	c.cork.cork()
	b := first
	for {
		err := c.ws.Write(ctx, websocket.MessageText, b.Bytes())
		PutBuf(b)
		if err != nil {
			_ = c.cork.uncork(deadline)
			c.writeFailed(err)
			return false
		}
		select {
		case b = <-c.out:
			continue
		default:
		}
		break
	}
	if err := c.cork.uncork(deadline); err != nil {
		c.writeFailed(err)
		_ = c.ws.CloseNow()
		return false
	}
	return true
}

// writeFailed reports a failed write. One that timed out is a client that stopped reading
// with its socket buffers full: it cannot even receive a lagged notice, so it is counted with
// the lagged clients and dropped; it resumes with since when it comes back.
func (c *Conn) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		if c.cfg.OnSlow != nil {
			c.cfg.OnSlow()
		}
		c.log.Warn().Msg("slow client dropped (write timed out)")
		return
	}
	c.log.Debug().Err(err).Msg("websocket write failed")
}

// watch pings the peer every PingInterval (a missing pong ends the connection), and closes the
// connection when it is still not logged in at the end of AuthWindow (1008) and when it has
// sent nothing for IdleTimeout (1000).
func (c *Conn) watch() {
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	var authC, idleC <-chan time.Time
	if c.cfg.AuthWindow > 0 {
		t := time.NewTimer(c.cfg.AuthWindow)
		defer t.Stop()
		authC = t.C
	}
	var idleT *time.Timer
	if c.cfg.IdleTimeout > 0 {
		idleT = time.NewTimer(c.cfg.IdleTimeout)
		defer idleT.Stop()
		idleC = idleT.C
	}
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-authC:
			if !c.sess.LoggedIn() {
				c.Close(websocket.StatusPolicyViolation, "authentication timeout", nil, false)
			}
		case <-idleC:
			idle := time.Since(time.Unix(0, c.lastRead.Load()))
			if idle >= c.cfg.IdleTimeout {
				c.Close(websocket.StatusNormalClosure, "idle timeout", nil, false)
				continue
			}
			idleT.Reset(c.cfg.IdleTimeout - idle)
		case <-ping.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PingTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.log.Debug().Err(err).Msg("ping failed; closing")
				}
				c.kill()
				return
			}
		}
	}
}
