package audit_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/audit"
	"gatehouse/modules/wsapi/wstest"
)

type logsReply struct {
	Data []struct {
		ID         int64  `json:"id"`
		Type       string `json:"type"`
		Attributes struct {
			Message   string `json:"message"`
			Timestamp *int64 `json:"timestamp"`
			Level     string `json:"level"`
			Module    string `json:"module"`
		} `json:"attributes"`
	} `json:"data"`
	Meta struct {
		Total int64 `json:"total"`
		Last  int64 `json:"last"`
		First int64 `json:"first"`
	} `json:"meta"`
	Status *int `json:"status"`
}

func getLogs(t *testing.T, c *wstest.Client, content map[string]any) logsReply {
	t.Helper()
	r := c.Call("get_logs", content)
	want(t, r, codeOK)
	var out logsReply
	r.Decode(t, &out)
	if out.Data == nil || out.Status == nil || *out.Status != 0 || out.Meta.First != 0 {
		t.Fatalf("get_logs reply %s", r.Content)
	}
	return out
}

func TestGetLogs(t *testing.T) {
	t.Parallel()
	// Only errors reach the ring from the server itself (there should be none): the lines
	// are the test's.
	srv := start(t, coretest.WithLog(io.Discard, zerolog.ErrorLevel))
	mod, _ := srv.App().Module(audit.ModuleID)
	ring := mod.(*audit.Module).LogRing()
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	if r := getLogs(t, c, map[string]any{}); r.Meta.Total != 0 || len(r.Data) != 0 || r.Meta.Last != 0 {
		t.Fatalf("empty ring: %+v", r)
	}

	const n = 45
	for i := range n {
		fmt.Fprintf(ring, `{"level":"info","module":"test","i":%d,"time":"2026-11-22T19:00:%02d+01:00","message":"line %d"}`+"\n", i, i, i)
	}
	fmt.Fprintln(ring, `{"level":"warn","module":"wsapi","remote":"127.0.0.1:5555","error":"read: connection reset","n":3,"ok":true,"obj":{"a": [1, 2]},"time":"2026-11-22T19:00:00+01:00","message":"slow client closed"}`)
	fmt.Fprintln(ring, `{"level":"error","message":"no module, no time"}`)
	fmt.Fprintln(ring, `not json {"level":"info"`)
	const total = n + 3

	// Newest first by default; pages of 20: 0, 1, 2 (last, 8 lines), then nothing.
	r := getLogs(t, c, map[string]any{})
	if r.Meta.Total != total || r.Meta.Last != 2 || len(r.Data) != 20 {
		t.Fatalf("page 0: meta %+v, %d lines", r.Meta, len(r.Data))
	}
	if r.Data[0].Attributes.Message != `not json {"level":"info"` || r.Data[0].Attributes.Timestamp != nil || r.Data[0].Type != "log-message" {
		t.Errorf("raw line: %+v", r.Data[0])
	}
	if a := r.Data[1].Attributes; a.Message != "ERR no module, no time" || a.Level != "error" || a.Module != "" || a.Timestamp != nil {
		t.Errorf("line without module and time: %+v", a)
	}
	want2 := `2026-11-22T18:00:00Z WRN [wsapi] slow client closed remote=127.0.0.1:5555 error="read: connection reset" n=3 ok=true obj={"a":[1,2]}`
	if a := r.Data[2].Attributes; a.Message != want2 || a.Level != "warn" || a.Module != "wsapi" || a.Timestamp == nil ||
		*a.Timestamp != time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("formatted line:\n got %q %+v\nwant %q", a.Message, a, want2)
	}
	if a := r.Data[3].Attributes; a.Message != "2026-11-22T18:00:44Z INF [test] line 44 i=44" {
		t.Errorf("line 44: %q", a.Message)
	}
	for i := 1; i < len(r.Data); i++ {
		if r.Data[i].ID >= r.Data[i-1].ID {
			t.Fatalf("not newest first: %d then %d", r.Data[i-1].ID, r.Data[i].ID)
		}
	}
	if last := getLogs(t, c, map[string]any{"p": 2}); len(last.Data) != total-40 || last.Data[len(last.Data)-1].Attributes.Message != "2026-11-22T18:00:00Z INF [test] line 0 i=0" {
		t.Errorf("last page: %d lines", len(last.Data))
	}
	if past := getLogs(t, c, map[string]any{"p": 3}); len(past.Data) != 0 || past.Meta.Total != total {
		t.Errorf("past the end: %+v", past)
	}
	// Oldest first.
	asc := getLogs(t, c, map[string]any{"sort": "asc", "ps": 2, "p": 1})
	if len(asc.Data) != 2 || asc.Data[0].Attributes.Message != "2026-11-22T18:00:02Z INF [test] line 2 i=2" || asc.Data[1].ID != asc.Data[0].ID+1 {
		t.Errorf("asc: %+v", asc.Data)
	}
	// meta.last is the index of the last page, also when ps divides the total (Leosac's
	// total/ps was one too many).
	for _, ps := range []int64{1, 2, 7, 16, 24, total - 1, total, total + 1, 500} {
		r := getLogs(t, c, map[string]any{"ps": ps, "sort": "desc"})
		if wantLast := (total - 1) / ps; r.Meta.Last != wantLast {
			t.Errorf("ps %d: last %d, want %d", ps, r.Meta.Last, wantLast)
		}
		if got := getLogs(t, c, map[string]any{"ps": ps, "p": r.Meta.Last}); len(got.Data) == 0 {
			t.Errorf("ps %d: page last=%d is empty", ps, r.Meta.Last)
		}
	}

	for _, content := range []map[string]any{
		{"p": -1}, {"ps": 0}, {"ps": -1}, {"ps": 501}, {"p": "1"}, {"ps": 2.5}, {"sort": 1},
	} {
		if r := c.Call("get_logs", content); r.StatusCode != codeInvalidArgument {
			t.Errorf("%v: status %d %q, want 12", content, r.StatusCode, r.StatusString)
		}
	}
	if r := c.Call("get_logs", map[string]any{"p": -1}); !strings.Contains(r.StatusString, "Invalid Argument page. Value was -1") {
		t.Errorf("message %q", r.StatusString)
	}
}

func TestGetLogsOfTheRealServer(t *testing.T) {
	t.Parallel()
	srv := start(t, coretest.WithLog(io.Discard, zerolog.InfoLevel))
	clients, _ := rankedClients(t, srv)
	want(t, clients[core.RankUser].Call("get_logs", map[string]any{}), codePermissionDenied)
	r := getLogs(t, clients[core.RankViewer], map[string]any{"ps": 500})
	if r.Meta.Total == 0 {
		t.Fatal("no log lines")
	}
	for _, l := range r.Data {
		a := l.Attributes
		abbrev := map[string]string{"trace": "TRC", "debug": "DBG", "info": "INF", "warn": "WRN", "error": "ERR"}[a.Level]
		if abbrev == "" || !strings.Contains(a.Message, abbrev+" ") {
			t.Errorf("line %d not formatted: %+v", l.ID, a)
		}
		for _, secret := range []string{"-password", coretest.AdminPassword} {
			if strings.Contains(a.Message, secret) {
				t.Errorf("a password is in the logs: %q", a.Message)
			}
		}
	}
}
