package core_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/all"
	"gatehouse/modules/wsapi/wstest"
)

// hostGet sends GET path to base with the given Host header and returns the status and body.
func hostGet(t *testing.T, hc *http.Client, base, path, host string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, "" // the body is the upgraded connection
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// upgradeHeaders make a request a websocket upgrade.
var upgradeHeaders = []string{"Connection", "Upgrade", "Upgrade", "websocket",
	"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}

// TestHostHeaderChecked: a request over TCP whose Host is not a name of the server is refused
// with 421 before any route runs, websocket upgrades included (DNS rebinding); the listener's
// own address, localhost on loopback and the configured hostnames are served; the Unix socket
// does not check Host.
func TestHostHeaderChecked(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "gh.sock")
	srv := coretest.Start(t, coretest.WithConfig(func(c *core.Config) {
		c.Hostnames = []string{"Gatehouse.Example.COM", "192.0.2.7"}
		c.Unix = sock
	}))
	_, port, _ := net.SplitHostPort(srv.Addr())
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, host := range []string{srv.Addr(), "127.0.0.1", "localhost:" + port, "LOCALHOST", "app.localhost:" + port,
		"gatehouse.example.com", "gatehouse.example.com.:443", "GATEHOUSE.example.com:" + port, "192.0.2.7:8080"} {
		if code, body := hostGet(t, hc, srv.HTTPURL, "/healthz", host); code != http.StatusOK {
			t.Errorf("Host %q: %d %s", host, code, body)
		}
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "gatehouse.example.com.evil.example",
		"127.0.0.2:" + port, "[::1]:" + port, "localhost.evil.example", "192.0.2.8"} {
		code, body := hostGet(t, hc, srv.HTTPURL, "/healthz", host)
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "hostnames") {
			t.Errorf("Host %q: %d %s, want 421 naming the hostnames setting", host, code, body)
		}
	}
	// Every route: the dashboard, the token API, the portal logout, websocket upgrades.
	for _, path := range []string{"/", "/0.1/backends", "/?logout=1", "/websocket", "/sysadm"} {
		if code, _ := hostGet(t, hc, srv.HTTPURL, path, "rebind.evil.example:"+port, upgradeHeaders...); code != http.StatusMisdirectedRequest {
			t.Errorf("%s with a foreign Host: %d, want 421", path, code)
		}
	}
	if code, body := hostGet(t, hc, srv.HTTPURL, "/websocket", srv.Addr(), upgradeHeaders...); code != http.StatusSwitchingProtocols {
		t.Errorf("websocket upgrade with the listener's address: %d %s", code, body)
	}
	wstest.Dial(t, srv.WSURL).Call("get_leosac_version", nil)

	// The Unix socket serves whatever the Host.
	uc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	if code, body := hostGet(t, uc, "http://unix", "/healthz", "evil.example"); code != http.StatusOK {
		t.Errorf("unix socket: %d %s", code, body)
	}
	// No HSTS without TLS.
	resp, err := hc.Get(srv.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS over plain HTTP: %q", h)
	}
}

// TestHSTSUnderTLS: over TLS every answer, refusals included, carries Strict-Transport-Security.
func TestHSTSUnderTLS(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Registry: all.Registry(), Log: zerolog.Nop(), Listener: ln,
		Config: core.Config{Data: t.TempDir(), Listen: ln.Addr().String(), TLSSelfSigned: true}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the self-signed certificate
	var resp *http.Response
	coretest.Eventually(t, 10*time.Second, func() error {
		resp, err = hc.Get(srv.URL() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if h := resp.Header.Get("Strict-Transport-Security"); h != core.HSTS || resp.StatusCode != http.StatusOK {
		t.Errorf("over TLS: %d, HSTS %q", resp.StatusCode, h)
	}
	code, _ := hostGet(t, hc, srv.URL(), "/healthz", "evil.example")
	if code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host over TLS: %d", code)
	}
}

// TestHostnamesValidated: hostnames must be bare names or addresses.
func TestHostnamesValidated(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"https://gatehouse.example.com", "gatehouse.example.com:8443", "gate house", "*.example.com", "a/b", ""} {
		if err := (core.Config{Hostnames: []string{bad}}).Validate(); err == nil || !strings.Contains(err.Error(), "hostnames") {
			t.Errorf("hostnames %q: %v", bad, err)
		}
	}
	if err := (core.Config{Hostnames: []string{"gatehouse.example.com", "gatehouse", "10.0.0.1", "[2001:db8::1]", "fe80::1"}}).Validate(); err != nil {
		t.Errorf("valid hostnames refused: %v", err)
	}
	if err := (core.Config{BodyTimeout: -1}).Validate(); err == nil {
		t.Error("negative body_timeout accepted")
	}
}

// TestSlowBodyCutOff: with body_timeout 1s, clients trickling a request body (1 byte every 2 s)
// are disconnected, whatever the route, while a websocket stays open well past that timeout and
// keeps answering.
func TestSlowBodyCutOff(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithConfig(func(c *core.Config) { c.BodyTimeout = core.Duration(time.Second) }))
	ws := wstest.Dial(t, srv.WSURL)
	ws.Login("admin", coretest.AdminPassword)

	paths := []string{"POST /0.1/token", "POST /", "POST /rpc/auth", "PUT /nowhere"}
	errs := make(chan error, len(paths))
	for _, p := range paths {
		go func() { errs <- slowBody(srv.Addr(), p) }()
	}
	for range paths {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// By now every slow client has been cut off, at least 2 s after it started: the websocket
	// is older than that and still answers.
	for i := 0; i < 3; i++ {
		if r := ws.Call("get_leosac_version", nil); r.StatusCode != 0 {
			t.Fatalf("websocket after the body timeout: %d %s", r.StatusCode, r.StatusString)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := ws.Err(); err != nil {
		t.Fatalf("websocket closed: %v", err)
	}
}

// slowBody sends the headers of a request with a 64-byte body, then one body byte every 2 s,
// and returns nil once the server has closed the connection (possibly after an error answer),
// or an error if it is still open after 15 s.
func slowBody(addr, methodPath string) error {
	method, path, _ := strings.Cut(methodPath, " ")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Basic YWRtaW46eA==\r\nContent-Length: 64\r\n\r\n{",
		method, path, addr); err != nil {
		return err
	}
	closed := make(chan error, 1)
	go func() {
		// Read until the server closes: an answer may come first.
		_, err := io.Copy(io.Discard, bufio.NewReader(conn))
		closed <- err
	}()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return nil
		case <-tick.C:
			if time.Since(start) > 15*time.Second {
				return fmt.Errorf("%s: a body trickled at 1 byte / 2 s is still being read after 15 s", methodPath)
			}
			if _, err := conn.Write([]byte(" ")); err != nil && !errors.Is(err, net.ErrClosed) {
				// The server closed: the reader sees it too.
				continue
			}
		}
	}
}
