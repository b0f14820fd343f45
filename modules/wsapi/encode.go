package wsapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// encodeReply writes r as one JSON object into buf. The envelope is written by hand (it is on
// every reply); the content goes through encoding/json unless it is already raw JSON.
func encodeReply(buf *bytes.Buffer, r *Reply) error {
	buf.WriteString(`{"uuid":`)
	appendString(buf, r.UUID)
	buf.WriteString(`,"type":`)
	appendString(buf, r.Type)
	buf.WriteString(`,"status_code":`)
	buf.WriteString(strconv.Itoa(int(r.StatusCode)))
	buf.WriteString(`,"status_string":`)
	appendString(buf, r.StatusString)
	buf.WriteString(`,"content":`)
	switch c := r.Content.(type) {
	case nil:
		buf.WriteString("null")
	case json.RawMessage:
		if len(c) == 0 {
			buf.WriteString("null")
		} else {
			buf.Write(c)
		}
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	buf.WriteByte('}')
	return nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, as encoding/json does (without its HTML escaping).
func appendString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers that eval; escape them.
		if r == '\u2028' || r == '\u2029' {
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
