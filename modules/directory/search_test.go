package directory_test

import (
	"fmt"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/modules/wsapi/wstest"
)

// searchHits calls a search and returns its items (the content is a bare array, never null).
func searchHits(t *testing.T, c *wstest.Client, typ, partial string) []map[string]any {
	t.Helper()
	r := c.Call(typ, map[string]any{"partial_name": partial})
	want(t, r, 0)
	if !strings.HasPrefix(string(r.Content), "[") {
		t.Fatalf("%s %q: content %s is not an array", typ, partial, r.Content)
	}
	var hits []map[string]any
	r.Decode(t, &hits)
	return hits
}

// hitsOf renders items as "id:field[:field2]" for comparison.
func hitsOf(hits []map[string]any, fields ...string) string {
	out := make([]string, len(hits))
	for i, h := range hits {
		s := fmt.Sprint(h["id"])
		for _, f := range fields {
			s += ":" + fmt.Sprint(h[f])
		}
		if len(h) != len(fields)+1 {
			s += fmt.Sprintf("(extra keys %v)", h)
		}
		out[i] = s
	}
	return strings.Join(out, ",")
}

func TestSearchUsername(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	alice := addUser(t, srv, "alice", "alice-password", core.RankUser)
	alicia := addUser(t, srv, "alicia", "alicia-password", core.RankViewer)
	addUser(t, srv, "bob", "bob-password", core.RankUser)

	v := loginAs(t, srv, "alicia", "alicia-password")
	if got, want := hitsOf(searchHits(t, v, "search.user_username", "ALI"), "username"), fmt.Sprintf("%d:alice,%d:alicia", alice, alicia); got != want {
		t.Errorf("ALI: %s, want %s", got, want)
	}
	if got := searchHits(t, v, "search.user_username", "%"); len(got) != 4 || got[0]["username"] != "admin" {
		t.Errorf("%%: %v", got)
	}
	// '%' and '_' keep their LIKE meaning inside a pattern.
	if got, want := hitsOf(searchHits(t, v, "search.user_username", "L_C"), "username"), fmt.Sprintf("%d:alice,%d:alicia", alice, alicia); got != want {
		t.Errorf("L_C: %s, want %s", got, want)
	}
	if got, want := hitsOf(searchHits(t, v, "search.user_username", "a%IA"), "username"), fmt.Sprintf("%d:alicia", alicia); got != want {
		t.Errorf("a%%IA: %s, want %s", got, want)
	}
	r := v.Call("search.user_username", map[string]any{"partial_name": "nobody"})
	want(t, r, 0)
	if string(r.Content) != "[]" {
		t.Errorf("no match must be [], got %s", r.Content)
	}
	b := loginAs(t, srv, "bob", "bob-password")
	want(t, b.Call("search.user_username", map[string]any{"partial_name": "a"}), int(core.PermissionDenied))

	for _, content := range []any{map[string]any{}, map[string]any{"partial_name": nil}, map[string]any{"partial_name": 5}, "x"} {
		want(t, admin.Call("search.user_username", content), int(core.InvalidArgument))
	}

	// At most 100 results, by id.
	execSQL(t, srv, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
		INSERT INTO users(username, created_at, updated_at) SELECT 'bulk' || i, datetime('now'), datetime('now') FROM n`)
	hits := searchHits(t, admin, "search.user_username", "bulk")
	if len(hits) != 100 {
		t.Fatalf("%d hits, want 100", len(hits))
	}
	for i := 1; i < len(hits); i++ {
		if hits[i]["id"].(float64) <= hits[i-1]["id"].(float64) {
			t.Fatalf("hits not ordered by id: %v", hits)
		}
	}
	if hits[0]["username"] != "bulk1" {
		t.Errorf("first hit %v", hits[0])
	}
}

func TestSearchGroupName(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bob := addUser(t, srv, "bob", "bob-password", core.RankUser)
	ids := map[string]int64{}
	for _, name := range []string{"Staff", "Stairs.Crew", "Other"} {
		r := admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": name}})
		want(t, r, 0)
		ids[name] = decodeObject(t, r).ID
	}
	want(t, admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": bob, "group_id": ids["Staff"]}}), 0)

	if got, want := hitsOf(searchHits(t, admin, "search.group_name", "STA"), "name"), fmt.Sprintf("%d:Staff,%d:Stairs.Crew", ids["Staff"], ids["Stairs.Crew"]); got != want {
		t.Errorf("admin STA: %s, want %s", got, want)
	}
	if got := searchHits(t, admin, "search.group_name", "%"); len(got) != 3 {
		t.Errorf("%%: %v", got)
	}
	// A rank-user finds only the groups they may read.
	b := loginAs(t, srv, "bob", "bob-password")
	if got, want := hitsOf(searchHits(t, b, "search.group_name", "sta"), "name"), fmt.Sprintf("%d:Staff", ids["Staff"]); got != want {
		t.Errorf("bob sta: %s, want %s", got, want)
	}
	if got := searchHits(t, b, "search.group_name", "Other"); len(got) != 0 {
		t.Errorf("bob must not find Other: %v", got)
	}
	for _, all := range []string{"%", "", "%%"} {
		if got, want := hitsOf(searchHits(t, b, "search.group_name", all), "name"), fmt.Sprintf("%d:Staff", ids["Staff"]); got != want {
			t.Errorf("bob %q: %s, want %s", all, got, want)
		}
	}
	if got, want := hitsOf(searchHits(t, b, "search.group_name", "s%f"), "name"), fmt.Sprintf("%d:Staff", ids["Staff"]); got != want {
		t.Errorf("bob s%%f: %s, want %s", got, want)
	}
	want(t, b.Call("search.group_name", map[string]any{}), int(core.InvalidArgument))
	// Renamed groups are found under their new name.
	want(t, admin.Call("group.update", map[string]any{"group_id": ids["Other"], "attributes": map[string]any{"name": "Visitors"}}), 0)
	if got := hitsOf(searchHits(t, admin, "search.group_name", "VISIT"), "name"); got != fmt.Sprintf("%d:Visitors", ids["Other"]) {
		t.Errorf("renamed: %s", got)
	}
}

func TestSearchCredentialAlias(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	addUser(t, srv, "bob", "bob-password", core.RankUser)
	addUser(t, srv, "vera", "vera-password", core.RankViewer)
	buro := createCredential(t, admin, "rfid-card", map[string]any{"alias": "Bürotür", "card-id": "01", "nb-bits": 8}).ID
	door := createCredential(t, admin, "pin-code", map[string]any{"alias": "Дверь", "code": "1234"}).ID
	plain := createCredential(t, admin, "rfid-card-pin", map[string]any{"alias": "Garage", "card-id": "02", "nb-bits": 8, "code": "1234"}).ID

	v := loginAs(t, srv, "vera", "vera-password")
	// A Leosac client (no opt-in) sees the card + PIN credential as an rfid-card.
	if got, want := hitsOf(searchHits(t, v, "search.credential_alias", "gar"), "alias", "type"), fmt.Sprintf("%d:Garage:rfid-card", plain); got != want {
		t.Errorf("Leosac client: %s, want %s", got, want)
	}
	v.UseGatehouseTypes()
	for partial, want := range map[string]string{
		"BÜRO":  fmt.Sprintf("%d:Bürotür:rfid-card", buro),
		"ürotÜ": fmt.Sprintf("%d:Bürotür:rfid-card", buro),
		"дВЕ":   fmt.Sprintf("%d:Дверь:pin-code", door),
		"gar":   fmt.Sprintf("%d:Garage:rfid-card-pin", plain),
		"%":     fmt.Sprintf("%d:Bürotür:rfid-card,%d:Дверь:pin-code,%d:Garage:rfid-card-pin", buro, door, plain),
		"buro":  "",
	} {
		if got := hitsOf(searchHits(t, v, "search.credential_alias", partial), "alias", "type"); got != want {
			t.Errorf("%q: %s, want %s", partial, got, want)
		}
	}
	// Aliases changed by an update are searchable under the new name.
	want(t, admin.Call("credential.update", map[string]any{"credential_id": plain, "attributes": map[string]any{"alias": "ÉTAGE"}}), 0)
	if got := hitsOf(searchHits(t, v, "search.credential_alias", "étage"), "alias", "type"); got != fmt.Sprintf("%d:ÉTAGE:rfid-card-pin", plain) {
		t.Errorf("updated alias: %s", got)
	}
	b := loginAs(t, srv, "bob", "bob-password")
	want(t, b.Call("search.credential_alias", map[string]any{"partial_name": "a"}), int(core.PermissionDenied))
	want(t, v.Call("search.credential_alias", map[string]any{"partial_name": []string{"a"}}), int(core.InvalidArgument))
}
