package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gatehouse/core"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/token"
)

// Outcome is the result of a credential check that did not fail for technical reasons.
type Outcome int

// The outcomes of Login and LoginToken.
const (
	// Granted: credentials valid, account valid, token issued (or accepted).
	Granted Outcome = iota
	// BadCredentials: unknown user, wrong password, unknown or expired token. Clients are told
	// only "invalid credentials", whichever it was.
	BadCredentials
	// AccountDisabled: credentials valid but the account is disabled.
	AccountDisabled
	// AccountInactive: credentials valid but now is outside the account's validity window.
	AccountInactive
)

// LoginRequest is a username/password login through some dialect.
type LoginRequest struct {
	Username  string
	Password  string
	Remote    string // client address (host:port), the throttling key
	UserAgent string
	Dialect   string        // "leosac", "sysadm", "rest", "portal"
	Lifetime  time.Duration // absolute lifetime of the token to issue
	Idle      time.Duration // idle timeout of the token (0 = none)
}

// LoginResult is what a login produced.
type LoginResult struct {
	Outcome Outcome
	User    User
	Token   string       // raw token, only when Granted by Login
	Record  *token.Token // the token's record
}

// RateLimitedError returns the RATE_LIMITED error for a refused attempt.
func RateLimitedError(retry time.Duration) *core.Error {
	secs := int(retry.Round(time.Second) / time.Second)
	return &core.Error{
		Code:    core.RateLimited,
		Msg:     fmt.Sprintf("Too many failed login attempts; retry in %d s.", secs),
		Content: map[string]int{"retry_after": secs},
	}
}

