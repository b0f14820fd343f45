package wiegand_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/reader/wiegand"
)

func us(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) }

// assemble feeds edges to a new assembler, then ticks at the end, and returns what came out:
// frames as bit strings and errors as "noise" or "bit count".
func assemble(t *testing.T, cfg wiegand.AssemblerConfig, edges []wiegand.Edge) []string {
	t.Helper()
	a, err := wiegand.NewAssembler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	add := func(bits []bool, err error) {
		switch {
		case errors.Is(err, wiegand.ErrNoise):
			out = append(out, "noise")
		case errors.Is(err, wiegand.ErrBitCount):
			out = append(out, "bit count")
		case err != nil:
			t.Fatalf("unexpected error %v", err)
		case bits != nil:
			out = append(out, bitString(bits))
		}
	}
	for _, e := range edges {
		add(a.Edge(e))
	}
	if d, ok := a.Deadline(); ok {
		add(a.Tick(d.Add(-time.Nanosecond)))
		add(a.Tick(d))
	}
	if _, ok := a.Deadline(); ok {
		t.Fatal("frame still in progress after its deadline")
	}
	return out
}

func TestAssembler(t *testing.T) {
	const period = 2 * time.Millisecond
	card := bitString(encode(wiegand.FormatH10301, 18, 44255))
	train := func(bits string, startUS int) []wiegand.Edge {
		return wiegand.PulseTrain(bitsOf(t, bits), us(startUS), period)
	}
	cat := func(parts ...[]wiegand.Edge) []wiegand.Edge {
		var out []wiegand.Edge
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	noisy := train("1010", 0)
	noisy = append(noisy[:2:2], append([]wiegand.Edge{{Line: wiegand.D1, Time: noisy[1].Time.Add(10 * time.Microsecond)}}, noisy[2:]...)...)
	lost := train("1010", 0)
	lost[2].Lost = true

	tests := []struct {
		name  string
		cfg   wiegand.AssemblerConfig
		edges []wiegand.Edge
		want  []string
	}{
		{name: "one frame ends by tick", edges: train(card, 0), want: []string{card}},
		{name: "single bit", edges: train("1", 0), want: []string{"1"}},
		{
			name:  "next frame's first edge ends the previous one",
			edges: cat(train("1011", 0), train("0110", 100_000)),
			want:  []string{"1011", "0110"},
		},
		{
			name:  "a gap just under 25 ms continues the frame",
			edges: cat(train("10", 0), train("01", 2_000+24_999)),
			want:  []string{"1001"},
		},
		{
			name:  "a gap of exactly 25 ms ends the frame",
			edges: cat(train("10", 0), train("01", 2_000+25_000)),
			want:  []string{"10", "01"},
		},
		{
			name:  "custom gap",
			cfg:   wiegand.AssemblerConfig{Gap: 5 * time.Millisecond},
			edges: cat(train("11", 0), train("00", 2_000+5_000)),
			want:  []string{"11", "00"},
		},
		{name: "128 bits", edges: train(strings.Repeat("10", 64), 0), want: []string{strings.Repeat("10", 64)}},
		{name: "129 bits are discarded", edges: train(strings.Repeat("1", 129), 0), want: []string{"bit count"}},
		{
			name:  "after an overlong frame the next one is fine",
			edges: cat(train(strings.Repeat("0", 200), 0), train("111", 500_000)),
			want:  []string{"bit count", "111"},
		},
		{
			name:  "pulses on both lines within the window are noise",
			edges: cat(noisy, train("0011", 100_000)),
			want:  []string{"noise", "0011"},
		},
		{
			name: "simultaneous pulses on both lines are noise",
			edges: []wiegand.Edge{
				{Line: wiegand.D0, Time: us(0)}, {Line: wiegand.D1, Time: us(0)}, {Line: wiegand.D0, Time: us(2000)},
			},
			want: []string{"noise"},
		},
		{
			name: "both lines 150 µs apart is not noise",
			edges: []wiegand.Edge{
				{Line: wiegand.D0, Time: us(0)}, {Line: wiegand.D1, Time: us(150)},
			},
			want: []string{"01"},
		},
		{
			name: "same line twice within the window is not noise",
			edges: []wiegand.Edge{
				{Line: wiegand.D1, Time: us(0)}, {Line: wiegand.D1, Time: us(10)},
			},
			want: []string{"11"},
		},
		{
			name:  "noise check disabled",
			cfg:   wiegand.AssemblerConfig{NoiseWindow: -1},
			edges: []wiegand.Edge{{Line: wiegand.D0, Time: us(0)}, {Line: wiegand.D1, Time: us(0)}},
			want:  []string{"01"},
		},
		{name: "lost edges discard the frame", edges: lost, want: []string{"noise"}},
		{
			name:  "lost edges at the start of a frame discard the previous frame too",
			edges: cat(train("11", 0), []wiegand.Edge{{Line: wiegand.D0, Time: us(100_000), Lost: true}}, train("01", 102_000)),
			want:  []string{"noise", "noise"},
		},
		{
			name:  "invalid line",
			edges: []wiegand.Edge{{Line: wiegand.D1, Time: us(0)}, {Line: wiegand.Line(7), Time: us(2000)}},
			want:  []string{"noise"},
		},
		{
			name: "an edge earlier than the previous one counts as simultaneous",
			edges: []wiegand.Edge{
				{Line: wiegand.D1, Time: us(2000)}, {Line: wiegand.D1, Time: us(0)}, {Line: wiegand.D0, Time: us(4000)},
			},
			want: []string{"110"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := assemble(t, tc.cfg, tc.edges)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestAssemblerDeadline(t *testing.T) {
	a, err := wiegand.NewAssembler(wiegand.AssemblerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Deadline(); ok {
		t.Fatal("idle assembler has a deadline")
	}
	if bits, err := a.Edge(wiegand.Edge{Line: wiegand.D1, Time: ms(0)}); bits != nil || err != nil {
		t.Fatalf("Edge = %v, %v", bits, err)
	}
	a.Edge(wiegand.Edge{Line: wiegand.D0, Time: ms(2)})
	if d, ok := a.Deadline(); !ok || !d.Equal(ms(27)) {
		t.Fatalf("Deadline = %v, %v; want %v", d, ok, ms(27))
	}
	if bits, err := a.Tick(ms(26)); bits != nil || err != nil {
		t.Fatalf("early Tick = %v, %v", bits, err)
	}
	bits, err := a.Tick(ms(27))
	if err != nil || bitString(bits) != "10" {
		t.Fatalf("Tick = %s, %v", bitString(bits), err)
	}
	a.Edge(wiegand.Edge{Line: wiegand.D1, Time: ms(100)})
	a.Reset()
	if _, ok := a.Deadline(); ok {
		t.Fatal("deadline after Reset")
	}
	if c := a.Config(); c.Gap != wiegand.DefaultGap || c.NoiseWindow != wiegand.DefaultNoiseWindow {
		t.Fatalf("Config() = %+v", c)
	}
}

func TestAssemblerConfigValidate(t *testing.T) {
	for _, cfg := range []wiegand.AssemblerConfig{
		{Gap: -time.Millisecond},
		{Gap: time.Millisecond, NoiseWindow: time.Millisecond},
		{Gap: 50 * time.Microsecond}, // shorter than the default noise window
	} {
		if _, err := wiegand.NewAssembler(cfg); err == nil {
			t.Errorf("NewAssembler(%+v) accepted", cfg)
		}
	}
	if _, err := wiegand.NewAssembler(wiegand.AssemblerConfig{Gap: 50 * time.Microsecond, NoiseWindow: -1}); err != nil {
		t.Errorf("NewAssembler with noise check disabled: %v", err)
	}
}

func TestLineNames(t *testing.T) {
	if wiegand.D0.String() != "D0" || wiegand.D1.String() != "D1" || wiegand.Line(5).String() != "line(5)" {
		t.Fatal("line names")
	}
}
