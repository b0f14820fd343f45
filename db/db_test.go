package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gorm.io/gorm"
)

func openTest(t *testing.T, dir string, log zerolog.Logger, opts Options) *DB {
	t.Helper()
	d, err := Open(context.Background(), dir, log, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func newTestDB(t *testing.T) *DB {
	t.Helper()
	return openTest(t, t.TempDir(), zerolog.Nop(), Options{})
}

func sqlDB(t *testing.T, g *gorm.DB) *sql.DB {
	t.Helper()
	s, err := g.DB()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenPragmasOnBothHandles(t *testing.T) {
	d := newTestDB(t)
	want := map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
		"temp_store":   "2", // MEMORY
	}
	ctx := context.Background()
	for name, g := range map[string]*gorm.DB{"Read": d.Read, "Write": d.Write} {
		s := sqlDB(t, g)
		// Hold several connections at once so that every connection of the pool is checked,
		// not just the one the pool happens to hand out first.
		n := 1
		if name == "Read" {
			n = 3
		}
		var conns []*sql.Conn
		for range n {
			c, err := s.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			for pragma, v := range want {
				var got string
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s conn %d: PRAGMA %s: %v", name, i, pragma, err)
				}
				if !strings.EqualFold(got, v) {
					t.Errorf("%s conn %d: PRAGMA %s = %s, want %s", name, i, pragma, got, v)
				}
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

func TestOpenPoolSizes(t *testing.T) {
	d := newTestDB(t)
	if got := sqlDB(t, d.Write).Stats().MaxOpenConnections; got != 1 {
		t.Errorf("Write MaxOpenConnections = %d, want 1", got)
	}
	if got, want := sqlDB(t, d.Read).Stats().MaxOpenConnections, max(4, 2*runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("Read MaxOpenConnections = %d, want %d", got, want)
	}
	d2 := openTest(t, t.TempDir(), zerolog.Nop(), Options{ReadConns: 3, BusyTimeout: 1500 * time.Millisecond})
	if got := sqlDB(t, d2.Read).Stats().MaxOpenConnections; got != 3 {
		t.Errorf("Read MaxOpenConnections with ReadConns 3 = %d", got)
	}
	var busy int
	if err := d2.Read.Raw("PRAGMA busy_timeout").Scan(&busy).Error; err != nil || busy != 1500 {
		t.Errorf("busy_timeout with BusyTimeout 1.5s = %d, %v", busy, err)
	}
}

func TestDSN(t *testing.T) {
	dsn := DSN("/data/gatehouse.db", 10*time.Second)
	if !strings.HasPrefix(dsn, "/data/gatehouse.db?_pragma=busy_timeout%2810000%29&") {
		t.Errorf("DSN does not start with the path and busy_timeout: %s", dsn)
	}
	if strings.Index(dsn, "busy_timeout") > strings.Index(dsn, "journal_mode") {
		t.Error("busy_timeout must precede journal_mode")
	}
}

func TestMigrationsRecordedAndIdempotent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d, err := Open(ctx, dir, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := d.Read.Raw("SELECT id FROM schema_migrations ORDER BY id").Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range migrations() {
		want = append(want, m.ID)
	}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("schema_migrations = %v, want %v", ids, want)
	}
	v, err := d.SchemaVersion(ctx)
	if err != nil || v != want[len(want)-1] {
		t.Errorf("SchemaVersion = %q, %v; want %q", v, err, want[len(want)-1])
	}
	if err := d.Write.Exec(`INSERT INTO meta(key, value) VALUES ('k', 'v')`).Error; err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Re-opening applies nothing again and keeps the data.
	d2 := openTest(t, dir, zerolog.Nop(), Options{})
	var n int
	if err := d2.Read.Raw("SELECT count(*) FROM schema_migrations").Scan(&n).Error; err != nil || n != len(want) {
		t.Errorf("after reopen: %d migrations recorded (%v), want %d", n, err, len(want))
	}
	var val string
	if err := d2.Read.Raw("SELECT value FROM meta WHERE key = 'k'").Scan(&val).Error; err != nil || val != "v" {
		t.Errorf("data lost on reopen: %q, %v", val, err)
	}
	if err := d2.Migrate(ctx); err != nil {
		t.Errorf("second Migrate: %v", err)
	}
}

func insertUser(t *testing.T, d *DB, name string) int64 {
	t.Helper()
	now := time.Now().UTC()
	res := d.Write.Exec(`INSERT INTO users(username, created_at, updated_at) VALUES (?, ?, ?)`, name, now, now)
	if res.Error != nil {
		t.Fatalf("insert user %s: %v", name, res.Error)
	}
	var id int64
	if err := d.Write.Raw(`SELECT id FROM users WHERE username = ?`, name).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

func insertToken(d *DB, id string, userID int64) error {
	now := time.Now().UTC()
	return d.Write.Exec(`INSERT INTO tokens(id, hash, user_id, dialect, issued_at, expires_at, idle_seconds, last_used_at)
		VALUES (?, ?, ?, 'leosac', ?, ?, 0, ?)`, id, "hash-"+id, userID, now, now.Add(time.Hour), now).Error
}

func TestForeignKeysCascadeAndTranslate(t *testing.T) {
	d := newTestDB(t)
	alice := insertUser(t, d, "alice")
	bob := insertUser(t, d, "bob")
	for i, owner := range []int64{alice, alice, bob} {
		if err := insertToken(d, fmt.Sprint("t", i), owner); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Write.Exec(`DELETE FROM users WHERE id = ?`, alice).Error; err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := d.Read.Raw(`SELECT id FROM tokens ORDER BY id`).Scan(&left).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "t2" {
		t.Errorf("tokens after deleting alice = %v, want [t2] (ON DELETE CASCADE)", left)
	}

	// A token for a user that does not exist violates the foreign key; TranslateError maps it.
	err := insertToken(d, "orphan", 9999)
	if !errors.Is(err, gorm.ErrForeignKeyViolated) {
		t.Errorf("orphan token insert = %v, want gorm.ErrForeignKeyViolated", err)
	}
	// Usernames are unique, case-insensitively.
	now := time.Now().UTC()
	err = d.Write.Exec(`INSERT INTO users(username, created_at, updated_at) VALUES ('BOB', ?, ?)`, now, now).Error
	if !errors.Is(err, gorm.ErrDuplicatedKey) {
		t.Errorf("duplicate username insert = %v, want gorm.ErrDuplicatedKey", err)
	}
}

type timeRow struct {
	ID        int64 `gorm:"primaryKey"`
	Username  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (timeRow) TableName() string { return "users" }

func TestTimeRoundTrip(t *testing.T) {
	d := newTestDB(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	tests := []struct {
		name string
		in   time.Time
	}{
		{"utc nanoseconds", time.Date(2026, 3, 29, 1, 59, 59, 123456789, time.UTC)},
		{"utc whole second", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"local zone", time.Date(2026, 10, 25, 2, 30, 0, 987654321, paris)},
		{"now with monotonic", time.Now()},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row := timeRow{Username: fmt.Sprint("u", i), CreatedAt: tc.in, UpdatedAt: tc.in}
			if err := d.Write.Create(&row).Error; err != nil {
				t.Fatal(err)
			}
			var back timeRow
			if err := d.Read.Take(&back, row.ID).Error; err != nil {
				t.Fatal(err)
			}
			if !back.CreatedAt.Equal(tc.in) {
				t.Errorf("round trip %v → %v (diff %v)", tc.in, back.CreatedAt, back.CreatedAt.Sub(tc.in))
			}
			if !back.CreatedAt.UTC().Truncate(time.Microsecond).Equal(tc.in.UTC().Truncate(time.Microsecond)) {
				t.Errorf("round trip loses more than sub-microsecond precision")
			}
			var raw string
			if err := d.Read.Raw(`SELECT CAST(created_at AS TEXT) FROM users WHERE id = ?`, row.ID).Scan(&raw).Error; err != nil {
				t.Fatal(err)
			}
			t.Logf("stored as %q, read back as %v (location %v)", raw, back.CreatedAt, back.CreatedAt.Location())
		})
	}
}

func TestBackupWhileWriting(t *testing.T) {
	d := newTestDB(t)
	ctx := context.Background()
	var inserted atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := d.Write.Exec(`INSERT INTO meta(key, value) VALUES (?, ?)`, fmt.Sprint("k", i), "v").Error; err != nil {
				writerDone <- err
				return
			}
			inserted.Add(1)
		}
	}()
	for inserted.Load() < 50 { // let the writer get going
		time.Sleep(time.Millisecond)
	}
	before := inserted.Load()
	backupDir := t.TempDir()
	path := filepath.Join(backupDir, FileName)
	if err := d.Backup(ctx, path); err != nil {
		t.Fatalf("Backup while writing: %v", err)
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer failed during backup: %v", err)
	}
	if inserted.Load() == before {
		t.Log("note: the writer made no progress during the backup")
	}

	b := openTest(t, backupDir, zerolog.Nop(), Options{})
	var n int64
	if err := b.Read.Raw(`SELECT count(*) FROM meta`).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n < before || n > inserted.Load() {
		t.Errorf("backup holds %d rows, want between %d and %d", n, before, inserted.Load())
	}
	var check string
	if err := b.Read.Raw(`PRAGMA integrity_check`).Scan(&check).Error; err != nil || check != "ok" {
		t.Errorf("backup integrity_check = %q, %v", check, err)
	}
	if v, err := b.SchemaVersion(ctx); err != nil || v == "" {
		t.Errorf("backup SchemaVersion = %q, %v", v, err)
	}

	// An existing path is refused, and left alone.
	info, _ := os.Stat(path)
	if err := d.Backup(ctx, path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Backup to an existing path = %v, want 'already exists'", err)
	}
	if info2, _ := os.Stat(path); info2.Size() != info.Size() || !info2.ModTime().Equal(info.ModTime()) {
		t.Error("Backup touched the existing file")
	}
}

func TestConcurrentWritersNeverLocked(t *testing.T) {
	d := newTestDB(t)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := d.Write.Exec(`INSERT INTO meta(key, value) VALUES (?, ?)`,
					fmt.Sprintf("w%d-%d", w, i), "v").Error; err != nil {
					errs <- err
				}
			}
		})
	}
	// Readers run alongside.
	for range 2 {
		wg.Go(func() {
			for range 100 {
				var n int
				if err := d.Read.Raw(`SELECT count(*) FROM meta`).Scan(&n).Error; err != nil {
					errs <- err
				}
			}
		})
	}
	// Read-then-write transactions through Write cannot deadlock or hit SQLITE_BUSY either.
	for w := range 2 {
		wg.Go(func() {
			for i := range 50 {
				err := d.Write.Transaction(func(tx *gorm.DB) error {
					var n int
					if err := tx.Raw(`SELECT count(*) FROM meta`).Scan(&n).Error; err != nil {
						return err
					}
					return tx.Exec(`INSERT INTO meta(key, value) VALUES (?, ?)`, fmt.Sprintf("tx%d-%d", w, i), fmt.Sprint(n)).Error
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			t.Fatal("database is locked under concurrent writes")
		}
	}
	var n int
	if err := d.Read.Raw(`SELECT count(*) FROM meta`).Scan(&n).Error; err != nil || n != writers*each+100 {
		t.Errorf("rows = %d, %v; want %d", n, err, writers*each+100)
	}
}

func TestOptimize(t *testing.T) {
	d := newTestDB(t)
	if err := d.Optimize(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFailsOnUnusableDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := Open(context.Background(), f, zerolog.Nop(), Options{}); err == nil {
		_ = d.Close()
		t.Fatal("Open on a regular file as data directory succeeded")
	}
}

func TestRedactSQL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no quotes", "SELECT * FROM users WHERE id = 42 LIMIT 1", "SELECT * FROM users WHERE id = 42 LIMIT 1"},
		{"empty", "", ""},
		{"single literal", "SELECT * FROM users WHERE username = 'alice'", "SELECT * FROM users WHERE username = '?'"},
		{"numbers kept", "UPDATE tokens SET idle_seconds = 1200 WHERE user_id = 7 AND hash = 'ab12'",
			"UPDATE tokens SET idle_seconds = 1200 WHERE user_id = 7 AND hash = '?'"},
		{"two literals", "INSERT INTO meta VALUES ('k', 'v') -- 3", "INSERT INTO meta VALUES ('?', '?') -- 3"},
		{"escaped quote", "SELECT 1 WHERE name = 'O''Brien' AND id = 5", "SELECT 1 WHERE name = '?' AND id = 5"},
		{"only escaped quotes", "SELECT '''' , 9", "SELECT '?' , 9"},
		{"empty literal", "SELECT '' , 9", "SELECT '?' , 9"},
		{"adjacent literals", "SELECT 'a''b''c', 'd'", "SELECT '?', '?'"},
		{"unterminated", "SELECT 'secret", "SELECT '?'"},
		{"backticks kept", "SELECT `users`.`id` FROM `users` WHERE `id` = 3", "SELECT `users`.`id` FROM `users` WHERE `id` = 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactSQL(tc.in); got != tc.want {
				t.Errorf("redactSQL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactSQLDoubleQuotedLiterals(t *testing.T) {
	in := `SELECT * FROM tokens WHERE hash = "9f86d081884c7d65" AND user_id = 7`
	if got := redactSQL(in); strings.Contains(got, "9f86d081884c7d65") {
		t.Errorf("redactSQL(%q) = %q: the value is not redacted", in, got)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQueryLogRedactsValues checks the end-to-end promise of the GORM logger: SQL is logged,
// bound values are not.
func TestQueryLogRedactsValues(t *testing.T) {
	var buf syncBuffer
	// A 1 ns slow-query threshold logs every statement.
	d := openTest(t, t.TempDir(), zerolog.New(&buf), Options{SlowQuery: time.Nanosecond})
	const secret = "f3c1b2a9secrethashvalue"
	var rows []map[string]any
	if err := d.Read.Table("tokens").Where("hash = ?", secret).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	_ = d.Write.Exec(`INSERT INTO tokens(id, hash, user_id, dialect, issued_at, expires_at, idle_seconds, last_used_at)
		VALUES (?, ?, 424242, 'leosac', ?, ?, 0, ?)`, "id1", secret, now, now, now).Error // FK error: logged as failed query
	log := buf.String()
	if !strings.Contains(log, "tokens") {
		t.Fatalf("no query logged at all:\n%s", log)
	}
	if strings.Contains(log, secret) {
		t.Errorf("the log contains the bound value %q:\n%s", secret, log)
	}
}
