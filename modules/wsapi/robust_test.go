package wsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

const (
	statusSuccess          = int(core.Success)
	statusPermissionDenied = int(core.PermissionDenied)
	statusMalformed        = int(core.Malformed)
	statusInvalidCall      = int(core.InvalidCall)
	statusInvalidArgument  = int(core.InvalidArgument)

	anonymousLimit = 64 << 10
	loggedInLimit  = 1 << 20
)

// replies reads, in arrival order, the replies to frames written raw with writeFrame. Those
// frames are not registered with the client, so every reply to them lands in the client's push
// list; replies to Client.Call go to their caller and do not disturb the order.
type replies struct {
	c    *wstest.Client
	next int
}

func newReplies(c *wstest.Client) *replies { return &replies{c: c} }

// Next waits (10 s) for the next reply.
func (r *replies) Next(t testing.TB) wstest.Reply {
	t.Helper()
	var got wstest.Reply
	coretest.Eventually(t, 10*time.Second, func() error {
		if ps := r.c.Pushes(); len(ps) > r.next {
			got = ps[r.next]
			return nil
		}
		if err := r.c.Err(); err != nil {
			// The read loop appends before it ends: look once more.
			if ps := r.c.Pushes(); len(ps) > r.next {
				got = ps[r.next]
				return nil
			}
			t.Fatalf("connection ended while waiting for reply #%d: %v", r.next, err)
		}
		return fmt.Errorf("reply #%d not received", r.next)
	})
	r.next++
	return got
}

// writeFrame writes one frame as is, as a text or binary message.
func writeFrame(t testing.TB, c *wstest.Client, typ websocket.MessageType, frame []byte) {
	t.Helper()
	if err := writeFrameErr(c, typ, frame); err != nil {
		t.Fatalf("write %d-byte frame: %v", len(frame), err)
	}
}

func writeFrameErr(c *wstest.Client, typ websocket.MessageType, frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Conn.Write(ctx, typ, frame)
}

// expectVersion checks that the connection still answers get_leosac_version.
func expectVersion(t testing.TB, c *wstest.Client) {
	t.Helper()
	r := c.Call("get_leosac_version", map[string]any{})
	if r.StatusCode != statusSuccess {
		t.Fatalf("get_leosac_version: status %d %q", r.StatusCode, r.StatusString)
	}
	var v struct {
		Version string `json:"version"`
	}
	r.Decode(t, &v)
	if v.Version == "" {
		t.Fatalf("get_leosac_version: no version in %s", r.Content)
	}
}

// expectMalformed checks a MALFORMED reply and what it echoes.
func expectMalformed(t testing.TB, r wstest.Reply, wantUUID, wantType string) {
	t.Helper()
	if r.StatusCode != statusMalformed {
		t.Errorf("status_code = %d %q, want %d (MALFORMED)", r.StatusCode, r.StatusString, statusMalformed)
	}
	if r.UUID != wantUUID || r.Type != wantType {
		t.Errorf("echoed uuid, type = %q, %q; want %q, %q", r.UUID, r.Type, wantUUID, wantType)
	}
	if r.StatusString == "" {
		t.Errorf("MALFORMED reply without a status_string")
	}
	if c := string(bytes.TrimSpace(r.Content)); c != "null" {
		t.Errorf("MALFORMED reply content = %s, want null", c)
	}
}

func expectStatus(t testing.TB, r wstest.Reply, want int, what string) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s: status_code = %d %q (content %s), want %d", what, r.StatusCode, r.StatusString, r.Content, want)
	}
}

type malformedCase struct {
	name               string
	frame              []byte
	binary             bool
	wantUUID, wantType string
}

