// Package resource holds the conventions every Leosac-dialect resource follows: JSON:API-like
// objects ({"id","type","attributes","relationships"}), references, RFC 3339 UTC dates,
// validity windows, and the decoding of "<thing>_id" arguments. Empty lists are always [],
// never null.
package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gatehouse/core"
)

// Object is one resource as sent to clients.
type Object struct {
	ID            int64          `json:"id"`
	Type          string         `json:"type"`
	Attributes    any            `json:"attributes"`
	Relationships map[string]Rel `json:"relationships,omitempty"`
}

// Ref points at another resource.
type Ref struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
}

// Rel is a relationship: {"data": <Ref>} for to-one (null when absent) or {"data": [<Ref>...]}
// for to-many (never null).
type Rel struct {
	Data any `json:"data"`
}

// One returns a to-one relationship, {"data": null} when id is 0.
func One(typ string, id int64) Rel {
	if id == 0 {
		return Rel{Data: nil}
	}
	return Rel{Data: Ref{ID: id, Type: typ}}
}

// Many returns a to-many relationship of one type.
func Many(typ string, ids []int64) Rel {
	refs := make([]Ref, len(ids))
	for i, id := range ids {
		refs[i] = Ref{ID: id, Type: typ}
	}
	return Rel{Data: refs}
}

// Refs returns a to-many relationship of mixed types.
func Refs(refs []Ref) Rel {
	if refs == nil {
		refs = []Ref{}
	}
	return Rel{Data: refs}
}

// Single wraps one object as a reply: {"data": obj}.
func Single(obj any) map[string]any { return map[string]any{"data": obj} }

// List wraps objects as a reply: {"data": [...]}, [] when empty.
func List[T any](objs []T) map[string]any {
	if objs == nil {
		objs = []T{}
	}
	return map[string]any{"data": objs}
}

// TimeLayout is how dates are written: RFC 3339 in UTC with a Z.
const TimeLayout = "2006-01-02T15:04:05Z"

// FormatTime writes t as RFC 3339 UTC ("2024-01-02T08:05:00Z"), or nil for a nil time.
func FormatTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(TimeLayout)
}

// ParseTime reads an RFC 3339 date with any offset (fractions allowed) and returns it in UTC.
// It also accepts Leosac's own output form "2006-01-02T15:04:05.999999999+0000".
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date", s)
}

// Validity is the validity window of a user or credential as stored.
type Validity struct {
	Enabled bool
	Start   *time.Time // nil = no lower bound
	End     *time.Time // nil = no upper bound
}

// ValidAt reports whether the window is enabled and contains t.
func (v Validity) ValidAt(t time.Time) bool {
	if !v.Enabled {
		return false
	}
	if v.Start != nil && t.Before(*v.Start) {
		return false
	}
	if v.End != nil && t.After(*v.End) {
		return false
	}
	return true
}

// Attributes returns the validity as Leosac attributes ("validity-enabled", "validity-start",
// "validity-end"); unbounded ends are null.
func (v Validity) Attributes(into map[string]any) {
	into["validity-enabled"] = v.Enabled
	into["validity-start"] = FormatTime(v.Start)
	into["validity-end"] = FormatTime(v.End)
}

// ValidityPatch is what a client sent for a validity window. A nil field was absent and keeps
// the current value (unlike Leosac, which reset absent dates to "forever"). A date sent as null
// or "" means unbounded.
type ValidityPatch struct {
	Enabled *bool
	Start   Date
	End     Date
}

// Date is an optional date attribute: Set reports whether the key was present, Value is nil
// for null or "" (unbounded).
type Date struct {
	Set   bool
	Value *time.Time
	Err   error // a present but unparsable date
}

// UnmarshalJSON implements json.Unmarshaler. Parse errors are kept in Err, so that decoding the
// whole request succeeds and validation can report the field with its pointer.
func (d *Date) UnmarshalJSON(b []byte) error {
	d.Set = true
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		d.Err = fmt.Errorf("want an RFC 3339 date string")
		return nil
	}
	if strings.TrimSpace(s) == "" {
		return nil
	}
	t, err := ParseTime(s)
	if err != nil {
		d.Err = err
		return nil
	}
	d.Value = &t
	return nil
}

// IsZero reports whether the attribute was absent.
func (d Date) IsZero() bool { return !d.Set }

