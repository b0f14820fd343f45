package wsapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"gatehouse/core"
)

// maxSeed bounds the seeds taken from the unit-test table. The very deep frames (20–50 KB)
// stay in TestDecodeRequest: as seeds, the fuzzer spends most of its time minimizing their
// mutants byte by byte, which is quadratic. Shallower nesting is seeded below.
const maxSeed = 4 << 10

// addSeeds adds the frames of the unit-test table and a few more shapes to a fuzz corpus.
func addSeeds(f *testing.F, add func([]byte)) {
	for _, tc := range decodeCases() {
		if len(tc.frame) <= maxSeed {
			add(tc.frame)
		}
	}
	for _, s := range []string{
		`{"uuid":"9c33e119-1d6f-4f13-94e2-d9b670f63874","type":"create_auth_token","content":{"username":"admin","password":"admin"}}`,
		`{"uuid":"a","uuid":"b","type":"t","content":1}`,
		`{"uuid":"a","uuid":5,"type":"t","content":1}`,
		`{"uuid":[],"uuid":"b","type":"t","content":1}`,
		`{"uuid":"\ud800","type":"\udfff","content":"\u0000"}`,
		"{\"uuid\":\"a\xffb\",\"type\":\"t\xc3\",\"content\":1}",
		`{"uuid":"u","type":"t","content":{"uuid":"inner","type":"inner"}}`,
		`{"uuid":"u","type":"t","content":123456789012345678901234567890e123456789}`,
		`{"uuid":"u","type":"t","content":-0.0e-0}`,
		`{"uuid":"u","type":"t","content":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
		`{"uuid":"u","type":"t","content":{"a":{"b":{"c":{"d":[1,2,{"e":null}]}}}}}`,
		`{"uuid"` + strings.Repeat(" ", 100) + `:"u","type":"t","content":1}`,
		`{"uuid":"u","type":"t","content":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
		`{"uuid":"u","type":"t","content":` + strings.Repeat(`{"a":`, 200),
		strings.Repeat("[", 500),
	} {
		add([]byte(s))
	}
}

// FuzzDecodeRequest checks, for any frame: DecodeRequest does not panic; on success uuid and
// type are valid UTF-8 within the limits and Content is valid JSON, and they agree with an
// independent decoding of the frame; on failure the code is MALFORMED, what is echoed is within
// the limits, and a frame that is a valid envelope was not refused.
func FuzzDecodeRequest(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		req, derr := DecodeRequest(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatalf("DecodeRequest modified its input")
		}
		checkShort(t, "uuid", req.UUID, maxUUIDLen)
		checkShort(t, "type", req.Type, maxTypeLen)

		// The oracle: the frame decoded as a generic JSON object (numbers kept as text).
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(frame))
		dec.UseNumber()
		isObject := json.Valid(frame) && dec.Decode(&m) == nil && m != nil
		oracleUUID, uuidOK := shortString(m, "uuid", maxUUIDLen)
		oracleType, typeOK := shortString(m, "type", maxTypeLen)
		_, hasContent := m["content"]

		if derr == nil {
			if !json.Valid(frame) {
				t.Fatalf("accepted a frame that is not valid JSON: %q", frame)
			}
			if len(req.Content) == 0 || !json.Valid(req.Content) {
				t.Fatalf("accepted content %q is not valid JSON (frame %q)", req.Content, frame)
			}
			if !isObject || !uuidOK || !typeOK || !hasContent {
				t.Fatalf("accepted %q but the oracle says it is not an envelope", frame)
			}
			if req.UUID != oracleUUID || req.Type != oracleType {
				t.Fatalf("decoded uuid, type %q, %q; oracle says %q, %q", req.UUID, req.Type, oracleUUID, oracleType)
			}
			return
		}
		if derr.Code != core.Malformed {
			t.Fatalf("failure code %v, want MALFORMED (frame %q)", derr.Code, frame)
		}
		if derr.Msg == "" {
			t.Fatalf("failure without a message (frame %q)", frame)
		}
		if req.Content != nil {
			t.Fatalf("content %q returned with a failure", req.Content)
		}
		if isObject && uuidOK && typeOK && hasContent {
			t.Fatalf("refused a valid envelope %q: %v", frame, derr)
		}
		// A valid JSON object has its good fields echoed.
		if isObject {
			if uuidOK && req.UUID != oracleUUID {
				t.Fatalf("echoed uuid %q, want %q (frame %q)", req.UUID, oracleUUID, frame)
			}
			if typeOK && req.Type != oracleType {
				t.Fatalf("echoed type %q, want %q (frame %q)", req.Type, oracleType, frame)
			}
		}
		pu, pt := Peek(frame)
		checkShort(t, "Peek uuid", pu, maxUUIDLen)
		checkShort(t, "Peek type", pt, maxTypeLen)
	})
}

