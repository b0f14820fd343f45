package wsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"gatehouse/core"
)

// registerGeneral registers the Leosac calls that are about the server itself.
func (m *Module) registerGeneral(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "get_leosac_version", Access: core.Public, Handler: m.getVersion},
		core.Method{Type: "system_overview", Access: core.LoggedIn, Handler: m.systemOverview},
	)
}

// versionReply is the constant content of get_leosac_version.
var versionReply, _ = json.Marshal(map[string]string{
	"version":       core.Version,
	"version_short": core.Version,
	"server":        "gatehouse",
})

func (m *Module) getVersion(context.Context, *core.Call) (any, error) {
	return json.RawMessage(versionReply), nil
}

func (m *Module) systemOverview(context.Context, *core.Call) (any, error) {
	return map[string]any{
		"instance_name":  m.cfg.InstanceName,
		"config_version": m.cfg.ConfigVersion,
		"uptime":         int64(time.Since(m.started) / time.Second),
		"modules":        m.modules(),
	}, nil
}

// shortID returns a random 8-hex-digit id for tagging a connection's log lines.
func shortID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
