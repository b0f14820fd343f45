package auth

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/token"
)

// LoginUser logs in a user already authenticated by other means (a certificate proof, the
// peer credentials of a Unix socket): it checks that the account exists and is enabled and
// valid now, then issues a token as Login does (req.Username and req.Password are ignored; the
// other fields of req describe the token) and publishes "auth.login" with the given method
// ("certificate", "peercred"). An unknown user answers BadCredentials, an invalid account
// AccountDisabled or AccountInactive (published as "auth.failed"). It does not throttle: the
// proof's checker does. Like Login, it issues no token when the user's credentials changed
// since the account was read (BadCredentials).
func (m *Module) LoginUser(ctx context.Context, userID int64, req LoginRequest, method string) (LoginResult, error) {
	u, err := m.users.Get(ctx, userID)
	if errors.Is(err, ErrNoUser) {
		m.loginFailed("", false, req.Remote, req.Dialect, "bad_credentials")
		return LoginResult{Outcome: BadCredentials}, nil
	}
	if err != nil {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	if out := m.accountOutcome(u); out != Granted {
		m.loginFailed(u.Username, true, req.Remote, req.Dialect, "account_invalid")
		return LoginResult{Outcome: out, User: u}, nil
	}
	raw, rec, err := m.tokens.Issue(ctx, token.IssueRequest{
		UserID: u.ID, Dialect: req.Dialect, Lifetime: req.Lifetime, Idle: req.Idle,
		Remote: req.Remote, UserAgent: req.UserAgent,
		Guard: func(tx *gorm.DB) error { return CheckCredGen(tx, u.ID, u.CredGen) },
	})
	if errors.Is(err, ErrCredentialsChanged) || errors.Is(err, token.ErrRevokedWhileIssued) {
		m.loginFailed(u.Username, true, req.Remote, req.Dialect, "credentials_changed")
		return LoginResult{Outcome: BadCredentials}, nil
	}
	if err != nil {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	m.bus.Publish(core.Event{Topic: "auth.login", Source: ModuleID, Data: LoginEvent{
		UserID: u.ID, Username: u.Username, Remote: req.Remote, Dialect: req.Dialect, Method: method}})
	return LoginResult{Outcome: Granted, User: u, Token: raw, Record: rec}, nil
}
