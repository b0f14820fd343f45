package wiegand

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// MaxBits is the longest frame accepted, in bits (Leosac's limit). Frames have 1 to MaxBits bits.
const MaxBits = 128

// Errors returned by this package. They are wrapped with context; test them with errors.Is.
var (
	// ErrBitCount reports a frame with no bits or more than MaxBits bits.
	ErrBitCount = errors.New("wiegand: bit count out of range")
	// ErrFormat reports an Encode request for a format without a known layout (FormatRaw or an
	// unknown value).
	ErrFormat = errors.New("wiegand: unknown format")
	// ErrRange reports a facility code or card number too large for the format's field.
	ErrRange = errors.New("wiegand: value out of range")
	// ErrCardSyntax reports a card id that is not hex bytes separated by ':' matching the bit
	// count, or whose padding bits are not zero.
	ErrCardSyntax = errors.New("wiegand: malformed card id")
)

// Format names a known Wiegand bit layout. The zero value, FormatRaw, means "no known layout":
// such a frame is still a valid credential, identified by its raw bits and bit count only.
type Format uint8

// The known layouts. Bit positions below are 1-based in the order the bits are received; the
// parity masks are over the frame read as an unsigned integer whose most significant bit is the
// first bit received (so frame bit k of an n-bit frame is integer bit n−k). A mask includes the
// parity bit itself: an even-parity bit holds when the number of ones under its mask is even, an
// odd-parity bit when it is odd.
const (
	// FormatRaw is any frame length without a parsed layout.
	FormatRaw Format = iota
	// FormatH10301 is the 26-bit HID H10301 format: bit 1 even parity over bits 2–13, bits 2–9
	// facility code (8 bits), bits 10–25 card number (16 bits), bit 26 odd parity over bits 14–25.
	// Masks: even 0x3FFE000 (bits 1–13), odd 0x0001FFF (bits 14–26).
	FormatH10301
	// FormatH10306 is the common 34-bit format: bit 1 even parity over bits 2–17, bits 2–17
	// facility code (16 bits), bits 18–33 card number (16 bits), bit 34 odd parity over bits
	// 18–33. Masks: even 0x3FFFE0000 (bits 1–17), odd 0x00001FFFF (bits 18–34).
	FormatH10306
	// FormatCorporate1000 is the 35-bit HID Corporate 1000 format: bits 3–14 company code
	// (12 bits), bits 15–34 card number (20 bits), and three parity bits computed in this order:
	// bit 2 even parity over bits 3-4, 6-7, 9-10, …, 33-34 (two of every three bits from bit 3);
	// bit 35 odd parity over bits 2-3, 5-6, 8-9, …, 32-33 (two of every three from bit 2, bit 2
	// included); bit 1 odd parity over the whole frame (bits 2–35). Masks: bit 2 even
	// 0x3B6DB6DB6, bit 35 odd 0x36DB6DB6D, bit 1 odd 0x7FFFFFFFF.
	FormatCorporate1000
	// FormatH10304 is the 37-bit HID H10304 format: bit 1 even parity over bits 2–19, bits 2–17
	// facility code (16 bits), bits 18–36 card number (19 bits), bit 37 odd parity over bits
	// 19–36 (bit 19 is covered by both). Masks: even 0x1FFFFC0000 (bits 1–19), odd
	// 0x000007FFFF (bits 19–37).
	FormatH10304
)

// knownFormats lists the formats that have a known layout, shortest first.
var knownFormats = [...]Format{FormatH10301, FormatH10306, FormatCorporate1000, FormatH10304}

// Formats returns the formats that have a known layout, shortest first, in a new slice.
func Formats() []Format { return append([]Format(nil), knownFormats[:]...) }

// parityBit is one parity bit of a layout.
type parityBit struct {
	pos  int    // 0-based position of the parity bit in the frame
	mask uint64 // covered bits of the frame integer, the parity bit included
	odd  bool   // odd parity (else even)
}

// layout is the bit layout of a known format. Fields are read from the frame integer (first bit
// received = most significant bit).
type layout struct {
	name     string
	n        int
	facShift uint
	facBits  uint
	numShift uint
	numBits  uint
	parity   []parityBit // in the order Encode computes them
}

