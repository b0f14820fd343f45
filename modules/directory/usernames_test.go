package directory_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/directory"
	"gatehouse/modules/wsapi/wstest"
)

// directoryModule returns the server's directory module.
func directoryModule(t testing.TB, srv *coretest.Server) *directory.Module {
	t.Helper()
	mod, ok := srv.App().Module(directory.ModuleID)
	if !ok {
		t.Fatal("no directory module")
	}
	return mod.(*directory.Module)
}

// sqlUsernameHits is what the SQL path of search.user_username answers for a folded partial
// without '%' or '_' (instr on the username, by id, at most 100), rendered as hitsOf does.
func sqlUsernameHits(t *testing.T, srv *coretest.Server, partial string) string {
	t.Helper()
	var rows []struct {
		ID       int64
		Username string
	}
	q := `SELECT id, username FROM users WHERE instr(username, ?) > 0 ORDER BY id LIMIT 100`
	if strings.Trim(partial, "%") == "" {
		q = `SELECT id, username FROM users WHERE ? IS NOT NULL ORDER BY id LIMIT 100`
	}
	if err := srv.DB().Read.Raw(q, partial).Scan(&rows).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%d:%s", r.ID, r.Username)
	}
	return strings.Join(out, ",")
}

// usernameFragments are the searches compared with the SQL path: plain substrings of every
// length, some in upper case, "everything" patterns, and fragments that match nothing.
var usernameFragments = []string{
	"", "%", "%%", "a", "E", "o", "1", "2", "7", "00", "12", "99", "-", ".", "al", "ALI", "user",
	"user-1", "ops.", "ren", "renamed", "new", "x", "zz", "qq-", "-0", "0.", "bob", "admin", "dm",
	"ice", "é", "user-299", "nobody-at-all",
}

// checkUsernameFragments compares every fragment's search with the SQL path.
func checkUsernameFragments(t *testing.T, srv *coretest.Server, c *wstest.Client, phase string, extra ...string) {
	t.Helper()
	for _, f := range append(append([]string{}, usernameFragments...), extra...) {
		got := hitsOf(searchHits(t, c, "search.user_username", f), "username")
		if want := sqlUsernameHits(t, srv, strings.ToLower(f)); got != want {
			t.Errorf("%s: %q: index says %s\nSQL says %s", phase, f, got, want)
		}
	}
}

