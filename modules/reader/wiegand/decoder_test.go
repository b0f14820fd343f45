package wiegand_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gatehouse/modules/reader/wiegand"

	"go.uber.org/goleak"
)

// drive feeds edges to d as Run would, ticking at every deadline that comes before the next
// edge, then at every deadline until nothing is pending. It returns reads and errors described.
func drive(t *testing.T, d *wiegand.Decoder, edges []wiegand.Edge) []string {
	t.Helper()
	var out []string
	driveFunc(t, d, edges, func(r wiegand.Read) { out = append(out, describe(r)) },
		func(err error) { out = append(out, strings.Split(describeErr(err, 0), " @")[0]) })
	return out
}

// driveFunc is drive with callbacks, in the order of Run's.
func driveFunc(t *testing.T, d *wiegand.Decoder, edges []wiegand.Edge, onRead func(wiegand.Read), onError func(error)) {
	t.Helper()
	collect := func(reads []wiegand.Read, err error) {
		for _, r := range reads {
			onRead(r)
		}
		if err != nil {
			onError(err)
		}
	}
	guard := 0
	tickUntil := func(limit time.Time, all bool) {
		for {
			dl, ok := d.Deadline()
			if !ok || (!all && dl.After(limit)) {
				return
			}
			if guard++; guard > 1_000_000 {
				t.Fatal("decoder makes no progress")
			}
			collect(d.Tick(dl))
		}
	}
	for _, e := range edges {
		tickUntil(e.Time, false)
		collect(d.Edge(e))
	}
	tickUntil(time.Time{}, true)
}

