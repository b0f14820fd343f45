package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gatehouse/core"
)

// Sink receives the events of one Stream for one client. Its methods are called from the
// stream's goroutine only.
type Sink interface {
	// Deliver queues an event to the client, waiting for room (bounded by ctx). While it
	// waits, live events accumulate in the stream's bounded subscription queue; the producers
	// never wait.
	Deliver(ctx context.Context, e *Event) error
	// Lagged is called once when the subscription queue overflowed (the client could not keep
	// up); the stream has ended and the transport should close the connection (4001) so the
	// client resumes with since.
	Lagged()
}

// StreamOptions configure Log.Subscribe.
type StreamOptions struct {
	// Patterns are the topic patterns (NATS syntax) of the events wanted.
	Patterns []string
	// Since is the last seq the client has; events after it are replayed first. A negative
	// Since means "from now on" (no replay).
	Since int64
	// Epoch, if not empty, is the epoch the client's Since belongs to.
	Epoch string
	// Allowed, if not nil, is asked for every event before it is delivered (rights are
	// re-checked at push time); false skips the event, an error ends the stream.
	Allowed func(ctx context.Context, e *Event) (bool, error)
	// Queue bounds the live events waiting while history is replayed or the client is slow.
	// 0 means 4096.
	Queue int
	// Name tags the bus subscription (logs, metrics).
	Name string
	// Page is how many events the replay reads per query; 0 means DefaultReplayPage.
	Page int
}

// Bounds of a subscription (issue 10, point 5).
const (
	// MaxPatterns is the most topic patterns one stream (and so one connection, whose
	// subscriptions are one stream) may hold.
	MaxPatterns = 64
	// DefaultReplayPage is how many events a replay reads per query: each query is a short
	// range read on the primary key, and only one page is in memory at a time, however old
	// since is.
	DefaultReplayPage = 500
)

// ErrTooManyPatterns is returned by Subscribe for more than MaxPatterns patterns.
var ErrTooManyPatterns = fmt.Errorf("at most %d topic patterns per subscription", MaxPatterns)

// ErrResync means the client's position cannot be resumed here: its epoch is another
// database's, or its since is older than what the log keeps (or newer than its end). The
// client must reload its state and subscribe without since.
var ErrResync = errors.New("resync needed")

