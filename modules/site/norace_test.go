//go:build !race

package site_test

// raceEnabled reports whether the race detector is on (timings are meaningless then).
const raceEnabled = false
