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
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
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

	health     *Health
	probeEvery time.Duration
	log        zerolog.Logger
}

// Options tune Open. The zero value is the production setting of a server.
type Options struct {
	// MustExist makes Open fail, naming the path, when the data directory or the database
	// file does not exist yet, instead of creating them (offline commands: backup, user passwd).
	MustExist bool
	// NoMigrate leaves the schema as it is (a backup of a live database must not migrate it
	// under the server); Open then fails if the schema is newer than this binary knows.
	NoMigrate bool
	// HealthProbe is how often a failing database is probed for recovery (see WatchHealth);
	// 0 means 2 s.
	HealthProbe time.Duration
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

// Open opens (creating if needed, unless opts.MustExist) the database in dir and applies every
// pending migration (unless opts.NoMigrate). The data directory is created with mode 0700 and
// the database file, its WAL and its shared-memory file get mode 0600 whatever the umask.
// Errors name the path: a missing database (MustExist), a directory that cannot be written.
func Open(ctx context.Context, dir string, log zerolog.Logger, opts Options) (*DB, error) {
	path := filepath.Join(dir, FileName)
	if opts.MustExist {
		if err := mustExist(dir, path); err != nil {
			return nil, err
		}
	} else if err := PrepareDir(dir, zerolog.Nop()); err != nil { // the server warns (core.NewServer)
		return nil, err
	}
	if err := checkWritable(dir); err != nil {
		return nil, err
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
	if opts.HealthProbe <= 0 {
		opts.HealthProbe = 2 * time.Second
	}
	// SQLite would create the file with 0644 minus the umask; create it private first (an
	// empty file is a valid new database). SQLite gives the WAL and -shm the file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	_ = f.Close()

	health := newHealth(log)
	dsn := DSN(path, opts.BusyTimeout)
	cfg := func() *gorm.Config {
		return &gorm.Config{
			SkipDefaultTransaction: true,
			TranslateError:         true,
			NowFunc:                func() time.Time { return time.Now().UTC() },
			Logger:                 newGormLogger(log, opts.SlowQuery),
		}
	}
	open := func() (*gorm.DB, *sql.DB, error) {
		s, err := sql.Open(sqlite.DriverName, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("open database %s: %w", path, err)
		}
		g, err := gorm.Open(&sqlite.Dialector{Conn: &trackedPool{DB: s, h: health}}, cfg())
		if err != nil {
			_ = s.Close()
			return nil, nil, fmt.Errorf("open database %s: %w", path, err)
		}
		return g, s, nil
	}
	// The writer is opened first: it creates the file and switches it to WAL alone.
	write, wsql, err := open()
	if err != nil {
		return nil, err
	}
	wsql.SetMaxOpenConns(1)
	wsql.SetMaxIdleConns(1)
	wsql.SetConnMaxLifetime(0)
	wsql.SetConnMaxIdleTime(0)

	read, rsql, err := open()
	if err != nil {
		_ = wsql.Close()
		return nil, err
	}
	rsql.SetMaxOpenConns(opts.ReadConns)
	rsql.SetMaxIdleConns(opts.ReadConns)
	rsql.SetConnMaxIdleTime(5 * time.Minute)

	d := &DB{Read: read, Write: write, Path: path, health: health, probeEvery: opts.HealthProbe, log: log}
	if opts.NoMigrate {
		err = d.checkSchemaKnown(ctx)
	} else {
		err = d.Migrate(ctx)
	}
	if err == nil {
		err = privateFiles(path)
	}
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return d, nil
}

// PrepareDir creates the data directory with mode 0700 (whatever the umask) if it does not
// exist, and warns when an existing one is open to other users.
func PrepareDir(dir string, log zerolog.Logger) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("data directory %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("data directory %s is not a directory", dir)
	case st.Mode().Perm()&0o077 != 0:
		log.Warn().Str("dir", dir).Str("mode", fmt.Sprintf("%#o", st.Mode().Perm())).
			Msg("the data directory is open to other users; its files are private (0600), but consider chmod 700")
	}
	return nil
}

// mustExist checks that the data directory and the database in it exist.
func mustExist(dir, path string) error {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("data directory %s does not exist (check --data)", dir)
		}
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no database in %s: %s does not exist (check --data)", dir, path)
		}
		return fmt.Errorf("database %s: %w", path, err)
	}
	return nil
}

// checkWritable creates and removes a file in dir: SQLite needs to create the WAL and
// shared-memory files next to the database, and reports a failure to as "out of memory".
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".gatehouse-write-test-*")
	if err != nil {
		return fmt.Errorf("the data directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("the data directory %s: remove %s: %w", dir, name, err)
	}
	return nil
}

// privateFiles gives the database, its WAL and its shared-memory file mode 0600 when they
// exist with another (a file created by an older version, or by SQLite under another umask).
func privateFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("database file %s: %w", p, err)
		}
		if st.Mode().Perm() != 0o600 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
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
		l.log.Error().Err(err).Dur("elapsed_ms", elapsed).Str("sql", redactSQL(sql)).Msg("db query failed")
	case elapsed > l.slow:
		sql, rows := fc()
		l.log.Warn().Dur("elapsed_ms", elapsed).Int64("rows", rows).Str("sql", redactSQL(sql)).Msg("slow db query")
	}
}
