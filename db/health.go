package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"gorm.io/gorm"
)

// SQLite primary result codes that mean the storage, not the statement, failed.
const (
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteCantOpen = 14
	sqliteNotADB   = 26
)

// StorageError reports whether err comes from SQLite failing to read or write its files (disk
// full, I/O error, read-only or unopenable file, corruption) rather than from the statement
// (constraint, syntax, busy).
func StorageError(err error) bool {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // extended codes keep the primary one in the low byte
	case sqliteReadOnly, sqliteIOErr, sqliteCorrupt, sqliteFull, sqliteCantOpen, sqliteNotADB:
		return true
	}
	return false
}

// HealthStatus is the database's health as its writes saw it.
type HealthStatus struct {
	// OK is false from the first storage error until a probe (see WatchHealth) commits again.
	OK bool
	// Reason is the storage error that made the database fail, when not OK.
	Reason string
	// Since is when the database started failing, when not OK.
	Since time.Time
	// Errors counts the storage errors seen since Open.
	Errors uint64
}

// Health tracks the storage errors of every statement and commit on the database's handles
// (errors met while iterating a result's rows are not seen; writes surface theirs at the
// statement or at the commit).
// One error makes the database failing; only a successful probe (WatchHealth) makes it healthy
// again, so that a write squeezing into space freed a moment ago does not hide a full disk.
type Health struct {
	log    zerolog.Logger
	errors atomic.Uint64
	// failing mirrors status.OK == false, for the hot path.
	failing atomic.Bool

	mu     sync.Mutex
	status HealthStatus
}

func newHealth(log zerolog.Logger) *Health {
	return &Health{log: log, status: HealthStatus{OK: true}}
}

// observe records the outcome of a statement or commit: storage errors make the database
// failing (logged once, at the transition); other errors and successes change nothing.
func (h *Health) observe(err error) {
	if err == nil || !StorageError(err) {
		return
	}
	h.errors.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.status.OK {
		h.status.Reason = err.Error()
		return
	}
	h.status = HealthStatus{OK: false, Reason: err.Error(), Since: time.Now().UTC()}
	h.failing.Store(true)
	h.log.Error().Err(err).Msg("database cannot commit: health is failing until a probe write succeeds")
}

// recovered marks the database healthy after a successful probe.
func (h *Health) recovered() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status.OK {
		return
	}
	h.log.Info().Str("reason", h.status.Reason).Dur("failed_for_ms", time.Since(h.status.Since)).
		Msg("database commits again: health is ok")
	h.status = HealthStatus{OK: true}
	h.failing.Store(false)
}

// Health returns the database's health.
func (d *DB) Health() HealthStatus {
	if d.health == nil { // not opened by Open
		return HealthStatus{OK: true}
	}
	d.health.mu.Lock()
	st := d.health.status
	d.health.mu.Unlock()
	st.Errors = d.health.errors.Load()
	return st
}

// probeReserve is the free space a probe must be able to allocate in the data directory.
const probeReserve = 1 << 20

// WatchHealth probes a failing database every Options.HealthProbe until ctx is done: the
// probe writes and removes a 1 MiB file next to the database (the disk has room again),
// checkpoints the WAL (so that the next commit needs new space rather than a reused WAL) and
// commits a small write. When all succeed, the database is healthy again. A healthy database
// is not probed: its own writes report failures.
func (d *DB) WatchHealth(ctx context.Context) {
	if d.health == nil {
		return
	}
	t := time.NewTicker(d.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.health.failing.Load() {
			continue
		}
		if err := d.probe(ctx); err != nil {
			if ctx.Err() == nil {
				d.log.Debug().Err(err).Msg("database health probe failed")
			}
			continue
		}
		d.health.recovered()
	}
}

func (d *DB) probe(ctx context.Context) error {
	path := filepath.Join(filepath.Dir(d.Path), ".gatehouse-health-probe")
	err := writeProbe(path)
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("reserve %d bytes in the data directory: %w", probeReserve, err)
	}
	w := d.Write.WithContext(ctx)
	if err := w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`).Error; err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	return w.Transaction(func(tx *gorm.DB) error {
		return tx.Exec(`INSERT INTO meta(key, value) VALUES ('health_probe', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, time.Now().UTC().Format(time.RFC3339Nano)).Error
	})
}

func writeProbe(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, probeReserve))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// trackedPool is the connection pool GORM is given: a *sql.DB whose statement and commit
// errors are reported to Health.
type trackedPool struct {
	*sql.DB
	h *Health
}

// GetDBConn implements gorm.GetDBConnector, for gorm.DB.DB().
func (p *trackedPool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

func (p *trackedPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := p.DB.ExecContext(ctx, query, args...)
	p.h.observe(err)
	return r, err
}

func (p *trackedPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := p.DB.QueryContext(ctx, query, args...)
	p.h.observe(err)
	return r, err
}

func (p *trackedPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r := p.DB.QueryRowContext(ctx, query, args...)
	p.h.observe(r.Err())
	return r
}

// BeginTx implements gorm.ConnPoolBeginner.
func (p *trackedPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	p.h.observe(err)
	if err != nil {
		return nil, err
	}
	return &trackedTx{Tx: tx, h: p.h}, nil
}

// trackedTx is a transaction whose statement and commit errors are reported to Health.
type trackedTx struct {
	*sql.Tx
	h *Health
}

func (t *trackedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := t.Tx.ExecContext(ctx, query, args...)
	t.h.observe(err)
	return r, err
}

func (t *trackedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := t.Tx.QueryContext(ctx, query, args...)
	t.h.observe(err)
	return r, err
}

func (t *trackedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r := t.Tx.QueryRowContext(ctx, query, args...)
	t.h.observe(r.Err())
	return r
}

func (t *trackedTx) Commit() error {
	err := t.Tx.Commit()
	t.h.observe(err)
	return err
}

var (
	_ gorm.ConnPool         = (*trackedPool)(nil)
	_ gorm.ConnPoolBeginner = (*trackedPool)(nil)
	_ gorm.GetDBConnector   = (*trackedPool)(nil)
	_ gorm.Tx               = (*trackedTx)(nil)
)