func newDecoder(t *testing.T, cfg wiegand.Config) *wiegand.Decoder {
	t.Helper()
	d, err := wiegand.NewDecoder(cfg, wiegand.AssemblerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Encode → pulses → Assembler → Decode → Reader → Read, for every format.
func TestRoundTripPulses(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, format := range wiegand.Formats() {
		t.Run(format.String(), func(t *testing.T) {
			for i := range 200 {
				fac, num := rng.Uint32N(format.MaxFacility()+1), rng.Uint32N(format.MaxNumber()+1)
				bits := encode(format, fac, num)
				period := time.Duration(200+rng.IntN(3000)) * time.Microsecond
				start := t0.Add(time.Duration(i) * time.Second)

				d := newDecoder(t, wiegand.Config{})
				var reads []wiegand.Read
				for _, e := range wiegand.PulseTrain(bits, start, period) {
					r, err := d.Edge(e)
					if err != nil {
						t.Fatal(err)
					}
					reads = append(reads, r...)
				}
				dl, ok := d.Deadline()
				if !ok {
					t.Fatal("no deadline after a frame")
				}
				r, err := d.Tick(dl)
				if err != nil {
					t.Fatal(err)
				}
				reads = append(reads, r...)
				want := wiegand.Read{
					Kind: wiegand.KindCard, Time: start, Card: wiegand.CardID(bits), Bits: format.Bits(),
					Format: format, Facility: fac, Number: num,
				}
				if len(reads) != 1 || reads[0] != want {
					t.Fatalf("%v %d/%d at %v per bit: reads %+v\nwant %+v", format, fac, num, period, reads, want)
				}
			}
		})
	}
}

func TestDecoderCardPIN(t *testing.T) {
	cardTrain := func(at time.Duration) []wiegand.Edge {
		return wiegand.PulseTrain(encode(wiegand.FormatH10301, 18, 44255), t0.Add(at), 2*time.Millisecond)
	}
	keyTrain := func(width int, k wiegand.Key, at time.Duration) []wiegand.Edge {
		bits, _ := wiegand.EncodeKey4(k)
		if width == 8 {
			bits, _ = wiegand.EncodeKey8(k)
		}
		return wiegand.PulseTrain(bits, t0.Add(at), 2*time.Millisecond)
	}
	cat := func(parts ...[]wiegand.Edge) []wiegand.Edge {
		var out []wiegand.Edge
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	sec := time.Second
	tests := []struct {
		name  string
		mode  wiegand.Mode
		edges []wiegand.Edge
		want  []string
	}{
		{
			name:  "card and 4-bit PIN in time",
			mode:  wiegand.ModeCardPIN4,
			edges: cat(cardTrain(0), keyTrain(4, '1', sec), keyTrain(4, '2', 2*sec), keyTrain(4, '#', 3*sec)),
			want:  []string{"card+pin " + cardA + "/26 12 @3000"},
		},
		{
			name:  "card and 8-bit PIN ended by timeout",
			mode:  wiegand.ModeCardPIN8,
			edges: cat(cardTrain(0), keyTrain(8, '7', sec), keyTrain(8, '8', 2*sec)),
			want:  []string{"card+pin " + cardA + "/26 78 @4500"},
		},
		{
			name:  "card without PIN",
			mode:  wiegand.ModeCardPIN4,
			edges: cardTrain(0),
			want:  []string{"card " + cardA + "/26 @2500"},
		},
		{
			name:  "PIN too late",
			mode:  wiegand.ModeCardPIN4,
			edges: cat(cardTrain(0), keyTrain(4, '1', 2600*time.Millisecond), keyTrain(4, '#', 2700*time.Millisecond)),
			want:  []string{"card " + cardA + "/26 @2500", "pin 1 @2700"},
		},
		{
			// The key's pulses start 1 ms before the card's deadline and end after it: the key
			// counts, because the reader's timeout is held while a frame is being received.
			name:  "key starting just before the deadline counts",
			mode:  wiegand.ModeCardPIN4,
			edges: cat(cardTrain(0), keyTrain(4, '1', 2499*time.Millisecond), keyTrain(4, '#', 2600*time.Millisecond)),
			want:  []string{"card+pin " + cardA + "/26 1 @2600"},
		},
		{
			name:  "key starting at the deadline is too late",
			mode:  wiegand.ModeCardPIN4,
			edges: cat(cardTrain(0), keyTrain(4, '1', 2500*time.Millisecond), keyTrain(4, '#', 2600*time.Millisecond)),
			want:  []string{"card " + cardA + "/26 @2500", "pin 1 @2600"},
		},
		{
			name: "corrupted 8-bit key",
			mode: wiegand.ModeAutodetect,
			edges: cat(cardTrain(0), wiegand.PulseTrain(bitsOf(t, "11110001"), t0.Add(sec), 2*time.Millisecond),
				keyTrain(8, '5', 2*sec), keyTrain(8, '#', 3*sec)),
			want: []string{"error bad key", "pin 5 @3000"},
		},
		{
			name: "noise between card and PIN",
			mode: wiegand.ModeCardPIN4,
			edges: cat(cardTrain(0),
				[]wiegand.Edge{{Line: wiegand.D0, Time: t0.Add(sec)}, {Line: wiegand.D1, Time: t0.Add(sec)}},
				keyTrain(4, '3', 2*sec), keyTrain(4, '#', 3*sec)),
			want: []string{"error noise", "card+pin " + cardA + "/26 3 @3000"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := drive(t, newDecoder(t, wiegand.Config{Mode: tc.mode}), tc.edges)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestDecoderRandomSessions drives every mode with long random sequences of sessions (card,
// card+PIN, PIN, noise, overlong frames, bad parity) at random bit rates and key delays, and
// checks the reads against what each session must give. Sessions are separated by more than
// the PIN timeout, so each one's outcome is independent of the others.
func TestDecoderRandomSessions(t *testing.T) {
	modes := []wiegand.Mode{
		wiegand.ModeSimpleWiegand, wiegand.ModePIN4, wiegand.ModePIN8,
		wiegand.ModeCardPIN4, wiegand.ModeCardPIN8, wiegand.ModeAutodetect,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(mode), 7))
			four, eight := mode == wiegand.ModePIN4 || mode == wiegand.ModeCardPIN4 || mode == wiegand.ModeAutodetect,
				mode == wiegand.ModePIN8 || mode == wiegand.ModeCardPIN8 || mode == wiegand.ModeAutodetect
			keys, cards := four || eight, mode != wiegand.ModePIN4 && mode != wiegand.ModePIN8
			waits := keys && cards // a card waits for a PIN
			var edges []wiegand.Edge
			var want []string
			now := t0
			at := func(tm time.Time) int { return int(tm.Sub(t0) / time.Millisecond) }
			frame := func(bits []bool) time.Time {
				period := time.Duration(300+rng.IntN(2700)) * time.Microsecond
				start := now
				edges = append(edges, wiegand.PulseTrain(bits, now, period)...)
				now = now.Add(time.Duration(len(bits))*period + wiegand.DefaultGap + time.Millisecond)
				return start
			}
			randomCard := func() []bool {
				if rng.IntN(2) == 0 {
					f := wiegand.Formats()[rng.IntN(len(wiegand.Formats()))]
					return encode(f, rng.Uint32N(f.MaxFacility()+1), rng.Uint32N(f.MaxNumber()+1))
				}
				for {
					n := 1 + rng.IntN(wiegand.MaxBits)
					if (n == 4 && four) || (n == 8 && eight) {
						continue
					}
					bits := make([]bool, n)
					for i := range bits {
						bits[i] = rng.IntN(2) == 1
					}
					return bits
				}
			}
			key := func(k wiegand.Key) time.Time {
				var bits []bool
				if four && (!eight || rng.IntN(2) == 0) {
					bits, _ = wiegand.EncodeKey4(k)
				} else {
					bits, _ = wiegand.EncodeKey8(k)
				}
				now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
				return frame(bits)
			}
			randomPIN := func() string {
				pin := make([]byte, 1+rng.IntN(wiegand.DefaultMaxPINDigits))
				for i := range pin {
					pin[i] = byte('0' + rng.IntN(10))
				}
				return string(pin)
			}
			cardDesc := func(bits []bool) string {
				desc := fmt.Sprintf("%s/%d", wiegand.CardID(bits), len(bits))
				for _, f := range wiegand.Formats() {
					if f.Bits() == len(bits) && !refParity(t, f, bits) {
						desc += "!parity"
					}
				}
				return desc
			}
			for range 300 {
				switch s := rng.IntN(6); {
				case s == 0 && cards: // a card alone
					bits := randomCard()
					start := frame(bits)
					if waits {
						want = append(want, fmt.Sprintf("card %s @%d", cardDesc(bits), at(start.Add(wiegand.DefaultPINTimeout))))
					} else {
						want = append(want, fmt.Sprintf("card %s @%d", cardDesc(bits), at(start)))
					}
				case s == 1 && cards && keys: // a card and a PIN ended by '#'
					bits, pin := randomCard(), randomPIN()
					frame(bits)
					for _, k := range []byte(pin) {
						key(wiegand.Key(k))
					}
					end := key('#')
					want = append(want, fmt.Sprintf("card+pin %s %s @%d", cardDesc(bits), pin, at(end)))
				case s == 2 && keys: // a PIN alone, ended by '#' or by timeout
					pin := randomPIN()
					var last time.Time
					for _, k := range []byte(pin) {
						last = key(wiegand.Key(k))
					}
					if rng.IntN(2) == 0 {
						last = key('#')
					} else {
						last = last.Add(wiegand.DefaultPINTimeout)
					}
					want = append(want, fmt.Sprintf("pin %s @%d", pin, at(last)))
				case s == 3: // noise: both lines at once in the middle of a frame
					edges = append(edges, wiegand.Edge{Line: wiegand.D1, Time: now},
						wiegand.Edge{Line: wiegand.D0, Time: now.Add(time.Millisecond)},
						wiegand.Edge{Line: wiegand.D1, Time: now.Add(time.Millisecond + 20*time.Microsecond)})
					now = now.Add(100 * time.Millisecond)
					want = append(want, "error noise")
				case s == 4: // an overlong frame
					frame(make([]bool, wiegand.MaxBits+1+rng.IntN(100)))
					want = append(want, "error bit count")
				case s == 5 && cards: // a card with a parity error, read alone
					f := wiegand.Formats()[rng.IntN(len(wiegand.Formats()))]
					bits := encode(f, rng.Uint32N(f.MaxFacility()+1), rng.Uint32N(f.MaxNumber()+1))
					i := rng.IntN(len(bits))
					bits[i] = !bits[i]
					start := frame(bits)
					if waits {
						start = start.Add(wiegand.DefaultPINTimeout)
					}
					desc := cardDesc(bits)
					if !strings.HasSuffix(desc, "!parity") {
						t.Fatalf("%s: a flipped bit went unnoticed by the reference parity", desc)
					}
					want = append(want, fmt.Sprintf("card %s @%d", desc, at(start)))
				default:
					continue
				}
				now = now.Add(wiegand.DefaultPINTimeout + time.Duration(rng.IntN(5000))*time.Millisecond)
			}
			got := drive(t, newDecoder(t, wiegand.Config{Mode: mode}), edges)
			t.Logf("%d edges, %d outputs", len(edges), len(got))
			for i := range max(len(got), len(want)) {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Fatalf("output %d: got %q, want %q (%d outputs, %d wanted)", i, g, w, len(got), len(want))
				}
			}
		})
	}
}

func TestDecoderConfigErrors(t *testing.T) {
	if _, err := wiegand.NewDecoder(wiegand.Config{Mode: 99}, wiegand.AssemblerConfig{}); err == nil {
		t.Error("bad reader config accepted")
	}
	if _, err := wiegand.NewDecoder(wiegand.Config{}, wiegand.AssemblerConfig{Gap: -1}); err == nil {
		t.Error("bad assembler config accepted")
	}
}

// collector records what Run delivers.
type collector struct {
	reads []wiegand.Read
	errs  []error
}

func (c *collector) read(r wiegand.Read) { c.reads = append(c.reads, r) }
func (c *collector) err(err error)       { c.errs = append(c.errs, err) }

func TestRunPulseSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cardBBits := encode(wiegand.FormatH10306, 1, 1)
		train := append(wiegand.PulseTrain(encode(wiegand.FormatH10301, 18, 44255), t0, 2*time.Millisecond),
			wiegand.PulseTrain(cardBBits, t0.Add(time.Second), 2*time.Millisecond)...)
		train = append(train, wiegand.Edge{Line: wiegand.D0, Time: t0.Add(2 * time.Second)},
			wiegand.Edge{Line: wiegand.D1, Time: t0.Add(2 * time.Second)}) // noise
		var c collector
		start := time.Now()
		err := wiegand.Run(t.Context(), wiegand.PulseSource{Edges: train}, newDecoder(t, wiegand.Config{}), c.read, c.err)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.reads) != 2 || c.reads[0].Card != cardA || c.reads[1].Card != cardB {
			t.Fatalf("reads = %+v", c.reads)
		}
		if !c.reads[0].Time.Equal(start) || c.reads[1].Time.Sub(c.reads[0].Time) != time.Second {
			t.Fatalf("read times %v, %v; started %v", c.reads[0].Time, c.reads[1].Time, start)
		}
		if len(c.errs) != 1 || !errors.Is(c.errs[0], wiegand.ErrNoise) {
			t.Fatalf("errors = %v", c.errs)
		}
		// Run returned once the last frame ended: 2 s of train plus the 25 ms gap.
		if el := time.Since(start); el != 2*time.Second+wiegand.DefaultGap {
			t.Fatalf("Run took %v", el)
		}
	})
}

func TestRunCompletesPendingReadAfterSourceEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		train := wiegand.PulseTrain(encode(wiegand.FormatH10304, 100, 200), t0, time.Millisecond)
		var c collector
		start := time.Now()
		err := wiegand.Run(t.Context(), wiegand.PulseSource{Edges: train}, newDecoder(t, wiegand.Config{Mode: wiegand.ModeCardPIN8}), c.read, c.err)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.reads) != 1 || c.reads[0].Kind != wiegand.KindCard || c.reads[0].Facility != 100 || c.reads[0].Number != 200 {
			t.Fatalf("reads = %+v", c.reads)
		}
		if el := time.Since(start); el != wiegand.DefaultPINTimeout {
			t.Fatalf("card read after %v, want %v", el, wiegand.DefaultPINTimeout)
		}
	})
}

func TestRunCardPINThroughSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var train []wiegand.Edge
		train = append(train, wiegand.PulseTrain(encode(wiegand.FormatCorporate1000, 1000, 123456), t0, 2*time.Millisecond)...)
		for i, k := range []wiegand.Key("2580#") {
			bits, _ := wiegand.EncodeKey4(k)
			train = append(train, wiegand.PulseTrain(bits, t0.Add(time.Duration(i+1)*800*time.Millisecond), 2*time.Millisecond)...)
		}
		var c collector
		if err := wiegand.Run(t.Context(), wiegand.PulseSource{Edges: train}, newDecoder(t, wiegand.Config{Mode: wiegand.ModeAutodetect}), c.read, c.err); err != nil {
			t.Fatal(err)
		}
		if len(c.reads) != 1 || c.reads[0].Kind != wiegand.KindCardPIN || c.reads[0].Card != "0f:a0:78:90:20" ||
			c.reads[0].PIN != "2580" || c.reads[0].Format != wiegand.FormatCorporate1000 || len(c.errs) != 0 {
			t.Fatalf("reads = %+v, errors %v", c.reads, c.errs)
		}
	})
}

func TestRunStopsWhenContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A card, then another one an hour later that never comes: Run is cancelled from
		// onRead after the first.
		train := append(wiegand.PulseTrain(encode(wiegand.FormatH10301, 1, 2), t0, 2*time.Millisecond),
			wiegand.PulseTrain(encode(wiegand.FormatH10301, 3, 4), t0.Add(time.Hour), 2*time.Millisecond)...)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var c collector
		start := time.Now()
		err := wiegand.Run(ctx, wiegand.PulseSource{Edges: train}, newDecoder(t, wiegand.Config{}), func(r wiegand.Read) {
			c.read(r)
			cancel()
		}, c.err)
		if err != nil || len(c.reads) != 1 || c.reads[0].Number != 2 {
			t.Fatalf("Run = %v, reads %+v", err, c.reads)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Run returned after %v", el)
		}
		// synctest.Test fails if the source's goroutine is still running.
	})
}

func TestRunDiscardsPendingOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &chanSource{ch: make(chan wiegand.Edge)}
		ctx, cancel := context.WithCancel(t.Context())
		var c collector
		done := make(chan error)
		go func() {
			done <- wiegand.Run(ctx, src, newDecoder(t, wiegand.Config{Mode: wiegand.ModeCardPIN4}), c.read, c.err)
		}()
		for _, e := range wiegand.PulseTrain(encode(wiegand.FormatH10301, 1, 2), time.Now(), 2*time.Millisecond) {
			time.Sleep(time.Until(e.Time))
			src.ch <- e
		}
		time.Sleep(time.Second) // the card is pending, waiting for its PIN
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(c.reads) != 0 || len(c.errs) != 0 || !src.closed {
			t.Fatalf("reads %+v, errors %v, source closed %v", c.reads, c.errs, src.closed)
		}
	})
}

