package acl

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gatehouse/core"
)

// wazoScenarios are the matcher scenarios of wazo's own test suite (xivo-lib-python
// test_auth_verifier.py TestAccessCheck, caller id "123"): a port must answer all of them alike.
var wazoScenarios = []struct {
	name  string
	acl   []string
	tests map[string]bool
}{
	{"ends with hashtag", []string{"foo.bar.#"}, map[string]bool{
		"foo.bar": false, "foo.bar.toto": true, "foo.bar.toto.tata": true, "other.bar.toto": false,
		"foo.bar.*": true, "foo.bar.*.*": true, "foo.bar.#": true, "*.bar.toto": false, "*.*.toto": false,
		"#.bar.toto": false,
	}},
	{"no special character", []string{"foo.bar.toto"}, map[string]bool{
		"foo.bar.toto": true, "foo.bar.toto.tata": false, "other.bar.toto": false, "foo.bar.*": false,
		"foo.bar.#": false, "*.bar.toto": false, "#.bar.toto": false,
	}},
	{"asterisks", []string{"foo.*.*"}, map[string]bool{
		"foo.bar.toto": true, "foo.bar.toto.tata": false, "other.bar.toto": false, "foo.*.*": true,
		"foo.*": false, "foo.bar.#": false, "*.bar.toto": false, "#.bar.toto": false,
	}},
	{"multiple accesses", []string{"foo", "foo.bar.toto", "other.#"}, map[string]bool{
		"foo": true, "foo.bar": false, "foo.bar.toto": true, "foo.bar.toto.tata": false,
		"other.bar.toto": true, "*": false, "*.*.toto": false, "#": false,
	}},
	{"hashtag in the middle", []string{"foo.bar.#.titi"}, map[string]bool{
		"foo.bar": false, "foo.bar.toto": false, "foo.bar.toto.tata": false, "foo.bar.toto.tata.titi": true,
		"foo.bar.#.titi": true, "foo.bar.*.*": false, "foo.bar.*.titi": true, "foo.bar.*.*.titi": true,
		"foo.bar.#": false,
	}},
	{"ends with me", []string{"foo.#.me"}, map[string]bool{
		"foo.bar": false, "foo.bar.me": true, "foo.bar.123": true, "foo.bar.toto.me": true,
		"foo.bar.toto.123": true, "foo.bar.toto.me.titi": false, "foo.bar.toto.123.titi": false,
		"foo.*.123": true, "foo.*.456": false, "foo.#.me": true, "foo.#.notme": false,
		"foo.*.*.123": true, "foo.*": false, "foo.#": false,
	}},
	{"me in the middle", []string{"foo.#.me.bar"}, map[string]bool{
		"foo.bar.123": false, "foo.bar.me": false, "foo.bar.123.bar": true, "foo.bar.me.bar": true,
		"foo.bar.toto.123.bar": true, "foo.bar.toto.me.bar": true, "foo.*.123.bar": true,
		"foo.*.456.bar": false, "foo.#.me.bar": true, "foo.#.notme.bar": false, "foo.*.*.123.bar": true,
		"foo.*.bar": false, "foo.#.bar": false,
	}},
	{"negating", []string{"!foo.me.bar"}, map[string]bool{"foo.me.bar": false}},
	{"negating multiple identical", []string{"foo.me.bar", "!foo.me.bar", "foo.me.bar"}, map[string]bool{"foo.me.bar": false}},
	{"negating ending hashtag", []string{"!foo.me.bar.#", "foo.me.bar.123"}, map[string]bool{"foo.me.bar.123": false}},
	{"negating hashtag sublevel", []string{"foo.#", "!foo.me.bar.#", "foo.me.bar.123"}, map[string]bool{"foo.me.bar.123": false}},
	{"negating specific", []string{"foo.*.bar", "!foo.123.bar"}, map[string]bool{"foo.me.bar": true, "foo.123.bar": false}},
	{"negating toplevel", []string{"!*.bar", "foo.bar"}, map[string]bool{"foo.bar": false}},
}

func TestWazoScenarios(t *testing.T) {
	for _, sc := range wazoScenarios {
		c := NewChecker(sc.acl, "123")
		for req, want := range sc.tests {
			if got := Allowed(sc.acl, req, "123"); got != want {
				t.Errorf("%s: Allowed(%q, %q) = %v, want %v", sc.name, sc.acl, req, got, want)
			}
			if got := c.Allowed(req); got != want {
				t.Errorf("%s: Checker(%q).Allowed(%q) = %v, want %v", sc.name, sc.acl, req, got, want)
			}
		}
	}
}

