package core

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rank is a user's rank, in Leosac's values. It governs what a user may do through the API,
// not which doors open.
type Rank int

// The ranks, lowest first.
const (
	RankUser          Rank = 0
	RankViewer        Rank = 1
	RankManager       Rank = 2
	RankSupervisor    Rank = 3
	RankAdministrator Rank = 4
)

var rankNames = [...]string{"user", "viewer", "manager", "supervisor", "administrator"}

// Valid reports whether r is one of the five ranks.
func (r Rank) Valid() bool { return r >= RankUser && r <= RankAdministrator }

// String returns the rank's name as Leosac's web UI spells it.
func (r Rank) String() string {
	if r.Valid() {
		return rankNames[r]
	}
	return fmt.Sprintf("rank(%d)", int(r))
}

// ParseRank accepts a rank name (case-insensitive).
func ParseRank(s string) (Rank, bool) {
	for i, n := range rankNames {
		if strings.EqualFold(s, n) {
			return Rank(i), true
		}
	}
	return 0, false
}

// AtLeast reports whether r grants at least the rights of min.
func (r Rank) AtLeast(min Rank) bool { return r >= min }

// Identity is who a logged-in session acts as, as of the current call.
type Identity struct {
	UserID   int64
	Username string
	Rank     Rank
	TokenID  string // public id of the session's token, never the token itself
}

// Session is one client's state across calls: one websocket connection, or one HTTP request.
// It knows whether the client is logged in and with which token (by hash only). A Session is
// safe for concurrent use. Rights are never cached in it: every call resolves the token again
// (see Authority), so a revoked token or a changed rank takes effect on the next call.
type Session struct {
	// Dialect names the front door ("leosac", "sysadm", "rest", "portal").
	Dialect string
	// Remote is the client's address (host:port).
	Remote string
	// UserAgent is the client's User-Agent header, if any.
	UserAgent string

	checked        atomic.Pointer[CheckedIdentity] // the Authority's memo of its last Check
	gatehouseTypes atomic.Bool                     // opted into gatehouse's JSON:API types

	mu        sync.Mutex
	tokenHash string // hex SHA-256 of the token; "" when not logged in
	userID    int64
	notify    func(reason string)
	ended     bool
}

// CheckedIdentity is what an Authority may remember of a session's last Check, so that checks
// repeated for every pushed event cost no lookup: it stands for the session while the session
// still holds TokenHash, the authority's generation (which moves on every revocation and every
// change of a user) is still Gen, and the time is before Until.
type CheckedIdentity struct {
	Identity  Identity
	TokenHash string
	Gen       uint64
	Until     time.Time
}

// Checked returns the Authority's memo of the session's last Check, or nil.
func (s *Session) Checked() *CheckedIdentity { return s.checked.Load() }

// SetChecked stores the Authority's memo of a Check (nil forgets it).
func (s *Session) SetChecked(c *CheckedIdentity) { s.checked.Store(c) }

// DialectLeosac is the Dialect of sessions of the Leosac websocket dialect.
const DialectLeosac = "leosac"

// SetGatehouseTypes records whether the client opted into gatehouse's own JSON:API types and
// audit types (session.set_features {"types": "gatehouse"}); it lasts as long as the session.
func (s *Session) SetGatehouseTypes(on bool) { s.gatehouseTypes.Store(on) }

// GatehouseTypes reports whether the client opted into gatehouse's own types.
func (s *Session) GatehouseTypes() bool { return s != nil && s.gatehouseTypes.Load() }

// LeosacTypes reports whether replies to this session may use only the types Leosac 0.8 and
// its web GUI know: the session is of the Leosac dialect and did not opt into gatehouse's
// types. A card + PIN credential is then an "rfid-card" with "pin-required": true, and the
// audit trail shows only Leosac's audit types. Other dialects are gatehouse's own and always
// get gatehouse's types. A nil session gets gatehouse's types.
func (s *Session) LeosacTypes() bool {
	return s != nil && s.Dialect == DialectLeosac && !s.gatehouseTypes.Load()
}

// NewSession returns a session that is not logged in. notify, if not nil, is called (at most
// once per login) when the session is ended from elsewhere, e.g. its token was revoked; the
// transport uses it to tell the client (Leosac session_closed).
func NewSession(dialect, remote, userAgent string, notify func(reason string)) *Session {
	return &Session{Dialect: dialect, Remote: remote, UserAgent: userAgent, notify: notify}
}

// Login marks the session as logged in with the token whose hash is given.
func (s *Session) Login(userID int64, tokenHash string) {
	s.mu.Lock()
	s.tokenHash, s.userID, s.ended = tokenHash, userID, false
	s.mu.Unlock()
}

// Token returns the hash of the session's token and its owner, or ok=false when not logged in.
func (s *Session) Token() (tokenHash string, userID int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenHash, s.userID, s.tokenHash != ""
}

// LoggedIn reports whether the session holds a token.
func (s *Session) LoggedIn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenHash != ""
}

// Logout forgets the token; the session loses every right at once. It does not notify.
func (s *Session) Logout() {
	s.mu.Lock()
	s.tokenHash, s.userID = "", 0
	s.mu.Unlock()
}

// End logs the session out because of something that happened elsewhere (token revoked,
// password changed, user disabled) and notifies the transport once with the reason, but only
// if the session still held the given token: a session that has since logged in again with
// another token is left alone.
func (s *Session) End(tokenHash, reason string) {
	s.mu.Lock()
	if s.tokenHash == "" || s.tokenHash != tokenHash || s.ended {
		s.mu.Unlock()
		return
	}
	s.tokenHash, s.userID, s.ended = "", 0, true
	notify := s.notify
	s.mu.Unlock()
	if notify != nil {
		notify(reason)
	}
}
