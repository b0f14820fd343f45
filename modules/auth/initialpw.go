package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"gatehouse/core"
	"gatehouse/db"
)

// initialPasswordKey is the meta row that holds the ID of the user whose password is still the
// one generated on first start (and written to core.InitialPasswordFile). It is set by the
// bootstrap and removed by the first change of that user's password.
const initialPasswordKey = "initial_password_user"

// InitialPasswordUser returns the ID of the user still on the generated first-start password,
// or 0 when there is none.
func InitialPasswordUser(ctx context.Context, d *db.DB) (int64, error) {
	var v string
	if err := d.Read.WithContext(ctx).Raw(`SELECT value FROM meta WHERE key = ?`, initialPasswordKey).Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("read %s: %w", initialPasswordKey, err)
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta %s = %q: %w", initialPasswordKey, v, err)
	}
	return id, nil
}

func setInitialPasswordUser(ctx context.Context, d *db.DB, userID int64) error {
	return d.Write.WithContext(ctx).Exec(`INSERT INTO meta(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, initialPasswordKey, strconv.FormatInt(userID, 10)).Error
}

// PasswordReplaced is called after userID's password was changed (password_change over the
// API, `gatehouse user passwd`). If that user was still on the generated first-start password,
// the mark is removed and <dataDir>/initial-admin-password deleted: the file no longer holds a
// working password, and it should not linger as one. It reports whether it did so.
func PasswordReplaced(ctx context.Context, d *db.DB, dataDir string, userID int64) (bool, error) {
	res := d.Write.WithContext(ctx).Exec(`DELETE FROM meta WHERE key = ? AND value = ?`,
		initialPasswordKey, strconv.FormatInt(userID, 10))
	if res.Error != nil {
		return false, fmt.Errorf("clear %s: %w", initialPasswordKey, res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	p := filepath.Join(dataDir, core.InitialPasswordFile)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("delete %s: %w", p, err)
	}
	return true, nil
}

// passwordReplaced is PasswordReplaced for the running module: it also forgets the mark that
// whoami reports. Failures are logged, not returned: the password itself was changed.
func (m *Module) passwordReplaced(ctx context.Context, userID int64) {
	if m.initialUser.Load() != userID {
		return
	}
	done, err := PasswordReplaced(ctx, m.db, m.dataDir, userID)
	if err != nil {
		m.log.Error().Err(err).Int64("user_id", userID).Msg("the initial admin password was changed but its file or mark could not be removed")
	}
	if done || err == nil {
		m.initialUser.CompareAndSwap(userID, 0)
	}
	if done && err == nil {
		m.log.Info().Int64("user_id", userID).Str("file", core.InitialPasswordFile).
			Msg("the generated initial password was changed; its file is deleted")
	}
}
