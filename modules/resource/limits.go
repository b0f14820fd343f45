package resource

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gatehouse/core"
)

// Length limits of the strings clients store (issue 10, point 5). Every create and update
// handler checks the strings it stores against this one table before writing anything, and
// answers MODEL_EXCEPTION with a pointer at each field that is too long, so that no caller —
// least of all a plain user editing their own account — can grow the database (and every
// audit row that snapshots the row) with large strings. Lengths are in characters (Unicode
// code points, at most 4 bytes each) unless the limit says bytes.
//
// Names of groups and schedules keep Leosac's own rule (ValidateName: 3 to 50 characters);
// usernames theirs (auth.NormalizeUsername: at most 128); certificate nicknames and emails
// theirs (modules/cert: 64 characters, 254 bytes); PINs and card ids theirs.
var Limits = map[string]Limit{
	"firstname":   {Max: 100},
	"lastname":    {Max: 100},
	"email":       {Max: 254, Bytes: true}, // RFC 5321's limit, in octets
	"alias":       {Max: 50},
	"description": {Max: 1000},
	"config":      {Max: 16 << 10, Bytes: true},
	"name":        {Max: 64},               // hardware devices (groups and schedules: ValidateName)
	"device":      {Max: 128, Bytes: true}, // a hardware GPIO's chip
}

// Limit is the largest length of a stored string.
type Limit struct {
	// Max is the largest length allowed.
	Max int
	// Bytes: Max counts bytes (for JSON blobs), not characters.
	Bytes bool
}

// Length returns the length of s as the limit counts it.
func (l Limit) Length(s string) int {
	if l.Bytes {
		return len(s)
	}
	return utf8.RuneCountInString(s)
}

// Text is one client string to check: the attribute it is stored from (a key of Limits) and
// its value, nil when the attribute was absent (absent attributes keep their stored value,
// which was checked when it was stored).
type Text struct {
	Attr  string
	Value *string
	// Pointer is the JSON pointer of the field error; "" means data/attributes/<Attr>.
	Pointer string
}

// CheckTexts returns one MODEL_EXCEPTION field error per text longer than its limit
// ("Alias must not be longer than 50."), pointing at the field. It panics on an attribute
// missing from Limits: every stored string must have a limit.
func CheckTexts(texts ...Text) []core.FieldError {
	var errs []core.FieldError
	for _, t := range texts {
		l, ok := Limits[t.Attr]
		if !ok {
			panic(fmt.Sprintf("resource.CheckTexts: no limit for %q", t.Attr))
		}
		if t.Value == nil || l.Length(*t.Value) <= l.Max {
			continue
		}
		ptr := t.Pointer
		if ptr == "" {
			ptr = "data/attributes/" + t.Attr
		}
		unit := ""
		if l.Bytes {
			unit = " bytes"
		}
		errs = append(errs, core.FieldError{
			Detail:  fmt.Sprintf("%s must not be longer than %d%s.", strings.ToUpper(t.Attr[:1])+t.Attr[1:], l.Max, unit),
			Pointer: ptr,
		})
	}
	return errs
}

// CheckBytes is CheckTexts for one raw value (a JSON blob as sent).
func CheckBytes(attr string, raw []byte) []core.FieldError {
	if raw == nil {
		return nil
	}
	s := string(raw)
	return CheckTexts(Text{Attr: attr, Value: &s})
}

// ValidateTexts is CheckTexts as an error: nil when every text fits, else MODEL_EXCEPTION.
func ValidateTexts(texts ...Text) error {
	if errs := CheckTexts(texts...); len(errs) > 0 {
		return core.Validation(errs...)
	}
	return nil
}