func malformedCases() []malformedCase {
	rng := rand.New(rand.NewPCG(7, 11))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	deep := strings.Repeat("[", 10001)
	cases := []malformedCase{
		{name: "not JSON", frame: []byte(`hello`)},
		{name: "empty frame", frame: []byte(``)},
		{name: "whitespace only", frame: []byte(" \n\t ")},
		{name: "unquoted keys", frame: []byte(`{uuid:"u",type:"t",content:{}}`)},
		{name: "array", frame: []byte(`[]`)},
		{name: "array of an envelope", frame: []byte(`[{"uuid":"m-arr","type":"get_leosac_version","content":{}}]`)},
		{name: "string", frame: []byte(`"x"`)},
		{name: "number", frame: []byte(`42`)},
		{name: "null", frame: []byte(`null`)},
		{name: "true", frame: []byte(`true`)},
		{name: "empty object", frame: []byte(`{}`)},
		{name: "missing uuid", frame: []byte(`{"type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "missing type", frame: []byte(`{"uuid":"m-1","content":{}}`), wantUUID: "m-1"},
		{name: "missing content", frame: []byte(`{"uuid":"m-2","type":"get_leosac_version"}`), wantUUID: "m-2", wantType: "get_leosac_version"},
		{name: "uuid number", frame: []byte(`{"uuid":5,"type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "uuid object", frame: []byte(`{"uuid":{"a":"b"},"type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "uuid array", frame: []byte(`{"uuid":["m"],"type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "uuid null", frame: []byte(`{"uuid":null,"type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "type number", frame: []byte(`{"uuid":"m-3","type":5,"content":{}}`), wantUUID: "m-3"},
		{name: "type object", frame: []byte(`{"uuid":"m-4","type":{},"content":{}}`), wantUUID: "m-4"},
		{name: "type array", frame: []byte(`{"uuid":"m-5","type":["get_leosac_version"],"content":{}}`), wantUUID: "m-5"},
		{name: "type null", frame: []byte(`{"uuid":"m-6","type":null,"content":{}}`), wantUUID: "m-6"},
		{name: "uuid too long", frame: []byte(`{"uuid":"` + strings.Repeat("u", 257) + `","type":"get_leosac_version","content":{}}`), wantType: "get_leosac_version"},
		{name: "type too long", frame: []byte(`{"uuid":"m-7","type":"` + strings.Repeat("t", 129) + `","content":{}}`), wantUUID: "m-7"},
		{name: "truncated", frame: []byte(`{"uuid":"m-8","type":"get_leosac_version","content":{"a":[1,`), wantUUID: "m-8", wantType: "get_leosac_version"},
		{name: "truncated inside type", frame: []byte(`{"uuid":"m-9","type":"get_leo`), wantUUID: "m-9"},
		{name: "trailing garbage", frame: []byte(`{"uuid":"m-10","type":"get_leosac_version","content":{}} trailing`), wantUUID: "m-10", wantType: "get_leosac_version"},
		{name: "two envelopes in one frame", frame: []byte(`{"uuid":"m-11","type":"get_leosac_version","content":{}}{"uuid":"m-12","type":"get_leosac_version","content":{}}`), wantUUID: "m-11", wantType: "get_leosac_version"},
		{name: "too deep", frame: []byte(`{"uuid":"m-13","type":"get_leosac_version","content":` + deep + strings.Repeat("]", 10001) + `}`), wantUUID: "m-13", wantType: "get_leosac_version"},
		{name: "deep brackets only", frame: []byte(deep)},
		{name: "invalid UTF-8 in a text frame", frame: []byte("\xc3\x28\xa0\xa1\xff\xfe")},
		{name: "binary garbage", frame: garbage(512), binary: true},
		{name: "binary NUL bytes", frame: make([]byte, 64), binary: true},
		{name: "binary truncated envelope", frame: []byte(`{"uuid":"m-14","type":"get_leosac_version","content":[`), binary: true, wantUUID: "m-14", wantType: "get_leosac_version"},
		{name: "binary missing content", frame: []byte(`{"uuid":"m-15","type":"whoami"}`), binary: true, wantUUID: "m-15", wantType: "whoami"},
		{name: "text garbage", frame: garbage(300)},
	}
	return cases
}

// TestEveryMalformedFrameIsAnsweredMalformedAndTheConnectionKeepsWorking sends every kind of
// bad frame, one after the other on one connection, each followed by a good call on the same
// connection. It does it before and after login: a bad frame never logs the client out.
func TestEveryMalformedFrameIsAnsweredMalformedAndTheConnectionKeepsWorking(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	for _, loggedIn := range []bool{false, true} {
		t.Run(fmt.Sprintf("logged_in=%v", loggedIn), func(t *testing.T) {
			c := wstest.Dial(t, srv.WSURL)
			if loggedIn {
				c.Login("admin", coretest.AdminPassword)
			}
			rs := newReplies(c)
			for _, tc := range malformedCases() {
				typ := websocket.MessageText
				if tc.binary {
					typ = websocket.MessageBinary
				}
				writeFrame(t, c, typ, tc.frame)
				r := rs.Next(t)
				t.Run(tc.name, func(t *testing.T) { expectMalformed(t, r, tc.wantUUID, tc.wantType) })
				expectVersion(t, c)
			}
			if loggedIn {
				expectStatus(t, c.Call("whoami", map[string]any{}), statusSuccess, "whoami after the malformed frames")
			}
		})
	}
}

// TestBinaryFramesAreHandledLikeTextFrames sends the same requests as binary and as text
// messages: the answers are the same, and a login made over binary frames holds.
func TestBinaryFramesAreHandledLikeTextFrames(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	rs := newReplies(c)
	frames := []struct {
		frame      string
		wantStatus int
	}{
		{`{"uuid":"%s","type":"get_leosac_version","content":{}}`, statusSuccess},
		{`{"uuid":"%s","type":"no.such.type","content":{}}`, statusInvalidCall},
		{`{"uuid":"%s","type":"system_overview","content":{}}`, statusPermissionDenied},
		{`{"uuid":"%s","type":"create_auth_token","content":[]}`, statusInvalidArgument},
		{`{"uuid":"%s","type":"get_leosac_version"}`, statusMalformed},
	}
	for i, f := range frames {
		var got [2]wstest.Reply
		for j, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			id := fmt.Sprintf("bin-%d-%d", i, j)
			writeFrame(t, c, typ, []byte(fmt.Sprintf(f.frame, id)))
			got[j] = rs.Next(t)
			if got[j].UUID != id {
				t.Fatalf("%s frame %d: reply uuid %q, want %q", typ, i, got[j].UUID, id)
			}
			expectStatus(t, got[j], f.wantStatus, fmt.Sprintf("%s frame %q", typ, f.frame))
		}
		if got[0].Type != got[1].Type || got[0].StatusString != got[1].StatusString ||
			!bytes.Equal(got[0].Content, got[1].Content) {
			t.Errorf("text and binary answers differ:\n text   %+v\n binary %+v", got[0], got[1])
		}
	}

	login, _ := json.Marshal(map[string]any{"uuid": "bin-login", "type": "create_auth_token",
		"content": map[string]string{"username": "admin", "password": coretest.AdminPassword}})
	writeFrame(t, c, websocket.MessageBinary, login)
	r := rs.Next(t)
	expectStatus(t, r, statusSuccess, "create_auth_token over a binary frame")
	var res struct {
		Status int    `json:"status"`
		Token  string `json:"token"`
	}
	r.Decode(t, &res)
	if r.UUID != "bin-login" || res.Status != 0 || res.Token == "" {
		t.Fatalf("binary login: %+v", r)
	}
	writeFrame(t, c, websocket.MessageBinary, []byte(`{"uuid":"bin-whoami","type":"whoami","content":{}}`))
	r = rs.Next(t)
	expectStatus(t, r, statusSuccess, "whoami over a binary frame")
	var who struct {
		Username string `json:"username"`
	}
	r.Decode(t, &who)
	if who.Username != "admin" {
		t.Fatalf("whoami over binary: %s", r.Content)
	}
}

// TestCallErrorStatusCodes covers INVALID_CALL and the PERMISSION_DENIED answers of the
// dispatcher, with uuid and type echoed.
func TestCallErrorStatusCodes(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)

	check := func(typ string, content any, want int) {
		t.Helper()
		r := c.Call(typ, content)
		expectStatus(t, r, want, typ)
		if r.Type != typ {
			t.Errorf("%s: type echoed as %q", typ, r.Type)
		}
		if want != statusSuccess && r.StatusString == "" {
			t.Errorf("%s: error %d without a status_string", typ, r.StatusCode)
		}
	}

	// Before login.
	check("no.such.type", map[string]any{}, statusInvalidCall)
	check("", map[string]any{}, statusInvalidCall)
	check("GET_LEOSAC_VERSION", map[string]any{}, statusInvalidCall)
	check("get_leosac_version ", map[string]any{}, statusInvalidCall)
	check("system_overview", map[string]any{}, statusPermissionDenied)
	check("whoami", map[string]any{}, statusPermissionDenied)
	check("logout", map[string]any{}, statusPermissionDenied)
	check("password_change", map[string]any{"new_password": "whatever-123"}, statusPermissionDenied)
	check("get_leosac_version", nil, statusSuccess)

	// After login.
	c.Login("admin", coretest.AdminPassword)
	check("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword}, statusPermissionDenied)
	check("authenticate_with_token", map[string]string{"token": "00000000-0000-4000-8000-000000000000"}, statusPermissionDenied)
	check("no.such.type", map[string]any{}, statusInvalidCall)
	check("system_overview", map[string]any{}, statusSuccess)
	check("whoami", map[string]any{}, statusSuccess)
	check("get_leosac_version", map[string]any{}, statusSuccess)
}

// TestWrongContentTypesAreInvalidArgument sends contents of the wrong JSON type: each is
// INVALID_ARGUMENT, the offending value is not echoed, and the connection keeps working (and is
// not throttled: a decoding error is not a failed login).
func TestWrongContentTypesAreInvalidArgument(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)

	const marker = 987654321
	bad := []struct {
		typ     string
		content string
	}{
		{"create_auth_token", `{"username": 987654321, "password": "x"}`},
		{"create_auth_token", `{"username": "admin", "password": 987654321}`},
		{"create_auth_token", `{"username": "admin", "password": {"a": 987654321}}`},
		{"create_auth_token", `{"username": ["admin"], "password": "x"}`},
		{"create_auth_token", `{"username": true}`},
		{"create_auth_token", `[]`},
		{"create_auth_token", `[987654321]`},
		{"create_auth_token", `"x"`},
		{"create_auth_token", `987654321`},
		{"create_auth_token", `true`},
		{"authenticate_with_token", `{"token": 987654321}`},
		{"authenticate_with_token", `{"token": []}`},
		{"authenticate_with_token", `"987654321"`},
	}
	// More than the per-user and per-address failed-login limits, to show none of them counted.
	for round := 0; round < 2; round++ {
		for i, b := range bad {
			id := fmt.Sprintf("bad-%d-%d", round, i)
			r, err := c.SendRaw(id, []byte(fmt.Sprintf(`{"uuid":%q,"type":%q,"content":%s}`, id, b.typ, b.content)))
			if err != nil {
				t.Fatalf("%s %s: %v", b.typ, b.content, err)
			}
			expectStatus(t, r, statusInvalidArgument, fmt.Sprintf("%s %s", b.typ, b.content))
			if strings.Contains(r.StatusString, fmt.Sprint(marker)) {
				t.Errorf("%s %s: status_string echoes the value: %q", b.typ, b.content, r.StatusString)
			}
			expectVersion(t, c)
		}
	}
	c.Login("admin", coretest.AdminPassword)

	loggedIn := []string{
		`{"new_password": 987654321}`,
		`{"user_id": "1", "new_password": "abcdefgh-123"}`,
		`{"current_password": ["x"], "new_password": "abcdefgh-123"}`,
		`[]`,
		`"x"`,
	}
	for i, content := range loggedIn {
		id := fmt.Sprintf("pc-%d", i)
		r, err := c.SendRaw(id, []byte(fmt.Sprintf(`{"uuid":%q,"type":"password_change","content":%s}`, id, content)))
		if err != nil {
			t.Fatalf("password_change %s: %v", content, err)
		}
		expectStatus(t, r, statusInvalidArgument, "password_change "+content)
		expectStatus(t, c.Call("whoami", map[string]any{}), statusSuccess, "whoami after a bad password_change")
	}
}

// sizedFrame returns a get_leosac_version request of exactly size bytes whose uuid comes first.
func sizedFrame(t testing.TB, id string, size int) []byte {
	t.Helper()
	head := `{"uuid":"` + id + `","type":"get_leosac_version","content":{"pad":"`
	tail := `"}}`
	n := size - len(head) - len(tail)
	if n < 0 {
		t.Fatalf("frame size %d too small", size)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte("x"), n)...)
	b = append(b, tail...)
	return b
}

// expectOversize sends a frame over the limit and checks the MALFORMED answer (echoing what is
// at the start of the frame) and the close with 1009 that follows.
func expectOversize(t *testing.T, c *wstest.Client, rs *replies, frame []byte, wantUUID, wantType string) {
	t.Helper()
	// The server stops reading mid-frame; the write may or may not complete before it closes.
	if err := writeFrameErr(c, websocket.MessageText, frame); err != nil {
		t.Logf("write of the %d-byte frame: %v (the server closed first)", len(frame), err)
	}
	expectMalformed(t, rs.Next(t), wantUUID, wantType)
	if code := c.WaitClosed(10 * time.Second); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d (%v), want %d (message too big)", code, c.Err(), websocket.StatusMessageTooBig)
	}
}

// TestSizeLimitBeforeLogin: 64 KiB is accepted before login, one byte more is answered
// MALFORMED (uuid echoed when it comes first) and closes the connection with 1009.
func TestSizeLimitBeforeLogin(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)

	t.Run("at and just under the limit", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		rs := newReplies(c)
		for _, size := range []int{anonymousLimit - 1, anonymousLimit} {
			for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
				id := fmt.Sprintf("size-%d-%s", size, typ)
				writeFrame(t, c, typ, sizedFrame(t, id, size))
				r := rs.Next(t)
				if r.UUID != id {
					t.Fatalf("reply uuid %q, want %q", r.UUID, id)
				}
				expectStatus(t, r, statusSuccess, fmt.Sprintf("%d-byte %s frame", size, typ))
			}
		}
		expectVersion(t, c)
	})
	t.Run("one byte over", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		expectOversize(t, c, newReplies(c), sizedFrame(t, "over-by-one", anonymousLimit+1), "over-by-one", "get_leosac_version")
	})
	t.Run("far over", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		expectOversize(t, c, newReplies(c), sizedFrame(t, "far-over", 3*loggedInLimit/2), "far-over", "get_leosac_version")
	})
	t.Run("over with the uuid after the padding", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		frame := []byte(`{"content":{"pad":"` + strings.Repeat("x", anonymousLimit) + `"},"uuid":"late","type":"get_leosac_version"}`)
		expectOversize(t, c, newReplies(c), frame, "", "")
	})
	t.Run("over with garbage", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		expectOversize(t, c, newReplies(c), bytes.Repeat([]byte{0xff, 0x00, '['}, anonymousLimit), "", "")
	})
	t.Run("other connections are not affected", func(t *testing.T) {
		t.Parallel()
		c := wstest.Dial(t, srv.WSURL)
		other := wstest.Dial(t, srv.WSURL)
		expectOversize(t, c, newReplies(c), sizedFrame(t, "closing", anonymousLimit+100), "closing", "get_leosac_version")
		expectVersion(t, other)
	})
}

