package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gatehouse/core"
)

// register adds the token calls of the Leosac dialect (contract §5 additions):
//
//	token.list   {}                          → [{"id", "user_id", "username", "dialect", "issued_at",
//	                                             "expires_at", "idle_seconds", "last_used_at",
//	                                             "remote_addr", "user_agent", "current"}]
//	token.revoke {"token_id": "<public id>"} → {}
//
// Everyone lists and revokes their own tokens; administrators list and revoke everyone's
// (token.list takes an optional "user_id" filter for them). Tokens are named by their public id,
// never by the token itself. Revoking a token ends every live session using it, in every dialect.
func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "token.list", Access: core.LoggedIn, Handler: m.list},
		core.Method{Type: "token.revoke", Access: core.LoggedIn, Handler: m.revokeCall},
	)
}

// ListItem is one entry of token.list.
type ListItem struct {
	ID          string    `json:"id"`
	UserID      int64     `json:"user_id"`
	Username    string    `json:"username"`
	Dialect     string    `json:"dialect"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`   // absolute expiry
	IdleSeconds int64     `json:"idle_seconds"` // idle timeout; 0 = none
	LastUsedAt  time.Time `json:"last_used_at"`
	RemoteAddr  string    `json:"remote_addr"`
	UserAgent   string    `json:"user_agent"`
	Current     bool      `json:"current"` // the token of the session making the call
}

func (m *Module) list(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		UserID int64 `json:"user_id"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	owner := call.Caller.UserID
	if call.Caller.Rank == core.RankAdministrator {
		owner = req.UserID // 0 = everyone
	}
	toks, err := m.store.List(ctx, owner)
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	names, err := m.usernames(ctx, toks)
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	out := make([]ListItem, 0, len(toks))
	for _, t := range toks {
		out = append(out, ListItem{
			ID: t.ID, UserID: t.UserID, Username: names[t.UserID], Dialect: t.Dialect,
			IssuedAt: t.IssuedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(), IdleSeconds: t.IdleSeconds,
			LastUsedAt: t.LastUsedAt.UTC(), RemoteAddr: t.RemoteAddr, UserAgent: t.UserAgent,
			Current: t.ID == call.Caller.TokenID,
		})
	}
	return out, nil
}

// usernames returns the usernames of the tokens' owners.
func (m *Module) usernames(ctx context.Context, toks []Token) (map[int64]string, error) {
	names := make(map[int64]string)
	var ids []int64
	for _, t := range toks {
		if _, ok := names[t.UserID]; !ok {
			names[t.UserID] = ""
			ids = append(ids, t.UserID)
		}
	}
	if len(ids) == 0 {
		return names, nil
	}
	var rows []struct {
		ID       int64
		Username string
	}
	if err := m.store.db.Read.WithContext(ctx).Raw(`SELECT id, username FROM users WHERE id IN ?`, ids).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("token owners: %w", err)
	}
	for _, r := range rows {
		names[r.ID] = r.Username
	}
	return names, nil
}

func (m *Module) revokeCall(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		TokenID string `json:"token_id"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	owner := call.Caller.UserID
	if call.Caller.Rank == core.RankAdministrator {
		owner = 0 // any owner
	}
	if req.TokenID == call.Caller.TokenID {
		// Revoking the session's own token is a logout: this connection gets its reply and no
		// session_closed; other connections sharing the token get session_closed.
		if hash, _, ok := call.Session.Token(); ok {
			m.store.Detach(hash, call.Session)
			call.Session.Logout()
		}
	}
	err := m.store.RevokeID(ctx, req.TokenID, owner, "Token revoked.")
	if errors.Is(err, ErrInvalid) {
		return nil, core.NotFound("token", req.TokenID)
	}
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	call.Log().Info().Str("token_id", req.TokenID).Msg("token revoked")
	return struct{}{}, nil
}