func TestUsernameIndexMatchesSQL(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	if !directoryModule(t, srv).UsernameIndexReady() {
		t.Fatal("the username index is not serving")
	}
	admin := asAdmin(t, srv)
	addUser(t, srv, "vera", "vera-password", core.RankViewer)
	v := loginAs(t, srv, "vera", "vera-password")

	// A few hundred users written without an event (as a bulk import by SQL would).
	execSQL(t, srv, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
		INSERT INTO users(username, created_at, updated_at)
		SELECT CASE i % 3 WHEN 0 THEN 'user-' || i WHEN 1 THEN 'ops.' || (i * 7) ELSE 'alice' || i END,
			datetime('now'), datetime('now') FROM n`)
	checkUsernameFragments(t, srv, v, "bulk")
	if got := searchHits(t, v, "search.user_username", "%"); len(got) != 100 || got[0]["username"] != "admin" {
		t.Errorf("%%: %d hits, first %v", len(got), got[0])
	}

	// Creates, renames and deletes over the websocket are visible to the very next search.
	var created []int64
	for i := range 20 {
		created = append(created, createUser(t, admin, map[string]any{"username": fmt.Sprintf("New-%02d", i)}).ID)
	}
	if got := hitsOf(searchHits(t, v, "search.user_username", "new-19"), "username"); got != fmt.Sprintf("%d:new-19", created[19]) {
		t.Errorf("created: %s", got)
	}
	checkUsernameFragments(t, srv, v, "created")

	for i, id := range created[:10] {
		want(t, admin.Call("user.update", map[string]any{"user_id": id, "attributes": map[string]any{"username": fmt.Sprintf("Renamed-%d", i)}}), 0)
		if got := hitsOf(searchHits(t, v, "search.user_username", fmt.Sprintf("renamed-%d", i)), "username"); got != fmt.Sprintf("%d:renamed-%d", id, i) {
			t.Errorf("renamed %d: %s", id, got)
		}
	}
	if got := searchHits(t, v, "search.user_username", "new-0"); len(got) != 0 {
		t.Errorf("old names still found: %v", got)
	}
	// An update that does not touch the username keeps it.
	want(t, admin.Call("user.update", map[string]any{"user_id": created[15], "attributes": map[string]any{"firstname": "F"}}), 0)
	checkUsernameFragments(t, srv, v, "renamed")

	var ids []float64
	for _, h := range searchHits(t, admin, "search.user_username", "ops.") {
		ids = append(ids, h["id"].(float64))
	}
	for _, id := range append([]int64{created[3], created[12]}, int64(ids[0]), int64(ids[5])) {
		want(t, admin.Call("user.delete", map[string]any{"user_id": id}), 0)
	}
	if got := searchHits(t, v, "search.user_username", "renamed-3"); len(got) != 0 {
		t.Errorf("deleted user still found: %v", got)
	}
	checkUsernameFragments(t, srv, v, "deleted")

	// '%' and '_' inside a pattern keep their LIKE meaning (through SQL).
	if got := searchHits(t, v, "search.user_username", "user_2"); len(got) == 0 || got[0]["username"] != "user-21" {
		t.Errorf("user_2: %v", got)
	}
	if got := searchHits(t, v, "search.user_username", "re%-9"); len(got) != 1 || got[0]["username"] != "renamed-9" {
		t.Errorf("re%%-9: %v", got)
	}
	if !directoryModule(t, srv).UsernameIndexReady() {
		t.Error("the username index stopped serving")
	}
}

func TestUsernameIndexDisabled(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t, coretest.WithModuleConfig("directory", `{"disable_username_index": true}`))
	if directoryModule(t, srv).UsernameIndexReady() {
		t.Fatal("disabled index reports ready")
	}
	admin := asAdmin(t, srv)
	id := createUser(t, admin, map[string]any{"username": "solo"}).ID
	if got := hitsOf(searchHits(t, admin, "search.user_username", "OL"), "username"); got != fmt.Sprintf("%d:solo", id) {
		t.Errorf("OL: %s", got)
	}
	checkUsernameFragments(t, srv, admin, "sql")
}

// BenchmarkSearchUsername compares search.user_username on a site of 100,000 users served by
// the in-memory index and by SQL, end to end over the websocket.
func BenchmarkSearchUsername(b *testing.B) {
	for _, bc := range []struct {
		name, config string
	}{{"index", `{}`}, {"sql", `{"disable_username_index": true}`}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := coretest.Start(b, coretest.WithModuleConfig("directory", bc.config))
			if err := srv.DB().Write.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
				INSERT INTO users(username, created_at, updated_at)
				SELECT 'person-' || (i * 7919 % 100003) || '.' || i, datetime('now'), datetime('now') FROM n`).Error; err != nil {
				b.Fatal(err)
			}
			c := wstest.Dial(b, srv.WSURL)
			c.Login("admin", coretest.AdminPassword)
			fragments := []string{"zzz", "77.", "person-1234", "%", "9999"}
			for _, f := range fragments { // warm up (the index catches up the bulk insert)
				if r := c.Call("search.user_username", map[string]any{"partial_name": f}); r.StatusCode != 0 {
					b.Fatalf("%s: status %d %s", f, r.StatusCode, r.Content)
				}
			}
			start := time.Now()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				c.Call("search.user_username", map[string]any{"partial_name": fragments[i%len(fragments)]})
			}
			b.StopTimer()
			b.Logf("%s: %d searches, %v per search", bc.name, b.N, time.Since(start)/time.Duration(max(b.N, 1)))
		})
	}
}
