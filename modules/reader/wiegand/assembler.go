package wiegand

import (
	"errors"
	"fmt"
	"time"
)

// Assembler defaults.
const (
	// DefaultGap is the default AssemblerConfig.Gap: no pulse for this long ends a frame.
	// Readers send a bit every 1–2 ms (the interface allows 0.2–20 ms) and pause much longer
	// between frames.
	DefaultGap = 25 * time.Millisecond
	// DefaultNoiseWindow is the default AssemblerConfig.NoiseWindow: pulses on D0 and D1
	// closer than this are noise (a real reader pulses one line at a time, with at least
	// 200 µs between pulses).
	DefaultNoiseWindow = 100 * time.Microsecond
)

// ErrNoise reports a frame discarded because its pulses were not a valid bit stream: pulses on
// both lines within the noise window, an invalid Line, or edges lost by the source.
var ErrNoise = errors.New("wiegand: noise on data lines")

// Line is a Wiegand data line.
type Line uint8

const (
	// D0 is the DATA0 line (green wire); a pulse on it is a 0 bit. Leosac calls it "low".
	D0 Line = 0
	// D1 is the DATA1 line (white wire); a pulse on it is a 1 bit. Leosac calls it "high".
	D1 Line = 1
)

// String returns "D0" or "D1".
func (l Line) String() string {
	switch l {
	case D0:
		return "D0"
	case D1:
		return "D1"
	}
	return fmt.Sprintf("line(%d)", int(l))
}

// Edge is one pulse on a data line: the edge that starts it (falling, as the lines idle high).
type Edge struct {
	// Line is the line pulsed.
	Line Line
	// Time is when the pulse started. Sources stamp edges on the clock of time.Now.
	Time time.Time
	// Lost reports that the source lost edges just before this one (e.g. the kernel's event
	// buffer overflowed): the frame in progress and the frame this edge belongs to are
	// discarded with ErrNoise.
	Lost bool
}

// AssemblerConfig configures an Assembler. Zero fields take the defaults.
type AssemblerConfig struct {
	// Gap ends a frame when no pulse came for this long; default 25 ms.
	Gap time.Duration
	// NoiseWindow is how close a pulse on one line may follow a pulse on the other before the
	// frame is noise; default 100 µs; negative disables the check (for GPIO hardware whose
	// timestamps are not precise enough).
	NoiseWindow time.Duration
}

func (c AssemblerConfig) withDefaults() AssemblerConfig {
	if c.Gap == 0 {
		c.Gap = DefaultGap
	}
	if c.NoiseWindow == 0 {
		c.NoiseWindow = DefaultNoiseWindow
	}
	return c
}

// Validate reports whether the configuration, with defaults applied, is usable: Gap positive
// and longer than NoiseWindow.
func (c AssemblerConfig) Validate() error {
	c = c.withDefaults()
	if c.Gap <= 0 {
		return fmt.Errorf("wiegand: frame gap %v: must be positive", c.Gap)
	}
	if c.NoiseWindow >= c.Gap {
		return fmt.Errorf("wiegand: noise window %v: must be shorter than the frame gap %v", c.NoiseWindow, c.Gap)
	}
	return nil
}

// Assembler turns pulses into frames. A frame is the bits of consecutive pulses (D0 → 0,
// D1 → 1) with less than Gap between them; it ends when Gap passes without a pulse, detected
// by the next Edge or by Tick. A frame with noise (see ErrNoise) or more than MaxBits bits is
// discarded when it ends, with an error wrapping ErrNoise or ErrBitCount. Edges should come in
// time order; an edge earlier than the previous one is treated as simultaneous with it.
//
// The zero Assembler is not usable; use NewAssembler. An Assembler is not safe for concurrent
// use.
type Assembler struct {
	cfg      AssemblerConfig
	bits     []bool
	active   bool      // a frame is in progress
	start    time.Time // first edge of the frame in progress
	last     time.Time // last edge of the frame in progress
	lastLine Line
	err      error // the frame in progress is to be discarded with this error
}

