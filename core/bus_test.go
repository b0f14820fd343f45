package core

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestBus returns a bus with the given stall budget, closed at the end of the test.
func newTestBus(t *testing.T, stall time.Duration) *Bus {
	t.Helper()
	b := NewBus(zerolog.Nop(), stall)
	t.Cleanup(b.Close)
	return b
}

func mustSubscribe(t *testing.T, b *Bus, opts SubscribeOptions, patterns ...string) *Subscription {
	t.Helper()
	s, err := b.Subscribe(opts, patterns...)
	if err != nil {
		t.Fatalf("Subscribe(%v): %v", patterns, err)
	}
	t.Cleanup(s.Close)
	return s
}

// drain returns every event queued for s right now. Publish returns only once an event is
// queued, so after Publish the queue holds everything delivered so far.
func drain(s *Subscription) []Event {
	var out []Event
	for {
		select {
		case ev := <-s.C():
			out = append(out, ev)
		default:
			return out
		}
	}
}

func topics(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Topic
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestBusDeliversToMatchingSubscribersOnly(t *testing.T) {
	b := newTestBus(t, 0)
	doors := mustSubscribe(t, b, SubscribeOptions{Name: "doors"}, "door.>")
	readers := mustSubscribe(t, b, SubscribeOptions{Name: "readers"}, "reader.*")
	all := mustSubscribe(t, b, SubscribeOptions{Name: "all"}, ">")
	exact := mustSubscribe(t, b, SubscribeOptions{Name: "exact"}, "user.created")

	pub := []string{"door.1.opened", "reader.2", "reader.2.swipe", "user.created", "door", "user.deleted"}
	for _, topic := range pub {
		b.Publish(Event{Topic: topic, Source: "test", Data: topic})
	}

	checks := []struct {
		sub  *Subscription
		want []string
	}{
		{doors, []string{"door.1.opened"}},
		{readers, []string{"reader.2"}},
		{all, pub},
		{exact, []string{"user.created"}},
	}
	for _, c := range checks {
		got := drain(c.sub)
		if !equalStrings(topics(got), c.want) {
			t.Errorf("%s got %v, want %v", c.sub.name, topics(got), c.want)
		}
		for _, ev := range got {
			if ev.Data != ev.Topic || ev.Source != "test" {
				t.Errorf("%s: event %+v lost its payload", c.sub.name, ev)
			}
		}
	}
	if got := b.Published(); got != uint64(len(pub)) {
		t.Errorf("Published() = %d, want %d", got, len(pub))
	}
}

func TestBusMultiplePatternsDeliverOnce(t *testing.T) {
	b := newTestBus(t, 0)
	s := mustSubscribe(t, b, SubscribeOptions{}, "door.>", "*.7.opened", "user.created")
	for _, topic := range []string{"door.7.opened", "reader.7.opened", "user.created", "user.deleted", "door.1"} {
		b.Publish(Event{Topic: topic})
	}
	want := []string{"door.7.opened", "reader.7.opened", "user.created", "door.1"}
	if got := topics(drain(s)); !equalStrings(got, want) {
		t.Errorf("got %v, want %v (an event matching two patterns must arrive once)", got, want)
	}
}

func TestBusSetsTimeWhenZero(t *testing.T) {
	b := newTestBus(t, 0)
	s := mustSubscribe(t, b, SubscribeOptions{}, ">")
	before := time.Now()
	b.Publish(Event{Topic: "a"})
	fixed := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	b.Publish(Event{Topic: "b", Time: fixed})
	evs := drain(s)
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	if evs[0].Time.Before(before.Add(-time.Second)) || evs[0].Time.Location() != time.UTC {
		t.Errorf("zero Time not set to now in UTC: %v", evs[0].Time)
	}
	if !evs[1].Time.Equal(fixed) {
		t.Errorf("non-zero Time changed: %v, want %v", evs[1].Time, fixed)
	}
}

func TestBusSubscribeRejectsBadPatterns(t *testing.T) {
	b := newTestBus(t, 0)
	if _, err := b.Subscribe(SubscribeOptions{}); err == nil {
		t.Error("Subscribe with no pattern: want error")
	}
	for _, p := range []string{"", "door..x", "door.>.x", "do*r"} {
		if _, err := b.Subscribe(SubscribeOptions{}, "ok", p); err == nil {
			t.Errorf("Subscribe(%q): want error", p)
		}
	}
}

func TestBusTotalOrder(t *testing.T) {
	const publishers, perPublisher = 4, 250
	b := newTestBus(t, 10*time.Second)
	opts := SubscribeOptions{Queue: publishers * perPublisher}
	s1 := mustSubscribe(t, b, opts, ">")
	s2 := mustSubscribe(t, b, opts, "pub.>")
	s3 := mustSubscribe(t, b, SubscribeOptions{Queue: perPublisher}, "pub.2.*") // sees only one publisher

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				b.Publish(Event{Topic: fmt.Sprintf("pub.%d.ev", p), Data: i})
			}
		})
	}
	wg.Wait()

	e1, e2 := drain(s1), drain(s2)
	if len(e1) != publishers*perPublisher || len(e2) != len(e1) {
		t.Fatalf("got %d and %d events, want %d each", len(e1), len(e2), publishers*perPublisher)
	}
	next := map[string]int{}
	for i := range e1 {
		if e1[i].Topic != e2[i].Topic || e1[i].Data != e2[i].Data {
			t.Fatalf("subscribers disagree at %d: %s/%v vs %s/%v", i, e1[i].Topic, e1[i].Data, e2[i].Topic, e2[i].Data)
		}
		// Each publisher's own events keep their order.
		if want := next[e1[i].Topic]; e1[i].Data != want {
			t.Fatalf("event %d from %s is #%v, want #%d", i, e1[i].Topic, e1[i].Data, want)
		}
		next[e1[i].Topic]++
	}
	// The filtered subscriber sees the same relative order.
	var want []any
	for _, ev := range e1 {
		if ev.Topic == "pub.2.ev" {
			want = append(want, ev.Data)
		}
	}
	e3 := drain(s3)
	if len(e3) != len(want) {
		t.Fatalf("filtered subscriber got %d events, want %d", len(e3), len(want))
	}
	for i := range e3 {
		if e3[i].Data != want[i] {
			t.Fatalf("filtered subscriber order differs at %d", i)
		}
	}
}

