package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"
)

// The access measurements of issue 4: the path of one swipe (reader → decision → door command
// → durable log → pushed to a subscriber) at a steady swipe rate, and the fan-out of the
// access events to many subscribers while one of them is stalled. Both are open-loop: the
// requests are sent on a schedule whatever the replies do, and each figure is printed next to
// the baseline server driven the same way in the same run.

// Names of the access measurements, selectable with -scenarios.
const (
	accessPathName = "access.path"
	fanoutName     = "fanout"
)

// accessNames lists the access measurements.
var accessNames = []string{accessPathName, fanoutName}

// Targets of issue 4.
const (
	accessPathRate   = 500 // swipes/s
	accessPathTarget = 10 * time.Millisecond
	fanoutRate       = 1000 // events/s of the target point
	fanoutSubs       = 1000 // subscribers of the target point
	fanoutSubsQuick  = 50
	fanoutTarget     = 50 * time.Millisecond
	fanoutProducers  = 4
	drainTimeout     = 15 * time.Second
)

// accessResult is one access measurement against one server.
type accessResult struct {
	Name        string        `json:"name"`
	Server      serverKind    `json:"server"`
	Subscribers int           `json:"subscribers"` // reading subscribers (fan-out)
	Rate        float64       `json:"rate"`        // offered events (requests) per second
	Offered     int64         `json:"offered"`     // requests sent in the window
	Answered    int64         `json:"answered"`    // of them, answered (any status) before the drain timeout
	Events      int64         `json:"events"`      // events (requests) produced in the window
	Expected    int64         `json:"expected"`    // deliveries expected (events × subscribers)
	Delivered   int64         `json:"delivered"`
	Missing     int64         `json:"missing"`
	PerSec      float64       `json:"deliveries_per_sec"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	Errors      int64         `json:"errors"` // non-zero status replies
	// StalledClose is the close code the stalled subscriber got (fan-out; 0: not closed;
	// -1: the server dropped the connection without a close frame, e.g. its write timed out
	// against the full socket buffers).
	StalledClose int           `json:"stalled_close,omitempty"`
	Window       time.Duration `json:"window_ns"`
}

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit; the children inherit it.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// runAccess runs the selected access measurements against a fresh gatehouse and the baseline,
// both children started here, and appends the results to rep.
func runAccess(ctx context.Context, opts options, tmp string, rep *report, out io.Writer) (err error) {
	raiseFileLimit()
	baseArgs := []string{cmdServeBaseline}
	if opts.baseProfile != "" && !opts.selectedAny(scenarioNames()...) {
		baseArgs = append(baseArgs, "--cpuprofile", opts.baseProfile)
	}
	base, err := startChild(ctx, "baseline", baseArgs, nil, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, base.stop()) }()
	if _, err := base.waitHealthy(ctx); err != nil {
		return err
	}
	data, err := os.MkdirTemp(tmp, "access-")
	if err != nil {
		return err
	}
	// Its warnings are dropped: when the fan-out ends, the swipes still queued on the closed
	// producer connections would each log a cancelled call.
	ghArgs := []string{cmdServeGatehouse, "--data", data}
	if opts.ghProfile != "" && !opts.selectedAny(scenarioNames()...) {
		ghArgs = append(ghArgs, "--cpuprofile", opts.ghProfile)
	}
	gh, err := startChild(ctx, "gatehouse (access)", ghArgs, childEnv(), io.Discard)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gh.stop()) }()
	if _, err := gh.waitHealthy(ctx); err != nil {
		return err
	}
	admin, err := dial(ctx, gh.wsURL(), 0)
	if err != nil {
		return err
	}
	defer admin.ws.CloseNow()
	token, err := loginToken(ctx, admin)
	if err != nil {
		return err
	}
	door, err := buildAccessSite(ctx, admin)
	if err != nil {
		return fmt.Errorf("access site: %w", err)
	}
	_ = admin.ws.Close(websocket.StatusNormalClosure, "")

	fmt.Fprintf(out, "access: a door, a user with a 26-bit card and an always-on schedule built through the API; swipes with reader.simulate\n")
	fmt.Fprintf(out, "%-12s %-9s %7s %7s %9s %9s %8s %9s %9s %9s  %s\n",
		"measure", "server", "subs", "rate/s", "events", "delivered", "missing", "p50", "p99", "max", "note")
	write := func(r accessResult) {
		note := ""
		if r.Name == fanoutName {
			note = fmt.Sprintf("%d of %d requests answered; %.0f deliveries/s; stalled subscriber closed with %s",
				r.Answered, r.Offered, r.PerSec, closeText(r.StalledClose))
		}
		if r.Errors > 0 {
			note += fmt.Sprintf(" %d error replies", r.Errors)
		}
		fmt.Fprintf(out, "%-12s %-9s %7d %7.0f %9d %9d %8d %9s %9s %9s  %s\n", r.Name, r.Server, r.Subscribers, r.Rate,
			r.Events, r.Delivered, r.Missing, fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), note)
		rep.Access = append(rep.Access, r)
	}
	if opts.selected(accessPathName) {
		b, err := accessPath(ctx, base.wsURL(), baselineServer, "", 0, opts)
		if err != nil {
			return fmt.Errorf("%s on the baseline: %w", accessPathName, err)
		}
		write(b)
		g, err := accessPath(ctx, gh.wsURL(), gatehouseServer, token, door, opts)
		if err != nil {
			return fmt.Errorf("%s on gatehouse: %w", accessPathName, err)
		}
		write(g)
	}
	if opts.selected(fanoutName) {
		for _, pt := range opts.fanoutPoints {
			b, err := fanout(ctx, base.wsURL(), baselineServer, "", 0, pt, opts)
			if err != nil {
				return fmt.Errorf("%s on the baseline: %w", fanoutName, err)
			}
			write(b)
			g, err := fanout(ctx, gh.wsURL(), gatehouseServer, token, door, pt, opts)
			if err != nil {
				return fmt.Errorf("%s on gatehouse: %w", fanoutName, err)
			}
			write(g)
		}
	}
	fmt.Fprintln(out)
	return nil
}

func closeText(code int) string {
	switch code {
	case 0:
		return "nothing (not closed)"
	case -1:
		return "a dropped connection (no close frame: the write to its full socket timed out)"
	}
	return strconv.Itoa(code)
}

// loginToken logs c in as the admin and returns the session token.
func loginToken(ctx context.Context, c *client) (string, error) {
	content, _ := json.Marshal(map[string]string{"username": adminUser, "password": benchPassword})
	rep, err := c.call(ctx, envelope("create_auth_token", string(content)))
	if err != nil {
		return "", err
	}
	var res struct {
		Token string `json:"token"`
	}
	if rep.StatusCode != 0 || json.Unmarshal(rep.Content, &res) != nil || res.Token == "" {
		return "", fmt.Errorf("create_auth_token: %d %s", rep.StatusCode, rep.Content)
	}
	return res.Token, nil
}

// apiCall makes one call that must succeed and returns its content.
func apiCall(ctx context.Context, c *client, typ string, content any) (json.RawMessage, error) {
	b, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	rep, err := c.call(ctx, envelope(typ, string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	if rep.StatusCode != 0 {
		return nil, fmt.Errorf("%s: status %d %q %s", typ, rep.StatusCode, rep.StatusString, rep.Content)
	}
	return rep.Content, nil
}

func createdID(raw json.RawMessage, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == 0 {
		return 0, fmt.Errorf("no id in %s", truncate(raw))
	}
	return v.Data.ID, nil
}

// benchCard is the card the site's user holds.
const benchCard = "12:af:cd:40"

// buildAccessSite creates a door, a user with a 26-bit card and a schedule mapping the user to
// the door on every day, all day, through the API, and returns the door's id.
func buildAccessSite(ctx context.Context, admin *client) (int64, error) {
	door, err := createdID(apiCall(ctx, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Bench door"}}))
	if err != nil {
		return 0, err
	}
	uid, err := createdID(apiCall(ctx, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "benchuser"}}))
	if err != nil {
		return 0, err
	}
	if _, err := apiCall(ctx, admin, "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "bench card", "owner_id": uid, "card-id": benchCard, "nb-bits": 26}}); err != nil {
		return 0, err
	}
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sid, err := createdID(apiCall(ctx, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	if err != nil {
		return 0, err
	}
	_, err = apiCall(ctx, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"alias": "bench", "users": []int64{uid}, "doors": []int64{door}}}})
	return door, err
}

// authed dials url and, with a token, authenticates the connection with it.
func authed(ctx context.Context, url string, n int, token string) (*client, error) {
	c, err := dial(ctx, url, n)
	if err != nil {
		return nil, err
	}
	if token != "" {
		if _, err := apiCall(ctx, c, "authenticate_with_token", map[string]string{"token": token}); err != nil {
			_ = c.ws.CloseNow()
			return nil, err
		}
	}
	return c, nil
}

// subscribe subscribes c to the access events (gatehouse) or to the broadcasts (baseline).
func subscribe(ctx context.Context, c *client, kind serverKind) error {
	if kind == baselineServer {
		_, err := apiCall(ctx, c, baselineSubscribe, map[string]any{})
		return err
	}
	_, err := apiCall(ctx, c, "events.subscribe", map[string]any{"topics": []string{"access.*"}})
	return err
}

// swipe is the request of a card swipe at door.
func swipe(door int64) func(dst, id []byte) []byte {
	return envelope("reader.simulate", fmt.Sprintf(`{"door_id":%d,"card_id":%q,"nb_bits":26}`, door, benchCard))
}

// sentReq is one request of a paced sender.
type sentReq struct {
	at, replied time.Time
	inWindow    bool
	code        int
	eventSeq    int64 // "seq" of the reply's content, if any
}

// pacedSender sends build's requests on c at rate per second from now for warmup+dur, reads
// the replies, and returns every request once all replies are in (or drainTimeout passed).
func pacedSender(ctx context.Context, c *client, rate float64, warmup, dur time.Duration, build func(dst, id []byte) []byte) ([]*sentReq, error) {
	var mu sync.Mutex
	reqs := map[uint64]*sentReq{}
	var all []*sentReq
	var replies atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for {
			b, err := c.read(context.Background())
			now := time.Now()
			if err != nil {
				readErr <- err
				return
			}
			var r reply
			if json.Unmarshal(b, &r) != nil {
				continue
			}
			s, ok := c.seqOf([]byte(r.UUID))
			if !ok {
				continue
			}
			var content struct {
				Seq int64 `json:"seq"`
			}
			_ = json.Unmarshal(r.Content, &content)
			mu.Lock()
			if q := reqs[s]; q != nil && q.replied.IsZero() {
				q.replied, q.code, q.eventSeq = now, r.StatusCode, content.Seq
				replies.Add(1)
			}
			mu.Unlock()
		}
	}()
	start := time.Now()
	wstart, end := start.Add(warmup), start.Add(warmup+dur)
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		now := time.Now()
		q := &sentReq{at: now, inWindow: !now.Before(wstart)}
		mu.Lock()
		id, s := c.next()
		reqs[s] = q
		all = append(all, q)
		mu.Unlock()
		c.frame = build(c.frame[:0], id)
		if err := c.ws.Write(context.Background(), websocket.MessageText, c.frame); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
	}
	deadline := time.Now().Add(drainTimeout)
	for replies.Load() < int64(len(all)) && time.Now().Before(deadline) {
		select {
		case err := <-readErr:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = c.ws.CloseNow()
	mu.Lock()
	defer mu.Unlock()
	return all, nil
}

// accessPath measures, at accessPathRate swipes/s on one connection, the time from sending a
// swipe to receiving its access event on a second, subscribed connection (gatehouse), or the
// time from sending a request to its reply (the baseline).
func accessPath(ctx context.Context, url string, kind serverKind, token string, door int64, opts options) (accessResult, error) {
	res := accessResult{Name: accessPathName, Server: kind, Subscribers: 1, Rate: accessPathRate, Window: opts.duration}
	sender, err := authed(ctx, url, 1, token)
	if err != nil {
		return res, err
	}
	defer sender.ws.CloseNow()
	build := envelope("get_leosac_version", `{}`)
	pushes := map[int64]time.Time{}
	var pmu sync.Mutex
	var sub *client
	if kind == gatehouseServer {
		build = swipe(door)
		if sub, err = authed(ctx, url, 2, token); err != nil {
			return res, err
		}
		defer sub.ws.CloseNow()
		if err := subscribe(ctx, sub, kind); err != nil {
			return res, err
		}
		go func() {
			for {
				b, err := sub.read(context.Background())
				now := time.Now()
				if err != nil {
					return
				}
				if seq, _, ok := eventHead(b); ok {
					pmu.Lock()
					pushes[seq] = now
					pmu.Unlock()
				}
			}
		}()
	}
	reqs, err := pacedSender(ctx, sender, accessPathRate, opts.warmup, opts.duration, build)
	if err != nil {
		return res, err
	}
	var samples []time.Duration
	if kind == gatehouseServer {
		// Wait for the pushes of the last swipes.
		deadline := time.Now().Add(drainTimeout)
		for {
			pmu.Lock()
			missing := 0
			for _, q := range reqs {
				if q.code == 0 && q.eventSeq > 0 {
					if _, ok := pushes[q.eventSeq]; !ok {
						missing++
					}
				}
			}
			pmu.Unlock()
			if missing == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = sub.ws.CloseNow()
	}
	pmu.Lock()
	defer pmu.Unlock()
	for _, q := range reqs {
		if !q.inWindow {
			continue
		}
		res.Events++
		res.Offered++
		if !q.replied.IsZero() {
			res.Answered++
		}
		if q.replied.IsZero() || q.code != 0 {
			if q.code != 0 {
				res.Errors++
			}
			res.Missing++
			continue
		}
		if kind == baselineServer {
			samples = append(samples, q.replied.Sub(q.at))
			continue
		}
		at, ok := pushes[q.eventSeq]
		if q.eventSeq == 0 || !ok {
			res.Missing++
			continue
		}
		samples = append(samples, at.Sub(q.at))
	}
	res.Expected = res.Events
	res.Delivered = int64(len(samples))
	res.PerSec = float64(len(samples)) / opts.duration.Seconds()
	setPercentiles(&res, samples)
	return res, nil
}

func setPercentiles(res *accessResult, samples []time.Duration) {
	slices.Sort(samples)
	res.P50, res.P99 = percentile(samples, 0.5), percentile(samples, 0.99)
	if len(samples) > 0 {
		res.Max = samples[len(samples)-1]
	}
}

// eventHead extracts seq and time from an event push ({"uuid",…,"type":"event",…,"content":
// {"seq":N,…,"time":"…",…}}), as both servers write them. ok is false for other frames.
func eventHead(b []byte) (seq int64, at time.Time, ok bool) {
	i := bytes.Index(b, []byte(`"type":"event"`))
	if i < 0 {
		return 0, time.Time{}, false
	}
	j := bytes.Index(b[i:], []byte(`"content":{`))
	if j < 0 {
		return 0, time.Time{}, false
	}
	content := b[i+j:]
	k := bytes.Index(content, []byte(`"seq":`))
	if k < 0 {
		return 0, time.Time{}, false
	}
	rest := content[k+len(`"seq":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		seq = seq*10 + int64(rest[n]-'0')
		n++
	}
	if n == 0 {
		return 0, time.Time{}, false
	}
	if t := bytes.Index(content, []byte(`"time":"`)); t >= 0 {
		r := content[t+len(`"time":"`):]
		if e := bytes.IndexByte(r, '"'); e >= 0 {
			at, _ = time.Parse(time.RFC3339Nano, string(r[:e]))
		}
	}
	return seq, at, true
}

