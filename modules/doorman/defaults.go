package doorman

import (
	"gatehouse/core"
	"gatehouse/modules/doorman/door"
)

var _ core.Defaulter = (*Module)(nil)

// ApplyDefaults implements core.Defaulter: the door timings of package door.
func (m *Module) ApplyDefaults() {
	if m.StrikeDuration == 0 {
		m.StrikeDuration = core.Duration(door.DefaultStrikeDuration)
	}
	if m.HeldOpenAfter == 0 {
		m.HeldOpenAfter = core.Duration(door.DefaultHeldOpenAfter)
	}
	if m.Debounce == 0 {
		m.Debounce = core.Duration(door.DefaultDebounce)
	}
}
