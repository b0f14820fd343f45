package wiegand

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrUnexpectedFrame reports a frame the reader's mode has no use for: a card frame (any frame
// that is not a key frame) in a PIN-only mode. The frame is ignored; a pending PIN entry is kept.
var ErrUnexpectedFrame = errors.New("wiegand: unexpected frame for reader mode")

// Mode is what a Wiegand reader sends and how its frames combine into reads. The names are
// Leosac's reader modes; Leosac's "buffered" modes (keys packed into 26-bit frames) are not
// supported.
type Mode uint8

const (
	// ModeSimpleWiegand treats every frame, whatever its length, as a card (Leosac
	// SIMPLE_WIEGAND).
	ModeSimpleWiegand Mode = iota
	// ModePIN4 is a keypad sending one 4-bit frame per key; reads are PINs
	// (WIEGAND_PIN_4BITS). Other frames are refused with ErrUnexpectedFrame.
	ModePIN4
	// ModePIN8 is a keypad sending one 8-bit frame per key; reads are PINs
	// (WIEGAND_PIN_8BITS). Other frames are refused with ErrUnexpectedFrame.
	ModePIN8
	// ModeCardPIN4 is a card reader with a 4-bit keypad; a card followed by a PIN is one
	// card+PIN read (WIEGAND_CARD_PIN_4BITS). Any frame that is not 4 bits long is a card.
	ModeCardPIN4
	// ModeCardPIN8 is ModeCardPIN4 with 8-bit keys (WIEGAND_CARD_PIN_8BITS). Any frame that
	// is not 8 bits long is a card.
	ModeCardPIN8
	// ModeAutodetect treats 4-bit and 8-bit frames as keys and any other frame as a card, and
	// combines them as the card+PIN modes do, or, with Config.NoWait, emits cards at once
	// (AUTODETECT).
	ModeAutodetect
)

var modeNames = [...]string{
	ModeSimpleWiegand: "SIMPLE_WIEGAND",
	ModePIN4:          "WIEGAND_PIN_4BITS",
	ModePIN8:          "WIEGAND_PIN_8BITS",
	ModeCardPIN4:      "WIEGAND_CARD_PIN_4BITS",
	ModeCardPIN8:      "WIEGAND_CARD_PIN_8BITS",
	ModeAutodetect:    "AUTODETECT",
}

// String returns the Leosac name of the mode, e.g. "WIEGAND_CARD_PIN_4BITS".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("MODE_%d", int(m))
}

// ParseMode returns the mode named s, a Leosac mode name in any case ("SIMPLE_WIEGAND",
// "wiegand_pin_4bits", …). The BUFFERED modes and unknown names are errors.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if strings.EqualFold(s, name) {
			return Mode(m), nil
		}
	}
	if strings.Contains(strings.ToUpper(s), "BUFFERED") {
		return 0, fmt.Errorf("wiegand: reader mode %q is not supported", s)
	}
	return 0, fmt.Errorf("wiegand: unknown reader mode %q", s)
}

