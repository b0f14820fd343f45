package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"gatehouse/core"
)

// report is everything one invocation measured; -json prints it as one object.
type report struct {
	Config  reportConfig    `json:"config"`
	Seed    *seedResult     `json:"seed,omitempty"` // the seeded site, if any
	Startup []startupResult `json:"startup"`
	Runs    []runResult     `json:"runs"`    // every run, in the order they ran
	Access  []accessResult  `json:"access"`  // the access path and fan-out measurements
	Results []aggregate     `json:"results"` // best of the rounds per scenario and shape
	Targets []targetResult  `json:"targets"`
	Notes   []string        `json:"notes"`
}

// reportConfig records how the figures were taken.
type reportConfig struct {
	Duration         time.Duration `json:"duration_ns"`
	Warmup           time.Duration `json:"warmup_ns"`
	Rounds           int           `json:"rounds"`
	Quick            bool          `json:"quick"`
	GOMAXPROCS       int           `json:"gomaxprocs"`
	NumCPU           int           `json:"num_cpu"`
	GoVersion        string        `json:"go_version"`
	GatehouseVersion string        `json:"gatehouse_version"`
	Shapes           []loadShape   `json:"shapes"`
	LoadAvgStart     float64       `json:"loadavg_start"` // 1-minute load average before and after
	LoadAvgEnd       float64       `json:"loadavg_end"`
}

// aggregate is the best figures of one scenario at one load shape over the rounds, and their
// ratios to the baseline's best at the same shape.
type aggregate struct {
	Scenario        string        `json:"scenario"`
	Server          serverKind    `json:"server"`
	Shape           loadShape     `json:"shape"`
	Rounds          int           `json:"rounds"`
	Requests        int64         `json:"requests"` // summed over the rounds
	ReqPerSec       float64       `json:"req_per_sec"`
	P50             time.Duration `json:"p50_ns"`
	P99             time.Duration `json:"p99_ns"`
	Errors          int64         `json:"errors"` // summed over the rounds
	Statuses        map[int]int64 `json:"statuses,omitempty"`
	ServerCPUPerReq time.Duration `json:"server_cpu_per_req_ns"`      // best of the rounds
	ThroughputRatio float64       `json:"throughput_ratio,omitempty"` // req/s ÷ baseline's
	P99Ratio        float64       `json:"p99_ratio,omitempty"`        // p99 ÷ baseline's
	CPURatio        float64       `json:"cpu_ratio,omitempty"`        // server CPU/req ÷ baseline's
	Baseline        string        `json:"baseline,omitempty"`         // the baseline scenario of the ratios
	// Compare is the side-by-side comparison with another scenario of the run, if it has one.
	Compare    *comparison    `json:"compare,omitempty"`
	statusText map[int]string // first status_string per code
	scenario   *scenario      // nil for names no longer registered
	byRound    []runResult    // the runs it was made of
}

// comparison is one scenario's figures as ratios to another's at the same load shape.
type comparison struct {
	Scenario        string  `json:"scenario"`
	ThroughputRatio float64 `json:"throughput_ratio"` // req/s ÷ the other's
	P99Ratio        float64 `json:"p99_ratio"`        // p99 ÷ the other's
	CPURatio        float64 `json:"cpu_ratio"`        // server CPU/req ÷ the other's
}

// ratios returns a's figures as ratios to b's (0 where b's is unknown).
func ratios(a, b *aggregate) comparison {
	c := comparison{Scenario: b.Scenario}
	if b.ReqPerSec > 0 {
		c.ThroughputRatio = a.ReqPerSec / b.ReqPerSec
	}
	if b.P99 > 0 {
		c.P99Ratio = float64(a.P99) / float64(b.P99)
	}
	if b.ServerCPUPerReq > 0 {
		c.CPURatio = float64(a.ServerCPUPerReq) / float64(b.ServerCPUPerReq)
	}
	return c
}

// proto returns the protocol of the aggregate's scenario (Leosac for names no longer registered).
func (a *aggregate) proto() protocol {
	if a.scenario == nil {
		return protoLeosac
	}
	return a.scenario.proto
}

