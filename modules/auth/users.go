package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/db"
)

// User is a person or operator account as stored in the users table.
type User struct {
	ID              int64      `gorm:"primaryKey"`
	Username        string     // lower case, [a-z0-9._-]
	PasswordHash    string     // argon2id PHC string; "" = cannot log in
	Firstname       string     //
	Lastname        string     //
	Email           string     //
	Rank            core.Rank  //
	ValidityEnabled bool       //
	ValidityStart   *time.Time // nil = no lower bound
	ValidityEnd     *time.Time // nil = no upper bound
	Version         int64      // bumped on every change
	CredGen         int64      // credential generation: bumped by every password change, disable, delete
	CreatedAt       time.Time  //
	UpdatedAt       time.Time  //
}

// TableName implements GORM's tabler.
func (User) TableName() string { return "users" }

// ValidAt reports whether the account is enabled and inside its validity window at t.
func (u *User) ValidAt(t time.Time) bool {
	if !u.ValidityEnabled {
		return false
	}
	if u.ValidityStart != nil && t.Before(*u.ValidityStart) {
		return false
	}
	if u.ValidityEnd != nil && t.After(*u.ValidityEnd) {
		return false
	}
	return true
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// NormalizeUsername checks a username against Leosac's rules (ASCII letters, digits, '.', '_',
// '-'; here also 1..128 characters) and returns it in lower case.
func NormalizeUsername(name string) (string, error) {
	if !usernamePattern.MatchString(name) {
		return "", fmt.Errorf("Invalid username: %q (use 1 to 128 of A-Z a-z 0-9 . _ -)", name)
	}
	return strings.ToLower(name), nil
}

// Users reads and writes the users table and keeps a cache of users by id, so that resolving
// the caller of each API call costs no database read. Every write through Users invalidates the
// cache entry; code that writes users elsewhere must call Invalidate.
type Users struct {
	db *db.DB

	mu    sync.RWMutex
	cache map[int64]User
	gen   uint64 // bumped by every Invalidate: a load that raced one is not cached
}

// NewUsers returns a Users on the database.
func NewUsers(d *db.DB) *Users { return &Users{db: d, cache: make(map[int64]User)} }

// ErrNoUser is returned when a user does not exist.
var ErrNoUser = errors.New("no such user")

// Get returns the user with the given id, from the cache when possible.
func (us *Users) Get(ctx context.Context, id int64) (User, error) {
	us.mu.RLock()
	u, ok := us.cache[id]
	gen := us.gen
	us.mu.RUnlock()
	if ok {
		return u, nil
	}
	err := us.db.Read.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return User{}, ErrNoUser
	}
	if err != nil {
		return User{}, fmt.Errorf("load user %d: %w", id, err)
	}
	us.mu.Lock()
	if us.gen == gen { // no invalidation since the read began: the row is current
		if len(us.cache) > 100_000 {
			clear(us.cache)
		}
		us.cache[id] = u
	}
	us.mu.Unlock()
	return u, nil
}

// ByUsername returns the user with the given name (case-insensitive), read from the database.
func (us *Users) ByUsername(ctx context.Context, name string) (User, error) {
	var u User
	err := us.db.Read.WithContext(ctx).Where("username = ?", strings.ToLower(name)).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return User{}, ErrNoUser
	}
	if err != nil {
		return User{}, fmt.Errorf("load user %q: %w", name, err)
	}
	return u, nil
}

// Count returns the number of users.
func (us *Users) Count(ctx context.Context) (int64, error) {
	var n int64
	err := us.db.Read.WithContext(ctx).Model(&User{}).Count(&n).Error
	return n, err
}

// Create inserts a user; the username is normalised.
func (us *Users) Create(ctx context.Context, u *User) error {
	name, err := NormalizeUsername(u.Username)
	if err != nil {
		return err
	}
	u.Username = name
	if u.Version == 0 {
		u.Version = 1
	}
	if err := us.db.Write.WithContext(ctx).Create(u).Error; err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	us.Invalidate(u.ID)
	return nil
}

// SetPasswordHash stores a new password hash for the user (a password change): it bumps the
// user's credential generation, so that a login that verified the old password and has not yet
// issued its token gets none.
func (us *Users) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	res := us.db.Write.WithContext(ctx).Model(&User{}).Where("id = ?", id).Updates(map[string]any{
		"password_hash": hash,
		"version":       gorm.Expr("version + 1"),
		"cred_gen":      gorm.Expr("cred_gen + 1"),
		"updated_at":    time.Now().UTC(),
	})
	if res.Error != nil {
		return fmt.Errorf("set password of user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNoUser
	}
	us.Invalidate(id)
	return nil
}

// ReplacePasswordHash stores a new hash of the same password (a rehash with new parameters)
// if the stored hash is still old: it does not bump the credential generation, and a password
// changed meanwhile is left alone. It reports whether the hash was replaced.
func (us *Users) ReplacePasswordHash(ctx context.Context, id int64, old, hash string) (bool, error) {
	res := us.db.Write.WithContext(ctx).Model(&User{}).Where("id = ? AND password_hash = ?", id, old).Updates(map[string]any{
		"password_hash": hash,
		"version":       gorm.Expr("version + 1"),
		"updated_at":    time.Now().UTC(),
	})
	if res.Error != nil {
		return false, fmt.Errorf("rehash password of user %d: %w", id, res.Error)
	}
	us.Invalidate(id)
	return res.RowsAffected > 0, nil
}

// ErrCredentialsChanged is returned by CheckCredGen when the user's credentials changed (or
// the user went) since the generation was read.
var ErrCredentialsChanged = errors.New("credentials changed")

// CheckCredGen returns ErrCredentialsChanged unless the user exists with credential generation
// gen. Run it in the transaction that acts on a credential check (issuing a token), so that the
// check and the action commit together or not at all.
func CheckCredGen(tx *gorm.DB, id, gen int64) error {
	var cur []int64
	if err := tx.Raw(`SELECT cred_gen FROM users WHERE id = ?`, id).Scan(&cur).Error; err != nil {
		return fmt.Errorf("read credential generation of user %d: %w", id, err)
	}
	if len(cur) != 1 || cur[0] != gen {
		return ErrCredentialsChanged
	}
	return nil
}

// Generation changes whenever a user is invalidated (changed, disabled, deleted).
func (us *Users) Generation() uint64 {
	us.mu.RLock()
	defer us.mu.RUnlock()
	return us.gen
}

// Invalidate drops a user from the cache; the next Get reads the database.
func (us *Users) Invalidate(id int64) {
	us.mu.Lock()
	delete(us.cache, id)
	us.gen++
	us.mu.Unlock()
}
