package demo_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/all"
	"gatehouse/modules/demo"
	"gatehouse/modules/wsapi/wstest"
)

// fast is a demo pace at which a forced door comes within a second and a door held open within
// 2 to 4 s.
const fast = `{"interval": "100ms"}`

func demoOn(c *core.Config) { c.Demo = true }

func want(t *testing.T, r wstest.Reply, code int) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s: status %d %q, want %d; content %s", r.Type, r.StatusCode, r.StatusString, code, r.Content)
	}
}

type object struct {
	ID            int64                     `json:"id"`
	Type          string                    `json:"type"`
	Attributes    map[string]any            `json:"attributes"`
	Relationships map[string]map[string]any `json:"relationships"`
}

// list calls a *.read with id 0 and returns the objects.
func list(t *testing.T, c *wstest.Client, typ, idKey string) []object {
	t.Helper()
	r := c.Call(typ, map[string]any{idKey: 0})
	want(t, r, 0)
	var res struct{ Data []object }
	r.Decode(t, &res)
	return res.Data
}

func attrs(objs []object, key string) []string {
	out := []string{}
	for _, o := range objs {
		s, _ := o.Attributes[key].(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func count(t *testing.T, srv *coretest.Server, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := srv.DB().Read.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// pushed is the content of an event push.
type pushed struct {
	Topic string `json:"topic"`
	Data  struct {
		Granted bool   `json:"granted"`
		Reason  string `json:"reason"`
		Forced  bool   `json:"forced"`
	} `json:"data"`
}

// watch subscribes to access and door events and waits until every wanted key has been seen:
// "access.granted", "access.denied", a reason such as "unknown_credential", or a door event
// name such as "forced" (door.<id>.forced).
func watch(t *testing.T, c *wstest.Client, timeout time.Duration, wanted ...string) {
	t.Helper()
	want(t, c.Call("events.subscribe", map[string]any{"topics": []string{"access.*", "door.>"}}), 0)
	missing := map[string]bool{}
	for _, w := range wanted {
		missing[w] = true
	}
	deadline := time.Now().Add(timeout)
	for len(missing) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("within %v, never saw %v", timeout, missing)
		}
		var e pushed
		c.ExpectPush("event", left).Decode(t, &e)
		delete(missing, e.Topic)
		if strings.HasPrefix(e.Topic, "access.") {
			delete(missing, e.Data.Reason)
		}
		if parts := strings.Split(e.Topic, "."); len(parts) == 3 && parts[0] == "door" {
			delete(missing, parts[2])
		}
	}
}

var wantDoors = []string{"Lab", "Lobby", "Main entrance", "Roof access", "Server room", "Warehouse"}

func TestDemoSeedsTheSiteAndRunsTraffic(t *testing.T) {
	t.Parallel()
	// A short held-open delay, so that the door held open (due after 20 to 40 intervals) raises
	// its alarm within the test; the other passages are shorter than it.
	srv := coretest.Start(t, coretest.WithConfig(demoOn), coretest.WithModuleConfig(demo.ModuleID, fast),
		coretest.WithModuleConfig("doorman", `{"held_open_after": "500ms"}`))
	c := wstest.Dial(t, srv.WSURL)
	c.UseGatehouseTypes() // the dashboard's view: card + PIN credentials, access decisions
	c.Login("admin", coretest.AdminPassword)

	// Doors, each with its simulated reader.
	doors := list(t, c, "door.read", "door_id")
	if got := attrs(doors, "alias"); !slices.Equal(got, wantDoors) {
		t.Fatalf("doors %v, want %v", got, wantDoors)
	}
	for _, d := range doors {
		if ap, _ := d.Relationships["access-point"]["data"].(map[string]any); ap == nil {
			t.Errorf("door %v has no access point", d.Attributes["alias"])
		}
	}
	aps := list(t, c, "access_point.read", "access_point_id")
	if len(aps) != 6 {
		t.Fatalf("%d access points", len(aps))
	}
	for _, a := range aps {
		if a.Attributes["controller-module"] != "simulator" {
			t.Errorf("access point %v: controller %v", a.Attributes["alias"], a.Attributes["controller-module"])
		}
	}

	// The zone tree: HQ (physical) holds the two floors, which hold three doors each.
	zones := list(t, c, "zone.read", "zone_id")
	byAlias := map[string]object{}
	for _, z := range zones {
		byAlias[z.Attributes["alias"].(string)] = z
	}
	rel := func(o object, name string) int {
		l, _ := o.Relationships[name]["data"].([]any)
		return len(l)
	}
	hq, ground, first := byAlias["HQ"], byAlias["Ground floor"], byAlias["First floor"]
	if len(zones) != 3 || rel(hq, "children") != 2 || rel(ground, "doors") != 3 || rel(first, "doors") != 3 {
		t.Fatalf("zones: %+v", zones)
	}
	for _, z := range zones {
		if z.Attributes["type"] != float64(0) {
			t.Errorf("zone %v is not physical: %v", z.Attributes["alias"], z.Attributes["type"])
		}
	}

	// People, groups, the two operator accounts.
	users := list(t, c, "user.read", "user_id")
	names := attrs(users, "username")
	for _, u := range []string{"admin", "alice.martin", "grace.kim", "liam.obrien", "operator", "guard"} {
		if !slices.Contains(names, u) {
			t.Errorf("no user %s among %v", u, names)
		}
	}
	if len(users) != 15 {
		t.Errorf("%d users, want 15 (admin, 12 people, operator, guard): %v", len(users), names)
	}
	for _, u := range users {
		switch u.Attributes["username"] {
		case "operator":
			if u.Attributes["rank"] != float64(2) {
				t.Errorf("operator rank %v", u.Attributes["rank"])
			}
		case "guard":
			if u.Attributes["rank"] != float64(1) {
				t.Errorf("guard rank %v", u.Attributes["rank"])
			}
		case "liam.obrien":
			end, _ := u.Attributes["validity-end"].(string)
			if ts, err := time.Parse(time.RFC3339, end); err != nil || !ts.Before(time.Now()) {
				t.Errorf("liam.obrien validity-end %q: want a past date", end)
			}
		}
	}
	if got := attrs(list(t, c, "group.read", "group_id"), "name"); !slices.Equal(got, []string{"Contractors", "IT-team", "Staff"}) {
		t.Errorf("groups %v", got)
	}

	// Credentials: H10301 cards of facility 42, a card + PIN, PIN codes, the lost badge.
	creds := list(t, c, "credential.read", "credential_id")
	types := map[string]int{}
	var badge1001, lost object
	for _, cr := range creds {
		types[cr.Type]++
		switch cr.Attributes["alias"] {
		case "Badge 1001":
			badge1001 = cr
		case "Badge 1013":
			lost = cr
		}
	}
	if types["rfid-card"] != 12 || types["rfid-card-pin"] != 1 || types["pin-code"] != 3 {
		t.Errorf("credential types %v", types)
	}
	if badge1001.Attributes["card-id"] != "95:01:f4:80" || badge1001.Attributes["nb-bits"] != float64(26) {
		t.Errorf("badge 1001: %+v", badge1001.Attributes)
	}
	if owner := lost.Relationships["owner"]["data"]; owner != nil {
		t.Errorf("the lost badge has an owner: %v", owner)
	}

	// Schedules and their mappings.
	r := c.Call("schedule.read", map[string]any{"schedule_id": 0})
	want(t, r, 0)
	var sched struct {
		Data     []object
		Included []object
	}
	r.Decode(t, &sched)
	if got := attrs(sched.Data, "name"); !slices.Equal(got, []string{"Always", "Night-shift", "Office-hours"}) {
		t.Errorf("schedules %v", got)
	}
	if len(sched.Included) != 4 {
		t.Errorf("%d mappings, want 4", len(sched.Included))
	}

	// Everything went through the handlers: audited, as the administrator; the seeding token
	// is gone.
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic = 'door.created' AND author_name = 'admin'`); n != 6 {
		t.Errorf("%d audited door creations, want 6", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM tokens WHERE dialect = 'demo'`); n != 0 {
		t.Errorf("%d seeding tokens left", n)
	}

	// Live traffic: grants, refusals of several kinds, doors opening and closing, a forced door,
	// a door held open.
	watch(t, c, 3*time.Minute, "access.granted", "access.denied", "unknown_credential", "no_schedule",
		"user_invalid", "pin_required", "opened", "closed", "forced", "held_open")
}

func TestDemoRestartDoesNotSeedTwice(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithConfig(demoOn), coretest.WithModuleConfig(demo.ModuleID, fast))
	counts := func(srv *coretest.Server) map[string]int64 {
		out := map[string]int64{}
		for _, table := range []string{"users", "doors", "access_points", "zones", "groups", "memberships", "credentials", "schedules", "schedule_mappings"} {
			out[table] = count(t, srv, `SELECT COUNT(*) FROM `+table)
		}
		out["created events"] = count(t, srv, `SELECT COUNT(*) FROM events WHERE topic LIKE '%.created'`)
		return out
	}
	before := counts(srv)
	if before["doors"] != 6 || before["users"] != 15 {
		t.Fatalf("seeded %v", before)
	}
	srv = srv.Restart()
	after := counts(srv)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %d before the restart, %d after", k, v, after[k])
		}
	}
	// The traffic goes on after the restart.
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	watch(t, c, 3*time.Minute, "access.granted", "access.denied")
}

