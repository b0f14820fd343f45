package directory_test

import (
	"fmt"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/modules/resource"
	"gatehouse/modules/wsapi/wstest"
)

// TestStoredStringsAreBounded (issue 10, point 5): every string the directory stores has a
// length limit; a longer one is a MODEL_EXCEPTION pointing at the field, and nothing is
// stored: no row changes and no audit entry is written. A plain user editing their own account
// is held to the same limits (before, ~3 MB per call reached the database: the row and two
// audit snapshots).
func TestStoredStringsAreBounded(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bob := createUser(t, admin, map[string]any{"username": "bob", "password": "bob-password"})
	group := created(t, admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff"}}))
	cred := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 32})
	plain := loginAs(t, srv, "bob", "bob-password")

	huge := strings.Repeat("x", 20<<10) // any size up to the 1 MiB a logged-in client may send
	at := func(n int) string { return strings.Repeat("é", n) }
	cases := []struct {
		name    string
		c       *wstest.Client
		typ     string
		content map[string]any
		pointer string
		detail  string
	}{
		{"create firstname", admin, "user.create", map[string]any{"attributes": map[string]any{"username": "u1", "firstname": at(101)}}, "data/attributes/firstname", "Firstname must not be longer than 100."},
		{"create lastname", admin, "user.create", map[string]any{"attributes": map[string]any{"username": "u2", "lastname": huge}}, "data/attributes/lastname", "Lastname must not be longer than 100."},
		{"create email", admin, "user.create", map[string]any{"attributes": map[string]any{"username": "u3", "email": at(250) + "@x.y"}}, "data/attributes/email", "Email must not be longer than 254 bytes."},
		{"own firstname", plain, "user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"firstname": huge}}, "data/attributes/firstname", "longer than 100"},
		{"own lastname", plain, "user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"lastname": huge}}, "data/attributes/lastname", "longer than 100"},
		{"own email", plain, "user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"email": huge + "@example.com"}}, "data/attributes/email", "longer than 254 bytes"},
		{"group description", admin, "group.create", map[string]any{"attributes": map[string]any{"name": "Big", "description": at(1001)}}, "data/attributes/description", "Description must not be longer than 1000."},
		{"group description update", admin, "group.update", map[string]any{"group_id": group.ID, "attributes": map[string]any{"description": huge}}, "data/attributes/description", "longer than 1000"},
		{"credential description", admin, "credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": "5555", "description": huge}}, "data/attributes/description", "longer than 1000"},
		{"credential alias update", admin, "credential.update", map[string]any{"credential_id": cred.ID, "attributes": map[string]any{"alias": huge}}, "data/attributes/alias", "longer than 50"},
	}
	events := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic NOT LIKE 'auth.%'`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantModel(t, tc.c.Call(tc.typ, tc.content), tc.pointer, tc.detail)
		})
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic NOT LIKE 'auth.%'`); n != events {
		t.Errorf("%d audit entries written by refused calls", n-events)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM users WHERE length(firstname) > 100 OR length(lastname) > 100 OR length(CAST(email AS BLOB)) > 254 OR username LIKE 'u_'`); n != 0 {
		t.Errorf("%d users stored with an oversized string", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM groups WHERE length(description) > 1000 OR name = 'Big'`); n != 0 {
		t.Errorf("%d groups stored with an oversized string", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM credentials WHERE length(description) > 1000 OR length(alias) > 50`); n != 0 {
		t.Errorf("%d credentials stored with an oversized string", n)
	}
	// At the limit, it is stored.
	want(t, plain.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"firstname": at(100), "lastname": at(100)}}), 0)
	want(t, admin.Call("group.update", map[string]any{"group_id": group.ID, "attributes": map[string]any{"description": at(1000)}}), 0)
}

// TestEmailsUniqueRegardlessOfCase (issue 10, point 8): a user cannot take another user's
// email — the token API logs in by email — by writing it in another case, neither at creation
// nor by editing their own account; the database refuses it too (unique index).
func TestEmailsUniqueRegardlessOfCase(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	alice := createUser(t, admin, map[string]any{"username": "alice", "email": "Alice@Example.com"})
	bob := createUser(t, admin, map[string]any{"username": "bob", "password": "bob-password", "email": "bob@example.com"})
	plain := loginAs(t, srv, "bob", "bob-password")

	const ptr = "data/attributes/email"
	wantModel(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": "carol", "email": "alice@example.COM"}}), ptr, "already in use")
	if n := count(t, srv, `SELECT COUNT(*) FROM users WHERE username = 'carol'`); n != 0 {
		t.Errorf("carol was created")
	}
	for _, email := range []string{"ALICE@EXAMPLE.COM", "alice@example.com", "Alice@Example.com"} {
		wantModel(t, plain.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"email": email}}), ptr, "already in use")
		wantModel(t, admin.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"email": email}}), ptr, "already in use")
	}
	var got string
	if err := srv.DB().Read.Raw(`SELECT email FROM users WHERE id = ?`, bob.ID).Scan(&got).Error; err != nil || got != "bob@example.com" {
		t.Fatalf("bob's email is %q (%v)", got, err)
	}
	// One's own email in another case, and empty emails for many users, are fine.
	want(t, plain.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"email": "Bob@Example.com"}}), 0)
	createUser(t, admin, map[string]any{"username": "dave"})
	createUser(t, admin, map[string]any{"username": "erin", "email": ""})
	want(t, admin.Call("user.update", map[string]any{"user_id": alice.ID, "attributes": map[string]any{"email": ""}}), 0)
	want(t, plain.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"email": "alice@example.com"}}), 0)
	// The database itself refuses a duplicate written behind the API's back.
	err := srv.DB().Write.Exec(`UPDATE users SET email = 'ALICE@example.com' WHERE id = ?`, alice.ID).Error
	if err == nil || !strings.Contains(err.Error(), "duplicated key") {
		t.Errorf("duplicate email by SQL: %v, want a unique constraint failure", err)
	}
}

// created decodes the object a .create answered.
func created(t *testing.T, r wstest.Reply) object {
	t.Helper()
	want(t, r, 0)
	var v struct{ Data object }
	r.Decode(t, &v)
	return v.Data
}

// TestSelfServiceChangesBudgeted (issue 10, point 5): bounded sizes alone let a plain user
// grow the database by some MB a second (an audit entry per change, a thousand changes a
// second); a caller below manager has resource.SelfServiceChangesPerMinute changes a minute
// (as many at once), then RATE_LIMITED and nothing is written. Others are not affected, and
// managers are not budgeted.
func TestSelfServiceChangesBudgeted(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bob := createUser(t, admin, map[string]any{"username": "bob", "password": "bob-password"})
	carol := createUser(t, admin, map[string]any{"username": "carol", "password": "carol-password"})
	plain := loginAs(t, srv, "bob", "bob-password")

	ok, refused := 0, false
	for i := 0; i < 4*resource.SelfServiceChangesPerMinute && !refused; i++ {
		r := plain.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"firstname": fmt.Sprint("Bob ", i)}})
		switch r.StatusCode {
		case 0:
			ok++
		case int(core.RateLimited):
			refused = true
			if !strings.Contains(r.StatusString, "try again in") {
				t.Errorf("refusal %q does not say when to try again", r.StatusString)
			}
		default:
			t.Fatalf("update %d: %d %s", i, r.StatusCode, r.StatusString)
		}
	}
	// The budget refills by one a second: a little more than the burst may pass on a slow machine.
	if !refused || ok < resource.SelfServiceChangesPerMinute {
		t.Fatalf("%d changes accepted, refused: %v; want the first %d accepted, then a refusal", ok, refused, resource.SelfServiceChangesPerMinute)
	}
	if v := count(t, srv, `SELECT version FROM users WHERE id = ?`, bob.ID); v != int64(1+ok) {
		t.Errorf("bob's version %d after %d accepted changes", v, ok)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic = 'user.updated' AND target_id = ?`, bob.ID); n != int64(ok) {
		t.Errorf("%d audit entries for %d accepted changes", n, ok)
	}
	want(t, loginAs(t, srv, "carol", "carol-password").Call("user.update", map[string]any{"user_id": carol.ID, "attributes": map[string]any{"firstname": "Carol"}}), 0)
	for i := range 2 * resource.SelfServiceChangesPerMinute {
		want(t, admin.Call("user.update", map[string]any{"user_id": bob.ID, "attributes": map[string]any{"lastname": fmt.Sprint("B", i)}}), 0)
	}
}
