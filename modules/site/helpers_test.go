package site_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
	"gatehouse/modules/wsapi/wstest"
)

// Leosac status codes as the wire carries them.
const (
	codeOK               = 0
	codePermissionDenied = 2
	codeEntityNotFound   = 8
	codeModelException   = 11
	codeInvalidArgument  = 12
)

// site is a running server with an administrator's connection.
type site struct {
	t     *testing.T
	srv   *coretest.Server
	admin *wstest.Client
}

func start(t *testing.T) *site {
	t.Helper()
	srv := coretest.Start(t)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	return &site{t: t, srv: srv, admin: admin}
}

// addUser creates a user directly through the auth module's store.
func (s *site) addUser(name string, rank core.Rank) int64 {
	s.t.Helper()
	mod, _ := s.srv.App().Module(auth.ModuleID)
	m := mod.(*auth.Module)
	hash, err := m.Hasher().Hash(context.Background(), name+"-password")
	if err != nil {
		s.t.Fatal(err)
	}
	u := &auth.User{Username: name, PasswordHash: hash, Rank: rank, ValidityEnabled: true}
	if err := m.Users().Create(context.Background(), u); err != nil {
		s.t.Fatal(err)
	}
	return u.ID
}

// login creates a user of the given rank and returns a logged-in connection.
func (s *site) login(name string, rank core.Rank) (*wstest.Client, int64) {
	s.t.Helper()
	id := s.addUser(name, rank)
	c := wstest.Dial(s.t, s.srv.WSURL)
	c.Login(name, name+"-password")
	return c, id
}

// addCredential inserts an RFID card owned by owner (0: none) directly in the database (the
// credential API belongs to another module).
func (s *site) addCredential(alias string, owner int64) int64 {
	s.t.Helper()
	var ownerArg any
	if owner != 0 {
		ownerArg = owner
	}
	var id int64
	err := s.srv.DB().Write.Raw(`INSERT INTO credentials(type, alias, alias_fold, owner_id, card_id, nb_bits, created_at, updated_at)
		VALUES ('rfid-card', ?, ?, ?, ?, 32, datetime('now'), datetime('now')) RETURNING id`,
		alias, strings.ToLower(alias), ownerArg, fmt.Sprintf("%08x", len(alias)*7919+int(owner))).Scan(&id).Error
	if err != nil || id == 0 {
		s.t.Fatalf("insert credential: %v", err)
	}
	return id
}

// group creates a group with the given members through the API.
func (s *site) group(name string, members ...int64) int64 {
	s.t.Helper()
	var g struct{ Data object }
	ok(s.t, s.admin.Call("group.create", map[string]any{"attributes": map[string]any{"name": name}})).Decode(s.t, &g)
	for _, u := range members {
		ok(s.t, s.admin.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"user_id": u, "group_id": g.Data.ID}}))
	}
	return g.Data.ID
}

// create calls <kind>.create as the administrator and returns the new id.
func (s *site) create(kind string, attrs map[string]any) int64 {
	s.t.Helper()
	var r struct{ Data object }
	ok(s.t, s.admin.Call(kind+".create", map[string]any{"attributes": attrs})).Decode(s.t, &r)
	if r.Data.ID == 0 {
		s.t.Fatalf("%s.create: no id", kind)
	}
	return r.Data.ID
}

// count returns the result of a COUNT(*) query.
func (s *site) count(query string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.srv.DB().Read.Raw(query, args...).Scan(&n).Error; err != nil {
		s.t.Fatal(err)
	}
	return n
}

// topics returns the topics of the audited events, oldest first.
func (s *site) topics() []string {
	s.t.Helper()
	var out []string
	if err := s.srv.DB().Read.Raw(`SELECT topic FROM events WHERE kind <> '' AND topic NOT LIKE 'auth.%' ORDER BY seq`).Scan(&out).Error; err != nil {
		s.t.Fatal(err)
	}
	return out
}

type object struct {
	ID            int64                      `json:"id"`
	Type          string                     `json:"type"`
	Attributes    map[string]any             `json:"attributes"`
	Relationships map[string]json.RawMessage `json:"relationships"`
}

type ref struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
}

// many returns the ids of a to-many relationship (failing on null).
func (o object) many(t *testing.T, name string) []int64 {
	t.Helper()
	var rel struct{ Data *[]ref }
	if err := json.Unmarshal(o.Relationships[name], &rel); err != nil || rel.Data == nil {
		t.Fatalf("%s %d: relationship %q = %s (%v)", o.Type, o.ID, name, o.Relationships[name], err)
	}
	ids := []int64{}
	for _, r := range *rel.Data {
		ids = append(ids, r.ID)
	}
	return ids
}

// one returns the id of a to-one relationship (0 for null).
func (o object) one(t *testing.T, name string) int64 {
	t.Helper()
	var rel struct{ Data *ref }
	raw, present := o.Relationships[name]
	if !present {
		t.Fatalf("%s %d: no relationship %q", o.Type, o.ID, name)
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		t.Fatal(err)
	}
	if rel.Data == nil {
		return 0
	}
	return rel.Data.ID
}

func want(t *testing.T, r wstest.Reply, code int) wstest.Reply {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s: status %d %q, want %d; content %s", r.Type, r.StatusCode, r.StatusString, code, r.Content)
	}
	return r
}

func ok(t *testing.T, r wstest.Reply) wstest.Reply {
	t.Helper()
	return want(t, r, codeOK)
}

// modelError checks a MODEL_EXCEPTION reply with one error at pointer with detail.
func modelError(t *testing.T, r wstest.Reply, pointer, detail string) {
	t.Helper()
	want(t, r, codeModelException)
	var c struct {
		Errors []struct {
			Detail string
			Source struct{ Pointer string }
		}
	}
	r.Decode(t, &c)
	for _, e := range c.Errors {
		if e.Source.Pointer == pointer && (detail == "" || e.Detail == detail) {
			return
		}
	}
	t.Fatalf("%s: no error %q at %q in %s", r.Type, detail, pointer, r.Content)
}

// ids returns the ids of a list reply {"data": [...]}.
func ids(t *testing.T, r wstest.Reply) []int64 {
	t.Helper()
	var l struct{ Data []object }
	r.Decode(t, &l)
	out := []int64{}
	for _, o := range l.Data {
		out = append(out, o.ID)
	}
	return out
}

func equal(a, b []int64) bool { return slices.Equal(a, b) }

// wstestLogin logs in as a user made by addUser.
func wstestLogin(t *testing.T, s *site, name string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, s.srv.WSURL)
	c.Login(name, name+"-password")
	return c
}
