package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"
)

// client is one websocket connection of the load generator, used by one goroutine at a time.
// Requests carry UUID-shaped ids made of the connection number and a sequence number, so a
// reply is matched to its request by parsing the uuid back.
type client struct {
	ws     *websocket.Conn
	prefix [24]byte // "cccccccc-0000-4000-8000-"
	id     [36]byte
	seq    uint64
	frame  []byte       // request buffer, reused
	rbuf   bytes.Buffer // reply buffer, reused
}

// reply is a server frame as the load generator decodes it.
type reply struct {
	UUID         string          `json:"uuid"`
	StatusCode   int             `json:"status_code"`
	StatusString string          `json:"status_string"`
	Content      json.RawMessage `json:"content"`
}

const hexDigits = "0123456789abcdef"

func dial(ctx context.Context, url string, n int) (*client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(16 << 20)
	c := &client{ws: ws}
	for i := 7; i >= 0; i-- {
		c.prefix[i] = hexDigits[n&0xf]
		n >>= 4
	}
	copy(c.prefix[8:], "-0000-4000-8000-")
	return c, nil
}

// next returns the id of a new request and its sequence number.
func (c *client) next() ([]byte, uint64) {
	c.seq++
	copy(c.id[:], c.prefix[:])
	s := c.seq
	for i := 35; i >= 24; i-- {
		c.id[i] = hexDigits[s&0xf]
		s >>= 4
	}
	return c.id[:], c.seq
}

// seqOf returns the sequence number of one of this client's request ids.
func (c *client) seqOf(id []byte) (uint64, bool) {
	if len(id) != 36 || !bytes.Equal(id[:24], c.prefix[:]) {
		return 0, false
	}
	var s uint64
	for _, ch := range id[24:] {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		default:
			return 0, false
		}
		s = s<<4 | uint64(d)
	}
	return s, true
}

func (c *client) send(ctx context.Context, build func(dst, id []byte) []byte) (uint64, error) {
	id, seq := c.next()
	c.frame = build(c.frame[:0], id)
	if err := c.ws.Write(ctx, websocket.MessageText, c.frame); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	return seq, nil
}

// read returns the next frame; it is valid until the next read.
func (c *client) read(ctx context.Context) ([]byte, error) {
	_, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	c.rbuf.Reset()
	if _, err := c.rbuf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return c.rbuf.Bytes(), nil
}

// call sends one request and waits for its reply (used by setups, not measured).
func (c *client) call(ctx context.Context, build func(dst, id []byte) []byte) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seq, err := c.send(ctx, build)
	if err != nil {
		return reply{}, err
	}
	for {
		b, err := c.read(ctx)
		if err != nil {
			return reply{}, err
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			return reply{}, fmt.Errorf("server sent a non-JSON frame %q", truncate(b))
		}
		if s, ok := c.seqOf([]byte(r.UUID)); ok && s == seq {
			return r, nil
		}
	}
}

// window is the measured interval of a run; replies received in it are counted.
type window struct{ start, end time.Time }

// connStats is what one connection observed.
type connStats struct {
	samples    []time.Duration // latency of each successful reply received in the window
	statuses   map[int]int64   // non-zero status replies over the whole run (warm-up included)
	statusText map[int]string  // the first status_string seen for each of them
	unexpected int64           // frames that answer no pending request (pushes, unknown uuids)
}

