package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
	"gatehouse/web"
)

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestHandlerServesFilesWithTheirTypesAndSecurityHeaders(t *testing.T) {
	h := web.Handler()
	cases := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/js/app.js">`},
		{"/index.html", "text/html; charset=utf-8", `<div id="app"`},
		{"/js/app.js", "text/javascript; charset=utf-8", "import"},
		{"/js/api.js", "text/javascript; charset=utf-8", "export class Api"},
		{"/js/pages/live.js", "text/javascript; charset=utf-8", "events.subscribe"},
		{"/css/app.css", "text/css; charset=utf-8", ":root"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		// The dashboard routes on the fragment; a deep link without an extension gets the shell.
		{"/people/12", "text/html; charset=utf-8", `<div id="app"`},
	}
	for _, c := range cases {
		res, body := get(t, h, http.MethodGet, c.path, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != c.ctype || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.contains, strings.Contains(body, c.contains))
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": web.ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Cache-Control":           "no-cache",
		} {
			if got := res.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", c.path, k, got, v)
			}
		}
	}
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self';", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(web.ContentSecurityPolicy, want) {
			t.Errorf("CSP %q lacks %q", web.ContentSecurityPolicy, want)
		}
	}
	if strings.Contains(web.ContentSecurityPolicy, "unsafe-") {
		t.Errorf("CSP allows unsafe sources: %q", web.ContentSecurityPolicy)
	}
	// Connections go to this origin only: no scheme-wide ws:/wss: (any host) source.
	for _, bad := range []string{"ws:", "wss:", "http:", "https:", "*"} {
		if strings.Contains(web.ContentSecurityPolicy, " "+bad) {
			t.Errorf("CSP %q allows %q", web.ContentSecurityPolicy, bad)
		}
	}
}

func TestHandlerRevalidatesWithETag(t *testing.T) {
	h := web.Handler()
	res, _ := get(t, h, http.MethodGet, "/js/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res, body := get(t, h, http.MethodGet, "/js/app.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("If-None-Match: %d, %d bytes", res.StatusCode, len(body))
	}
	if other, _ := get(t, h, http.MethodGet, "/js/api.js", nil); other.Header.Get("ETag") == etag {
		t.Fatal("two files share an ETag")
	}
}

func TestHandlerRefusesWhatItDoesNotServe(t *testing.T) {
	h := web.Handler()
	if res, _ := get(t, h, http.MethodGet, "/js/missing.js", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d", res.StatusCode)
	}
	if res, _ := get(t, h, http.MethodGet, "/../web.go", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("path outside static/: %d", res.StatusCode)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		res, _ := get(t, h, m, "/", nil)
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d Allow %q", m, res.StatusCode, res.Header.Get("Allow"))
		}
	}
	if res, body := get(t, h, http.MethodHead, "/", nil); res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD /: %d, %d bytes", res.StatusCode, len(body))
	}
}

// TestNoInlineCode checks the embedded HTML against the policy: every script is a file, and
// no element carries an event handler or style attribute (the CSP would refuse them).
func TestNoInlineCode(t *testing.T) {
	_, body := get(t, web.Handler(), http.MethodGet, "/", nil)
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>`),
	} {
		for _, tag := range re.FindAllString(body, -1) {
			if !strings.Contains(tag, "src=") {
				t.Errorf("inline script: %s", tag)
			}
		}
	}
	if m := regexp.MustCompile(`\s(on[a-z]+|style)=`).FindString(body); m != "" {
		t.Errorf("inline attribute %q in index.html", m)
	}
}

// TestServedByTheServer checks the dashboard module's route next to the server's own: the
// dashboard at "/", the websocket and /healthz unchanged.
func TestServedByTheServer(t *testing.T) {
	srv := coretest.Start(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Get(srv.HTTPURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "/js/app.js") || res.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /: %d %q", res.StatusCode, body)
	}
	res, err = client.Get(srv.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /healthz: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := wstest.Dial(t, srv.WSURL)
	if r := c.Call("get_leosac_version", map[string]any{}); r.StatusCode != 0 {
		t.Fatalf("websocket: %d", r.StatusCode)
	}
}
