package directory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/directory"
	"gatehouse/modules/wsapi/wstest"
)

// cheapHashing makes password hashing cheap in the test servers.
const cheapHashing = `{"password_hash": {"memory_kib": 256, "iterations": 1}}`

// directoryOf returns the directory module of a server.
func directoryOf(t testing.TB, srv *coretest.Server) *directory.Module {
	t.Helper()
	mod, ok := srv.App().Module(directory.ModuleID)
	if !ok {
		t.Fatal("no directory module")
	}
	return mod.(*directory.Module)
}

// twin is the same sequence of calls made on two servers: one serving user.read from its
// in-memory view of users, one reading the database (disable_user_view), both started empty
// so that every id they assign is the same.
type twin struct {
	t                  *testing.T
	view, plain        *coretest.Server
	viewAdm, plainAdm  *wstest.Client
	viewSelf, plainSel *wstest.Client // logged in as "self", a user of rank user
}

func (w *twin) connect() {
	w.viewAdm = loginAs(w.t, w.view, "admin", coretest.AdminPassword)
	w.plainAdm = loginAs(w.t, w.plain, "admin", coretest.AdminPassword)
	w.viewSelf = loginAs(w.t, w.view, "self", "self-password")
	w.plainSel = loginAs(w.t, w.plain, "self", "self-password")
}

// call makes the same call as admin on both servers; they must answer with the same status
// and, for a create, the same id (replies may differ in timestamps).
func (w *twin) call(typ string, content any) wstest.Reply {
	w.t.Helper()
	a, b := w.viewAdm.Call(typ, content), w.plainAdm.Call(typ, content)
	var ida, idb struct{ Data struct{ ID int64 } }
	_ = json.Unmarshal(a.Content, &ida)
	_ = json.Unmarshal(b.Content, &idb)
	if a.StatusCode != b.StatusCode || ida != idb {
		w.t.Fatalf("%s %v: the servers disagree:\nview:     %d %s\ndatabase: %d %s", typ, content, a.StatusCode, a.Content, b.StatusCode, b.Content)
	}
	return a
}

// created makes a create call that must succeed and returns the new id.
func (w *twin) created(typ string, content any) int64 {
	w.t.Helper()
	r := w.call(typ, content)
	want(w.t, r, 0)
	return decodeObject(w.t, r).ID
}

// compare reads the users on both servers (as admin, and "self" reads themself) and checks
// that the replies are the same bytes, then has the view check all it holds against the
// database.
func (w *twin) compare(step string, ids []int64, self int64) {
	w.t.Helper()
	for _, id := range ids {
		a := w.viewAdm.Call("user.read", map[string]any{"user_id": id})
		b := w.plainAdm.Call("user.read", map[string]any{"user_id": id})
		if a.StatusCode != b.StatusCode || string(a.Content) != string(b.Content) {
			w.t.Fatalf("after %s, user.read %d differs:\nview:     %d %s\ndatabase: %d %s", step, id, a.StatusCode, a.Content, b.StatusCode, b.Content)
		}
	}
	a := w.viewSelf.Call("user.read", map[string]any{"user_id": self})
	b := w.plainSel.Call("user.read", map[string]any{"user_id": self})
	if a.StatusCode != 0 || string(a.Content) != string(b.Content) {
		w.t.Fatalf("after %s, self-read differs:\nview:     %d %s\ndatabase: %d %s", step, a.StatusCode, a.Content, b.StatusCode, b.Content)
	}
	dir := directoryOf(w.t, w.view)
	coretest.Eventually(w.t, 10*time.Second, func() error {
		if !dir.UserViewReady() {
			return fmt.Errorf("after %s: the view is not ready", step)
		}
		return nil
	})
	if err := dir.VerifyUserView(context.Background()); err != nil {
		w.t.Fatalf("after %s: %v", step, err)
	}
}

// awkward are strings that exercise every escape encoding/json makes.
var awkward = []string{
	"", "Ann", "Zoë", "O'Brien", `say "hi"`, `back\slash`, "<b>Tom & Jerry</b>", "tab\there",
	"new\nline\r", "bell\x07\b\f", "line\u2028sep\u2029", "日本語", "emoji 😀", "del\x7f", "ünï/cødé",
}