// statusName names a status code of the aggregate's protocol: a Leosac status_code, or an
// HTTP-style status (sysadm error codes, HTTP answers).
func (a *aggregate) statusName(code int) string {
	if a.proto() == protoLeosac {
		return fmt.Sprintf("status_code %d (%s)", code, core.Code(code))
	}
	return fmt.Sprintf("status %d (%s)", code, http.StatusText(code))
}

// targetResult is one acceptance criterion with its measured value.
type targetResult struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
	Detail string  `json:"detail"`
}

// evaluate fills Results, Targets and Notes from Runs and Startup.
func (r *report) evaluate() {
	index := map[string]int{}
	for _, run := range r.Runs {
		key := run.Scenario + "\x00" + run.Shape.Name
		i, ok := index[key]
		if !ok {
			i = len(r.Results)
			index[key] = i
			a := aggregate{Scenario: run.Scenario, Server: run.Server, Shape: run.Shape,
				Statuses: map[int]int64{}, statusText: map[int]string{}}
			for _, sc := range scenarios {
				if sc.name == run.Scenario {
					a.scenario = sc
				}
			}
			r.Results = append(r.Results, a)
		}
		a := &r.Results[i]
		a.Rounds++
		a.byRound = append(a.byRound, run)
		a.Requests += run.Requests
		a.Errors += run.Errors
		for code, n := range run.Statuses {
			a.Statuses[code] += n
			if _, seen := a.statusText[code]; !seen {
				a.statusText[code] = run.StatusText[code]
			}
		}
		if run.Requests == 0 {
			continue
		}
		if run.ReqPerSec > a.ReqPerSec {
			a.ReqPerSec = run.ReqPerSec
		}
		if a.P50 == 0 || run.P50 < a.P50 {
			a.P50 = run.P50
		}
		if a.P99 == 0 || run.P99 < a.P99 {
			a.P99 = run.P99
		}
		if run.ServerCPUPerReq > 0 && (a.ServerCPUPerReq == 0 || run.ServerCPUPerReq < a.ServerCPUPerReq) {
			a.ServerCPUPerReq = run.ServerCPUPerReq
		}
	}
	// Results by scenario and shape name.
	byKey := map[string]*aggregate{}
	for i := range r.Results {
		byKey[r.Results[i].Scenario+"\x00"+r.Results[i].Shape.Name] = &r.Results[i]
	}
	baseOf := func(a *aggregate) *aggregate {
		name := scenarios[0].name
		if a.scenario != nil {
			name = a.scenario.baselineName()
		}
		return byKey[name+"\x00"+a.Shape.Name]
	}
	for i := range r.Results {
		a := &r.Results[i]
		if a.Server == baselineServer {
			continue
		}
		if a.scenario != nil && a.scenario.compare != "" {
			if o := byKey[a.scenario.compare+"\x00"+a.Shape.Name]; o != nil {
				c := ratios(a, o)
				a.Compare = &c
			}
		}
		b := baseOf(a)
		if b == nil {
			continue
		}
		c := ratios(a, b)
		a.Baseline, a.ThroughputRatio, a.P99Ratio, a.CPURatio = b.Scenario, c.ThroughputRatio, c.P99Ratio, c.CPURatio
	}

	for _, a := range r.Results {
		if a.scenario == nil {
			continue
		}
		for _, t := range a.scenario.targets {
			if t.shape != a.Shape.Name {
				continue
			}
			if t.metric == p99Max {
				limit := float64(t.limit) / float64(time.Millisecond)
				tr := targetResult{Limit: limit, Unit: "ms", Value: float64(a.P99) / float64(time.Millisecond),
					Name:   fmt.Sprintf("%s p99 latency at %s ≤ %v", a.Scenario, a.Shape, t.limit),
					Pass:   a.Requests > 0 && a.P99 > 0 && a.P99 <= t.limit,
					Detail: fmt.Sprintf("p50 %s, %.0f req/s", fmtDur(a.P50), a.ReqPerSec)}
				if a.Errors > 0 {
					tr.Detail += fmt.Sprintf(", %d error replies", a.Errors)
				}
				r.Targets = append(r.Targets, tr)
				continue
			}
			b := baseOf(&a)
			if b == nil {
				continue
			}
			tr := targetResult{Limit: t.ratio, Unit: "× baseline"}
			switch t.metric {
			case throughput:
				tr.Name = fmt.Sprintf("%s throughput at %s ≥ %.2g× %s", a.Scenario, a.Shape, t.ratio, b.Scenario)
				tr.Value = a.ThroughputRatio
				tr.Pass = a.Requests > 0 && a.ThroughputRatio >= t.ratio
				tr.Detail = fmt.Sprintf("%.0f vs %.0f req/s", a.ReqPerSec, b.ReqPerSec)
			case p99:
				tr.Name = fmt.Sprintf("%s p99 latency at %s ≤ %.2g× %s", a.Scenario, a.Shape, t.ratio, b.Scenario)
				tr.Value = a.P99Ratio
				tr.Pass = a.Requests > 0 && a.P99Ratio > 0 && a.P99Ratio <= t.ratio
				tr.Detail = fmt.Sprintf("%s vs %s", fmtDur(a.P99), fmtDur(b.P99))
			}
			if a.Errors > 0 {
				tr.Detail += fmt.Sprintf(", %d error replies", a.Errors)
			}
			r.Targets = append(r.Targets, tr)
		}
	}

	r.evaluateAccess()

	startNames := []string{}
	bestStart := map[string]time.Duration{}
	maxRSS := map[string]int64{}
	for _, s := range r.Startup {
		if !strings.HasPrefix(s.Server, "gatehouse") || s.Seeded {
			continue
		}
		if _, ok := bestStart[s.Server]; !ok {
			startNames = append(startNames, s.Server)
			bestStart[s.Server] = s.StartToHealthy
		}
		bestStart[s.Server] = min(bestStart[s.Server], s.StartToHealthy)
		maxRSS[s.Server] = max(maxRSS[s.Server], s.IdleRSS)
	}
	for _, name := range startNames {
		rss := maxRSS[name]
		r.Targets = append(r.Targets, targetResult{
			Name:  fmt.Sprintf("%s idle RSS ≤ %.0f MB", name, float64(rssTarget)/1e6),
			Value: float64(rss) / 1e6, Limit: float64(rssTarget) / 1e6, Unit: "MB",
			Pass: rss > 0 && rss <= rssTarget, Detail: "highest of the rounds",
		})
	}
	for _, name := range startNames {
		d := bestStart[name]
		r.Targets = append(r.Targets, targetResult{
			Name:  fmt.Sprintf("%s start-to-healthy ≤ %v", name, startTarget),
			Value: float64(d) / float64(time.Millisecond), Limit: float64(startTarget) / float64(time.Millisecond), Unit: "ms",
			Pass: d > 0 && d <= startTarget, Detail: "best of the rounds",
		})
	}

	if sd := r.Seed; sd != nil {
		// The criterion is on the users; the whole site's time is in the detail.
		users := sd.part("admin") + sd.part("users")
		r.Targets = append(r.Targets, targetResult{
			Name:  fmt.Sprintf("seed %d users ≤ %.0f s", sd.Size.Users, seedTarget.Seconds()),
			Value: users.Seconds(), Limit: seedTarget.Seconds(), Unit: "s",
			Pass:   users > 0 && users <= seedTarget,
			Detail: fmt.Sprintf("the whole site in %s, %s of CPU: %s", fmtDur(sd.Total), fmtDur(sd.CPU), sd.Size),
		})
	}

	// The bench keeps the machine busy itself, so only the load before it started tells of others.
	if busy := r.Config.LoadAvgStart; busy > float64(r.Config.NumCPU)/2 {
		r.Notes = append(r.Notes, fmt.Sprintf("NOISE: the load average was %.2f on %d CPUs before the bench started: other processes "+
			"(or the decaying load of a previous run) compete for the CPU, so the figures are noisy; "+
			"rerun with more -rounds on a quiet machine.",
			busy, r.Config.NumCPU))
	}
	for _, a := range r.Results {
		limited, limit := int(core.RateLimited), "wsapi rate_limit, production default 5000 req/s"
		switch a.proto() {
		case protoSysadm:
			limited, limit = http.StatusTooManyRequests, "sysadm rate_limit, production default 5000 req/s"
		case protoHTTP:
			limited, limit = http.StatusTooManyRequests, "HTTP"
		}
		if n := a.Statuses[limited]; n > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf(
				"RATE LIMITED: %s at %s got %d %s replies (%q): the per-connection limit of gatehouse "+
					"(%s) was hit. They count as errors and are left out "+
					"of req/s and latency, so the figures of this row understate the load offered.",
				a.Scenario, a.Shape, n, a.statusName(limited), a.statusText[limited], limit))
		}
		for _, code := range slices.Sorted(maps.Keys(a.Statuses)) {
			if code == limited {
				continue
			}
			r.Notes = append(r.Notes, fmt.Sprintf("ERRORS: %s at %s got %d replies with %s %q",
				a.Scenario, a.Shape, a.Statuses[code], a.statusName(code), a.statusText[code]))
		}
		var unexpected int64
		for _, run := range a.byRound {
			unexpected += run.Unexpected
		}
		if unexpected > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("ERRORS: %s at %s got %d frames that answer no pending request",
				a.Scenario, a.Shape, unexpected))
		}
	}
}

