package all_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/wsapi/wstest"
)

// cheapHashing keeps password hashing fast in these tests (the rights are what is tested).
var cheapHashing = coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`)

// fixtures are the entities the calls of the table act on, created by an administrator.
type fixtures struct {
	target, group, membership, credential, door, accessPoint, zone, schedule int64
}

func mustID(t testing.TB, r wstest.Reply) int64 {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
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

func makeFixtures(t testing.TB, admin *wstest.Client) fixtures {
	var f fixtures
	f.target = mustID(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": "target"}}))
	f.group = mustID(t, admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff"}}))
	f.membership = mustID(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": f.target, "group_id": f.group}}))
	f.credential = mustID(t, admin.Call("credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "card", "owner_id": f.target, "card-id": "aa:bb:cc:dd", "nb-bits": 26}}))
	f.accessPoint = mustID(t, admin.Call("access_point.create", map[string]any{"attributes": map[string]any{"alias": "ap", "controller-module": "simulator"}}))
	f.door = mustID(t, admin.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "Front", "access_point_id": f.accessPoint}}))
	f.zone = mustID(t, admin.Call("zone.create", map[string]any{"attributes": map[string]any{"alias": "Building", "type": 0, "doors": []int64{f.door}}}))
	f.schedule = mustID(t, admin.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "office",
		"timeframes": []map[string]any{{"day": 0, "start-time": "08:00", "end-time": "18:00"}}}}))
	return f
}

// Who may call a method (beyond the login the core requires).
const (
	anyone     = -1 // also before login
	anonymous  = -2 // only before login: every logged-in caller is refused
	loggedIn   = core.RankUser
	viewer     = core.RankViewer
	manager    = core.RankManager
	supervisor = core.RankSupervisor
	admin      = core.RankAdministrator
)

type row struct {
	typ     string
	need    core.Rank
	content func(f fixtures, rank core.Rank) any
	// noCall: do not call it when allowed (restart would restart the server under the test;
	// logout would end the caller's session); its refusals are still checked.
	noCall bool
}

func c(m map[string]any) func(fixtures, core.Rank) any {
	return func(fixtures, core.Rank) any { return m }
}

func table() []row {
	return []row{
		{typ: "get_leosac_version", need: anyone, content: c(map[string]any{})},
		{typ: "session.set_features", need: anyone, content: c(map[string]any{"types": "leosac"})},
		{typ: "create_auth_token", need: anonymous, content: c(map[string]any{"username": "x", "password": "y"})},
		{typ: "authenticate_with_token", need: anonymous, content: c(map[string]any{"token": "x"})},
		{typ: "logout", need: loggedIn, content: c(map[string]any{}), noCall: true},
		{typ: "whoami", need: loggedIn, content: c(map[string]any{})},
		// Own tokens for everyone (all for administrators); an unknown id answers ENTITY_NOT_FOUND.
		{typ: "token.list", need: loggedIn, content: c(map[string]any{})},
		{typ: "token.revoke", need: loggedIn, content: c(map[string]any{"token_id": "00000000-0000-4000-8000-000000000000"})},
		{typ: "system_overview", need: loggedIn, content: c(map[string]any{})},
		{typ: "password_change", need: loggedIn, content: func(f fixtures, r core.Rank) any {
			// The right current password and a too short new one: allowed, refused as invalid.
			return map[string]any{"user_id": 0, "current_password": fmt.Sprintf("password-rank%d", int(r)), "new_password": "short"}
		}},
		{typ: "events.subscribe", need: loggedIn, content: c(map[string]any{"topics": []string{"door.>"}})},
		{typ: "events.unsubscribe", need: loggedIn, content: c(map[string]any{})},
		// Keys: everyone registers, lists and revokes their own (administrators: all).
		{typ: "cert.list", need: loggedIn, content: c(map[string]any{})},
		{typ: "cert.register", need: loggedIn, content: c(map[string]any{"pub_key": "not a key", "nickname": "laptop"})},
		{typ: "cert.revoke", need: loggedIn, content: c(map[string]any{"cert_id": 0})},
		// Reading: everyone reads what concerns them; viewers and above read everything.
		{typ: "user.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"user_id": f.target} }},
		{typ: "group.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"group_id": f.group} }},
		{typ: "user-group-membership.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"membership_id": f.membership} }},
		{typ: "credential.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"credential_id": f.credential} }},
		{typ: "schedule.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"schedule_id": f.schedule} }},
		{typ: "door.read", need: viewer, content: func(f fixtures, _ core.Rank) any { return map[string]any{"door_id": f.door} }},
		{typ: "access_point.read", need: viewer, content: c(map[string]any{"access_point_id": 0})},
		{typ: "zone.read", need: viewer, content: c(map[string]any{"zone_id": 0})},
		{typ: "search.user_username", need: viewer, content: c(map[string]any{"partial_name": "t"})},
		{typ: "search.credential_alias", need: viewer, content: c(map[string]any{"partial_name": "c"})},
		{typ: "search.access_point_alias", need: viewer, content: c(map[string]any{"partial_name": "a"})},
		{typ: "search.hardware_name", need: admin, content: c(map[string]any{"partial_name": "a"})},
		{typ: "search.zone_alias", need: viewer, content: c(map[string]any{"partial_name": "b"})},
		{typ: "search.group_name", need: loggedIn, content: c(map[string]any{"partial_name": "s"})},
		{typ: "search.door_alias", need: loggedIn, content: c(map[string]any{"partial_name": "f"})},
		{typ: "search.schedule_name", need: loggedIn, content: c(map[string]any{"partial_name": "o"})},
		{typ: "audit.get", need: viewer, content: c(map[string]any{})},
		{typ: "get_logs", need: viewer, content: c(map[string]any{})},
		{typ: "access_overview", need: viewer, content: c(map[string]any{})},
		{typ: "door.state", need: viewer, content: c(map[string]any{"door_id": 0})},
		{typ: "check_update", need: viewer, content: c(map[string]any{})},
		{typ: "get_update_history", need: viewer, content: c(map[string]any{})},
		{typ: "get_pending_update", need: viewer, content: c(map[string]any{})},
		{typ: "get_update", need: viewer, content: c(map[string]any{"update_id": 1})},
		// Changing the site: managers and above.
		{typ: "user.create", need: manager, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"username": fmt.Sprintf("new-%d", r)}}
		}},
		{typ: "user.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"user_id": f.target, "attributes": map[string]any{"firstname": "T"}}
		}},
		{typ: "group.create", need: manager, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("group-%d", r)}}
		}},
		{typ: "group.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"group_id": f.group, "attributes": map[string]any{"description": "d"}}
		}},
		{typ: "user-group-membership.create", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"attributes": map[string]any{"user_id": f.target, "group_id": f.group}}
		}},
		{typ: "user-group-membership.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"membership_id": f.membership, "attributes": map[string]any{"rank": 1}}
		}},
		{typ: "credential.create", need: manager, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": fmt.Sprintf("55%02d", r)}}
		}},
		{typ: "credential.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"credential_id": f.credential, "attributes": map[string]any{"alias": "renamed"}}
		}},
		{typ: "schedule.create", need: manager, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("sched-%d", r)}}
		}},
		{typ: "schedule.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"schedule_id": f.schedule, "attributes": map[string]any{"description": "x"}}
		}},
		{typ: "door.create", need: manager, content: c(map[string]any{"attributes": map[string]any{"alias": "Back"}})},
		{typ: "door.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"door_id": f.door, "attributes": map[string]any{"description": "x"}}
		}},
		{typ: "access_point.create", need: manager, content: c(map[string]any{"attributes": map[string]any{"alias": "ap2", "controller-module": "simulator"}})},
		{typ: "access_point.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"access_point_id": f.accessPoint, "attributes": map[string]any{"description": "x"}}
		}},
		{typ: "zone.create", need: manager, content: c(map[string]any{"attributes": map[string]any{"alias": "Wing"}})},
		{typ: "zone.update", need: manager, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"zone_id": f.zone, "attributes": map[string]any{"description": "x"}}
		}},
		{typ: "door.open", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"door_id": f.door} }},
		{typ: "door.set_mode", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"door_id": f.door, "mode": "normal"} }},
		{typ: "site.set_mode", need: manager, content: c(map[string]any{"mode": "normal"})},
		{typ: "create_update", need: manager, content: c(map[string]any{"descriptor_uuid": "x"})},
		{typ: "ack_update", need: manager, content: c(map[string]any{"update_id": 1})},
		{typ: "cancel_update", need: manager, content: c(map[string]any{"update_id": 1})},
		// Deletions last (the first allowed rank deletes; later ones get ENTITY_NOT_FOUND).
		{typ: "user-group-membership.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"membership_id": f.membership} }},
		{typ: "credential.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"credential_id": f.credential} }},
		{typ: "zone.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"zone_id": f.zone} }},
		{typ: "schedule.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"schedule_id": f.schedule} }},
		{typ: "group.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"group_id": f.group} }},
		// Administrators only.
		{typ: "reader.simulate", need: admin, content: func(f fixtures, _ core.Rank) any {
			return map[string]any{"door_id": f.door, "card_id": "aa:bb:cc:dd", "nb_bits": 26}
		}},
		{typ: "door.simulate", need: admin, content: func(f fixtures, _ core.Rank) any { return map[string]any{"door_id": f.door, "contact": "closed"} }},
		{typ: "user.delete", need: admin, content: func(f fixtures, _ core.Rank) any { return map[string]any{"user_id": f.target} }},
		{typ: "restart", need: admin, content: c(map[string]any{}), noCall: true},
		{typ: "module.smtp.getconfig", need: admin, content: c(map[string]any{})},
		{typ: "module.smtp.setconfig", need: admin, content: c(map[string]any{"servers": []any{}})},
		{typ: "module.smtp.sendmail", need: admin, content: c(map[string]any{"to": []string{"a@example.com"}, "subject": "s", "body": "b"})},
		// Hardware devices (Leosac's HARDWARE_* rights: administrators only); the update and
		// delete name a device that does not exist (ENTITY_NOT_FOUND when allowed).
		{typ: "libgpiod.gpio.read", need: admin, content: c(map[string]any{"gpio_id": 0})},
		{typ: "libgpiod.gpio.create", need: admin, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("libgpiod.gpio-%d", r)}}
		}},
		{typ: "libgpiod.gpio.update", need: admin, content: c(map[string]any{"gpio_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f", "attributes": map[string]any{}})},
		{typ: "libgpiod.gpio.delete", need: admin, content: c(map[string]any{"gpio_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f"})},
		{typ: "led.read", need: admin, content: c(map[string]any{"led_id": 0})},
		{typ: "led.create", need: admin, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("led-%d", r)}}
		}},
		{typ: "led.update", need: admin, content: c(map[string]any{"led_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f", "attributes": map[string]any{}})},
		{typ: "led.delete", need: admin, content: c(map[string]any{"led_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f"})},
		{typ: "buzzer.read", need: admin, content: c(map[string]any{"buzzer_id": 0})},
		{typ: "buzzer.create", need: admin, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("buzzer-%d", r)}}
		}},
		{typ: "buzzer.update", need: admin, content: c(map[string]any{"buzzer_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f", "attributes": map[string]any{}})},
		{typ: "buzzer.delete", need: admin, content: c(map[string]any{"buzzer_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f"})},
		{typ: "wiegand-reader.read", need: admin, content: c(map[string]any{"reader_id": 0})},
		{typ: "wiegand-reader.create", need: admin, content: func(_ fixtures, r core.Rank) any {
			return map[string]any{"attributes": map[string]any{"name": fmt.Sprintf("wiegand-reader-%d", r)}}
		}},
		{typ: "wiegand-reader.update", need: admin, content: c(map[string]any{"reader_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f", "attributes": map[string]any{}})},
		{typ: "wiegand-reader.delete", need: admin, content: c(map[string]any{"reader_id": "6f1d1f9e-3c55-4b8e-9d47-1c2b3a4d5e6f"})},
		{typ: "door.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"door_id": f.door} }},
		{typ: "access_point.delete", need: manager, content: func(f fixtures, _ core.Rank) any { return map[string]any{"access_point_id": f.accessPoint} }},
	}
}

// TestPermissionTable walks every registered message type × every rank. A method missing from
// the table fails the test: every new call must state who may use it.
func TestPermissionTable(t *testing.T) {
	srv := coretest.Start(t, cheapHashing)
	rows := table()
	var listed []string
	for _, r := range rows {
		listed = append(listed, r.typ)
	}
	for _, typ := range srv.App().Methods().Types() {
		if !slices.Contains(listed, typ) {
			t.Errorf("method %q has no row in the permission table", typ)
		}
	}
	adminC := wstest.Dial(t, srv.WSURL)
	adminC.Login("admin", coretest.AdminPassword)
	f := makeFixtures(t, adminC)

	mod, _ := srv.App().Module(auth.ModuleID)
	am := mod.(*auth.Module)
	clients := map[core.Rank]*wstest.Client{}
	for _, rank := range []core.Rank{core.RankUser, core.RankViewer, core.RankManager, core.RankSupervisor, core.RankAdministrator} {
		name := "rank" + fmt.Sprint(int(rank))
		hash, err := am.Hasher().Hash(context.Background(), "password-"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := am.Users().Create(context.Background(), &auth.User{Username: name, PasswordHash: hash, Rank: rank, ValidityEnabled: true}); err != nil {
			t.Fatal(err)
		}
		cl := wstest.Dial(t, srv.WSURL)
		cl.Login(name, "password-"+name)
		clients[rank] = cl
	}
	anon := wstest.Dial(t, srv.WSURL)

	for _, r := range rows {
		// Before login only the public calls and the logins are open.
		ar := anon.Call(r.typ, r.content(f, -1))
		switch r.need {
		case anyone, anonymous:
			if ar.StatusCode == 2 {
				t.Errorf("%s before login: refused", r.typ)
			}
		default:
			if ar.StatusCode != 2 {
				t.Errorf("%s before login: status %d, want 2", r.typ, ar.StatusCode)
			}
		}
		for _, rank := range []core.Rank{core.RankUser, core.RankViewer, core.RankManager, core.RankSupervisor, core.RankAdministrator} {
			allowed := r.need == anyone || (r.need != anonymous && rank >= r.need)
			if allowed && r.noCall {
				continue
			}
			res := clients[rank].Call(r.typ, r.content(f, rank))
			denied := res.StatusCode == 2
			if denied == allowed {
				t.Errorf("%s as %s: status %d %q; allowed=%v", r.typ, rank, res.StatusCode, res.StatusString, allowed)
			}
			if res.StatusCode == 1 && strings.HasPrefix(res.StatusString, "Internal error") {
				t.Errorf("%s as %s: %s", r.typ, rank, res.StatusString)
			}
		}
	}
}

// TestRandomContentToEveryMethod feeds random JSON content to every registered method as an
// administrator: no call may fail with an internal error, every reply carries a known status,
// and the server keeps answering.
func TestRandomContentToEveryMethod(t *testing.T) {
	srv := coretest.Start(t, cheapHashing)
	cl := wstest.Dial(t, srv.WSURL)
	cl.Login("admin", coretest.AdminPassword)
	makeFixtures(t, cl)
	rng := rand.New(rand.NewPCG(7, 11))
	skip := map[string]bool{"restart": true, "logout": true, "user.delete": false}
	for _, typ := range srv.App().Methods().Types() {
		if skip[typ] {
			continue
		}
		for range 60 {
			content := randomJSON(rng, 3)
			raw, _ := json.Marshal(content)
			r, err := cl.SendRaw("fuzz", []byte(fmt.Sprintf(`{"uuid":"fuzz","type":%q,"content":%s}`, typ, raw)))
			if err != nil {
				t.Fatalf("%s %s: %v", typ, raw, err)
			}
			if r.StatusCode < 0 || r.StatusCode > 12 {
				t.Errorf("%s %s: status %d", typ, raw, r.StatusCode)
			}
			if r.StatusCode == 1 && strings.HasPrefix(r.StatusString, "Internal error") {
				t.Errorf("%s %s: %s", typ, raw, r.StatusString)
			}
			if r.StatusCode == 7 { // the admin account was disabled or its token revoked by the content
				cl = wstest.Dial(t, srv.WSURL)
				cl.Login("admin", coretest.AdminPassword)
			}
		}
	}
	if r := cl.Call("get_leosac_version", nil); r.StatusCode != 0 {
		t.Fatalf("server not answering after the fuzz: %d", r.StatusCode)
	}
	resp, err := http.Get(srv.HTTPURL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the fuzz: %v %v", err, resp)
	}
	resp.Body.Close()
}

// randomJSON returns a random JSON value biased towards the keys and shapes the API uses.
func randomJSON(rng *rand.Rand, depth int) any {
	keys := []string{"user_id", "group_id", "membership_id", "credential_id", "schedule_id", "door_id", "zone_id",
		"access_point_id", "attributes", "credential-type", "mapping", "partial_name", "p", "ps", "enabled_type",
		"topics", "since", "mode", "card_id", "nb_bits", "pin", "username", "password", "name", "alias", "type",
		"doors", "children", "timeframes", "rank", "validity-start", "owner_id", "card-id", "nb-bits", "code", "contact"}
	switch n := rng.IntN(10); {
	case depth == 0 || n < 2:
		switch rng.IntN(7) {
		case 0:
			return nil
		case 1:
			return rng.IntN(2) == 0
		case 2:
			return rng.Int64N(2000) - 1000
		case 3:
			return rng.Float64() * 1e12
		case 4:
			return strings.Repeat("x", rng.IntN(300))
		case 5:
			return []string{"", "%", "aa:bb:cc:dd", "normal", "lockdown", "08:00", "99:99", "Bürotür", "2026-01-02T03:04:05Z", "rfid-card", "pin-code"}[rng.IntN(11)]
		default:
			return 1 + rng.Int64N(5)
		}
	case n < 4:
		out := make([]any, rng.IntN(4))
		for i := range out {
			out[i] = randomJSON(rng, depth-1)
		}
		return out
	default:
		out := map[string]any{}
		for range 1 + rng.IntN(5) {
			out[keys[rng.IntN(len(keys))]] = randomJSON(rng, depth-1)
		}
		return out
	}
}

// FuzzMethodContent sends fuzzed content to every registered method as an administrator
// (go test ./modules/all -run '^$' -fuzz FuzzMethodContent): every reply carries a known
// status, no call fails with an internal error, and the server keeps answering.
func FuzzMethodContent(f *testing.F) {
	srv := coretest.Start(f, cheapHashing)
	cl := wstest.Dial(f, srv.WSURL)
	cl.Login("admin", coretest.AdminPassword)
	makeFixtures(f, cl)
	var types []string
	for _, typ := range srv.App().Methods().Types() {
		if typ != "restart" && typ != "logout" {
			types = append(types, typ)
		}
	}
	for i, seed := range []string{`{}`, `{"user_id":1}`, `{"attributes":{"name":"x"}}`, `[]`, `null`, `"x"`,
		`{"partial_name":"%"}`, `{"door_id":1,"card_id":"aa:bb:cc:dd","nb_bits":26}`, `{"p":-1,"ps":0}`,
		`{"topics":["a.>"],"since":0}`, `{"schedule_id":1,"mapping":[{"users":[1],"doors":[99]}]}`} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, which uint8, content []byte) {
		typ := types[int(which)%len(types)]
		if !json.Valid(content) {
			quoted, _ := json.Marshal(string(content))
			content = quoted
		}
		r, err := cl.SendRaw("fuzz", []byte(fmt.Sprintf(`{"uuid":"fuzz","type":%q,"content":%s}`, typ, content)))
		if err != nil {
			t.Fatalf("%s %s: %v", typ, content, err)
		}
		if r.StatusCode < 0 || r.StatusCode > 12 || r.StatusCode == 1 && strings.HasPrefix(r.StatusString, "Internal error") {
			t.Fatalf("%s %s: status %d %q", typ, content, r.StatusCode, r.StatusString)
		}
	})
}
