package wiegand

import (
	"context"
	"fmt"
	"time"
)

// Decoder turns pulses into reads: an Assembler feeding a Reader. Each frame reaches the Reader
// with the time of its first pulse, and the Reader's timeouts never run past the start of a
// frame still being received, so a key whose pulses began before a PIN deadline counts.
//
// The zero Decoder is not usable; use NewDecoder. A Decoder is not safe for concurrent use.
type Decoder struct {
	asm *Assembler
	rd  *Reader
}

// NewDecoder returns a decoder with nothing pending. It returns an error if either
// configuration is not valid.
func NewDecoder(reader Config, asm AssemblerConfig) (*Decoder, error) {
	a, err := NewAssembler(asm)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(reader)
	if err != nil {
		return nil, err
	}
	return &Decoder{asm: a, rd: r}, nil
}

// Edge feeds one pulse. It returns the reads completed, oldest first, and the error of a frame
// that was discarded or unusable (see Assembler and Reader.Frame); the reads are valid even when
// the error is not nil.
func (d *Decoder) Edge(e Edge) ([]Read, error) {
	bits, start, err := d.asm.edge(e)
	reads, err := d.frame(bits, start, err)
	return append(reads, d.tickReader(e.Time)...), err
}

// Tick ends a frame and completes a read whose deadlines are not after now. Results are as for
// Edge.
func (d *Decoder) Tick(now time.Time) ([]Read, error) {
	bits, start, err := d.asm.tick(now)
	reads, err := d.frame(bits, start, err)
	return append(reads, d.tickReader(now)...), err
}

// Deadline returns the next time the decoder needs a Tick, and false when nothing is pending.
func (d *Decoder) Deadline() (time.Time, bool) {
	ad, aok := d.asm.Deadline()
	rd, rok := d.rd.Deadline()
	if rok && aok && rd.After(d.asm.start) {
		rok = false // held until the frame in progress reaches the reader
	}
	switch {
	case aok && rok:
		if rd.Before(ad) {
			return rd, true
		}
		return ad, true
	case aok:
		return ad, true
	case rok:
		return rd, true
	}
	return time.Time{}, false
}

// Reset discards the frame in progress and the pending read.
func (d *Decoder) Reset() {
	d.asm.Reset()
	d.rd.Reset()
}

// frame passes a completed frame (bits or err from the assembler) to the reader.
func (d *Decoder) frame(bits []bool, start time.Time, err error) ([]Read, error) {
	if err != nil {
		return d.rd.Tick(start), err
	}
	if bits == nil {
		return nil, nil
	}
	f, err := Decode(bits)
	if err != nil { // cannot happen: the assembler makes 1 to MaxBits bits
		return d.rd.Tick(start), err
	}
	return d.rd.Frame(f, start)
}

// tickReader runs the reader's timeouts up to now, but not past the start of a frame in
// progress.
func (d *Decoder) tickReader(now time.Time) []Read {
	if d.asm.active && d.asm.start.Before(now) {
		now = d.asm.start
	}
	return d.rd.Tick(now)
}

// Run drives d from src until ctx is done or src ends, calling onRead for each read and
// onError for each frame discarded or unusable (either may be nil); both are called from Run's
// goroutine, in order, and should return quickly. Timeouts are measured with time.Now, so the
// source must stamp edges on that clock (as GPIOSource and PulseSource do).
//
// When ctx is done, Run discards what is pending, waits for the source to close its channel,
// and returns nil. When the source ends first, Run completes what is pending at its deadlines,
// then returns nil. Run returns an error only if the source cannot start. Run owns d while it
// runs.
func Run(ctx context.Context, src Source, d *Decoder, onRead func(Read), onError func(error)) error {
	edges, err := src.Events(ctx)
	if err != nil {
		return fmt.Errorf("wiegand: start source: %w", err)
	}
	deliver := func(reads []Read, err error) {
		for _, r := range reads {
			if onRead != nil {
				onRead(r)
			}
		}
		if err != nil && onError != nil {
			onError(err)
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var timeout <-chan time.Time
		if dl, ok := d.Deadline(); ok {
			timer.Reset(time.Until(dl))
			timeout = timer.C
		} else if edges == nil {
			return nil // the source ended and nothing is pending
		}
		select {
		case <-ctx.Done():
			d.Reset()
			if edges != nil {
				for range edges { // let the source release its resources
				}
			}
			return nil
		case e, ok := <-edges:
			if !ok {
				edges = nil
				continue
			}
			deliver(d.Edge(e))
		case <-timeout:
			deliver(d.Tick(time.Now()))
		}
	}
}