var validityDates = []any{nil, "", "2020-01-01T02:00:00+02:00", "2031-06-30T23:59:59Z", "2024-02-29T12:00:00.5-05:30"}

// TestUserViewAgreesWithDatabase makes a random sequence of changes of every kind that alters
// what user.read shows (users, memberships, groups, credentials, schedule mappings, doors whose
// deletion drops mappings, passwords) on a server whose user.read is served by its in-memory
// view and on one that reads the database, and after each change compares their user.read
// replies byte for byte and has the view check every entry it holds against the database.
// Midway the view's server restarts (its view is then built in bulk) and is told of a change
// it cannot understand (it rebuilds).
func TestUserViewAgreesWithDatabase(t *testing.T) {
	t.Parallel()
	w := &twin{t: t,
		view:  coretest.Start(t, coretest.WithModuleConfig("auth", cheapHashing)),
		plain: coretest.Start(t, coretest.WithModuleConfig("auth", cheapHashing), coretest.WithModuleConfig("directory", `{"disable_user_view": true}`)),
	}
	if !directoryOf(t, w.view).UserViewReady() {
		t.Fatal("the view of an empty site must be ready at once")
	}
	if directoryOf(t, w.plain).UserViewReady() {
		t.Fatal("disable_user_view must disable the view")
	}
	w.viewAdm = loginAs(t, w.view, "admin", coretest.AdminPassword)
	w.plainAdm = loginAs(t, w.plain, "admin", coretest.AdminPassword)
	self := w.created("user.create", map[string]any{"attributes": map[string]any{"username": "self", "password": "self-password", "email": "self@example.com"}})
	w.connect()

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(ids []int64) int64 { return ids[rng.IntN(len(ids))] }
	users := []int64{1, self} // live users; 1 (admin) and self are never deleted, demoted or disabled
	var deleted, groups, memberships, credentials, schedules, doors []int64
	drop := func(ids []int64, id int64) []int64 {
		return slices.DeleteFunc(ids, func(x int64) bool { return x == id })
	}
	someUsers := func(max int) []int64 {
		var out []int64
		for range rng.IntN(max + 1) {
			out = append(out, pick(users))
		}
		return out
	}
	owner := func() any {
		if rng.IntN(4) == 0 {
			return nil
		}
		return pick(users)
	}
	nextCard, nextPIN := 0, 1000
	mappings := func() []map[string]any {
		var ms []map[string]any
		for i := range 1 + rng.IntN(3) {
			m := map[string]any{"alias": fmt.Sprint("m", i), "users": someUsers(3)}
			if len(doors) > 0 && rng.IntN(2) == 0 {
				m["doors"] = []int64{pick(doors)}
			}
			ms = append(ms, m)
		}
		return ms
	}

	const steps = 120
	for step := range steps {
		if step == steps/2 {
			// A restart builds the view in bulk from everything so far.
			w.view = w.view.Restart()
			w.connect()
			if !directoryOf(t, w.view).UserViewReady() {
				t.Fatal("the view must be built by the restart")
			}
		}
		if step == steps/4 {
			// A change the view does not understand makes it rebuild; reads stay right meanwhile.
			w.view.App().Bus().Publish(core.Event{Topic: "user.mystery", Source: "test", Data: 42})
			w.compare("an unknown change", users, self)
		}
		var what string
		switch op := rng.IntN(18); {
		case op == 0 || len(users) < 4:
			what = "user.create"
			attrs := map[string]any{"username": fmt.Sprint("user", step), "firstname": awkward[rng.IntN(len(awkward))],
				"lastname": awkward[rng.IntN(len(awkward))], "email": awkward[rng.IntN(len(awkward))] + fmt.Sprint(step) + "@example.com", // emails are unique
				"rank": rng.IntN(5), "validity-enabled": rng.IntN(4) != 0,
				"validity-start": validityDates[rng.IntN(len(validityDates))], "validity-end": nil}
			users = append(users, w.created("user.create", map[string]any{"attributes": attrs}))
		case op == 1:
			what = "user.update"
			id := pick(users)
			attrs := map[string]any{"firstname": awkward[rng.IntN(len(awkward))], "email": awkward[rng.IntN(len(awkward))]}
			if id != 1 && id != self {
				attrs["rank"] = rng.IntN(5)
				attrs["validity-enabled"] = rng.IntN(3) != 0
				attrs["validity-end"] = validityDates[rng.IntN(len(validityDates))]
			}
			if rng.IntN(3) == 0 {
				attrs["lastname"] = awkward[rng.IntN(len(awkward))]
			}
			w.call("user.update", map[string]any{"user_id": id, "attributes": attrs})
		case op == 2:
			what = "user.delete"
			id := pick(users)
			if id == 1 || id == self {
				continue
			}
			want(t, w.call("user.delete", map[string]any{"user_id": id}), 0)
			users, deleted = drop(users, id), append(deleted, id)
		case op == 3 || len(groups) == 0:
			what = "group.create"
			groups = append(groups, w.created("group.create", map[string]any{"attributes": map[string]any{"name": fmt.Sprint("group", step)}}))
		case op == 4:
			what = "group.delete"
			id := pick(groups)
			want(t, w.call("group.delete", map[string]any{"group_id": id}), 0)
			groups = drop(groups, id)
		case op == 5 || op == 6:
			what = "user-group-membership.create"
			r := w.call("user-group-membership.create", map[string]any{"attributes": map[string]any{
				"user_id": pick(users), "group_id": pick(groups), "rank": rng.IntN(3)}})
			if r.StatusCode == 0 {
				memberships = append(memberships, decodeObject(t, r).ID)
			}
		case op == 7 && len(memberships) > 0:
			what = "user-group-membership.update"
			w.call("user-group-membership.update", map[string]any{"membership_id": pick(memberships), "attributes": map[string]any{"rank": rng.IntN(3)}})
		case op == 8 && len(memberships) > 0:
			what = "user-group-membership.delete"
			id := pick(memberships)
			w.call("user-group-membership.delete", map[string]any{"membership_id": id})
			memberships = drop(memberships, id)
		case op == 9 || op == 10:
			what = "credential.create"
			nextCard++
			card := fmt.Sprintf("%02x:%02x:%02x:%02x", nextCard>>24&0xff, nextCard>>16&0xff, nextCard>>8&0xff, nextCard&0xff)
			nextPIN++
			typ, attrs := "rfid-card", map[string]any{"card-id": card, "nb-bits": 32}
			switch rng.IntN(3) {
			case 1:
				typ, attrs = "pin-code", map[string]any{"code": fmt.Sprint(nextPIN)}
			case 2:
				typ, attrs = "rfid-card-pin", map[string]any{"card-id": card, "nb-bits": 32, "code": fmt.Sprint(nextPIN)}
			}
			attrs["owner_id"] = owner()
			credentials = append(credentials, w.created("credential.create", map[string]any{"credential-type": typ, "attributes": attrs}))
		case op == 11 && len(credentials) > 0:
			what = "credential.update (owner)"
			w.call("credential.update", map[string]any{"credential_id": pick(credentials), "attributes": map[string]any{"owner_id": owner()}})
		case op == 12 && len(credentials) > 0:
			what = "credential.delete"
			id := pick(credentials)
			want(t, w.call("credential.delete", map[string]any{"credential_id": id}), 0)
			credentials = drop(credentials, id)
		case op == 13:
			what = "schedule.create"
			schedules = append(schedules, w.created("schedule.create", map[string]any{"attributes": map[string]any{"name": fmt.Sprint("schedule", step)}, "mapping": mappings()}))
		case op == 14 && len(schedules) > 0:
			what = "schedule.update (mappings)"
			w.call("schedule.update", map[string]any{"schedule_id": pick(schedules), "mapping": mappings()})
		case op == 15 && len(schedules) > 0:
			what = "schedule.delete"
			id := pick(schedules)
			want(t, w.call("schedule.delete", map[string]any{"schedule_id": id}), 0)
			schedules = drop(schedules, id)
		case op == 16:
			if len(doors) > 0 && rng.IntN(2) == 0 {
				what = "door.delete" // drops the mappings whose only target it was
				id := pick(doors)
				want(t, w.call("door.delete", map[string]any{"door_id": id}), 0)
				doors = drop(doors, id)
			} else {
				what = "door.create"
				doors = append(doors, w.created("door.create", map[string]any{"attributes": map[string]any{"alias": fmt.Sprint("door", step)}}))
			}
		default:
			what = "password_change" // bumps the user's version outside the event log
			id := pick(users)
			if id == 1 || id == self { // their own password needs the current one
				continue
			}
			want(t, w.call("password_change", map[string]any{"user_id": id, "new_password": "another-password"}), 0)
		}
		ids := []int64{1, self, pick(users), pick(users), pick(users), 4242}
		if len(deleted) > 0 {
			ids = append(ids, pick(deleted))
		}
		w.compare(what, ids, self)
	}
	w.compare("the end", users, self)
}

