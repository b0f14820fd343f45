package wiegand_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"gatehouse/modules/reader/wiegand"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bitsOf parses a string of '0' and '1', ignoring spaces.
func bitsOf(t testing.TB, s string) []bool {
	t.Helper()
	var out []bool
	for _, c := range s {
		switch c {
		case '0', '1':
			out = append(out, c == '1')
		case ' ':
		default:
			t.Fatalf("bitsOf(%q): bad character %q", s, c)
		}
	}
	return out
}

func bitString(bits []bool) string {
	var sb strings.Builder
	for _, b := range bits {
		if b {
			sb.WriteByte('1')
		} else {
			sb.WriteByte('0')
		}
	}
	return sb.String()
}

func mustEncode(t testing.TB, f wiegand.Format, fac, num uint32) []bool {
	t.Helper()
	bits, err := wiegand.Encode(f, fac, num)
	if err != nil {
		t.Fatalf("Encode(%v, %d, %d): %v", f, fac, num, err)
	}
	return bits
}

// Known vectors, computed by hand (and cross-checked with an independent script).
func TestDecodeKnownVectors(t *testing.T) {
	tests := []struct {
		name     string
		bits     string
		card     string
		format   wiegand.Format
		facility uint32
		number   uint32
		bad      bool
	}{
		{
			// H10301 facility 18 = 00010010, number 44255 = 0xACDF = 1010110011011111.
			// Bits 2–13 = 00010010 1010: four ones → even parity bit 1 = 0.
			// Bits 14–25 = 1100 1101 1111: nine ones → odd parity bit 26 = 0.
			// 0 00010010 1010110011011111 0 → 00001001 01010110 01101111 10(000000)
			// → 09:56:6f:80.
			name: "H10301 18/44255", bits: "0 00010010 1010110011011111 0", card: "09:56:6f:80",
			format: wiegand.FormatH10301, facility: 18, number: 44255,
		},
		{
			// Leosac's illustrative id "12:af:cd:40" (26 bits): 00010010 10101111 11001101 01.
			// Facility = bits 2–9 = 00100101 = 37; number = bits 10–25 = 0101111110011010 =
			// 0x5F9A = 24474. Bits 1–13 = 0 00100101 0101 hold five ones: even parity fails.
			// Bits 14–26 = 111 11001101 01 hold nine ones: odd parity holds.
			name: "H10301 leosac example, bad parity", bits: "00010010 10101111 11001101 01", card: "12:af:cd:40",
			format: wiegand.FormatH10301, facility: 37, number: 24474, bad: true,
		},
		{
			// H10301 facility 0, number 0: bits 2–13 zero → P1 = 0; bits 14–25 zero → odd
			// parity bit 26 = 1. 0 00000000 0000000000000000 1 → 00:00:00:40.
			name: "H10301 0/0", bits: "0 00000000 0000000000000000 1", card: "00:00:00:40",
			format: wiegand.FormatH10301,
		},
		{
			// H10306 facility 1, number 1: bits 2–17 = 0…01 (one 1) → even P1 = 1; bits
			// 18–33 = 0…01 (one 1) → odd P34 = 0. Ones at bits 1, 17, 33:
			// 10000000 00000000 10000000 00000000 10(000000) → 80:00:80:00:80.
			name: "H10306 1/1", bits: "1 0000000000000001 0000000000000001 0", card: "80:00:80:00:80",
			format: wiegand.FormatH10306, facility: 1, number: 1,
		},
		{
			// H10306 facility 65535, number 65535: 16 ones → P1 = 0; 16 ones → P34 = 1.
			name: "H10306 max", bits: "0 1111111111111111 1111111111111111 1", card: "7f:ff:ff:ff:c0",
			format: wiegand.FormatH10306, facility: 65535, number: 65535,
		},
		{
			// Corporate 1000 company 1, card 1: data ones at bit 14 (company LSB) and bit 34
			// (card LSB). Bit 2 (even over bits ≡ 0,1 mod 3 in 3–34): bit 34 → one 1 → P2 = 1.
			// Bit 35 (odd over bits ≡ 2,0 mod 3 in 2–33): bits 2 and 14 → two 1s → P35 = 1.
			// Bit 1 (odd over all): bits 2, 14, 34, 35 → four 1s → P1 = 1.
			// 11000000 00000100 00000000 00000000 011(00000) → c0:04:00:00:60.
			name: "C1k35 1/1", bits: "1 1 000000000001 00000000000000000001 1", card: "c0:04:00:00:60",
			format: wiegand.FormatCorporate1000, facility: 1, number: 1,
		},
		{
			// Corporate 1000 company 1000 = 001111101000, card 123456 = 00011110001001000000.
			// Frame bits 3–34: 0011111010000001111000100100 0000; ones at 5 6 7 8 9 11 18 19 20
			// 21 25 28. P2 set (3,4,6,7,9,10,…,33,34) contains 6 7 9 18 19 21 25 28: eight →
			// P2 = 0. P35 set (2,3,5,6,8,9,…,32,33) contains 5 6 8 9 11 18 20 21: eight → P35 = 1.
			// All bits 2–35: twelve data ones + P35 = 13, odd → P1 = 0.
			// 00001111 10100000 01111000 10010000 001(00000) → 0f:a0:78:90:20.
			name: "C1k35 1000/123456", bits: "0 0 001111101000 00011110001001000000 1", card: "0f:a0:78:90:20",
			format: wiegand.FormatCorporate1000, facility: 1000, number: 123456,
		},
		{
			// H10304 facility 1, number 1: ones at bit 17 (facility LSB) and bit 36 (number
			// LSB). Bits 2–19 hold one 1 → even P1 = 1; bits 19–36 hold one 1 → odd P37 = 0.
			// 10000000 00000000 10000000 00000000 00010(000) → 80:00:80:00:10.
			name: "H10304 1/1", bits: "1 0000000000000001 0000000000000000001 0", card: "80:00:80:00:10",
			format: wiegand.FormatH10304, facility: 1, number: 1,
		},
		{
			// H10304 facility 0, number 2^19-1: bits 18–36 all ones. Bits 2–19 hold bits 18
			// and 19 → two ones → P1 = 0. Bits 19–36 hold 18 ones → P37 = 1.
			name: "H10304 0/max", bits: "0 0000000000000000 1111111111111111111 1", card: "00:00:7f:ff:f8",
			format: wiegand.FormatH10304, number: 1<<19 - 1,
		},
		{name: "raw 1 bit", bits: "1", card: "80"},
		{name: "raw 4 bits", bits: "1011", card: "b0"},
		{name: "raw 8 bits", bits: "11100001", card: "e1"},
		{name: "raw 27 bits", bits: "101010101010101010101010101", card: "aa:aa:aa:a0"},
		{name: "raw 32 bits", bits: "11011110101011011011111011101111", card: "de:ad:be:ef"},
		{name: "raw 36 bits", bits: "000100100011010001010110011110001001", card: "12:34:56:78:90"},
		{
			name: "raw 128 bits", bits: strings.Repeat("1", 128),
			card: strings.TrimSuffix(strings.Repeat("ff:", 16), ":"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bits := bitsOf(t, tc.bits)
			f, err := wiegand.Decode(bits)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if f.Card != tc.card || f.NBits() != len(bits) || f.Format != tc.format ||
				f.Facility != tc.facility || f.Number != tc.number || f.BadParity != tc.bad {
				t.Fatalf("Decode(%s) = card %q bits %d format %v facility %d number %d bad %v\n"+
					"want card %q bits %d format %v facility %d number %d bad %v",
					tc.bits, f.Card, f.NBits(), f.Format, f.Facility, f.Number, f.BadParity,
					tc.card, len(bits), tc.format, tc.facility, tc.number, tc.bad)
			}
			if bitString(f.Raw) != bitString(bits) {
				t.Fatalf("Raw = %s, want %s", bitString(f.Raw), bitString(bits))
			}
			if tc.format != wiegand.FormatRaw && !tc.bad {
				enc := mustEncode(t, tc.format, tc.facility, tc.number)
				if got, want := bitString(enc), bitString(bits); got != want {
					t.Fatalf("Encode(%v, %d, %d) = %s, want %s", tc.format, tc.facility, tc.number, got, want)
				}
			}
			back, err := wiegand.ParseCardID(tc.card, len(bits))
			if err != nil || bitString(back) != bitString(bits) {
				t.Fatalf("ParseCardID(%q, %d) = %s, %v; want %s", tc.card, len(bits), bitString(back), err, bitString(bits))
			}
		})
	}
}