const runRowFormat = "%-5s  %-20s %-11s %-14s %8s %9s %9s %9s %9s %9s %6s\n"

func writeRunHeader(out io.Writer) {
	fmt.Fprintf(out, runRowFormat, "round", "scenario", "shape", "conns×inflight", "req/s", "p50", "p99", "max",
		"srv CPU", "cli CPU", "errors")
	fmt.Fprintf(out, runRowFormat, "", "", "", "", "", "", "", "", "per req", "per req", "")
}

func writeRun(out io.Writer, r runResult) {
	var cli time.Duration
	if r.Requests > 0 {
		cli = r.ClientCPU / time.Duration(r.Requests)
	}
	fmt.Fprintf(out, runRowFormat, fmt.Sprint(r.Round), r.Scenario, r.Shape.Name, r.Shape.String(),
		fmt.Sprintf("%.0f", r.ReqPerSec), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max),
		fmtDur(r.ServerCPUPerReq), fmtDur(cli), fmt.Sprint(r.Errors))
}

// writeSummary prints the best figures with their ratios, the targets and the notes.
func (r *report) writeSummary(out io.Writer) {
	if len(r.Results) > 0 {
		fmt.Fprintf(out, "results (best of %d round(s); ratios against the scenario's baseline at the same shape: "+
			"baseline.http for the HTTP token check, the echo baseline for the others)\n", r.Config.Rounds)
		const f = "%-20s %-11s %-14s %8s %9s %9s %9s %6s  %s\n"
		fmt.Fprintf(out, f, "scenario", "shape", "conns×inflight", "req/s", "p50", "p99", "srv CPU", "errors", "vs baseline")
		fmt.Fprintf(out, f, "", "", "", "", "", "", "per req", "", "(req/s, p99, server CPU per request)")
		for _, a := range r.Results {
			vs := "—"
			if a.Server != baselineServer {
				vs = fmt.Sprintf("%.2f×  %.2f×  %.2f×", a.ThroughputRatio, a.P99Ratio, a.CPURatio)
			}
			fmt.Fprintf(out, f, a.Scenario, a.Shape.Name, a.Shape.String(), fmt.Sprintf("%.0f", a.ReqPerSec),
				fmtDur(a.P50), fmtDur(a.P99), fmtDur(a.ServerCPUPerReq), fmt.Sprint(a.Errors), vs)
		}
		fmt.Fprintln(out)
		side := false
		for _, a := range r.Results {
			if a.Compare == nil {
				continue
			}
			if !side {
				fmt.Fprintln(out, "side by side (same run, same shape; req/s, p99, server CPU per request)")
				side = true
			}
			fmt.Fprintf(out, "%-20s %-11s vs %-20s %.2f×  %.2f×  %.2f×   vs %s %.2f×  %.2f×  %.2f×\n",
				a.Scenario, a.Shape.Name, a.Compare.Scenario, a.Compare.ThroughputRatio, a.Compare.P99Ratio, a.Compare.CPURatio,
				a.Baseline, a.ThroughputRatio, a.P99Ratio, a.CPURatio)
		}
		if side {
			fmt.Fprintln(out)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(out, "targets")
		for _, t := range r.Targets {
			verdict := "MISS"
			if t.Pass {
				verdict = "PASS"
			}
			value := fmt.Sprintf("%.1f %s", t.Value, t.Unit)
			if t.Unit == "× baseline" {
				value = fmt.Sprintf("%.3f×", t.Value)
			}
			fmt.Fprintf(out, "%s  %-62s %10s  (%s)\n", verdict, t.Name, value, t.Detail)
		}
		fmt.Fprintln(out)
	}
	if sd := r.Seed; sd != nil {
		fmt.Fprintf(out, "seeded site: %s; %s on disk\n", sd.Size, fmtBytes(sd.DBBytes))
		parts := make([]string, len(sd.Parts))
		for i, p := range sd.Parts {
			parts[i] = p.Name + " " + fmtDur(p.Took)
		}
		fmt.Fprintf(out, "  seeding took %s (%s of CPU): %s\n", fmtDur(sd.Total), fmtDur(sd.CPU), strings.Join(parts, ", "))
		var best time.Duration
		var rss int64
		for _, s := range r.Startup {
			if s.Seeded {
				if best == 0 || s.StartToHealthy < best {
					best = s.StartToHealthy
				}
				rss = max(rss, s.IdleRSS)
			}
		}
		if best > 0 {
			fmt.Fprintf(out, "  gatehouse on it (reported, no target): start-to-healthy %s (best of the rounds), idle RSS %s (highest)\n",
				fmtDur(best), fmtBytes(rss))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "load average after: %.2f\n", r.Config.LoadAvgEnd)
	for _, n := range r.Notes {
		fmt.Fprintln(out, n)
	}
}

func writeJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// fmtDur prints a duration with a precision that suits benchmarks (µs below 1 ms).
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// fmtBytes prints a size in MB (10^6 bytes), the unit of the targets.
func fmtBytes(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// accessKey pairs a gatehouse result with the baseline result of the same measurement point.
func accessKey(a accessResult) string {
	return fmt.Sprintf("%s/%d/%.0f", a.Name, a.Subscribers, a.Rate)
}

// evaluateAccess adds the targets of the access measurements: absolute p99 bounds with
// nothing missing, each with the baseline's figures of the same run in the detail.
func (r *report) evaluateAccess() {
	base := map[string]accessResult{}
	for _, a := range r.Access {
		if a.Server == baselineServer {
			base[accessKey(a)] = a
		}
	}
	for _, a := range r.Access {
		if a.Server == baselineServer {
			continue
		}
		b := base[accessKey(a)]
		limit, name := accessPathTarget, fmt.Sprintf("%s p99 swipe → pushed event at %d/s ≤ %v, none missing",
			a.Name, accessPathRate, accessPathTarget)
		detail := fmt.Sprintf("p50 %s, %d/%d delivered; baseline send → reply at the same pace p99 %s",
			fmtDur(a.P50), a.Delivered, a.Expected, fmtDur(b.P99))
		if a.Name == fanoutName {
			limit = fanoutTarget
			name = fmt.Sprintf("%s p99 commit → delivery, %d subs × %.0f ev/s, all delivered ≤ %v",
				a.Name, a.Subscribers, a.Rate, fanoutTarget)
			if a.Subscribers != fanoutSubs || a.Rate != fanoutRate {
				name += " (scale point; the target is 1000 × 1000)"
			}
			detail = fmt.Sprintf("%d/%d swipes answered, p50 %s, %d/%d delivered (%.0f/s), stalled closed with %s; baseline broadcast p99 %s, %d/%d delivered (%.0f/s), stalled closed with %s",
				a.Answered, a.Offered, fmtDur(a.P50), a.Delivered, a.Expected, a.PerSec, closeText(a.StalledClose),
				fmtDur(b.P99), b.Delivered, b.Expected, b.PerSec, closeText(b.StalledClose))
		}
		if a.Errors > 0 {
			detail += fmt.Sprintf(", %d error replies", a.Errors)
		}
		r.Targets = append(r.Targets, targetResult{
			Name: name, Value: float64(a.P99) / float64(time.Millisecond), Limit: float64(limit) / float64(time.Millisecond),
			Unit: "ms", Pass: a.Events > 0 && a.Events == a.Offered && a.Missing == 0 && a.P99 > 0 && a.P99 <= limit, Detail: detail,
		})
	}
}
