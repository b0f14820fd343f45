package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// This file is the registry of what is measured. To add a scenario, append to scenarios: give
// it a name, the server it runs against, an optional per-connection setup (run once on each
// connection before the clock starts) and the request it sends in a loop (or, on the seeded
// site, a function that builds that request from the site's size), the load shapes it runs at
// if not throughput and latency, and targets if it has acceptance criteria.

// serverKind names one of the child servers.
type serverKind string

const (
	baselineServer  serverKind = "baseline"
	gatehouseServer serverKind = "gatehouse"
	// siteServer is gatehouse on the data directory of the seeded site (seed.go).
	siteServer serverKind = "site"
)

// metric is what a target compares with the baseline.
type metric string

const (
	// throughput: the scenario's req/s must be at least ratio × the baseline's.
	throughput metric = "throughput"
	// p99: the scenario's 99th-percentile latency must be at most ratio × the baseline's.
	p99 metric = "p99"
	// p99Max: the scenario's 99th-percentile latency must be at most limit (an absolute bound,
	// for requests whose cost is the server's work on the data, not the protocol).
	p99Max metric = "p99max"
)

// target is one acceptance criterion of a scenario, relative to the baseline measured in the
// same run at the same load shape, or absolute (p99Max).
type target struct {
	shape  string // name of the load shape it is evaluated at
	metric metric
	ratio  float64       // throughput, p99
	limit  time.Duration // p99Max
}

// protocol is how a scenario talks to its server.
type protocol int

const (
	// protoLeosac: Leosac envelopes on the websocket at /websocket.
	protoLeosac protocol = iota
	// protoSysadm: sysadm envelopes ({"namespace","name","id","args"}) on the websocket at /sysadm.
	protoSysadm
	// protoHTTP: HEAD requests on keep-alive HTTP/1.1 connections, one in flight on each
	// (httpload.go); the scenario's httpPath names the path.
	protoHTTP
)

// wsPath is the websocket path of the protocol.
func (p protocol) wsPath() string {
	if p == protoSysadm {
		return "/sysadm"
	}
	return "/websocket"
}

// scenario is one kind of request measured against one server.
type scenario struct {
	name   string
	server serverKind
	proto  protocol
	// baseline names the baseline scenario its ratios are taken against, at the same load
	// shape; "" is the echo baseline ("baseline"). Selecting the scenario runs its baseline.
	baseline string
	// compare names another scenario of the same run printed side by side with it (ratios of
	// req/s, p99 and server CPU per request); selecting the scenario runs that one too.
	compare string
	// httpPath, for protoHTTP, returns the path to HEAD on the server at base
	// ("http://host:port"). It runs once per invocation, before anything is measured (a login
	// there must not count against per-user caps that the later runs fill up).
	httpPath func(ctx context.Context, base string) (string, error)
	// setup runs once on each connection before the measurement starts (e.g. a login).
	setup func(ctx context.Context, c *client) error
	// request appends one request frame carrying the given uuid to dst.
	request func(dst, id []byte) []byte
	// siteRequest, for scenarios on the seeded site, returns request for a site of that size.
	siteRequest func(site siteSize) func(dst, id []byte) []byte
	// shapes are the names of the load shapes it runs at; nil means throughput and latency.
	// The baseline runs at every shape another selected scenario runs at.
	shapes  []string
	targets []target
}

// baselineName returns the name of the baseline scenario it is compared with.
func (sc *scenario) baselineName() string {
	if sc.baseline == "" {
		return scenarios[0].name
	}
	return sc.baseline
}

// runsAt reports whether the scenario runs at the named load shape.
func (sc *scenario) runsAt(shape string) bool {
	if sc.shapes == nil {
		return shape == "throughput" || shape == "latency"
	}
	return slices.Contains(sc.shapes, shape)
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
	// The same logged-in round trip in the sysadm dialect, side by side with whoami. No target:
	// the issue asks for the figures next to whoami's.
	{
		name:    "sysadm.query",
		server:  gatehouseServer,
		proto:   protoSysadm,
		setup:   sysadmLogin(adminUser, benchPassword),
		request: sysadmEnvelope("rpc", "query", `{}`),
		compare: "whoami",
	},
	// The wazo-auth token check, HEAD /0.1/token/{token} with a valid token, against a bare
	// net/http handler answering 204 on the same path pattern (baseline.http).
	{
		name:     "baseline.http",
		server:   baselineServer,
		proto:    protoHTTP,
		httpPath: func(context.Context, string) (string, error) { return "/0.1/token/" + baselineToken, nil },
		shapes:   []string{"throughput"},
	},
	{
		name:     "token.head",
		server:   gatehouseServer,
		proto:    protoHTTP,
		baseline: "baseline.http",
		httpPath: createToken(adminUser, benchPassword),
		shapes:   []string{"throughput"},
		targets:  []target{{shape: "throughput", metric: throughput, ratio: 0.5}},
	},
	// The seeded site (100,000 users, 200,000 credentials, 1,000 doors, 5,000 mappings,
	// 1,000,000 events), logged in as admin.
	{
		name:        "user.read",
		server:      siteServer,
		setup:       login(adminUser, benchPassword),
		siteRequest: userRead,
		targets:     []target{{shape: "throughput", metric: throughput, ratio: 0.5}},
	},
	{
		name:        "search.user_username",
		server:      siteServer,
		setup:       login(adminUser, benchPassword),
		siteRequest: searchUsername,
		shapes:      []string{"dashboard", "latency"},
		targets:     operatorTargets,
	},
	{
		name:        "audit.get",
		server:      siteServer,
		setup:       login(adminUser, benchPassword),
		siteRequest: func(siteSize) func(dst, id []byte) []byte { return envelope("audit.get", `{"p":1,"ps":20}`) },
		shapes:      []string{"dashboard", "latency"},
		targets:     operatorTargets,
	},
}