func TestDecodeCopiesBits(t *testing.T) {
	bits := bitsOf(t, "1010")
	f, err := wiegand.Decode(bits)
	if err != nil {
		t.Fatal(err)
	}
	bits[0] = false
	if !f.Raw[0] {
		t.Fatal("Decode retained the caller's slice")
	}
}

func TestDecodeBitCount(t *testing.T) {
	for _, n := range []int{0, 129, 200} {
		_, err := wiegand.Decode(make([]bool, n))
		if !errors.Is(err, wiegand.ErrBitCount) {
			t.Errorf("Decode(%d bits) error = %v, want ErrBitCount", n, err)
		}
	}
	for _, n := range []int{1, 25, 27, 33, 36, 38, 64, 127, 128} {
		f, err := wiegand.Decode(make([]bool, n))
		if err != nil || f.Format != wiegand.FormatRaw || f.BadParity || f.NBits() != n {
			t.Errorf("Decode(%d zero bits) = %+v, %v; want a raw frame", n, f, err)
		}
		if want := (n+7)/8*3 - 1; len(f.Card) != want {
			t.Errorf("Decode(%d bits) card %q has length %d, want %d", n, f.Card, len(f.Card), want)
		}
	}
}

// refParity checks a known format's parity bits from the positions published for it (1-based,
// excluding the parity bit), independently of the masks in the package.
func refParity(t *testing.T, f wiegand.Format, bits []bool) bool {
	t.Helper()
	span := func(from, to int) []int {
		var out []int
		for k := from; k <= to; k++ {
			out = append(out, k)
		}
		return out
	}
	type rule struct {
		bit  int
		over []int
		odd  bool
	}
	var rules []rule
	switch f {
	case wiegand.FormatH10301:
		rules = []rule{{1, span(2, 13), false}, {26, span(14, 25), true}}
	case wiegand.FormatH10306:
		rules = []rule{{1, span(2, 17), false}, {34, span(18, 33), true}}
	case wiegand.FormatH10304:
		rules = []rule{{1, span(2, 19), false}, {37, span(19, 36), true}}
	case wiegand.FormatCorporate1000:
		var p2, p35 []int
		for k := 2; k <= 34; k++ {
			if k >= 3 && k%3 != 2 { // 3-4, 6-7, …, 33-34
				p2 = append(p2, k)
			}
			if k <= 33 && k%3 != 1 { // 2-3, 5-6, …, 32-33
				p35 = append(p35, k)
			}
		}
		rules = []rule{{2, p2, false}, {35, p35, true}, {1, span(2, 35), true}}
	default:
		t.Fatalf("no reference parity for %v", f)
	}
	for _, r := range rules {
		ones := 0
		for _, k := range append(r.over, r.bit) {
			if bits[k-1] {
				ones++
			}
		}
		if (ones%2 == 1) != r.odd {
			return false
		}
	}
	return true
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, format := range wiegand.Formats() {
		t.Run(format.String(), func(t *testing.T) {
			maxF, maxN := format.MaxFacility(), format.MaxNumber()
			pairs := [][2]uint32{{0, 0}, {maxF, maxN}, {0, maxN}, {maxF, 0}, {1, 1}}
			for range 500 {
				pairs = append(pairs, [2]uint32{rng.Uint32N(maxF + 1), rng.Uint32N(maxN + 1)})
			}
			for _, p := range pairs {
				bits := mustEncode(t, format, p[0], p[1])
				if len(bits) != format.Bits() {
					t.Fatalf("Encode(%d, %d) gave %d bits, want %d", p[0], p[1], len(bits), format.Bits())
				}
				if !refParity(t, format, bits) {
					t.Fatalf("Encode(%d, %d) = %s: parity does not match the published positions", p[0], p[1], bitString(bits))
				}
				f, err := wiegand.Decode(bits)
				if err != nil || f.Format != format || f.Facility != p[0] || f.Number != p[1] || f.BadParity {
					t.Fatalf("Decode(Encode(%d, %d)) = %+v, %v", p[0], p[1], f, err)
				}
			}
		})
	}
}

