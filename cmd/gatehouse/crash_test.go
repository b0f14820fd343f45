package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"gatehouse/core/coretest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"gatehouse/db"
	"gatehouse/modules/wsapi/wstest"
)

// The crash test's load: crashSwipers connections send reader.simulate at crashRate swipes per
// second in total for crashLoad, then the server is killed with SIGKILL.
const (
	crashSubscribers = 3
	crashSwipers     = 5
	crashRate        = 500
	crashLoad        = 2 * time.Second
	binPassword      = "bin-test-password" // admin password of every gatehouse process the tests start
	crashMaxInflight = 256                 // per swiper: past it a tick is skipped (and counted)
)

// TestCrashKeepsAcknowledgedEvents kills a real gatehouse process with SIGKILL while simulated
// swipes flow, restarts it on the same data, and checks the contract of the access path: every
// swipe whose reply arrived (decision committed, strike commanded) is in the log with its
// topic, door and card; every event any subscriber was pushed is in the log with its topic;
// the log has no hole below what was acknowledged; and the restarted server resumes the same
// epoch's stream with seqs above the old ones.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds the gatehouse binary and runs it under load for a few seconds; skipped with -short")
	}
	t.Parallel()
	start := time.Now()
	bin := buildGatehouse(t)
	built := time.Since(start)
	data := t.TempDir()

	// 1. A fresh server, a site, subscribers and swipers.
	p := startGatehouse(t, bin, data)
	admin := wstest.Dial(t, p.ws)
	admin.Login("admin", binPassword)
	s := buildCrashSite(t, admin)
	waitEngineReady(t, admin, s)

	var epoch string
	var baseSeq int64 // the log's end before the load: every access event after it is a swiper's
	subs := make([]*wstest.Client, crashSubscribers)
	for i := range subs {
		subs[i] = wstest.Dial(t, p.ws)
		subs[i].Login("admin", binPassword)
		r := subs[i].Call("events.subscribe", map[string]any{"topics": []string{">"}})
		var res struct {
			Seq   int64  `json:"seq"`
			Epoch string `json:"epoch"`
		}
		mustOK(t, r)
		r.Decode(t, &res)
		if res.Epoch == "" || epoch != "" && res.Epoch != epoch {
			t.Fatalf("events.subscribe epoch %q (others %q)", res.Epoch, epoch)
		}
		epoch = res.Epoch
		baseSeq = max(baseSeq, res.Seq)
	}
	swipers := make([]*swiper, crashSwipers)
	for i := range swipers {
		swipers[i] = dialSwiper(t, p.ws)
		swipers[i].login(t, "admin", binPassword)
	}

	// 2. Load, then SIGKILL while swipes are in flight.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	interval := time.Duration(crashSwipers) * time.Second / crashRate
	loadStart := time.Now()
	for i, sw := range swipers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw.run(stop, interval, func(n int) swipeReq {
				return swipeReq{door: s.doors[(3*i+n)%len(s.doors)], card: s.cards[(i+n)%len(s.cards)]}
			})
		}()
	}
	time.Sleep(crashLoad)
	inflightAtKill := 0
	for _, sw := range swipers {
		sw.mu.Lock()
		inflightAtKill += len(sw.inflight)
		sw.mu.Unlock()
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	killedAt := time.Now()
	close(stop)
	p.wait(t, 15*time.Second)
	wg.Wait()
	for _, sw := range swipers {
		sw.waitClosed(t, 15*time.Second)
	}
	for _, c := range subs {
		c.WaitClosed(15 * time.Second)
	}
	loadDur := killedAt.Sub(loadStart)

	// 3. What the clients saw.
	var (
		acks                        []swipeAck
		sent, answered, refusedN    int
		skipped, writeErrs, granted int
		refused                     = map[int]int{}
	)
	for _, sw := range swipers {
		sw.mu.Lock()
		acks = append(acks, sw.acks...)
		sent += sw.sent
		skipped += sw.skipped
		writeErrs += sw.writeErrs
		answered += len(sw.acks)
		for code, n := range sw.refused {
			refused[code] += n
			refusedN += n
			answered += n
		}
		for _, b := range sw.bad {
			t.Errorf("swiper: %s", b)
		}
		sw.mu.Unlock()
	}
	lost := sent - answered
	var maxAck, maxSeen int64
	ackSeqs := map[int64]bool{}
	for _, a := range acks {
		if ackSeqs[a.seq] {
			t.Errorf("seq %d acknowledged twice", a.seq)
		}
		ackSeqs[a.seq] = true
		maxAck = max(maxAck, a.seq)
		if a.granted {
			granted++
		}
		if a.doorID != a.door {
			t.Errorf("swipe at door %d answered for door %d (seq %d)", a.door, a.doorID, a.seq)
		}
		if a.seq <= baseSeq {
			t.Errorf("swipe acknowledged with seq %d, at or below the log's end %d before the load", a.seq, baseSeq)
		}
	}
	maxSeen = maxAck
	received := make([][]pushedEvent, len(subs))
	lagged := 0
	for i, c := range subs {
		for _, r := range c.Pushes() {
			switch r.Type {
			case "event":
				var e pushedEvent
				r.Decode(t, &e)
				received[i] = append(received[i], e)
				maxSeen = max(maxSeen, e.Seq)
			case "lagged":
				lagged++
			}
		}
	}

	// 4. The log as the killed process left it, read directly from the file.
	rows := readEventLog(t, data)
	bySeq := make(map[int64]logRow, len(rows))
	var dbMax int64
	for i, r := range rows {
		if i > 0 && r.Seq <= rows[i-1].Seq {
			t.Errorf("log seqs not strictly increasing: %d after %d", r.Seq, rows[i-1].Seq)
		}
		bySeq[r.Seq] = r
		dbMax = max(dbMax, r.Seq)
	}
	missingAcks := 0
	for _, a := range acks {
		r, ok := bySeq[a.seq]
		if !ok {
			missingAcks++
			if missingAcks <= 10 {
				t.Errorf("LOST ACKNOWLEDGED EVENT: seq %d (swipe of card %s at door %d, %s) answered to the client but not in the log after the crash",
					a.seq, a.card, a.door, a.reason)
			}
			continue
		}
		want := "access.denied"
		if a.granted {
			want = "access.granted"
		}
		var d struct {
			CardID string `json:"card_id"`
			Reason string `json:"reason"`
			DoorID int64  `json:"door_id"`
		}
		_ = json.Unmarshal([]byte(r.Data), &d)
		if r.Topic != want || r.DoorID == nil || *r.DoorID != a.doorID || d.DoorID != a.doorID || d.CardID != a.card || d.Reason != a.reason {
			t.Errorf("acknowledged seq %d (%s card %s door %d %s) is in the log as %s door %v data %s",
				a.seq, want, a.card, a.doorID, a.reason, r.Topic, deref(r.DoorID), r.Data)
		}
	}
	if missingAcks > 0 {
		t.Errorf("%d of %d acknowledged swipes are missing from the log (log ends at seq %d)", missingAcks, len(acks), dbMax)
	}
	eventsGot := 0
	for i, evs := range received {
		eventsGot += len(evs)
		missing := 0
		for j, e := range evs {
			if j > 0 && e.Seq <= evs[j-1].Seq {
				t.Errorf("subscriber %d: seq %d pushed after %d (duplicate or out of order)", i, e.Seq, evs[j-1].Seq)
			}
			if e.Epoch != epoch {
				t.Errorf("subscriber %d: seq %d with epoch %q, want %q", i, e.Seq, e.Epoch, epoch)
			}
			r, ok := bySeq[e.Seq]
			switch {
			case !ok:
				missing++
				if missing <= 10 {
					t.Errorf("LOST PUSHED EVENT: subscriber %d received seq %d (%s) that is not in the log after the crash", i, e.Seq, e.Topic)
				}
			case r.Topic != e.Topic:
				t.Errorf("subscriber %d: seq %d pushed as %s, logged as %s", i, e.Seq, e.Topic, r.Topic)
			}
		}
		// A ">" subscriber of an administrator gets every event, in order, with no gap: between
		// its first and last push, the log holds exactly what it was pushed.
		if len(evs) > 0 {
			first, last := evs[0].Seq, evs[len(evs)-1].Seq
			got := map[int64]bool{}
			for _, e := range evs {
				got[e.Seq] = true
			}
			skippedSeqs := 0
			for _, r := range rows {
				if r.Seq >= first && r.Seq <= last && !got[r.Seq] {
					skippedSeqs++
					if skippedSeqs <= 5 {
						t.Errorf("subscriber %d: logged seq %d (%s) between its pushes %d and %d was never pushed", i, r.Seq, r.Topic, first, last)
					}
				}
			}
		}
	}
	// No hole below what a client saw: a failed transaction rolls its AUTOINCREMENT back, so a
	// seq below a committed one can only be missing if a committed event was lost. Holes above
	// are reported, not failed: nothing acknowledged them.
	var holesBelow, holesAbove []int64
	next := int64(1)
	for _, r := range rows {
		for ; next < r.Seq; next++ {
			if next <= maxSeen {
				holesBelow = append(holesBelow, next)
			} else {
				holesAbove = append(holesAbove, next)
			}
		}
		next = r.Seq + 1
	}
	if len(holesBelow) > 0 {
		t.Errorf("the log has holes below the highest acknowledged or pushed seq %d: %v", maxSeen, firstN(holesBelow, 20))
	}
	if len(holesAbove) > 0 {
		t.Logf("holes above the last acknowledged seq (allowed, never acknowledged): %v", firstN(holesAbove, 20))
	}
	// Every access event in the log came from one of our swipes: it was answered, or it is
	// one of the lost (sent, never answered) ones that committed before the kill.
	accessLogged, unanswered := 0, 0
	for _, r := range rows {
		if r.Seq > baseSeq && (r.Topic == "access.granted" || r.Topic == "access.denied") {
			accessLogged++
			if !ackSeqs[r.Seq] {
				unanswered++
			}
		}
	}
	if accessLogged < len(acks) || unanswered > lost {
		t.Errorf("log holds %d access events, %d of them never answered; clients had %d answered and %d lost swipes",
			accessLogged, unanswered, len(acks), lost)
	}
	if len(acks) == 0 {
		t.Errorf("no swipe was acknowledged before the kill: the test proved nothing (server log:\n%s)", tail(p.stderr.String(), 20))
	}
	if eventsGot == 0 {
		t.Errorf("no subscriber received an event before the kill")
	}

	t.Logf("build %v; load %v at a target of %d swipes/s over %d connections: sent %d (%.0f/s), acknowledged %d (%.0f/s; %d granted, %d denied), refused %d %v, in flight at the kill %d, lost %d (sent, never answered; %d of them committed), ticks skipped %d, write errors %d",
		built.Round(time.Millisecond), loadDur.Round(time.Millisecond), crashRate, crashSwipers,
		sent, float64(sent)/loadDur.Seconds(), len(acks), float64(len(acks))/loadDur.Seconds(), granted, len(acks)-granted,
		refusedN, refused, inflightAtKill, lost, unanswered, skipped, writeErrs)
	t.Logf("subscribers: %d connections received %d events in total %v (lagged notices %d); log after the crash: %d events, last seq %d, highest acknowledged %d, highest seen by a client %d",
		len(subs), eventsGot, counts(received), lagged, len(rows), dbMax, maxAck, maxSeen)
	if t.Failed() {
		t.Logf("killed server's log (tail):\n%s", tail(p.stderr.String(), 30))
		return
	}

	// 5. Restart on the same data: healthy, same epoch, the stream resumes above the old seqs.
	p2 := startGatehouse(t, bin, data)
	// The ready line can precede the moment /healthz turns ok by a hair (core.Server.Run logs
	// it before App.Run marks the app healthy): poll, as a supervisor would.
	healthTries := 0
	for deadline := time.Now().Add(15 * time.Second); ; {
		healthTries++
		code, health := getHealth(t, p2.url)
		if code == http.StatusOK && health["status"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz after restart: %d %v", code, health)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if healthTries > 1 {
		t.Logf("healthz answered ok at attempt %d after the ready line", healthTries)
	}
	admin2 := wstest.Dial(t, p2.ws)
	admin2.Login("admin", binPassword)
	watch := wstest.Dial(t, p2.ws)
	watch.Login("admin", binPassword)
	r := watch.Call("events.subscribe", map[string]any{"topics": []string{">"}, "since": maxSeen, "epoch": epoch})
	mustOK(t, r)
	var sub struct {
		Seq    int64  `json:"seq"`
		Epoch  string `json:"epoch"`
		Resync bool   `json:"resync"`
	}
	r.Decode(t, &sub)
	if sub.Resync || sub.Epoch != epoch || sub.Seq < dbMax {
		t.Fatalf("resume after restart: %s (want no resync, epoch %s, seq ≥ %d)", r.Content, epoch, dbMax)
	}
	r = admin2.Call("reader.simulate", map[string]any{"door_id": s.doors[0], "card_id": s.cards[0], "nb_bits": 26})
	mustOK(t, r)
	var after struct {
		Seq     int64 `json:"seq"`
		Granted bool  `json:"granted"`
		DoorID  int64 `json:"door_id"`
	}
	r.Decode(t, &after)
	if after.Seq <= dbMax || after.DoorID != s.doors[0] {
		t.Fatalf("swipe after restart: %s (want seq > %d, door %d)", r.Content, dbMax, s.doors[0])
	}
	// The resumed stream replays what was committed after maxSeen, then goes on live.
	var replayed []pushedEvent
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var e pushedEvent
		watch.ExpectPush("event", time.Until(deadline)).Decode(t, &e)
		replayed = append(replayed, e)
		if e.Seq >= after.Seq {
			break
		}
	}
	var wantReplay []logRow
	for _, r := range rows {
		if r.Seq > maxSeen {
			wantReplay = append(wantReplay, r)
		}
	}
	for i, e := range replayed {
		if e.Epoch != epoch || e.Seq <= maxSeen || i > 0 && e.Seq <= replayed[i-1].Seq {
			t.Errorf("resumed push %d: seq %d epoch %s (after %d)", i, e.Seq, e.Epoch, maxSeen)
		}
		if i < len(wantReplay) && (e.Seq != wantReplay[i].Seq || e.Topic != wantReplay[i].Topic) {
			t.Errorf("resumed push %d: %d %s, want the logged %d %s", i, e.Seq, e.Topic, wantReplay[i].Seq, wantReplay[i].Topic)
		}
	}
	if n := len(replayed); n == 0 || replayed[n-1].Seq != after.Seq ||
		replayed[n-1].Topic != map[bool]string{true: "access.granted", false: "access.denied"}[after.Granted] {
		t.Errorf("the new swipe (seq %d) was not pushed on the resumed stream: %+v", after.Seq, replayed)
	}
	if code := p2.stop(t, 20*time.Second); code != 0 {
		t.Errorf("restarted server exited %d on SIGTERM:\n%s", code, tail(p2.stderr.String(), 20))
	}
	t.Logf("restart: healthy; resumed since %d in the same epoch (log end %d) with %d pushes replayed or live, new swipe seq %d; total test time %v",
		maxSeen, sub.Seq, len(replayed), after.Seq, time.Since(start).Round(time.Millisecond))
}

