package wsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/wsconn"
)

// Close codes used by the server (application codes follow Centrifuge's split: 4000–4499 the
// client should reconnect, 4500–4999 it should not).
const (
	CloseLagged = wsconn.CloseLagged // the client could not keep up; resume with since
)

// conn is one websocket connection of the Leosac dialect: the Leosac envelope and dispatch
// over the shared connection machinery (wsconn), which reads, dispatches in order, writes
// through a bounded queue and pings.
type conn struct {
	*wsconn.Conn
	m    *Module
	id   string
	sess *core.Session
	log  zerolog.Logger

	events *wsconn.Events // the event subscription (events.subscribe); nil without the event log
	uuids  *uuidGen       // fresh uuids of pushes
}

// Handle answers one frame (the dispatcher calls it, in arrival order). A frame over the size
// limit is answered MALFORMED with what Peek recovers; the connection then closes with 1009.
func (c *conn) Handle(f wsconn.Frame) {
	if f.Oversize {
		id, typ := Peek(f.Data)
		c.reply(&Reply{UUID: id, Type: typ, StatusCode: core.Malformed,
			StatusString: "Malformed message: over the size limit; closing."})
		return
	}
	rep := c.handle(f.Data)
	c.reply(&rep)
	if rep.after != nil {
		rep.after()
	}
}

// LaggedNotice is the {"type": "lagged"} push sent before the close 4001.
func (c *conn) LaggedNotice() []byte {
	notice, _ := json.Marshal(Reply{UUID: c.uuids.next(), Type: "lagged",
		Content: map[string]string{"reason": "The client did not keep up; resume with since."}})
	return notice
}

// handle decodes and runs one request and returns its reply.
func (c *conn) handle(frame []byte) Reply {
	req, derr := DecodeRequest(frame)
	if derr != nil {
		c.log.Debug().Str("req", req.UUID).Str("type", req.Type).Str("error", derr.Msg).Msg("malformed frame")
		return Reply{UUID: req.UUID, Type: req.Type, StatusCode: derr.Code, StatusString: derr.Msg}
	}
	if !c.Allow() {
		return Reply{UUID: req.UUID, Type: req.Type, StatusCode: core.RateLimited,
			StatusString: "Too many requests on this connection; slow down."}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.Context(), c.m.CallTimeout.D())
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
		e.Str("req", req.UUID).Str("type", req.Type).Str("status", rep.StatusCode.String()).Dur("took_ms", time.Since(start)).Msg("call")
	}
	return rep
}

// reply queues a response, waiting for room: a client that sends requests must read replies.
func (c *conn) reply(r *Reply) { c.Send(c.encode(r)) }

// encode returns r encoded in a pooled buffer; content that cannot be encoded (a bug) becomes a
// GENERAL_FAILURE reply.
func (c *conn) encode(r *Reply) *bytes.Buffer {
	b := wsconn.GetBuf()
	if err := encodeReply(b, r); err != nil {
		c.log.Error().Err(err).Str("type", r.Type).Msg("reply not encodable")
		b.Reset()
		_ = encodeReply(b, &Reply{UUID: r.UUID, Type: r.Type, StatusCode: core.GeneralFailure,
			StatusString: "Internal error: reply not encodable."})
	}
	return b
}

// push queues a server-initiated message without waiting. It reports false when the client's
// queue is full, in which case the client is sent a lagged notice and closed with 4001.
func (c *conn) push(typ string, content any) bool {
	select {
	case <-c.Closing():
		return false
	default:
	}
	return c.Push(c.encode(&Reply{UUID: c.uuids.next(), Type: typ, Content: content}))
}

// encodeEvent returns an "event" push frame around already encoded content.
func (c *conn) encodeEvent(content []byte) *bytes.Buffer {
	b := wsconn.GetBuf()
	b.WriteString(`{"uuid":"`)
	b.WriteString(c.uuids.next())
	b.WriteString(`","type":"event","status_code":0,"status_string":"","content":`)
	b.Write(content)
	b.WriteByte('}')
	return b
}
