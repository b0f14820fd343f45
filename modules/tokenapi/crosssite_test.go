package tokenapi_test

import (
	"context"
	"net/http"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// TestCreateRefusesCrossSite: a browser request from another site (Origin not this server nor
// allowed_origins, or Sec-Fetch-Site cross-site/same-site) cannot create a token, even with the
// right Basic credentials a browser would replay by itself: 403, no token issued. This
// server's own pages, allowed origins and clients that are not browsers can.
func TestCreateRefusesCrossSite(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, cheapHashing, coretest.WithModuleConfig("tokenapi", `{"allowed_origins": ["https://app.example.com"]}`))
	c := newClient(t, srv)
	foo := addFoo(t, srv, core.RankUser)
	tokens := authModule(t, srv).Tokens()
	count := func() int64 {
		n, err := tokens.Count(context.Background(), foo)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, h := range [][]string{
		{"Origin", "https://evil.example"},
		{"Origin", "null"},
		{"Origin", "https://app.example.com.evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Referer", "https://evil.example/form.html"},
	} {
		wantError(t, c.do("POST", "/0.1/token", `{"expiration": 60}`, fooBasic, h...), http.StatusForbidden, "cross-site")
	}
	if n := count(); n != 0 {
		t.Fatalf("cross-site requests issued %d tokens", n)
	}

	for _, h := range [][]string{
		{"Origin", srv.HTTPURL},
		{"Origin", "https://app.example.com"},
		{"Sec-Fetch-Site", "same-origin"},
		{}, // not a browser
	} {
		if r := c.do("POST", "/0.1/token", `{"expiration": 60}`, fooBasic, h...); r.Status != http.StatusOK {
			t.Errorf("POST /0.1/token with %v: %d %s", h, r.Status, r.Body)
		}
	}
	if n := count(); n != 4 {
		t.Fatalf("%d tokens, want 4", n)
	}
}