// TestReferenceCases are the cases of the reference notes (B.8, B.10 #30) and wazo's
// negative-required-access test.
func TestReferenceCases(t *testing.T) {
	const me = "5b2f5a1e-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
	tests := []struct {
		granted  []string
		required string
		want     bool
	}{
		// B.10 #30: users.me.# for the caller.
		{[]string{"users.me.#"}, "users.me.123", true},
		{[]string{"users.me.#"}, "users." + me + ".x", true},
		{[]string{"users.me.#"}, "users.9e0f1a2b-3c4d-4e5f-8a6b-7c8d5b2f5a1e.x", false},
		{[]string{"users.me.#"}, "fire.the.missiles", false},
		// B.8: the regex is looser than the prose, on purpose.
		{[]string{"a.#"}, "a.", true},
		{[]string{"a.*.c"}, "a..c", true},
		{[]string{"confd.users.me.#.read"}, "confd.users." + me + ".lines.read", true},
		{[]string{"confd.users.me.#.read"}, "confd.users.me.lines.update", false},
		// "*" never crosses a dot.
		{[]string{"a.*"}, "a.b.c", false},
		// A required ACL that is itself a negation is never granted by a positive one.
		{[]string{"foo.bar"}, "!foo.bar", false},
		{[]string{"foo.bar"}, "!anything", false},
		// edit is the legacy spelling of update.
		{[]string{"users.edit"}, "users.update", true},
		{[]string{"users.edit"}, "users.edit", true},
		{[]string{"users.update"}, "users.edit", false},
		// Regex metacharacters in ACLs are literal.
		{[]string{"a+b.(c)"}, "a+b.(c)", true},
		{[]string{"a+b"}, "aab", false},
		{[]string{"a|b"}, "a", false},
		{[]string{"[a-z]"}, "q", false},
		// No scope asked for: allowed; nothing granted: nothing allowed.
		{nil, "", true},
		{nil, "x", false},
		{[]string{""}, "", true},
		{[]string{"", "!"}, "x", false},
		// Non-ASCII (B.10 #24) is refused unless granted.
		{[]string{"confd"}, "éric", false},
		{[]string{"#"}, "éric", true},
	}
	for _, tc := range tests {
		if got := Allowed(tc.granted, tc.required, me); got != tc.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.granted, tc.required, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, acl, me string
		want             bool
	}{
		{"users.me.read", "users.me.read", "42", true},
		{"users.me.read", "users.42.read", "42", true},
		{"users.me.read", "users.43.read", "42", false},
		{"users.me.read", "users.42.read", "", false},
		{"users.me.read", "users..read", "", false},
		{"#", "", "", true},
		{"", "", "", false},
		{"me", "4.2", "4.2", true}, // the caller id is literal, dots included
		{"me", "4x2", "4.2", false},
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.acl, tc.me); got != tc.want {
			t.Errorf("Match(%q, %q, %q) = %v, want %v", tc.pattern, tc.acl, tc.me, got, tc.want)
		}
	}
}

