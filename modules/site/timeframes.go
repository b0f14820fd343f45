package site

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gatehouse/core"
)

// Frame is one weekly timeframe of a schedule: a day of the week and a start and an end time of
// day, at minute granularity.
//
// Day is 0 = Monday … 6 = Sunday (the convention of Leosac's web UI, contract §5). Start and End
// are minutes after midnight (0 … 1439). A frame whose End is before its Start spans midnight:
// it runs from Start on Day to End on the next day (Sunday's continues into Monday).
type Frame struct {
	Day   int
	Start int
	End   int
}

// Overnight reports whether the frame spans midnight (its end is before its start).
func (f Frame) Overnight() bool { return f.End < f.Start }

// Contains reports whether the frame covers the given minute (0 … 1439) of the given day
// (0 = Monday … 6 = Sunday). Both ends are inclusive at minute granularity, as in Leosac: a
// frame 08:00–18:00 covers 08:00:00 through 18:00:59, and 00:00–23:59 the whole day; a frame
// whose start equals its end covers that one minute. An overnight frame covers Start … 23:59 of
// its day and 00:00 … End of the next day.
func (f Frame) Contains(day, minute int) bool {
	if !f.Overnight() {
		return day == f.Day && minute >= f.Start && minute <= f.End
	}
	return (day == f.Day && minute >= f.Start) || (day == (f.Day+1)%7 && minute <= f.End)
}

// ContainsTime reports whether the frame covers the wall-clock time t (already in the site's
// time zone: weekday, hour and minute are read from t as is).
func (f Frame) ContainsTime(t time.Time) bool { return f.Contains(Weekday(t), t.Hour()*60+t.Minute()) }

// Weekday returns t's day in the frames' numbering: 0 = Monday … 6 = Sunday.
func Weekday(t time.Time) int { return (int(t.Weekday()) + 6) % 7 }

// Frames is a schedule's list of timeframes.
type Frames []Frame

// Contains reports whether any frame covers the minute of the day (see Frame.Contains).
func (fs Frames) Contains(day, minute int) bool {
	for _, f := range fs {
		if f.Contains(day, minute) {
			return true
		}
	}
	return false
}

// ContainsTime reports whether any frame covers the wall-clock time t (see Frame.ContainsTime).
func (fs Frames) ContainsTime(t time.Time) bool {
	return fs.Contains(Weekday(t), t.Hour()*60+t.Minute())
}

// ParseClock reads a time of day "HH:MM" and returns minutes after midnight. One-digit hours
// and minutes are accepted ("8:5" is 08:05, as Leosac's web UI may send it); hours are 0 … 23
// and minutes 0 … 59.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, okH := smallNumber(h)
	mm, okM := smallNumber(m)
	if !ok || !okH || !okM || hh > 23 || mm > 59 {
		return 0, fmt.Errorf("invalid time %q (use HH:MM)", s)
	}
	return hh*60 + mm, nil
}

// smallNumber parses one or two ASCII digits.
func smallNumber(s string) (int, bool) {
	if len(s) < 1 || len(s) > 2 {
		return 0, false
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int(r-'0')
	}
	return n, true
}

// FormatClock writes minutes after midnight as a zero-padded "HH:MM".
func FormatClock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// frameJSON is a timeframe as stored and sent (without the index "id", which is added on output).
type frameJSON struct {
	Day   int    `json:"day"`
	Start string `json:"start-time"`
	End   string `json:"end-time"`
}

// MarshalJSON writes {"day", "start-time", "end-time"} with zero-padded times.
func (f Frame) MarshalJSON() ([]byte, error) {
	return json.Marshal(frameJSON{Day: f.Day, Start: FormatClock(f.Start), End: FormatClock(f.End)})
}

// UnmarshalJSON reads {"day", "start-time", "end-time"} (the stored form).
func (f *Frame) UnmarshalJSON(b []byte) error {
	var j frameJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	start, err := ParseClock(j.Start)
	if err != nil {
		return err
	}
	end, err := ParseClock(j.End)
	if err != nil {
		return err
	}
	*f = Frame{Day: j.Day, Start: start, End: end}
	return nil
}

// frameInput is a timeframe as a client sends it; every field is checked by parseFrames.
type frameInput struct {
	Day   *int    `json:"day"`
	Start *string `json:"start-time"`
	End   *string `json:"end-time"`
}

// frameList is the optional "timeframes" attribute: Set reports whether the key was present;
// null is the empty list.
type frameList struct {
	Set   bool
	Items []frameInput
}

// UnmarshalJSON implements json.Unmarshaler.
func (l *frameList) UnmarshalJSON(b []byte) error {
	l.Set = true
	if string(b) == "null" {
		l.Items = nil
		return nil
	}
	return json.Unmarshal(b, &l.Items)
}

// parseFrames validates timeframes as a client sent them and returns them, or field errors
// with pointers data/attributes/timeframes/<i>/<field>.
func parseFrames(items []frameInput) (Frames, []core.FieldError) {
	if len(items) > MaxTimeframes {
		return nil, []core.FieldError{{Detail: fmt.Sprintf("A schedule has at most %d timeframes.", MaxTimeframes), Pointer: "data/attributes/timeframes"}}
	}
	out := make(Frames, 0, len(items))
	var errs []core.FieldError
	for i, it := range items {
		ptr := fmt.Sprintf("data/attributes/timeframes/%d/", i)
		var f Frame
		if it.Day == nil || *it.Day < 0 || *it.Day > 6 {
			errs = append(errs, core.FieldError{Detail: "Day must be 0 (Monday) to 6 (Sunday).", Pointer: ptr + "day"})
		} else {
			f.Day = *it.Day
		}
		for _, c := range []struct {
			field string
			in    *string
			out   *int
		}{{"start-time", it.Start, &f.Start}, {"end-time", it.End, &f.End}} {
			s := ""
			if c.in != nil {
				s = *c.in
			}
			m, err := ParseClock(s)
			if err != nil {
				errs = append(errs, core.FieldError{Detail: fmt.Sprintf("Invalid time %s (use HH:MM).", s), Pointer: ptr + c.field})
				continue
			}
			*c.out = m
		}
		out = append(out, f)
	}
	return out, errs
}

// framesAttribute is the timeframes as sent to clients: each with its index as "id".
func framesAttribute(fs Frames) []map[string]any {
	out := make([]map[string]any, len(fs))
	for i, f := range fs {
		out[i] = map[string]any{"id": i, "day": f.Day, "start-time": FormatClock(f.Start), "end-time": FormatClock(f.End)}
	}
	return out
}
