package wiegand

import (
	"errors"
	"fmt"
	"time"
)

// Keypad defaults, as in Leosac's Wiegand reader (pin_timeout, pin_key_end).
const (
	// DefaultPINTimeout is how long after the last key an unfinished PIN entry completes, and
	// how long a card waits for its PIN in the card+PIN modes.
	DefaultPINTimeout = 2500 * time.Millisecond
	// DefaultEndKey ends a PIN entry.
	DefaultEndKey = KeyHash
	// DefaultClearKey clears a PIN entry.
	DefaultClearKey = KeyStar
	// DefaultMaxPINDigits is the longest PIN accepted.
	DefaultMaxPINDigits = 12
)

var (
	// ErrBadKey reports a keypad frame that is not a key: a 4-bit value above 11, an 8-bit
	// frame whose high nibble is not the complement of its low nibble, a frame of another
	// length, or a Key value outside '0'–'9', '*', '#'.
	ErrBadKey = errors.New("wiegand: bad key")
	// ErrPINTooLong reports a PIN entry that went over the maximum number of digits; the entry
	// is discarded.
	ErrPINTooLong = errors.New("wiegand: PIN too long")
)

// Key is a keypad key: one of the bytes '0'–'9', '*' (KeyStar) and '#' (KeyHash).
type Key byte

// The two non-digit keys.
const (
	KeyStar Key = '*'
	KeyHash Key = '#'
)

// Valid reports whether k is one of '0'–'9', '*', '#'.
func (k Key) Valid() bool { return k.IsDigit() || k == KeyStar || k == KeyHash }

// IsDigit reports whether k is one of '0'–'9'.
func (k Key) IsDigit() bool { return '0' <= k && k <= '9' }

// String returns the key as a one-character string, or "key(N)" for an invalid value.
func (k Key) String() string {
	if k.Valid() {
		return string(rune(k))
	}
	return fmt.Sprintf("key(%d)", byte(k))
}

// code returns the 4-bit keypad code of k: digits 0–9, '*' 10, '#' 11.
func (k Key) code() (byte, bool) {
	switch {
	case k.IsDigit():
		return byte(k - '0'), true
	case k == KeyStar:
		return 10, true
	case k == KeyHash:
		return 11, true
	}
	return 0, false
}

func keyOfCode(c byte) (Key, bool) {
	switch {
	case c <= 9:
		return Key('0' + c), true
	case c == 10:
		return KeyStar, true
	case c == 11:
		return KeyHash, true
	}
	return 0, false
}

// DecodeKey decodes one keypad frame: 4 bits carry the key code MSB first (0–9 the digit, 10
// '*', 11 '#'); 8 bits carry the complement of the code in the high nibble and the code in the
// low nibble (so '1' is 0xE1). Any other length, a code above 11, or an 8-bit frame whose nibbles
// do not match returns an error wrapping ErrBadKey.
func DecodeKey(raw []bool) (Key, error) {
	v := byte(toUint(raw))
	switch len(raw) {
	case 4:
	case 8:
		if v>>4 != ^v&0xF {
			return 0, fmt.Errorf("%w: 8-bit frame %02x: high nibble is not the complement of the low", ErrBadKey, v)
		}
		v &= 0xF
	default:
		return 0, fmt.Errorf("%w: %d-bit frame", ErrBadKey, len(raw))
	}
	k, ok := keyOfCode(v)
	if !ok {
		return 0, fmt.Errorf("%w: code %d", ErrBadKey, v)
	}
	return k, nil
}

// EncodeKey4 returns the 4-bit keypad frame of k. It returns an error wrapping ErrBadKey if k
// is not valid.
func EncodeKey4(k Key) ([]bool, error) {
	c, ok := k.code()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, k)
	}
	return uintBits(uint64(c), 4), nil
}

// EncodeKey8 returns the 8-bit keypad frame of k (complement nibble, then code nibble). It
// returns an error wrapping ErrBadKey if k is not valid.
func EncodeKey8(k Key) ([]bool, error) {
	c, ok := k.code()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, k)
	}
	return uintBits(uint64(^c&0xF)<<4|uint64(c), 8), nil
}

// uintBits returns the n low bits of v, most significant first.
func uintBits(v uint64, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v>>(n-1-i)&1 == 1
	}
	return out
}

// PINConfig configures PIN entry. Zero fields take the defaults.
type PINConfig struct {
	// EndKey ends an entry (Leosac's pin_key_end); it is not part of the PIN. '*' or '#';
	// default '#'.
	EndKey Key
	// ClearKey discards the digits entered so far. '*' or '#', not EndKey; default '*'.
	ClearKey Key
	// Timeout completes an entry that has digits when no key came for this long; default
	// 2500 ms (Leosac's pin_timeout).
	Timeout time.Duration
	// MaxDigits is the longest PIN; one more digit discards the entry with ErrPINTooLong.
	// Default 12.
	MaxDigits int
}

