package eventlog

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"time"

	"gatehouse/db"
)

// This file holds what the notifiers that read the log with a cursor of their own (webhook,
// smtp) share: their cursor in the meta table and their retry back-off.

// ErrCursorUnreadable is returned by ReadCursor when the saved value is not a seq.
var ErrCursorUnreadable = errors.New("saved cursor is unreadable")

// ReadCursor returns the cursor saved in the meta table under key: the seq of the last event
// its reader has dealt with. found is false when none is saved. A value that is not a
// non-negative integer is reported as ErrCursorUnreadable (found false).
func ReadCursor(ctx context.Context, d *db.DB, key string) (seq int64, found bool, err error) {
	var v string
	if err := d.Read.WithContext(ctx).Raw(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v).Error; err != nil {
		return 0, false, fmt.Errorf("read cursor %s: %w", key, err)
	}
	if v == "" {
		return 0, false, nil
	}
	seq, err = strconv.ParseInt(v, 10, 64)
	if err != nil || seq < 0 {
		return 0, false, fmt.Errorf("cursor %s: %w", key, ErrCursorUnreadable)
	}
	return seq, true, nil
}

// SaveCursor writes seq as the cursor saved under key.
func SaveCursor(ctx context.Context, d *db.DB, key string, seq int64) error {
	err := d.Write.WithContext(ctx).Exec(`INSERT INTO meta(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, strconv.FormatInt(seq, 10)).Error
	if err != nil {
		return fmt.Errorf("save cursor %s: %w", key, err)
	}
	return nil
}

// Backoff returns the delay before attempt+1 (attempt ≥ 1): base·2^(attempt−1), at most
// ceiling, with jitter (between half and all of it).
func Backoff(base, ceiling time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + mrand.N(d-half+1)
}

// Sleep waits d or until ctx is done; it reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
