package directory

import "gatehouse/core"

func (m *Module) registerUsers(reg *core.Methods) {}