// Every single-bit error in a known format breaks at least one parity bit: each bit is covered
// by some parity bit (for C1k35, bit 1 covers all).
func TestParityErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, format := range wiegand.Formats() {
		for range 20 {
			fac, num := rng.Uint32N(format.MaxFacility()+1), rng.Uint32N(format.MaxNumber()+1)
			bits := mustEncode(t, format, fac, num)
			for i := range bits {
				bad := append([]bool(nil), bits...)
				bad[i] = !bad[i]
				f, err := wiegand.Decode(bad)
				if err != nil {
					t.Fatal(err)
				}
				if !f.BadParity || refParity(t, format, bad) {
					t.Fatalf("%v %d/%d with bit %d flipped: BadParity = %v, want true", format, fac, num, i+1, f.BadParity)
				}
				if f.Card == "" || f.NBits() != len(bits) || f.Format != format {
					t.Fatalf("frame with bad parity not returned in full: %+v", f)
				}
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		format   wiegand.Format
		fac, num uint32
		want     error
	}{
		{wiegand.FormatRaw, 0, 0, wiegand.ErrFormat},
		{wiegand.Format(99), 0, 0, wiegand.ErrFormat},
		{wiegand.FormatH10301, 256, 0, wiegand.ErrRange},
		{wiegand.FormatH10301, 0, 65536, wiegand.ErrRange},
		{wiegand.FormatH10306, 65536, 0, wiegand.ErrRange},
		{wiegand.FormatCorporate1000, 4096, 0, wiegand.ErrRange},
		{wiegand.FormatCorporate1000, 0, 1 << 20, wiegand.ErrRange},
		{wiegand.FormatH10304, 0, 1 << 19, wiegand.ErrRange},
	}
	for _, tc := range tests {
		if _, err := wiegand.Encode(tc.format, tc.fac, tc.num); !errors.Is(err, tc.want) {
			t.Errorf("Encode(%v, %d, %d) error = %v, want %v", tc.format, tc.fac, tc.num, err, tc.want)
		}
	}
}

func TestParseCardID(t *testing.T) {
	tests := []struct {
		card  string
		nbits int
		want  string // bits, or "" for an error
		err   error
	}{
		{"09:56:6f:80", 26, "00001001010101100110111110", nil},
		{"09:56:6F:80", 26, "00001001010101100110111110", nil}, // upper case accepted
		{"80", 1, "1", nil},
		{"ff", 8, "11111111", nil},
		{"09:56:6f:c0", 26, "00001001010101100110111111", nil},
		{"09:56:6f:a0", 26, "", wiegand.ErrCardSyntax}, // padding bit 27 set
		{"09:56:6f", 26, "", wiegand.ErrCardSyntax},    // too short
		{"09:56:6f:80:00", 26, "", wiegand.ErrCardSyntax},
		{"09-56-6f-80", 26, "", wiegand.ErrCardSyntax},
		{"09:56:6g:80", 26, "", wiegand.ErrCardSyntax},
		{"0956:6f:80:", 26, "", wiegand.ErrCardSyntax},
		{"", 0, "", wiegand.ErrBitCount},
		{"00", 129, "", wiegand.ErrBitCount},
	}
	for _, tc := range tests {
		bits, err := wiegand.ParseCardID(tc.card, tc.nbits)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("ParseCardID(%q, %d) error = %v, want %v", tc.card, tc.nbits, err, tc.err)
			}
			continue
		}
		if err != nil || bitString(bits) != tc.want {
			t.Errorf("ParseCardID(%q, %d) = %s, %v; want %s", tc.card, tc.nbits, bitString(bits), err, tc.want)
		}
	}
	if got := wiegand.CardID(nil); got != "" {
		t.Errorf("CardID(nil) = %q, want empty", got)
	}
}

func TestFormatNames(t *testing.T) {
	want := map[wiegand.Format]struct {
		name       string
		bits       int
		maxF, maxN uint32
	}{
		wiegand.FormatRaw:           {"raw", 0, 0, 0},
		wiegand.FormatH10301:        {"H10301", 26, 255, 65535},
		wiegand.FormatH10306:        {"H10306", 34, 65535, 65535},
		wiegand.FormatCorporate1000: {"C1k35", 35, 4095, 1<<20 - 1},
		wiegand.FormatH10304:        {"H10304", 37, 65535, 1<<19 - 1},
		wiegand.Format(42):          {"format(42)", 0, 0, 0},
	}
	for f, w := range want {
		if f.String() != w.name || f.Bits() != w.bits || f.MaxFacility() != w.maxF || f.MaxNumber() != w.maxN {
			t.Errorf("%d: %q %d %d %d, want %+v", f, f.String(), f.Bits(), f.MaxFacility(), f.MaxNumber(), w)
		}
	}
}
