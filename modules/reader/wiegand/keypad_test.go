package wiegand_test

import (
	"errors"
	"testing"
	"time"

	"gatehouse/modules/reader/wiegand"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		bits string
		want wiegand.Key
		err  bool
	}{
		// 4-bit: the key code MSB first.
		{"0000", '0', false},
		{"0001", '1', false},
		{"0101", '5', false},
		{"1001", '9', false},
		{"1010", '*', false},
		{"1011", '#', false},
		{"1100", 0, true}, // codes 12–15 are not keys
		{"1111", 0, true},
		// 8-bit: complement nibble, then code nibble: '1' = 1110 0001 = 0xE1.
		{"1111 0000", '0', false},
		{"1110 0001", '1', false},
		{"1010 0101", '5', false},
		{"0110 1001", '9', false},
		{"0101 1010", '*', false},
		{"0100 1011", '#', false},
		{"1110 0010", 0, true}, // corrupted '2': high nibble 1110 is not ^0010 = 1101
		{"1111 0001", 0, true}, // corrupted '1': one bit flipped in the high nibble
		{"0000 0000", 0, true},
		{"0000 1111", 0, true}, // nibbles match but code 15 is not a key
		{"0011 1100", 0, true}, // code 12
		// other lengths
		{"101", 0, true},
		{"10101", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		k, err := wiegand.DecodeKey(bitsOf(t, tc.bits))
		if tc.err {
			if !errors.Is(err, wiegand.ErrBadKey) {
				t.Errorf("DecodeKey(%s) = %v, %v; want ErrBadKey", tc.bits, k, err)
			}
			continue
		}
		if err != nil || k != tc.want {
			t.Errorf("DecodeKey(%s) = %v, %v; want %v", tc.bits, k, err, tc.want)
		}
	}
}

func TestEncodeKeyRoundTrip(t *testing.T) {
	for _, k := range []wiegand.Key("0123456789*#") {
		b4, err := wiegand.EncodeKey4(k)
		if err != nil || len(b4) != 4 {
			t.Fatalf("EncodeKey4(%v) = %v, %v", k, b4, err)
		}
		b8, err := wiegand.EncodeKey8(k)
		if err != nil || len(b8) != 8 {
			t.Fatalf("EncodeKey8(%v) = %v, %v", k, b8, err)
		}
		for _, b := range [][]bool{b4, b8} {
			if got, err := wiegand.DecodeKey(b); err != nil || got != k {
				t.Errorf("DecodeKey(%s) = %v, %v; want %v", bitString(b), got, err, k)
			}
		}
		// Every single-bit error in an 8-bit key is detected.
		for i := range b8 {
			bad := append([]bool(nil), b8...)
			bad[i] = !bad[i]
			if got, err := wiegand.DecodeKey(bad); !errors.Is(err, wiegand.ErrBadKey) {
				t.Errorf("DecodeKey(%s) (%v with bit %d flipped) = %v, %v; want ErrBadKey", bitString(bad), k, i, got, err)
			}
		}
	}
	for _, k := range []wiegand.Key{0, 'a', 'A', '+'} {
		if _, err := wiegand.EncodeKey4(k); !errors.Is(err, wiegand.ErrBadKey) {
			t.Errorf("EncodeKey4(%v) error = %v", k, err)
		}
		if _, err := wiegand.EncodeKey8(k); !errors.Is(err, wiegand.ErrBadKey) {
			t.Errorf("EncodeKey8(%v) error = %v", k, err)
		}
	}
}

// pinStep is one input to a PINCollector: a key (or a Tick when key is 0) at a time in ms.
type pinStep struct {
	at  int
	key wiegand.Key
}

