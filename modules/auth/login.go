package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/auth/throttle"
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
	// DeviceToken is the device token the client got from an earlier successful login of this
	// user ("" = none): a valid one lets the attempt through while the username is under attack
	// (OWASP device cookies). An invalid one is ignored (the client is untrusted).
	DeviceToken string
}

// LoginResult is what a login produced.
type LoginResult struct {
	Outcome Outcome
	User    User
	Token   string       // raw token, only when Granted by Login
	Record  *token.Token // the token's record
	// DeviceToken is a new device token for the client to keep and present at its next login
	// of this user; set when Granted by Login.
	DeviceToken string
}

// RateLimitedError returns the RATE_LIMITED error for a refused attempt.
func RateLimitedError(retry time.Duration) *core.Error {
	secs := max(1, int((retry+time.Second-1)/time.Second))
	return &core.Error{
		Code:    core.RateLimited,
		Msg:     fmt.Sprintf("Too many failed login attempts; retry in %d s.", secs),
		Content: map[string]int{"retry_after": secs},
	}
}

// Login checks a username and password and, when they are right and the account is valid,
// issues a token. The attempt is admitted by the throttle before anything else: a refused one
// returns a RATE_LIMITED *core.Error at once, without checking the password; an admitted one
// holds its throttle slots until it ends. Password checks run one at a time per source address.
// Unknown users cost the same hashing time as known ones. The token is issued only if the
// user's credential generation read with the user is unchanged in the issuing transaction (a
// password change, disable or delete racing the login wins: BadCredentials). Every attempt is
// published on the bus ("auth.login" or "auth.failed") and every failure logged at warn; the
// password never leaves this function.
func (m *Module) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	var (
		u      User
		known  bool
		loaded bool
		device deviceClaims
	)
	if req.DeviceToken != "" {
		// Only a genuine token costs a read before admission; its binding to the user's id is
		// checked against the account (a deleted and re-created username is another user).
		if c, ok := m.devices.verify(req.DeviceToken, req.Username, m.now()); ok {
			var err error
			u, err = m.users.ByUsername(ctx, req.Username)
			if err != nil && !errors.Is(err, ErrNoUser) {
				return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
			}
			known, loaded = err == nil, true
			if known && u.ID == c.UserID {
				device = c
			}
		}
	}
	att, retry, ok := m.throttle.Begin(ctx, req.Username, req.Remote, device.ID)
	if !ok {
		m.loginFailed(req.Username, known, req.Remote, req.Dialect, "rate_limited")
		return LoginResult{}, RateLimitedError(retry)
	}
	if !loaded {
		var err error
		u, err = m.users.ByUsername(ctx, req.Username)
		if err != nil && !errors.Is(err, ErrNoUser) {
			att.Release()
			return LoginResult{}, core.E(core.DatabaseError, "Database error.", err)
		}
		known = err == nil
	}
	verr := m.verify(ctx, req.Remote, u.PasswordHash, req.Password) // u is zero (no hash) when unknown
	if errors.Is(verr, context.Canceled) || errors.Is(verr, context.DeadlineExceeded) {
		att.Release() // never checked
		return LoginResult{}, verr
	}
	if !known || verr != nil {
		if verr != nil && !errors.Is(verr, password.ErrMismatch) {
			m.log.Error().Err(verr).Int64("user_id", u.ID).Msg("stored password hash unreadable")
		}
		att.Fail()
		if device.ID != "" {
			m.saveDevice(context.WithoutCancel(ctx), device)
		}
		m.loginFailed(req.Username, known, req.Remote, req.Dialect, "bad_credentials")
		if ctx.Err() != nil {
			return LoginResult{}, ctx.Err()
		}
		return LoginResult{Outcome: BadCredentials}, nil
	}
	host := throttle.Host(req.Remote)
	trusted := m.throttle.TrustedUntil(u.Username, req.Remote)
	hadDeviceState := device.ID != "" && !isZeroState(m.throttle.DeviceState(device.ID))
	att.Succeed()
	// Persist trust for the restart, at most once a day per pair.
	if until := m.throttle.TrustedUntil(u.Username, req.Remote); until.Sub(trusted) > 24*time.Hour {
		m.saveTrust(context.WithoutCancel(ctx), u.ID, host, until)
	}
	if hadDeviceState {
		m.saveDevice(context.WithoutCancel(ctx), device)
	}
	if ctx.Err() != nil {
		return LoginResult{}, ctx.Err()
	}
	if out := m.accountOutcome(u); out != Granted {
		m.loginFailed(u.Username, true, req.Remote, req.Dialect, "account_invalid")
		return LoginResult{Outcome: out, User: u}, nil
	}
	if m.hasher.NeedsRehash(u.PasswordHash) {
		m.rehash(ctx, u, req.Password)
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
	dev, err := m.devices.issue(u, m.now())
	if err != nil {
		m.log.Warn().Err(err).Msg("device token not issued")
	}
	m.bus.Publish(core.Event{Topic: "auth.login", Source: ModuleID, Data: LoginEvent{
		UserID: u.ID, Username: u.Username, Remote: req.Remote, Dialect: req.Dialect, Method: "password"}})
	return LoginResult{Outcome: Granted, User: u, Token: raw, Record: rec, DeviceToken: dev}, nil
}