func TestDemoDoesNothingWithoutDemo(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig(demo.ModuleID, `{"interval": "10ms"}`))
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	if doors := list(t, c, "door.read", "door_id"); len(doors) != 0 {
		t.Fatalf("doors without --demo: %+v", doors)
	}
	if users := list(t, c, "user.read", "user_id"); len(users) != 1 {
		t.Fatalf("users without --demo: %d", len(users))
	}
	time.Sleep(300 * time.Millisecond) // 30 intervals: the traffic would have run by now
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic LIKE 'access.%' OR topic LIKE 'door.%'`); n != 0 {
		t.Fatalf("%d access or door events without --demo", n)
	}
}

func TestDemoDoesNotSeedOverExistingNames(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	want(t, c.Call("user.create", map[string]any{"attributes": map[string]any{"username": "operator"}}), 0)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config
	cfg.Listen, cfg.Demo = "127.0.0.1:0", true
	srv = coretest.StartConfig(t, cfg)
	if n := count(t, srv, `SELECT COUNT(*) FROM doors`); n != 0 {
		t.Errorf("%d doors seeded over an existing user named operator", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM users`); n != 2 {
		t.Errorf("%d users, want admin and operator only", n)
	}
}

// startCapturing runs a demo server on the data directory with its operator output and its log
// captured, and returns its websocket URL and a function that stops it.
func startCapturing(t *testing.T, data string, out, log *coretest.LogBuffer) (wsURL string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := core.Config{Data: data, Listen: ln.Addr().String(), AdminPassword: coretest.AdminPassword, Demo: true,
		Modules: all.DefaultModules()}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := core.NewServer(ctx, core.ServerOptions{Config: cfg, Registry: all.Registry(),
		Log: zerolog.New(log).Level(zerolog.DebugLevel), Out: out, Listener: ln})
	if err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp, err := client.Get(srv.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server not healthy within 10s")
		}
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	return "ws" + strings.TrimPrefix(srv.URL(), "http") + "/websocket", stop
}