// TestSizeLimitAfterLogin: after login, frames up to 1 MiB are processed and one byte more is
// answered MALFORMED, then the connection is closed with 1009.
func TestSizeLimitAfterLogin(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	// One small call after the login reply; see TestFrameRightAfterLoginHasTheLoggedInLimit for
	// why a big frame sent right after the login reply is (wrongly) held to the 64 KiB limit.
	expectStatus(t, c.Call("whoami", map[string]any{}), statusSuccess, "whoami")
	rs := newReplies(c)
	for _, size := range []int{500 << 10, loggedInLimit - 1, loggedInLimit} {
		id := fmt.Sprintf("big-%d", size)
		writeFrame(t, c, websocket.MessageText, sizedFrame(t, id, size))
		r := rs.Next(t)
		if r.UUID != id {
			t.Fatalf("reply uuid %q, want %q", r.UUID, id)
		}
		expectStatus(t, r, statusSuccess, fmt.Sprintf("%d-byte frame after login", size))
	}
	expectStatus(t, c.Call("whoami", map[string]any{}), statusSuccess, "whoami after big frames")
	expectOversize(t, c, rs, sizedFrame(t, "too-big", loggedInLimit+1), "too-big", "get_leosac_version")

	// The server is fine, and so is a new connection.
	c2 := wstest.Dial(t, srv.WSURL)
	expectVersion(t, c2)
}

