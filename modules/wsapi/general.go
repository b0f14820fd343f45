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
		core.Method{Type: "session.set_features", Access: core.Public, Handler: m.setFeatures},
	)
}

// The values of session.set_features "types".
const (
	typesLeosac    = "leosac"
	typesGatehouse = "gatehouse"
)

// setFeatures answers session.set_features (gatehouse addition, anyone, before or after
// login): {"types": "gatehouse"} makes this connection's replies use gatehouse's own JSON:API
// types (the card + PIN credential type "rfid-card-pin", the audit types "audit-auth-event",
// "audit-login-event", "audit-access-point-event" and event-mask bits above 2^31);
// {"types": "leosac"} (the default of every connection) restricts them to the types Leosac
// 0.8 and its web GUI know. An absent "types" changes nothing. The reply is the features in
// effect: {"types": "leosac"|"gatehouse"}. Any other value is INVALID_ARGUMENT.
func (m *Module) setFeatures(_ context.Context, call *core.Call) (any, error) {
	var req struct {
		Types *string `json:"types"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if req.Types != nil {
		switch *req.Types {
		case typesGatehouse:
			call.Session.SetGatehouseTypes(true)
		case typesLeosac:
			call.Session.SetGatehouseTypes(false)
		default:
			return nil, core.E(core.InvalidArgument, `types: want "leosac" or "gatehouse"`, nil)
		}
	}
	types := typesLeosac
	if call.Session.GatehouseTypes() {
		types = typesGatehouse
	}
	return map[string]string{"types": types}, nil
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
