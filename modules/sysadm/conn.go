package sysadm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/modules/wsconn"
)

// Close codes (besides 1000 idle, 1001 shutdown, 1008 authentication window, 1009 over-size).
// As in the Leosac dialect: 4000–4499 the client may reconnect, 4500–4999 it should not
// without new credentials.
const (
	CloseLagged  = wsconn.CloseLagged         // could not keep up; resubscribe with since
	CloseRevoked = websocket.StatusCode(4501) // the session's token was revoked or expired
)

// conn is one sysadm websocket: the sysadm envelope and dispatch over the shared connection
// machinery (wsconn), which reads, dispatches in order, writes through a bounded queue, pings,
// and closes connections left unauthenticated (AuthWindow) or idle (IdleTimeout).
type conn struct {
	*wsconn.Conn
	m      *Module
	cl     *client
	events *wsconn.Events // nil without the event log
}

// randomID returns 128 random bits in hex: a connection's challenge bind.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (m *Module) serveWS(w http.ResponseWriter, r *http.Request) {
	var c *conn
	sess := core.NewSession(Dialect, remoteOf(r), r.UserAgent(), func(reason string) {
		if c != nil {
			c.sessionEnded(reason)
		}
	})
	id := randomID()
	cl := &client{sess: sess, bind: id, log: m.log.With().Str("conn", id[:8]).Str("remote", sess.Remote).Logger()}
	wc := m.hub.Accept(w, r, sess, cl.log)
	if wc == nil {
		return
	}
	defer m.hub.Leave(wc)
	c = &conn{Conn: wc, m: m, cl: cl}
	if m.events != nil {
		c.events = wsconn.NewEvents(wc, wsconn.EventsConfig{
			Log: m.events, Methods: m.methods, Name: "sysadm-" + id[:8], Queue: m.EventQueue,
			Frame:     m.eventFrame,
			BadTopics: func(err error) error { return refuse(http.StatusBadRequest, err.Error()) },
		})
	}
	cl.conn = c

	ctx, cancel := context.WithTimeout(context.Background(), m.CallTimeout.D())
	m.peerLogin(ctx, r, cl)
	cancel()
	cl.log.Debug().Bool("logged_in", sess.LoggedIn()).Msg("sysadm websocket connected")

	c.Serve(c)
	if c.events != nil {
		c.events.Stop()
	}
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

// sessionEnded is the session's notify: its token was revoked or expired elsewhere. The client
// gets a 401 error frame with the reason, then the close 4501.
func (c *conn) sessionEnded(reason string) {
	c.Close(CloseRevoked, "session ended: "+reason,
		errorFrame(Request{Namespace: "rpc"}, http.StatusUnauthorized, "Unauthorized: session ended: "+reason), false)
}

// LaggedNotice is the events/lagged push sent before the close 4001.
func (c *conn) LaggedNotice() []byte {
	return encodeFrame(frame{Namespace: "events", Name: "lagged",
		Args: map[string]string{"reason": "The client did not keep up; subscribe again with since."}})
}

// Handle answers one frame (the dispatcher calls it, in arrival order). A frame over the size
// limit is answered 400; the connection then closes with 1009.
func (c *conn) Handle(f wsconn.Frame) {
	var req Request
	var derr *core.Error
	switch {
	case f.Oversize:
		c.SendBytes(errorFrame(req, http.StatusBadRequest, "Bad Request: message over the size limit; closing."))
		return
	case f.Binary:
		derr = malformed("binary frames are not accepted; send JSON text")
	default:
		req, derr = DecodeRequest(f.Data)
	}
	if derr != nil {
		c.cl.log.Debug().Str("error", derr.Msg).Msg("malformed frame")
		c.SendBytes(errorFrame(req, http.StatusBadRequest, "Bad Request: "+derr.Msg))
		return
	}
	if !c.Allow() {
		c.SendBytes(errorFrame(req, http.StatusTooManyRequests, "Too Many Requests: slow down."))
		return
	}
	ctx, cancel := context.WithTimeout(c.Context(), c.m.CallTimeout.D())
	res, err := c.m.exec(ctx, c.cl, req)
	cancel()
	if err != nil {
		code, msg := c.m.failure(c.cl, req, err)
		c.SendBytes(errorFrame(req, code, msg))
		return
	}
	if res.silent {
		return
	}
	c.SendBytes(replyFrame(req, res.args))
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
