package demo

import "testing"

func TestH10301(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		facility uint8
		number   uint16
		want     string
	}{
		{42, 1001, "95:01:f4:80"}, // worked out by hand in site.go's comment
		{0, 0, "00:00:00:40"},     // only the odd parity bit is set
		{255, 65535, "7f:ff:ff:c0"},
	} {
		got, bits := h10301(tc.facility, tc.number)
		if got != tc.want || bits != 26 {
			t.Errorf("h10301(%d, %d) = %s, %d; want %s, 26", tc.facility, tc.number, got, bits, tc.want)
		}
	}
	// Every demo card is distinct.
	seen := map[string]bool{}
	for _, p := range demoPeople {
		id, _ := h10301(facilityCode, p.Card)
		if seen[id] {
			t.Errorf("card %d of %s is used twice", p.Card, p.Username)
		}
		seen[id] = true
	}
	if id, _ := h10301(facilityCode, lostBadge); seen[id] {
		t.Error("the lost badge is someone's card")
	}
}