// TestFrameRightAfterLoginHasTheLoggedInLimit sends a 500 KiB frame as soon as the login reply
// is in: the session is logged in, so the 1 MiB limit applies.
func TestFrameRightAfterLoginHasTheLoggedInLimit(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	rs := newReplies(c)
	_ = writeFrameErr(c, websocket.MessageText, sizedFrame(t, "right-after-login", 500<<10))
	expectStatus(t, rs.Next(t), statusSuccess, "500 KiB frame right after the login reply")
	expectVersion(t, c)
}

// TestPipelinedLoginThenBigFrame sends the login and a 500 KiB frame without waiting for the
// login reply: the big frame is handled after the login, so the logged-in limit applies.
func TestPipelinedLoginThenBigFrame(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	rs := newReplies(c)
	login := fmt.Sprintf(`{"uuid":"login","type":"create_auth_token","content":{"username":"admin","password":%q}}`, coretest.AdminPassword)
	if err := writeFrameErr(c, websocket.MessageText, []byte(login)); err != nil {
		t.Fatal(err)
	}
	if err := writeFrameErr(c, websocket.MessageText, sizedFrame(t, "pipelined-big", 500<<10)); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, rs.Next(t), statusSuccess, "pipelined login")
	expectStatus(t, rs.Next(t), statusSuccess, "500 KiB frame pipelined after the login")
	expectVersion(t, c)
}