var layouts = [...]layout{
	FormatRaw: {name: "raw"},
	FormatH10301: {name: "H10301", n: 26, facShift: 17, facBits: 8, numShift: 1, numBits: 16,
		parity: []parityBit{{pos: 0, mask: 0x3FFE000}, {pos: 25, mask: 0x0001FFF, odd: true}}},
	FormatH10306: {name: "H10306", n: 34, facShift: 17, facBits: 16, numShift: 1, numBits: 16,
		parity: []parityBit{{pos: 0, mask: 0x3FFFE0000}, {pos: 33, mask: 0x00001FFFF, odd: true}}},
	FormatCorporate1000: {name: "C1k35", n: 35, facShift: 21, facBits: 12, numShift: 1, numBits: 20,
		parity: []parityBit{
			{pos: 1, mask: 0x3B6DB6DB6},
			{pos: 34, mask: 0x36DB6DB6D, odd: true},
			{pos: 0, mask: 0x7FFFFFFFF, odd: true},
		}},
	FormatH10304: {name: "H10304", n: 37, facShift: 20, facBits: 16, numShift: 1, numBits: 19,
		parity: []parityBit{{pos: 0, mask: 0x1FFFFC0000}, {pos: 36, mask: 0x000007FFFF, odd: true}}},
}

