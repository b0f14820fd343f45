package directory_test

import (
	"context"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/wsapi/wstest"
)

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

type object struct {
	ID            int64                     `json:"id"`
	Type          string                    `json:"type"`
	Attributes    map[string]any            `json:"attributes"`
	Relationships map[string]map[string]any `json:"relationships"`
}

func TestGroupsAndMemberships(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	bob := addUser(t, srv, "bob", "bob-password", core.RankUser)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)

	r := admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff", "description": "all staff"}})
	want(t, r, 0)
	var created struct{ Data object }
	r.Decode(t, &created)
	gid := created.Data.ID
	if created.Data.Type != "group" || created.Data.Attributes["name"] != "Staff" {
		t.Fatalf("created %s", r.Content)
	}
	if !strings.Contains(string(r.Content), `"memberships":{"data":[]}`) {
		t.Errorf("empty relationship must be [] not null: %s", r.Content)
	}
	// Validation with pointers.
	for _, name := range []string{"ab", "has space", "Staff", strings.Repeat("x", 51)} {
		r := admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": name}})
		want(t, r, 11)
		if !strings.Contains(string(r.Content), `"pointer":"data/attributes/name"`) {
			t.Errorf("%q: %s", name, r.Content)
		}
	}
	// Membership: bob joins as member.
	r = admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bob, "group_id": gid, "rank": 0}})
	want(t, r, 0)
	var ms struct{ Data object }
	r.Decode(t, &ms)
	want(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bob, "group_id": gid}}), 11)
	want(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": 999, "group_id": gid}}), 11)

	// bob (rank user) sees only his groups, cannot create or update.
	b := wstest.Dial(t, srv.WSURL)
	b.Login("bob", "bob-password")
	want(t, b.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Mine"}}), 2)
	want(t, b.Call("group.update", map[string]any{"group_id": gid, "attributes": map[string]any{"description": "x"}}), 2)
	r = b.Call("group.read", map[string]any{"group_id": 0})
	want(t, r, 0)
	var list struct{ Data []object }
	r.Decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != gid {
		t.Errorf("bob's groups: %s", r.Content)
	}
	want(t, b.Call("user-group-membership.read", map[string]any{"membership_id": ms.Data.ID}), 0)

	// Update and audit.
	r = admin.Call("group.update", map[string]any{"group_id": gid, "attributes": map[string]any{"name": "Staff2"}})
	want(t, r, 0)
	want(t, admin.Call("group.read", map[string]any{"group_id": 4242}), 8)

	// bob leaves; then the group is deleted.
	want(t, b.Call("user-group-membership.delete", map[string]any{"membership_id": ms.Data.ID}), 0)
	r = admin.Call("group.delete", map[string]any{"group_id": gid})
	want(t, r, 0)
	if string(r.Content) != "null" {
		t.Errorf("delete content %s", r.Content)
	}
	want(t, admin.Call("group.read", map[string]any{"group_id": gid}), 8)

	var kinds []string
	if err := srv.DB().Read.Raw(`SELECT topic FROM events WHERE kind <> '' AND topic NOT LIKE 'auth.%' ORDER BY seq`).Scan(&kinds).Error; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds, ","); got != "group.created,membership.created,group.updated,membership.deleted,group.deleted" {
		t.Errorf("event log: %s", got)
	}
}