func TestPINCollector(t *testing.T) {
	type result struct {
		at  int    // step time
		pin string // PIN completed, or
		err error  // error returned
	}
	tooLong := wiegand.ErrPINTooLong
	tests := []struct {
		name    string
		cfg     wiegand.PINConfig
		steps   []pinStep
		want    []result
		pending int // digits pending at the end
	}{
		{
			name:  "end key",
			steps: []pinStep{{0, '1'}, {300, '2'}, {600, '3'}, {900, '4'}, {1200, '#'}},
			want:  []result{{1200, "1234", nil}},
		},
		{
			name:  "timeout after last key",
			steps: []pinStep{{0, '1'}, {2000, '2'}, {4000, '3'}, {6499, 0}, {6500, 0}},
			want:  []result{{6500, "123", nil}},
		},
		{
			name:  "timeout with no digits gives nothing",
			steps: []pinStep{{0, '*'}, {10000, 0}, {10000, '#'}},
		},
		{
			name:  "end key with no digits gives nothing",
			steps: []pinStep{{0, '#'}, {100, '#'}},
		},
		{
			name:  "star clears",
			steps: []pinStep{{0, '1'}, {100, '2'}, {200, '*'}, {300, '5'}, {400, '6'}, {500, '#'}},
			want:  []result{{500, "56", nil}},
		},
		{
			name:  "star clears and cancels the timeout",
			steps: []pinStep{{0, '1'}, {100, '*'}, {5000, 0}},
		},
		{
			name:  "late key: the old entry times out, the key starts a new one",
			steps: []pinStep{{0, '1'}, {100, '2'}, {2600, '3'}, {2700, '#'}},
			want:  []result{{2600, "12", nil}, {2700, "3", nil}},
		},
		{
			name:  "late end key: the entry had already timed out",
			steps: []pinStep{{0, '7'}, {3000, '#'}},
			want:  []result{{3000, "7", nil}},
		},
		{
			name:  "twelve digits are allowed",
			steps: keys(0, "123456789012#"),
			want:  []result{{1200, "123456789012", nil}},
		},
		{
			name:  "thirteen digits are too many",
			steps: keys(0, "1234567890123"),
			want:  []result{{1200, "", tooLong}},
		},
		{
			name:  "after too many digits the entry starts over",
			steps: append(keys(0, "1234567890123"), keys(1300, "42#")...),
			want:  []result{{1200, "", tooLong}, {1500, "42", nil}},
		},
		{
			name:  "digits after too many digits start a new entry",
			steps: keys(0, "12345678901234#"),
			want:  []result{{1200, "", tooLong}, {1400, "4", nil}},
		},
		{
			name:  "custom end key star, clear key becomes hash",
			cfg:   wiegand.PINConfig{EndKey: '*'},
			steps: keys(0, "12#34*"),
			want:  []result{{500, "34", nil}},
		},
		{
			name:  "custom timeout and max digits",
			cfg:   wiegand.PINConfig{Timeout: time.Second, MaxDigits: 4},
			steps: append(keys(0, "1234"), pinStep{1300, 0}),
			want:  []result{{1300, "1234", nil}},
		},
		{
			name:  "invalid key value discards the entry",
			steps: []pinStep{{0, '1'}, {100, 'x'}, {200, '#'}},
			want:  []result{{100, "", wiegand.ErrBadKey}},
		},
		{
			name:    "pending digits",
			steps:   keys(0, "98"),
			pending: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := wiegand.NewPINCollector(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []result
			for _, s := range tc.steps {
				var pin string
				var done bool
				if s.key == 0 {
					pin, done = c.Tick(ms(s.at))
				} else {
					pin, done, err = c.Key(s.key, ms(s.at))
					if err != nil {
						got = append(got, result{s.at, "", err})
					}
				}
				if done {
					got = append(got, result{s.at, pin, nil})
				}
			}
			match := len(got) == len(tc.want)
			for i := 0; match && i < len(got); i++ {
				match = got[i].at == tc.want[i].at && got[i].pin == tc.want[i].pin &&
					errors.Is(got[i].err, tc.want[i].err) && (got[i].err == nil) == (tc.want[i].err == nil)
			}
			if !match {
				t.Fatalf("results = %v, want %v", got, tc.want)
			}
			if c.Len() != tc.pending {
				t.Fatalf("Len() = %d, want %d", c.Len(), tc.pending)
			}
			if _, ok := c.Deadline(); ok != (tc.pending > 0) {
				t.Fatalf("Deadline ok = %v with %d digits pending", ok, tc.pending)
			}
		})
	}
}

func TestPINCollectorDeadline(t *testing.T) {
	c, err := wiegand.NewPINCollector(wiegand.PINConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Deadline(); ok {
		t.Fatal("empty collector has a deadline")
	}
	c.Key('1', ms(0))
	c.Key('2', ms(1000))
	if d, ok := c.Deadline(); !ok || !d.Equal(ms(3500)) {
		t.Fatalf("Deadline = %v, %v; want %v", d, ok, ms(3500))
	}
	// A key stamped earlier than the previous one counts as simultaneous with it.
	c.Key('3', ms(500))
	if d, _ := c.Deadline(); !d.Equal(ms(3500)) {
		t.Fatalf("Deadline after an out-of-order key = %v, want %v", d, ms(3500))
	}
	if cfg := c.Config(); cfg.EndKey != '#' || cfg.ClearKey != '*' || cfg.Timeout != 2500*time.Millisecond || cfg.MaxDigits != 12 {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestPINConfigValidate(t *testing.T) {
	bad := []wiegand.PINConfig{
		{EndKey: '5'},
		{ClearKey: 'x'},
		{EndKey: '#', ClearKey: '#'},
		{EndKey: '*', ClearKey: '*'},
		{Timeout: -time.Second},
		{MaxDigits: -1},
	}
	for _, cfg := range bad {
		if _, err := wiegand.NewPINCollector(cfg); err == nil {
			t.Errorf("NewPINCollector(%+v) accepted", cfg)
		}
	}
	good := []wiegand.PINConfig{{}, {EndKey: '*'}, {EndKey: '*', ClearKey: '#'}, {Timeout: time.Millisecond, MaxDigits: 1}}
	for _, cfg := range good {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
}

// keys returns one step per key of s, 100 ms apart from start ms.
func keys(start int, s string) []pinStep {
	var out []pinStep
	for i, k := range []byte(s) {
		out = append(out, pinStep{start + 100*i, wiegand.Key(k)})
	}
	return out
}
