package wiegandreader

import (
	"context"
	"sync"
	"time"

	"gatehouse/modules/hardware"
)

// Output is an output line that gives reader feedback: the GPIO line of a green LED or a
// buzzer. Set drives it on (active) or off; Close releases it. An Output is used by one
// goroutine at a time.
type Output interface {
	Set(on bool) error
	Close() error
}

// OutputOpener opens the output line of an LED or buzzer.
type OutputOpener func(line hardware.Line) (Output, error)

// Recorder is a simulated Output for tests and simulations: it records every value it is set
// to. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	values []bool
	closed bool
}

// Set records the value.
func (r *Recorder) Set(on bool) error {
	r.mu.Lock()
	r.values = append(r.values, on)
	r.mu.Unlock()
	return nil
}

// Close records that the line was released.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

// Values returns the values set so far, oldest first.
func (r *Recorder) Values() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.values...)
}

// Closed reports whether the line was released.
func (r *Recorder) Closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Pulses returns how many times the line went on and then off again.
func (r *Recorder) Pulses() int {
	n, on := 0, false
	for _, v := range r.Values() {
		if on && !v {
			n++
		}
		on = v
	}
	return n
}

// pattern is one feedback: the line is on for total, or, when period is positive and shorter,
// toggles every period during total (Leosac's BLINK duration speed). It always ends off.
type pattern struct {
	total, period time.Duration
}

// feedback plays patterns on one output, one at a time, until its context ends.
type feedback struct {
	name string
	out  Output
	cmds chan pattern
}

// trigger asks for a pattern without waiting; it is dropped while another is pending.
func (f *feedback) trigger(p pattern) {
	if f == nil {
		return
	}
	select {
	case f.cmds <- p:
	default:
	}
}

// run plays the patterns until ctx ends, then leaves the line off and closes it.
func (f *feedback) run(ctx context.Context, warn func(error)) {
	defer func() {
		if err := f.out.Set(false); err != nil {
			warn(err)
		}
		if err := f.out.Close(); err != nil {
			warn(err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-f.cmds:
			f.play(ctx, p, warn)
		}
	}
}

func (f *feedback) play(ctx context.Context, p pattern, warn func(error)) {
	step := p.total
	if p.period > 0 && p.period < p.total {
		step = p.period
	}
	on := true
	for elapsed := time.Duration(0); elapsed < p.total && ctx.Err() == nil; elapsed += step {
		if err := f.out.Set(on); err != nil {
			warn(err)
			return
		}
		t := time.NewTimer(min(step, p.total-elapsed))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		on = !on
	}
	if err := f.out.Set(false); err != nil {
		warn(err)
	}
}