// writeFragmented writes one message as fragments of the given sizes (cycled) through the
// client's streaming writer: one websocket frame per Write.
func writeFragmented(t testing.TB, c *wstest.Client, typ websocket.MessageType, msg []byte, sizes ...int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.Conn.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for i := 0; len(msg) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(msg))
		if _, err := w.Write(msg[:n]); err != nil {
			return err
		}
		msg = msg[n:]
	}
	return w.Close()
}

// TestFragmentedMessages checks that a message split into many websocket frames is one
// request, and that the size limits apply to the whole message, not to each frame.
func TestFragmentedMessages(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)

	c := wstest.Dial(t, srv.WSURL)
	rs := newReplies(c)
	for i, sizes := range [][]int{{1}, {3, 1, 7}, {1000}} {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			id := fmt.Sprintf("frag-%d-%s", i, typ)
			if err := writeFragmented(t, c, typ, sizedFrame(t, id, 3000), sizes...); err != nil {
				t.Fatalf("write: %v", err)
			}
			r := rs.Next(t)
			if r.UUID != id {
				t.Fatalf("reply uuid %q, want %q", r.UUID, id)
			}
			expectStatus(t, r, statusSuccess, "fragmented request")
		}
	}
	// A fragmented malformed message is one MALFORMED answer.
	if err := writeFragmented(t, c, websocket.MessageText, []byte(`{"uuid":"frag-bad","type":"get_leosac_version","content":[`), 5); err != nil {
		t.Fatalf("write: %v", err)
	}
	expectMalformed(t, rs.Next(t), "frag-bad", "get_leosac_version")
	expectVersion(t, c)

	// 100 fragments of 1 KiB: each small, the message over the anonymous limit.
	big := wstest.Dial(t, srv.WSURL)
	brs := newReplies(big)
	if err := writeFragmented(t, big, websocket.MessageText, sizedFrame(t, "frag-big", 100<<10), 1024); err != nil {
		t.Logf("write of the fragmented oversize message: %v (the server closed first)", err)
	}
	expectMalformed(t, brs.Next(t), "frag-big", "get_leosac_version")
	if code := big.WaitClosed(10 * time.Second); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d (%v), want %d", code, big.Err(), websocket.StatusMessageTooBig)
	}
}

