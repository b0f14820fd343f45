package sysadm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// stream is a connection's event subscription: one eventlog.Stream over the union of its
// topic patterns. mu is held by the dispatcher while it changes the subscription.
type stream struct {
	mu     sync.Mutex
	topics []string
	cur    *eventlog.Stream

	lastMu sync.Mutex
	last   int64 // seq of the last event queued to the client (or where the stream started)
}

func (s *stream) setLast(seq int64) {
	s.lastMu.Lock()
	s.last = max(s.last, seq)
	s.lastMu.Unlock()
}

func (s *stream) lastSeq() int64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last
}

// stop ends the current eventlog stream and waits for it. Call with mu held.
func (s *stream) stop() {
	if s.cur != nil {
		s.cur.Stop()
		s.cur.Wait()
		s.cur = nil
	}
}

// sink delivers a stream's events as sysadm pushes:
// {"namespace":"events","name":"<topic>","id":"","args":{"seq","epoch","time","topic","data"}}.
type sink struct {
	c *conn
}

// Deliver queues an event, waiting for room in the connection's queue.
func (k sink) Deliver(ctx context.Context, e *eventlog.Event) error {
	var b bytes.Buffer
	name, _ := json.Marshal(e.Topic)
	b.WriteString(`{"namespace":"events","name":`)
	b.Write(name)
	b.WriteString(`,"id":"","args":`)
	b.Write(k.c.m.events.PushJSON(e))
	b.WriteByte('}')
	select {
	case k.c.out <- b.Bytes():
		k.c.events.setLast(e.Seq)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-k.c.closing:
		return context.Canceled
	}
}

// Lagged closes the client with 4001 after a lagged notice.
func (k sink) Lagged() { k.c.lagged() }

// subscription is the args of events/subscribe and events/unsubscribe: a topic pattern, an
// array of them, or (gatehouse extension, to resume) {"topics": [...], "since": N, "epoch"}.
type subscription struct {
	Topics []string
	Since  *int64
	Epoch  string
}

func decodeSubscription(args json.RawMessage) (subscription, error) {
	var s subscription
	raw := bytes.TrimSpace(args)
	bad := refuse(http.StatusBadRequest, "args: want a topic pattern, an array of them, or {\"topics\": [...], \"since\": N}")
	switch {
	case len(raw) == 0:
	case raw[0] == '"':
		var t string
		if json.Unmarshal(raw, &t) != nil {
			return s, bad
		}
		s.Topics = []string{t}
	case raw[0] == '[':
		if json.Unmarshal(raw, &s.Topics) != nil {
			return s, bad
		}
	case raw[0] == '{':
		var o struct {
			Topics []string `json:"topics"`
			Since  *int64   `json:"since"`
			Epoch  string   `json:"epoch"`
		}
		if err := decodeArgs(raw, &o); err != nil {
			return s, err
		}
		s = subscription{Topics: o.Topics, Since: o.Since, Epoch: o.Epoch}
	default:
		return s, bad
	}
	if len(s.Topics) > 64 {
		return s, refuse(http.StatusBadRequest, "at most 64 topic patterns")
	}
	for _, p := range s.Topics {
		if core.ValidatePattern(p) != nil {
			return s, refuse(http.StatusBadRequest, "invalid topic pattern (dot-separated tokens, * for one token, > for the rest)")
		}
	}
	if s.Since != nil && *s.Since < 0 {
		return s, refuse(http.StatusBadRequest, "since must be ≥ 0")
	}
	return s, nil
}

// eventsConn returns the client's connection, or the reason it has no event stream.
func (m *Module) eventsConn(cl *client) (*conn, error) {
	if m.events == nil {
		return nil, refuse(http.StatusNotFound, "events are not available (the eventlog module is not loaded)")
	}
	if cl.conn == nil {
		return nil, refuse(http.StatusBadRequest, "events are only available over the websocket")
	}
	return cl.conn, nil
}

