package cert

import "time"

// SetClock makes the module's challenges and rate limits read time from now (tests move time
// on instead of sleeping).
func SetClock(m *Module, now func() time.Time) {
	m.ch.mu.Lock()
	m.ch.now = now
	m.ch.mu.Unlock()
}

// Binds returns how many binds the module remembers.
func Binds(m *Module) int {
	m.ch.mu.Lock()
	defer m.ch.mu.Unlock()
	return len(m.ch.binds)
}