// delivery is one event a subscriber received: its seq and receive time − event time.
type delivery struct {
	seq int64
	lat time.Duration
}

// fanout measures the delivery of pt.Rate events/s to pt.Subs reading subscribers while one more
// subscriber never reads: gatehouse's access events (swipes from fanoutProducers admin
// connections), or the baseline's broadcasts (one frame per event from as many connections).
// The latency of a delivery is its receive time − the event's time (gatehouse: the commit;
// baseline: when the producer sent it).
func fanout(ctx context.Context, url string, kind serverKind, token string, door int64, pt fanoutPoint, opts options) (accessResult, error) {
	n := pt.Subs
	res := accessResult{Name: fanoutName, Server: kind, Subscribers: n, Rate: float64(pt.Rate), Window: opts.duration}
	subs := make([]*client, n+1) // the last one is stalled
	defer func() {
		for _, c := range subs {
			if c != nil {
				_ = c.ws.CloseNow()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range subs {
		g.Go(func() error {
			c, err := authed(gctx, url, 100+i, token)
			if err != nil {
				return err
			}
			subs[i] = c
			return subscribe(gctx, c, kind)
		})
	}
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("subscribers: %w", err)
	}
	got := make([][]delivery, n)
	last := make([]atomic.Int64, n)
	var readers sync.WaitGroup
	for i, c := range subs[:n] {
		got[i] = make([]delivery, 0, 1024)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				b, err := c.read(context.Background())
				now := time.Now()
				if err != nil {
					return
				}
				if seq, at, ok := eventHead(b); ok {
					got[i] = append(got[i], delivery{seq, now.Sub(at)})
					last[i].Store(seq)
				}
			}
		}()
	}

	var bseq atomic.Int64
	producers := make([][]*sentReq, fanoutProducers)
	var broadcasts [fanoutProducers][]int64 // baseline: seqs of the broadcasts sent in the window
	g, gctx = errgroup.WithContext(ctx)
	for p := range producers {
		g.Go(func() error {
			c, err := authed(gctx, url, 10+p, token)
			if err != nil {
				return err
			}
			defer c.ws.CloseNow()
			build := swipe(door)
			if kind == baselineServer {
				wstart := time.Now().Add(opts.warmup)
				build = func(dst, id []byte) []byte {
					s := bseq.Add(1)
					now := time.Now()
					if !now.Before(wstart) {
						broadcasts[p] = append(broadcasts[p], s)
					}
					return envelopeFunc(baselineBroadcast, func(dst []byte) []byte {
						dst = append(dst, `{"seq":`...)
						dst = strconv.AppendInt(dst, s, 10)
						dst = append(dst, `,"time":"`...)
						dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
						return append(dst, `"}`...)
					})(dst, id)
				}
			}
			producers[p], err = pacedSender(gctx, c, float64(pt.Rate)/fanoutProducers, opts.warmup, opts.duration, build)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("producers: %w", err)
	}
	want := map[int64]bool{}
	var maxSeq int64
	for p, reqs := range producers {
		for _, q := range reqs {
			if q.inWindow {
				res.Offered++
				if !q.replied.IsZero() {
					res.Answered++
				}
			}
			if q.code != 0 {
				res.Errors++
			}
			if kind == gatehouseServer && q.inWindow && q.code == 0 && q.eventSeq > 0 {
				want[q.eventSeq] = true
			}
			if q.code == 0 {
				maxSeq = max(maxSeq, q.eventSeq)
			}
		}
		for _, s := range broadcasts[p] {
			want[s] = true
			maxSeq = max(maxSeq, s)
		}
	}
	// Let the subscribers catch up with the last event.
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		behind := 0
		for i := range last {
			if last[i].Load() < maxSeq {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The stalled subscriber now reads what was queued for it, up to its close.
	stalled := subs[n]
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	for {
		if _, err := stalled.read(sctx); err != nil {
			res.StalledClose = int(websocket.CloseStatus(err))
			if res.StalledClose < 0 {
				res.StalledClose = 0
				if !errors.Is(err, context.DeadlineExceeded) {
					res.StalledClose = -1
				}
			}
			break
		}
	}
	cancel()
	for _, c := range subs[:n] {
		_ = c.ws.CloseNow()
	}
	readers.Wait()

	res.Events = int64(len(want))
	res.Expected = res.Events * int64(n)
	var samples []time.Duration
	for i := range got {
		seen := map[int64]bool{}
		for _, d := range got[i] {
			if want[d.seq] && !seen[d.seq] {
				seen[d.seq] = true
				samples = append(samples, d.lat)
			}
		}
	}
	res.Delivered = int64(len(samples))
	res.Missing = res.Expected - res.Delivered
	res.PerSec = float64(res.Delivered) / opts.duration.Seconds()
	setPercentiles(&res, samples)
	return res, nil
}
