package sysadm_test

import (
	"fmt"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// TestQueryMatchesRights is the rank × entry check of rpc/query: for every rank and every
// registered gatehouse method, what rpc/query offers must agree with what the call does. A
// listed call is never refused (403); an unlisted one is refused, except calls whose right
// depends on the content (a group's administrators may change it) and the events calls,
// which this dialect serves in its events namespace. Login calls (AnonymousOnly in the
// registry) are never listed; public ones are listed for everyone.
func TestQueryMatchesRights(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	methods := srv.App().Methods()
	contentDependent := map[string]bool{
		"group.update": true, "group.delete": true, "user-group-membership.create": true,
		"user-group-membership.update": true, "user-group-membership.delete": true,
	}
	// Not called: they would restart the server or end the caller's session.
	noCall := map[string]bool{"restart": true, "logout": true, "password_change": true}
	args := map[string]any{"partial_name": "x"}

	for r := core.RankUser; r <= core.RankAdministrator; r++ {
		name := fmt.Sprintf("rank%d", r)
		addUser(t, srv, name, "password-"+name, r)
		c := dial(t, wsURL(srv))
		c.login(name, "password-"+name)
		var q map[string]string
		c.ok("rpc", "query", nil).decode(t, &q)
		for _, fixed := range []string{"rpc/query", "rpc/identify", "rpc/settings", "events/subscribe"} {
			if q[fixed] == "" {
				t.Errorf("rank %d: %s not listed", r, fixed)
			}
		}
		for _, typ := range methods.Types() {
			access, _ := methods.Access(typ)
			lvl, listed := q["gatehouse/"+typ]
			switch {
			case access == core.AnonymousOnly && listed:
				t.Errorf("rank %d: login call %s listed", r, typ)
			case access == core.Public && !listed:
				t.Errorf("rank %d: public call %s not listed", r, typ)
			case listed && lvl != "read" && lvl != "read/write":
				t.Errorf("rank %d: %s level %q", r, typ, lvl)
			}
			if noCall[typ] {
				continue
			}
			f := c.call("gatehouse", typ, args)
			refused := f.code() == 403
			if listed && refused {
				t.Errorf("rank %d: %s listed %q but refused: %s", r, typ, lvl, f.Args)
			}
			if !listed && !refused && !contentDependent[typ] && typ != "events.subscribe" && typ != "events.unsubscribe" {
				t.Errorf("rank %d: %s not listed but allowed: %s %s", r, typ, f.Name, f.Args)
			}
		}
		// Spot checks of the levels a client shows.
		want := map[string]string{"gatehouse/whoami": "read", "gatehouse/get_leosac_version": "read",
			"gatehouse/password_change": "read/write", "gatehouse/door.read": "read"}
		if r >= core.RankManager {
			want["gatehouse/door.create"] = "read/write"
		}
		if r == core.RankAdministrator {
			want["gatehouse/restart"] = "read/write"
		}
		for k, v := range want {
			if q[k] != v {
				t.Errorf("rank %d: %s = %q, want %q", r, k, q[k], v)
			}
		}
		if _, ok := q["gatehouse/restart"]; ok && r != core.RankAdministrator {
			t.Errorf("rank %d: restart listed", r)
		}
	}
}

// TestQueryFollowsRankChanges checks that a rank change takes effect at once: the demoted
// user's live session ends (its rights are not kept from login), and their next login's
// rpc/query no longer offers what the new rank cannot do, which the call refuses.
func TestQueryFollowsRankChanges(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	id := addUser(t, srv, "mona", "mona-password", core.RankManager)
	mona := dial(t, wsURL(srv))
	mona.login("mona", "mona-password")
	var q map[string]string
	mona.ok("rpc", "query", nil).decode(t, &q)
	if q["gatehouse/door.create"] != "read/write" {
		t.Fatalf("manager's query: %v", q)
	}
	admin := dial(t, wsURL(srv))
	admin.login("admin", coretest.AdminPassword)
	admin.ok("gatehouse", "user.update", map[string]any{"user_id": id, "attributes": map[string]any{"rank": 0}})
	if code, _ := mona.closedWith(5 * time.Second); code != 4501 {
		t.Fatalf("demoted user's session closed with %d, want 4501", code)
	}
	mona = dial(t, wsURL(srv))
	mona.login("mona", "mona-password")
	q = nil
	mona.ok("rpc", "query", nil).decode(t, &q)
	if _, ok := q["gatehouse/door.create"]; ok || q["gatehouse/whoami"] != "read" {
		t.Fatalf("demoted user's query: %v", q)
	}
	mona.wantCode("gatehouse", "door.create", map[string]any{"attributes": map[string]any{"alias": "x"}}, 403)
}