// getHealth returns the status code and body of GET /healthz.
func getHealth(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	var health map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&health)
	return resp.StatusCode, health
}

// buildGatehouse builds the gatehouse binary into a temporary directory and returns its path.
func buildGatehouse(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("crash test: no go command to build the binary: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		t.Fatalf("go env GOMOD: %q %v", mod, err)
	}
	bin := filepath.Join(t.TempDir(), "gatehouse")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/gatehouse")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a gatehouse server running as a child process.
type process struct {
	cmd      *exec.Cmd
	url, ws  string
	stderr   *coretest.LogBuffer
	done     chan struct{}
	exitCode int
}

// startGatehouse starts `gatehouse serve` on data and waits for its ready line. The process
// is killed at the end of the test if it still runs.
func startGatehouse(t *testing.T, bin, data string) *process {
	t.Helper()
	p := spawnGatehouse(t, bin, nil, "serve", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "info")
	if p.url == "" {
		t.Fatalf("gatehouse exited %d before it was ready:\n%s", p.exitCode, p.stderr.String())
	}
	p.ws = "ws" + strings.TrimPrefix(p.url, "http") + "/websocket"
	return p
}

// wait waits for the process to end (after a signal).
func (p *process) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process %d still running %v after the signal", p.cmd.Process.Pid, timeout)
	}
}

