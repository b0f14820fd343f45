package wsapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"gatehouse/core"
)

// decodeCase is one frame given to DecodeRequest. When ok is false the frame must be answered
// MALFORMED and wantUUID/wantType are what must be echoed; when ok is true they are the decoded
// fields and wantContent the raw content (compared after compaction).
type decodeCase struct {
	name        string
	frame       []byte
	ok          bool
	wantUUID    string
	wantType    string
	wantContent string
}

func frame(s string) []byte { return []byte(s) }

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func decodeCases() []decodeCase {
	long257 := strings.Repeat("u", 257)
	long256 := strings.Repeat("u", 256)
	type129 := strings.Repeat("t", 129)
	type128 := strings.Repeat("t", 128)
	deep := strings.Repeat("[", 10001)
	return []decodeCase{
		// Valid frames.
		{name: "valid", frame: frame(`{"uuid":"u1","type":"get_leosac_version","content":{"a":1}}`),
			ok: true, wantUUID: "u1", wantType: "get_leosac_version", wantContent: `{"a":1}`},
		{name: "valid/keys in any order", frame: frame(`{"content":{},"type":"t","uuid":"u"}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `{}`},
		{name: "valid/extra fields ignored", frame: frame(`{"uuid":"u","type":"t","content":1,"extra":[1,2]}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `1`},
		{name: "valid/whitespace around the object", frame: frame(" \t\r\n {\"uuid\" : \"u\" ,\n\"type\":\"t\",\"content\": { } } \n\t "),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `{}`},
		{name: "valid/empty uuid and type", frame: frame(`{"uuid":"","type":"","content":null}`),
			ok: true, wantUUID: "", wantType: "", wantContent: `null`},
		{name: "valid/escaped strings", frame: frame(`{"uuid":"\u0041\n\"","type":"a\/b","content":0}`),
			ok: true, wantUUID: "A\n\"", wantType: "a/b", wantContent: `0`},
		{name: "valid/unicode uuid and type", frame: frame(`{"uuid":"é漢😀","type":"\u05d0\u200b","content":"x"}`),
			ok: true, wantUUID: "é漢😀", wantType: "\u05d0\u200b", wantContent: `"x"`},
		{name: "valid/uuid of exactly 256 bytes", frame: frame(`{"uuid":"` + long256 + `","type":"t","content":{}}`),
			ok: true, wantUUID: long256, wantType: "t", wantContent: `{}`},
		{name: "valid/type of exactly 128 bytes", frame: frame(`{"uuid":"u","type":"` + type128 + `","content":{}}`),
			ok: true, wantUUID: "u", wantType: type128, wantContent: `{}`},
		{name: "valid/limit counts decoded bytes not escapes", frame: frame(`{"uuid":"` + strings.Repeat(`\u0041`, 256) + `","type":"t","content":{}}`),
			ok: true, wantUUID: strings.Repeat("A", 256), wantType: "t", wantContent: `{}`},
		{name: "valid/multibyte uuid within 256 bytes", frame: frame(`{"uuid":"` + strings.Repeat("é", 128) + `","type":"t","content":{}}`),
			ok: true, wantUUID: strings.Repeat("é", 128), wantType: "t", wantContent: `{}`},

		// Content of any JSON type is accepted: the handler decides what it wants.
		{name: "content/object", frame: frame(`{"uuid":"u","type":"t","content":{"k":[1,{"x":null}]}}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `{"k":[1,{"x":null}]}`},
		{name: "content/array", frame: frame(`{"uuid":"u","type":"t","content":[1,"a",null]}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `[1,"a",null]`},
		{name: "content/empty array", frame: frame(`{"uuid":"u","type":"t","content":[]}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `[]`},
		{name: "content/null", frame: frame(`{"uuid":"u","type":"t","content":null}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `null`},
		{name: "content/number", frame: frame(`{"uuid":"u","type":"t","content":-12.5e3}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `-12.5e3`},
		{name: "content/huge number", frame: frame(`{"uuid":"u","type":"t","content":1e999999999}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `1e999999999`},
		{name: "content/string", frame: frame(`{"uuid":"u","type":"t","content":"s"}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `"s"`},
		{name: "content/bool", frame: frame(`{"uuid":"u","type":"t","content":false}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: `false`},
		{name: "content/nested 1000 deep", frame: frame(`{"uuid":"u","type":"t","content":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`),
			ok: true, wantUUID: "u", wantType: "t", wantContent: strings.Repeat("[", 1000) + strings.Repeat("]", 1000)},

		// Empty and not JSON.
		{name: "empty frame", frame: frame(``)},
		{name: "whitespace only", frame: frame(" \n\t\r ")},
		{name: "not JSON/word", frame: frame(`hello`)},
		{name: "not JSON/lone brace", frame: frame(`{`)},
		{name: "not JSON/unquoted keys", frame: frame(`{uuid:"u",type:"t",content:1}`)},
		{name: "not JSON/single quotes", frame: frame(`{'uuid':'u','type':'t','content':1}`)},
		{name: "not JSON/missing value keeps what came before", frame: frame(`{"uuid":"u","type":"t","content":}`),
			wantUUID: "u", wantType: "t"},
		{name: "not JSON/trailing comma", frame: frame(`{"uuid":"u","type":"t","content":1,}`),
			wantUUID: "u", wantType: "t"},
		{name: "not JSON/trailing garbage", frame: frame(`{"uuid":"u","type":"t","content":1}xyz`),
			wantUUID: "u", wantType: "t"},
		{name: "not JSON/two objects", frame: frame(`{"uuid":"u1","type":"t1","content":1}{"uuid":"u2","type":"t2","content":2}`),
			wantUUID: "u1", wantType: "t1"},
		{name: "not JSON/byte order mark", frame: frame("\xef\xbb\xbf{\"uuid\":\"u\",\"type\":\"t\",\"content\":1}")},
		{name: "not JSON/NaN content", frame: frame(`{"uuid":"u","type":"t","content":NaN}`),
			wantUUID: "u", wantType: "t"},

		// Binary garbage.
		{name: "binary/NUL bytes", frame: []byte{0, 0, 0, 0}},
		{name: "binary/high bytes", frame: []byte{0xff, 0xfe, 0xfd, 0x80}},
		{name: "binary/invalid UTF-8", frame: frame("\xc3\x28\xa0\xa1\xe2\x28\xa1")},
		{name: "binary/random 1", frame: randomBytes(1, 64)},
		{name: "binary/random 2", frame: randomBytes(2, 1024)},
		{name: "binary/random 3", frame: randomBytes(3, 7)},
		{name: "binary/brace then garbage", frame: append([]byte("{"), randomBytes(4, 100)...)},
		{name: "binary/valid prefix then garbage", frame: append([]byte(`{"uuid":"u","type":"t","content":`), 0xff, 0x00, 0x01),
			wantUUID: "u", wantType: "t"},

		// JSON that is not an object.
		{name: "not an object/empty array", frame: frame(`[]`)},
		{name: "not an object/array of envelopes", frame: frame(`[{"uuid":"u","type":"t","content":1}]`)},
		{name: "not an object/string", frame: frame(`"x"`)},
		{name: "not an object/number", frame: frame(`42`)},
		{name: "not an object/null", frame: frame(`null`)},
		{name: "not an object/true", frame: frame(`true`)},
		{name: "not an object/false with whitespace", frame: frame(" false ")},

		// Missing fields: whatever is there is echoed.
		{name: "missing/all", frame: frame(`{}`)},
		{name: "missing/uuid", frame: frame(`{"type":"t","content":1}`), wantType: "t"},
		{name: "missing/type", frame: frame(`{"uuid":"u","content":1}`), wantUUID: "u"},
		{name: "missing/content", frame: frame(`{"uuid":"u","type":"t"}`), wantUUID: "u", wantType: "t"},
		{name: "missing/keys are case-sensitive", frame: frame(`{"UUID":"u","Type":"t","Content":1}`)},

		// uuid not a string.
		{name: "uuid/number", frame: frame(`{"uuid":5,"type":"t","content":1}`), wantType: "t"},
		{name: "uuid/object", frame: frame(`{"uuid":{"a":"u"},"type":"t","content":1}`), wantType: "t"},
		{name: "uuid/array", frame: frame(`{"uuid":["u"],"type":"t","content":1}`), wantType: "t"},
		{name: "uuid/null", frame: frame(`{"uuid":null,"type":"t","content":1}`), wantType: "t"},
		{name: "uuid/bool", frame: frame(`{"uuid":true,"type":"t","content":1}`), wantType: "t"},
		{name: "uuid/huge number", frame: frame(`{"uuid":1e999999,"type":"t","content":1}`), wantType: "t"},

		// type not a string.
		{name: "type/number", frame: frame(`{"uuid":"u","type":5,"content":1}`), wantUUID: "u"},
		{name: "type/object", frame: frame(`{"uuid":"u","type":{},"content":1}`), wantUUID: "u"},
		{name: "type/array", frame: frame(`{"uuid":"u","type":[],"content":1}`), wantUUID: "u"},
		{name: "type/null", frame: frame(`{"uuid":"u","type":null,"content":1}`), wantUUID: "u"},
		{name: "both not strings", frame: frame(`{"uuid":1,"type":2,"content":3}`)},

		// Too long: the long field is not echoed, the other one is.
		{name: "uuid too long", frame: frame(`{"uuid":"` + long257 + `","type":"t","content":1}`), wantType: "t"},
		{name: "uuid too long in bytes, not runes", frame: frame(`{"uuid":"` + strings.Repeat("é", 129) + `","type":"t","content":1}`), wantType: "t"},
		{name: "type too long", frame: frame(`{"uuid":"u","type":"` + type129 + `","content":1}`), wantUUID: "u"},
		{name: "uuid and type too long", frame: frame(`{"uuid":"` + long257 + `","type":"` + type129 + `","content":1}`)},

		// Nested or truncated: what appears at the top level before the damage is echoed.
		{name: "truncated/inside content", frame: frame(`{"uuid":"u1","type":"t1","content":{"a":[1,2`),
			wantUUID: "u1", wantType: "t1"},
		{name: "truncated/inside type", frame: frame(`{"uuid":"u1","type":"get_le`), wantUUID: "u1"},
		{name: "truncated/after type", frame: frame(`{"uuid":"u1","type":"t1"`), wantUUID: "u1", wantType: "t1"},
		{name: "truncated/inside uuid", frame: frame(`{"uuid":"u1`)},
		{name: "truncated/after uuid key", frame: frame(`{"uuid":`)},
		{name: "truncated/content first", frame: frame(`{"content":{"x":1},"uuid":"u1","type":"t1","extra":[`),
			wantUUID: "u1", wantType: "t1"},
		{name: "truncated/inner uuid is not the envelope's", frame: frame(`{"content":{"uuid":"inner","type":"inner"`)},
		{name: "truncated/inner uuid then outer", frame: frame(`{"content":{"uuid":"inner"},"uuid":"outer","type":"t","x":`),
			wantUUID: "outer", wantType: "t"},
		{name: "truncated/uuid not a string then type", frame: frame(`{"uuid":5,"type":"t1","content":[`), wantType: "t1"},
		{name: "too deep/10001 brackets in content", frame: frame(`{"uuid":"u","type":"t","content":` + deep + strings.Repeat("]", 10001) + `}`),
			wantUUID: "u", wantType: "t"},
		{name: "too deep/unclosed brackets in content", frame: frame(`{"uuid":"u","type":"t","content":` + deep),
			wantUUID: "u", wantType: "t"},
		{name: "too deep/brackets only", frame: frame(deep)},
		{name: "too deep/objects", frame: frame(strings.Repeat(`{"a":`, 10001))},
	}
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := DecodeRequest(tc.frame)
			if tc.ok {
				if err != nil {
					t.Fatalf("DecodeRequest(%.200q) = error %v, want success", tc.frame, err)
				}
				if req.UUID != tc.wantUUID || req.Type != tc.wantType {
					t.Errorf("uuid, type = %q, %q; want %q, %q", req.UUID, req.Type, tc.wantUUID, tc.wantType)
				}
				if !json.Valid(req.Content) {
					t.Errorf("content %.200q is not valid JSON", req.Content)
				}
				var got, want bytes.Buffer
				if err := json.Compact(&got, req.Content); err != nil {
					t.Fatalf("compact content: %v", err)
				}
				if err := json.Compact(&want, []byte(tc.wantContent)); err != nil {
					t.Fatalf("compact wanted content: %v", err)
				}
				if got.String() != want.String() {
					t.Errorf("content = %.200s, want %.200s", got.String(), want.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeRequest(%.200q) succeeded with %+v, want MALFORMED", tc.frame, req)
			}
			if err.Code != core.Malformed {
				t.Errorf("code = %v, want %v", err.Code, core.Malformed)
			}
			if !strings.HasPrefix(err.Msg, "Malformed message") {
				t.Errorf("message = %q, want it to start with \"Malformed message\"", err.Msg)
			}
			if req.UUID != tc.wantUUID || req.Type != tc.wantType {
				t.Errorf("echoed uuid, type = %q, %q; want %q, %q", req.UUID, req.Type, tc.wantUUID, tc.wantType)
			}
			if req.Content != nil {
				t.Errorf("content = %.100q on failure, want nil", req.Content)
			}
		})
	}
}

// TestDecodeRequestInvalidUTF8InStrings checks that raw invalid UTF-8 inside the uuid and type
// strings never comes back out: it is replaced, so what is echoed is always valid UTF-8.
func TestDecodeRequestInvalidUTF8InStrings(t *testing.T) {
	t.Parallel()
	frames := [][]byte{
		[]byte("{\"uuid\":\"a\xffb\",\"type\":\"t\xc3\",\"content\":1}"),
		[]byte(`{"uuid":"\ud800","type":"\udfff\ud83d","content":1}`), // lone surrogates
		[]byte("{\"uuid\":\"a\xffb\",\"type\":\"t\xc3\",\"content\":"),
	}
	for _, f := range frames {
		req, err := DecodeRequest(f)
		if err != nil && err.Code != core.Malformed {
			t.Errorf("DecodeRequest(%q): code %v", f, err.Code)
		}
		if !utf8.ValidString(req.UUID) || !utf8.ValidString(req.Type) {
			t.Errorf("DecodeRequest(%q) returned invalid UTF-8: %q, %q", f, req.UUID, req.Type)
		}
		if req.UUID == "" || req.Type == "" {
			t.Errorf("DecodeRequest(%q) lost the uuid or type: %q, %q", f, req.UUID, req.Type)
		}
	}
}

// TestDecodeRequestStringsAreCopies checks the echoed strings do not alias the frame: a caller
// that reuses the frame's buffer must not change the reply.
func TestDecodeRequestStringsAreCopies(t *testing.T) {
	t.Parallel()
	f := []byte(`{"uuid":"abc","type":"def","content":[`)
	req, _ := DecodeRequest(f)
	for i := range f {
		f[i] = 'x'
	}
	if req.UUID != "abc" || req.Type != "def" {
		t.Fatalf("after mutating the frame: uuid, type = %q, %q", req.UUID, req.Type)
	}
}

func TestPeek(t *testing.T) {
	t.Parallel()
	long257 := strings.Repeat("u", 257)
	type129 := strings.Repeat("t", 129)
	cases := []struct {
		name, frame        string
		wantUUID, wantType string
	}{
		{"empty", ``, "", ""},
		{"garbage", "\xff\x00garbage", "", ""},
		{"not an object", `["uuid","u"]`, "", ""},
		{"string", `"uuid"`, "", ""},
		{"complete frame", `{"uuid":"u","type":"t","content":{}}`, "u", "t"},
		{"whitespace before", " \n\t{ \"uuid\" : \"u\" , \"type\" : \"t\" ", "u", "t"},
		{"truncated after type", `{"uuid":"u","type":"t"`, "u", "t"},
		{"truncated after uuid string", `{"uuid":"u1"`, "u1", ""},
		{"truncated inside uuid", `{"uuid":"u1`, "", ""},
		{"truncated inside type", `{"uuid":"u","type":"get_le`, "u", ""},
		{"truncated in content", `{"type":"t","uuid":"u","content":{"a":`, "u", "t"},
		{"content first", `{"content":[1,2,3],"uuid":"u","type":"t","x":[`, "u", "t"},
		{"inner fields are not taken", `{"content":{"uuid":"inner","type":"inner"`, "", ""},
		{"inner then outer", `{"content":{"uuid":"inner"},"uuid":"outer"`, "outer", ""},
		{"uuid not a string is skipped", `{"uuid":5,"type":"t","content":`, "", "t"},
		{"uuid null is skipped", `{"uuid":null,"type":"t"`, "", "t"},
		{"uuid container stops the scan", `{"uuid":{"a":1},"type":"t"}`, "", ""},
		{"type container stops the scan", `{"uuid":"u","type":["t"],"content":1}`, "u", ""},
		{"uuid too long is not taken", `{"uuid":"` + long257 + `","type":"t"`, "", "t"},
		{"type too long is not taken", `{"uuid":"u","type":"` + type129 + `"`, "u", ""},
		{"syntax error stops the scan", `{"uuid":"u",,"type":"t"}`, "u", ""},
		{"garbage after a complete object", `{"uuid":"u","type":"t","content":1}garbage`, "u", "t"},
		{"deep nesting in content", `{"uuid":"u","type":"t","content":` + strings.Repeat("[", 20000), "u", "t"},
		{"deep nesting before uuid", `{"content":` + strings.Repeat("[", 20000) + `,"uuid":"u"`, "", ""},
		{"unicode", `{"uuid":"é😀","type":"\u6f22"`, "é😀", "漢"},
		{"prefix of an oversize frame", `{"uuid":"big","type":"get_leosac_version","content":{"pad":"xxxxxxxx`, "big", "get_leosac_version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, typ := Peek([]byte(tc.frame))
			if u != tc.wantUUID || typ != tc.wantType {
				t.Errorf("Peek(%.80q) = %q, %q; want %q, %q", tc.frame, u, typ, tc.wantUUID, tc.wantType)
			}
		})
	}
}

// TestPeekAgreesWithDecodeRequestOnFailures checks the rule that DecodeRequest echoes exactly
// what Peek recovers whenever the frame starts like an object but is not valid JSON.
func TestPeekAgreesWithDecodeRequestOnTruncations(t *testing.T) {
	t.Parallel()
	full := `{"uuid":"9c33e119-1d6f-4f13-94e2-d9b670f63874","type":"create_auth_token","content":{"username":"admin","password":"x"}}`
	uuidEnd := strings.Index(full, `,"type"`)
	typeEnd := strings.Index(full, `,"content"`)
	for n := 1; n < len(full); n++ {
		prefix := []byte(full[:n])
		req, err := DecodeRequest(prefix)
		if err == nil || err.Code != core.Malformed {
			t.Fatalf("DecodeRequest(%q) = %v, want MALFORMED", prefix, err)
		}
		wantUUID, wantType := "", ""
		if n >= uuidEnd {
			wantUUID = "9c33e119-1d6f-4f13-94e2-d9b670f63874"
		}
		if n >= typeEnd {
			wantType = "create_auth_token"
		}
		if req.UUID != wantUUID || req.Type != wantType {
			t.Errorf("DecodeRequest(%q) echoed %q, %q; want %q, %q", prefix, req.UUID, req.Type, wantUUID, wantType)
		}
		if u, typ := Peek(prefix); u != wantUUID || typ != wantType {
			t.Errorf("Peek(%q) = %q, %q; want %q, %q", prefix, u, typ, wantUUID, wantType)
		}
	}
}
