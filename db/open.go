// Package db opens gatehouse's SQLite database and owns its schema history.
//
// The database is one file, gatehouse.db, in the data directory, opened twice through GORM
// and the pure-Go glebarez/sqlite driver: Read, a pool of connections for queries, and Write,
// a single connection through which every write and every read-then-write transaction goes.
// SQLite allows one writer at a time; funnelling writes through one connection turns lock
// contention ("database is locked") into an orderly queue. Both handles use the same pragmas:
// WAL journal, a busy timeout, foreign keys on, synchronous NORMAL.
package db

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/rs/zerolog"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// FileName is the database file's name inside the data directory.
const FileName = "gatehouse.db"

// DB holds the two handles on the database file.
type DB struct {
	// Read is a pool for queries. Never write through it.
	Read *gorm.DB
	// Write is the single writer connection. Inside Write.Transaction use only the tx handle:
	// touching Write again from inside would wait for the one connection forever.
	Write *gorm.DB
	// Path is the database file.
	Path string
}

// Options tune Open. The zero value is the production setting.
type Options struct {
	// ReadConns is the size of the read pool; 0 means max(4, 2×GOMAXPROCS).
	ReadConns int
	// BusyTimeout is how long a connection waits on a lock; 0 means 10 s.
	BusyTimeout time.Duration
	// SlowQuery is the threshold above which queries are logged at warn; 0 means 200 ms.
	SlowQuery time.Duration
}

// DSN returns the data source name for the file with gatehouse's pragmas. busy_timeout comes
// first so that the connection already waits while another one switches the journal to WAL.
func DSN(path string, busy time.Duration) string {
	q := url.Values{}
	for _, p := range []string{
		fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(NORMAL)",
		"foreign_keys(1)",
		"temp_store(MEMORY)",
		"journal_size_limit(67108864)",
	} {
		q.Add("_pragma", p)
	}
	return path + "?" + q.Encode()
}

// Open opens (creating if needed) the database in dir and applies every pending migration.
func Open(ctx context.Context, dir string, log zerolog.Logger, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.SlowQuery <= 0 {
		opts.SlowQuery = 200 * time.Millisecond
	}
	path := filepath.Join(dir, FileName)
	dsn := DSN(path, opts.BusyTimeout)
	cfg := func() *gorm.Config {
		return &gorm.Config{
			SkipDefaultTransaction: true,
			TranslateError:         true,
			NowFunc:                func() time.Time { return time.Now().UTC() },
			Logger:                 newGormLogger(log, opts.SlowQuery),
		}
	}
	// The writer is opened first: it creates the file and switches it to WAL alone.
	write, err := gorm.Open(sqlite.Open(dsn), cfg())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	wsql, err := write.DB()
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	wsql.SetMaxOpenConns(1)
	wsql.SetMaxIdleConns(1)
	wsql.SetConnMaxLifetime(0)
	wsql.SetConnMaxIdleTime(0)

	read, err := gorm.Open(sqlite.Open(dsn), cfg())
	if err != nil {
		_ = wsql.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	rsql, err := read.DB()
	if err != nil {
		_ = wsql.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	rsql.SetMaxOpenConns(opts.ReadConns)
	rsql.SetMaxIdleConns(opts.ReadConns)
	rsql.SetConnMaxIdleTime(5 * time.Minute)

	d := &DB{Read: read, Write: write, Path: path}
	if err := d.Migrate(ctx); err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes both handles.
func (d *DB) Close() error {
	var errs []error
	for _, g := range []*gorm.DB{d.Read, d.Write} {
		if s, err := g.DB(); err == nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Backup writes a consistent snapshot of the live database to path with VACUUM INTO. It reads
// through the read pool, so it runs while the server keeps writing. path must not exist.
func (d *DB) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup: %s already exists", path)
	}
	if err := d.Read.WithContext(ctx).Exec("VACUUM INTO ?", path).Error; err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}

// Optimize checkpoints the WAL and lets SQLite refresh its statistics; run it now and then.
func (d *DB) Optimize(ctx context.Context) error {
	w := d.Write.WithContext(ctx)
	if err := w.Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	if err := w.Exec("PRAGMA optimize").Error; err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	return nil
}

// gormLogger adapts GORM's logger to zerolog: errors (except record-not-found) at error,
// slow queries at warn, everything else at trace. SQL text is logged, bound values are not —
// they may be secrets.
type gormLogger struct {
	log  zerolog.Logger
	slow time.Duration
}

func newGormLogger(log zerolog.Logger, slow time.Duration) logger.Interface {
	return gormLogger{log: log, slow: slow}
}

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l gormLogger) Info(_ context.Context, msg string, args ...any) {
	l.log.Info().Msgf(msg, args...)
}
func (l gormLogger) Warn(_ context.Context, msg string, args ...any) {
	l.log.Warn().Msgf(msg, args...)
}
func (l gormLogger) Error(_ context.Context, msg string, args ...any) {
	l.log.Error().Msgf(msg, args...)
}

func (l gormLogger) Trace(_ context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, context.Canceled):
		sql, _ := fc()
		l.log.Error().Err(err).Dur("elapsed", elapsed).Str("sql", redactSQL(sql)).Msg("db query failed")
	case elapsed > l.slow:
		sql, rows := fc()
		l.log.Warn().Dur("elapsed", elapsed).Int64("rows", rows).Str("sql", redactSQL(sql)).Msg("slow db query")
	}
}
