package wsapi

import (
	"bytes"
	"context"
	"encoding/json"
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

// Close codes used by the server (application codes follow Centrifuge's split: 4000–4499 the
// client should reconnect, 4500–4999 it should not).
const (
	CloseLagged = websocket.StatusCode(4001) // the client could not keep up; resume with since
)

// item is one unit of work for the dispatcher: a frame, or the notice that the next frame was
// over the size limit (then frame holds the prefix that was read).
type item struct {
	frame    *bytes.Buffer // pooled; the dispatcher returns it
	oversize bool
}

// conn is one websocket connection of the Leosac dialect. Exactly one goroutine reads (the
// HTTP handler's), one dispatches requests in order, one writes, and one pings. Replies and
// pushes go through a bounded queue to the writer.
type conn struct {
	m    *Module
	id   string
	ws   *websocket.Conn
	sess *core.Session
	log  zerolog.Logger
	cork *corkConn // the connection under ws; batches of frames go out in one write

	events *stream  // the event subscription (events.subscribe)
	uuids  *uuidGen // fresh uuids of pushes

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
	limiter    *rate.Limiter
}

func newConn(m *Module, id string, ws *websocket.Conn, cork *corkConn, sess *core.Session, log zerolog.Logger) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		m: m, id: id, ws: ws, cork: cork, sess: sess, log: log,
		events: &stream{}, uuids: newUUIDGen(),
		ctx: ctx, cancel: cancel,
		in:         make(chan item, 16),
		out:        make(chan *bytes.Buffer, m.QueueSize),
		closing:    make(chan struct{}),
		dispatched: make(chan struct{}),
		settled:    make(chan struct{}, 1),
	}
	if m.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(m.RateLimit), max(1, int(m.RateLimit)))
	}
	return c
}

// serve runs the connection until it ends. It returns after every goroutine of the
// connection has stopped.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.dispatch() }()
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.ping() }()
	c.read()
	wg.Wait()
	c.events.mu.Lock()
	c.events.stop()
	c.events.mu.Unlock()
	c.m.methods.Release(c.sess)
}

// requestClose asks the writer to flush the queue (or discard it), write final if not nil, and
// close the connection with code. The first request wins.
func (c *conn) requestClose(code websocket.StatusCode, why string, final []byte, discard bool) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeWhy, c.finalFrame = code, why, final
		if discard {
			c.discard.Store(true)
		}
		close(c.closing)
	})
}

// read is the one reader: it reads frames within the size limit for the session's state and
// hands them to the dispatcher in order. Frames of an anonymous session are held to the
// anonymous limit, except when requests ahead of the frame are still being dispatched (a
// pipelined login): then a frame over that limit waits for them, and the limit that applies is
// the one of the login state the frame will be handled in.
func (c *conn) read() {
	defer close(c.in)
	for {
		_, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			c.logReadEnd(err)
			c.requestClose(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		buf := getBuf()
		anonymous := !c.sess.LoggedIn()
		limit := c.m.ReadLimit
		if anonymous {
			limit = c.m.ReadLimitAnonymous
		}
		_, err = buf.ReadFrom(io.LimitReader(r, limit+1))
		if err == nil && anonymous && int64(buf.Len()) > limit && c.pending.Load() > 0 {
			if !c.waitDispatched() {
				putBuf(buf)
				return
			}
			if c.sess.LoggedIn() {
				limit = c.m.ReadLimit
				_, err = buf.ReadFrom(io.LimitReader(r, limit+1-int64(buf.Len())))
			}
		}
		if err != nil {
			putBuf(buf)
			c.logReadEnd(err)
			c.requestClose(websocket.StatusNormalClosure, "", nil, false)
			return
		}
		// Over the limit: answer, then close with 1009; the close discards the rest.
		it := item{frame: buf, oversize: int64(buf.Len()) > limit}
		c.pending.Add(1)
		select {
		case c.in <- it:
		case <-c.ctx.Done():
			putBuf(buf)
			return
		}
		if it.oversize {
			return
		}
	}
}

// waitDispatched waits until the dispatcher has answered every frame handed to it. It returns
// false if the connection ended meanwhile.
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

func (c *conn) logReadEnd(err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return
	}
	c.log.Debug().Err(err).Msg("websocket read ended")
}

