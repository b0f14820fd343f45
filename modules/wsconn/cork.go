package wsconn

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkLimit bounds what a corked connection holds before it writes anyway.
const corkLimit = 64 << 10

// corkPool recycles the buffers of corked batches.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// corkConn is a net.Conn whose writes can be held back and sent together, like TCP_CORK but
// in user space: the websocket library flushes every message with its own write system call,
// and under fan-out (one event to a thousand clients) those calls are most of the server's
// work. The writer goroutine corks, writes every frame that is ready, and uncorks: one system
// call for the batch. Frames written while uncorked (pongs, the close handshake, frames that
// find the connection idle) go out at once.
type corkConn struct {
	net.Conn

	mu     sync.Mutex
	corked bool
	buf    *[]byte // held frames; nil when none
	err    error   // sticky: after a failed write the byte stream is unusable
}

// Write sends p, or holds it when the connection is corked and the held bytes stay within
// corkLimit.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.corked && (c.buf == nil || len(*c.buf)+len(p) <= corkLimit) {
		if c.buf == nil {
			c.buf = corkPool.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// cork holds the following writes until uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was held, in one write that must end by deadline (the library's own write
// timeout does not cover bytes it believes already written).
func (c *corkConn) uncork(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil || c.err != nil {
		c.release()
		return c.err
	}
	_ = c.Conn.SetWriteDeadline(deadline)
	err := c.flushLocked()
	_ = c.Conn.SetWriteDeadline(time.Time{})
	return err
}

func (c *corkConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	_, err := c.Conn.Write(*c.buf)
	c.release()
	if err != nil {
		c.err = fmt.Errorf("write corked frames: %w", err)
	}
	return c.err
}

func (c *corkConn) release() {
	if c.buf != nil {
		if cap(*c.buf) <= corkLimit {
			*c.buf = (*c.buf)[:0]
			corkPool.Put(c.buf)
		}
		c.buf = nil
	}
}

// corkingWriter hands the websocket library a corkConn when it hijacks the connection.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn // set by Hijack
}

// Hijack implements http.Hijacker: the connection and a buffered writer over it both go
// through the corkConn.
func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijack: %T is not an http.Hijacker", w.ResponseWriter)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 { // the 101 response, if the server has not sent it yet
		if err := brw.Writer.Flush(); err != nil {
			_ = nc.Close()
			return nil, nil, fmt.Errorf("hijack: flush: %w", err)
		}
	}
	w.conn = &corkConn{Conn: nc}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 4096)), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setSendBuffer sets the kernel send buffer of a TCP connection (under TLS too); other
// connections are left alone.
func setSendBuffer(c net.Conn, bytes int) {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = t.NetConn()
	}
	if t, ok := c.(*net.TCPConn); ok {
		_ = t.SetWriteBuffer(bytes)
	}
}