// chanSource is a Source fed by the test that, like GPIOSource, ends only with its context.
type chanSource struct {
	ch     chan wiegand.Edge
	closed bool
}

func (s *chanSource) Events(ctx context.Context) (<-chan wiegand.Edge, error) {
	out := make(chan wiegand.Edge)
	go func() {
		defer close(out)
		for {
			select {
			case e := <-s.ch:
				select {
				case out <- e:
				case <-ctx.Done():
					s.closed = true
					return
				}
			case <-ctx.Done():
				s.closed = true
				return
			}
		}
	}()
	return out, nil
}

type failingSource struct{}

var errNoHardware = errors.New("no hardware")

func (failingSource) Events(context.Context) (<-chan wiegand.Edge, error) { return nil, errNoHardware }

func TestRunSourceFails(t *testing.T) {
	err := wiegand.Run(t.Context(), failingSource{}, newDecoder(t, wiegand.Config{}), nil, nil)
	if !errors.Is(err, errNoHardware) {
		t.Fatalf("Run = %v", err)
	}
}

// TestRunRealTime runs a short pulse train on the real clock (about 80 ms), with nil callbacks
// for errors, and checks that no goroutine is left.
func TestRunRealTime(t *testing.T) {
	defer goleak.VerifyNone(t)
	train := wiegand.PulseTrain(encode(wiegand.FormatH10301, 18, 44255), t0, 2*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var reads []wiegand.Read
	if err := wiegand.Run(ctx, wiegand.PulseSource{Edges: train}, newDecoder(t, wiegand.Config{}),
		func(r wiegand.Read) { reads = append(reads, r) }, nil); err != nil {
		t.Fatal(err)
	}
	if len(reads) != 1 || reads[0].Card != cardA {
		t.Fatalf("reads = %+v", reads)
	}
	// An empty source ends at once.
	if err := wiegand.Run(ctx, wiegand.PulseSource{}, newDecoder(t, wiegand.Config{}), nil, nil); err != nil {
		t.Fatal(err)
	}
}