// withDefaults returns c with zero fields set to their defaults.
func (c PINConfig) withDefaults() PINConfig {
	if c.EndKey == 0 {
		c.EndKey = DefaultEndKey
	}
	if c.ClearKey == 0 {
		c.ClearKey = DefaultClearKey
		if c.EndKey == DefaultClearKey {
			c.ClearKey = KeyHash
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPINTimeout
	}
	if c.MaxDigits == 0 {
		c.MaxDigits = DefaultMaxPINDigits
	}
	return c
}

// Validate reports whether the configuration, with defaults applied, is usable: EndKey and
// ClearKey are '*' or '#' and differ (a zero ClearKey becomes the key EndKey is not), Timeout
// and MaxDigits are positive.
func (c PINConfig) Validate() error {
	c = c.withDefaults()
	if c.EndKey != KeyStar && c.EndKey != KeyHash {
		return fmt.Errorf("wiegand: PIN end key %v: must be '*' or '#'", c.EndKey)
	}
	if c.ClearKey != KeyStar && c.ClearKey != KeyHash {
		return fmt.Errorf("wiegand: PIN clear key %v: must be '*' or '#'", c.ClearKey)
	}
	if c.EndKey == c.ClearKey {
		return fmt.Errorf("wiegand: PIN end key and clear key are both %v", c.EndKey)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("wiegand: PIN timeout %v: must be positive", c.Timeout)
	}
	if c.MaxDigits < 0 {
		return fmt.Errorf("wiegand: PIN max digits %d: must be positive", c.MaxDigits)
	}
	return nil
}

// PINCollector turns key presses into PINs. It holds at most one entry: digits are appended;
// the end key completes the entry; the clear key discards it; an entry with digits also
// completes when no key came for Timeout (see Deadline and Tick). The end key or a timeout with
// no digits completes nothing. Keys are fed with the time they were pressed; times should not go
// backwards (a key earlier than the previous one is treated as simultaneous with it).
//
// The zero PINCollector is not usable; use NewPINCollector. A PINCollector is not safe for
// concurrent use.
type PINCollector struct {
	cfg    PINConfig
	digits []byte
	last   time.Time // time of the last key of the entry, when len(digits) > 0
}

// NewPINCollector returns an empty collector. It returns an error if cfg is not valid.
func NewPINCollector(cfg PINConfig) (*PINCollector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &PINCollector{cfg: cfg.withDefaults()}, nil
}

// Config returns the collector's configuration, defaults applied.
func (c *PINCollector) Config() PINConfig { return c.cfg }

// Key feeds one key pressed at now. If the pending entry had already timed out at now, it is
// completed first, as Tick(now) would. It returns the PIN and true when an entry completed (at
// most one per call). It returns an error wrapping ErrPINTooLong when the key is one digit too
// many, or ErrBadKey when k is not a valid key; the entry is then discarded.
func (c *PINCollector) Key(k Key, now time.Time) (pin string, done bool, err error) {
	pin, done = c.Tick(now)
	switch {
	case k.IsDigit():
		if len(c.digits) >= c.cfg.MaxDigits {
			c.Reset()
			return pin, done, fmt.Errorf("%w: more than %d digits", ErrPINTooLong, c.cfg.MaxDigits)
		}
		c.digits = append(c.digits, byte(k))
		if now.After(c.last) || len(c.digits) == 1 {
			c.last = now
		}
	case k == c.cfg.EndKey:
		if len(c.digits) > 0 { // cannot happen together with a Tick completion: that emptied the entry
			pin, done = string(c.digits), true
		}
		c.Reset()
	case k == c.cfg.ClearKey:
		c.Reset()
	default:
		c.Reset()
		return pin, done, fmt.Errorf("%w: %v", ErrBadKey, k)
	}
	return pin, done, nil
}

// Tick completes the entry if it has digits and its deadline is not after now, returning the
// PIN and true; otherwise it returns "", false.
func (c *PINCollector) Tick(now time.Time) (pin string, done bool) {
	if d, ok := c.Deadline(); ok && !now.Before(d) {
		pin = string(c.digits)
		c.Reset()
		return pin, true
	}
	return "", false
}

// Deadline returns the time at which the pending entry times out, and false when no entry with
// digits is pending.
func (c *PINCollector) Deadline() (time.Time, bool) {
	if len(c.digits) == 0 {
		return time.Time{}, false
	}
	return c.last.Add(c.cfg.Timeout), true
}

// Len returns the number of digits of the pending entry.
func (c *PINCollector) Len() int { return len(c.digits) }

// Reset discards the pending entry.
func (c *PINCollector) Reset() {
	c.digits = c.digits[:0]
	c.last = time.Time{}
}
