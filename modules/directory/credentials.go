package directory

import "gatehouse/core"

func (m *Module) registerCredentials(reg *core.Methods) {}
