package engine

import (
	"context"
	"fmt"

	"gatehouse/core"
	"gatehouse/modules/directory"
)

// ModuleID is the access engine module's ID.
const ModuleID = "engine"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module runs the Engine. It loads after the directory and site modules.
type Module struct {
	engine *Engine
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// Provision builds the index.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(directory.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", directory.ModuleID, ModuleID)
	}
	e, err := New(context.Background(), ctx.DB(), ctx.Bus(), mod.(*directory.Module).PINs(), ctx.Config().Location(), ctx.Logger)
	if err != nil {
		return err
	}
	m.engine = e
	return nil
}

// Engine returns the engine.
func (m *Module) Engine() *Engine { return m.engine }

// Run keeps the index current until ctx is done.
func (m *Module) Run(ctx context.Context) error { return m.engine.Run(ctx) }

// Cleanup stops following changes.
func (m *Module) Cleanup() error {
	if m.engine != nil {
		m.engine.Close()
	}
	return nil
}
