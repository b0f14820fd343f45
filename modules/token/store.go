// Package token is the one token store of gatehouse. Every dialect issues, checks and revokes
// tokens here, so a token obtained through any front door works in all of them and revoking it
// anywhere ends it everywhere, including live connections.
//
// A token is a UUIDv4 string from crypto/rand (64 hex digits for the LemonLDAP::NG portal)
// handed to the client once; only its SHA-256 is stored. Each token has an owner, an absolute
// expiry and an optional idle timeout that slides on every successful use. Valid tokens are
// cached in memory, so checking a token costs no database read; slides are written back in
// batches (a crash loses at most one flush interval of sliding, which only ever shortens a
// token's life).
package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/db"
)

// Token is one issued token as stored (without the token itself).
type Token struct {
	ID          string    `gorm:"primaryKey" json:"id"`
	Hash        string    `json:"-"`
	UserID      int64     `json:"user_id"`
	Dialect     string    `json:"dialect"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	IdleSeconds int64     `json:"idle_seconds"`
	LastUsedAt  time.Time `json:"last_used_at"`
	RemoteAddr  string    `json:"remote_addr"`
	UserAgent   string    `json:"user_agent"`
}

// TableName implements GORM's tabler.
func (Token) TableName() string { return "tokens" }

// Idle returns the idle timeout (0 = none).
func (t *Token) Idle() time.Duration { return time.Duration(t.IdleSeconds) * time.Second }

// Deadline returns when the token expires if it is not used again.
func (t *Token) Deadline() time.Time {
	if t.IdleSeconds > 0 {
		if idle := t.LastUsedAt.Add(t.Idle()); idle.Before(t.ExpiresAt) {
			return idle
		}
	}
	return t.ExpiresAt
}

// Hash returns the hex SHA-256 of a raw token, the only form in which tokens are stored.
func Hash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// Plausible reports whether raw has the shape of a gatehouse token: a canonical UUID, or 64
// lower-case hex digits (the LemonLDAP::NG portal's session ids, see DialectPortal). Anything
// else — including the empty string — can never match and is rejected without a lookup.
func Plausible(raw string) bool {
	if len(raw) == hexTokenLen {
		return isLowerHex(raw)
	}
	if len(raw) != 36 {
		return false
	}
	_, err := uuid.Parse(raw)
	return err == nil
}

// Errors returned by the store.
var (
	ErrInvalid = errors.New("token invalid or expired")
	// ErrRevokedWhileIssued: the owner's tokens were revoked while the token was being stored;
	// it was not issued.
	ErrRevokedWhileIssued = errors.New("tokens of the user revoked while issuing")
)

// IssueRequest describes a token to issue.
type IssueRequest struct {
	UserID    int64
	Dialect   string
	Lifetime  time.Duration // absolute; must be > 0
	Idle      time.Duration // sliding; 0 = none
	Remote    string
	UserAgent string
	// Guard, when set, runs inside the transaction that stores the token, before the insert:
	// an error from it aborts the issue and is returned wrapped (e.g. the owner's credentials
	// changed since they were checked).
	Guard func(tx *gorm.DB) error
}

// entry is a cached valid token and the live sessions logged in with it.
type entry struct {
	mu       sync.Mutex
	tok      Token
	dirty    bool
	sessions map[*core.Session]struct{}
}

// Store is the token store. It is safe for concurrent use.
type Store struct {
	db  *db.DB
	bus *core.Bus
	log zerolog.Logger
	now func() time.Time

	mu     sync.RWMutex
	byHash map[string]*entry
	drops  atomic.Uint64 // tokens dropped (revoked, expired, purged): see Generation

	polMu sync.Mutex               // serializes SetPolicy and SetMaxLifetime
	pol   atomic.Pointer[policies] // lifetime rules (policy.go)
}

// Generation changes whenever a token stops being valid by revocation or purge (not by
// reaching its deadline). A caller that remembers a check of a token may reuse it while the
// generation is unchanged and the token's deadline has not passed.
func (s *Store) Generation() uint64 { return s.drops.Load() }

// NewStore returns a store on the database. bus may be nil (offline tools).
func NewStore(d *db.DB, bus *core.Bus, log zerolog.Logger) *Store {
	return &Store{db: d, bus: bus, log: log, now: func() time.Time { return time.Now().UTC() }, byHash: make(map[string]*entry)}
}

// Issue creates a token and returns the raw token (to hand to the client once) and its record.
// The lifetime and idle timeout asked for are narrowed to the server-wide cap and the
// dialect's policy (SetMaxLifetime, SetPolicy): the record says what was granted.
func (s *Store) Issue(ctx context.Context, req IssueRequest) (string, *Token, error) {
	if req.Lifetime <= 0 {
		return "", nil, errors.New("issue token: lifetime must be positive")
	}
	raw, err := newRaw(req.Dialect) // crypto/rand
	if err != nil {
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	now := s.now()
	t := Token{
		ID:          id.String(),
		Hash:        Hash(raw),
		UserID:      req.UserID,
		Dialect:     req.Dialect,
		IssuedAt:    now,
		ExpiresAt:   now.Add(req.Lifetime),
		IdleSeconds: int64((req.Idle + time.Second - 1) / time.Second), // never round a timeout away
		LastUsedAt:  now,
		RemoteAddr:  truncate(req.Remote, 128),
		UserAgent:   truncate(req.UserAgent, 256),
	}
	t = s.view(t, "") // the server-wide cap, whatever the dialect asked for
	// Cached before the commit (nobody holds the raw token yet): a RevokeUser that runs once the
	// row is committed finds the entry in the cache as well as the row, and drops both.
	e := &entry{tok: t}
	s.mu.Lock()
	s.byHash[t.Hash] = e
	s.mu.Unlock()
	err = s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if req.Guard != nil {
			if err := req.Guard(tx); err != nil {
				return err
			}
		}
		return tx.Create(&t).Error
	})
	if err != nil {
		s.mu.Lock()
		if s.byHash[t.Hash] == e {
			delete(s.byHash, t.Hash)
		}
		s.mu.Unlock()
		return "", nil, fmt.Errorf("issue token: %w", err)
	}
	s.mu.RLock()
	revoked := s.byHash[t.Hash] != e
	s.mu.RUnlock()
	if revoked { // the owner's tokens were revoked while this one was being stored
		if err := s.db.Write.WithContext(ctx).Where("id = ?", t.ID).Delete(&Token{}).Error; err != nil {
			return "", nil, fmt.Errorf("issue token: revoked while issued: %w", err)
		}
		return "", nil, fmt.Errorf("issue token: %w", ErrRevokedWhileIssued)
	}
	out := t
	return raw, &out, nil
}

// Use checks the token with the given hash and, when valid, slides its idle timeout and returns
// a copy. An expired token is removed. A token that is not valid returns ErrInvalid. It applies
// the token's own dialect's policy and the server-wide cap; dialects use UseVia.
func (s *Store) Use(ctx context.Context, hash string) (*Token, error) {
	return s.use(ctx, hash, "", true)
}

// Peek returns the token with the given hash without sliding it, or ErrInvalid (see Use).
func (s *Store) Peek(ctx context.Context, hash string) (*Token, error) {
	return s.use(ctx, hash, "", false)
}

// load returns the cache entry for hash, reading the database on a miss.
func (s *Store) load(ctx context.Context, hash string) (*entry, error) {
	if len(hash) != sha256.Size*2 {
		return nil, ErrInvalid
	}
	s.mu.RLock()
	e, ok := s.byHash[hash]
	s.mu.RUnlock()
	if ok {
		return e, nil
	}
	var t Token
	err := s.db.Read.WithContext(ctx).Where("hash = ?", hash).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("load token: %w", err)
	}
	// Belt and braces: the index lookup is exact; compare the digests in constant time anyway.
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 {
		return nil, ErrInvalid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byHash[hash]; ok { // loaded concurrently
		return e, nil
	}
	e = &entry{tok: t}
	s.byHash[hash] = e
	return e, nil
}

// Attach records that a live session is logged in with the token, so that revoking the token
// ends the session at once (Session.End). Sessions are detached by Detach or on revocation.
func (s *Store) Attach(hash string, sess *core.Session) {
	s.mu.RLock()
	e, ok := s.byHash[hash]
	s.mu.RUnlock()
	if !ok {
		return
	}
	e.mu.Lock()
	if e.sessions == nil {
		e.sessions = make(map[*core.Session]struct{})
	}
	e.sessions[sess] = struct{}{}
	e.mu.Unlock()
}

// Detach forgets a live session (its connection closed or it logged out).
func (s *Store) Detach(hash string, sess *core.Session) {
	s.mu.RLock()
	e, ok := s.byHash[hash]
	s.mu.RUnlock()
	if !ok {
		return
	}
	e.mu.Lock()
	delete(e.sessions, sess)
	e.mu.Unlock()
}

// drop removes a hash from the cache and returns its live sessions.
func (s *Store) drop(hash string) []*core.Session {
	s.mu.Lock()
	e, ok := s.byHash[hash]
	delete(s.byHash, hash)
	s.drops.Add(1)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*core.Session, 0, len(e.sessions))
	for sess := range e.sessions {
		out = append(out, sess)
	}
	return out
}

// RevokedEvent is the payload of the bus topic "auth.token.revoked".
type RevokedEvent struct {
	TokenID string `json:"token_id"`
	UserID  int64  `json:"user_id"`
	Reason  string `json:"reason"`
}

// Revoke deletes the token with the given hash and ends every live session using it with the
// reason. Revoking an unknown token is not an error.
func (s *Store) Revoke(ctx context.Context, hash, reason string) error {
	var toks []Token
	if err := s.db.Write.WithContext(ctx).Where("hash = ?", hash).Find(&toks).Error; err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if len(toks) == 0 {
		// No row, but a cached entry must not outlive the revocation.
		s.mu.RLock()
		if e, ok := s.byHash[hash]; ok {
			e.mu.Lock()
			toks = append(toks, e.tok)
			e.mu.Unlock()
		}
		s.mu.RUnlock()
	}
	return s.revoke(ctx, toks, reason)
}

// RevokeID revokes a token by its public id; with owner > 0 only if that user owns it. It
// returns ErrInvalid when there is no such token (for that owner).
func (s *Store) RevokeID(ctx context.Context, id string, owner int64, reason string) error {
	q := s.db.Write.WithContext(ctx).Where("id = ?", id)
	if owner > 0 {
		q = q.Where("user_id = ?", owner)
	}
	var toks []Token
	if err := q.Find(&toks).Error; err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if len(toks) == 0 {
		return ErrInvalid
	}
	return s.revoke(ctx, toks, reason)
}

// RevokeUser revokes every token of the user except the one whose hash is keep ("" = none),
// deletes all the user's refresh tokens, and ends their live sessions with the reason. It
// returns how many tokens were revoked.
func (s *Store) RevokeUser(ctx context.Context, userID int64, keep, reason string) (int, error) {
	var toks []Token
	if err := s.db.Write.WithContext(ctx).Where("user_id = ? AND hash <> ?", userID, keep).Find(&toks).Error; err != nil {
		return 0, fmt.Errorf("revoke user tokens: %w", err)
	}
	// Cached entries of this user not in the database are being issued (Issue caches before
	// its commit, and then fails when it finds its entry dropped) or stale; drop them too.
	s.mu.RLock()
	for h, e := range s.byHash {
		e.mu.Lock()
		if e.tok.UserID == userID && h != keep && !containsHash(toks, h) {
			toks = append(toks, e.tok)
		}
		e.mu.Unlock()
	}
	s.mu.RUnlock()
	// Access tokens first, refresh tokens after: a refresh token issued next to an access token
	// (the token API's offline access) is either deleted here or seen by its issuer to belong to
	// a revoked access token.
	if err := s.revoke(ctx, toks, reason); err != nil {
		return 0, err
	}
	return len(toks), s.deleteRefresh(ctx, userID)
}

func containsHash(toks []Token, h string) bool {
	for _, t := range toks {
		if t.Hash == h {
			return true
		}
	}
	return false
}

func (s *Store) revoke(ctx context.Context, toks []Token, reason string) error {
	if len(toks) == 0 {
		return nil
	}
	ids := make([]string, len(toks))
	for i, t := range toks {
		ids[i] = t.ID
	}
	if err := s.db.Write.WithContext(ctx).Where("id IN ?", ids).Delete(&Token{}).Error; err != nil {
		return fmt.Errorf("revoke tokens: %w", err)
	}
	for _, t := range toks {
		for _, sess := range s.drop(t.Hash) {
			sess.End(t.Hash, reason)
		}
		if s.bus != nil {
			s.bus.Publish(core.Event{Topic: "auth.token.revoked", Source: "token",
				Data: RevokedEvent{TokenID: t.ID, UserID: t.UserID, Reason: reason}})
		}
	}
	return nil
}

// List returns the unexpired tokens of a user (all users when userID is 0), newest first, with
// their last use as known in memory.
func (s *Store) List(ctx context.Context, userID int64) ([]Token, error) {
	q := s.db.Read.WithContext(ctx).Where("expires_at > ?", s.now()).Order("issued_at DESC").Limit(1000)
	if userID > 0 {
		q = q.Where("user_id = ?", userID)
	}
	toks := []Token{}
	if err := q.Find(&toks).Error; err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	now := s.now()
	out := toks[:0]
	for _, t := range toks {
		s.mu.RLock()
		e, ok := s.byHash[t.Hash]
		s.mu.RUnlock()
		if ok {
			e.mu.Lock()
			t.LastUsedAt = e.tok.LastUsedAt
			e.mu.Unlock()
		}
		if v := s.view(t, ""); !now.After(v.Deadline()) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Flush writes the slid last-use times of cached tokens to the database in one transaction.
func (s *Store) Flush(ctx context.Context) error {
	type slide struct {
		id, hash string
		last     time.Time
	}
	var pending []slide
	s.mu.RLock()
	for _, e := range s.byHash {
		e.mu.Lock()
		if e.dirty {
			pending = append(pending, slide{e.tok.ID, e.tok.Hash, e.tok.LastUsedAt})
			e.dirty = false
		}
		e.mu.Unlock()
	}
	s.mu.RUnlock()
	if len(pending) == 0 {
		return nil
	}
	var gone []string
	err := s.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		gone = gone[:0]
		for _, p := range pending {
			res := tx.Model(&Token{}).Where("id = ?", p.id).Update("last_used_at", p.last)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				gone = append(gone, p.hash)
			}
		}
		return nil
	})
	if err != nil {
		// Keep the slides for the next flush.
		s.mu.RLock()
		for _, p := range pending {
			if e, ok := s.byHash[p.hash]; ok {
				e.mu.Lock()
				e.dirty = true
				e.mu.Unlock()
			}
		}
		s.mu.RUnlock()
		return fmt.Errorf("flush token slides: %w", err)
	}
	// A token whose row is gone was revoked elsewhere (another process, an operator's reset):
	// the cache must not keep it alive.
	for _, h := range gone {
		for _, sess := range s.drop(h) {
			sess.End(h, "Token revoked.")
		}
	}
	return nil
}

// Purge deletes expired tokens from the database and the cache. It flushes pending slides
// first, so that a token kept alive in memory is never purged from the database. It returns how
// many rows were deleted.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	now := s.now()
	var expired []string
	s.mu.RLock()
	for h, e := range s.byHash {
		e.mu.Lock()
		if v := s.view(e.tok, ""); now.After(v.Deadline()) {
			expired = append(expired, h)
		}
		e.mu.Unlock()
	}
	s.mu.RUnlock()
	for _, h := range expired {
		s.drop(h)
	}
	// SQLite's date arithmetic has millisecond precision: rows are deleted only once they are
	// a second past their deadline, and never while the cache holds the token as valid.
	cutoff := now.Add(-time.Second)
	var live []string
	s.mu.RLock()
	for h := range s.byHash {
		live = append(live, h)
	}
	s.mu.RUnlock()
	q := s.db.Write.WithContext(ctx).Where(
		`(julianday(expires_at) < julianday(?)
		 OR (idle_seconds > 0 AND julianday(last_used_at) + idle_seconds / 86400.0 < julianday(?)))`, cutoff, cutoff)
	if len(live) > 0 && len(live) < 30000 {
		q = q.Where("hash NOT IN ?", live)
	}
	res := q.Delete(&Token{})
	if res.Error != nil {
		return 0, fmt.Errorf("purge tokens: %w", res.Error)
	}
	return res.RowsAffected, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
