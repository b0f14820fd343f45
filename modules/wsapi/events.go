package wsapi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	mrand "math/rand/v2"
	"sync"

	"gatehouse/core"
)

// registerEvents registers events.subscribe and events.unsubscribe (contract §5, §9).
func (m *Module) registerEvents(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "events.subscribe", Handler: m.eventsSubscribe},
		core.Method{Type: "events.unsubscribe", Handler: m.eventsUnsubscribe},
	)
}

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
	if c == nil || c.events == nil {
		return nil, core.E(core.GeneralFailure, "No event stream on this connection.", nil)
	}
	s, resync, err := c.events.Subscribe(ctx, req.Topics, req.Since, req.Epoch)
	if err != nil {
		return nil, err
	}
	call.AfterReply(func() { c.events.Start(s) })
	reply := map[string]any{"seq": s.LastSeq(), "epoch": m.events.Epoch()}
	if resync {
		reply["resync"] = true
	}
	return reply, nil
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
	if c == nil || c.events == nil {
		return map[string]any{}, nil
	}
	s, err := c.events.Unsubscribe(ctx, req.Topics, req.Topics == nil)
	if err != nil {
		return nil, err
	}
	if s != nil {
		call.AfterReply(func() { c.events.Start(s) })
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