// TestForRank checks the rank sets of contract §4 and what each rank may and may not do.
func TestForRank(t *testing.T) {
	const me = "me-uuid"
	for _, want := range []string{"users.me.read", "users.me.password.update", "events.me.read"} {
		if !slices.Contains(ForRank(core.RankUser), want) {
			t.Errorf("user ACLs lack %q", want)
		}
	}
	for _, want := range []string{"*.*.read", "events.read"} {
		if !slices.Contains(ForRank(core.RankViewer), want) {
			t.Errorf("viewer ACLs lack %q", want)
		}
	}
	for _, want := range []string{"access.#", "users.#", "events.read"} {
		if !slices.Contains(ForRank(core.RankManager), want) {
			t.Errorf("manager ACLs lack %q", want)
		}
	}
	if got := ForRank(core.RankAdministrator); !slices.Equal(got, []string{"#"}) {
		t.Errorf("administrator ACLs = %q, want [#]", got)
	}
	if got := ForRank(core.Rank(9)); got == nil || len(got) != 0 {
		t.Errorf("unknown rank ACLs = %#v, want empty", got)
	}

	type expect struct {
		required string
		ranks    [5]bool // user, viewer, manager, supervisor, administrator
	}
	cases := []expect{
		{"users.me.read", [5]bool{true, true, true, true, true}},
		{"users." + me + ".read", [5]bool{true, true, true, true, true}},
		{"users.me.password.update", [5]bool{true, true, true, true, true}},
		{"users.me.groups.read", [5]bool{true, true, true, true, true}},
		{"events.me.read", [5]bool{true, true, true, true, true}},
		{"tokens.me.delete", [5]bool{true, true, true, true, true}},
		{"users.7.read", [5]bool{false, true, true, true, true}},
		{"users.read", [5]bool{false, true, true, true, true}},
		{"events.read", [5]bool{false, true, true, true, true}},
		{"doors.3.state.read", [5]bool{false, true, true, true, true}},
		{"users.7.update", [5]bool{false, false, true, true, true}},
		{"users.create", [5]bool{false, false, true, true, true}},
		{"doors.3.open", [5]bool{false, false, true, true, true}},
		{"access.overview.read", [5]bool{false, true, true, true, true}},
		{"access.anything.else", [5]bool{false, false, true, true, true}},
		{"site.mode.update", [5]bool{false, false, true, true, true}},
		{"users.7.rank.update", [5]bool{false, false, false, false, true}},
		{"users.7.validity.update", [5]bool{false, false, false, false, true}},
		{"users.7.delete", [5]bool{false, false, false, false, true}},
		{"doors.3.simulate", [5]bool{false, false, false, false, true}},
		{"system.restart", [5]bool{false, false, false, false, true}},
		{"users.8.password.update", [5]bool{false, false, true, true, true}},
	}
	for _, c := range cases {
		for r := core.RankUser; r <= core.RankAdministrator; r++ {
			if got := Allowed(ForRank(r), c.required, me); got != c.ranks[r] {
				t.Errorf("%s: Allowed(%q) = %v, want %v", r, c.required, got, c.ranks[r])
			}
		}
	}
	// The slices are the caller's: changing one does not change the next answer.
	s := ForRank(core.RankUser)
	s[0] = "#"
	if ForRank(core.RankUser)[0] == "#" {
		t.Error("ForRank returned shared state")
	}
}

// FuzzMatch checks the matcher's invariants on arbitrary ACLs (go test ./modules/acl -fuzz FuzzMatch):
// it never panics, a pattern that is not valid UTF-8 grants nothing, every pattern grants itself, "#" grants everything, a negation always wins,
// "*" never spans a dot, and a pattern without wildcards or reserved words grants only itself.
func FuzzMatch(f *testing.F) {
	for _, sc := range wazoScenarios {
		for req := range sc.tests {
			f.Add(strings.Join(sc.acl, ","), req, "123")
		}
	}
	f.Add("users.me.#", "users.42.x", "42")
	f.Add("a+b.(c)", "a+b.(c)", "")
	f.Add("*", "a.b", "x")
	f.Fuzz(func(t *testing.T, pattern, required, me string) {
		if !utf8.ValidString(pattern) {
			if Match(pattern, required, me) {
				t.Fatalf("pattern %q (not UTF-8) granted %q", pattern, required)
			}
			return
		}
		if !utf8.ValidString(me) {
			_ = Match(pattern, required, me) // must not panic
			return
		}
		if !Match(pattern, pattern, me) && pattern != "" {
			t.Fatalf("Match(%q, itself, %q) = false", pattern, me)
		}
		if !Match("#", required, me) && !strings.Contains(required, "\n") {
			t.Fatalf(`Match("#", %q) = false`, required)
		}
		got := Match(pattern, required, me)
		if pattern != "" && required != "" && Allowed([]string{pattern, "!" + pattern}, required, me) {
			t.Fatalf("negation of %q did not win for %q", pattern, required)
		}
		if Allowed([]string{pattern}, required, me) != (got || required == "") {
			t.Fatalf("Allowed([%q], %q) disagrees with Match = %v", pattern, required, got)
		}
		if pattern == "*" && strings.Contains(required, ".") && got {
			t.Fatalf(`"*" matched %q across a dot`, required)
		}
		literal := !strings.ContainsAny(pattern, "*#") && !slices.ContainsFunc(strings.Split(pattern, "."),
			func(w string) bool { return w == "me" || w == "edit" })
		if literal && pattern != "" && got != (pattern == required) {
			t.Fatalf("literal %q vs %q: Match = %v", pattern, required, got)
		}
	})
}
