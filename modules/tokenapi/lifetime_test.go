package tokenapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/tokenapi"
	"gatehouse/modules/wsapi/wstest"
)

// TestLifetimeCappedWhateverTheDialect: a token API request for a year (or for the default
// 2 h) gets no more than token.max_lifetime; a token of the token API (no idle timeout) used on
// the Leosac websocket obeys the Leosac idle timeout there, the stricter of the two policies,
// while it stays valid on the token API.
func TestLifetimeCappedWhateverTheDialect(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing,
		coretest.WithModuleConfig("token", `{"max_lifetime": "1h", "leosac": {"idle": "2s", "max": "24h"}}`))
	c := newClient(t, srv)
	addFoo(t, srv, core.RankUser)
	lifetime := func(d tokenapi.TokenData) time.Duration {
		i, err1 := time.Parse(time.RFC3339Nano, d.IssuedAtUTC)
		e, err2 := time.Parse(time.RFC3339Nano, d.ExpiresAtUTC)
		if err1 != nil || err2 != nil {
			t.Fatalf("timestamps %q %q", d.IssuedAtUTC, d.ExpiresAtUTC)
		}
		return e.Sub(i)
	}
	for _, body := range []string{fmt.Sprintf(`{"expiration": %d}`, tokenapi.MaxYear), `{"expiration": 86400}`, `{}`} {
		if got := lifetime(c.create(fooBasic, body)); got != time.Hour {
			t.Errorf("POST /0.1/token %s: lifetime %v, want the 1h cap", body, got)
		}
	}
	if got := lifetime(c.create(fooBasic, `{"expiration": 600}`)); got != 10*time.Minute {
		t.Errorf("a lifetime under the cap is granted as asked: %v", got)
	}

	// A token API token (no idle timeout of its own) on the Leosac websocket.
	// Connect first: the token's idle time on the Leosac side counts from its issue.
	live := wstest.Dial(t, srv.WSURL)
	later := wstest.Dial(t, srv.WSURL)
	tok := c.create(fooBasic, `{"expiration": 600}`).Token
	auth := func(ws *wstest.Client) wstest.Reply {
		return ws.Call("authenticate_with_token", map[string]string{"token": tok})
	}
	status := func(r wstest.Reply) int {
		var res struct {
			Status *int `json:"status"`
		}
		r.Decode(t, &res)
		if res.Status == nil {
			t.Fatalf("authenticate_with_token: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}
		return *res.Status
	}
	if r := auth(live); r.StatusCode != 0 || status(r) != 0 {
		t.Fatalf("fresh token API token on the Leosac websocket: %d %s", r.StatusCode, r.Content)
	}
	// Unused for longer than the Leosac idle timeout (2 s): no longer valid there, neither for
	// the session logged in with it nor for a new login...
	time.Sleep(4 * time.Second)
	if r := live.Call("get_leosac_version", nil); r.StatusCode != int(core.SessionAborted) {
		t.Errorf("session on an idle token: %d %s, want SESSION_ABORTED", r.StatusCode, r.StatusString)
	}
	if r := auth(later); r.StatusCode != 0 || status(r) != -1 {
		t.Fatalf("a token idle for longer than the Leosac idle timeout, on the Leosac websocket: %d %s", r.StatusCode, r.Content)
	}
	// ...but still valid on the token API, whose policy has no idle timeout.
	if r := c.do("GET", "/0.1/token/"+tok, "", ""); r.Status != http.StatusOK {
		t.Fatalf("the token on its own dialect: %d %s", r.Status, r.Body)
	}
}
