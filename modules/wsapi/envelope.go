package wsapi

import (
	"bytes"
	"encoding/json"
	"errors"
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
}

// Limits on the envelope's strings; longer ones are malformed (and not echoed).
const (
	maxUUIDLen = 256
	maxTypeLen = 128
)

// DecodeRequest parses one frame. On failure it returns a MALFORMED *core.Error together with a
// Request holding whatever could be parsed (uuid and type, when they were strings), so that the
// answer can echo them. It never panics, whatever the input.
func DecodeRequest(frame []byte) (Request, *core.Error) {
	var req Request
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 {
		return req, malformed("empty frame")
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return req, malformed("not JSON")
		}
		return req, malformed("not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		req.UUID, req.Type = Peek(trimmed)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return req, malformed("not JSON")
		}
		return req, malformed("not a JSON object")
	}
	uuidRaw, hasUUID := fields["uuid"]
	typeRaw, hasType := fields["type"]
	content, hasContent := fields["content"]
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
	req.Content = content
	return req, nil
}

func malformed(why string) *core.Error {
	return core.E(core.Malformed, "Malformed message: "+why+".", nil)
}

func decodeShortString(raw json.RawMessage, limit int, dst *string) bool {
	if len(raw) == 0 || raw[0] != '"' {
		return false
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
