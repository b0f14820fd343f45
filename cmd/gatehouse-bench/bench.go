package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"gatehouse/core"
)

// Startup targets (the load targets live with the scenarios).
const (
	rssTarget   = 40_000_000 // 40 MB
	startTarget = 300 * time.Millisecond
)

// startupResult is one start of a server: exec to first 200 from /healthz, then VmRSS after
// it stayed idle for a moment.
type startupResult struct {
	Server         string        `json:"server"`
	Round          int           `json:"round"`
	StartToHealthy time.Duration `json:"start_to_healthy_ns"`
	IdleRSS        int64         `json:"idle_rss_bytes"`
	// Seeded marks the start on the seeded site's data directory: reported, but the startup
	// targets are those of a fresh server.
	Seeded bool `json:"seeded,omitempty"`
}

// bench measures what opts select and writes the human-readable report to out as it goes.
// Every child process it starts is stopped before it returns, also on error.
func bench(ctx context.Context, opts options, out io.Writer) (_ *report, err error) {
	if opts.cpuprofile != "" {
		f, err := os.Create(opts.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return nil, err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	rep := &report{
		Config: reportConfig{
			Duration: opts.duration, Warmup: opts.warmup, Rounds: opts.rounds,
			Quick: opts.quick, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
			GoVersion: runtime.Version(), GatehouseVersion: core.Version,
			Shapes: opts.shapes,
		},
	}
	fmt.Fprintf(out, "gatehouse-bench: gatehouse %s, %s %s/%s, %d CPUs, GOMAXPROCS %d\n",
		core.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "runs of %v after a %v warm-up, %d round(s), interleaved; best figure of the rounds is reported\n",
		opts.duration, opts.warmup, opts.rounds)
	rep.Config.LoadAvgStart = loadAverage()
	fmt.Fprintf(out, "load average before: %.2f\n\n", rep.Config.LoadAvgStart)

	tmp, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()

	load := selectLoad(opts)
	seed := slices.ContainsFunc(load, func(sc *scenario) bool { return sc.server == siteServer })
	seed = seed || opts.site && opts.selected("startup")

	// The site is seeded once, before anything is measured, and serves every round.
	var site *seedResult
	if seed {
		dir, err := os.MkdirTemp(tmp, "site-")
		if err != nil {
			return nil, err
		}
		size := fullSite
		if opts.quick {
			size = quickSite
		}
		if site, err = seedSite(ctx, dir, size, out); err != nil {
			return nil, err
		}
		rep.Seed = site
	}

	if opts.selected("startup") {
		if err := measureStartups(ctx, opts, tmp, site, rep, out); err != nil {
			return nil, err
		}
	}

	if len(load) > 0 {
		if err := runScenarios(ctx, opts, tmp, site, load, rep, out); err != nil {
			return nil, err
		}
	}
	if opts.access && slices.ContainsFunc(accessNames, opts.selected) {
		if err := runAccess(ctx, opts, tmp, rep, out); err != nil {
			return nil, err
		}
	}
	rep.Config.LoadAvgEnd = loadAverage()
	rep.evaluate()
	rep.writeSummary(out)
	return rep, nil
}

// selectLoad returns the scenarios to run, in the registry's order: those selected that run at
// one of the shapes, the scenarios they are compared with side by side, and the baselines
// they are measured against.
func selectLoad(opts options) []*scenario {
	want := map[string]bool{}
	for _, sc := range scenarios {
		if sc.server == baselineServer || !opts.selected(sc.name) || sc.server == siteServer && !opts.site {
			continue
		}
		if !slices.ContainsFunc(opts.shapes, func(s loadShape) bool { return sc.runsAt(s.Name) }) {
			continue
		}
		want[sc.name] = true
		if sc.compare != "" {
			want[sc.compare] = true
		}
	}
	for name := range maps.Clone(want) {
		want[scenarioByName(name).baselineName()] = true
	}
	var load []*scenario
	for _, sc := range scenarios {
		if want[sc.name] {
			load = append(load, sc)
		}
	}
	if len(load) == 1 { // a baseline alone: nothing to measure
		return nil
	}
	return load
}

// measureStartups starts gatehouse on an empty data directory, again on that (now existing)
// directory, on the seeded site's directory if there is one, and the baseline for reference,
// once per round, with nothing else running.
func measureStartups(ctx context.Context, opts options, tmp string, site *seedResult, rep *report, out io.Writer) error {
	fmt.Fprintf(out, "startup: exec → first 200 from GET /healthz (polled every %v); VmRSS after %v idle\n", healthPoll, opts.idle)
	fmt.Fprintf(out, "%-5s  %-31s %10s %12s\n", "round", "server", "start", "idle RSS")
	for round := 1; round <= opts.rounds; round++ {
		data, err := os.MkdirTemp(tmp, "startup-")
		if err != nil {
			return err
		}
		type startRun struct {
			name   string
			args   []string
			seeded bool
		}
		runs := []startRun{
			{"gatehouse (empty data dir)", []string{cmdServeGatehouse, "--data", data}, false},
			{"gatehouse (existing data dir)", []string{cmdServeGatehouse, "--data", data}, false},
		}
		if site != nil {
			runs = append(runs, startRun{siteStartName, []string{cmdServeGatehouse, "--data", site.Dir}, true})
		}
		runs = append(runs, startRun{"baseline", []string{cmdServeBaseline}, false})
		for _, r := range runs {
			res, err := measureStartup(ctx, r.name, r.args, opts.idle)
			if err != nil {
				return err
			}
			res.Round, res.Seeded = round, r.seeded
			rep.Startup = append(rep.Startup, res)
			fmt.Fprintf(out, "%-5d  %-31s %10s %12s\n", round, r.name, fmtDur(res.StartToHealthy), fmtBytes(res.IdleRSS))
		}
	}
	fmt.Fprintln(out)
	return nil
}

func measureStartup(ctx context.Context, name string, args []string, idle time.Duration) (startupResult, error) {
	res := startupResult{Server: name}
	c, err := startChild(ctx, name, args, childEnv(), os.Stderr)
	if err != nil {
		return res, err
	}
	defer c.stop()
	if res.StartToHealthy, err = c.waitHealthy(ctx); err != nil {
		return res, err
	}
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if res.IdleRSS, err = c.rss(); err != nil {
		return res, err
	}
	return res, c.stop()
}

// siteStartName is the startup row of gatehouse on the seeded site.
const siteStartName = "gatehouse (seeded site)"

func childEnv() []string {
	return []string{core.EnvPrefix + "ADMIN_PASSWORD=" + benchPassword}
}

// runScenarios starts one child per server the scenarios need (the baseline, gatehouse on a
// fresh data directory, gatehouse on the seeded site) and runs every scenario at every load
// shape it runs at, round after round; the baseline runs at every shape another scenario runs
// at. Within a round, each load shape runs its scenarios back to back, in reverse order every
// other round, so slow drifts of the machine hit the servers alike.
func runScenarios(ctx context.Context, opts options, tmp string, site *seedResult, load []*scenario, rep *report, out io.Writer) (err error) {
	servers := map[serverKind]*child{}
	defer func() {
		for _, c := range servers {
			if serr := c.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	need := map[serverKind]bool{}
	for i, sc := range load {
		need[sc.server] = true
		if sc.siteRequest != nil {
			if site == nil {
				return fmt.Errorf("%s: no seeded site", sc.name)
			}
			bound := *sc
			bound.request = sc.siteRequest(site.Size)
			load[i] = &bound
		}
	}
	// runsAt is sc.runsAt, except that a baseline runs wherever a scenario measured against
	// it does.
	runsAt := func(sc *scenario, shape string) bool {
		if sc.server != baselineServer {
			return sc.runsAt(shape)
		}
		return slices.ContainsFunc(load, func(o *scenario) bool {
			return o.server != baselineServer && o.baselineName() == sc.name && o.runsAt(shape)
		})
	}
	if need[baselineServer] {
		args := []string{cmdServeBaseline}
		if opts.baseProfile != "" {
			args = append(args, "--cpuprofile", opts.baseProfile)
		}
		c, err := startChild(ctx, "baseline", args, nil, os.Stderr)
		if err != nil {
			return err
		}
		servers[baselineServer] = c
		if _, err := c.waitHealthy(ctx); err != nil {
			return err
		}
	}
	if need[gatehouseServer] {
		data, err := os.MkdirTemp(tmp, "load-")
		if err != nil {
			return err
		}
		args := []string{cmdServeGatehouse, "--data", data}
		if opts.ghProfile != "" {
			args = append(args, "--cpuprofile", opts.ghProfile)
		}
		c, err := startChild(ctx, "gatehouse", args, childEnv(), os.Stderr)
		if err != nil {
			return err
		}
		servers[gatehouseServer] = c
		if _, err := c.waitHealthy(ctx); err != nil {
			return err
		}
	}
	if need[siteServer] {
		args := []string{cmdServeGatehouse, "--data", site.Dir}
		if opts.siteProfile != "" {
			args = append(args, "--cpuprofile", opts.siteProfile)
		}
		c, err := startChild(ctx, siteStartName, args, childEnv(), os.Stderr)
		if err != nil {
			return err
		}
		servers[siteServer] = c
		if _, err := c.waitHealthy(ctx); err != nil {
			return err
		}
	}

	// The HTTP scenarios' paths are made once, before anything is measured.
	paths := map[string]string{}
	for _, sc := range load {
		if sc.proto != protoHTTP {
			continue
		}
		if paths[sc.name], err = sc.httpPath(ctx, servers[sc.server].httpURL()); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
	}

	if slices.ContainsFunc(opts.shapes, func(s loadShape) bool {
		return s.Name == "dashboard" && slices.ContainsFunc(load, func(sc *scenario) bool { return runsAt(sc, s.Name) })
	}) {
		fmt.Fprintf(out, "dashboard shape: 4 operators at once on the web UI of a large site, 1 request in flight each, sent at\n"+
			"random moments, %d req/s per connection on average: a fast typist whose every keystroke fires a search,\n"+
			"or paging through the audit log as fast as pages come (more than people do, short of saturating the\n"+
			"server). The latency shape is one request at a time, back to back. Search and audit page targets:\n"+
			"p99 ≤ 20 ms at both.\n\n", dashboardRate)
	}
	writeRunHeader(out)
	for round := 1; round <= opts.rounds; round++ {
		order := slices.Clone(load)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, shape := range opts.shapes {
			for _, sc := range order {
				if !runsAt(sc, shape.Name) {
					continue
				}
				srv := servers[sc.server]
				var res runResult
				if sc.proto == protoHTTP {
					res, err = runHTTPLoad(ctx, srv.addr, paths[sc.name], srv.cmd.Process.Pid, sc, shape, opts.warmup, opts.duration)
				} else {
					res, err = runLoad(ctx, srv.wsURLAt(sc.proto.wsPath()), srv.cmd.Process.Pid, sc, shape, opts.warmup, opts.duration)
				}
				if err != nil {
					if srv.exited() {
						return errors.Join(err, srv.stop())
					}
					return err
				}
				res.Round = round
				rep.Runs = append(rep.Runs, res)
				writeRun(out, res)
			}
		}
	}
	fmt.Fprintln(out)
	return nil
}