// Apply returns v changed by the patch, or MODEL_EXCEPTION field errors (pointers under
// data/attributes/).
func (p ValidityPatch) Apply(v Validity) (Validity, []core.FieldError) {
	var errs []core.FieldError
	if p.Enabled != nil {
		v.Enabled = *p.Enabled
	}
	if p.Start.Set {
		if p.Start.Err != nil {
			errs = append(errs, core.FieldError{Detail: "Invalid date: " + p.Start.Err.Error(), Pointer: "data/attributes/validity-start"})
		} else {
			v.Start = p.Start.Value
		}
	}
	if p.End.Set {
		if p.End.Err != nil {
			errs = append(errs, core.FieldError{Detail: "Invalid date: " + p.End.Err.Error(), Pointer: "data/attributes/validity-end"})
		} else {
			v.End = p.End.Value
		}
	}
	if len(errs) == 0 && v.Start != nil && v.End != nil && v.End.Before(*v.Start) {
		errs = append(errs, core.FieldError{Detail: "The validity end is before its start.", Pointer: "data/attributes/validity-end"})
	}
	return v, errs
}

// Changes reports whether applying the patch would change v (used to refuse validity changes
// by non-administrators while letting clients echo unchanged values).
func (p ValidityPatch) Changes(v Validity) bool {
	nv, errs := p.Apply(v)
	if len(errs) > 0 {
		return true
	}
	return nv.Enabled != v.Enabled || !sameTime(nv.Start, v.Start) || !sameTime(nv.End, v.End)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
}

// ID reads the integer id argument key ("user_id", …) from a call's content. A missing key
// reads as 0 (which Leosac's .read treats as "list"). A non-integer is INVALID_ARGUMENT.
func ID(call *core.Call, key string) (int64, error) {
	var m map[string]json.RawMessage
	if err := call.Decode(&m); err != nil {
		return 0, err
	}
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return 0, nil
	}
	var id int64
	if err := json.Unmarshal(raw, &id); err != nil || id < 0 {
		return 0, core.E(core.InvalidArgument, key+": want a non-negative integer", nil)
	}
	return id, nil
}

// Fold returns the search key of a name: lower case, so that searches are case-insensitive for
// every script, not just ASCII.
func Fold(s string) string { return strings.ToLower(s) }

// ReadsAll reports whether the caller may read every resource of the site: viewers and above
// (viewers read what managers read and change nothing).
func ReadsAll(c *core.Identity) bool { return c.Rank >= core.RankViewer }

// Manages reports whether the caller may change the site's resources: managers and above.
func Manages(c *core.Identity) bool { return c.Rank >= core.RankManager }

// IsAdmin reports whether the caller is an administrator.
func IsAdmin(c *core.Identity) bool { return c.Rank == core.RankAdministrator }

// RequireManager returns PERMISSION_DENIED unless the caller manages the site.
func RequireManager(c *core.Identity) error {
	if !Manages(c) {
		return core.ErrPermissionDenied
	}
	return nil
}

// RequireReader returns PERMISSION_DENIED unless the caller may read everything.
func RequireReader(c *core.Identity) error {
	if !ReadsAll(c) {
		return core.ErrPermissionDenied
	}
	return nil
}

// RequireAdmin returns PERMISSION_DENIED unless the caller is an administrator.
func RequireAdmin(c *core.Identity) error {
	if !IsAdmin(c) {
		return core.ErrPermissionDenied
	}
	return nil
}

// DBError wraps an unexpected database failure as DATABASE_ERROR (the cause is logged, never
// sent).
func DBError(err error) error {
	if err == nil {
		return nil
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	return core.E(core.DatabaseError, "Database error.", err)
}

// ValidateName checks a group or schedule name as Leosac does: 3 to 50 characters, each an ASCII
// letter, digit, '_', '-' or '.'. It returns field errors at data/attributes/name.
func ValidateName(name string) []core.FieldError {
	if n := len(name); n < 3 || n > 50 {
		return []core.FieldError{{Detail: "Length must be >=3 and <=50.", Pointer: "data/attributes/name"}}
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return []core.FieldError{{Detail: fmt.Sprintf("Usage of unauthorized character: %c", r), Pointer: "data/attributes/name"}}
		}
	}
	return nil
}
