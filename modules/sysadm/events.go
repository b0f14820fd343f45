package sysadm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsconn"
)

// eventFrame encodes an event as a sysadm push:
// {"namespace":"events","name":"<topic>","id":"","args":{"seq","epoch","time","topic","data"}}.
func (m *Module) eventFrame(e *eventlog.Event) *bytes.Buffer {
	b := wsconn.GetBuf()
	name, _ := json.Marshal(e.Topic)
	b.WriteString(`{"namespace":"events","name":`)
	b.Write(name)
	b.WriteString(`,"id":"","args":`)
	b.Write(m.events.PushJSON(e))
	b.WriteByte('}')
	return b
}

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
	s, resync, err := c.events.Subscribe(ctx, sub.Topics, sub.Since, sub.Epoch)
	if err != nil {
		return result{}, err
	}
	reply := map[string]any{"subscribe": sub.Topics[len(sub.Topics)-1], "seq": s.LastSeq(), "epoch": m.events.Epoch()}
	if resync {
		reply["resync"] = true
	}
	return result{args: reply, after: func() { c.events.Start(s) }}, nil
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
	last := ""
	if len(sub.Topics) > 0 {
		last = sub.Topics[len(sub.Topics)-1]
	}
	reply := map[string]any{"unsubscribe": last}
	s, err := c.events.Unsubscribe(ctx, sub.Topics, len(sub.Topics) == 0)
	if err != nil {
		return result{}, err
	}
	if s == nil {
		return result{args: reply}, nil
	}
	return result{args: reply, after: func() { c.events.Start(s) }}, nil
}