func isZeroState(s throttle.State) bool { return len(s.Fails) == 0 && s.Locks == 0 }

// verify checks a password, one check at a time per source address.
func (m *Module) verify(ctx context.Context, remote, encoded, pw string) error {
	leave, err := m.gate.enter(ctx, throttle.Host(remote))
	if err != nil {
		return err
	}
	defer leave()
	m.verifications.Add(1)
	return m.hasher.Verify(ctx, encoded, pw)
}

// PasswordChecks returns how many password checks logins have run since the start (a figure
// for tests and benchmarks of the throttle).
func (m *Module) PasswordChecks() int64 { return m.verifications.Load() }

// LoginToken checks an existing raw token (sliding it) for a login by token through some
// dialect. Failures are throttled by source address.
func (m *Module) LoginToken(ctx context.Context, raw, remote, dialect string) (LoginResult, error) {
	att, retry, ok := m.throttle.Begin(ctx, "", remote, "")
	if !ok {
		m.loginFailed("", false, remote, dialect, "rate_limited")
		return LoginResult{}, RateLimitedError(retry)
	}
	var rec *token.Token
	err := token.ErrInvalid
	if token.Plausible(raw) {
		rec, err = m.tokens.UseVia(ctx, token.Hash(raw), dialect)
	}
	if errors.Is(err, token.ErrInvalid) {
		att.Fail()
		m.loginFailed("", false, remote, dialect, "bad_token")
		return LoginResult{Outcome: BadCredentials}, nil
	}
	att.Release()
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

// rehash stores a hash of the user's password with the current parameters; it is not a
// password change (the credential generation stays).
func (m *Module) rehash(ctx context.Context, u User, pw string) {
	hash, err := m.hasher.Hash(ctx, pw)
	if err == nil {
		_, err = m.users.ReplacePasswordHash(ctx, u.ID, u.PasswordHash, hash)
	}
	if err != nil {
		m.log.Warn().Err(err).Int64("user_id", u.ID).Msg("password rehash failed")
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
	Reason   string `json:"reason"` // bad_credentials, bad_token, account_invalid, rate_limited, credentials_changed, bad_current_password
}

// loginFailed logs a failed login at warn for fail2ban or a SIEM (message "login failed",
// fields remote_ip, dialect, reason, and username only when the account exists: a password
// typed into the username field must not reach the logs), and publishes it.
func (m *Module) loginFailed(username string, known bool, remote, dialect, reason string) {
	ev := m.log.Warn().Str("remote_ip", throttle.Host(remote)).Str("dialect", dialect).Str("reason", reason)
	if known && username != "" {
		ev = ev.Str("username", strings.ToLower(truncateString(username, 128)))
	}
	ev.Msg("login failed")
	m.publishFailed(username, remote, dialect, reason)
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
