package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Prune deletes the events older than before, oldest first, in transactions of at most batch
// rows (so the single writer is never held for long), keeping event_counts and the purge
// marker (Purged) in step. It returns how many events it deleted.
func (l *Log) Prune(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 5000
	}
	var total int64
	for {
		n, err := l.pruneBatch(ctx, before, batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

func (l *Log) pruneBatch(ctx context.Context, before time.Time, batch int) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var deleted int64
	var upTo int64
	err := l.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Through the time index (seq order follows time order: events are appended with the
		// current time under one lock), so only the rows to delete are read.
		if err := tx.Raw(`SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM events INDEXED BY events_time
			WHERE time < ? ORDER BY time LIMIT ?)`, before.UTC(), batch).Scan(&upTo).Error; err != nil {
			return err
		}
		if upTo == 0 {
			return nil
		}
		var counts []struct {
			Kind string
			N    int64
		}
		// "+kind" keeps SQLite off the kind index: the seq range (the rowid) bounds the scan.
		if err := tx.Raw(`SELECT kind, COUNT(*) AS n FROM events WHERE seq <= ? AND +kind <> '' GROUP BY kind`, upTo).
			Scan(&counts).Error; err != nil {
			return err
		}
		res := tx.Exec(`DELETE FROM events WHERE seq <= ?`, upTo)
		if res.Error != nil {
			return res.Error
		}
		deleted = res.RowsAffected
		for _, c := range counts {
			if err := tx.Exec(`UPDATE event_counts SET n = MAX(n - ?, 0) WHERE kind = ?`, c.N, c.Kind).Error; err != nil {
				return err
			}
		}
		return tx.Exec(`INSERT INTO meta(key, value) VALUES ('events_purged_up_to', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, strconv.FormatInt(upTo, 10)).Error
	})
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	if upTo > l.purged.Load() {
		l.purged.Store(upTo)
	}
	return deleted, nil
}
