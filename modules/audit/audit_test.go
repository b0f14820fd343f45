package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsapi/wstest"
)

// Leosac status codes as the wire carries them.
const (
	codeOK               = 0
	codeGeneralFailure   = 1
	codePermissionDenied = 2
	codeEntityNotFound   = 8
	codeInvalidArgument  = 12
)

// start starts a test server whose password hashes are cheap (the tests log many users in).
func start(t *testing.T, opts ...coretest.Option) *coretest.Server {
	t.Helper()
	opts = append([]coretest.Option{coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 256, "iterations": 1}}`)}, opts...)
	return coretest.Start(t, opts...)
}

// addUser creates a user directly through the auth module's store.
func addUser(t *testing.T, srv *coretest.Server, name, pw string, rank core.Rank) int64 {
	t.Helper()
	mod, _ := srv.App().Module(auth.ModuleID)
	m := mod.(*auth.Module)
	hash, err := m.Hasher().Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	u := &auth.User{Username: name, PasswordHash: hash, Rank: rank, ValidityEnabled: true}
	if err := m.Users().Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func want(t *testing.T, r wstest.Reply, code int) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s: status %d %q, want %d; content %s", r.Type, r.StatusCode, r.StatusString, code, r.Content)
	}
}

func eventLog(t *testing.T, srv *coretest.Server) *eventlog.Log {
	t.Helper()
	mod, ok := srv.App().Module(eventlog.ModuleID)
	if !ok {
		t.Fatal("eventlog module not loaded")
	}
	return mod.(*eventlog.Module).Log()
}

// rankedClients logs in one client per rank (admin is the bootstrap administrator) and
// returns them with the user ids.
func rankedClients(t *testing.T, srv *coretest.Server) (map[core.Rank]*wstest.Client, map[core.Rank]int64) {
	t.Helper()
	clients := map[core.Rank]*wstest.Client{}
	ids := map[core.Rank]int64{core.RankAdministrator: 1}
	for _, r := range []core.Rank{core.RankUser, core.RankViewer, core.RankManager, core.RankSupervisor} {
		ids[r] = addUser(t, srv, r.String()+"1", r.String()+"-password", r)
	}
	for r := range ids {
		c := wstest.Dial(t, srv.WSURL)
		c.UseGatehouseTypes() // these clients read every audit type, as the dashboard does
		if r == core.RankAdministrator {
			c.Login("admin", coretest.AdminPassword)
		} else {
			c.Login(r.String()+"1", r.String()+"-password")
		}
		clients[r] = c
	}
	return clients, ids
}

// reply is audit.get's reply as a client decodes it.
type reply struct {
	Meta struct {
		Count     int64 `json:"count"`
		TotalPage int64 `json:"total_page"`
	} `json:"meta"`
	Data []entry `json:"data"`
}

type entry struct {
	ID            int64                      `json:"id"`
	Type          string                     `json:"type"`
	Attributes    map[string]json.RawMessage `json:"attributes"`
	Relationships map[string]struct {
		Data *struct {
			ID   int64  `json:"id"`
			Type string `json:"type"`
		} `json:"data"`
	} `json:"relationships"`
}

// rel returns "type:id" of a relationship, "null" for {"data": null}, "" when absent.
func (e entry) rel(name string) string {
	r, ok := e.Relationships[name]
	switch {
	case !ok:
		return ""
	case r.Data == nil:
		return "null"
	}
	return fmt.Sprintf("%s:%d", r.Data.Type, r.Data.ID)
}

func (e entry) str(t *testing.T, attr string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(e.Attributes[attr], &s); err != nil {
		t.Fatalf("entry %d attribute %s = %s: %v", e.ID, attr, e.Attributes[attr], err)
	}
	return s
}

func (e entry) num(t *testing.T, attr string) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal(e.Attributes[attr], &n); err != nil {
		t.Fatalf("entry %d attribute %s = %s: %v", e.ID, attr, e.Attributes[attr], err)
	}
	return n
}

func get(t *testing.T, c *wstest.Client, content map[string]any) reply {
	t.Helper()
	r := c.Call("audit.get", content)
	want(t, r, codeOK)
	var out reply
	r.Decode(t, &out)
	if out.Data == nil {
		t.Fatalf("data must be [] not null: %s", r.Content)
	}
	for i := 1; i < len(out.Data); i++ {
		if out.Data[i].ID >= out.Data[i-1].ID {
			t.Fatalf("entries not newest first: %s", r.Content)
		}
	}
	return out
}

func ids(r reply) []int64 {
	out := []int64{}
	for _, e := range r.Data {
		out = append(out, e.ID)
	}
	return out
}

func createGroup(t *testing.T, c *wstest.Client, name string) int64 {
	t.Helper()
	r := c.Call("group.create", map[string]any{"attributes": map[string]any{"name": name}})
	want(t, r, codeOK)
	var g struct{ Data struct{ ID int64 } }
	r.Decode(t, &g)
	return g.Data.ID
}

func TestAuditGetEntriesPagingAndSnapshots(t *testing.T) {
	t.Parallel()
	srv := start(t)
	clients, _ := rankedClients(t, srv)
	admin := clients[core.RankAdministrator]
	var groups []int64
	for i := range 5 {
		groups = append(groups, createGroup(t, admin, fmt.Sprintf("grp-%d", i)))
	}
	want(t, admin.Call("group.update", map[string]any{"group_id": groups[0], "attributes": map[string]any{"description": "first"}}), codeOK)

	groupsOnly := map[string]any{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "ps": 2}
	r := get(t, admin, groupsOnly)
	if r.Meta.Count != 6 || r.Meta.TotalPage != 3 || len(r.Data) != 2 {
		t.Fatalf("page 1: meta %+v, %d entries", r.Meta, len(r.Data))
	}
	newest := r.Data[0]
	if newest.Type != "audit-group-event" || newest.str(t, "topic") != "group.updated" ||
		newest.num(t, "event-mask") != eventlog.GroupUpdated || string(newest.Attributes["finalized"]) != "true" {
		t.Errorf("newest entry: %+v", newest)
	}
	tm, err := time.Parse(time.RFC3339, newest.str(t, "time"))
	if err != nil || !strings.HasSuffix(newest.str(t, "time"), "Z") || tm.Unix() != newest.num(t, "timestamp") ||
		time.Since(tm) > time.Minute || time.Since(tm) < -time.Minute {
		t.Errorf("time %s timestamp %d: %v", newest.Attributes["time"], newest.num(t, "timestamp"), err)
	}
	if !strings.Contains(newest.str(t, "description"), "grp-0") {
		t.Errorf("description %s", newest.Attributes["description"])
	}
	var data map[string]any
	if err := json.Unmarshal(newest.Attributes["data"], &data); err != nil || data["id"] != float64(groups[0]) {
		t.Errorf("data %s", newest.Attributes["data"])
	}
	if newest.rel("author") != "user:1" || newest.rel("target") != fmt.Sprintf("group:%d", groups[0]) {
		t.Errorf("relationships %+v", newest.Relationships)
	}
	// Administrators see the snapshots: JSON strings, or null.
	var before, after map[string]any
	if err := json.Unmarshal([]byte(newest.str(t, "before")), &before); err != nil || before["description"] != "" {
		t.Errorf("before %s", newest.Attributes["before"])
	}
	if err := json.Unmarshal([]byte(newest.str(t, "after")), &after); err != nil || after["description"] != "first" {
		t.Errorf("after %s", newest.Attributes["after"])
	}
	created := r.Data[1]
	if string(created.Attributes["before"]) != "null" || created.str(t, "topic") != "group.created" {
		t.Errorf("created entry: before %s topic %s", created.Attributes["before"], created.Attributes["topic"])
	}

	// Paging: 6 entries by 2; the last page, then past it.
	p2 := get(t, admin, map[string]any{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "ps": 2, "p": 2})
	p3 := get(t, admin, map[string]any{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "ps": 2, "p": 3})
	p4 := get(t, admin, map[string]any{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "ps": 2, "p": 4})
	all := slices.Concat(ids(r), ids(p2), ids(p3))
	if len(all) != 6 || len(p4.Data) != 0 || p4.Meta.Count != 6 || p4.Meta.TotalPage != 3 {
		t.Errorf("pages %v %v %v %v", ids(r), ids(p2), ids(p3), ids(p4))
	}
	one := get(t, admin, map[string]any{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "ps": 6})
	if !slices.Equal(ids(one), all) || one.Meta.TotalPage != 1 {
		t.Errorf("one page of 6: %v (%+v), pages %v", ids(one), one.Meta, all)
	}
	// The same filter spelled as enabled_types, as kind names, and both keys at once.
	for _, content := range []map[string]any{
		{"enabled_types": []string{"Leosac::Audit::GroupEvent"}, "ps": 6},
		{"enabled_type": []string{"audit-group-event"}, "ps": 6},
		{"enabled_type": []string{"Leosac::Audit::GroupEvent"}, "enabled_types": []string{"audit-group-event"}, "ps": 6},
	} {
		if got := get(t, admin, content); !slices.Equal(ids(got), all) || got.Meta.Count != 6 {
			t.Errorf("%v: %v (%+v)", content, ids(got), got.Meta)
		}
	}
	// Kinds with nothing logged, and Leosac's SMTP type (accepted, never written).
	for _, types := range [][]string{{"Leosac::Audit::ZoneEvent"}, {"Leosac::Module::SMTP::SMTPAudit"}} {
		got := get(t, admin, map[string]any{"enabled_type": types})
		if got.Meta.Count != 0 || got.Meta.TotalPage != 0 || len(got.Data) != 0 {
			t.Errorf("%v: %+v %v", types, got.Meta, ids(got))
		}
	}
	// No filter: defaults p 1, ps 20; every entry counted (the logins too, eventually).
	coretest.Eventually(t, 5*time.Second, func() error {
		r := get(t, admin, map[string]any{})
		if r.Meta.Count != 6+5 || r.Meta.TotalPage != 1 || len(r.Data) != 11 {
			return fmt.Errorf("unfiltered: %+v, %d entries", r.Meta, len(r.Data))
		}
		return nil
	})
	r = get(t, admin, map[string]any{"ps": 4, "p": 2})
	if r.Meta.Count != 11 || r.Meta.TotalPage != 3 || len(r.Data) != 4 {
		t.Errorf("ps 4 p 2: %+v, %d entries", r.Meta, len(r.Data))
	}

	// Before/after only for administrators; every other reader gets the rest.
	for _, rank := range []core.Rank{core.RankViewer, core.RankManager, core.RankSupervisor} {
		got := get(t, clients[rank], groupsOnly)
		if got.Meta.Count != 6 || len(got.Data) != 2 || got.Data[0].ID != newest.ID {
			t.Fatalf("%s: %+v %v", rank, got.Meta, ids(got))
		}
		for _, e := range got.Data {
			_, hasBefore := e.Attributes["before"]
			_, hasAfter := e.Attributes["after"]
			if hasBefore || hasAfter || e.rel("author") != "user:1" || len(e.Attributes["data"]) == 0 {
				t.Errorf("%s sees %+v", rank, e)
			}
		}
	}
	want(t, clients[core.RankUser].Call("audit.get", map[string]any{}), codePermissionDenied)
	anon := wstest.Dial(t, srv.WSURL)
	want(t, anon.Call("audit.get", map[string]any{}), codePermissionDenied)
}

func TestAuditGetInvalidArguments(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	for _, tc := range []struct {
		content map[string]any
		msg     string // exact status_string, or a part of it after "~"
		secret  string // must not be echoed
	}{
		{map[string]any{"p": -1}, "Invalid Argument page. Value was -1. Condition was page > 0", ""},
		{map[string]any{"p": 0}, "Invalid Argument page. Value was 0. Condition was page > 0", ""},
		{map[string]any{"ps": 0}, "Invalid Argument page_size. Value was 0. Condition was page_size > 0", ""},
		{map[string]any{"ps": -5, "p": 1}, "~page_size", ""},
		{map[string]any{"ps": 501}, "Invalid Argument page_size. Value was 501. Condition was page_size <= 500", ""},
		{map[string]any{"p": "2"}, "~p: want integer", ""},
		{map[string]any{"p": 1.5}, "~p: want integer", ""},
		{map[string]any{"ps": true}, "~ps: want integer", ""},
		{map[string]any{"enabled_type": []string{"Bogus::Secret<b>"}}, "Invalid Argument enabled_type[0]: unknown audit type.", "Bogus"},
		{map[string]any{"enabled_types": []string{"Leosac::Audit::UserEvent", "audit-nope-secret"}}, "Invalid Argument enabled_types[1]: unknown audit type.", "nope"},
		{map[string]any{"enabled_type": []string{"leosac::audit::userevent"}}, "~enabled_type[0]", "userevent"},
		{map[string]any{"enabled_type": "Leosac::Audit::UserEvent"}, "~enabled_type", ""},
		{map[string]any{"enabled_type": []any{"Leosac::Audit::UserEvent", 7}}, "~enabled_type", ""},
		{map[string]any{"since": "yesterday-secret"}, "Invalid Argument since: want an RFC 3339 date.", "yesterday"},
		{map[string]any{"until": "2024-13-01T00:00:00Z"}, "Invalid Argument until: want an RFC 3339 date.", "2024"},
		{map[string]any{"until": 5}, "~until", ""},
		{map[string]any{"user_id": -3}, "~user_id", ""},
		{map[string]any{"door_id": "7"}, "~door_id", ""},
		{map[string]any{"mask": "x"}, "~mask", ""},
	} {
		r := c.Call("audit.get", tc.content)
		if r.StatusCode != codeInvalidArgument {
			t.Errorf("%v: status %d %q, want 12", tc.content, r.StatusCode, r.StatusString)
			continue
		}
		if part, ok := strings.CutPrefix(tc.msg, "~"); ok && !strings.Contains(r.StatusString, part) || !ok && r.StatusString != tc.msg {
			t.Errorf("%v: %q, want %q", tc.content, r.StatusString, tc.msg)
		}
		if tc.secret != "" && strings.Contains(r.StatusString+string(r.Content), tc.secret) {
			t.Errorf("%v: the bad value is echoed: %q %s", tc.content, r.StatusString, r.Content)
		}
	}
	// Explicit nulls and empty lists are the defaults.
	r := get(t, c, map[string]any{"p": nil, "ps": nil, "enabled_type": []string{}, "enabled_types": nil, "since": nil, "user_id": 0})
	if r.Meta.TotalPage != (r.Meta.Count+19)/20 {
		t.Errorf("defaults: %+v", r.Meta)
	}
}

// waitLogins waits until the log holds n login entries and returns them.
func waitLogins(t *testing.T, c *wstest.Client, n int64) reply {
	t.Helper()
	var r reply
	coretest.Eventually(t, 5*time.Second, func() error {
		r = get(t, c, map[string]any{"enabled_type": []string{"Gatehouse::Audit::LoginEvent"}})
		if r.Meta.Count != n || int64(len(r.Data)) != n {
			return fmt.Errorf("%d login entries (%d listed), want %d", r.Meta.Count, len(r.Data), n)
		}
		return nil
	})
	return r
}

// appendEntry appends an audit entry as the domain modules would, at a given time.
func appendEntry(t *testing.T, l *eventlog.Log, e eventlog.Event) int64 {
	t.Helper()
	if len(e.Data) == 0 {
		e.Data = json.RawMessage(`{"test":true}`)
	}
	err := l.Write(context.Background(), func(tx *eventlog.Tx) error { return tx.Append(&e) })
	if err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

func TestAuditGetFiltersAndRelationships(t *testing.T) {
	t.Parallel()
	srv := start(t)
	l := eventLog(t, srv)
	admin := wstest.Dial(t, srv.WSURL)
	admin.UseGatehouseTypes()
	admin.Login("admin", coretest.AdminPassword)
	bob := addUser(t, srv, "bob", "bob-password", core.RankManager)
	carol := addUser(t, srv, "carol", "carol-password", core.RankUser)

	// bob authors a group and a membership for carol; admin adds bob to it. Logins are
	// recorded asynchronously: wait for bob's, so that the order of the log is known.
	b := wstest.Dial(t, srv.WSURL)
	b.Login("bob", "bob-password")
	waitLogins(t, admin, 2)
	gid := createGroup(t, b, "bobs-group")
	want(t, b.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": carol, "group_id": gid}}), codeOK)
	want(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bob, "group_id": gid, "rank": 1}}), codeOK)

	// Access decisions and door events at known times, and a user event about carol only.
	day := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	grant := appendEntry(t, l, eventlog.Event{Topic: "access.granted", Kind: eventlog.KindAuth, Mask: eventlog.AuthGranted,
		Time: day, UserID: eventlog.Ptr(bob), DoorID: eventlog.Ptr[int64](7), TargetID: eventlog.Ptr[int64](70), Description: "granted"})
	deny := appendEntry(t, l, eventlog.Event{Topic: "access.denied", Kind: eventlog.KindAuth, Mask: eventlog.AuthDenied,
		Time: day.Add(time.Hour), DoorID: eventlog.Ptr[int64](7), Description: "denied, unknown card"})
	opened := appendEntry(t, l, eventlog.Event{Topic: "door.8.opened", Kind: eventlog.KindDoor, Mask: eventlog.DoorOpened,
		Time: day.Add(2 * time.Hour), DoorID: eventlog.Ptr[int64](8), TargetID: eventlog.Ptr[int64](8), Description: "opened"})
	aboutCarol := appendEntry(t, l, eventlog.Event{Topic: "user.updated", Kind: eventlog.KindUser, Mask: eventlog.UserEdited,
		Time: day.Add(3 * time.Hour), TargetID: eventlog.Ptr(carol), AuthorID: eventlog.Ptr[int64](1), AuthorName: "admin", Description: "carol edited"})
	// A live-only event (no kind) is never an audit entry, whatever it names.
	appendEntry(t, l, eventlog.Event{Topic: "door.7.opened", Time: day, DoorID: eventlog.Ptr[int64](7), UserID: eventlog.Ptr(bob)})

	topics := func(t *testing.T, r reply) []string {
		out := []string{}
		for _, e := range r.Data {
			out = append(out, e.str(t, "topic"))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		content map[string]any
		topics  []string // newest first
	}{
		{"door 7", map[string]any{"door_id": 7}, []string{"access.denied", "access.granted"}},
		{"door 7 denied", map[string]any{"door_id": 7, "mask": eventlog.AuthDenied}, []string{"access.denied"}},
		{"door 8 as kind", map[string]any{"door_id": 8, "enabled_type": []string{"Leosac::Audit::DoorEvent"}}, []string{"door.8.opened"}},
		{"door 8 other kind", map[string]any{"door_id": 8, "enabled_type": []string{"Leosac::Audit::AuthEvent"}}, []string{}},
		{"author bob", map[string]any{"author_id": bob}, []string{"membership.created", "group.created", "auth.login"}},
		{"author bob groups", map[string]any{"author_id": bob, "enabled_types": []string{"Leosac::Audit::GroupEvent"}}, []string{"group.created"}},
		{"user bob", map[string]any{"user_id": bob, "enabled_type": []string{"Leosac::Audit::AuthEvent", "Leosac::Audit::UserGroupMembershipEvent", "Leosac::Audit::GroupEvent"}},
			[]string{"access.granted", "membership.created", "membership.created", "group.created"}},
		{"user carol", map[string]any{"user_id": carol}, []string{"user.updated", "membership.created"}},
		{"user carol user events", map[string]any{"user_id": carol, "enabled_type": []string{"Leosac::Audit::UserEvent"}}, []string{"user.updated"}},
		{"since", map[string]any{"since": "2024-03-10T13:00:00+01:00", "until": "2024-03-10T15:00:00Z"}, []string{"door.8.opened", "access.denied", "access.granted"}},
		{"until exclusive", map[string]any{"since": "2024-03-10T12:00:00Z", "until": "2024-03-10T13:00:00Z"}, []string{"access.granted"}},
		{"window and kind", map[string]any{"since": "2024-03-10T12:30:00Z", "until": "2024-03-11T00:00:00Z", "enabled_type": []string{"audit-auth-event", "audit-user-event"}},
			[]string{"user.updated", "access.denied"}},
		{"window and user", map[string]any{"until": "2024-03-11T00:00:00Z", "user_id": carol}, []string{"user.updated"}},
		{"mask any bit", map[string]any{"mask": eventlog.AuthDenied | eventlog.DoorOpened}, []string{"door.8.opened", "access.denied"}},
		{"nothing", map[string]any{"door_id": 9999}, []string{}},
	} {
		r := get(t, admin, tc.content)
		if got := topics(t, r); !slices.Equal(got, tc.topics) || r.Meta.Count != int64(len(tc.topics)) {
			t.Errorf("%s: %v (count %d), want %v", tc.name, got, r.Meta.Count, tc.topics)
		}
	}
	// Relationships per kind, as JSON:API {"data": …}.
	r := get(t, admin, map[string]any{"ps": 100})
	found := map[int64]entry{}
	for _, e := range r.Data {
		found[e.ID] = e
	}
	for _, tc := range []struct {
		seq  int64
		rels map[string]string
	}{
		{grant, map[string]string{"user": fmt.Sprintf("user:%d", bob), "door": "door:7", "credential": "credential:70", "author": ""}},
		{deny, map[string]string{"user": "null", "door": "door:7", "credential": "null"}},
		{opened, map[string]string{"target": "door:8", "author": ""}},
		{aboutCarol, map[string]string{"target": fmt.Sprintf("user:%d", carol), "author": "user:1"}},
	} {
		e, ok := found[tc.seq]
		if !ok {
			t.Fatalf("entry %d missing", tc.seq)
		}
		for name, want := range tc.rels {
			if got := e.rel(name); got != want {
				t.Errorf("entry %d (%s) %s = %q, want %q", tc.seq, e.Type, name, got, want)
			}
		}
	}
	memberships := get(t, admin, map[string]any{"enabled_type": []string{"Leosac::Audit::UserGroupMembershipEvent"}})
	if len(memberships.Data) != 2 {
		t.Fatalf("memberships: %v", ids(memberships))
	}
	if m := memberships.Data[0]; m.rel("target-user") != fmt.Sprintf("user:%d", bob) || m.rel("target-group") != fmt.Sprintf("group:%d", gid) ||
		m.rel("author") != "user:1" {
		t.Errorf("membership relationships %+v", m.Relationships)
	}
	if m := memberships.Data[1]; m.rel("target-user") != fmt.Sprintf("user:%d", carol) || m.rel("author") != fmt.Sprintf("user:%d", bob) {
		t.Errorf("membership relationships %+v", m.Relationships)
	}
}
