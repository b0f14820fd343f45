package auth

import (
	"context"
	"errors"

	"gatehouse/core"
	"gatehouse/modules/auth/password"
)

// DialectLeosac names the Leosac websocket dialect in tokens and events.
const DialectLeosac = "leosac"

func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "create_auth_token", Access: core.AnonymousOnly, Handler: m.createAuthToken},
		core.Method{Type: "authenticate_with_token", Access: core.AnonymousOnly, Handler: m.authenticateWithToken},
		core.Method{Type: "logout", Access: core.LoggedIn, Handler: m.logout},
		core.Method{Type: "whoami", Access: core.LoggedIn, Handler: m.whoami},
		core.Method{Type: "password_change", Access: core.LoggedIn, Handler: m.passwordChange},
	)
}

// invalidCredentials is Leosac's domain answer to a failed login (status_code stays 0).
var invalidCredentials = map[string]any{"status": -1, "message": "Invalid credentials"}

// accountError is the GENERAL_FAILURE Leosac answers for a valid password on an invalid account.
func accountError(out Outcome) error {
	if out == AccountDisabled {
		return core.E(core.GeneralFailure, "This user account is disabled.", nil)
	}
	return core.E(core.GeneralFailure, "This user account is not currently active.", nil)
}

func (m *Module) createAuthToken(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Username    string `json:"username"`
		Password    string `json:"password"`
		DeviceToken string `json:"device_token"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	idle, lifetime := m.tokenMod.LeosacLifetime()
	res, err := m.Login(ctx, LoginRequest{
		Username: req.Username, Password: req.Password, DeviceToken: req.DeviceToken,
		Remote: call.Session.Remote, UserAgent: call.Session.UserAgent,
		Dialect: DialectLeosac, Lifetime: lifetime, Idle: idle,
	})
	if err != nil {
		return nil, err
	}
	switch res.Outcome {
	case BadCredentials:
		return invalidCredentials, nil
	case AccountDisabled, AccountInactive:
		return nil, accountError(res.Outcome)
	}
	call.Session.Login(res.User.ID, res.Record.Hash)
	m.tokens.Attach(res.Record.Hash, call.Session)
	call.Log().Info().Int64("user_id", res.User.ID).Str("token_id", res.Record.ID).Msg("logged in")
	reply := map[string]any{"status": 0, "user_id": res.User.ID, "token": res.Token}
	if res.DeviceToken != "" {
		reply["device_token"] = res.DeviceToken // keep it for the next login of this user
	}
	return reply, nil
}

func (m *Module) authenticateWithToken(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Token string `json:"token"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	res, err := m.LoginToken(ctx, req.Token, call.Session.Remote, DialectLeosac)
	if err != nil {
		return nil, err
	}
	switch res.Outcome {
	case BadCredentials:
		return invalidCredentials, nil
	case AccountDisabled, AccountInactive:
		return nil, accountError(res.Outcome)
	}
	call.Session.Login(res.User.ID, res.Record.Hash)
	m.tokens.Attach(res.Record.Hash, call.Session)
	return map[string]any{"status": 0, "user_id": res.User.ID, "username": res.User.Username}, nil
}

// logout revokes the session's token everywhere (other connections sharing it get
// session_closed) and leaves this connection logged out.
func (m *Module) logout(ctx context.Context, call *core.Call) (any, error) {
	hash, _, ok := call.Session.Token()
	if !ok {
		return nil, core.ErrPermissionDenied
	}
	m.tokens.Detach(hash, call.Session)
	call.Session.Logout()
	if err := m.tokens.Revoke(ctx, hash, "Logged out."); err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	return nil, nil
}

// WhoamiReply is the content of whoami.
type WhoamiReply struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Rank     int    `json:"rank"`
	// InitialPassword is true while the caller's password is still the one generated on first
	// start (written to the initial-admin-password file): the dashboard asks for a change.
	InitialPassword bool `json:"initial_password,omitempty"`
}

func (m *Module) whoami(_ context.Context, call *core.Call) (any, error) {
	c := call.Caller
	return WhoamiReply{UserID: c.UserID, Username: c.Username, Rank: int(c.Rank),
		InitialPassword: c.UserID != 0 && m.initialUser.Load() == c.UserID}, nil
}

// passwordChange changes a password. Users change their own with current_password (a wrong one
// counts as a failed login for throttling). Administrators may set anyone's; managers and
// supervisors only those of users of a lower rank than theirs. All other tokens of the target
// are revoked and their live sessions get session_closed; the caller's own session survives.
func (m *Module) passwordChange(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		UserID          int64   `json:"user_id"`
		CurrentPassword *string `json:"current_password"`
		NewPassword     string  `json:"new_password"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	caller := call.Caller
	if req.UserID == 0 {
		req.UserID = caller.UserID
	}
	target, err := m.users.Get(ctx, req.UserID)
	if errors.Is(err, ErrNoUser) {
		return nil, core.NotFound("user", req.UserID)
	}
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	keep := ""
	if target.ID == caller.UserID {
		if req.CurrentPassword == nil {
			return nil, core.Validation(core.FieldError{Detail: "current_password is required.", Pointer: "data/attributes/current_password"})
		}
		att, retry, ok := m.throttle.Begin(ctx, target.Username, call.Session.Remote, "")
		if !ok {
			return nil, RateLimitedError(retry)
		}
		if err := m.verify(ctx, call.Session.Remote, target.PasswordHash, *req.CurrentPassword); err != nil {
			if !errors.Is(err, password.ErrMismatch) {
				att.Release()
				return nil, err
			}
			att.Fail()
			m.loginFailed(target.Username, true, call.Session.Remote, call.Session.Dialect, "bad_current_password")
			return nil, core.E(core.PermissionDenied, "Permission denied: Invalid `current_password`.", nil)
		}
		att.Succeed()
		keep, _, _ = call.Session.Token()
	} else if !(caller.Rank == core.RankAdministrator ||
		caller.Rank.AtLeast(core.RankManager) && target.Rank < caller.Rank) {
		return nil, core.ErrPermissionDenied
	}
	if err := m.ChangePassword(ctx, target.ID, req.NewPassword, keep); err != nil {
		return nil, err
	}
	m.bus.Publish(core.Event{Topic: "user.password_changed", Source: ModuleID,
		Data: map[string]any{"user_id": target.ID, "by_user_id": caller.UserID}})
	call.Log().Info().Int64("target_user_id", target.ID).Msg("password changed")
	return nil, nil
}