// TestInvalidArgumentDoesNotEchoNumbers: core.DecodeError promises an INVALID_ARGUMENT message
// that names the field "without echoing the offending value"; numbers that do not fit the
// field are a value too.
func TestInvalidArgumentDoesNotEchoNumbers(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	var leaks []string
	for _, content := range []string{
		`{"user_id": 99999999999999999999987654321, "new_password": "abcdefgh-123"}`,
		`{"user_id": 1.987654321, "new_password": "abcdefgh-123"}`,
		`{"user_id": -987654321e300, "new_password": "abcdefgh-123"}`,
	} {
		r, err := c.SendRaw("num", []byte(`{"uuid":"num","type":"password_change","content":`+content+`}`))
		if err != nil {
			t.Fatal(err)
		}
		expectStatus(t, r, statusInvalidArgument, "password_change "+content)
		if strings.Contains(r.StatusString, "987654321") {
			leaks = append(leaks, fmt.Sprintf("%s -> %q", content, r.StatusString))
		}
	}
	if len(leaks) > 0 {
		t.Errorf("INVALID_ARGUMENT echoes the offending value:\n%s", strings.Join(leaks, "\n"))
	}
}

// TestThousandsOfRandomFrames sends about 5000 frames from 4 connections: random bytes, random
// JSON values, valid envelopes with random types and contents, truncated envelopes, deep
// nesting, huge numbers and unicode, as text and binary messages. Replies of one connection come
// in request order, so each reply is matched to its frame and checked. Afterwards every
// connection still works, a fresh login works and /healthz is 200.
func TestThousandsOfRandomFrames(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	const conns, perConn = 4, 1250

	t.Run("clients", func(t *testing.T) {
		for ci := range conns {
			t.Run(fmt.Sprint(ci), func(t *testing.T) {
				t.Parallel()
				seed := uint64(20240501 + ci)
				g := &frameGen{rng: rand.New(rand.NewPCG(seed, 99)), conn: ci}
				c := wstest.Dial(t, srv.WSURL)
				frames := make([]randFrame, perConn)
				for i := range frames {
					frames[i] = g.frame(i)
				}
				for _, f := range frames {
					typ := websocket.MessageText
					if f.binary {
						typ = websocket.MessageBinary
					}
					writeFrame(t, c, typ, f.data)
				}
				// Replies come in order; this call's reply comes after all of them.
				expectVersion(t, c)
				got := c.Pushes()
				if len(got) != len(frames) {
					t.Fatalf("seed %d: %d replies to %d frames", seed, len(got), len(frames))
				}
				counts := map[string]int{}
				for i, f := range frames {
					counts[f.kind]++
					if err := f.check(got[i]); err != nil {
						t.Errorf("seed %d frame %d (%s, binary=%v) %.120q: %v\n reply %+v",
							seed, i, f.kind, f.binary, f.data, err, got[i])
					}
				}
				t.Logf("seed %d: %d frames by kind %v", seed, len(frames), counts)
				expectVersion(t, c)
			})
		}
	})

	c := wstest.Dial(t, srv.WSURL)
	expectVersion(t, c)
	c.Login("admin", coretest.AdminPassword)
	expectStatus(t, c.Call("whoami", map[string]any{}), statusSuccess, "whoami after the storm")
	// No keep-alive: an idle pooled connection would outlive the server.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(srv.HTTPURL + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
}

