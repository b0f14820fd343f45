package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// Paging limits of get_logs.
const (
	defaultLogPageSize = 20
	maxLogPageSize     = 500
)

// logMessage is one item of get_logs.
type logMessage struct {
	ID         int64         `json:"id"`
	Type       string        `json:"type"`
	Attributes logAttributes `json:"attributes"`
}

type logAttributes struct {
	// Message is the line for people: "2026-11-22T18:00:00Z INF [module] message key=value …".
	Message string `json:"message"`
	// Timestamp is the line's time in unix seconds, null when the line has none.
	Timestamp *int64 `json:"timestamp"`
	Level     string `json:"level"`
	Module    string `json:"module"`
}

// getLogs (viewers and above) pages through the recent log lines kept in memory (reference
// §4.3). Request: p (0-based page, default 0), ps (page size 1..500, default 20), sort ("asc"
// for oldest first, anything else newest first). Response:
//
//	{"data": [{"id", "type": "log-message", "attributes": {"message", "timestamp", "level",
//	"module"}}], "meta": {"total", "last", "first": 0}, "status": 0}
//
// where last is the index of the last page (0 when there are no lines; Leosac's total/ps was
// one too many when ps divides total). A page past the last one has "data": [].
func (m *Module) getLogs(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		P    *int64  `json:"p"`
		PS   *int64  `json:"ps"`
		Sort *string `json:"sort"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	page, size := int64(0), int64(defaultLogPageSize)
	if req.P != nil {
		if page = *req.P; page < 0 {
			return nil, invalidArgument("page", page, "page >= 0")
		}
	}
	if req.PS != nil {
		if size = *req.PS; size <= 0 {
			return nil, invalidArgument("page_size", size, "page_size > 0")
		} else if size > maxLogPageSize {
			return nil, invalidArgument("page_size", size, fmt.Sprintf("page_size <= %d", maxLogPageSize))
		}
	}
	lines := m.ctx.LogRing().Lines() // oldest first; nil without a ring
	total := int64(len(lines))
	data := []logMessage{}
	if page <= total/size { // also guards page*size against overflow
		for i := page * size; i < total && i < (page+1)*size; i++ {
			j := i
			if req.Sort == nil || *req.Sort != "asc" {
				j = total - 1 - i
			}
			data = append(data, formatLogLine(lines[j]))
		}
	}
	last := int64(0)
	if total > 0 {
		last = (total - 1) / size
	}
	return map[string]any{
		"data":   data,
		"meta":   map[string]int64{"total": total, "last": last, "first": 0},
		"status": 0,
	}, nil
}

// levelAbbrev are zerolog's levels as its console writer abbreviates them.
var levelAbbrev = map[string]string{
	"trace": "TRC", "debug": "DBG", "info": "INF", "warn": "WRN", "error": "ERR", "fatal": "FTL", "panic": "PNC",
}

// formatLogLine turns a JSON log line into a log-message: time (UTC, RFC 3339), abbreviated
// level, [module], message, then the other fields as key=value in the order they were logged.
// A line that is not a JSON object (one cut at the ring's size limit) is shown as is.
func formatLogLine(l core.LogLine) logMessage {
	out := logMessage{ID: l.ID, Type: "log-message"}
	var (
		msg, extra strings.Builder
		timeText   string
	)
	dec := json.NewDecoder(bytes.NewReader(l.Line))
	dec.UseNumber()
	ok := func() bool {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return false
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return false
			}
			key, _ := t.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return false
			}
			var s string
			isString := json.Unmarshal(raw, &s) == nil
			switch {
			case key == "level" && isString:
				out.Attributes.Level = s
			case key == "module" && isString:
				out.Attributes.Module = s
			case key == "message" && isString:
				msg.WriteString(s)
			case key == "time":
				if t, ok := logTime(raw, s, isString); ok {
					unix := t.Unix()
					out.Attributes.Timestamp = &unix
					timeText = t.UTC().Format(resource.TimeLayout)
					continue
				}
				fallthrough
			default:
				extra.WriteByte(' ')
				extra.WriteString(key)
				extra.WriteByte('=')
				if isString {
					extra.WriteString(logValue(s))
				} else {
					var c bytes.Buffer
					if json.Compact(&c, raw) == nil {
						extra.Write(c.Bytes())
					}
				}
			}
		}
		return true
	}()
	if !ok {
		out.Attributes = logAttributes{Message: strings.ToValidUTF8(string(l.Line), "\uFFFD")}
		return out
	}
	var b strings.Builder
	if timeText != "" {
		b.WriteString(timeText)
		b.WriteByte(' ')
	}
	lvl := levelAbbrev[out.Attributes.Level]
	if lvl == "" {
		lvl = "???"
	}
	b.WriteString(lvl)
	if out.Attributes.Module != "" {
		b.WriteString(" [")
		b.WriteString(out.Attributes.Module)
		b.WriteByte(']')
	}
	if msg.Len() > 0 {
		b.WriteByte(' ')
		b.WriteString(msg.String())
	}
	b.WriteString(extra.String())
	out.Attributes.Message = b.String()
	return out
}

// logTime reads zerolog's time field: an RFC 3339 string (the default) or unix seconds.
func logTime(raw json.RawMessage, s string, isString bool) (time.Time, bool) {
	if isString {
		t, err := resource.ParseTime(s)
		return t, err == nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// logValue writes a string field value bare when that is unambiguous, quoted otherwise.
func logValue(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == '\\' || r == 0x7f || r == '\uFFFD' {
			return strconv.Quote(s)
		}
	}
	return s
}

// invalidArgument is Leosac's INVALID_ARGUMENT for a paging argument out of range.
func invalidArgument(name string, value int64, condition string) error {
	return core.Errorf(core.InvalidArgument, "Invalid Argument %s. Value was %d. Condition was %s", name, value, condition)
}
