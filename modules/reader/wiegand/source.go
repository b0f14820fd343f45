package wiegand

import (
	"context"
	"time"
)

// Source delivers the pulses of a reader's data lines.
type Source interface {
	// Events starts delivering edges, in time order, stamped on the clock of time.Now. The
	// channel is closed once the source has ended (a finite source), or once ctx is done and
	// the source has released its resources; the caller must keep receiving until then. It
	// returns an error if the source cannot start, and then starts nothing.
	Events(ctx context.Context) (<-chan Edge, error)
}

// PulseSource replays a synthetic pulse train in real time, for tests and simulation. The
// zero value is an empty train.
type PulseSource struct {
	// Edges is the train. Only the differences between their Times matter: the first edge is
	// sent when Events is called, each later one at the same offset from it as in Edges, and
	// each is stamped with the time it is due (not the possibly later time it is sent). Times
	// must not decrease. Lost is passed through.
	Edges []Edge
}

// Events replays the train from a new goroutine and closes the channel after the last edge, or
// when ctx is done. It never fails.
func (p PulseSource) Events(ctx context.Context) (<-chan Edge, error) {
	ch := make(chan Edge)
	train := append([]Edge(nil), p.Edges...)
	go func() {
		defer close(ch)
		if len(train) == 0 {
			return
		}
		base, t0 := time.Now(), train[0].Time
		timer := time.NewTimer(0)
		defer timer.Stop()
		for _, e := range train {
			at := base.Add(e.Time.Sub(t0))
			if wait := time.Until(at); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			e.Time = at
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// PulseTrain returns the edges of one frame sent by a reader: one pulse per bit (D1 for a 1,
// D0 for a 0), the first at start and then one every period.
func PulseTrain(bits []bool, start time.Time, period time.Duration) []Edge {
	out := make([]Edge, len(bits))
	for i, b := range bits {
		l := D0
		if b {
			l = D1
		}
		out[i] = Edge{Line: l, Time: start.Add(time.Duration(i) * period)}
	}
	return out
}