var accountLine = regexp.MustCompile(`demo account "(\w+)" \((\w+)\) password (\S+)`)

func TestDemoAccountsPasswordsArePrintedOnce(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	var out, log coretest.LogBuffer
	wsURL, stop := startCapturing(t, data, &out, &log)

	found := accountLine.FindAllStringSubmatch(out.String(), -1)
	if len(found) != 2 {
		t.Fatalf("operator output:\n%s", out.String())
	}
	ranks := map[string]int{"operator": 2, "guard": 1}
	for _, f := range found {
		user, rank, pw := f[1], f[2], f[3]
		if core.Rank(ranks[user]).String() != rank || len(pw) < 16 {
			t.Errorf("account line %q", f[0])
		}
		if strings.Contains(log.String(), pw) {
			t.Errorf("the password of %s is in the log", user)
		}
		c := wstest.Dial(t, wsURL)
		c.Login(user, pw)
		r := c.Call("whoami", nil)
		want(t, r, 0)
		var who struct{ Rank int }
		r.Decode(t, &who)
		if who.Rank != ranks[user] {
			t.Errorf("%s: rank %d", user, who.Rank)
		}
		if doors := list(t, c, "door.read", "door_id"); len(doors) < 6 { // 7 once the operator added one
			t.Errorf("%s reads %d doors", user, len(doors))
		}
		// The guard (viewer) reads but changes nothing; the operator (manager) changes the site.
		code := 0
		if user == "guard" {
			code = 2
		}
		want(t, c.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "Door of " + user}}), code)
	}
	stop()

	var out2 coretest.LogBuffer
	startCapturing(t, data, &out2, &log)
	if strings.Contains(out2.String(), "demo account") {
		t.Errorf("passwords printed again after a restart:\n%s", out2.String())
	}
}

// TestDemoStopsPromptlyAndLeavesNoGoroutine is not parallel: after a stop in the middle of
// simulated passages, every goroutine the server started has ended.
func TestDemoStopsPromptlyAndLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := coretest.Start(t, coretest.WithConfig(demoOn), coretest.WithModuleConfig(demo.ModuleID, `{"interval": "20ms"}`))
	coretest.Eventually(t, 10*time.Second, func() error {
		if count(t, srv, `SELECT COUNT(*) FROM events WHERE topic LIKE 'door.%.opened'`) < 3 {
			return errNotYet
		}
		return nil
	})
	start := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v", d)
	}
}

var errNotYet = errors.New("not yet")