// String returns the format's short name: "raw", "H10301", "H10306", "C1k35" or "H10304".
func (f Format) String() string {
	if int(f) < len(layouts) {
		return layouts[f].name
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// Bits returns the frame length of the format, or 0 for FormatRaw and unknown values.
func (f Format) Bits() int {
	if int(f) < len(layouts) {
		return layouts[f].n
	}
	return 0
}

// MaxFacility returns the largest facility (company) code the format can carry, 0 for
// FormatRaw and unknown values.
func (f Format) MaxFacility() uint32 {
	if f == FormatRaw || int(f) >= len(layouts) {
		return 0
	}
	return 1<<layouts[f].facBits - 1
}

// MaxNumber returns the largest card number the format can carry, 0 for FormatRaw and unknown
// values.
func (f Format) MaxNumber() uint32 {
	if f == FormatRaw || int(f) >= len(layouts) {
		return 0
	}
	return 1<<layouts[f].numBits - 1
}

// formatOf returns the known format of an n-bit frame, FormatRaw if none.
func formatOf(n int) Format {
	for _, f := range knownFormats {
		if layouts[f].n == n {
			return f
		}
	}
	return FormatRaw
}

// Frame is one decoded Wiegand frame. A Frame returned by Decode is never modified by this
// package; Raw is its own copy.
type Frame struct {
	// Raw holds the bits as received, first bit first (1 to MaxBits bits).
	Raw []bool
	// Card is the credential id in gatehouse's (Leosac's) format: the raw bits, parity
	// included, packed MSB first into bytes, the last byte right-padded with zero bits, written
	// as lower-case hex bytes separated by ':' (26 bits → "09:56:6f:80").
	Card string
	// Format is the known layout of a frame of this length, FormatRaw if none.
	Format Format
	// Facility is the facility (company) code, when Format is a known layout.
	Facility uint32
	// Number is the card number, when Format is a known layout.
	Number uint32
	// BadParity reports that Format is a known layout and at least one of its parity bits does
	// not hold. It is always false for FormatRaw. The frame is still returned in full: the
	// caller decides (the access engine denies with reason "bad_parity").
	BadParity bool
}

// NBits returns the number of bits in the frame (Leosac's nb_bits).
func (f Frame) NBits() int { return len(f.Raw) }

// Decode decodes a frame of 1 to MaxBits bits, first received bit first. A frame whose length
// matches a known layout also gets its Format, Facility, Number and BadParity; a parity error is
// not an error here. Decode returns an error wrapping ErrBitCount for 0 or more than MaxBits
// bits. It does not retain bits.
func Decode(raw []bool) (Frame, error) {
	n := len(raw)
	if n == 0 || n > MaxBits {
		return Frame{}, fmt.Errorf("%w: %d bits", ErrBitCount, n)
	}
	f := Frame{Raw: append([]bool(nil), raw...), Card: CardID(raw), Format: formatOf(n)}
	if f.Format == FormatRaw {
		return f, nil
	}
	l := &layouts[f.Format]
	v := toUint(raw)
	f.Facility = uint32(v>>l.facShift) & (1<<l.facBits - 1)
	f.Number = uint32(v>>l.numShift) & (1<<l.numBits - 1)
	for _, p := range l.parity {
		if (bits.OnesCount64(v&p.mask)%2 == 1) != p.odd {
			f.BadParity = true
		}
	}
	return f, nil
}

// Encode returns the bits of a frame of a known format carrying facility and number, with every
// parity bit set correctly. It returns an error wrapping ErrFormat for FormatRaw or an unknown
// format, and ErrRange when facility or number does not fit (see MaxFacility, MaxNumber).
func Encode(format Format, facility, number uint32) ([]bool, error) {
	if format == FormatRaw || int(format) >= len(layouts) {
		return nil, fmt.Errorf("%w: %v", ErrFormat, format)
	}
	l := &layouts[format]
	if facility > format.MaxFacility() {
		return nil, fmt.Errorf("%w: facility %d > %d for %v", ErrRange, facility, format.MaxFacility(), format)
	}
	if number > format.MaxNumber() {
		return nil, fmt.Errorf("%w: number %d > %d for %v", ErrRange, number, format.MaxNumber(), format)
	}
	v := uint64(facility)<<l.facShift | uint64(number)<<l.numShift
	for _, p := range l.parity {
		bit := uint64(1) << (l.n - 1 - p.pos)
		ones := bits.OnesCount64(v & p.mask &^ bit)
		if (ones%2 == 1) != p.odd { // the covered bits alone have the wrong parity
			v |= bit
		}
	}
	out := make([]bool, l.n)
	for i := range out {
		out[i] = v>>(l.n-1-i)&1 == 1
	}
	return out, nil
}

// toUint returns up to 64 bits as an integer, first bit most significant.
func toUint(raw []bool) uint64 {
	var v uint64
	for _, b := range raw {
		v <<= 1
		if b {
			v |= 1
		}
	}
	return v
}

const hexDigits = "0123456789abcdef"

// CardID returns the card id of raw bits in gatehouse's (Leosac's) format: the bits packed MSB
// first into ceil(len/8) bytes, the last byte right-padded with zero bits, written as lower-case
// hex bytes separated by ':'. It returns "" for no bits and accepts any length.
func CardID(raw []bool) string {
	n := (len(raw) + 7) / 8
	if n == 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(3*n - 1)
	for i := 0; i < n; i++ {
		var b byte
		for j := 0; j < 8; j++ {
			if k := 8*i + j; k < len(raw) && raw[k] {
				b |= 0x80 >> j
			}
		}
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteByte(hexDigits[b>>4])
		sb.WriteByte(hexDigits[b&0xF])
	}
	return sb.String()
}

// ParseCardID is the inverse of CardID: it returns the nbits bits of a card id. The id must have
// exactly ceil(nbits/8) hex bytes (either case) separated by ':', and its padding bits must be
// zero; nbits must be 1 to MaxBits. Errors wrap ErrBitCount or ErrCardSyntax.
func ParseCardID(card string, nbits int) ([]bool, error) {
	if nbits <= 0 || nbits > MaxBits {
		return nil, fmt.Errorf("%w: %d bits", ErrBitCount, nbits)
	}
	n := (nbits + 7) / 8
	if len(card) != 3*n-1 {
		return nil, fmt.Errorf("%w: %q is not %d bytes", ErrCardSyntax, card, n)
	}
	out := make([]bool, nbits)
	for i := 0; i < n; i++ {
		if i > 0 && card[3*i-1] != ':' {
			return nil, fmt.Errorf("%w: %q: expected ':' at offset %d", ErrCardSyntax, card, 3*i-1)
		}
		hi, ok1 := unhex(card[3*i])
		lo, ok2 := unhex(card[3*i+1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: %q: bad hex at offset %d", ErrCardSyntax, card, 3*i)
		}
		b := hi<<4 | lo
		for j := 0; j < 8; j++ {
			bit := b&(0x80>>j) != 0
			if k := 8*i + j; k < nbits {
				out[k] = bit
			} else if bit {
				return nil, fmt.Errorf("%w: %q: padding bits after bit %d are not zero", ErrCardSyntax, card, nbits)
			}
		}
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
