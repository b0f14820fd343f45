package core

import (
	"context"
	"fmt"
	"regexp"
	"sort"
)

// Module is any value that a ModuleInfo's New returns. What a module does is declared by the
// optional interfaces it implements, which the App calls in this order:
//
//	New() → strict JSON decode of its config section → Provision → Validate → Run … → Cleanup
//
// New must have no side effects. Provision takes what the module needs from the Context (logger,
// database, bus, method registry, HTTP routes, other modules) and must not start goroutines or
// do I/O that can hang. Run blocks until its context is cancelled. Cleanup is called, in reverse
// order, for every module whose Provision was called — even when that Provision failed.
type Module any

// Provisioner is implemented by modules that need setting up.
type Provisioner interface {
	Provision(ctx *Context) error
}

// Validator is implemented by modules that check their configuration. Validate must read only
// the module's configuration fields, never state set by Provision: it runs after Provision,
// and also, before anything is created, on a decoded and defaulted value that was never
// provisioned (CheckModules, for NewServer and check-config).
type Validator interface {
	Validate() error
}

// Defaulter is implemented by modules whose configuration has defaults. ApplyDefaults fills
// every zero field of the decoded configuration with its default, without side effects, so
// that the value marshalled to JSON is the effective configuration (`gatehouse check-config`
// prints it). The App calls it right after decoding, before Provision; it must be idempotent.
type Defaulter interface {
	ApplyDefaults()
}

// ConfigChecker is implemented by modules that can check their configuration, and the parts
// of the process configuration they depend on, without side effects: no database, no files,
// no network. CheckConfig runs on the decoded, defaulted value before anything is created
// (NewServer calls it before binding the listener or touching the data directory) and in
// `gatehouse check-config`, so that both reject the same configurations.
type ConfigChecker interface {
	CheckConfig(cfg Config) error
}

// SecretRedactor is implemented by modules whose configuration holds secrets (webhook
// signing keys, authorization headers). RedactSecrets replaces them, in a decoded value used
// for display only, with "***", so that `gatehouse check-config` can print the effective
// configuration without them.
type SecretRedactor interface {
	RedactSecrets()
}

// Runner is implemented by modules with work of their own. Run blocks until ctx is done and
// returns nil then; a non-nil error stops the whole App.
type Runner interface {
	Run(ctx context.Context) error
}

// CleanerUpper is implemented by modules that hold resources. Cleanup must tolerate a failed or
// partial Provision.
type CleanerUpper interface {
	Cleanup() error
}

// ModuleInfo declares a module: its ID (lowercase, dotted: "wsapi", "door.gpio") and a
// constructor returning a new, unconfigured value.
type ModuleInfo struct {
	ID  string
	New func() Module
}

var moduleIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Registry knows the modules a binary was built with. It is built explicitly by the program
// (see modules/all), so there is no package-level state.
type Registry struct {
	mods map[string]ModuleInfo
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{mods: make(map[string]ModuleInfo)} }

// Register adds a module. It panics on an invalid or duplicate ID or a nil constructor: those are
// programming errors, caught at start.
func (r *Registry) Register(info ModuleInfo) {
	if !moduleIDPattern.MatchString(info.ID) {
		panic(fmt.Sprintf("core: invalid module ID %q", info.ID))
	}
	if info.New == nil {
		panic(fmt.Sprintf("core: module %q has no constructor", info.ID))
	}
	if _, dup := r.mods[info.ID]; dup {
		panic(fmt.Sprintf("core: module %q registered twice", info.ID))
	}
	r.mods[info.ID] = info
}

// Lookup returns the module with the given ID.
func (r *Registry) Lookup(id string) (ModuleInfo, bool) {
	info, ok := r.mods[id]
	return info, ok
}

// IDs returns the registered module IDs, sorted.
func (r *Registry) IDs() []string {
	ids := make([]string, 0, len(r.mods))
	for id := range r.mods {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