// drive keeps shape.Inflight requests outstanding on the connection: each reply triggers the
// next request until the window ends, then it waits for the last replies. With shape.Rate set,
// a token bucket (burst: 1 ms worth of requests) holds requests back so that the connection
// never sends faster than that on average; with shape.Poisson too, requests are instead sent
// at random moments, Rate per second on average.
//
// The socket is read and written without a context (coder/websocket then arms no timer per
// call, which would cost the client CPU the servers need); runLoad closes the connection
// when ctx ends, which ends drive with an error.
func (c *client) drive(ctx context.Context, sc *scenario, shape loadShape, w window, st *connStats) error {
	noCtx := context.Background()
	pending := make(map[uint64]time.Time, shape.Inflight)
	bucket := newTokenBucket(shape.Rate, shape.Poisson)
	if bucket != nil {
		defer bucket.timer.Stop()
	}
	sendOne := func() error {
		if err := bucket.take(ctx); err != nil {
			return err
		}
		at := time.Now()
		seq, err := c.send(noCtx, sc.request)
		if err != nil {
			return err
		}
		pending[seq] = at
		return nil
	}
	for range shape.Inflight {
		if err := sendOne(); err != nil {
			return err
		}
	}
	for len(pending) > 0 {
		b, err := c.read(noCtx)
		now := time.Now()
		if err != nil {
			return err
		}
		id, code, err := sc.proto.decodeReply(b)
		if err != nil {
			return err
		}
		seq, ok := c.seqOf(id)
		sent, pend := pending[seq]
		if !ok || !pend {
			st.unexpected++
			continue
		}
		delete(pending, seq)
		switch {
		case code != 0:
			st.statuses[code]++
			if _, seen := st.statusText[code]; !seen {
				st.statusText[code] = sc.proto.statusText(b)
			}
		case !now.Before(w.start) && now.Before(w.end):
			st.samples = append(st.samples, now.Sub(sent))
		}
		if now.Before(w.end) {
			if err := sendOne(); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeReply returns the id of the request a reply frame answers and its status: 0 for
// success, else the Leosac status_code or the sysadm error code (HTTP-style). id is empty for
// frames that answer no request (pushes); err is set for frames that are not JSON.
func (p protocol) decodeReply(b []byte) (id []byte, code int, err error) {
	if p == protoSysadm {
		if id, ok := sysadmHead(b); ok {
			return id, 0, nil
		}
		var f sysadmFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, 0, fmt.Errorf("server sent a non-JSON frame %q", truncate(b))
		}
		switch f.Name {
		case "response":
			return []byte(f.ID), 0, nil
		case "error":
			if f.Args.Code == 0 {
				f.Args.Code = 500 // an error must not count as a success
			}
			return []byte(f.ID), f.Args.Code, nil
		}
		return nil, 0, nil // a push
	}
	id, code, ok := parseHead(b)
	if !ok {
		// Not the compact shape both servers write: decode it properly.
		var h reply
		if err := json.Unmarshal(b, &h); err != nil {
			return nil, 0, fmt.Errorf("server sent a non-JSON frame %q", truncate(b))
		}
		id, code = []byte(h.UUID), h.StatusCode
	}
	return id, code, nil
}

// statusText returns the message of an error reply (status_string, or the sysadm message).
func (p protocol) statusText(b []byte) string {
	if p == protoSysadm {
		var f sysadmFrame
		_ = json.Unmarshal(b, &f)
		return f.Args.Message
	}
	var h reply
	_ = json.Unmarshal(b, &h)
	return h.StatusString
}

// sysadmFrame is a sysadm server frame as the load generator decodes it.
type sysadmFrame struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Args struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"args"`
}

// sysadmHead extracts the id of a successful sysadm reply that starts
// {"namespace":"…","name":"response","id":"…", as gatehouse writes them, without a JSON
// decoder. ok is false for any other frame (errors, pushes, escapes); the caller then decodes
// it properly.
func sysadmHead(b []byte) (id []byte, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte(`{"namespace":"`))
	if !found {
		return nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	if rest, found = bytes.CutPrefix(rest[end+1:], []byte(`,"name":"response","id":"`)); !found {
		return nil, false
	}
	end = bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	return rest[:end], true
}

// parseHead extracts uuid and status_code from a reply that starts {"uuid":"…", as both
// servers write them, without a JSON decoder. ok is false for any other shape (or escapes in
// the uuid); the caller then decodes the frame properly.
func parseHead(b []byte) (id []byte, code int, ok bool) {
	const uuidKey, codeKey = `{"uuid":"`, `"status_code":`
	rest, found := bytes.CutPrefix(b, []byte(uuidKey))
	if !found {
		return nil, 0, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, 0, false
	}
	id, rest = rest[:end], rest[end+1:]
	if bytes.IndexByte(id, '\\') >= 0 {
		return nil, 0, false
	}
	i := bytes.Index(rest, []byte(codeKey))
	if i < 0 {
		return nil, 0, false
	}
	rest = rest[i+len(codeKey):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		code = code*10 + int(rest[n]-'0')
		n++
	}
	if n == 0 || n > 9 || n == len(rest) || (rest[n] != ',' && rest[n] != '}') {
		return nil, 0, false
	}
	return id, code, true
}

// tokenBucket paces one connection's requests.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
	timer               *time.Timer
	// poisson: no bucket, but a Poisson process: the gaps between sends are exponentially
	// distributed, so independent connections neither fall into step nor stay apart, as
	// people working at once do not.
	poisson bool
	next    time.Time // when the next send is due (poisson)
}

// newTokenBucket returns a full bucket for rate requests/s, or nil (no pacing) for rate 0;
// with poisson, a Poisson process of that rate whose first send is due after a random gap.
func newTokenBucket(rate float64, poisson bool) *tokenBucket {
	if rate <= 0 {
		return nil
	}
	burst := max(1, rate/1000)
	t := time.NewTimer(time.Hour)
	t.Stop()
	b := &tokenBucket{rate: rate, burst: burst, tokens: burst, last: time.Now(), timer: t, poisson: poisson}
	b.next = b.last.Add(b.gap())
	return b
}

// gap returns a random time between two sends of the Poisson process.
func (b *tokenBucket) gap() time.Duration {
	return time.Duration(rand.ExpFloat64() / b.rate * float64(time.Second))
}

// take waits for a token (or, poisson, for the next send being due). A nil bucket never waits.
func (b *tokenBucket) take(ctx context.Context) error {
	if b == nil {
		return nil
	}
	if b.poisson {
		if wait := time.Until(b.next); wait > 0 {
			b.timer.Reset(wait)
			select {
			case <-b.timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// A send held up by a slow reply does not make the next one come sooner.
		b.next = later(b.next, time.Now()).Add(b.gap())
		return nil
	}
	for {
		now := time.Now()
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			return nil
		}
		b.timer.Reset(time.Duration((1 - b.tokens) / b.rate * float64(time.Second)))
		select {
		case <-b.timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// runResult is one run of one scenario at one load shape.
type runResult struct {
	Scenario   string         `json:"scenario"`
	Server     serverKind     `json:"server"`
	Shape      loadShape      `json:"shape"`
	Round      int            `json:"round"`
	Requests   int64          `json:"requests"` // successful replies received in the window
	ReqPerSec  float64        `json:"req_per_sec"`
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	P999       time.Duration  `json:"p999_ns"`
	Max        time.Duration  `json:"max_ns"`
	Errors     int64          `json:"errors"`                // non-zero status replies and unexpected frames
	Statuses   map[int]int64  `json:"statuses,omitempty"`    // non-zero status code → count
	StatusText map[int]string `json:"status_text,omitempty"` // status code → first status_string
	Unexpected int64          `json:"unexpected,omitempty"`
	Window     time.Duration  `json:"window_ns"`
	// CPU time used in the window by the server process and by the load generator, and the
	// server's per successful request (0 where /proc is not available).
	ServerCPU       time.Duration `json:"server_cpu_ns"`
	ClientCPU       time.Duration `json:"client_cpu_ns"`
	ServerCPUPerReq time.Duration `json:"server_cpu_per_req_ns"`
}

// runLoad connects shape.Conns clients to url, runs the scenario's setup on each, then drives
// them together for warmup+dur and measures the last dur. serverPID is the server process,
// whose CPU time is sampled at both ends of the window.
func runLoad(ctx context.Context, url string, serverPID int, sc *scenario, shape loadShape, warmup, dur time.Duration) (runResult, error) {
	res := runResult{Scenario: sc.name, Server: sc.server, Shape: shape, Window: dur}
	clients := make([]*client, shape.Conns)
	closeAll := func() {
		for _, c := range clients {
			if c != nil {
				_ = c.ws.CloseNow()
			}
		}
	}
	defer closeAll()

	g, gctx := errgroup.WithContext(ctx)
	for i := range clients {
		g.Go(func() error {
			c, err := dial(gctx, url, i)
			if err != nil {
				return fmt.Errorf("dial %s: %w", url, err)
			}
			clients[i] = c
			if sc.setup != nil {
				return sc.setup(gctx, c)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("%s: connect: %w", sc.name, err)
	}

	start := time.Now().Add(warmup)
	w := window{start: start, end: start.Add(dur)}
	// Replies must arrive within a generous bound after the window; a hang is an error.
	runCtx, cancel := context.WithDeadline(ctx, w.end.Add(30*time.Second))
	defer cancel()
	stats := make([]connStats, len(clients))
	g, gctx = errgroup.WithContext(runCtx)
	// The clients do their I/O without a context: end it by closing the sockets.
	defer context.AfterFunc(gctx, closeAll)()
	for i, c := range clients {
		st := &stats[i]
		st.statuses, st.statusText = map[int]int64{}, map[int]string{}
		st.samples = make([]time.Duration, 0, 1024)
		g.Go(func() error {
			if err := c.drive(gctx, sc, shape, w, st); err != nil {
				if gctx.Err() != nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("replies missing 30s after the end of the run: %w", err)
				}
				return err
			}
			// The close handshake is not measured and its outcome does not matter.
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
			return nil
		})
	}
	srvCPU, cliCPU, cpuErr := sampleCPU(gctx, serverPID, w)
	err := g.Wait()
	if err != nil {
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

// collect fills the figures of a run from what its connections observed in a window of dur.
func (res *runResult) collect(stats []connStats, dur time.Duration) {
	var all []time.Duration
	res.Statuses, res.StatusText = map[int]int64{}, map[int]string{}
	for _, st := range stats {
		all = append(all, st.samples...)
		for code, n := range st.statuses {
			res.Statuses[code] += n
			res.Errors += n
			if _, ok := res.StatusText[code]; !ok {
				res.StatusText[code] = st.statusText[code]
			}
		}
		res.Unexpected += st.unexpected
		res.Errors += st.unexpected
	}
	slices.Sort(all)
	res.Requests = int64(len(all))
	res.ReqPerSec = float64(len(all)) / dur.Seconds()
	res.P50, res.P90 = percentile(all, 0.50), percentile(all, 0.90)
	res.P99, res.P999 = percentile(all, 0.99), percentile(all, 0.999)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
		res.ServerCPUPerReq = res.ServerCPU / time.Duration(len(all))
	}
}

// sampleCPU waits for the window and returns the CPU time the server process and this process
// used during it.
func sampleCPU(ctx context.Context, pid int, w window) (srv, self time.Duration, err error) {
	sleepUntil := func(t time.Time) error {
		timer := time.NewTimer(time.Until(t))
		defer timer.Stop()
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleepUntil(w.start); err != nil {
		return 0, 0, err
	}
	srv0, err0 := processCPU(pid)
	self0, err1 := processCPU(os.Getpid())
	if err := sleepUntil(w.end); err != nil {
		return 0, 0, err
	}
	srv1, err2 := processCPU(pid)
	self1, err3 := processCPU(os.Getpid())
	if err := errors.Join(err0, err1, err2, err3); err != nil {
		return 0, 0, err
	}
	return srv1 - srv0, self1 - self0, nil
}

// percentile returns the q-quantile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
