package token

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// DialectPortal names the LemonLDAP::NG portal dialect. Its tokens are LemonLDAP::NG session ids:
// 64 lower-case hex digits (256 bits from crypto/rand) instead of a UUID. They live in the same
// store as every other token and work in every dialect.
const DialectPortal = "portal"

const hexTokenLen = 64

// newRaw returns a fresh raw token in the form the dialect uses.
func newRaw(dialect string) (string, error) {
	if dialect == DialectPortal {
		var b [hexTokenLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		return hex.EncodeToString(b[:]), nil
	}
	u, err := uuid.NewRandom()
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Count returns how many of the user's tokens are live (not past their absolute expiry nor,
// as last written back, their idle timeout), all dialects together.
func (s *Store) Count(ctx context.Context, userID int64) (int64, error) {
	now := s.now()
	var n int64
	err := s.db.Read.WithContext(ctx).Model(&Token{}).
		Where("user_id = ? AND julianday(expires_at) > julianday(?)", userID, now).
		Where("(idle_seconds = 0 OR julianday(last_used_at) + idle_seconds / 86400.0 > julianday(?))", now).
		Count(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}

// RefreshToken is a long-lived refresh token (wazo-auth's access_type "offline") as stored,
// without the token itself: only its SHA-256 is kept. A user has at most one per client id.
// Refresh tokens do not expire; they go when the user's tokens are revoked (password change,
// account disabled or deleted), when a new one is issued for the same client id, or by
// RevokeRefresh.
type RefreshToken struct {
	ID         string    `gorm:"primaryKey" json:"id"`
	Hash       string    `json:"-"`
	UserID     int64     `json:"user_id"`
	ClientID   string    `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	RemoteAddr string    `json:"remote_addr"`
	UserAgent  string    `json:"user_agent"`
}

// TableName implements GORM's tabler.
func (RefreshToken) TableName() string { return "refresh_tokens" }

// MaxClientIDLen is the longest client id accepted (wazo-auth's limit).
const MaxClientIDLen = 1024

// IssueRefresh creates the refresh token of the user for the client id, replacing the one the
// pair had (its raw value cannot be handed out again: only its hash is stored), and returns the
// raw token, a UUID, to hand to the client once.
func (s *Store) IssueRefresh(ctx context.Context, userID int64, clientID, remote, userAgent string) (string, *RefreshToken, error) {
	if clientID == "" || len(clientID) > MaxClientIDLen {
		return "", nil, errors.New("issue refresh token: client id must be 1 to 1024 bytes")
	}
	raw, err := uuid.NewRandom()
	if err != nil {
		return "", nil, fmt.Errorf("issue refresh token: %w", err)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return "", nil, fmt.Errorf("issue refresh token: %w", err)
	}
	now := s.now()
	rt := RefreshToken{
		ID: id.String(), Hash: Hash(raw.String()), UserID: userID, ClientID: clientID,
		CreatedAt: now, LastUsedAt: now, RemoteAddr: truncate(remote, 128), UserAgent: truncate(userAgent, 256),
	}
	err = s.db.Write.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "client_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"id", "hash", "created_at", "last_used_at", "remote_addr", "user_agent"}),
	}).Create(&rt).Error
	if err != nil {
		return "", nil, fmt.Errorf("issue refresh token: %w", err)
	}
	return raw.String(), &rt, nil
}

// UseRefresh checks a raw refresh token presented with a client id and returns its record. An
// unknown token, or one issued for another client id, returns ErrInvalid.
func (s *Store) UseRefresh(ctx context.Context, raw, clientID string) (*RefreshToken, error) {
	if len(raw) != 36 || !Plausible(raw) {
		return nil, ErrInvalid
	}
	hash := Hash(raw)
	var rt RefreshToken
	err := s.db.Read.WithContext(ctx).Where("hash = ?", hash).Take(&rt).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("use refresh token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(rt.Hash), []byte(hash)) != 1 ||
		subtle.ConstantTimeCompare([]byte(rt.ClientID), []byte(clientID)) != 1 {
		return nil, ErrInvalid
	}
	rt.LastUsedAt = s.now()
	if err := s.db.Write.WithContext(ctx).Model(&RefreshToken{}).Where("id = ?", rt.ID).
		Update("last_used_at", rt.LastUsedAt).Error; err != nil {
		return nil, fmt.Errorf("use refresh token: %w", err)
	}
	return &rt, nil
}

// RevokeRefresh deletes the user's refresh token for the client id. Deleting one that does not
// exist is not an error.
func (s *Store) RevokeRefresh(ctx context.Context, userID int64, clientID string) error {
	if err := s.db.Write.WithContext(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).
		Delete(&RefreshToken{}).Error; err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	return nil
}

// deleteRefresh deletes every refresh token of the user.
func (s *Store) deleteRefresh(ctx context.Context, userID int64) error {
	if err := s.db.Write.WithContext(ctx).Where("user_id = ?", userID).Delete(&RefreshToken{}).Error; err != nil {
		return fmt.Errorf("revoke refresh tokens: %w", err)
	}
	return nil
}

// ListRefresh returns the refresh tokens of a user (every user's when userID is 0), oldest
// first, at most 1000.
func (s *Store) ListRefresh(ctx context.Context, userID int64) ([]RefreshToken, error) {
	q := s.db.Read.WithContext(ctx).Order("created_at, id").Limit(1000)
	if userID > 0 {
		q = q.Where("user_id = ?", userID)
	}
	out := []RefreshToken{}
	if err := q.Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list refresh tokens: %w", err)
	}
	return out, nil
}

// DeleteRefresh deletes the user's refresh token for the client id and reports whether there
// was one.
func (s *Store) DeleteRefresh(ctx context.Context, userID int64, clientID string) (bool, error) {
	res := s.db.Write.WithContext(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Delete(&RefreshToken{})
	if res.Error != nil {
		return false, fmt.Errorf("delete refresh token: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}