func TestBusDropAndMark(t *testing.T) {
	// A long stall budget: if DropAndMark ever waited, the test would notice.
	b := newTestBus(t, 30*time.Second)
	slow := mustSubscribe(t, b, SubscribeOptions{Name: "slow", Queue: 2, OnFull: DropAndMark}, ">")
	other := mustSubscribe(t, b, SubscribeOptions{Name: "other", Queue: 100}, ">")
	otherDrop := mustSubscribe(t, b, SubscribeOptions{Name: "other-drop", Queue: 100, OnFull: DropAndMark}, ">")

	if isClosed(slow.Lagged()) {
		t.Fatal("Lagged closed before any drop")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			b.Publish(Event{Topic: "tick", Data: i})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publisher blocked on a DropAndMark subscriber")
	}

	if !isClosed(slow.Lagged()) {
		t.Error("Lagged not closed after drops")
	}
	if got := slow.Dropped(); got != 8 {
		t.Errorf("Dropped() = %d, want 8", got)
	}
	got := drain(slow)
	if len(got) != 2 || got[0].Data != 0 || got[1].Data != 1 {
		t.Errorf("slow subscriber kept %v, want the first two events", got)
	}
	for _, s := range []*Subscription{other, otherDrop} {
		if n := len(drain(s)); n != 10 {
			t.Errorf("%s got %d events, want 10", s.name, n)
		}
		if isClosed(s.Lagged()) || s.Dropped() != 0 {
			t.Errorf("%s marked lagged (dropped %d) although it kept up", s.name, s.Dropped())
		}
	}

	// A lagged subscriber that drained its queue receives again.
	b.Publish(Event{Topic: "tick", Data: 10})
	if got := drain(slow); len(got) != 1 || got[0].Data != 10 {
		t.Errorf("after draining, slow subscriber got %v, want event 10", got)
	}
}