// Login checks a username and password and, when they are right and the account is valid,
// issues a token. A throttled attempt returns a RATE_LIMITED *core.Error without checking the
// password. Unknown users cost the same hashing time as known ones. Every attempt is published
// on the bus ("auth.login" or "auth.failed"); the password never leaves this function.
func (m *Module) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	if retry, ok := m.throttle.Allow(ctx, req.Username, req.Remote); !ok {
		m.publishFailed(req.Username, req.Remote, req.Dialect, "rate_limited")
		return LoginResult{}, RateLimitedError(retry)
	}
	u, err := m.users.ByUsername(ctx, req.Username)
	if err != nil && !errors.Is(err, ErrNoUser) {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	known := err == nil
	verr := m.hasher.Verify(ctx, u.PasswordHash, req.Password) // u is zero (no hash) when unknown
	if ctx.Err() != nil {
		return LoginResult{}, ctx.Err()
	}
	if !known || verr != nil {
		if verr != nil && !errors.Is(verr, password.ErrMismatch) {
			m.log.Error().Err(verr).Int64("user_id", u.ID).Msg("stored password hash unreadable")
		}
		m.throttle.Fail(req.Username, req.Remote)
		m.publishFailed(req.Username, req.Remote, req.Dialect, "bad_credentials")
		return LoginResult{Outcome: BadCredentials}, nil
	}
	m.throttle.Succeed(req.Username, req.Remote)
	if out := m.accountOutcome(u); out != Granted {
		m.publishFailed(u.Username, req.Remote, req.Dialect, "account_invalid")
		return LoginResult{Outcome: out, User: u}, nil
	}
	if m.hasher.NeedsRehash(u.PasswordHash) {
		m.rehash(ctx, u.ID, req.Password)
	}
	raw, rec, err := m.tokens.Issue(ctx, token.IssueRequest{
		UserID: u.ID, Dialect: req.Dialect, Lifetime: req.Lifetime, Idle: req.Idle,
		Remote: req.Remote, UserAgent: req.UserAgent,
	})
	if err != nil {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	m.bus.Publish(core.Event{Topic: "auth.login", Source: ModuleID, Data: LoginEvent{
		UserID: u.ID, Username: u.Username, Remote: req.Remote, Dialect: req.Dialect, Method: "password"}})
	return LoginResult{Outcome: Granted, User: u, Token: raw, Record: rec}, nil
}

// LoginToken checks an existing raw token (sliding it) for a login by token through some
// dialect. Failures are throttled by source address.
func (m *Module) LoginToken(ctx context.Context, raw, remote, dialect string) (LoginResult, error) {
	if retry, ok := m.throttle.Allow(ctx, "", remote); !ok {
		return LoginResult{}, RateLimitedError(retry)
	}
	var rec *token.Token
	err := token.ErrInvalid
	if token.Plausible(raw) {
		rec, err = m.tokens.UseVia(ctx, token.Hash(raw), dialect)
	}
	if errors.Is(err, token.ErrInvalid) {
		m.throttle.Fail("", remote)
		m.publishFailed("", remote, dialect, "bad_token")
		return LoginResult{Outcome: BadCredentials}, nil
	}
	if err != nil {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	u, err := m.users.Get(ctx, rec.UserID)
	if errors.Is(err, ErrNoUser) {
		return LoginResult{Outcome: BadCredentials}, nil
	}
	if err != nil {
		return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
	}
	if out := m.accountOutcome(u); out != Granted {
		return LoginResult{Outcome: out, User: u}, nil
	}
	m.bus.Publish(core.Event{Topic: "auth.login", Source: ModuleID, Data: LoginEvent{
		UserID: u.ID, Username: u.Username, Remote: remote, Dialect: dialect, Method: "token"}})
	return LoginResult{Outcome: Granted, User: u, Record: rec}, nil
}

func (m *Module) accountOutcome(u User) Outcome {
	switch {
	case !u.ValidityEnabled:
		return AccountDisabled
	case !u.ValidAt(m.now()):
		return AccountInactive
	}
	return Granted
}

func (m *Module) rehash(ctx context.Context, id int64, pw string) {
	hash, err := m.hasher.Hash(ctx, pw)
	if err == nil {
		err = m.users.SetPasswordHash(ctx, id, hash)
	}
	if err != nil {
		m.log.Warn().Err(err).Int64("user_id", id).Msg("password rehash failed")
	}
}

// LoginEvent is the payload of "auth.login".
type LoginEvent struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Remote   string `json:"remote"`
	Dialect  string `json:"dialect"`
	Method   string `json:"method"` // password, token, certificate
}

// FailedEvent is the payload of "auth.failed". It never carries the password or token tried.
type FailedEvent struct {
	Username string `json:"username,omitempty"`
	Remote   string `json:"remote"`
	Dialect  string `json:"dialect"`
	Reason   string `json:"reason"` // bad_credentials, bad_token, account_invalid, rate_limited
}

func (m *Module) publishFailed(username, remote, dialect, reason string) {
	if len(username) > 128 {
		username = username[:128]
	}
	m.bus.Publish(core.Event{Topic: "auth.failed", Source: ModuleID,
		Data: FailedEvent{Username: username, Remote: remote, Dialect: dialect, Reason: reason}})
}

// ChangePassword sets a user's password after checking its length, and revokes every token of
// the user except keep (the caller's own, when users change their own password), ending those
// sessions with session_closed.
func (m *Module) ChangePassword(ctx context.Context, userID int64, newPassword, keep string) error {
	if len(newPassword) < m.MinPasswordLength || len(newPassword) > password.MaxLength {
		return core.Validation(core.FieldError{
			Detail:  fmt.Sprintf("Password must be %d to %d characters long.", m.MinPasswordLength, password.MaxLength),
			Pointer: "data/attributes/password",
		})
	}
	hash, err := m.hasher.Hash(ctx, newPassword)
	if err != nil {
		return err
	}
	if err := m.users.SetPasswordHash(ctx, userID, hash); err != nil {
		if errors.Is(err, ErrNoUser) {
			return core.NotFound("user", userID)
		}
		return core.E(core.DatabaseError, "Database error.", err)
	}
	if _, err := m.tokens.RevokeUser(ctx, userID, keep, "Password changed."); err != nil {
		return core.E(core.DatabaseError, "Database error.", err)
	}
	m.passwordReplaced(ctx, userID)
	return nil
}
