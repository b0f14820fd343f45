package audit

import "gatehouse/core"

// LogRing exposes, to this package's external tests, the ring get_logs reads, so that they
// can write known lines into it.
func (m *Module) LogRing() *core.LogRing { return m.ctx.LogRing() }
