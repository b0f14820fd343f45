//go:build linux

package wiegand

import (
	"context"
	"fmt"
	"time"

	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"
)

// gpioQueue is how many edges GPIOSource buffers between the kernel's event reader and the
// consumer of the channel; a frame has at most MaxBits edges.
const gpioQueue = 4 * MaxBits

// Events requests the two lines and delivers their edges until ctx is done; it then releases
// the lines and closes the channel. It fails if the options are not valid or the lines cannot
// be requested (no such chip or offset, lines busy, permission denied). Edges that the kernel
// reports lost (uAPI v2 sequence numbers skipping) are flagged with Edge.Lost.
func (s GPIOSource) Events(ctx context.Context) (<-chan Edge, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ch := make(chan Edge, gpioQueue)
	clk := newClockRef()
	var seq uint32 // last sequence number seen; touched only by the handler goroutine
	handler := func(ev gpiocdev.LineEvent) {
		e := Edge{Line: D0, Time: clk.time(ev.Timestamp)}
		if ev.Offset == s.D1 {
			e.Line = D1
		}
		if ev.Seqno != 0 { // uAPI v2: numbered from 1 over both lines
			e.Lost = ev.Seqno != seq+1
			seq = ev.Seqno
		}
		select {
		case ch <- e:
		case <-ctx.Done():
		}
	}
	var edge gpiocdev.LineReqOption = gpiocdev.WithFallingEdge
	if s.Inverted {
		edge = gpiocdev.WithRisingEdge
	}
	opts := []gpiocdev.LineReqOption{
		gpiocdev.WithConsumer(s.consumer()),
		gpiocdev.AsInput,
		edge,
		gpiocdev.WithEventBufferSize(gpioQueue),
		gpiocdev.WithEventHandler(handler),
	}
	if s.PullUp {
		opts = append(opts, gpiocdev.WithPullUp)
	}
	lines, err := gpiocdev.RequestLines(s.Chip, []int{s.D0, s.D1}, opts...)
	if err != nil {
		return nil, fmt.Errorf("wiegand: request %s lines D0=%d D1=%d: %w", s.Chip, s.D0, s.D1, err)
	}
	go func() {
		<-ctx.Done()
		lines.Close() // waits for the handler to return; the lines cannot fail to close
		close(ch)
	}()
	return ch, nil
}

// clockRef converts kernel event timestamps to the clock of time.Now.
type clockRef struct {
	wall time.Time     // time.Now() (with its monotonic reading) ...
	mono time.Duration // ... and CLOCK_MONOTONIC at about the same instant
	real time.Duration // wall as nanoseconds since the Unix epoch
}

func newClockRef() clockRef {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for CLOCK_MONOTONIC
	wall := time.Now()
	return clockRef{wall: wall, mono: time.Duration(ts.Nano()), real: time.Duration(wall.UnixNano())}
}

// time converts an event timestamp. Since Linux 5.7 event timestamps are CLOCK_MONOTONIC
// (time since boot); before, CLOCK_REALTIME (time since the Unix epoch), which is told apart by
// its size. The result is relative to c.wall, so it carries a monotonic reading.
func (c clockRef) time(ts time.Duration) time.Time {
	if ts > c.real/2 {
		return c.wall.Add(ts - c.real)
	}
	return c.wall.Add(ts - c.mono)
}
