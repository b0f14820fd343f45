package wsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"sync"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// registerEvents registers events.subscribe and events.unsubscribe (contract §5, §9).
func (m *Module) registerEvents(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "events.subscribe", Handler: m.eventsSubscribe},
		core.Method{Type: "events.unsubscribe", Handler: m.eventsUnsubscribe},
	)
}

// stream is a connection's event subscription: one eventlog.Stream over the union of the
// topics the client subscribed to.
type stream struct {
	mu     sync.Mutex
	topics []string
	cur    *eventlog.Stream
	last   int64 // seq of the last event queued to the client (or the stream's start)
	lastMu sync.Mutex
}

func (s *stream) setLast(seq int64) {
	s.lastMu.Lock()
	if seq > s.last {
		s.last = seq
	}
	s.lastMu.Unlock()
}

func (s *stream) lastSeq() int64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last
}

// stop ends the current eventlog stream and waits for it. Call with s.mu held.
func (s *stream) stop() {
	if s.cur != nil {
		s.cur.Stop()
		s.cur.Wait()
		s.cur = nil
	}
}

// sink delivers a stream's events to the connection as Leosac "event" pushes.
type sink struct {
	c   *conn
	log *eventlog.Log
	st  *stream
}

func (k sink) frame(e *eventlog.Event) *bytes.Buffer {
	return k.c.encodeEvent(k.log.PushJSON(e))
}

// Deliver queues an event, waiting for room in the connection's queue.
func (k sink) Deliver(ctx context.Context, e *eventlog.Event) error {
	b := k.frame(e)
	select {
	case k.c.out <- b:
		k.st.setLast(e.Seq)
		return nil
	case <-ctx.Done():
		putBuf(b)
		return ctx.Err()
	case <-k.c.closing:
		putBuf(b)
		return context.Canceled
	}
}

// Lagged closes the client with 4001 after a lagged notice.
func (k sink) Lagged() { k.c.lagged() }

type subscribeRequest struct {
	Topics []string `json:"topics"`
	Since  *int64   `json:"since"`
	Epoch  string   `json:"epoch"`
}

// eventsSubscribe adds topics to the connection's subscription. With since, the events after
// it are replayed first (then live, with no gap and no duplicate); the reply says
// {"seq": <last seq of the log>, "epoch"} or, when since cannot be resumed here (other epoch,
// older than retention), {"resync": true, "seq", "epoch"} and the subscription goes on live from
// now. Without since, an existing subscription continues from the last event it sent.
func (m *Module) eventsSubscribe(ctx context.Context, call *core.Call) (any, error) {
	var req subscribeRequest
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if len(req.Topics) == 0 {
		return nil, core.E(core.InvalidArgument, "topics: at least one topic pattern is required", nil)
	}
	if len(req.Topics) > 64 {
		return nil, core.E(core.InvalidArgument, "topics: at most 64 patterns", nil)
	}
	for i, p := range req.Topics {
		if err := core.ValidatePattern(p); err != nil {
			return nil, core.Errorf(core.InvalidArgument, "topics[%d]: invalid pattern (dot-separated tokens, * for one token, > for the rest)", i)
		}
	}
	if req.Since != nil && *req.Since < 0 {
		return nil, core.E(core.InvalidArgument, "since: must be ≥ 0", nil)
	}
	c := m.connOf(call.Session)
	if c == nil {
		return nil, core.E(core.GeneralFailure, "No event stream on this connection.", nil)
	}
	st := c.events
	st.mu.Lock()
	defer st.mu.Unlock()
	topics := slices.Clone(st.topics)
	for _, t := range req.Topics {
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	since := int64(-1)
	switch {
	case req.Since != nil:
		since = *req.Since
	case st.cur != nil:
		since = st.lastSeq()
	}
	st.stop()
	s, resync, err := m.openStream(ctx, c, topics, since, req.Epoch)
	if err != nil {
		return nil, err
	}
	st.topics, st.cur = topics, s
	st.last = s.LastSeq()
	if since >= 0 && !resync {
		st.last = since
	}
	call.AfterReply(func() { s.Start(c.ctx) })
	reply := map[string]any{"seq": s.LastSeq(), "epoch": m.events.Epoch()}
	if resync {
		reply["resync"] = true
	}
	return reply, nil
}

// openStream subscribes to the log; when since cannot be resumed it subscribes from now and
// reports resync.
func (m *Module) openStream(ctx context.Context, c *conn, topics []string, since int64, epoch string) (*eventlog.Stream, bool, error) {
	st := c.events
	opts := eventlog.StreamOptions{
		Patterns: topics, Since: since, Epoch: epoch, Name: "ws-" + c.id, Queue: m.EventQueue,
		Allowed: func(ctx context.Context, e *eventlog.Event) (bool, error) {
			id, err := m.methods.Check(ctx, c.sess)
			if err != nil {
				return false, err // the session ended: so does its stream
			}
			return eventlog.Visible(id, e), nil
		},
	}
	k := sink{c: c, log: m.events, st: st}
	s, err := m.events.Subscribe(ctx, opts, k)
	if errors.Is(err, eventlog.ErrResync) {
		opts.Since = -1
		s, err = m.events.Subscribe(ctx, opts, k)
		return s, true, err
	}
	if err != nil {
		return nil, false, core.E(core.InvalidArgument, "topics: "+err.Error(), err)
	}
	return s, false, nil
}

// eventsUnsubscribe removes the given topics (all when absent) from the subscription.
func (m *Module) eventsUnsubscribe(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Topics []string `json:"topics"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	c := m.connOf(call.Session)
	if c == nil {
		return map[string]any{}, nil
	}
	st := c.events
	st.mu.Lock()
	defer st.mu.Unlock()
	var keep []string
	if req.Topics != nil {
		for _, t := range st.topics {
			if !slices.Contains(req.Topics, t) {
				keep = append(keep, t)
			}
		}
	}
	if len(keep) == len(st.topics) && st.cur != nil {
		return map[string]any{}, nil
	}
	since := st.lastSeq()
	st.stop()
	st.topics = keep
	if len(keep) > 0 {
		s, _, err := m.openStream(ctx, c, keep, since, "")
		if err != nil {
			return nil, err
		}
		st.cur = s
		call.AfterReply(func() { s.Start(c.ctx) })
	}
	return map[string]any{}, nil
}

// uuidGen makes the fresh UUIDv4 strings of pushes from a per-connection ChaCha8 stream
// seeded from crypto/rand: unique and unpredictable enough for message ids, and cheap at
// thousands of pushes a second.
type uuidGen struct {
	mu  sync.Mutex
	rng *mrand.ChaCha8
}

func newUUIDGen() *uuidGen {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return &uuidGen{rng: mrand.NewChaCha8(seed)}
}

func (g *uuidGen) next() string {
	var b [16]byte
	g.mu.Lock()
	binary.LittleEndian.PutUint64(b[:8], g.rng.Uint64())
	binary.LittleEndian.PutUint64(b[8:], g.rng.Uint64())
	g.mu.Unlock()
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
