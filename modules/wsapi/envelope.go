package wsapi

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"gatehouse/core"
)

// Request is a decoded client frame: {"uuid": string, "type": string, "content": any}.
type Request struct {
	UUID    string
	Type    string
	Content json.RawMessage
}

// Reply is a server frame: a response (uuid and type of the request) or a push (fresh uuid).
type Reply struct {
	UUID         string    `json:"uuid"`
	Type         string    `json:"type"`
	StatusCode   core.Code `json:"status_code"`
	StatusString string    `json:"status_string"`
	Content      any       `json:"content"`

	after func() // run once the reply is queued (core.Call.AfterReply)
}

// Limits on the envelope's strings; longer ones are malformed (and not echoed).
const (
	maxUUIDLen = 256
	maxTypeLen = 128
)

// DecodeRequest parses one frame. On failure it returns a MALFORMED *core.Error together with a
// Request holding whatever could be parsed (uuid and type, when they were strings), so that the
// answer can echo them. It never panics, whatever the input. Keys match exactly (case matters,
// as in Leosac); when a key repeats, the last one wins, as in encoding/json.
func DecodeRequest(frame []byte) (Request, *core.Error) {
	var req Request
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 {
		return req, malformed("empty frame")
	}
	if !json.Valid(trimmed) {
		if trimmed[0] == '{' {
			req.UUID, req.Type = Peek(trimmed)
		}
		return req, malformed("not JSON")
	}
	if trimmed[0] != '{' {
		return req, malformed("not a JSON object")
	}
	var uuidRaw, typeRaw, content []byte
	var hasUUID, hasType, hasContent bool
	scanObject(trimmed, func(key, value []byte) {
		switch string(key) {
		case "uuid":
			uuidRaw, hasUUID = value, true
		case "type":
			typeRaw, hasType = value, true
		case "content":
			content, hasContent = value, true
		}
	})
	uuidOK := hasUUID && decodeShortString(uuidRaw, maxUUIDLen, &req.UUID)
	typeOK := hasType && decodeShortString(typeRaw, maxTypeLen, &req.Type)
	switch {
	case !hasUUID:
		return req, malformed("missing uuid")
	case !uuidOK:
		return req, malformed("uuid must be a string of at most 256 bytes")
	case !hasType:
		return req, malformed("missing type")
	case !typeOK:
		return req, malformed("type must be a string of at most 128 bytes")
	case !hasContent:
		return req, malformed("missing content")
	}
	req.Content = json.RawMessage(content)
	return req, nil
}

// scanObject calls fn with each top-level key (unescaped) and raw value of obj, which must be a
// valid JSON object (checked by the caller with json.Valid). It allocates only for keys that
// contain escapes.
func scanObject(obj []byte, fn func(key, value []byte)) {
	i := skipSpace(obj, 1) // after '{'
	for i < len(obj) && obj[i] == '"' {
		kEnd := skipString(obj, i)
		key := obj[i+1 : kEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[i:kEnd], &k) == nil {
				key = []byte(k)
			}
		}
		i = skipSpace(obj, kEnd)
		i = skipSpace(obj, i+1) // after ':'
		vEnd := skipValue(obj, i)
		fn(key, obj[i:vEnd])
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just after the (valid) JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' &&
			b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

func malformed(why string) *core.Error {
	return core.E(core.Malformed, "Malformed message: "+why+".", nil)
}

func decodeShortString(raw []byte, limit int, dst *string) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		// Fast path: no escapes and valid UTF-8, so the bytes are the string.
		if len(inner) > limit {
			return false
		}
		*dst = string(inner)
		return true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || len(s) > limit || !utf8.ValidString(s) {
		return false
	}
	*dst = s
	return true
}

// Peek scans the start of a frame that is not valid JSON as a whole (cut off, or too large to
// read) and returns the top-level "uuid" and "type" string values it meets before the first
// error. It reads at most the bytes it is given.
func Peek(frame []byte) (uuid, typ string) {
	dec := json.NewDecoder(bytes.NewReader(frame))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", ""
	}
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := keyTok.(string)
		switch key {
		case "uuid", "type":
			tok, err := dec.Token()
			if err != nil {
				return
			}
			s, ok := tok.(string)
			if !ok {
				if d, isDelim := tok.(json.Delim); isDelim && (d == '{' || d == '[') {
					return // a container where a string belongs: stop here
				}
				continue
			}
			if key == "uuid" && len(s) <= maxUUIDLen {
				uuid = s
			} else if key == "type" && len(s) <= maxTypeLen {
				typ = s
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return
			}
		}
	}
	return
}
