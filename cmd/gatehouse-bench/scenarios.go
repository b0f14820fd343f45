package main

import (
	"context"
	"encoding/json"
	"fmt"
)

// This file is the registry of what is measured. To add a scenario, append to scenarios: give
// it a name, the server it runs against, an optional per-connection setup (run once on each
// connection before the clock starts) and the request it sends in a loop; give it targets if
// it has acceptance criteria against the baseline.

// serverKind names one of the child servers.
type serverKind string

const (
	baselineServer  serverKind = "baseline"
	gatehouseServer serverKind = "gatehouse"
)

// metric is what a target compares with the baseline.
type metric string

const (
	// throughput: the scenario's req/s must be at least ratio × the baseline's.
	throughput metric = "throughput"
	// p99: the scenario's 99th-percentile latency must be at most ratio × the baseline's.
	p99 metric = "p99"
)

// target is one acceptance criterion of a scenario, relative to the baseline measured in the
// same run at the same load shape.
type target struct {
	shape  string // name of the load shape it is evaluated at
	metric metric
	ratio  float64
}

// scenario is one kind of request measured against one server.
type scenario struct {
	name   string
	server serverKind
	// setup runs once on each connection before the measurement starts (e.g. a login).
	setup func(ctx context.Context, c *client) error
	// request appends one request frame carrying the given uuid to dst.
	request func(dst, id []byte) []byte
	targets []target
}

// defaultTargets are the acceptance criteria of the issue that introduced the tool:
// throughput ≥ 0.8× the baseline at 32 connections × 8 in flight, and p99 latency ≤ 2× the
// baseline at 1 connection × 1 in flight.
var defaultTargets = []target{
	{shape: "throughput", metric: throughput, ratio: 0.8},
	{shape: "latency", metric: p99, ratio: 2},
}

// scenarios lists every scenario. The baseline comes first; every other scenario is compared
// with it.
var scenarios = []*scenario{
	{
		name:    "baseline",
		server:  baselineServer,
		request: envelope("get_leosac_version", `{}`),
	},
	{
		name:    "get_leosac_version",
		server:  gatehouseServer,
		request: envelope("get_leosac_version", `{}`),
		targets: defaultTargets,
	},
	{
		name:    "whoami",
		server:  gatehouseServer,
		setup:   login(adminUser, benchPassword),
		request: envelope("whoami", `{}`),
		targets: defaultTargets,
	},
}

// Load shapes. The latency shape is capped under gatehouse's production per-connection rate
// limit (wsapi rate_limit, 5000 req/s, burst 5000): one connection with one request in flight
// goes faster than that on loopback (about 5000–7000 req/s on a 2-core machine), and after a
// few seconds a growing share of its replies would be RATE_LIMITED. The cap is a client-side
// token bucket applied to the baseline as well.
const defaultLatencyRate = 4500

// loadShape is how hard a scenario is driven.
type loadShape struct {
	Name     string  `json:"name"`
	Conns    int     `json:"conns"`
	Inflight int     `json:"inflight"`       // requests in flight per connection
	Rate     float64 `json:"rate,omitempty"` // cap on requests/s per connection; 0 = none
}

// String returns e.g. "32×8" or "1×1 ≤4500/s".
func (s loadShape) String() string {
	str := fmt.Sprintf("%d×%d", s.Conns, s.Inflight)
	if s.Rate > 0 {
		str += fmt.Sprintf(" ≤%g/s", s.Rate)
	}
	return str
}

func defaultShapes(latencyRate float64) (tp, lat loadShape) {
	return loadShape{Name: "throughput", Conns: 32, Inflight: 8},
		loadShape{Name: "latency", Conns: 1, Inflight: 1, Rate: latencyRate}
}

// The credentials the gatehouse child is started with (GATEHOUSE_ADMIN_PASSWORD).
const (
	adminUser     = "admin"
	benchPassword = "gatehouse-bench-password"
)

// envelope returns a request builder for a Leosac envelope with a fixed type and content.
func envelope(typ, content string) func(dst, id []byte) []byte {
	prefix := `{"uuid":"`
	suffix := `","type":` + quote(typ) + `,"content":` + content + `}`
	return func(dst, id []byte) []byte {
		dst = append(dst, prefix...)
		dst = append(dst, id...)
		return append(dst, suffix...)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// login returns a setup that logs the connection in with create_auth_token.
func login(username, password string) func(ctx context.Context, c *client) error {
	content, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req := envelope("create_auth_token", string(content))
	return func(ctx context.Context, c *client) error {
		rep, err := c.call(ctx, req)
		if err != nil {
			return fmt.Errorf("create_auth_token: %w", err)
		}
		var res struct {
			Status  int    `json:"status"`
			Token   string `json:"token"`
			Message string `json:"message"`
		}
		if rep.StatusCode != 0 {
			return fmt.Errorf("create_auth_token: status_code %d %q", rep.StatusCode, rep.StatusString)
		}
		if err := json.Unmarshal(rep.Content, &res); err != nil || res.Status != 0 || res.Token == "" {
			return fmt.Errorf("create_auth_token: login refused: %s", rep.Content)
		}
		return nil
	}
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}