func TestBusStallWaitsForDrainingSubscriber(t *testing.T) {
	b := newTestBus(t, 30*time.Second)
	s := mustSubscribe(t, b, SubscribeOptions{Name: "audit", Queue: 1, OnFull: Stall}, ">")
	b.Publish(Event{Topic: "e", Data: 1}) // fills the queue

	returned := make(chan struct{})
	go func() {
		defer close(returned)
		b.Publish(Event{Topic: "e", Data: 2})
	}()
	select {
	case <-returned:
		t.Fatal("Publish returned although the Stall subscriber's queue was full")
	case <-time.After(100 * time.Millisecond):
	}
	for want := 1; want <= 2; want++ {
		select {
		case ev := <-s.C():
			if ev.Data != want {
				t.Fatalf("got event %v, want %d", ev.Data, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never arrived", want)
		}
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish did not return after the subscriber drained")
	}
	if isClosed(s.Lagged()) || s.Dropped() != 0 {
		t.Errorf("subscriber marked lagged (dropped %d) although nothing was dropped", s.Dropped())
	}
}

func TestBusStallBudget(t *testing.T) {
	const budget = 50 * time.Millisecond
	b := newTestBus(t, budget)
	s := mustSubscribe(t, b, SubscribeOptions{Name: "stuck", Queue: 1, OnFull: Stall}, ">")
	fast := mustSubscribe(t, b, SubscribeOptions{Name: "fast", Queue: 10}, ">")
	b.Publish(Event{Topic: "e", Data: 1})

	start := time.Now()
	b.Publish(Event{Topic: "e", Data: 2}) // nobody drains s
	elapsed := time.Since(start)
	if elapsed < budget/2 {
		t.Errorf("Publish returned after %v, before the stall budget %v", elapsed, budget)
	}
	if elapsed > 5*time.Second {
		t.Errorf("Publish returned after %v, far beyond the stall budget %v", elapsed, budget)
	}
	if !isClosed(s.Lagged()) {
		t.Error("stuck subscriber not marked lagged")
	}
	if s.Dropped() != 1 {
		t.Errorf("Dropped() = %d, want 1", s.Dropped())
	}
	if got := drain(s); len(got) != 1 || got[0].Data != 1 {
		t.Errorf("stuck subscriber holds %v, want only event 1", got)
	}
	if n := len(drain(fast)); n != 2 {
		t.Errorf("fast subscriber got %d events, want 2", n)
	}
}

func TestBusLaggedStallSubscriberStallsOnlyOnce(t *testing.T) {
	// After a stuck Stall subscriber has lagged once, later publications drop for it at once:
	// one stuck consumer must not slow the bus to one event per stall budget.
	const budget = 300 * time.Millisecond
	b := newTestBus(t, budget)
	s := mustSubscribe(t, b, SubscribeOptions{Name: "stuck", Queue: 1, OnFull: Stall}, ">")
	b.Publish(Event{Topic: "e", Data: 1})
	b.Publish(Event{Topic: "e", Data: 2}) // stalls one budget, then lags s
	start := time.Now()
	for i := range 20 {
		b.Publish(Event{Topic: "e", Data: 3 + i})
	}
	if elapsed := time.Since(start); elapsed > budget {
		t.Errorf("20 publications after the lag took %v; each should drop at once", elapsed)
	}
	if s.Dropped() != 21 {
		t.Errorf("Dropped() = %d, want 21", s.Dropped())
	}
}

func TestBusStallBudgetIsPerPublication(t *testing.T) {
	// The budget bounds the whole Publish, not each slow subscriber: five stuck subscribers
	// must not cost five budgets.
	const budget = 200 * time.Millisecond
	b := newTestBus(t, budget)
	var subs []*Subscription
	for i := range 5 {
		subs = append(subs, mustSubscribe(t, b, SubscribeOptions{Name: fmt.Sprint("stuck", i), Queue: 1}, ">"))
	}
	b.Publish(Event{Topic: "e"})
	start := time.Now()
	b.Publish(Event{Topic: "e"})
	if elapsed := time.Since(start); elapsed > 4*budget {
		t.Errorf("Publish took %v with 5 stuck subscribers, want about one budget (%v)", elapsed, budget)
	}
	for _, s := range subs {
		if s.Dropped() != 1 || !isClosed(s.Lagged()) {
			t.Errorf("%s: dropped %d, lagged %v; want 1, true", s.name, s.Dropped(), isClosed(s.Lagged()))
		}
	}
}

func TestBusCloseUnblocksStalledPublisher(t *testing.T) {
	b := NewBus(zerolog.Nop(), 30*time.Second)
	s, err := b.Subscribe(SubscribeOptions{Queue: 1}, ">")
	if err != nil {
		t.Fatal(err)
	}
	b.Publish(Event{Topic: "e"})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		b.Publish(Event{Topic: "e"})
	}()
	time.Sleep(20 * time.Millisecond) // let it block (not required for correctness)
	b.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a stalled publisher")
	}
	if !isClosed(s.Done()) {
		t.Error("subscription not done after bus Close")
	}
}

