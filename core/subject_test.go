package core

import (
	"strings"
	"testing"
)

func TestMatchSubject(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		// exact
		{"door", "door", true},
		{"door.7.opened", "door.7.opened", true},
		{"door.7.opened", "door.7.closed", false},
		{"door.7.opened", "door.8.opened", false},
		// prefix / length mismatches
		{"door", "door.7", false},
		{"door.7", "door", false},
		{"door.7", "door.7.opened", false},
		{"door.7.opened", "door.7", false},
		{"doo", "door", false},
		{"door", "doo", false},
		{"door.7", "door.77", false},
		{"door.77", "door.7", false},
		// '*' matches exactly one token
		{"*", "door", true},
		{"*", "door.7", false},
		{"door.*", "door.7", true},
		{"door.*", "door", false},
		{"door.*", "door.7.opened", false},
		{"door.*.opened", "door.7.opened", true},
		{"door.*.opened", "door.7.closed", false},
		{"door.*.opened", "door.opened", false},
		{"*.*.*", "a.b.c", true},
		{"*.*.*", "a.b", false},
		{"*.*", "a.b.c", false},
		{"*.b", "a.b", true},
		{"*.b", "a.c", false},
		// '>' matches one or more trailing tokens
		{">", "door", true},
		{">", "door.7.opened", true},
		{"door.>", "door.7", true},
		{"door.>", "door.7.opened", true},
		{"door.>", "door", false},
		{"door.>", "doors.7", false},
		{"door.7.>", "door.7", false},
		{"door.*.>", "door.7.opened", true},
		{"door.*.>", "door.7", false},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+"~"+tc.subject, func(t *testing.T) {
			if err := ValidatePattern(tc.pattern); err != nil {
				t.Fatalf("test pattern %q is invalid: %v", tc.pattern, err)
			}
			if !ValidSubject(tc.subject) {
				t.Fatalf("test subject %q is invalid", tc.subject)
			}
			if got := MatchSubject(tc.pattern, tc.subject); got != tc.want {
				t.Errorf("MatchSubject(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
			}
			if got := refMatch(tc.pattern, tc.subject); got != tc.want {
				t.Errorf("refMatch(%q, %q) = %v, want %v (reference is wrong)", tc.pattern, tc.subject, got, tc.want)
			}
		})
	}
}

func TestMatchSubjectAllocatesNothing(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		MatchSubject("door.*.>", "door.7.opened.now")
		MatchSubject("door.7.opened", "door.7.opened")
	})
	if n != 0 {
		t.Errorf("MatchSubject allocates %v times per run, want 0", n)
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"door", true},
		{"door.7.opened", true},
		{"*", true},
		{">", true},
		{"door.*", true},
		{"door.>", true},
		{"*.*.>", true},
		{"door.*.opened", true},
		{"", false},
		{".", false},
		{"door.", false},
		{".door", false},
		{"door..7", false},
		{">.door", false},
		{"door.>.opened", false},
		{"door.>.>", false},
		{"door*", false},
		{"do*or", false},
		{"door.7>", false},
		{"door.>x", false},
		{"door.**", false},
		{"door 7", false},
		{"door.\t", false},
		{"door\n", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			err := ValidatePattern(tc.pattern)
			if (err == nil) != tc.ok {
				t.Errorf("ValidatePattern(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
			}
		})
	}
}

func TestValidSubject(t *testing.T) {
	tests := []struct {
		subject string
		ok      bool
	}{
		{"door", true},
		{"door.7.opened", true},
		{"user-created.x_y", true},
		{"", false},
		{".", false},
		{"door.", false},
		{".door", false},
		{"door..opened", false},
		{"*", false},
		{">", false},
		{"door.*", false},
		{"door.>", false},
		{"*.door", false},
		{"door 7", false},
		{"door.\t7", false},
		{"door\r", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			if got := ValidSubject(tc.subject); got != tc.ok {
				t.Errorf("ValidSubject(%q) = %v, want %v", tc.subject, got, tc.ok)
			}
		})
	}
}

// refMatch is the obvious reference implementation of NATS subject matching, built on
// strings.Split, for valid patterns and subjects.
func refMatch(pattern, subject string) bool {
	p := strings.Split(pattern, ".")
	s := strings.Split(subject, ".")
	for i, pt := range p {
		if pt == ">" {
			return len(s) > i // one or more remaining tokens
		}
		if i >= len(s) {
			return false
		}
		if pt != "*" && pt != s[i] {
			return false
		}
	}
	return len(p) == len(s)
}

func FuzzMatchSubject(f *testing.F) {
	seeds := [][2]string{
		{"door.*.opened", "door.7.opened"},
		{"door.>", "door.7.opened"},
		{">", "a"},
		{"*", "a.b"},
		{"a.b.c", "a.b"},
		{"a.b", "a.b.c"},
		{"a.*.>", "a.b"},
		{"*.*", "x.y"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		got := MatchSubject(pattern, subject) // must never panic, whatever the input
		if ValidatePattern(pattern) != nil || !ValidSubject(subject) {
			return
		}
		if want := refMatch(pattern, subject); got != want {
			t.Fatalf("MatchSubject(%q, %q) = %v, reference says %v", pattern, subject, got, want)
		}
		// A concrete subject used as a pattern matches itself.
		if !MatchSubject(subject, subject) {
			t.Fatalf("MatchSubject(%q, itself) = false", subject)
		}
	})
}