// MarshalText implements encoding.TextMarshaler with the Leosac name.
func (m Mode) MarshalText() ([]byte, error) {
	if int(m) >= len(modeNames) {
		return nil, fmt.Errorf("wiegand: unknown reader mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// keyWidths reports which frame lengths the mode treats as key frames.
func (m Mode) keyWidths() (four, eight bool) {
	switch m {
	case ModePIN4, ModeCardPIN4:
		return true, false
	case ModePIN8, ModeCardPIN8:
		return false, true
	case ModeAutodetect:
		return true, true
	}
	return false, false
}

// cards reports whether the mode accepts card frames.
func (m Mode) cards() bool { return m != ModePIN4 && m != ModePIN8 }

// Kind is what a Read carries. Its values are Leosac's auth source types.
type Kind uint8

const (
	// KindCard is a card alone (Leosac SIMPLE_WIEGAND source type, 1).
	KindCard Kind = 1
	// KindPIN is a PIN alone (WIEGAND_PIN, 2).
	KindPIN Kind = 2
	// KindCardPIN is a card followed by a PIN (WIEGAND_CARD_PIN, 3).
	KindCardPIN Kind = 3
)

// String returns "card", "pin" or "card+pin".
func (k Kind) String() string {
	switch k {
	case KindCard:
		return "card"
	case KindPIN:
		return "pin"
	case KindCardPIN:
		return "card+pin"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Read is one credential presented at a reader.
type Read struct {
	// Kind says which of the card and PIN fields are set.
	Kind Kind
	// Time is when the read completed: the time of the input that completed it (the card
	// frame, the end key, or the next card), or its deadline when it timed out.
	Time time.Time
	// Card is the card id (see Frame.Card), for KindCard and KindCardPIN.
	Card string
	// Bits is the card's bit count (Leosac's nb_bits), for KindCard and KindCardPIN.
	Bits int
	// Format, Facility, Number and BadParity are the card frame's (see Frame).
	Format    Format
	Facility  uint32
	Number    uint32
	BadParity bool
	// PIN is the digits entered, without the end key, for KindPIN and KindCardPIN.
	PIN string
}

// Config configures a Reader. The zero Config is a SIMPLE_WIEGAND reader with default PIN
// settings.
type Config struct {
	// Mode is what the reader sends.
	Mode Mode
	// PIN configures PIN entry. PIN.Timeout is also how long a card waits for its PIN in the
	// card+PIN modes and Autodetect.
	PIN PINConfig
	// NoWait, only valid with ModeAutodetect, emits each card read at once instead of waiting
	// for a PIN (Leosac's nowait); keys then always make PIN-only reads.
	NoWait bool
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if int(c.Mode) >= len(modeNames) {
		return fmt.Errorf("wiegand: unknown reader mode %d", int(c.Mode))
	}
	if c.NoWait && c.Mode != ModeAutodetect {
		return fmt.Errorf("wiegand: nowait needs mode AUTODETECT, not %v", c.Mode)
	}
	return c.PIN.Validate()
}

// Reader turns frames into reads according to its Mode. It holds at most one pending read:
//
//   - A card frame in ModeSimpleWiegand (or Autodetect with NoWait) is a KindCard read at once.
//   - A card frame in a card+PIN mode or Autodetect becomes the pending card; it waits
//     PIN.Timeout for a key. Keys append digits, each key restarting the wait. The end key
//     completes it as KindCardPIN, or as KindCard if no digit was entered (so "card, #" skips
//     the PIN); a timeout completes it as KindCardPIN with the digits entered, or as KindCard
//     if none: card-only credentials keep working in these modes and the access engine
//     decides what a door accepts. The clear key discards the digits and keeps the card. A new
//     card completes the pending read as a timeout would, then becomes pending itself.
//   - Keys with no pending card (any mode with keys) collect a PIN alone: KindPIN on the end
//     key or timeout; nothing if no digit was entered.
//   - A corrupted key frame (ErrBadKey) or one digit too many (ErrPINTooLong) discards the
//     whole pending read, card included, and returns the error.
//
// Inputs are fed with their time; times should not go backwards (an earlier time than the
// previous input's is treated as equal to it). The zero Reader is not usable; use NewReader.
// A Reader is not safe for concurrent use.
type Reader struct {
	cfg  Config
	pins *PINCollector
	card *Frame    // pending card, card+PIN modes
	last time.Time // time of the last input of the pending read
}

// pending reports whether a card or digits are pending.
func (r *Reader) pending() bool { return r.card != nil || r.pins.Len() > 0 }

// NewReader returns a reader with nothing pending. It returns an error if cfg is not valid.
func NewReader(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.PIN = cfg.PIN.withDefaults()
	pins, err := NewPINCollector(cfg.PIN)
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: cfg, pins: pins}, nil
}

// Config returns the reader's configuration, defaults applied.
func (r *Reader) Config() Config { return r.cfg }

// Frame feeds one decoded frame received at now. A pending read whose deadline is not after now
// completes first, as Tick(now) would. It returns the reads completed, oldest first (at most
// two), and an error for a frame that is unusable in the mode (wrapping ErrBadKey,
// ErrPINTooLong, ErrUnexpectedFrame or ErrBitCount); the reads are valid even when the error is
// not nil.
func (r *Reader) Frame(f Frame, now time.Time) ([]Read, error) {
	reads := r.Tick(now)
	if r.pending() && now.Before(r.last) {
		now = r.last
	}
	n := len(f.Raw)
	if n == 0 || n > MaxBits {
		return reads, fmt.Errorf("%w: %d bits", ErrBitCount, n)
	}
	four, eight := r.cfg.Mode.keyWidths()
	if (n == 4 && four) || (n == 8 && eight) {
		k, err := DecodeKey(f.Raw)
		if err != nil {
			r.Reset()
			return reads, err
		}
		return r.key(reads, k, now)
	}
	if !r.cfg.Mode.cards() {
		return reads, fmt.Errorf("%w: %d-bit frame in mode %v", ErrUnexpectedFrame, n, r.cfg.Mode)
	}
	if r.cfg.Mode == ModeSimpleWiegand || r.cfg.NoWait {
		return append(reads, cardRead(KindCard, &f, now)), nil
	}
	if r.pending() {
		reads = append(reads, r.complete(now)...)
	}
	r.card, r.last = &f, now
	return reads, nil
}

// Key feeds one key pressed at now, as a key frame would be, whatever the mode (so a caller
// that decodes keys itself can use it). Results are as for Frame.
func (r *Reader) Key(k Key, now time.Time) ([]Read, error) {
	reads := r.Tick(now)
	if r.pending() && now.Before(r.last) {
		now = r.last
	}
	return r.key(reads, k, now)
}

func (r *Reader) key(reads []Read, k Key, now time.Time) ([]Read, error) {
	pin, done, err := r.pins.Key(k, now) // cannot time out here: r.Tick(now) ran first
	if err != nil {
		r.Reset()
		return reads, err
	}
	switch {
	case done:
		reads = append(reads, r.read(pin, now))
		r.Reset()
	case k == r.cfg.PIN.EndKey && r.card != nil: // card, then end key without digits
		reads = append(reads, r.read("", now))
		r.Reset()
	case r.pending():
		r.last = now
	}
	return reads, nil
}

// Tick completes the pending read if its deadline is not after now, and returns it.
func (r *Reader) Tick(now time.Time) []Read {
	if d, ok := r.Deadline(); ok && !now.Before(d) {
		return r.complete(d)
	}
	return nil
}

// Deadline returns when the pending read times out, and false when nothing is pending.
func (r *Reader) Deadline() (time.Time, bool) {
	if !r.pending() {
		return time.Time{}, false
	}
	return r.last.Add(r.cfg.PIN.Timeout), true
}

// Reset discards the pending read.
func (r *Reader) Reset() {
	r.pins.Reset()
	r.card, r.last = nil, time.Time{}
}

// complete returns the pending read (if it has a card or digits) with time t and resets.
func (r *Reader) complete(t time.Time) []Read {
	var reads []Read
	if r.pending() {
		reads = append(reads, r.read(string(r.pins.digits), t))
	}
	r.Reset()
	return reads
}

// read builds the read of the pending card (if any) with pin.
func (r *Reader) read(pin string, t time.Time) Read {
	if r.card == nil {
		return Read{Kind: KindPIN, Time: t, PIN: pin}
	}
	if pin == "" {
		return cardRead(KindCard, r.card, t)
	}
	rd := cardRead(KindCardPIN, r.card, t)
	rd.PIN = pin
	return rd
}

func cardRead(kind Kind, f *Frame, t time.Time) Read {
	return Read{
		Kind: kind, Time: t, Card: f.Card, Bits: len(f.Raw),
		Format: f.Format, Facility: f.Facility, Number: f.Number, BadParity: f.BadParity,
	}
}
