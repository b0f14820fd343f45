package core

import (
	"fmt"
	"strings"
)

// ValidSubject reports whether s is a concrete subject: one or more non-empty dot-separated
// tokens, none of which is a wildcard.
func ValidSubject(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

// ValidatePattern checks a subscription pattern in NATS syntax: dot-separated tokens where "*"
// matches exactly one token and ">", allowed only as the last token, matches one or more.
func ValidatePattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty subject pattern")
	}
	if len(p) > 256 {
		return fmt.Errorf("subject pattern longer than 256 bytes")
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return fmt.Errorf("subject pattern %q has an empty token", p)
		case tok == ">" && i != len(toks)-1:
			return fmt.Errorf("subject pattern %q: '>' must be the last token", p)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*> \t\r\n"):
			return fmt.Errorf("subject pattern %q has an invalid token %q", p, tok)
		}
	}
	return nil
}

// MatchSubject reports whether the concrete subject matches the pattern. It allocates nothing.
func MatchSubject(pattern, subject string) bool {
	for {
		var pt, st string
		pi := strings.IndexByte(pattern, '.')
		if pi < 0 {
			pt, pattern = pattern, ""
		} else {
			pt, pattern = pattern[:pi], pattern[pi+1:]
		}
		if pt == ">" {
			return subject != ""
		}
		if subject == "" && pt != "" {
			return false
		}
		si := strings.IndexByte(subject, '.')
		if si < 0 {
			st, subject = subject, ""
		} else {
			st, subject = subject[:si], subject[si+1:]
		}
		if pt != "*" && pt != st {
			return false
		}
		if pi < 0 {
			return si < 0
		}
		if si < 0 {
			// The subject ended but the pattern has more tokens.
			return false
		}
	}
}
