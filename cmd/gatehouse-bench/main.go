// Command gatehouse-bench is gatehouse's load tool. It measures request/response throughput
// and latency of the Leosac websocket API against a baseline measured in the same run (a bare
// coder/websocket server that decodes the envelope and answers status 0), plus the idle
// resident memory and the start-to-healthy time of a gatehouse process.
//
//	gatehouse-bench [-duration 5s] [-rounds 1] [-scenarios a,b] [-shapes a,b] [-json] [-quick]
//	                [-site=false] [-latency-rate 4500] [-cpuprofile F] [-gatehouse-cpuprofile F]
//	                [-site-cpuprofile F] [-baseline-cpuprofile F] [-access=false]
//
// The servers run as child processes (the tool re-executes itself with the hidden
// subcommands serve-baseline and serve-gatehouse), so the load generator does not share a Go
// runtime with them. Each scenario runs at the load shapes it names (scenarios.go), by
// default two: throughput (32 connections × 8 requests in flight each) and latency (1 × 1,
// capped under gatehouse's per-connection rate limit); the baseline runs at every shape used.
// Each run has a warm-up, then a measured window. Rounds interleave the servers and the best
// figure of the rounds is kept.
//
// Besides the Leosac dialect: sysadm.query, the sysadm dialect's logged-in rpc/query round trip
// on /sysadm at the same shapes, printed side by side with whoami of the same run; and
// token.head, the wazo-auth token check HEAD /0.1/token/{token} with a valid token on 32
// keep-alive HTTP/1.1 connections (one request in flight each), against baseline.http, a bare
// net/http handler answering 204 on the same route pattern in the baseline child (target ≥
// 0.5× its req/s). Selecting a scenario runs its baseline and the scenario it is shown next to.
//
// The site scenarios run against a third child: gatehouse on a data directory seeded once per
// invocation, before any measurement, with a large site (seed.go: 100,000 users, 200,000
// credentials, 1,000 doors, 5,000 schedule mappings, 1,000,000 events; much less with -quick)
// straight through SQL. They read one user at the throughput and latency shapes, and search
// users and read the first audit page at the latency shape and at the dashboard shape (4
// operators × 1 request in flight, paced), against absolute p99 bounds; gatehouse's start and
// idle memory on that directory are reported too. -site=false skips the seeding and all that.
//
// The access measurements (access.go) run last, on their own gatehouse and baseline children:
// access.path, the time from a swipe (reader.simulate at 500/s) to its access event pushed to
// a subscriber, next to the baseline's send → reply at the same pace; and fanout, 1,000
// subscribers (50 with -quick) of the access events at 1,000 events/s plus one that never
// reads, the latency from each event's commit to its delivery and whether all were
// delivered, next to the baseline's broadcast mode. -access=false skips them.
//
// Figures are reported as ratios against the baseline because the absolute numbers depend on
// the machine; the server CPU time per request (from /proc) is reported too, as it depends
// less on how busy the machine is.
//
// A missed target is reported, not an error: the exit code is 0 unless the measurement itself
// failed (1) or the flags were wrong (2). Scenarios are registered in scenarios.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if code, ok := runChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code (0 ok, 1 failure, 2 usage).
// The human-readable report goes to stdout, or to stderr with -json, in which case stdout
// carries exactly one JSON object.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse-bench: %v\n", err)
		return 2
	}
	human := stdout
	if opts.json {
		human = stderr
	}
	rep, err := bench(ctx, opts, human)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse-bench: %v\n", err)
		return 1
	}
	if opts.json {
		if err := writeJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "gatehouse-bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// options are the parsed flags.
type options struct {
	duration    time.Duration // measured time per run
	warmup      time.Duration // unmeasured time before it
	rounds      int           // interleaved repetitions
	scenarios   []string      // filter (scenario names and "startup"); empty = all
	json        bool
	quick       bool
	idle        time.Duration // idle time before reading VmRSS
	latencyRate float64       // per-connection request rate of the latency shape; 0 = unpaced
	cpuprofile  string        // CPU profile of this process (the load generator)
	ghProfile   string        // CPU profile of the gatehouse child under load
	baseProfile string        // CPU profile of the baseline child under load
	siteProfile string        // CPU profile of the gatehouse child serving the seeded site
	site        bool          // seed a site and run the scenarios on it
	shapes      []loadShape   // the load shapes to run, in order
	access      bool          // run the access path and fan-out measurements
	// fanoutPoints are the subscriber counts × event rates of the fan-out measurement; the
	// first is the target's (1,000 × 1,000/s), the others show where the limit lies.
	fanoutPoints []fanoutPoint
}

// fanoutPoint is one fan-out measurement: Subs reading subscribers (plus one stalled) and Rate
// events per second.
type fanoutPoint struct{ Subs, Rate int }

// parseFanoutPoints parses "SUBSxRATE,..." (e.g. "1000x1000,100x1000").
func parseFanoutPoints(list string) ([]fanoutPoint, error) {
	var out []fanoutPoint
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var pt fanoutPoint
		if _, err := fmt.Sscanf(f, "%dx%d", &pt.Subs, &pt.Rate); err != nil || pt.Subs < 1 || pt.Rate < fanoutProducers ||
			fmt.Sprintf("%dx%d", pt.Subs, pt.Rate) != f {
			return nil, fmt.Errorf("-fanout: %q is not SUBSxRATE (e.g. 1000x1000; rate ≥ %d)", f, fanoutProducers)
		}
		out = append(out, pt)
	}
	if len(out) == 0 {
		return nil, errors.New("-fanout: no measurement point")
	}
	return out, nil
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gatehouse-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each run (after a warm-up)")
	fs.IntVar(&o.rounds, "rounds", 1, "how many times the interleaved runs are repeated; the best figure of each is reported")
	list := fs.String("scenarios", "", "comma-separated scenarios to run (default all; each brings its baseline and, for sysadm.query, whoami): "+
		strings.Join(scenarioNames(), ", ")+", "+strings.Join(accessNames, ", ")+", startup")
	fs.BoolVar(&o.access, "access", true, "measure the access path (swipe → pushed event at 500/s) and the fan-out of events to "+
		"1,000 subscribers at 1,000 events/s with one stalled (scenarios "+strings.Join(accessNames, ", ")+")")
	fs.BoolVar(&o.json, "json", false, "print the results as one JSON object on stdout (the table goes to stderr)")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 500ms runs, 1 round, 4×2 connections for the throughput shape, a small seeded site")
	fs.BoolVar(&o.site, "site", true,
		"seed a large site, run the scenarios on it (user.read, search.user_username, audit.get) and measure gatehouse's start on it")
	fs.Float64Var(&o.latencyRate, "latency-rate", defaultLatencyRate,
		"requests/s cap of the 1×1 latency shape, kept under gatehouse's per-connection rate limit (0 = unpaced)")
	shapeList := fs.String("shapes", "throughput,latency,dashboard",
		"comma-separated load shapes to run: throughput (32×8), latency (1×1), dashboard (4×1 paced, the site's operator scenarios)")
	fanoutList := fs.String("fanout", fmt.Sprintf("%dx%d", fanoutSubs, fanoutRate),
		"comma-separated fan-out points SUBSxRATE (subscribers x events/s); the target is 1000x1000, smaller points show where the limit lies (-quick: 50x1000)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load generator to this file")
	fs.StringVar(&o.ghProfile, "gatehouse-cpuprofile", "", "write a CPU profile of the gatehouse server under load to this file (of the access server when only access scenarios run)")
	fs.StringVar(&o.baseProfile, "baseline-cpuprofile", "", "write a CPU profile of the baseline server under load to this file")
	fs.StringVar(&o.siteProfile, "site-cpuprofile", "", "write a CPU profile of the gatehouse server of the seeded site under load to this file")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: gatehouse-bench [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.warmup = time.Second
	o.idle = time.Second
	tp, lat, dash := defaultShapes(o.latencyRate)
	if o.quick {
		if !set["duration"] {
			o.duration = 500 * time.Millisecond
		}
		if !set["rounds"] {
			o.rounds = 1
		}
		o.warmup = 200 * time.Millisecond
		o.idle = 500 * time.Millisecond
		tp.Conns, tp.Inflight = 4, 2
		if !set["fanout"] {
			*fanoutList = fmt.Sprintf("%dx%d", fanoutSubsQuick, fanoutRate)
		}
	}
	var err error
	if o.fanoutPoints, err = parseFanoutPoints(*fanoutList); err != nil {
		return o, err
	}
	for _, n := range strings.Split(*shapeList, ",") {
		switch strings.TrimSpace(n) {
		case tp.Name:
			o.shapes = append(o.shapes, tp)
		case lat.Name:
			o.shapes = append(o.shapes, lat)
		case dash.Name:
			o.shapes = append(o.shapes, dash)
		case "":
		default:
			return o, fmt.Errorf("-shapes: unknown load shape %q (known: %s, %s, %s)", n, tp.Name, lat.Name, dash.Name)
		}
	}
	if o.duration <= 0 {
		return o, errors.New("-duration must be positive")
	}
	if o.rounds < 1 {
		return o, errors.New("-rounds must be at least 1")
	}
	if o.latencyRate < 0 {
		return o, errors.New("-latency-rate must not be negative")
	}
	if *list != "" {
		known := map[string]bool{"startup": true}
		for _, n := range accessNames {
			known[n] = true
		}
		for _, n := range scenarioNames() {
			known[n] = true
		}
		for _, n := range strings.Split(*list, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if !known[n] {
				return o, fmt.Errorf("-scenarios: unknown scenario %q (known: %s, %s, startup)", n,
					strings.Join(scenarioNames(), ", "), strings.Join(accessNames, ", "))
			}
			if !o.site && scenarioByName(n) != nil && scenarioByName(n).server == siteServer {
				return o, fmt.Errorf("-scenarios: %s runs on the seeded site, which -site=false skips", n)
			}
			o.scenarios = append(o.scenarios, n)
		}
	}
	return o, nil
}

// selectedAny reports whether any of the names was asked for explicitly.
func (o options) selectedAny(names ...string) bool {
	return slices.ContainsFunc(o.scenarios, func(n string) bool { return slices.Contains(names, n) })
}

// selected reports whether the scenario (or "startup") was asked for.
func (o options) selected(name string) bool {
	if len(o.scenarios) == 0 {
		return true
	}
	for _, n := range o.scenarios {
		if n == name {
			return true
		}
	}
	return false
}
