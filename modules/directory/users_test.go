package directory_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// startDirectory starts a real server whose password hashing is cheap, so that tests can
// create and log in many users (the parameters travel with each hash; nothing else changes).
func startDirectory(t *testing.T) *coretest.Server {
	t.Helper()
	return coretest.Start(t, coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 256, "iterations": 1}}`))
}

// loginAs dials the server and logs in.
func loginAs(t *testing.T, srv *coretest.Server, name, pw string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, srv.WSURL)
	c.Login(name, pw)
	return c
}

// asAdmin dials the server and logs in as the bootstrap administrator.
func asAdmin(t *testing.T, srv *coretest.Server) *wstest.Client {
	t.Helper()
	return loginAs(t, srv, "admin", coretest.AdminPassword)
}

// addMapping inserts, with raw SQL, a schedule mapping of the schedule named name (created if
// needed) and returns the schedule's and the mapping's ids.
func addMapping(t *testing.T, srv *coretest.Server, name string) (scheduleID, mappingID int64) {
	t.Helper()
	w := srv.DB().Write
	now := time.Now().UTC()
	if err := w.Exec(`INSERT INTO schedules(name, name_fold, created_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(name) DO NOTHING`, name, strings.ToLower(name), now, now).Error; err != nil {
		t.Fatal(err)
	}
	if err := w.Raw(`SELECT id FROM schedules WHERE name = ?`, name).Scan(&scheduleID).Error; err != nil {
		t.Fatal(err)
	}
	if err := w.Raw(`INSERT INTO schedule_mappings(schedule_id, alias) VALUES (?, 'm') RETURNING id`, scheduleID).Scan(&mappingID).Error; err != nil {
		t.Fatal(err)
	}
	return scheduleID, mappingID
}

// execSQL runs a statement on the writer, failing the test on error.
func execSQL(t *testing.T, srv *coretest.Server, q string, args ...any) {
	t.Helper()
	if err := srv.DB().Write.Exec(q, args...).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// count returns the result of a COUNT query.
func count(t *testing.T, srv *coretest.Server, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := srv.DB().Read.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// auditRow is a row of the events table as the tests inspect it.
type auditRow struct {
	Topic     string
	Kind      string
	EventMask int64
	AuthorID  *int64
	TargetID  *int64
	UserID    *int64
	Before    *string
	After     *string
	Data      string
}

// auditRows returns the events of a topic, oldest first.
func auditRows(t *testing.T, srv *coretest.Server, topic string) []auditRow {
	t.Helper()
	var rows []auditRow
	if err := srv.DB().Read.Raw(`SELECT topic, kind, event_mask, author_id, target_id, user_id, before, after, data
		FROM events WHERE topic = ? ORDER BY seq`, topic).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// decodeObject decodes a {"data": object} reply.
func decodeObject(t *testing.T, r wstest.Reply) object {
	t.Helper()
	var v struct{ Data object }
	r.Decode(t, &v)
	return v.Data
}

// decodeList decodes a {"data": [objects]} reply.
func decodeList(t *testing.T, r wstest.Reply) []object {
	t.Helper()
	var v struct{ Data []object }
	r.Decode(t, &v)
	return v.Data
}

// relRefs returns the "id:type" of each reference of a to-many relationship.
func relRefs(t *testing.T, o object, name string) []string {
	t.Helper()
	rel, ok := o.Relationships[name]
	if !ok {
		t.Fatalf("object %d has no relationship %q", o.ID, name)
	}
	list, ok := rel["data"].([]any)
	if !ok {
		t.Fatalf("relationship %q of %d is %#v, want a list", name, o.ID, rel["data"])
	}
	out := []string{}
	for _, x := range list {
		m := x.(map[string]any)
		out = append(out, fmt.Sprintf("%v:%v", m["id"], m["type"]))
	}
	return out
}

// wantModel checks a MODEL_EXCEPTION naming the pointer, with a detail containing detail.
func wantModel(t *testing.T, r wstest.Reply, pointer, detail string) {
	t.Helper()
	want(t, r, int(core.ModelException))
	var v struct {
		Errors []struct {
			Detail string
			Source struct{ Pointer string }
		}
	}
	r.Decode(t, &v)
	for _, e := range v.Errors {
		if e.Source.Pointer == pointer && strings.Contains(e.Detail, detail) {
			return
		}
	}
	t.Fatalf("%s: want error at %q with %q, got %s", r.Type, pointer, detail, r.Content)
}

func createUser(t *testing.T, c *wstest.Client, attrs map[string]any) object {
	t.Helper()
	r := c.Call("user.create", map[string]any{"attributes": attrs})
	want(t, r, 0)
	return decodeObject(t, r)
}

func TestUserReadShapesAndRights(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)

	r := admin.Call("user.create", map[string]any{"attributes": map[string]any{
		"username": "Bob", "password": "bob-password", "firstname": "Bob", "lastname": "Builder",
		"email": "bob@example.com", "rank": 0, "validity-enabled": true,
		"validity-start": "2020-01-01T02:00:00+02:00", "validity-end": nil,
	}})
	want(t, r, 0)
	bob := decodeObject(t, r)
	if bob.Type != "user" || bob.ID == 0 {
		t.Fatalf("created %s", r.Content)
	}
	wantAttrs := map[string]any{
		"username": "bob", "firstname": "Bob", "lastname": "Builder", "email": "bob@example.com",
		"rank": float64(0), "version": float64(1), "validity-enabled": true,
		"validity-start": "2020-01-01T00:00:00Z", "validity-end": nil,
	}
	for k, v := range wantAttrs {
		if got, ok := bob.Attributes[k]; !ok || got != v {
			t.Errorf("attribute %s = %#v, want %#v (%s)", k, got, v, r.Content)
		}
	}
	for _, rel := range []string{"memberships", "credentials", "schedules"} {
		if !strings.Contains(string(r.Content), `"`+rel+`":{"data":[]}`) {
			t.Errorf("empty %s must be []: %s", rel, r.Content)
		}
	}

	// Relationships: a membership, an owned card, and two schedules through three mappings.
	r = admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff"}})
	want(t, r, 0)
	gid := decodeObject(t, r).ID
	r = admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bob.ID, "group_id": gid}})
	want(t, r, 0)
	msID := decodeObject(t, r).ID
	r = admin.Call("credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 32, "owner_id": bob.ID}})
	want(t, r, 0)
	credID := decodeObject(t, r).ID
	s1, m1 := addMapping(t, srv, "Day")
	_, m2 := addMapping(t, srv, "Day")
	s2, m3 := addMapping(t, srv, "Night")
	for _, m := range []int64{m1, m2, m3} {
		execSQL(t, srv, `INSERT INTO mapping_users(mapping_id, user_id) VALUES (?, ?)`, m, bob.ID)
	}

	checkRels := func(o object) {
		t.Helper()
		if got := strings.Join(relRefs(t, o, "memberships"), ","); got != fmt.Sprintf("%d:user-group-membership", msID) {
			t.Errorf("memberships %s", got)
		}
		if got := strings.Join(relRefs(t, o, "credentials"), ","); got != fmt.Sprintf("%d:rfid-card", credID) {
			t.Errorf("credentials %s", got)
		}
		if got := strings.Join(relRefs(t, o, "schedules"), ","); got != fmt.Sprintf("%d:schedule,%d:schedule", s1, s2) {
			t.Errorf("schedules %s (distinct, by id)", got)
		}
	}
	r = admin.Call("user.read", map[string]any{"user_id": bob.ID})
	want(t, r, 0)
	checkRels(decodeObject(t, r))

	// bob reads himself (with email and his relationships), and only himself.
	b := loginAs(t, srv, "bob", "bob-password")
	r = b.Call("user.read", map[string]any{"user_id": bob.ID})
	want(t, r, 0)
	self := decodeObject(t, r)
	if self.Attributes["email"] != "bob@example.com" {
		t.Errorf("own email missing: %s", r.Content)
	}
	checkRels(self)
	r = b.Call("user.read", map[string]any{"user_id": 0})
	want(t, r, 0)
	if l := decodeList(t, r); len(l) != 1 || l[0].ID != bob.ID {
		t.Errorf("bob's list: %s", r.Content)
	}
	want(t, b.Call("user.read", map[string]any{"user_id": 1}), int(core.PermissionDenied))
	want(t, b.Call("user.read", map[string]any{"user_id": 4242}), int(core.PermissionDenied))

	// A viewer reads everyone, emails and all relationships included; the list is by id.
	addUser(t, srv, "vera", "vera-password", core.RankViewer)
	v := loginAs(t, srv, "vera", "vera-password")
	r = v.Call("user.read", map[string]any{"user_id": bob.ID})
	want(t, r, 0)
	seen := decodeObject(t, r)
	if seen.Attributes["email"] != "bob@example.com" {
		t.Errorf("viewer must see email: %s", r.Content)
	}
	checkRels(seen)
	r = v.Call("user.read", map[string]any{})
	want(t, r, 0)
	list := decodeList(t, r)
	if len(list) != 3 || list[0].Attributes["username"] != "admin" || list[1].ID != bob.ID || list[2].Attributes["username"] != "vera" {
		t.Errorf("viewer's list: %s", r.Content)
	}
	checkRels(list[1])
	if got := relRefs(t, list[0], "credentials"); len(got) != 0 {
		t.Errorf("admin owns no credential: %v", got)
	}

	// Unknown ids and bad arguments.
	r = admin.Call("user.read", map[string]any{"user_id": 4242})
	want(t, r, int(core.EntityNotFound))
	if string(r.Content) != `{"entity_id":"4242","entity_type":"user"}` {
		t.Errorf("not found content %s", r.Content)
	}
	want(t, admin.Call("user.read", map[string]any{"user_id": "two"}), int(core.InvalidArgument))
	want(t, admin.Call("user.read", map[string]any{"user_id": -1}), int(core.InvalidArgument))
}

func TestUserRankMatrix(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	ranks := []core.Rank{core.RankUser, core.RankViewer, core.RankManager, core.RankSupervisor, core.RankAdministrator}
	type outcome struct {
		readOther, createUser, createManager, createDisabled, updateLower, updatePeerManager, updateRank, deleteUser bool
		listLen                                                                                                      int
	}
	expect := map[core.Rank]outcome{
		core.RankUser:          {listLen: 1},
		core.RankViewer:        {readOther: true},
		core.RankManager:       {readOther: true, createUser: true, updateLower: true},
		core.RankSupervisor:    {readOther: true, createUser: true, updateLower: true, updatePeerManager: true},
		core.RankAdministrator: {readOther: true, createUser: true, createManager: true, createDisabled: true, updateLower: true, updatePeerManager: true, updateRank: true, deleteUser: true},
	}
	callers := map[core.Rank]*wstest.Client{}
	for _, rk := range ranks {
		name := "caller-" + rk.String()
		addUser(t, srv, name, name+"-pw", rk)
		callers[rk] = loginAs(t, srv, name, name+"-pw")
	}
	ok := func(allowed bool) int {
		if allowed {
			return 0
		}
		return int(core.PermissionDenied)
	}
	for _, rk := range ranks {
		c, exp := callers[rk], expect[rk]
		t.Run(rk.String(), func(t *testing.T) {
			victim := createUser(t, admin, map[string]any{"username": "victim-" + rk.String()}).ID
			peer := createUser(t, admin, map[string]any{"username": "peer-" + rk.String(), "rank": 2}).ID

			want(t, c.Call("user.read", map[string]any{"user_id": victim}), ok(exp.readOther))
			r := c.Call("user.read", map[string]any{"user_id": 0})
			want(t, r, 0)
			if n := len(decodeList(t, r)); exp.listLen != 0 && n != exp.listLen || exp.listLen == 0 && n < 5 {
				t.Errorf("list has %d users", n)
			}
			want(t, c.Call("user.create", map[string]any{"attributes": map[string]any{"username": "new-" + rk.String()}}), ok(exp.createUser))
			want(t, c.Call("user.create", map[string]any{"attributes": map[string]any{"username": "mgr-" + rk.String(), "rank": 2}}), ok(exp.createManager))
			want(t, c.Call("user.create", map[string]any{"attributes": map[string]any{"username": "off-" + rk.String(), "validity-enabled": false}}), ok(exp.createDisabled))
			want(t, c.Call("user.update", map[string]any{"user_id": victim, "attributes": map[string]any{"firstname": "V"}}), ok(exp.updateLower))
			want(t, c.Call("user.update", map[string]any{"user_id": peer, "attributes": map[string]any{"firstname": "P"}}), ok(exp.updatePeerManager))
			want(t, c.Call("user.update", map[string]any{"user_id": victim, "attributes": map[string]any{"rank": 1}}), ok(exp.updateRank))
			want(t, c.Call("user.delete", map[string]any{"user_id": victim}), ok(exp.deleteUser))
			// Everyone may edit their own profile.
			r = c.Call("whoami", map[string]any{})
			var who struct {
				UserID int64 `json:"user_id"`
			}
			r.Decode(t, &who)
			want(t, c.Call("user.update", map[string]any{"user_id": who.UserID, "attributes": map[string]any{"lastname": "Self"}}), 0)
		})
	}
}

func TestUserCreateValidationAndAudit(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	created := createUser(t, admin, map[string]any{"username": "MiXed.Case_1-x", "password": "mixed-password", "email": "m@x"})
	if created.Attributes["username"] != "mixed.case_1-x" {
		t.Errorf("username stored as %v", created.Attributes["username"])
	}
	loginAs(t, srv, "MIXED.case_1-X", "mixed-password")

	cases := []struct {
		name    string
		attrs   map[string]any
		pointer string
		detail  string
	}{
		{"missing username", map[string]any{"firstname": "x"}, "data/attributes/username", "Invalid username"},
		{"space", map[string]any{"username": "has space"}, "data/attributes/username", "Invalid username"},
		{"non-ascii", map[string]any{"username": "zoë"}, "data/attributes/username", "Invalid username"},
		{"too long", map[string]any{"username": strings.Repeat("a", 129)}, "data/attributes/username", "Invalid username"},
		{"empty", map[string]any{"username": ""}, "data/attributes/username", "Invalid username"},
		{"duplicate", map[string]any{"username": "MIXED.CASE_1-X"}, "data/attributes/username", "The username mixed.case_1-x is already in use."},
		{"short password", map[string]any{"username": "pw", "password": "short"}, "data/attributes/password", "Password must be"},
		{"empty password", map[string]any{"username": "pw", "password": ""}, "data/attributes/password", "Password must be"},
		{"rank", map[string]any{"username": "rk", "rank": 7}, "data/attributes/rank", "Invalid rank"},
		{"date", map[string]any{"username": "dt", "validity-start": "tomorrow"}, "data/attributes/validity-start", "Invalid date"},
		{"window", map[string]any{"username": "dt", "validity-start": "2030-01-01T00:00:00Z", "validity-end": "2029-01-01T00:00:00Z"}, "data/attributes/validity-end", "before"},
	}
	for _, tc := range cases {
		wantModel(t, admin.Call("user.create", map[string]any{"attributes": tc.attrs}), tc.pointer, tc.detail)
	}
	want(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": 5}}), int(core.InvalidArgument))
	want(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": "x", "password": 12345678}}), int(core.InvalidArgument))
	want(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": "x", "rank": "admin"}}), int(core.InvalidArgument))
	want(t, admin.Call("user.create", map[string]any{"attributes": "x"}), int(core.InvalidArgument))

	// A user created without a password exists but cannot log in.
	createUser(t, admin, map[string]any{"username": "nopw", "password": nil})
	c := wstest.Dial(t, srv.WSURL)
	r := c.Call("create_auth_token", map[string]any{"username": "nopw", "password": ""})
	want(t, r, 0)
	if !strings.Contains(string(r.Content), `"status":-1`) {
		t.Errorf("password-less login: %s", r.Content)
	}
	// Administrators set rank and validity at creation.
	boss := createUser(t, admin, map[string]any{"username": "boss", "rank": 3, "validity-enabled": false,
		"validity-end": "2031-05-06T07:08:09.5-02:00"})
	if boss.Attributes["rank"] != float64(3) || boss.Attributes["validity-enabled"] != false || boss.Attributes["validity-end"] != "2031-05-06T09:08:09Z" {
		t.Errorf("boss: %v", boss.Attributes)
	}

	rows := auditRows(t, srv, "user.created")
	if len(rows) != 3 {
		t.Fatalf("want 3 user.created events, got %d", len(rows))
	}
	e := rows[0]
	if e.Kind != "audit-user-event" || e.EventMask != 1<<1 || e.TargetID == nil || *e.TargetID != created.ID ||
		e.AuthorID == nil || *e.AuthorID != 1 || e.After == nil || e.Before != nil {
		t.Errorf("audit row %+v", e)
	}
	if strings.Contains(*e.After, "argon2") || strings.Contains(*e.After, "mixed-password") || !strings.Contains(*e.After, `"username":"mixed.case_1-x"`) {
		t.Errorf("after snapshot %s", *e.After)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(e.Data), &data); err != nil {
		t.Fatal(err)
	}
	if len(data) != 3 || data["id"] != float64(created.ID) || data["username"] != "mixed.case_1-x" || data["rank"] != float64(0) {
		t.Errorf("event data %s", e.Data)
	}
}

func TestUserUpdate(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bobID := createUser(t, admin, map[string]any{"username": "bob", "password": "bob-password", "firstname": "Bob",
		"lastname": "B", "email": "b@x", "validity-end": "2099-01-01T00:00:00Z"}).ID
	mgrID := createUser(t, admin, map[string]any{"username": "mgr", "password": "mgr-password", "rank": 2}).ID
	createUser(t, admin, map[string]any{"username": "mgr2", "rank": 2})
	read := func(id int64) map[string]any {
		t.Helper()
		r := admin.Call("user.read", map[string]any{"user_id": id})
		want(t, r, 0)
		return decodeObject(t, r).Attributes
	}
	upd := func(c *wstest.Client, id int64, attrs map[string]any) wstest.Reply {
		t.Helper()
		return c.Call("user.update", map[string]any{"user_id": id, "attributes": attrs})
	}

	// Self: profile fields; absent attributes keep their values; the reply is null.
	bob := loginAs(t, srv, "bob", "bob-password")
	r := upd(bob, bobID, map[string]any{"firstname": "Robert"})
	want(t, r, 0)
	if string(r.Content) != "null" {
		t.Errorf("update reply %s", r.Content)
	}
	a := read(bobID)
	if a["firstname"] != "Robert" || a["lastname"] != "B" || a["email"] != "b@x" || a["validity-end"] != "2099-01-01T00:00:00Z" ||
		a["validity-enabled"] != true || a["version"] != float64(2) {
		t.Errorf("after self update: %v", a)
	}
	// Echoing rank and validity is fine; changing them is not.
	want(t, upd(bob, bobID, map[string]any{"rank": 0, "validity-enabled": true, "validity-start": nil, "validity-end": "2099-01-01T01:00:00+01:00"}), 0)
	want(t, upd(bob, bobID, map[string]any{"rank": 1}), int(core.PermissionDenied))
	want(t, upd(bob, bobID, map[string]any{"validity-end": nil}), int(core.PermissionDenied))
	want(t, upd(bob, bobID, map[string]any{"validity-enabled": false}), int(core.PermissionDenied))
	// Passwords never change through user.update.
	wantModel(t, upd(bob, bobID, map[string]any{"password": "a-new-password"}), "data/attributes/password", "Use password_change to change a password.")
	want(t, upd(bob, bobID, map[string]any{"password": ""}), 0)
	want(t, upd(bob, bobID, map[string]any{"password": nil}), 0)
	loginAs(t, srv, "bob", "bob-password")
	// Username: same rules, unique.
	want(t, upd(bob, bobID, map[string]any{"username": "Robert"}), 0)
	if a := read(bobID); a["username"] != "robert" {
		t.Errorf("renamed to %v", a["username"])
	}
	wantModel(t, upd(bob, bobID, map[string]any{"username": "MGR"}), "data/attributes/username", "The username mgr is already in use.")
	wantModel(t, upd(bob, bobID, map[string]any{"username": "no way"}), "data/attributes/username", "Invalid username")
	want(t, upd(bob, 1, map[string]any{"firstname": "x"}), int(core.PermissionDenied))
	want(t, upd(bob, 4242, map[string]any{"firstname": "x"}), int(core.PermissionDenied))

	// Managers: lower ranks only, profile only.
	mgr := loginAs(t, srv, "mgr", "mgr-password")
	want(t, upd(mgr, bobID, map[string]any{"lastname": "Builder"}), 0)
	want(t, upd(mgr, bobID, map[string]any{"rank": 1}), int(core.PermissionDenied))
	want(t, upd(mgr, bobID, map[string]any{"validity-start": "2020-01-01T00:00:00Z"}), int(core.PermissionDenied))
	want(t, upd(mgr, 1, map[string]any{"lastname": "x"}), int(core.PermissionDenied))
	want(t, upd(mgr, 4242, map[string]any{"lastname": "x"}), int(core.EntityNotFound))

	// Administrators: rank and validity, with checks.
	wantModel(t, upd(admin, bobID, map[string]any{"rank": 9}), "data/attributes/rank", "Invalid rank")
	wantModel(t, upd(admin, bobID, map[string]any{"validity-start": "not a date"}), "data/attributes/validity-start", "Invalid date")
	r = upd(admin, 1, map[string]any{"validity-enabled": false})
	want(t, r, int(core.GeneralFailure))
	if r.StatusString != "You cannot disable your own user account." {
		t.Errorf("status string %q", r.StatusString)
	}
	want(t, upd(admin, 1, map[string]any{"validity-end": "2001-01-01T00:00:00Z"}), int(core.GeneralFailure))
	wantModel(t, upd(admin, 1, map[string]any{"rank": 3}), "data/attributes/rank", "There must remain at least one enabled administrator.")

	// A second administrator, disabled, does not count; enabled, it does.
	admin2 := createUser(t, admin, map[string]any{"username": "admin2", "password": "admin2-password", "rank": 4, "validity-enabled": false}).ID
	wantModel(t, upd(admin, 1, map[string]any{"rank": 3}), "data/attributes/rank", "There must remain at least one enabled administrator.")
	want(t, upd(admin, admin2, map[string]any{"validity-enabled": true}), 0)
	a2 := loginAs(t, srv, "admin2", "admin2-password")
	// admin remains an enabled administrator, so admin2 may be demoted (and loses its sessions).
	want(t, upd(admin, admin2, map[string]any{"rank": 3}), 0)
	a2.ExpectPush("session_closed", 5*time.Second)
	if n := count(t, srv, `SELECT COUNT(*) FROM tokens WHERE user_id = ?`, admin2); n != 0 {
		t.Errorf("demoted admin2 keeps %d tokens", n)
	}

	// Disabling, moving outside the window or demoting ends the user's sessions now.
	bob = loginAs(t, srv, "robert", "bob-password")
	want(t, upd(admin, bobID, map[string]any{"validity-enabled": false}), 0)
	p := bob.ExpectPush("session_closed", 5*time.Second)
	if !strings.Contains(string(p.Content), "Account changed by an administrator.") {
		t.Errorf("session_closed %s", p.Content)
	}
	want(t, bob.Call("whoami", map[string]any{}), int(core.PermissionDenied))
	if n := count(t, srv, `SELECT COUNT(*) FROM tokens WHERE user_id = ?`, bobID); n != 0 {
		t.Errorf("disabled bob keeps %d tokens", n)
	}
	want(t, upd(admin, bobID, map[string]any{"validity-enabled": true}), 0)
	bob = loginAs(t, srv, "robert", "bob-password")
	want(t, upd(admin, bobID, map[string]any{"validity-end": "2001-01-01T00:00:00Z"}), 0)
	bob.ExpectPush("session_closed", 5*time.Second)
	want(t, upd(admin, mgrID, map[string]any{"rank": 1}), 0)
	mgr.ExpectPush("session_closed", 5*time.Second)
	// Raising a rank or editing a profile keeps the sessions.
	v := loginAs(t, srv, "mgr", "mgr-password")
	want(t, upd(admin, mgrID, map[string]any{"rank": 2, "firstname": "M"}), 0)
	r = v.Call("whoami", map[string]any{})
	want(t, r, 0)
	if !strings.Contains(string(r.Content), `"rank":2`) {
		t.Errorf("rank change must be visible at once: %s", r.Content)
	}

	// Audit: before and after, never a password hash.
	rows := auditRows(t, srv, "user.updated")
	if len(rows) < 10 {
		t.Fatalf("only %d user.updated events", len(rows))
	}
	first := rows[0]
	if first.Kind != "audit-user-event" || first.EventMask != 1<<3 || first.Before == nil || first.After == nil ||
		!strings.Contains(*first.Before, `"firstname":"Bob"`) || !strings.Contains(*first.After, `"firstname":"Robert"`) ||
		first.AuthorID == nil || *first.AuthorID != bobID {
		t.Errorf("first update audit %+v", first)
	}
	for _, row := range rows {
		if strings.Contains(*row.Before+*row.After+row.Data, "argon2") {
			t.Errorf("password hash in audit: %+v", row)
		}
	}
}

func TestUserDelete(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bobID := createUser(t, admin, map[string]any{"username": "bob", "password": "bob-password"}).ID
	createUser(t, admin, map[string]any{"username": "mgr", "password": "mgr-password", "rank": 2})
	r := admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff"}})
	want(t, r, 0)
	gid := decodeObject(t, r).ID
	want(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bobID, "group_id": gid}}), 0)
	r = admin.Call("credential.create", map[string]any{"credential-type": "pin-code",
		"attributes": map[string]any{"code": "4321", "owner_id": bobID, "alias": "bob's pin"}})
	want(t, r, 0)
	credID := decodeObject(t, r).ID
	_, mapping := addMapping(t, srv, "Always")
	execSQL(t, srv, `INSERT INTO mapping_users(mapping_id, user_id) VALUES (?, ?)`, mapping, bobID)
	bob := loginAs(t, srv, "bob", "bob-password")
	loginAs(t, srv, "bob", "bob-password") // a second token, not attached to a live session after this test's end
	mgr := loginAs(t, srv, "mgr", "mgr-password")

	want(t, mgr.Call("user.delete", map[string]any{"user_id": bobID}), int(core.PermissionDenied))
	want(t, bob.Call("user.delete", map[string]any{"user_id": bobID}), int(core.PermissionDenied))
	r = admin.Call("user.delete", map[string]any{"user_id": 1})
	want(t, r, int(core.GeneralFailure))
	want(t, admin.Call("user.delete", map[string]any{"user_id": 4242}), int(core.EntityNotFound))
	want(t, admin.Call("user.delete", map[string]any{}), int(core.EntityNotFound))

	r = admin.Call("user.delete", map[string]any{"user_id": bobID})
	want(t, r, 0)
	if string(r.Content) != "null" {
		t.Errorf("delete reply %s", r.Content)
	}
	p := bob.ExpectPush("session_closed", 5*time.Second)
	if !strings.Contains(string(p.Content), "reason") {
		t.Errorf("session_closed %s", p.Content)
	}
	want(t, bob.Call("whoami", map[string]any{}), int(core.PermissionDenied))
	want(t, admin.Call("user.read", map[string]any{"user_id": bobID}), int(core.EntityNotFound))
	for q, n := range map[string]int64{
		`SELECT COUNT(*) FROM memberships WHERE user_id = ?`:   0,
		`SELECT COUNT(*) FROM mapping_users WHERE user_id = ?`: 0,
		`SELECT COUNT(*) FROM tokens WHERE user_id = ?`:        0,
		`SELECT COUNT(*) FROM credentials WHERE owner_id = ?`:  0,
		`SELECT COUNT(*) FROM users WHERE id = ?`:              0,
	} {
		if got := count(t, srv, q, bobID); got != n {
			t.Errorf("%s = %d, want %d", q, got, n)
		}
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM schedule_mappings WHERE id = ?`, mapping); n != 1 {
		t.Errorf("the mapping itself must stay")
	}
	r = admin.Call("credential.read", map[string]any{"credential_id": credID})
	want(t, r, 0)
	if !strings.Contains(string(r.Content), `"owner":{"data":null}`) {
		t.Errorf("credential must be unowned: %s", r.Content)
	}
	r = admin.Call("group.read", map[string]any{"group_id": gid})
	want(t, r, 0)
	if !strings.Contains(string(r.Content), `"memberships":{"data":[]}`) {
		t.Errorf("group keeps the membership: %s", r.Content)
	}

	rows := auditRows(t, srv, "user.deleted")
	if len(rows) != 1 || rows[0].Kind != "audit-user-event" || rows[0].EventMask != 1<<2 || rows[0].Before == nil ||
		!strings.Contains(*rows[0].Before, `"username":"bob"`) || rows[0].After != nil ||
		rows[0].Data != fmt.Sprintf(`{"id":%d,"username":"bob"}`, bobID) {
		t.Errorf("delete audit %+v", rows)
	}
}
