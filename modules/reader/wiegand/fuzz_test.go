package wiegand_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/reader/wiegand"
)

// FuzzDecode checks that Decode, ParseCardID and DecodeKey never panic, that a decoded frame's
// card id round-trips to its bits, that a known format re-encodes to the same bits exactly when
// its parity holds, and that any card id ParseCardID accepts prints back the same (in lower case).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x09, 0x56, 0x6f, 0x80}, 26, "09:56:6f:80")
	f.Add([]byte{0x12, 0xaf, 0xcd, 0x40}, 26, "12:AF:CD:40")
	f.Add([]byte{0x80, 0x00, 0x80, 0x00, 0x80}, 34, "80:00:80:00:80")
	f.Add([]byte{0xc0, 0x04, 0x00, 0x00, 0x60}, 35, "c0:04:00:00:60")
	f.Add([]byte{0x80, 0x00, 0x80, 0x00, 0x10}, 37, "80:00:80:00:10")
	f.Add([]byte{0xe1}, 8, "e1")
	f.Add([]byte{0x50}, 4, "5")
	f.Add([]byte{}, 0, "")
	f.Add([]byte(strings.Repeat("\xff", 17)), 129, strings.Repeat("ff:", 17))
	f.Fuzz(func(t *testing.T, data []byte, nbits int, card string) {
		n := nbits % (wiegand.MaxBits + 3)
		if n < 0 {
			n = -n
		}
		bits := make([]bool, n)
		for i := range bits {
			if i/8 < len(data) {
				bits[i] = data[i/8]&(0x80>>(i%8)) != 0
			}
		}
		fr, err := wiegand.Decode(bits)
		if n == 0 || n > wiegand.MaxBits {
			if !errors.Is(err, wiegand.ErrBitCount) {
				t.Fatalf("Decode(%d bits) error = %v, want ErrBitCount", n, err)
			}
		} else {
			if err != nil {
				t.Fatalf("Decode(%d bits): %v", n, err)
			}
			if fr.Card != strings.ToLower(fr.Card) || len(fr.Card) != 3*((n+7)/8)-1 {
				t.Fatalf("card id %q for %d bits", fr.Card, n)
			}
			back, err := wiegand.ParseCardID(fr.Card, n)
			if err != nil || bitString(back) != bitString(bits) {
				t.Fatalf("ParseCardID(%q, %d) = %s, %v; want %s", fr.Card, n, bitString(back), err, bitString(bits))
			}
			if fr.Format != wiegand.FormatRaw {
				enc, err := wiegand.Encode(fr.Format, fr.Facility, fr.Number)
				if err != nil {
					t.Fatalf("Encode(%v, %d, %d): %v", fr.Format, fr.Facility, fr.Number, err)
				}
				if same := bitString(enc) == bitString(bits); same == fr.BadParity {
					t.Fatalf("%v frame %s: re-encoded %s, BadParity %v", fr.Format, bitString(bits), bitString(enc), fr.BadParity)
				}
			} else if fr.BadParity || fr.Facility != 0 || fr.Number != 0 {
				t.Fatalf("raw frame with parsed fields: %+v", fr)
			}
		}

		if k, err := wiegand.DecodeKey(bits); err == nil {
			enc, _ := wiegand.EncodeKey4(k)
			if n == 8 {
				enc, _ = wiegand.EncodeKey8(k)
			}
			if bitString(enc) != bitString(bits) {
				t.Fatalf("key %v from %s re-encodes to %s", k, bitString(bits), bitString(enc))
			}
		}

		if parsed, err := wiegand.ParseCardID(card, n); err == nil {
			if got := wiegand.CardID(parsed); got != strings.ToLower(card) {
				t.Fatalf("ParseCardID(%q, %d) then CardID = %q", card, n, got)
			}
		}
	})
}

// FuzzDecoder drives a Decoder in every mode with arbitrary edge sequences (lines, including
// invalid ones, gaps from 0 to 65 ms, lost-edge flags) and checks that it never panics, always
// finishes what is pending, and only produces well-formed reads.
func FuzzDecoder(f *testing.F) {
	f.Add(byte(0), []byte{1, 2, 0, 2, 1, 2, 1, 2})
	f.Add(byte(3), []byte{0, 0, 1, 0, 0, 255, 1, 255, 1, 2})
	f.Add(byte(5), []byte{5, 9, 4, 9, 5, 9, 4, 9, 0, 255, 1, 9, 1, 9, 0, 9, 1, 9})
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		cfg := wiegand.Config{Mode: wiegand.Mode(mode % 6), PIN: wiegand.PINConfig{Timeout: 50 * time.Millisecond}}
		d, err := wiegand.NewDecoder(cfg, wiegand.AssemblerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		var edges []wiegand.Edge
		for i := 0; i+1 < len(data); i += 2 {
			now = now.Add(time.Duration(data[i+1]) * 256 * time.Microsecond)
			e := wiegand.Edge{Line: wiegand.Line(data[i] & 1), Time: now, Lost: data[i]&0x80 != 0}
			if data[i]&0x06 == 0x06 {
				e.Line = wiegand.Line(data[i] & 0x7f)
			}
			edges = append(edges, e)
		}
		var last time.Time
		driveFunc(t, d, edges, func(r wiegand.Read) {
			if r.Time.Before(last) {
				t.Fatalf("read at %v after a read at %v", r.Time, last)
			}
			last = r.Time
			hasCard, hasPIN := r.Kind == wiegand.KindCard || r.Kind == wiegand.KindCardPIN,
				r.Kind == wiegand.KindPIN || r.Kind == wiegand.KindCardPIN
			if !hasCard && !hasPIN {
				t.Fatalf("read of kind %v", r.Kind)
			}
			if hasCard != (r.Bits > 0) || r.Bits > wiegand.MaxBits || len(r.Card) != max(3*((r.Bits+7)/8)-1, 0) {
				t.Fatalf("bad card fields: %+v", r)
			}
			if hasPIN != (r.PIN != "") || len(r.PIN) > wiegand.DefaultMaxPINDigits || strings.Trim(r.PIN, "0123456789") != "" {
				t.Fatalf("bad PIN fields: %+v", r)
			}
		}, func(err error) {
			for _, sentinel := range []error{wiegand.ErrNoise, wiegand.ErrBitCount, wiegand.ErrBadKey,
				wiegand.ErrPINTooLong, wiegand.ErrUnexpectedFrame} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		})
		if _, ok := d.Deadline(); ok {
			t.Fatal("still pending after every deadline")
		}
	})
}