// subscribe adds topic patterns to the connection's subscription and answers
// {"subscribe": "<last pattern>", "seq": <log end>, "epoch"} (plus "resync": true when since
// could not be resumed). With since, the events after it are replayed first; without, an
// existing subscription continues from the last event it sent.
func (m *Module) subscribe(ctx context.Context, cl *client, args json.RawMessage) (result, error) {
	c, err := m.eventsConn(cl)
	if err != nil {
		return result{}, err
	}
	sub, err := decodeSubscription(args)
	if err != nil {
		return result{}, err
	}
	if len(sub.Topics) == 0 {
		return result{}, refuse(http.StatusBadRequest, "at least one topic pattern is required")
	}
	st := &c.events
	st.mu.Lock()
	defer st.mu.Unlock()
	topics := slices.Clone(st.topics)
	for _, t := range sub.Topics {
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	since := int64(-1)
	switch {
	case sub.Since != nil:
		since = *sub.Since
	case st.cur != nil:
		since = st.lastSeq()
	}
	st.stop()
	s, resync, err := m.openStream(ctx, c, topics, since, sub.Epoch)
	if err != nil {
		return result{}, err
	}
	st.topics, st.cur = topics, s
	st.lastMu.Lock()
	st.last = s.LastSeq()
	if since >= 0 && !resync {
		st.last = since
	}
	st.lastMu.Unlock()
	reply := map[string]any{"subscribe": sub.Topics[len(sub.Topics)-1], "seq": s.LastSeq(), "epoch": m.events.Epoch()}
	if resync {
		reply["resync"] = true
	}
	return result{args: reply, after: func() { s.Start(c.ctx) }}, nil
}

// openStream subscribes to the log with rights re-checked for every event pushed; when since
// cannot be resumed it subscribes from now and reports resync.
func (m *Module) openStream(ctx context.Context, c *conn, topics []string, since int64, epoch string) (*eventlog.Stream, bool, error) {
	opts := eventlog.StreamOptions{
		Patterns: topics, Since: since, Epoch: epoch, Name: "sysadm-" + c.cl.bind[:8], Queue: m.EventQueue,
		Allowed: func(ctx context.Context, e *eventlog.Event) (bool, error) {
			id, err := m.methods.Check(ctx, c.cl.sess)
			if err != nil {
				return false, err // the session ended: so does its stream
			}
			return eventlog.Visible(id, e), nil
		},
	}
	s, err := m.events.Subscribe(ctx, opts, sink{c: c})
	if errors.Is(err, eventlog.ErrResync) {
		opts.Since = -1
		s, err = m.events.Subscribe(ctx, opts, sink{c: c})
		return s, true, err
	}
	if err != nil {
		return nil, false, refuse(http.StatusBadRequest, err.Error())
	}
	return s, false, nil
}

// unsubscribe removes topic patterns (all when args name none) and answers
// {"unsubscribe": "<last pattern>"}.
func (m *Module) unsubscribe(ctx context.Context, cl *client, args json.RawMessage) (result, error) {
	c, err := m.eventsConn(cl)
	if err != nil {
		return result{}, err
	}
	sub, err := decodeSubscription(args)
	if err != nil {
		return result{}, err
	}
	st := &c.events
	st.mu.Lock()
	defer st.mu.Unlock()
	var keep []string
	if len(sub.Topics) > 0 {
		for _, t := range st.topics {
			if !slices.Contains(sub.Topics, t) {
				keep = append(keep, t)
			}
		}
	}
	last := ""
	if len(sub.Topics) > 0 {
		last = sub.Topics[len(sub.Topics)-1]
	}
	reply := map[string]any{"unsubscribe": last}
	if len(keep) == len(st.topics) {
		return result{args: reply}, nil
	}
	since := st.lastSeq()
	st.stop()
	st.topics = keep
	if len(keep) == 0 {
		return result{args: reply}, nil
	}
	s, _, err := m.openStream(ctx, c, keep, since, "")
	if err != nil {
		return result{}, err
	}
	st.cur = s
	return result{args: reply, after: func() { s.Start(c.ctx) }}, nil
}
