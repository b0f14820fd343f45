package wiegand_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/reader/wiegand"
)

// rstep is one input to a Reader at a time in ms: a frame, or a Tick when bits is nil.
type rstep struct {
	at   int
	bits []bool
}

const (
	cardA = "09:56:6f:80"    // H10301 18/44255
	cardB = "80:00:80:00:80" // H10306 1/1
)

func stepCardA(at int) rstep { return rstep{at, encode(wiegand.FormatH10301, 18, 44255)} }
func stepCardB(at int) rstep { return rstep{at, encode(wiegand.FormatH10306, 1, 1)} }

// encode is Encode for known-good arguments.
func encode(f wiegand.Format, fac, num uint32) []bool {
	b, err := wiegand.Encode(f, fac, num)
	if err != nil {
		panic(err)
	}
	return b
}
func tick(at int) rstep { return rstep{at: at} }

// keySteps returns one key frame per key of s (width 4 or 8 bits), 100 ms apart from start ms.
func keySteps(width, start int, s string) []rstep {
	var out []rstep
	for i, k := range []byte(s) {
		var bits []bool
		var err error
		if width == 4 {
			bits, err = wiegand.EncodeKey4(wiegand.Key(k))
		} else {
			bits, err = wiegand.EncodeKey8(wiegand.Key(k))
		}
		if err != nil {
			panic(err)
		}
		out = append(out, rstep{start + 100*i, bits})
	}
	return out
}

func steps(parts ...any) []rstep {
	var out []rstep
	for _, p := range parts {
		switch p := p.(type) {
		case rstep:
			out = append(out, p)
		case []rstep:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("steps: %T", p))
		}
	}
	return out
}

// describe renders a read for comparison: "card+pin 09:56:6f:80/26 1234 @1200".
// A card with a parity error is marked "!parity".
func describe(r wiegand.Read) string {
	at := int(r.Time.Sub(t0) / time.Millisecond)
	card := fmt.Sprintf("%s/%d", r.Card, r.Bits)
	if r.BadParity {
		card += "!parity"
	}
	switch r.Kind {
	case wiegand.KindCard:
		return fmt.Sprintf("card %s @%d", card, at)
	case wiegand.KindPIN:
		return fmt.Sprintf("pin %s @%d", r.PIN, at)
	case wiegand.KindCardPIN:
		return fmt.Sprintf("card+pin %s %s @%d", card, r.PIN, at)
	}
	return fmt.Sprintf("%+v", r)
}

func describeErr(err error, at int) string {
	for _, e := range []struct {
		err  error
		name string
	}{
		{wiegand.ErrBadKey, "bad key"}, {wiegand.ErrPINTooLong, "pin too long"},
		{wiegand.ErrUnexpectedFrame, "unexpected frame"}, {wiegand.ErrBitCount, "bit count"},
		{wiegand.ErrNoise, "noise"},
	} {
		if errors.Is(err, e.err) {
			return fmt.Sprintf("error %s @%d", e.name, at)
		}
	}
	return fmt.Sprintf("error %v @%d", err, at)
}

// runReader feeds steps to a new reader and returns what came out, described.
func runReader(t *testing.T, cfg wiegand.Config, in []rstep) (out []string, r *wiegand.Reader) {
	t.Helper()
	r, err := wiegand.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range in {
		var reads []wiegand.Read
		var err error
		if s.bits == nil {
			reads = r.Tick(ms(s.at))
		} else {
			f, derr := wiegand.Decode(s.bits)
			if derr != nil {
				t.Fatal(derr)
			}
			reads, err = r.Frame(f, ms(s.at))
		}
		for _, rd := range reads {
			out = append(out, describe(rd))
		}
		if err != nil {
			out = append(out, describeErr(err, s.at))
		}
	}
	return out, r
}