// randFrame is one generated frame and the check of its reply.
type randFrame struct {
	kind   string
	data   []byte
	binary bool
	check  func(wstest.Reply) error
}

type frameGen struct {
	rng  *rand.Rand
	conn int
}

// want returns a check for an exact status, uuid and type.
func want(status int, id, typ string) func(wstest.Reply) error {
	return func(r wstest.Reply) error {
		if r.StatusCode != status || r.UUID != id || r.Type != typ {
			return fmt.Errorf("got status %d uuid %q type %q, want %d %q %q", r.StatusCode, r.UUID, r.Type, status, id, typ)
		}
		if status == statusMalformed && string(r.Content) != "null" {
			return fmt.Errorf("MALFORMED with content %s", r.Content)
		}
		return nil
	}
}

var (
	runePool = []rune("aZ09-_.~ é漢字😀👩‍👩‍👧\u0301\u200b\u2028\u2029\u05d0\u0627\ufeff\uffff\x00\x1f\"\\/<>&")
	// anonymousDenied answer PERMISSION_DENIED to anonymous sessions whatever the content.
	anonymousDenied = []string{"system_overview", "whoami", "logout", "password_change"}
)

func (g *frameGen) str(maxRunes int) string {
	n := g.rng.IntN(maxRunes + 1)
	var sb strings.Builder
	for range n {
		sb.WriteRune(runePool[g.rng.IntN(len(runePool))])
	}
	return sb.String()
}

func (g *frameGen) number() string {
	switch g.rng.IntN(6) {
	case 0:
		return fmt.Sprint(g.rng.Int64() - g.rng.Int64())
	case 1:
		return fmt.Sprintf("%g", g.rng.NormFloat64()*1e6)
	case 2:
		return "1e" + fmt.Sprint(g.rng.IntN(1_000_000_000))
	case 3:
		return "-" + strings.Repeat("9", 1+g.rng.IntN(3000))
	case 4:
		return "0." + strings.Repeat("0", g.rng.IntN(2000)) + "1e-999999"
	default:
		return "123456789012345678901234567890.5E+308"
	}
}

// json returns a random JSON value of at most depth levels.
func (g *frameGen) json(depth int) []byte {
	k := g.rng.IntN(8)
	if depth <= 0 {
		k %= 4
	}
	switch k {
	case 0:
		return []byte([]string{"null", "true", "false"}[g.rng.IntN(3)])
	case 1:
		return []byte(g.number())
	case 2, 3:
		b, _ := json.Marshal(g.str(20))
		return b
	case 4, 5:
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range g.rng.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(g.json(depth - 1))
		}
		b.WriteByte(']')
		return b.Bytes()
	default:
		var b bytes.Buffer
		b.WriteByte('{')
		for i := range g.rng.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			key, _ := json.Marshal("k_" + g.str(8)) // never "uuid", "type" or "content"
			b.Write(key)
			b.WriteByte(':')
			b.Write(g.json(depth - 1))
		}
		b.WriteByte('}')
		return b.Bytes()
	}
}

// envelope returns a valid envelope with a random type and content, and the check of its reply.
func (g *frameGen) envelope(i int) (frame []byte, id, typ string, check func(wstest.Reply) error) {
	id = fmt.Sprintf("c%d-f%d-%s", g.conn, i, g.str(10))
	status := statusInvalidCall
	switch k := g.rng.IntN(10); {
	case k < 3:
		typ, status = "get_leosac_version", statusSuccess
	case k < 6:
		typ, status = anonymousDenied[g.rng.IntN(len(anonymousDenied))], statusPermissionDenied
	case k < 9:
		typ = "zz.unknown." + g.str(12)
	default:
		typ = []string{"", strings.Repeat("z", 128), " get_leosac_version", "user.READ"}[g.rng.IntN(4)]
	}
	content := g.json(4)
	eid, _ := json.Marshal(id)
	etyp, _ := json.Marshal(typ)
	fields := []string{`"uuid":` + string(eid), `"type":` + string(etyp), `"content":` + string(content)}
	g.rng.Shuffle(len(fields), func(a, b int) { fields[a], fields[b] = fields[b], fields[a] })
	sep := []string{",", " , ", ",\n\t"}[g.rng.IntN(3)]
	frame = []byte("{" + strings.Join(fields, sep) + "}")
	return frame, id, typ, want(status, id, typ)
}

