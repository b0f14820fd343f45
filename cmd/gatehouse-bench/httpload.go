package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// The HTTP load: shape.Conns keep-alive HTTP/1.1 connections, each sending one HEAD request,
// waiting for the answer and sending the next (HTTP/1.1 clients do not pipeline, so the
// shape's in-flight count is 1 whatever the shape says). A 204 is a success; any other status
// is counted as an error reply under its code.
//
// The connections are raw TCP connections writing one pre-built request and reading the
// answer with net/http's own parser (http.ReadResponse), rather than an http.Client: the
// client shares two cores with the servers, and a Transport spends per request two goroutine
// hand-offs (its read and write loops), a cloned request, header maps and a pool lookup on top
// of the parsing done here. That CPU would be taken from the servers and cap the bare
// baseline more than gatehouse, flattering the ratio. The client's CPU per request is in the
// run rows (cli CPU) to check that it stays small next to the servers'.

// baselineToken is the token the baseline is asked about: shaped like a gatehouse token (64
// lower-case hex digits), so that both servers route the same path.
const baselineToken = "0f8b3c5d7e9a1b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c"

// createToken returns an httpPath that creates a token with POST /0.1/token (Basic auth, one
// hour) and returns the path that checks it. One login for the whole invocation: HEAD with a
// valid token is not a login, so neither the login throttle nor the per-user session cap (a
// POST beyond 100 live tokens answers 429) apply to the measured requests.
func createToken(username, password string) func(ctx context.Context, base string) (string, error) {
	return func(ctx context.Context, base string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/0.1/token", strings.NewReader(`{"expiration": 3600}`))
		if err != nil {
			return "", fmt.Errorf("create token: %w", err)
		}
		req.SetBasicAuth(username, password)
		req.Header.Set("Content-Type", "application/json")
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", fmt.Errorf("create token: %w", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("create token: %w", err)
		}
		var out struct {
			Data struct {
				Token string `json:"token"`
			} `json:"data"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Data.Token == "" {
			return "", fmt.Errorf("create token: %s %s", resp.Status, truncate(body))
		}
		return "/0.1/token/" + out.Data.Token, nil
	}
}

// runHTTPLoad connects shape.Conns keep-alive connections to addr and HEADs path on each, one
// request in flight per connection, for warmup+dur, measuring the last dur. serverPID is the
// server process, whose CPU time is sampled at both ends of the window.
func runHTTPLoad(ctx context.Context, addr, path string, serverPID int, sc *scenario, shape loadShape, warmup, dur time.Duration) (runResult, error) {
	shape.Inflight = 1
	res := runResult{Scenario: sc.name, Server: sc.server, Shape: shape, Window: dur}
	conns := make([]net.Conn, shape.Conns)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	defer closeAll()
	var d net.Dialer
	for i := range conns {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err != nil {
			return res, fmt.Errorf("%s: connect: %w", sc.name, err)
		}
		conns[i] = c
	}
	req := []byte("HEAD " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: gatehouse-bench\r\n\r\n")

	start := time.Now().Add(warmup)
	w := window{start: start, end: start.Add(dur)}
	// Answers must arrive within a generous bound after the window; a hang is an error.
	runCtx, cancel := context.WithDeadline(ctx, w.end.Add(30*time.Second))
	defer cancel()
	stats := make([]connStats, len(conns))
	g, gctx := errgroup.WithContext(runCtx)
	// The connections do their I/O without a context: end it by closing them.
	defer context.AfterFunc(gctx, closeAll)()
	for i, c := range conns {
		st := &stats[i]
		st.statuses, st.statusText = map[int]int64{}, map[int]string{}
		st.samples = make([]time.Duration, 0, 1024)
		g.Go(func() error {
			if err := driveHTTP(c, req, w, st); err != nil {
				if gctx.Err() != nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("answers missing 30s after the end of the run: %w", err)
				}
				return err
			}
			return nil
		})
	}
	srvCPU, cliCPU, cpuErr := sampleCPU(gctx, serverPID, w)
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, fmt.Errorf("%s at %s: %w", sc.name, shape, err)
	}
	if cpuErr == nil {
		res.ServerCPU, res.ClientCPU = srvCPU, cliCPU
	}
	res.collect(stats, dur)
	return res, nil
}

// driveHTTP sends req on c and reads its answer, again and again until an answer arrives after
// the window's end.
func driveHTTP(c net.Conn, req []byte, w window, st *connStats) error {
	br := bufio.NewReader(c)
	head := &http.Request{Method: http.MethodHead} // tells ReadResponse there is no body
	for {
		sent := time.Now()
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		resp, err := http.ReadResponse(br, head)
		now := time.Now()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusNoContent:
			st.statuses[resp.StatusCode]++
			if _, seen := st.statusText[resp.StatusCode]; !seen {
				st.statusText[resp.StatusCode] = resp.Status
			}
		case !now.Before(w.start) && now.Before(w.end):
			st.samples = append(st.samples, now.Sub(sent))
		}
		if resp.Close {
			return fmt.Errorf("the server closed the keep-alive connection (%s)", resp.Status)
		}
		if !now.Before(w.end) {
			return nil
		}
		if br.Buffered() > 0 {
			b, _ := br.Peek(br.Buffered())
			return fmt.Errorf("%d unexpected bytes after an answer: %q", len(b), truncate(bytes.Clone(b)))
		}
	}
}