func TestReaderModes(t *testing.T) {
	corrupt8 := rstep{bits: bitsOf(t, "1110 0010")} // '2' with a bad complement nibble
	tests := []struct {
		name    string
		cfg     wiegand.Config
		in      []rstep
		want    []string
		pending bool
	}{
		// SIMPLE_WIEGAND
		{
			name: "simple: card read at once",
			cfg:  wiegand.Config{Mode: wiegand.ModeSimpleWiegand},
			in:   steps(stepCardA(0), stepCardB(50)),
			want: []string{"card " + cardA + "/26 @0", "card " + cardB + "/34 @50"},
		},
		{
			name: "simple: short frames are cards too",
			cfg:  wiegand.Config{},
			in:   steps(keySteps(4, 0, "5"), keySteps(8, 100, "5")),
			want: []string{"card 50/4 @0", "card a5/8 @100"},
		},
		// WIEGAND_PIN_4BITS
		{
			name: "pin4: end key",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   keySteps(4, 0, "1234#"),
			want: []string{"pin 1234 @400"},
		},
		{
			name: "pin4: timeout",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   steps(keySteps(4, 0, "987"), tick(2699), tick(2700)),
			want: []string{"pin 987 @2700"},
		},
		{
			name: "pin4: star clears",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   keySteps(4, 0, "99*1234#"),
			want: []string{"pin 1234 @700"},
		},
		{
			name: "pin4: timeout with no digits gives nothing",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   steps(keySteps(4, 0, "*"), tick(10000)),
		},
		{
			name: "pin4: too many digits",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   steps(keySteps(4, 0, "1234567890123"), tick(5000)),
			want: []string{"error pin too long @1200"},
		},
		{
			name:    "pin4: a card frame is unexpected and the entry is kept",
			cfg:     wiegand.Config{Mode: wiegand.ModePIN4},
			in:      steps(keySteps(4, 0, "12"), stepCardA(150), keySteps(4, 200, "3#")),
			want:    []string{"error unexpected frame @150", "pin 123 @300"},
			pending: false,
		},
		{
			name: "pin4: 8-bit frames are not keys",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   keySteps(8, 0, "1"),
			want: []string{"error unexpected frame @0"},
		},
		{
			name: "pin4: key codes above 11 are bad keys",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN4},
			in:   steps(keySteps(4, 0, "1"), rstep{100, bitsOf(t, "1110")}, keySteps(4, 200, "#")),
			want: []string{"error bad key @100"},
		},
		// WIEGAND_PIN_8BITS
		{
			name: "pin8: end key",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN8},
			in:   keySteps(8, 0, "4321#"),
			want: []string{"pin 4321 @400"},
		},
		{
			name: "pin8: corrupted key discards the entry",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN8},
			in:   steps(keySteps(8, 0, "12"), rstep{200, corrupt8.bits}, keySteps(8, 300, "34#")),
			want: []string{"error bad key @200", "pin 34 @500"},
		},
		{
			name: "pin8: timeout",
			cfg:  wiegand.Config{Mode: wiegand.ModePIN8, PIN: wiegand.PINConfig{Timeout: time.Second}},
			in:   steps(keySteps(8, 0, "55"), tick(1100)),
			want: []string{"pin 55 @1100"},
		},
		// WIEGAND_CARD_PIN_4BITS
		{
			name: "card+pin4: PIN in time",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 1000, "1234#")),
			want: []string{"card+pin " + cardA + "/26 1234 @1400"},
		},
		{
			name:    "card+pin4: card waits for its PIN",
			cfg:     wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:      steps(stepCardA(0), tick(2499)),
			pending: true,
		},
		{
			name: "card+pin4: no PIN in time gives a card read at the deadline",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), tick(2600)),
			want: []string{"card " + cardA + "/26 @2500"},
		},
		{
			name: "card+pin4: PIN too late is a PIN alone",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 2500, "1234#")),
			want: []string{"card " + cardA + "/26 @2500", "pin 1234 @2900"},
		},
		{
			name: "card+pin4: each key restarts the wait",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), rstep{2400, mustEncode4('1')}, rstep{4800, mustEncode4('2')}, tick(7299), tick(7300)),
			want: []string{"card+pin " + cardA + "/26 12 @7300"},
		},
		{
			name: "card+pin4: end key without digits skips the PIN",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 300, "#")),
			want: []string{"card " + cardA + "/26 @300"},
		},
		{
			name: "card+pin4: star clears the digits, the card stays",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 2000, "55*"), keySteps(4, 4000, "9#")),
			want: []string{"card+pin " + cardA + "/26 9 @4100"},
		},
		{
			name: "card+pin4: a second card completes the first",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 100, "7"), stepCardB(500), keySteps(4, 600, "8#")),
			want: []string{"card+pin " + cardA + "/26 7 @500", "card+pin " + cardB + "/34 8 @700"},
		},
		{
			name: "card+pin4: too many digits discard the card",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(stepCardA(0), keySteps(4, 100, "1234567890123"), tick(10000)),
			want: []string{"error pin too long @1300"},
		},
		{
			name: "card+pin4: PIN alone",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   keySteps(4, 0, "2468#"),
			want: []string{"pin 2468 @400"},
		},
		{
			name: "card+pin4: a card after digits completes them as a PIN",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(keySteps(4, 0, "24"), stepCardA(300), tick(2800)),
			want: []string{"pin 24 @300", "card " + cardA + "/26 @2800"},
		},
		{
			name: "card+pin4: 8-bit frames are cards",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4},
			in:   steps(keySteps(8, 0, "1"), tick(2500)),
			want: []string{"card e1/8 @2500"},
		},
		// WIEGAND_CARD_PIN_8BITS
		{
			name: "card+pin8: PIN in time",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN8},
			in:   steps(stepCardB(0), keySteps(8, 500, "0000#")),
			want: []string{"card+pin " + cardB + "/34 0000 @900"},
		},
		{
			name: "card+pin8: PIN timeout after digits",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN8},
			in:   steps(stepCardB(0), keySteps(8, 500, "12"), tick(3100)),
			want: []string{"card+pin " + cardB + "/34 12 @3100"},
		},
		{
			name: "card+pin8: corrupted key discards card and digits",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN8},
			in:   steps(stepCardB(0), keySteps(8, 100, "1"), rstep{200, corrupt8.bits}, tick(10000)),
			want: []string{"error bad key @200"},
		},
		{
			name: "card+pin8: 4-bit frames are cards",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN8},
			in:   steps(keySteps(4, 0, "1"), tick(2500)),
			want: []string{"card 10/4 @2500"},
		},
		// AUTODETECT
		{
			name: "autodetect: card then 4-bit PIN",
			cfg:  wiegand.Config{Mode: wiegand.ModeAutodetect},
			in:   steps(stepCardA(0), keySteps(4, 100, "42#")),
			want: []string{"card+pin " + cardA + "/26 42 @300"},
		},
		{
			name: "autodetect: card then 8-bit PIN",
			cfg:  wiegand.Config{Mode: wiegand.ModeAutodetect},
			in:   steps(stepCardA(0), keySteps(8, 100, "42#")),
			want: []string{"card+pin " + cardA + "/26 42 @300"},
		},
		{
			name: "autodetect: card alone",
			cfg:  wiegand.Config{Mode: wiegand.ModeAutodetect},
			in:   steps(stepCardA(0), tick(3000)),
			want: []string{"card " + cardA + "/26 @2500"},
		},
		{
			name: "autodetect nowait: card at once, keys are a PIN alone",
			cfg:  wiegand.Config{Mode: wiegand.ModeAutodetect, NoWait: true},
			in:   steps(stepCardA(0), keySteps(4, 100, "42#")),
			want: []string{"card " + cardA + "/26 @0", "pin 42 @300"},
		},
		{
			name: "custom end key",
			cfg:  wiegand.Config{Mode: wiegand.ModeCardPIN4, PIN: wiegand.PINConfig{EndKey: '*'}},
			in:   steps(stepCardA(0), keySteps(4, 100, "12#3*")),
			want: []string{"card+pin " + cardA + "/26 3 @500"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, r := runReader(t, tc.cfg, tc.in)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if _, ok := r.Deadline(); ok != tc.pending {
				t.Fatalf("pending = %v, want %v", ok, tc.pending)
			}
		})
	}
}