func (g *frameGen) frame(i int) randFrame {
	f := randFrame{binary: g.rng.IntN(2) == 0}
	switch k := g.rng.IntN(100); {
	case k < 15:
		f.kind = "random bytes"
		f.data = make([]byte, g.rng.IntN(300))
		for j := range f.data {
			f.data[j] = byte(g.rng.Uint32())
		}
		f.check = want(statusMalformed, "", "")
	case k < 30:
		f.kind = "random JSON value"
		f.data = g.json(5)
		f.check = want(statusMalformed, "", "")
	case k < 60:
		f.kind = "valid envelope"
		f.data, _, _, f.check = g.envelope(i)
	case k < 75:
		f.kind = "truncated envelope"
		id := fmt.Sprintf("t%d-f%d-%s", g.conn, i, g.str(10))
		typ := "zz.trunc." + g.str(8)
		eid, _ := json.Marshal(id)
		etyp, _ := json.Marshal(typ)
		head := `{"uuid":` + string(eid)
		withType := head + `,"type":` + string(etyp)
		full := withType + `,"content":` + string(g.json(4)) + "}"
		cut := 1 + g.rng.IntN(len(full)-1)
		f.data = []byte(full[:cut])
		wantID, wantType := "", ""
		if cut >= len(head) {
			wantID = id
		}
		if cut >= len(withType) {
			wantType = typ
		}
		f.check = want(statusMalformed, wantID, wantType)
	case k < 80:
		f.kind = "deep nesting"
		id := fmt.Sprintf("d%d-f%d", g.conn, i)
		switch g.rng.IntN(4) {
		case 0:
			f.data = []byte(strings.Repeat("[", 10000))
			f.check = want(statusMalformed, "", "")
		case 1:
			f.data = []byte(strings.Repeat(`{"a":`, 5000))
			f.check = want(statusMalformed, "", "")
		case 2:
			f.data = []byte(`{"uuid":"` + id + `","type":"get_leosac_version","content":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`)
			f.check = want(statusMalformed, id, "get_leosac_version")
		default:
			f.data = []byte(`{"uuid":"` + id + `","type":"get_leosac_version","content":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`)
			f.check = want(statusSuccess, id, "get_leosac_version")
		}
	case k < 90:
		f.kind = "huge numbers"
		id := fmt.Sprintf("n%d-f%d", g.conn, i)
		switch g.rng.IntN(3) {
		case 0:
			f.data = []byte(`{"uuid":"` + id + `","type":"get_leosac_version","content":{"n":` + g.number() + `,"m":[` + g.number() + `]}}`)
			f.check = want(statusSuccess, id, "get_leosac_version")
		case 1:
			f.data = []byte(`{"uuid":` + g.number() + `,"type":"get_leosac_version","content":` + g.number() + `}`)
			f.check = want(statusMalformed, "", "get_leosac_version")
		default:
			f.data = []byte(g.number())
			f.check = want(statusMalformed, "", "")
		}
	default:
		f.kind = "unicode"
		// Raw invalid UTF-8 and lone surrogate escapes in the uuid come back as U+FFFD.
		id := fmt.Sprintf("u%d-f%d-", g.conn, i)
		raw, echoed := id+g.str(20), ""
		switch g.rng.IntN(3) {
		case 0:
			echoed = raw
			eid, _ := json.Marshal(raw)
			raw = string(eid)
		case 1:
			raw, echoed = `"`+id+`\ud83d\u00e9\udc00"`, id+"\ufffdé\ufffd"
		default:
			raw, echoed = "\""+id+"a\xffb\xc3\"", id+"a\ufffdb\ufffd"
		}
		typ := "zz.ünïcödé." + g.str(10)
		etyp, _ := json.Marshal(typ)
		f.data = []byte(`{"uuid":` + raw + `,"type":` + string(etyp) + `,"content":` + string(g.json(3)) + `}`)
		f.check = want(statusInvalidCall, echoed, typ)
	}
	return f
}
