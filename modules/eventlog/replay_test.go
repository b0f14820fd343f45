package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// openLog opens an event log on a fresh database file.
func openLog(t *testing.T) *eventlog.Log {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, t.TempDir(), zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	bus := core.NewBus(zerolog.Nop(), 0)
	t.Cleanup(bus.Close)
	l, err := eventlog.Open(ctx, d, bus, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill appends n events, topics alternating a.<i> and b.<i>, with audit snapshots, in batches.
func fill(t *testing.T, l *eventlog.Log, n int) {
	t.Helper()
	for start := 0; start < n; start += 500 {
		err := l.Write(context.Background(), func(tx *eventlog.Tx) error {
			for i := start; i < min(start+500, n); i++ {
				topic := fmt.Sprintf("a.%d", i)
				if i%2 == 1 {
					topic = fmt.Sprintf("b.%d", i)
				}
				if err := tx.Record(eventlog.Change{Topic: topic, Kind: eventlog.KindDoor, TargetID: int64(i + 1),
					Before: map[string]any{"i": i}, After: map[string]any{"i": i + 1}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadPageCoversTheLogOnce (issue 10, point 5): paging through the log with ReadPage, a
// small page at a time, yields every event once, in seq order, without the audit snapshots.
func TestReadPageCoversTheLogOnce(t *testing.T) {
	t.Parallel()
	l := openLog(t)
	fill(t, l, 1000)
	last, err := l.LastSeq(context.Background())
	if err != nil || last != 1000 {
		t.Fatalf("last seq %d (%v)", last, err)
	}
	var seen []int64
	pages := 0
	for cursor := int64(0); ; {
		page, err := l.ReadPage(context.Background(), cursor, last, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d events, want at most 7", len(page))
		}
		pages++
		for _, e := range page {
			if e.Before != nil || e.After != nil {
				t.Fatalf("event %d read with its snapshots", e.Seq)
			}
			seen = append(seen, e.Seq)
			cursor = e.Seq
		}
	}
	if len(seen) != 1000 || pages != 143 {
		t.Fatalf("%d events in %d pages, want 1000 in 143", len(seen), pages)
	}
	for i, s := range seen {
		if s != int64(i+1) {
			t.Fatalf("event %d at position %d: a gap or a duplicate", s, i)
		}
	}
}

// sink collects what a stream delivers.
type sink struct {
	mu   sync.Mutex
	seqs []int64
	tops []string
}

func (k *sink) Deliver(_ context.Context, e *eventlog.Event) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seqs, k.tops = append(k.seqs, e.Seq), append(k.tops, e.Topic)
	return nil
}

func (k *sink) Lagged() {}

func (k *sink) got() ([]int64, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]int64(nil), k.seqs...), append([]string(nil), k.tops...)
}

// TestReplayFromZeroIsPaged: a subscription since 0 over the whole log, replayed 3 events per
// query, delivers exactly the matching events, in order, then goes on live without a gap or a
// duplicate.
func TestReplayFromZeroIsPaged(t *testing.T) {
	t.Parallel()
	l := openLog(t)
	fill(t, l, 2000)
	k := &sink{}
	st, err := l.Subscribe(context.Background(), eventlog.StreamOptions{Patterns: []string{"a.*"}, Since: 0, Page: 3, Name: "test"}, k)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); st.Stop(); st.Wait() }()
	st.Start(ctx)
	fill(t, l, 10) // live: a.0 … b.9 again, seqs 2001…2010
	want := 1000 + 5
	deadline := time.Now().Add(30 * time.Second)
	for {
		seqs, _ := k.got()
		if len(seqs) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events delivered, want %d", len(seqs), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	seqs, tops := k.got()
	if len(seqs) != want {
		t.Fatalf("%d events delivered, want %d", len(seqs), want)
	}
	for i, s := range seqs {
		wantSeq := int64(2*i + 1) // a.* are the odd seqs
		if s != wantSeq || tops[i][0] != 'a' {
			t.Fatalf("delivery %d: seq %d topic %s, want seq %d of a.*", i, s, tops[i], wantSeq)
		}
	}
}

// TestSubscribePatternsBounded: a stream holds at most MaxPatterns patterns.
func TestSubscribePatternsBounded(t *testing.T) {
	t.Parallel()
	l := openLog(t)
	var pats []string
	for i := range eventlog.MaxPatterns + 1 {
		pats = append(pats, fmt.Sprintf("p%d.>", i))
	}
	_, err := l.Subscribe(context.Background(), eventlog.StreamOptions{Patterns: pats, Since: -1}, &sink{})
	if !errors.Is(err, eventlog.ErrTooManyPatterns) {
		t.Fatalf("%d patterns: %v, want ErrTooManyPatterns", len(pats), err)
	}
	st, err := l.Subscribe(context.Background(), eventlog.StreamOptions{Patterns: pats[:eventlog.MaxPatterns], Since: -1}, &sink{})
	if err != nil {
		t.Fatal(err)
	}
	st.Stop()
}

func TestCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"ééééé", 8, "éé…"}, // 10 bytes; 5 left for characters: two é (4 bytes), never half of one
	} {
		if got := eventlog.Cut(tc.in, tc.n); got != tc.want || len(got) > tc.n {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