func mustEncode4(k wiegand.Key) []bool {
	b, err := wiegand.EncodeKey4(k)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReaderReadFields(t *testing.T) {
	r, err := wiegand.NewReader(wiegand.Config{Mode: wiegand.ModeCardPIN4})
	if err != nil {
		t.Fatal(err)
	}
	bad := mustEncode(t, wiegand.FormatH10304, 1234, 56789)
	bad[10] = !bad[10]
	f, _ := wiegand.Decode(bad)
	if reads, err := r.Frame(f, ms(0)); len(reads) != 0 || err != nil {
		t.Fatalf("Frame = %v, %v", reads, err)
	}
	if d, ok := r.Deadline(); !ok || !d.Equal(ms(2500)) {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	r.Key('6', ms(100))
	reads, err := r.Key('#', ms(200))
	if err != nil || len(reads) != 1 {
		t.Fatalf("Key = %v, %v", reads, err)
	}
	got := reads[0]
	want := wiegand.Read{
		Kind: wiegand.KindCardPIN, Time: ms(200), Card: f.Card, Bits: 37, PIN: "6",
		Format: wiegand.FormatH10304, Facility: f.Facility, Number: f.Number, BadParity: true,
	}
	if got != want {
		t.Fatalf("read = %+v\nwant %+v", got, want)
	}
	if _, ok := r.Deadline(); ok {
		t.Fatal("still pending after the read")
	}
	// A zero Frame is refused.
	if _, err := r.Frame(wiegand.Frame{}, ms(300)); !errors.Is(err, wiegand.ErrBitCount) {
		t.Fatalf("Frame(zero) error = %v", err)
	}
}

func TestReaderTimeGoingBackwards(t *testing.T) {
	r, err := wiegand.NewReader(wiegand.Config{Mode: wiegand.ModePIN4})
	if err != nil {
		t.Fatal(err)
	}
	r.Key('1', ms(1000))
	r.Key('2', ms(500)) // treated as simultaneous with '1'
	if d, _ := r.Deadline(); !d.Equal(ms(3500)) {
		t.Fatalf("Deadline = %v, want %v", d, ms(3500))
	}
	if reads := r.Tick(ms(3500)); len(reads) != 1 || reads[0].PIN != "12" {
		t.Fatalf("Tick = %v", reads)
	}
}

func TestParseMode(t *testing.T) {
	for m := wiegand.ModeSimpleWiegand; m <= wiegand.ModeAutodetect; m++ {
		for _, s := range []string{m.String(), strings.ToLower(m.String())} {
			got, err := wiegand.ParseMode(s)
			if err != nil || got != m {
				t.Errorf("ParseMode(%q) = %v, %v; want %v", s, got, err, m)
			}
		}
	}
	for _, s := range []string{"", "WIEGAND_PIN_BUFFERED", "WIEGAND_CARD_PIN_BUFFERED", "SIMPLE", "MODE_9"} {
		if _, err := wiegand.ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) accepted", s)
		}
	}
	var cfg struct{ Mode wiegand.Mode }
	if err := json.Unmarshal([]byte(`{"Mode":"wiegand_card_pin_8bits"}`), &cfg); err != nil || cfg.Mode != wiegand.ModeCardPIN8 {
		t.Fatalf("json mode = %v, %v", cfg.Mode, err)
	}
	b, err := json.Marshal(cfg)
	if err != nil || string(b) != `{"Mode":"WIEGAND_CARD_PIN_8BITS"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	if _, err := json.Marshal(struct{ M wiegand.Mode }{wiegand.Mode(77)}); err == nil {
		t.Fatal("marshalled an unknown mode")
	}
	if k := wiegand.KindCardPIN.String(); k != "card+pin" {
		t.Fatalf("KindCardPIN = %q", k)
	}
}

func TestReaderConfigValidate(t *testing.T) {
	bad := []wiegand.Config{
		{Mode: wiegand.Mode(42)},
		{Mode: wiegand.ModeCardPIN4, NoWait: true},
		{Mode: wiegand.ModePIN4, PIN: wiegand.PINConfig{EndKey: '1'}},
	}
	for _, cfg := range bad {
		if _, err := wiegand.NewReader(cfg); err == nil {
			t.Errorf("NewReader(%+v) accepted", cfg)
		}
	}
	r, err := wiegand.NewReader(wiegand.Config{Mode: wiegand.ModeAutodetect, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Config(); c.PIN.Timeout != wiegand.DefaultPINTimeout || c.PIN.EndKey != '#' {
		t.Fatalf("Config() = %+v", c)
	}
}
