package cert

import (
	"context"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// certJSON is a key as the Leosac calls send it.
type certJSON struct {
	ID           int64  `json:"id"`
	UserID       int64  `json:"user_id"`
	Username     string `json:"username"`
	Fingerprint  string `json:"fingerprint"`
	Algorithm    string `json:"algorithm"`
	Nickname     string `json:"nickname"`
	Email        string `json:"email"`
	RegisteredAt string `json:"registered_at"`
}

func toJSON(c Cert) certJSON {
	return certJSON{ID: c.ID, UserID: c.UserID, Username: c.Username, Fingerprint: c.Fingerprint,
		Algorithm: c.Algorithm, Nickname: c.Nickname, Email: c.Email,
		RegisteredAt: c.RegisteredAt.UTC().Format(resource.TimeLayout)}
}

// register adds the Leosac calls. Every logged-in user may call them; List and Revoke decide
// what the caller sees and may revoke.
func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "cert.list", Access: core.LoggedIn, Handler: m.callList},
		core.Method{Type: "cert.register", Access: core.LoggedIn, Handler: m.callRegister},
		core.Method{Type: "cert.revoke", Access: core.LoggedIn, Handler: m.callRevoke},
	)
}

// callList answers cert.list {} with an array of keys.
func (m *Module) callList(ctx context.Context, call *core.Call) (any, error) {
	if err := call.Decode(&struct{}{}); err != nil {
		return nil, err
	}
	certs, err := m.List(ctx, call.Caller)
	if err != nil {
		return nil, err
	}
	out := make([]certJSON, len(certs))
	for i, c := range certs {
		out[i] = toJSON(c)
	}
	return out, nil
}

// callRegister answers cert.register {"pub_key", "nickname", "email"} with the new key.
func (m *Module) callRegister(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		PubKey   string `json:"pub_key"`
		Nickname string `json:"nickname"`
		Email    string `json:"email"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	c, err := m.Register(ctx, call.Caller, req.PubKey, req.Nickname, req.Email)
	if err != nil {
		return nil, err
	}
	return toJSON(c), nil
}

// callRevoke answers cert.revoke {"cert_id"} with {}.
func (m *Module) callRevoke(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "cert_id")
	if err != nil {
		return nil, err
	}
	if err := m.Revoke(ctx, call.Caller, id); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