func TestSubscriptionCloseUnblocksStalledPublisher(t *testing.T) {
	b := newTestBus(t, 30*time.Second)
	s, err := b.Subscribe(SubscribeOptions{Queue: 1}, ">")
	if err != nil {
		t.Fatal(err)
	}
	b.Publish(Event{Topic: "e"})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		b.Publish(Event{Topic: "e"})
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("closing the subscription did not release a stalled publisher")
	}
}

func TestBusClose(t *testing.T) {
	b := NewBus(zerolog.Nop(), 0)
	s1, err := b.Subscribe(SubscribeOptions{}, "door.>")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Subscribe(SubscribeOptions{}, ">")
	if err != nil {
		t.Fatal(err)
	}
	b.Publish(Event{Topic: "door.1"})
	b.Close()
	b.Close() // idempotent
	for _, s := range []*Subscription{s1, s2} {
		select {
		case <-s.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed after bus Close")
		}
		s.Close() // idempotent, also after the bus closed
	}
	if _, err := b.Subscribe(SubscribeOptions{}, ">"); err != ErrBusClosed {
		t.Errorf("Subscribe after Close = %v, want ErrBusClosed", err)
	}
	before := b.Published()
	drain(s2)
	b.Publish(Event{Topic: "door.2"}) // ignored, must not panic
	if n := len(drain(s2)); n != 0 {
		t.Errorf("event delivered after Close")
	}
	if b.Published() != before {
		t.Errorf("Published counted an event after Close")
	}
}

func TestSubscriptionClose(t *testing.T) {
	b := newTestBus(t, 0)
	s := mustSubscribe(t, b, SubscribeOptions{}, ">")
	other := mustSubscribe(t, b, SubscribeOptions{}, ">")
	b.Publish(Event{Topic: "a"})
	s.Close()
	if !isClosed(s.Done()) {
		t.Fatal("Done not closed after Close")
	}
	drain(s)
	b.Publish(Event{Topic: "b"})
	if n := len(drain(s)); n != 0 {
		t.Errorf("closed subscription received %d events", n)
	}
	if got := topics(drain(other)); !equalStrings(got, []string{"a", "b"}) {
		t.Errorf("other subscriber got %v", got)
	}
	if isClosed(other.Done()) {
		t.Error("closing one subscription closed another")
	}
}

func TestBusDropsInvalidTopics(t *testing.T) {
	b := newTestBus(t, 0)
	s := mustSubscribe(t, b, SubscribeOptions{}, ">")
	for _, topic := range []string{"", "door..1", "door.*", "door.>", ".door", "door.", "door 1"} {
		b.Publish(Event{Topic: topic})
	}
	if n := len(drain(s)); n != 0 {
		t.Errorf("%d events with invalid topics were delivered", n)
	}
	if b.Published() != 0 {
		t.Errorf("Published() = %d, want 0", b.Published())
	}
}

func TestBusCacheInvalidation(t *testing.T) {
	b := newTestBus(t, 0)
	first := mustSubscribe(t, b, SubscribeOptions{}, "door.>")
	b.Publish(Event{Topic: "door.1.opened"}) // caches the subscriber list of this topic

	late := mustSubscribe(t, b, SubscribeOptions{}, "door.*.opened")
	b.Publish(Event{Topic: "door.1.opened"})
	if n := len(drain(late)); n != 1 {
		t.Errorf("subscriber added after a publish to the same topic got %d events, want 1", n)
	}
	if n := len(drain(first)); n != 2 {
		t.Errorf("first subscriber got %d events, want 2", n)
	}

	first.Close()
	b.Publish(Event{Topic: "door.1.opened"})
	if n := len(drain(first)); n != 0 {
		t.Errorf("unsubscribed subscriber got %d events", n)
	}
	if n := len(drain(late)); n != 1 {
		t.Errorf("remaining subscriber got %d events, want 1", n)
	}

	// More distinct topics than the cache holds: delivery stays correct.
	late.Close()
	wide := mustSubscribe(t, b, SubscribeOptions{Queue: 6000}, "door.*.opened")
	for i := range 5000 {
		b.Publish(Event{Topic: fmt.Sprintf("door.%d.opened", i)})
	}
	if n := len(drain(wide)); n != 5000 {
		t.Errorf("subscriber got %d of 5000 events on distinct topics", n)
	}
}
