// Package dashboard is the module that serves the web dashboard (package gatehouse/web) at "/".
package dashboard

import (
	"gatehouse/core"
	"gatehouse/web"
)

// ModuleID is the dashboard module's ID.
const ModuleID = "dashboard"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module serves the dashboard. It has no configuration.
type Module struct{}

var _ core.Provisioner = (*Module)(nil)

// Provision registers the dashboard on "/" (every method; the handler answers 405 to all but
// GET and HEAD). The pattern has no method so that it does not conflict with method-less
// patterns of other modules such as the websocket path; any more specific pattern (GET /{$},
// /websocket, /healthz…) still takes precedence.
func (m *Module) Provision(ctx *core.Context) error {
	ctx.Handle("/", web.Handler())
	return nil
}