// operatorTargets are the criteria for what an operator waits for on a large site:
// p99 ≤ 20 ms at the dashboard shape (several operators at once) and at the latency shape
// (one request at a time).
var operatorTargets = []target{
	{shape: "dashboard", metric: p99Max, limit: 20 * time.Millisecond},
	{shape: "latency", metric: p99Max, limit: 20 * time.Millisecond},
}

// userRead reads one user of the site chosen at random for each request: {"user_id": N}.
func userRead(site siteSize) func(dst, id []byte) []byte {
	return envelopeFunc("user.read", func(dst []byte) []byte {
		dst = append(dst, `{"user_id":`...)
		dst = strconv.AppendInt(dst, seededUserID(1+rand.IntN(site.Users)), 10)
		return append(dst, '}')
	})
}

// searchUsername searches the usernames for a random fragment of 4 to 6 digits of an existing
// username (user000421 → "0042", "00421", "000421", …), as an operator typing part of a badge
// number would: {"partial_name": "0421"}.
func searchUsername(site siteSize) func(dst, id []byte) []byte {
	return envelopeFunc("search.user_username", func(dst []byte) []byte {
		digits := seededUsername(1 + rand.IntN(site.Users))[len("user"):]
		n := 4 + rand.IntN(3)
		at := rand.IntN(len(digits) - n + 1)
		dst = append(dst, `{"partial_name":"`...)
		dst = append(dst, digits[at:at+n]...)
		return append(dst, `"}`...)
	})
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
	// Poisson sends at random moments, Rate per second on average, instead of capping.
	Poisson bool `json:"poisson,omitempty"`
}

// String returns e.g. "32×8", "1×1 ≤4500/s" or, Poisson, "4×1 ~10/s".
func (s loadShape) String() string {
	str := fmt.Sprintf("%d×%d", s.Conns, s.Inflight)
	switch {
	case s.Rate > 0 && s.Poisson:
		str += fmt.Sprintf(" ~%g/s", s.Rate)
	case s.Rate > 0:
		str += fmt.Sprintf(" ≤%g/s", s.Rate)
	}
	return str
}

// dashboardRate paces each connection of the dashboard shape. That shape stands for a handful
// of operators working at once on the web UI of a large site: 4 connections with 1 request in
// flight each, each sending at random moments (a Poisson process, so that the operators
// neither act in step nor take turns) 10 requests/s on average — a fast typist whose every
// keystroke in the top-bar search fires a search, or someone paging through the audit log as
// fast as the pages come. That is more than people click or type, yet short of saturating
// the server, which would measure its queue rather than its answers.
const dashboardRate = 10

func defaultShapes(latencyRate float64) (tp, lat, dash loadShape) {
	return loadShape{Name: "throughput", Conns: 32, Inflight: 8},
		loadShape{Name: "latency", Conns: 1, Inflight: 1, Rate: latencyRate},
		loadShape{Name: "dashboard", Conns: 4, Inflight: 1, Rate: dashboardRate, Poisson: true}
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

// envelopeFunc returns a request builder for a Leosac envelope with a fixed type whose content
// is appended by content for each request. content is called from several goroutines at once.
func envelopeFunc(typ string, content func(dst []byte) []byte) func(dst, id []byte) []byte {
	prefix := `{"uuid":"`
	middle := `","type":` + quote(typ) + `,"content":`
	return func(dst, id []byte) []byte {
		dst = append(dst, prefix...)
		dst = append(dst, id...)
		dst = append(dst, middle...)
		return append(content(dst), '}')
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

// sysadmEnvelope returns a request builder for a sysadm envelope with a fixed namespace, name
// and args.
func sysadmEnvelope(namespace, name, args string) func(dst, id []byte) []byte {
	prefix := `{"namespace":` + quote(namespace) + `,"name":` + quote(name) + `,"id":"`
	suffix := `","args":` + args + `}`
	return func(dst, id []byte) []byte {
		dst = append(dst, prefix...)
		dst = append(dst, id...)
		return append(dst, suffix...)
	}
}

// sysadmLogin returns a setup that logs a sysadm connection in with rpc/auth.
func sysadmLogin(username, password string) func(ctx context.Context, c *client) error {
	args, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req := sysadmEnvelope("rpc", "auth", string(args))
	return func(ctx context.Context, c *client) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		seq, err := c.send(ctx, req)
		if err != nil {
			return fmt.Errorf("rpc/auth: %w", err)
		}
		for {
			b, err := c.read(ctx)
			if err != nil {
				return fmt.Errorf("rpc/auth: %w", err)
			}
			var f struct {
				Name string          `json:"name"`
				ID   string          `json:"id"`
				Args json.RawMessage `json:"args"`
			}
			if err := json.Unmarshal(b, &f); err != nil {
				return fmt.Errorf("rpc/auth: server sent a non-JSON frame %q", truncate(b))
			}
			if s, ok := c.seqOf([]byte(f.ID)); !ok || s != seq {
				continue
			}
			var granted []json.RawMessage // ["<token>", <seconds left>]
			if f.Name != "response" || json.Unmarshal(f.Args, &granted) != nil || len(granted) != 2 {
				return fmt.Errorf("rpc/auth: login refused: %s", truncate(b))
			}
			return nil
		}
	}
}

// scenarioByName returns the registered scenario of that name, or nil.
func scenarioByName(name string) *scenario {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc
		}
	}
	return nil
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}
