package token

import (
	"context"
	"time"
)

// DialectLeosac names the Leosac websocket dialect (the dashboard's).
const DialectLeosac = "leosac"

// Policy is the lifetime a dialect allows the tokens it issues and accepts: an absolute
// maximum counted from issue and a sliding idle timeout (0 = none). Zero fields set no limit.
type Policy struct {
	Idle time.Duration
	Max  time.Duration
}

// policies is an immutable set of lifetime rules, replaced whole by SetPolicy and
// SetMaxLifetime (copy on write: readers take no lock, so they may hold an entry's mutex).
type policies struct {
	max       time.Duration // server-wide cap; 0 = none
	byDialect map[string]Policy
}

// SetMaxLifetime sets the server-wide cap on a token's absolute lifetime, whatever dialect
// minted it or uses it: Issue never issues for longer, and an older token is invalid
// everywhere. 0 removes the cap.
func (s *Store) SetMaxLifetime(d time.Duration) {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	cur := s.policies()
	s.pol.Store(&policies{max: d, byDialect: cur.byDialect})
}

// SetPolicy records a dialect's lifetime policy. A token is valid through a dialect only
// within the stricter of the two policies, its minting dialect's and the using dialect's
// (each limit taken separately: the earlier absolute expiry, the shorter idle timeout), and
// within the server-wide cap: a one-year token from the token API used on the Leosac
// websocket obeys the Leosac idle timeout and maximum there.
func (s *Store) SetPolicy(dialect string, p Policy) {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	cur := s.policies()
	by := make(map[string]Policy, len(cur.byDialect)+1)
	for k, v := range cur.byDialect {
		by[k] = v
	}
	by[dialect] = p
	s.pol.Store(&policies{max: cur.max, byDialect: by})
}

func (s *Store) policies() *policies {
	if p := s.pol.Load(); p != nil {
		return p
	}
	return &policies{}
}

// view returns t as seen through dialect ("" = its minting dialect only): its expiry and idle
// timeout narrowed by the server-wide cap, the minting dialect's policy and the using
// dialect's policy.
func (s *Store) view(t Token, dialect string) Token {
	pol := s.policies()
	narrow := func(max, idle time.Duration) {
		if max > 0 {
			if e := t.IssuedAt.Add(max); e.Before(t.ExpiresAt) {
				t.ExpiresAt = e
			}
		}
		if idle > 0 {
			secs := int64((idle + time.Second - 1) / time.Second)
			if t.IdleSeconds == 0 || secs < t.IdleSeconds {
				t.IdleSeconds = secs
			}
		}
	}
	narrow(pol.max, 0)
	if p, ok := pol.byDialect[t.Dialect]; ok {
		narrow(p.Max, p.Idle)
	}
	if p, ok := pol.byDialect[dialect]; ok && dialect != t.Dialect {
		narrow(p.Max, p.Idle)
	}
	return t
}

// UseVia is Use for a token presented through dialect: it is valid there only within the
// stricter of its own policy and the dialect's (see SetPolicy). A token that is still valid
// in its own dialect but not through this one answers ErrInvalid and stays valid elsewhere;
// it is not slid. The returned copy's ExpiresAt and IdleSeconds are the limits as seen
// through dialect, so Deadline is when it stops being valid there.
func (s *Store) UseVia(ctx context.Context, hash, dialect string) (*Token, error) {
	return s.use(ctx, hash, dialect, true)
}

// PeekVia is Peek for a token presented through dialect (see UseVia).
func (s *Store) PeekVia(ctx context.Context, hash, dialect string) (*Token, error) {
	return s.use(ctx, hash, dialect, false)
}

// use checks a token through dialect, sliding it when slide. A token past its own deadline is
// removed (when slide) and answers ErrInvalid, as does one past the dialect's.
func (s *Store) use(ctx context.Context, hash, dialect string, slide bool) (*Token, error) {
	e, err := s.load(ctx, hash)
	if err != nil {
		return nil, err
	}
	now := s.now()
	e.mu.Lock()
	own, there := s.view(e.tok, ""), s.view(e.tok, dialect)
	if now.After(own.Deadline()) {
		e.mu.Unlock()
		if slide {
			s.drop(hash)
			if err := s.db.Write.WithContext(ctx).Where("hash = ?", hash).Delete(&Token{}).Error; err != nil {
				s.log.Warn().Err(err).Msg("delete expired token")
			}
		}
		return nil, ErrInvalid
	}
	if now.After(there.Deadline()) {
		e.mu.Unlock()
		return nil, ErrInvalid
	}
	if slide {
		e.tok.LastUsedAt = now
		e.dirty = true
	}
	out := s.view(e.tok, dialect)
	e.mu.Unlock()
	return &out, nil
}
