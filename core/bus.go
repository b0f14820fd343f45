package core

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Event is one thing that happened, as carried by the Bus. Topic is a concrete subject such as
// "door.7.opened" or "user.created"; Data is the topic's payload, documented next to its
// publisher, and must be safe to share between goroutines (publishers never mutate it after
// Publish). Time is set by Publish when zero.
type Event struct {
	Topic  string
	Time   time.Time
	Source string
	Data   any
}

// FullPolicy says what Publish does when a subscriber's queue is full.
type FullPolicy int

const (
	// Stall makes the publisher wait for room in the queue, up to the bus's stall budget, and
	// then drop the event and mark the subscriber lagged. It is the policy of internal consumers
	// for which a full queue is a bug to be reported, never a reason to block the server forever.
	// Once lagged, the subscriber is treated as DropAndMark: it must resynchronise anyway.
	Stall FullPolicy = iota
	// DropAndMark drops the event at once and marks the subscriber lagged. It is the policy of
	// network-facing consumers: a slow client must never slow the producers.
	DropAndMark
)

// SubscribeOptions configure one subscription. The zero value is a 256-event Stall queue.
type SubscribeOptions struct {
	Name   string     // for logs and metrics
	Queue  int        // capacity of the queue; 0 means 256
	OnFull FullPolicy // what to do when the queue is full
}

// Subscription receives the events whose topic matches any of its patterns, in publication
// order, through C. It is safe for concurrent use.
type Subscription struct {
	bus      *Bus
	name     string
	patterns []string
	policy   FullPolicy
	ch       chan Event
	lagged   chan struct{}
	lagOnce  sync.Once
	dropped  atomic.Uint64
	done     chan struct{}
	doneOnce sync.Once
}

// C returns the channel events are delivered on. It is never closed; select on Done as well.
func (s *Subscription) C() <-chan Event { return s.ch }

// Lagged returns a channel that is closed the first time an event for this subscriber had to be
// dropped. A consumer that cannot tolerate gaps treats it as the end of the subscription.
func (s *Subscription) Lagged() <-chan struct{} { return s.lagged }

// Dropped returns how many events were dropped for this subscriber.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Done returns a channel closed when the subscription or the whole bus is closed.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close ends the subscription; no event is delivered after Close returns. Idempotent.
func (s *Subscription) Close() {
	s.doneOnce.Do(func() {
		close(s.done)
		s.bus.remove(s)
	})
}

func (s *Subscription) matches(topic string) bool {
	for _, p := range s.patterns {
		if MatchSubject(p, topic) {
			return true
		}
	}
	return false
}

func (s *Subscription) markLagged() {
	s.dropped.Add(1)
	s.lagOnce.Do(func() { close(s.lagged) })
}

// Bus is the in-process message bus. Every Publish is delivered to the matching subscribers in
// one total order (publications are serialised), each subscriber through its own bounded queue.
// A subscriber whose queue is full is handled by its FullPolicy; a publisher waits at most the
// stall budget in all. Subjects use NATS syntax so that a networked bus can replace this one.
type Bus struct {
	log   zerolog.Logger
	stall time.Duration

	pubMu sync.Mutex // serialises publications: one total order

	mu     sync.RWMutex
	subs   map[*Subscription]struct{}
	cache  map[string][]*Subscription // topic → matching subscribers; reset on (un)subscribe
	closed bool
	done   chan struct{}

	published atomic.Uint64
}

// NewBus returns a bus that logs through log. stall is the longest a Publish waits for Stall
// subscribers with a full queue (0 means 1 s).
func NewBus(log zerolog.Logger, stall time.Duration) *Bus {
	if stall <= 0 {
		stall = time.Second
	}
	return &Bus{
		log:   log,
		stall: stall,
		subs:  make(map[*Subscription]struct{}),
		cache: make(map[string][]*Subscription),
		done:  make(chan struct{}),
	}
}

// ErrBusClosed is returned by Subscribe after Close.
var ErrBusClosed = errors.New("bus closed")

// Subscribe returns a subscription to every topic matching any of the patterns.
func (b *Bus) Subscribe(opts SubscribeOptions, patterns ...string) (*Subscription, error) {
	if len(patterns) == 0 {
		return nil, errors.New("subscribe: no subject pattern")
	}
	for _, p := range patterns {
		if err := ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	s := &Subscription{
		bus:      b,
		name:     opts.Name,
		patterns: append([]string(nil), patterns...),
		policy:   opts.OnFull,
		ch:       make(chan Event, opts.Queue),
		lagged:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBusClosed
	}
	b.subs[s] = struct{}{}
	clear(b.cache)
	return s, nil
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	clear(b.cache)
	b.mu.Unlock()
}

// matching returns the subscribers whose patterns match topic, from the cache when possible.
func (b *Bus) matching(topic string) []*Subscription {
	b.mu.RLock()
	subs, ok := b.cache[topic]
	b.mu.RUnlock()
	if ok {
		return subs
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if subs, ok := b.cache[topic]; ok {
		return subs
	}
	subs = nil
	for s := range b.subs {
		if s.matches(topic) {
			subs = append(subs, s)
		}
	}
	if len(b.cache) >= 4096 { // topics with ids in them must not grow the cache forever
		clear(b.cache)
	}
	b.cache[topic] = subs
	return subs
}

// Publish delivers ev to every matching subscriber. It returns once the event is queued for
// (or dropped by) each of them; it never waits longer than the stall budget. An event with an
// invalid topic is logged and dropped.
func (b *Bus) Publish(ev Event) {
	if !ValidSubject(ev.Topic) {
		b.log.Error().Str("topic", ev.Topic).Msg("bus: publish with invalid topic dropped")
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	select {
	case <-b.done:
		return
	default:
	}
	b.published.Add(1)
	var deadline *time.Timer
	for _, s := range b.matching(ev.Topic) {
		select {
		case <-s.done:
			continue
		default:
		}
		select {
		case s.ch <- ev:
			continue
		default:
		}
		// A Stall subscriber that already lagged does not get to stall anyone again: it has to
		// resynchronise anyway, and one stuck consumer must not slow the bus to one event per
		// stall budget.
		if s.policy == DropAndMark || s.dropped.Load() > 0 {
			s.markLagged()
			continue
		}
		if deadline == nil {
			deadline = time.NewTimer(b.stall)
			defer deadline.Stop()
		}
		select {
		case s.ch <- ev:
		case <-s.done:
		case <-b.done:
			return
		case <-deadline.C:
			// The stall budget of this publication is spent: drop for every slow subscriber.
			deadline.Reset(0)
			s.markLagged()
			b.log.Error().Str("subscriber", s.name).Str("topic", ev.Topic).
				Msg("bus: slow subscriber, event dropped")
		}
	}
}

// Published returns the number of events published so far.
func (b *Bus) Published() uint64 { return b.published.Load() }

// Close ends every subscription; later publications are ignored. Idempotent.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.done)
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}