// FuzzPeek checks that Peek never panics and returns valid strings within the limits for any
// input, and that it recovers the uuid and type of an envelope cut at any point after them, or
// followed by garbage.
func FuzzPeek(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b, "u", "t") })
	f.Add([]byte{}, "9c33e119-1d6f-4f13-94e2-d9b670f63874", "get_leosac_version")
	f.Add([]byte(`"content":{}}`), "é😀", "漢\u2028")
	f.Add([]byte("\xff"), "a\xffb", "\"quoted\"\\")
	f.Add([]byte(`,"uuid":"later"`), strings.Repeat("u", 256), strings.Repeat("t", 128))
	f.Add([]byte(`[`), strings.Repeat("u", 257), strings.Repeat("t", 129))
	f.Fuzz(func(t *testing.T, data []byte, uuid, typ string) {
		u, ty := Peek(data)
		checkShort(t, "uuid", u, maxUUIDLen)
		checkShort(t, "type", ty, maxTypeLen)

		if len(uuid) > 1024 || len(typ) > 1024 {
			return
		}
		// The envelope's start, then every cut of it, then it followed by garbage.
		eu, _ := json.Marshal(uuid)
		et, _ := json.Marshal(typ)
		var wantU, wantT string
		_ = json.Unmarshal(eu, &wantU) // invalid UTF-8 becomes U+FFFD, as Peek sees it
		_ = json.Unmarshal(et, &wantT)
		if len(wantU) > maxUUIDLen {
			wantU = ""
		}
		if len(wantT) > maxTypeLen {
			wantT = ""
		}
		head := []byte(`{"uuid":` + string(eu))
		start := append(append(head, `,"type":`...), et...)
		for _, n := range cutPoints(len(head), len(start)) {
			u, ty := Peek(start[:n])
			want1, want2 := "", ""
			if n >= len(head) {
				want1 = wantU
			}
			if n == len(start) {
				want2 = wantT
			}
			if u != want1 || ty != want2 {
				t.Fatalf("Peek(%q) = %q, %q; want %q, %q", start[:n], u, ty, want1, want2)
			}
		}
		garbled := append(append(bytes.Clone(start), ",\x00"...), data...)
		if u, ty := Peek(garbled); u != wantU || ty != wantT {
			t.Fatalf("Peek(%q) = %q, %q; want %q, %q", garbled, u, ty, wantU, wantT)
		}
		req, derr := DecodeRequest(garbled)
		if derr == nil || derr.Code != core.Malformed || req.UUID != wantU || req.Type != wantT {
			t.Fatalf("DecodeRequest(%q) = %+v, %v; want MALFORMED echoing %q, %q", garbled, req, derr, wantU, wantT)
		}
	})
}

// cutPoints returns the lengths at which to cut an envelope start whose uuid ends at uuidEnd
// and type at end: all of them for short ones, else those around the two ends and a spread of
// others (checking every cut is quadratic, which slows the fuzzer to a crawl).
func cutPoints(uuidEnd, end int) []int {
	if end <= 64 {
		out := make([]int, end+1)
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for _, p := range []int{0, uuidEnd, end} {
		for n := p - 3; n <= p+3; n++ {
			if n >= 0 && n <= end {
				out = append(out, n)
			}
		}
	}
	for n := 1; n < end; n += end/16 + 1 {
		out = append(out, n)
	}
	return out
}

func checkShort(t *testing.T, what, s string, limit int) {
	t.Helper()
	if len(s) > limit {
		t.Fatalf("%s of %d bytes, over the limit %d", what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", what, s)
	}
}

// shortString returns m[key] when it is a string of at most limit bytes.
func shortString(m map[string]any, key string, limit int) (string, bool) {
	s, ok := m[key].(string)
	if !ok || len(s) > limit {
		return "", false
	}
	return s, true
}