// stop asks the process to shut down with SIGTERM and returns its exit code.
func (p *process) stop(t *testing.T, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p.wait(t, timeout)
	return p.exitCode
}

// crashSite is what buildCrashSite created: the doors, and the cards swiped in turn (granted
// ones, known cards with no access, and an unknown card).
type crashSite struct {
	doors   []int64
	cards   []string
	granted string // a card the schedule grants on every door
}

// buildCrashSite creates three doors, six users with a 26-bit card each, and a schedule
// giving the first four of them every door all day.
func buildCrashSite(t *testing.T, admin *wstest.Client) crashSite {
	t.Helper()
	var s crashSite
	for i := range 3 {
		s.doors = append(s.doors, createdID(t, admin.Call("door.create",
			map[string]any{"attributes": map[string]any{"alias": fmt.Sprintf("Door %d", i)}})))
	}
	var allowed []int64
	for i := range 6 {
		uid := createdID(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": fmt.Sprintf("walker%d", i)}}))
		card := fmt.Sprintf("12:af:%02x:40", 0x10+i)
		createdID(t, admin.Call("credential.create", map[string]any{"credential-type": "rfid-card",
			"attributes": map[string]any{"alias": fmt.Sprintf("card %d", i), "owner_id": uid, "card-id": card, "nb-bits": 26}}))
		s.cards = append(s.cards, card)
		if i < 4 {
			allowed = append(allowed, uid)
		}
	}
	s.granted = s.cards[0]
	s.cards = append(s.cards, "ff:ff:ff:c0") // unknown
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := createdID(t, admin.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	mustOK(t, admin.Call("schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"alias": "walkers", "users": allowed, "doors": s.doors}}}))
	return s
}

// waitEngineReady swipes the granted card until the engine, which applies changes from the
// bus, grants it (at most 10 s; near midnight it may never, which only changes the mix).
func waitEngineReady(t *testing.T, admin *wstest.Client, s crashSite) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := admin.Call("reader.simulate", map[string]any{"door_id": s.doors[0], "card_id": s.granted, "nb_bits": 26})
		mustOK(t, r)
		var res struct {
			Granted bool   `json:"granted"`
			Reason  string `json:"reason"`
		}
		r.Decode(t, &res)
		if res.Granted {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("the schedule does not grant yet (%s): the load will be all denials", res.Reason)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustOK(t *testing.T, r wstest.Reply) {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
}

func createdID(t *testing.T, r wstest.Reply) int64 {
	t.Helper()
	mustOK(t, r)
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Content, &v); err != nil || v.Data.ID == 0 {
		t.Fatalf("%s: no id in %s", r.Type, r.Content)
	}
	return v.Data.ID
}

// pushedEvent is the content of an "event" push.
type pushedEvent struct {
	Seq   int64  `json:"seq"`
	Epoch string `json:"epoch"`
	Topic string `json:"topic"`
}

// logRow is a row of the events table.
type logRow struct {
	Seq    int64
	Topic  string
	DoorID *int64
	Data   string
}

// readEventLog opens the database of data directly (the process that wrote it is gone) and
// returns its events in seq order.
func readEventLog(t *testing.T, data string) []logRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.Open(ctx, data, zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatalf("open the crashed database: %v", err)
	}
	defer d.Close()
	var rows []logRow
	if err := d.Read.WithContext(ctx).Raw(`SELECT seq, topic, door_id, data FROM events ORDER BY seq`).Scan(&rows).Error; err != nil {
		t.Fatalf("read events: %v", err)
	}
	var check string
	if err := d.Read.WithContext(ctx).Raw(`PRAGMA quick_check`).Scan(&check).Error; err != nil || check != "ok" {
		t.Errorf("quick_check after the crash: %q %v", check, err)
	}
	return rows
}

// swipeReq is one simulated swipe.
type swipeReq struct {
	door int64
	card string
}

// swipeAck is a swipe the server answered with success: its event is committed and the strike
// command issued.
type swipeAck struct {
	swipeReq
	seq     int64
	granted bool
	reason  string
	doorID  int64
}

// swiper is a raw websocket client that pipelines reader.simulate requests and records every
// reply, so that at the kill it knows exactly what was sent and what was answered.
type swiper struct {
	ws     *websocket.Conn
	closed chan struct{}

	mu        sync.Mutex
	calls     map[string]chan wstest.Reply
	inflight  map[string]swipeReq
	acks      []swipeAck
	refused   map[int]int // answered with an error status: code → count
	bad       []string
	sent      int
	skipped   int
	writeErrs int
	readErr   error
}

func dialSwiper(t *testing.T, url string) *swiper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(16 << 20)
	s := &swiper{ws: ws, closed: make(chan struct{}), calls: map[string]chan wstest.Reply{},
		inflight: map[string]swipeReq{}, refused: map[int]int{}}
	go s.readLoop()
	t.Cleanup(func() { _ = ws.CloseNow(); <-s.closed })
	return s
}

func (s *swiper) readLoop() {
	defer close(s.closed)
	for {
		_, b, err := s.ws.Read(context.Background())
		if err != nil {
			s.mu.Lock()
			s.readErr = err
			s.mu.Unlock()
			return
		}
		var r wstest.Reply
		if err := json.Unmarshal(b, &r); err != nil {
			s.mu.Lock()
			s.bad = append(s.bad, fmt.Sprintf("non-JSON frame %q", b))
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		if ch, ok := s.calls[r.UUID]; ok {
			delete(s.calls, r.UUID)
			s.mu.Unlock()
			ch <- r
			continue
		}
		req, ok := s.inflight[r.UUID]
		delete(s.inflight, r.UUID)
		switch {
		case !ok:
			if r.UUID != "" {
				s.bad = append(s.bad, fmt.Sprintf("reply to an unknown request: %s", b))
			}
		case r.StatusCode != 0:
			s.refused[r.StatusCode]++
		default:
			var res struct {
				Granted *bool  `json:"granted"`
				Reason  string `json:"reason"`
				Seq     int64  `json:"seq"`
				DoorID  int64  `json:"door_id"`
			}
			if err := json.Unmarshal(r.Content, &res); err != nil || res.Granted == nil || res.Seq <= 0 {
				s.bad = append(s.bad, fmt.Sprintf("reader.simulate reply %s", r.Content))
				break
			}
			s.acks = append(s.acks, swipeAck{swipeReq: req, seq: res.Seq, granted: *res.Granted, reason: res.Reason, doorID: res.DoorID})
		}
		s.mu.Unlock()
	}
}

func (s *swiper) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.ws.Write(ctx, websocket.MessageText, frame)
}

// login logs the connection in with a password.
func (s *swiper) login(t *testing.T, user, pw string) {
	t.Helper()
	ch := make(chan wstest.Reply, 1)
	s.mu.Lock()
	s.calls["login"] = ch
	s.mu.Unlock()
	frame, _ := json.Marshal(map[string]any{"uuid": "login", "type": "create_auth_token",
		"content": map[string]string{"username": user, "password": pw}})
	if err := s.write(frame); err != nil {
		t.Fatalf("login: %v", err)
	}
	select {
	case r := <-ch:
		var res struct {
			Status int `json:"status"`
		}
		if r.StatusCode != 0 || json.Unmarshal(r.Content, &res) != nil || res.Status != 0 {
			t.Fatalf("login: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}
	case <-s.closed:
		t.Fatalf("login: connection closed: %v", s.readErr)
	case <-time.After(30 * time.Second):
		t.Fatal("login: no reply within 30s")
	}
}

// run sends one swipe per tick of interval until stop or the end of the connection. A tick
// is skipped while crashMaxInflight swipes await their reply. A request whose write failed
// stays in flight: it may have reached the server.
func (s *swiper) run(stop <-chan struct{}, interval time.Duration, plan func(n int) swipeReq) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for n := 0; ; {
		select {
		case <-stop:
			return
		case <-s.closed:
			return
		case <-tk.C:
		}
		s.mu.Lock()
		busy := len(s.inflight) >= crashMaxInflight
		if busy {
			s.skipped++
		}
		s.mu.Unlock()
		if busy {
			continue
		}
		req := plan(n)
		n++
		id := fmt.Sprintf("swipe-%d", n)
		frame, _ := json.Marshal(map[string]any{"uuid": id, "type": "reader.simulate",
			"content": map[string]any{"door_id": req.door, "card_id": req.card, "nb_bits": 26}})
		s.mu.Lock()
		s.inflight[id] = req
		s.sent++
		s.mu.Unlock()
		if err := s.write(frame); err != nil {
			s.mu.Lock()
			s.writeErrs++
			s.mu.Unlock()
			return
		}
	}
}

// waitClosed waits for the server side of the connection to go away.
func (s *swiper) waitClosed(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(timeout):
		t.Fatalf("swiper connection still open %v after the kill", timeout)
	}
	s.mu.Lock()
	err := s.readErr
	s.mu.Unlock()
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("swiper connection ended with %v", err)
	}
}

func counts(r [][]pushedEvent) []int {
	out := make([]int, len(r))
	for i := range r {
		out[i] = len(r[i])
	}
	return out
}

func firstN(s []int64, n int) []int64 { return s[:min(n, len(s))] }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
