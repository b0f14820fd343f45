// Package all lists every standard module and the order they load in by default.
package all

import (
	"gatehouse/core"
	"gatehouse/modules/audit"
	"gatehouse/modules/auth"
	"gatehouse/modules/cert"
	"gatehouse/modules/dashboard"
	"gatehouse/modules/demo"
	"gatehouse/modules/directory"
	"gatehouse/modules/doorman"
	"gatehouse/modules/engine"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/hardware"
	"gatehouse/modules/portal"
	"gatehouse/modules/simulator"
	"gatehouse/modules/site"
	"gatehouse/modules/smtp"
	"gatehouse/modules/sysadm"
	"gatehouse/modules/token"
	"gatehouse/modules/tokenapi"
	"gatehouse/modules/webhook"
	"gatehouse/modules/wiegandreader"
	"gatehouse/modules/wsapi"
)

// Infos returns every standard module in default load order: a module comes after those it
// uses in Provision.
func Infos() []core.ModuleInfo {
	return []core.ModuleInfo{
		token.Info(),
		auth.Info(),
		eventlog.Info(),
		directory.Info(),
		site.Info(),
		audit.Info(),
		cert.Info(),
		engine.Info(),
		doorman.Info(),
		simulator.Info(),
		demo.Info(),
		hardware.Info(),
		wiegandreader.Info(),
		webhook.Info(),
		smtp.Info(),
		dashboard.Info(),
		sysadm.Info(),
		tokenapi.Info(),
		portal.Info(),
		wsapi.Info(),
	}
}

// Registry returns a registry of every standard module.
func Registry() *core.Registry {
	r := core.NewRegistry()
	for _, info := range Infos() {
		r.Register(info)
	}
	return r
}

// DefaultModules returns the module list used when the configuration names none.
func DefaultModules() []core.ModuleConfig {
	infos := Infos()
	out := make([]core.ModuleConfig, len(infos))
	for i, info := range infos {
		out[i] = core.ModuleConfig{Module: info.ID}
	}
	return out
}
