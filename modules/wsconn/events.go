package wsconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// EventsConfig is what a dialect sets for a connection's event subscription.
type EventsConfig struct {
	// Log is the event log subscribed to.
	Log *eventlog.Log
	// Methods re-checks the session's rights for every event pushed (eventlog.Visible); a
	// session that ended ends its stream.
	Methods *core.Methods
	// Name names the connection's streams in the log's lines and metrics.
	Name string
	// Queue bounds the live events waiting for the client on top of the connection's queue.
	Queue int
	// Frame encodes an event as the dialect's push frame, in a pooled buffer (GetBuf).
	Frame func(e *eventlog.Event) *bytes.Buffer
	// BadTopics maps the log's refusal of the topic patterns to the dialect's error.
	BadTopics func(err error) error
}

// Events is one connection's event subscription: one eventlog.Stream over the union of the
// topic patterns the client subscribed to. Subscribe and Unsubscribe are called by the
// connection's dispatcher; they return the new stream, which the dialect starts (Start) once
// its reply is queued, so that the reply comes before the first event.
type Events struct {
	c   *Conn
	cfg EventsConfig

	mu     sync.Mutex // held while the subscription changes
	topics []string
	cur    *eventlog.Stream

	lastMu sync.Mutex
	last   int64 // seq of the last event queued to the client (or where the stream started)
}

// NewEvents returns an empty subscription for c. The dialect calls Stop once c.Serve returned.
func NewEvents(c *Conn, cfg EventsConfig) *Events { return &Events{c: c, cfg: cfg} }

func (s *Events) setLast(seq int64) {
	s.lastMu.Lock()
	s.last = max(s.last, seq)
	s.lastMu.Unlock()
}

func (s *Events) lastSeq() int64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last
}

// stop ends the current stream and waits for it. Call with mu held.
func (s *Events) stop() {
	if s.cur != nil {
		s.cur.Stop()
		s.cur.Wait()
		s.cur = nil
	}
}

// Stop ends the subscription and waits for its stream.
func (s *Events) Stop() {
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
}

// Start runs a stream Subscribe or Unsubscribe returned, for as long as the connection lasts.
func (s *Events) Start(st *eventlog.Stream) { st.Start(s.c.ctx) }

// Subscribe adds topics (valid patterns, at least one) to the subscription; the subscription
// holds at most eventlog.MaxPatterns distinct patterns in all, and a call that would exceed
// that is refused with the dialect's BadTopics error, the subscription unchanged. With since, the
// events after it are replayed first, then live, with no gap and no duplicate; when since
// cannot be resumed here (another epoch, older than retention) resync is set and the stream
// goes on live from now. Without since, an existing subscription continues from the last event
// it queued.
func (s *Events) Subscribe(ctx context.Context, topics []string, since *int64, epoch string) (st *eventlog.Stream, resync bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.Clone(s.topics)
	for _, t := range topics {
		if !slices.Contains(all, t) {
			all = append(all, t)
		}
	}
	if len(all) > eventlog.MaxPatterns {
		// Refused before anything changes: the current subscription goes on as it was.
		return nil, false, s.cfg.BadTopics(fmt.Errorf("%w on a connection (it holds %d; unsubscribe some first)", eventlog.ErrTooManyPatterns, len(s.topics)))
	}
	from := int64(-1)
	switch {
	case since != nil:
		from = *since
	case s.cur != nil:
		from = s.lastSeq()
	}
	s.stop()
	st, resync, err = s.open(ctx, all, from, epoch)
	if err != nil {
		return nil, false, err
	}
	s.topics, s.cur = all, st
	s.lastMu.Lock()
	s.last = st.LastSeq()
	if from >= 0 && !resync {
		s.last = from
	}
	s.lastMu.Unlock()
	return st, resync, nil
}

// Unsubscribe removes topics from the subscription (all of them when all is set). It returns
// the stream over the patterns left, or nil when there is none or nothing changed.
func (s *Events) Unsubscribe(ctx context.Context, topics []string, all bool) (*eventlog.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []string
	if !all {
		for _, t := range s.topics {
			if !slices.Contains(topics, t) {
				keep = append(keep, t)
			}
		}
	}
	if len(keep) == len(s.topics) {
		return nil, nil
	}
	since := s.lastSeq()
	s.stop()
	s.topics = keep
	if len(keep) == 0 {
		return nil, nil
	}
	st, _, err := s.open(ctx, keep, since, "")
	if err != nil {
		return nil, err
	}
	s.cur = st
	return st, nil
}

// open subscribes to the log with rights re-checked for every event pushed; when since cannot
// be resumed it subscribes from now and reports resync.
func (s *Events) open(ctx context.Context, topics []string, since int64, epoch string) (*eventlog.Stream, bool, error) {
	sess, methods := s.c.sess, s.cfg.Methods
	opts := eventlog.StreamOptions{
		Patterns: topics, Since: since, Epoch: epoch, Name: s.cfg.Name, Queue: s.cfg.Queue,
		Allowed: func(ctx context.Context, e *eventlog.Event) (bool, error) {
			id, err := methods.Check(ctx, sess)
			if err != nil {
				return false, err // the session ended: so does its stream
			}
			return eventlog.Visible(id, e), nil
		},
	}
	k := sink{s}
	st, err := s.cfg.Log.Subscribe(ctx, opts, k)
	if errors.Is(err, eventlog.ErrResync) {
		opts.Since = -1
		st, err = s.cfg.Log.Subscribe(ctx, opts, k)
		return st, true, err
	}
	if err != nil {
		return nil, false, s.cfg.BadTopics(err)
	}
	return st, false, nil
}

// sink delivers a stream's events to the connection as the dialect's pushes.
type sink struct{ s *Events }

// Deliver queues an event, waiting for room in the connection's queue.
func (k sink) Deliver(ctx context.Context, e *eventlog.Event) error {
	if err := k.s.c.Deliver(ctx, k.s.cfg.Frame(e)); err != nil {
		return err
	}
	k.s.setLast(e.Seq)
	return nil
}

// Lagged closes the client with 4001 after the dialect's lagged notice.
func (k sink) Lagged() { k.s.c.Lagged() }