// Stream delivers the events of a subscription: the history after Since, then live events,
// in seq order, with no gap and no duplicate. Start it with Start; stop it with Stop.
type Stream struct {
	log      *Log
	sub      *core.Subscription
	opts     StreamOptions
	last     int64 // seq the replay ends at (the log's end when subscribing)
	sink     Sink
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Subscribe opens a stream. It subscribes to the bus and reads the log's last seq atomically
// with respect to Write (under the same mutex), so every event is either in the replayed
// history or delivered live. It returns ErrResync when Since cannot be resumed. Nothing is
// delivered before Start.
func (l *Log) Subscribe(ctx context.Context, opts StreamOptions, sink Sink) (*Stream, error) {
	for _, p := range opts.Patterns {
		if err := core.ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	if len(opts.Patterns) == 0 {
		return nil, errors.New("no topic pattern")
	}
	if len(opts.Patterns) > MaxPatterns {
		return nil, ErrTooManyPatterns
	}
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Page <= 0 {
		opts.Page = DefaultReplayPage
	}
	if opts.Epoch != "" && opts.Epoch != l.epoch && opts.Since >= 0 {
		return nil, ErrResync
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sub, err := l.bus.Subscribe(core.SubscribeOptions{Name: opts.Name, Queue: opts.Queue, OnFull: core.DropAndMark}, opts.Patterns...)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	last, err := l.lastAssigned(ctx)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	// Resumable when retention deleted nothing after since, and since is not beyond the end
	// of this log (which would mean another database's history).
	if opts.Since >= 0 && (opts.Since > last || opts.Since < l.Purged()) {
		sub.Close()
		return nil, ErrResync
	}
	return &Stream{log: l, sub: sub, opts: opts, last: last, sink: sink,
		stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// LastSeq returns the seq the stream's history ends at: the log's last seq when it subscribed.
func (s *Stream) LastSeq() int64 { return s.last }

// Start runs the stream in its own goroutine until Stop, the end of ctx, a lag, or a failed
// rights check.
func (s *Stream) Start(ctx context.Context) {
	go func() {
		defer close(s.done)
		defer s.sub.Close()
		if err := s.run(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errStopped) {
			s.log.log.Warn().Err(err).Str("stream", s.opts.Name).Msg("event stream ended")
		}
	}()
}

// Stop ends the stream and waits for its goroutine. Idempotent; safe before Start only if
// Start is never called afterwards.
func (s *Stream) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.sub.Close()
}

// Wait blocks until the stream's goroutine has ended.
func (s *Stream) Wait() { <-s.done }

var errStopped = errors.New("stream stopped")

func (s *Stream) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sent := s.last
	if s.opts.Since >= 0 {
		var err error
		if sent, err = s.replay(ctx); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.sub.Lagged():
			s.sink.Lagged()
			return nil
		case ev := <-s.sub.C():
			// An event taken after a drop must not be delivered before the lag is noticed:
			// the client would resume past the gap.
			select {
			case <-s.sub.Lagged():
				s.sink.Lagged()
				return nil
			default:
			}
			e, ok := ev.Data.(*Event)
			if !ok || ev.Source != "eventlog" || e.Seq <= sent {
				continue
			}
			sent = e.Seq
			if s.opts.Allowed != nil {
				ok, err := s.opts.Allowed(ctx, e)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			if err := s.sink.Deliver(ctx, e); err != nil {
				return err
			}
		}
	}
}

// replayColumns are the columns a replay reads: everything but the audit snapshots, which
// are never pushed. data is read as a BLOB whichever way it was stored (GORM writes
// json.RawMessage as a BLOB; raw SQL, such as a migration's, writes TEXT, which does not scan
// into a json.RawMessage).
const replayColumns = "seq, time, topic, kind, event_mask, author_id, author_name, target_id, target2_id, user_id, door_id, description, CAST(data AS BLOB) AS data"

// ReadPage returns the events with after < seq <= upTo, oldest first, at most limit of them,
// without their audit snapshots (Before and After are nil). It is one range read on the
// primary key: replays page through the log with it, cursor = the last seq of the previous
// page.
func (l *Log) ReadPage(ctx context.Context, after, upTo int64, limit int) ([]*Event, error) {
	var page []*Event
	err := l.db.Read.WithContext(ctx).Select(replayColumns).Where("seq > ? AND seq <= ?", after, upTo).
		Order("seq").Limit(limit).Find(&page).Error
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", after, err)
	}
	return page, nil
}

// replay delivers the history (Since, last] page by page (opts.Page events per query, one page
// in memory at a time) and returns the last seq covered.
func (s *Stream) replay(ctx context.Context) (int64, error) {
	cursor := s.opts.Since
	for cursor < s.last {
		page, err := s.log.ReadPage(ctx, cursor, s.last, s.opts.Page)
		if err != nil {
			return cursor, fmt.Errorf("replay: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			cursor = e.Seq
			if !s.matches(e.Topic) {
				continue
			}
			if s.opts.Allowed != nil {
				ok, err := s.opts.Allowed(ctx, e)
				if err != nil {
					return cursor, err
				}
				if !ok {
					continue
				}
			}
			if err := s.sink.Deliver(ctx, e); err != nil {
				return cursor, err
			}
		}
	}
	return s.last, nil
}

func (s *Stream) matches(topic string) bool {
	for _, p := range s.opts.Patterns {
		if core.MatchSubject(p, topic) {
			return true
		}
	}
	return false
}

// PushContent is the content of a pushed event in the Leosac dialect:
// {"seq","epoch","time","topic","data"}.
type PushContent struct {
	Seq   int64           `json:"seq"`
	Epoch string          `json:"epoch"`
	Time  string          `json:"time"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// Push returns the event as pushed to clients (same for every subscriber).
func (l *Log) Push(e *Event) PushContent {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return PushContent{Seq: e.Seq, Epoch: l.epoch, Time: e.Time.UTC().Format(time.RFC3339Nano), Topic: e.Topic, Data: data}
}

// PushJSON returns Push(e) encoded. Published events carry it already (Write encodes it once,
// before publication, however many subscribers get it); for an event read from the table it
// is computed by the one goroutine that holds the event.
func (l *Log) PushJSON(e *Event) []byte {
	if e.pushJSON == nil {
		b, err := json.Marshal(l.Push(e))
		if err != nil { // Data is JSON from our own encoder; this cannot happen
			b = []byte(`{}`)
		}
		e.pushJSON = b
	}
	return e.pushJSON
}