// dispatch handles requests one after the other, in the order they arrived, so that a client
// may pipeline a login and the calls that depend on it.
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
			if it.oversize {
				id, typ := Peek(it.frame.Bytes())
				putBuf(it.frame)
				c.reply(&Reply{UUID: id, Type: typ, StatusCode: core.Malformed,
					StatusString: "Malformed message: over the size limit; closing."})
				c.requestClose(websocket.StatusMessageTooBig, "message too big", nil, false)
				return
			}
			rep := c.handle(it.frame.Bytes())
			c.reply(&rep)
			putBuf(it.frame)
			if rep.after != nil {
				rep.after()
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

// handle decodes and runs one request and returns its reply.
func (c *conn) handle(frame []byte) Reply {
	req, derr := DecodeRequest(frame)
	if derr != nil {
		c.log.Debug().Str("req", req.UUID).Str("type", req.Type).Str("error", derr.Msg).Msg("malformed frame")
		return Reply{UUID: req.UUID, Type: req.Type, StatusCode: derr.Code, StatusString: derr.Msg}
	}
	if c.limiter != nil && !c.limiter.Allow() {
		return Reply{UUID: req.UUID, Type: req.Type, StatusCode: core.RateLimited,
			StatusString: "Too many requests on this connection; slow down."}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.m.CallTimeout.D())
	content, after, err := c.m.methods.Invoke(ctx, c.sess, req.Type, req.Content, c.log)
	cancel()
	rep := Reply{UUID: req.UUID, Type: req.Type, Content: content, after: after}
	if err != nil {
		ce, incident := core.StatusOf(err)
		rep.StatusCode, rep.StatusString, rep.Content = ce.Code, ce.Msg, ce.Content
		switch {
		case incident != "":
			c.log.Error().Err(err).Str("req", req.UUID).Str("type", req.Type).Str("incident", incident).Msg("call failed")
		case ce.Code == core.DatabaseError || ce.Code == core.Timeout:
			c.log.Warn().Err(ce.Err).Str("req", req.UUID).Str("type", req.Type).Str("status", ce.Code.String()).Msg("call failed")
		default: // the client's mistake: not worth more than a debug line
			c.log.Debug().Str("req", req.UUID).Str("type", req.Type).Str("status", ce.Code.String()).Str("error", ce.Msg).Msg("call refused")
		}
	}
	if e := c.log.Debug(); e.Enabled() {
		e.Str("req", req.UUID).Str("type", req.Type).Str("status", rep.StatusCode.String()).Dur("took", time.Since(start)).Msg("call")
	}
	return rep
}

// reply queues a response, waiting for room: a client that sends requests must read replies.
func (c *conn) reply(r *Reply) {
	b := c.encode(r)
	select {
	case c.out <- b:
	case <-c.ctx.Done():
		putBuf(b)
	}
}

// encode returns r encoded in a pooled buffer; content that cannot be encoded (a bug) becomes a
// GENERAL_FAILURE reply.
func (c *conn) encode(r *Reply) *bytes.Buffer {
	b := getBuf()
	if err := encodeReply(b, r); err != nil {
		c.log.Error().Err(err).Str("type", r.Type).Msg("reply not encodable")
		b.Reset()
		_ = encodeReply(b, &Reply{UUID: r.UUID, Type: r.Type, StatusCode: core.GeneralFailure,
			StatusString: "Internal error: reply not encodable."})
	}
	return b
}

// Push queues a server-initiated message without waiting. It reports false when the client's
// queue is full, in which case the client is sent a lagged notice and closed with 4001.
func (c *conn) Push(typ string, content any) bool {
	select {
	case <-c.closing:
		return false
	default:
	}
	b := c.encode(&Reply{UUID: c.uuids.next(), Type: typ, Content: content})
	select {
	case c.out <- b:
		return true
	default:
		putBuf(b)
		c.lagged()
		return false
	}
}

// encodeEvent returns an "event" push frame around already encoded content.
func (c *conn) encodeEvent(content []byte) *bytes.Buffer {
	b := getBuf()
	b.WriteString(`{"uuid":"`)
	b.WriteString(c.uuids.next())
	b.WriteString(`","type":"event","status_code":0,"status_string":"","content":`)
	b.Write(content)
	b.WriteByte('}')
	return b
}

// lagged closes a client that cannot keep up: its queue is dropped, it gets a lagged notice and
// the close code 4001, and it may resume with since.
func (c *conn) lagged() {
	c.m.slow.Inc()
	notice, _ := json.Marshal(Reply{UUID: c.uuids.next(), Type: "lagged",
		Content: map[string]string{"reason": "The client did not keep up; resume with since."}})
	c.requestClose(CloseLagged, "lagged", notice, true)
	c.log.Warn().Msg("slow client closed (lagged)")
}

// write is the one writer. It writes every frame that is ready under one write deadline. On a
// close request it waits (bounded) for the dispatcher to finish the request in hand, flushes
// the queue (unless told to discard it), writes the final frame if any, and closes with the
// requested code.
func (c *conn) write() {
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
	case <-time.After(c.m.WriteTimeout.D()):
	}
	if c.discard.Load() {
		for {
			select {
			case b := <-c.out:
				putBuf(b)
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
		b := getBuf()
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
func (c *conn) writeBatch(first *bytes.Buffer) bool {
	deadline := time.Now().Add(c.m.WriteTimeout.D())
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	c.cork.cork()
	b := first
	for {
		err := c.ws.Write(ctx, websocket.MessageText, b.Bytes())
		putBuf(b)
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
func (c *conn) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		c.m.slow.Inc()
		c.log.Warn().Msg("slow client dropped (write timed out)")
		return
	}
	c.log.Debug().Err(err).Msg("websocket write failed")
}

// ping checks the peer every PingInterval; a missing pong ends the connection.
func (c *conn) ping() {
	t := time.NewTicker(c.m.PingInterval.D())
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.m.PingTimeout.D())
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.log.Debug().Err(err).Msg("ping failed; closing")
				}
				c.cancel()
				_ = c.ws.CloseNow()
				return
			}
		}
	}
}
