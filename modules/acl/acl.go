// Package acl is gatehouse's wazo-style access-control-list matcher, used by the token REST API
// (/0.1) for `?scope=` and `scopes/check`.
//
// An ACL is a string of `.`-separated words, e.g. "users.me.password.update". In a granted ACL
// (a pattern), `*` stands for exactly one word, `#` for any number of words, and the word `me`
// for the caller. A granted ACL starting with `!` is a negation: if any negation matches the
// required ACL, access is refused whatever the positive ACLs say.
//
// The matcher is a literal port of wazo's (xivo-lib-python auth_verifier.AccessCheck): the granted
// ACL is regex-escaped, `*` becomes `[^.#]*?` and `#` becomes `.*?`, the reserved words `me`
// and `edit` become `(me|<caller>)` and `(edit|update)`, and the whole is anchored. The regex is
// looser than the prose on purpose (compatibility): `*` may match an empty word and `a.#` also
// matches "a.". Go's regexp engine runs in linear time, so no pattern can make matching slow.
package acl

import (
	"regexp"
	"strings"

	"gatehouse/core"
)

// Match reports whether the granted ACL pattern (without a leading "!") grants the required acl,
// where the word `me` in the pattern also stands for me (the caller's id; "" = only the literal
// word). An empty pattern, or one that is not valid UTF-8, grants nothing.
func Match(pattern, acl string, me string) bool {
	if pattern == "" {
		return false
	}
	re, err := regexp.Compile(toRegexp(pattern, me))
	if err != nil { // cannot happen: every piece is escaped or a fixed fragment
		return false
	}
	return re.MatchString(acl)
}

// toRegexp builds the anchored regular expression of a granted ACL pattern.
func toRegexp(pattern, me string) string {
	words := strings.Split(pattern, ".")
	for i, w := range words {
		switch w {
		case "me":
			if me != "" {
				words[i] = "(?:me|" + regexp.QuoteMeta(me) + ")"
				continue
			}
		case "edit":
			words[i] = "(?:edit|update)"
			continue
		}
		// QuoteMeta escapes "*" but leaves "#" alone; "#" goes first, as the "*" fragment has one.
		q := strings.ReplaceAll(regexp.QuoteMeta(w), "#", `.*?`)
		words[i] = strings.ReplaceAll(q, `\*`, `[^.#]*?`)
	}
	return `^` + strings.Join(words, `\.`) + `$`
}

// Allowed reports whether the granted ACLs grant the required one for the caller me: no
// negation ("!"-prefixed ACL) matches it, and some positive ACL does. An empty required ACL
// (no scope asked for) is always allowed.
func Allowed(granted []string, required string, me string) bool {
	return NewChecker(granted, me).Allowed(required)
}

// Checker is a set of granted ACLs compiled once for one caller, for checking many required
// ACLs (scopes/check). It is safe for concurrent use.
type Checker struct {
	pos, neg []*regexp.Regexp
}

// NewChecker compiles the granted ACLs for the caller me. Empty ACLs ("" or "!") grant nothing.
func NewChecker(granted []string, me string) *Checker {
	c := &Checker{}
	for _, g := range granted {
		p, isNeg := strings.CutPrefix(g, "!")
		if p == "" {
			continue
		}
		re, err := regexp.Compile(toRegexp(p, me))
		if err != nil { // cannot happen, see Match
			continue
		}
		if isNeg {
			c.neg = append(c.neg, re)
		} else {
			c.pos = append(c.pos, re)
		}
	}
	return c
}

// Allowed reports whether the checker's ACLs grant required, with the rules of the package
// function Allowed.
func (c *Checker) Allowed(required string) bool {
	if required == "" {
		return true
	}
	for _, re := range c.neg {
		if re.MatchString(required) {
			return false
		}
	}
	for _, re := range c.pos {
		if re.MatchString(required) {
			return true
		}
	}
	return false
}

// The ACL sets of the ranks (contract §4). Each rank includes the one below it, except that
// administrators have everything through "#". The README's permission model lists them.
var (
	userACL = []string{
		"users.me.read",
		"users.me.update",
		"users.me.password.update",
		"users.me.*.read", // own groups, credentials, schedules, doors
		"events.me.read",
		"tokens.me.read",
		"tokens.me.delete",
		"certs.me.read",
		"certs.me.create",
		"certs.me.delete",
		// wazo-auth's names for the same (/0.1/users/{uuid}/…): own user, refresh tokens,
		// sessions (any client id or session, dotted ones included).
		"auth.users.me.read",
		"auth.users.me.tokens.#",
		"auth.users.me.sessions.#",
	}
	viewerACL = []string{
		"*.read",
		"*.*.read",
		"*.*.*.read",
		"events.read",
		// Everyone's refresh tokens and sessions are the administrators' (as token.list's
		// user_id filter is); "*.*.read" would otherwise grant auth.tokens.read.
		"!auth.tokens.#",
		"!auth.sessions.#",
	}
	managerACL = []string{
		"access.#",
		"users.#",
		"groups.#",
		"credentials.#",
		"schedules.#",
		"doors.#",
		"access_points.#",
		"zones.#",
		"site.#",
		"events.#",
		// Only administrators change ranks and validity, delete users and simulate hardware.
		"!users.*.rank.update",
		"!users.*.validity.update",
		"!users.*.delete",
		"!doors.*.simulate",
		"!access_points.*.simulate",
	}
)

// ForRank returns the ACLs a token of a user of rank r carries: administrator "#" (everything);
// manager and supervisor the site resources with the administrator-only actions negated;
// viewer every read except everyone's refresh tokens and sessions (auth.tokens.*,
// auth.sessions.*); user their own profile, password, tokens, certificates and events, under
// gatehouse's names and wazo-auth's (auth.users.me.…). An
// unknown rank gets nothing. The returned slice is the caller's.
func ForRank(r core.Rank) []string {
	var out []string
	switch {
	case r == core.RankAdministrator:
		return []string{"#"}
	case r == core.RankManager || r == core.RankSupervisor:
		out = append(out, userACL...)
		out = append(out, viewerACL...)
		out = append(out, managerACL...)
	case r == core.RankViewer:
		out = append(out, userACL...)
		out = append(out, viewerACL...)
	case r == core.RankUser:
		out = append(out, userACL...)
	default:
		return []string{}
	}
	return out
}