// TestUserViewConcurrent changes users while other clients keep reading them: every client
// that saw its change acknowledged reads it back at once, and when the writes stop the view
// holds exactly what the database says (no entry read from the database before a change may
// be kept after it).
func TestUserViewConcurrent(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	var users, creds []int64
	for i := range 4 {
		users = append(users, createUser(t, admin, map[string]any{"username": fmt.Sprint("racer", i)}).ID)
		r := admin.Call("credential.create", map[string]any{"credential-type": "rfid-card",
			"attributes": map[string]any{"card-id": fmt.Sprintf("00:00:00:%02x", i), "nb-bits": 32, "owner_id": users[i]}})
		want(t, r, 0)
		creds = append(creds, decodeObject(t, r).ID)
	}
	stop := make(chan struct{})
	done := make(chan error)
	for range 3 {
		c := asAdmin(t, srv)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if r, err := c.CallErr("user.read", map[string]any{"user_id": users[i%len(users)]}); err != nil || r.StatusCode != 0 {
					done <- fmt.Errorf("user.read: %v %d %s", err, r.StatusCode, r.Content)
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	for i := range 150 {
		id := users[rng.IntN(len(users))]
		if i%3 == 0 {
			// Move a card to this user: the previous owner's entry must go too.
			cred := creds[rng.IntN(len(creds))]
			want(t, admin.Call("credential.update", map[string]any{"credential_id": cred, "attributes": map[string]any{"owner_id": id}}), 0)
			r := admin.Call("user.read", map[string]any{"user_id": id})
			want(t, r, 0)
			if refs := relRefs(t, decodeObject(t, r), "credentials"); !slices.Contains(refs, fmt.Sprintf("%d:rfid-card", cred)) {
				t.Fatalf("user %d does not list credential %d just given: %v", id, cred, refs)
			}
			continue
		}
		name := fmt.Sprint("Name", i)
		want(t, admin.Call("user.update", map[string]any{"user_id": id, "attributes": map[string]any{"firstname": name}}), 0)
		r := admin.Call("user.read", map[string]any{"user_id": id})
		want(t, r, 0)
		if got := decodeObject(t, r).Attributes["firstname"]; got != name {
			t.Fatalf("user %d read back firstname %v after setting %s", id, got, name)
		}
	}
	close(stop)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := directoryOf(t, srv).VerifyUserView(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// seedUsers inserts n users (usernames seedNNNNNN), two RFID cards each, a membership for
// every tenth and a schedule mapping for every hundredth, straight through SQL.
func seedUsers(t testing.TB, srv *coretest.Server, n int) {
	t.Helper()
	exec := func(q string, args ...any) {
		if err := srv.DB().Write.Exec(q, args...).Error; err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	exec(`WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
		INSERT INTO users(username, firstname, lastname, email, created_at, updated_at)
		SELECT printf('seed%06d', i), 'First' || i, 'Last' || i, printf('seed%06d@example.com', i), datetime('now'), datetime('now') FROM k`, n)
	for _, q := range []string{
		`INSERT INTO credentials(type, owner_id, card_id, nb_bits, created_at, updated_at)
			SELECT 'rfid-card', id, printf('%02x:%02x:%02x:%02x', (2*id)>>24 & 255, (2*id)>>16 & 255, (2*id)>>8 & 255, (2*id) & 255), 32, datetime('now'), datetime('now')
			FROM users WHERE username LIKE 'seed%'`,
		`INSERT INTO credentials(type, owner_id, card_id, nb_bits, created_at, updated_at)
			SELECT 'rfid-card', id, printf('%02x:%02x:%02x:%02x', (2*id+1)>>24 & 255, (2*id+1)>>16 & 255, (2*id+1)>>8 & 255, (2*id+1) & 255), 32, datetime('now'), datetime('now')
			FROM users WHERE username LIKE 'seed%'`,
		`INSERT INTO groups(name, name_fold, created_at, updated_at) VALUES ('Seeded', 'seeded', datetime('now'), datetime('now'))`,
		`INSERT INTO memberships(user_id, group_id, created_at) SELECT id, (SELECT id FROM groups WHERE name = 'Seeded'), datetime('now')
			FROM users WHERE username LIKE 'seed%' AND id % 10 = 0`,
		`INSERT INTO schedules(name, name_fold, created_at, updated_at) VALUES ('Seeded', 'seeded', datetime('now'), datetime('now'))`,
		`INSERT INTO schedule_mappings(schedule_id, alias) SELECT id, 'seeded' FROM schedules WHERE name = 'Seeded'`,
		`INSERT INTO mapping_users(mapping_id, user_id) SELECT (SELECT MAX(id) FROM schedule_mappings), id
			FROM users WHERE username LIKE 'seed%' AND id % 100 = 0`,
	} {
		exec(q)
	}
}

// BenchmarkUserRead measures user.read of one id through the method registry (the handler, the
// caller's resolution and the encoding of the reply, without the websocket) on a site of
// 100,000 users with 200,000 credentials: served by the in-memory view, then by the database.
func BenchmarkUserRead(b *testing.B) {
	const n = 100_000
	srv := coretest.Start(b, coretest.WithModuleConfig("auth", cheapHashing))
	seedUsers(b, srv, n)
	dir := srv.Config.Data
	srv = srv.Restart() // the view is built in bulk, in the background
	start := time.Now()
	coretest.Eventually(b, time.Minute, func() error {
		if !directoryOf(b, srv).UserViewReady() {
			return fmt.Errorf("the view is not built")
		}
		return nil
	})
	b.Logf("view of %d users built %v after the restart", n+1, time.Since(start).Round(time.Millisecond))
	withView := heapMB()

	run := func(b *testing.B, srv *coretest.Server) {
		mod, _ := srv.App().Module(auth.ModuleID)
		res, err := mod.(*auth.Module).Login(context.Background(), auth.LoginRequest{Username: "admin",
			Password: coretest.AdminPassword, Remote: "127.0.0.1:1", Dialect: "leosac", Lifetime: time.Hour})
		if err != nil || res.Outcome != auth.Granted {
			b.Fatalf("login: %v %v", res.Outcome, err)
		}
		sess := core.NewSession("leosac", "127.0.0.1:1", "bench", nil)
		sess.Login(res.User.ID, res.Record.Hash)
		methods, log := srv.App().Methods(), zerolog.Nop()
		content := make([]json.RawMessage, 1024)
		for i := range content {
			content[i] = json.RawMessage(fmt.Sprintf(`{"user_id":%d}`, 2+(i*7919)%n))
		}
		b.ReportAllocs()
		var bytes int
		for i := 0; b.Loop(); i++ {
			reply, err := methods.Call(context.Background(), sess, "user.read", content[i%len(content)], log)
			if err != nil {
				b.Fatal(err)
			}
			// As the websocket encodes it: raw JSON as is, anything else through encoding/json.
			raw, ok := reply.(json.RawMessage)
			if !ok {
				if raw, err = json.Marshal(reply); err != nil {
					b.Fatal(err)
				}
			}
			bytes += len(raw)
		}
		b.ReportMetric(float64(bytes)/float64(b.N), "B/reply")
	}
	b.Run("view", func(b *testing.B) { run(b, srv) })

	if err := srv.Stop(); err != nil {
		b.Fatal(err)
	}
	// Stopping the server releases the view (and little else: the test still holds the rest).
	b.Logf("the view held about %d MB of heap", withView-heapMB())
	plain := coretest.Start(b, coretest.WithConfig(func(c *core.Config) { c.Data = dir }),
		coretest.WithModuleConfig("auth", cheapHashing), coretest.WithModuleConfig("directory", `{"disable_user_view": true}`))
	b.Run("database", func(b *testing.B) { run(b, plain) })
}

// heapMB returns the live heap after a collection, in MB.
func heapMB() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc >> 20)
}