// NewAssembler returns an assembler with no frame in progress. It returns an error if cfg is
// not valid.
func NewAssembler(cfg AssemblerConfig) (*Assembler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Assembler{cfg: cfg.withDefaults()}, nil
}

// Config returns the assembler's configuration, defaults applied.
func (a *Assembler) Config() AssemblerConfig { return a.cfg }

// Edge feeds one pulse. If the frame in progress had ended before e (a gap of Gap or more), it
// is returned, or its error; e then starts a new frame. Otherwise it returns nil, nil. The bits
// returned are the caller's.
func (a *Assembler) Edge(e Edge) ([]bool, error) {
	bits, _, err := a.edge(e)
	return bits, err
}

// Tick ends the frame in progress if Gap has passed since its last pulse at now, returning its
// bits or its error; otherwise it returns nil, nil.
func (a *Assembler) Tick(now time.Time) ([]bool, error) {
	bits, _, err := a.tick(now)
	return bits, err
}

// Deadline returns when the frame in progress ends if no pulse comes, and false when no frame
// is in progress.
func (a *Assembler) Deadline() (time.Time, bool) {
	if !a.active {
		return time.Time{}, false
	}
	return a.last.Add(a.cfg.Gap), true
}

// Reset discards the frame in progress.
func (a *Assembler) Reset() {
	a.bits, a.active, a.err = nil, false, nil
	a.start, a.last = time.Time{}, time.Time{}
}

// edge is Edge, also returning the start time of the frame it completes.
func (a *Assembler) edge(e Edge) (bits []bool, start time.Time, err error) {
	t := e.Time
	if a.active {
		if e.Lost && a.err == nil { // the lost edges may be this frame's tail or the next one's head
			a.err = fmt.Errorf("%w: edges lost by the source after bit %d", ErrNoise, len(a.bits))
		}
		if t.Before(a.last) {
			t = a.last
		}
		if t.Sub(a.last) >= a.cfg.Gap {
			bits, start, err = a.end()
		}
	}
	if !a.active {
		a.active, a.start, a.last, a.lastLine = true, t, t, e.Line
		a.bits = make([]bool, 0, 40)
		a.add(e)
		return bits, start, err
	}
	if a.err == nil && a.cfg.NoiseWindow > 0 && e.Line != a.lastLine && t.Sub(a.last) < a.cfg.NoiseWindow {
		a.err = fmt.Errorf("%w: %v and %v pulses %v apart at bit %d", ErrNoise, a.lastLine, e.Line, t.Sub(a.last), len(a.bits)+1)
	}
	a.last, a.lastLine = t, e.Line
	a.add(e)
	return bits, start, err
}

// add appends e's bit to the frame in progress, or marks the frame bad.
func (a *Assembler) add(e Edge) {
	if a.err != nil {
		return
	}
	switch {
	case e.Lost:
		a.err = fmt.Errorf("%w: edges lost by the source before bit %d", ErrNoise, len(a.bits)+1)
	case e.Line > D1:
		a.err = fmt.Errorf("%w: pulse on invalid %v", ErrNoise, e.Line)
	case len(a.bits) == MaxBits:
		a.err = fmt.Errorf("%w: frame longer than %d bits", ErrBitCount, MaxBits)
	default:
		a.bits = append(a.bits, e.Line == D1)
	}
}

// tick is Tick, also returning the start time of the frame it completes.
func (a *Assembler) tick(now time.Time) ([]bool, time.Time, error) {
	if d, ok := a.Deadline(); ok && !now.Before(d) {
		return a.end()
	}
	return nil, time.Time{}, nil
}

// end completes the frame in progress.
func (a *Assembler) end() ([]bool, time.Time, error) {
	bits, start, err := a.bits, a.start, a.err
	a.Reset()
	if err != nil {
		return nil, start, err
	}
	return bits, start, nil
}
