package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
)

// lockOffline takes the lock of an existing data directory for an offline command that writes,
// or explains why it cannot: the directory does not exist, or a server holds it (then the
// error names alternative, what to do instead).
func lockOffline(dir, alternative string) (*db.DirLock, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data directory %s does not exist (check --data)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data directory %s is not a directory", dir)
	}
	l, err := db.LockDir(dir)
	if errors.Is(err, db.ErrLocked) {
		return nil, fmt.Errorf("%w; %s", err, alternative)
	}
	return l, err
}

// backup writes one archive (db.WriteArchive) of the database and of the files of
// core.DataFiles to file, which must not exist, with mode 0600. It does not take the data
// directory's lock: the snapshot is consistent while a server writes.
func backup(ctx context.Context, file string, args []string, stdout, stderr io.Writer, getenv func(string) string) (err error) {
	cfg, rest, err := loadConfig(args, stderr, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	d, err := db.Open(ctx, cfg.Data, zerolog.New(stderr).Level(zerolog.WarnLevel), db.Options{MustExist: true, NoMigrate: true})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s already exists", file)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(file)
		}
	}()
	if err := f.Chmod(0o600); err != nil { // whatever the umask
		return fmt.Errorf("backup: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	m, err := d.WriteArchive(ctx, bw, cfg.Data, core.DataFiles(), filepath.Dir(file), core.Version)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backup: write %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: write %s: %w", file, err)
	}
	names := make([]string, len(m.Files))
	for i, mf := range m.Files {
		names[i] = mf.Name
	}
	fmt.Fprintf(stdout, "backup written to %s: %s (schema %s); it holds password hashes and keys: keep it private\n",
		file, strings.Join(names, ", "), m.SchemaVersion)
	return nil
}

// restore installs a backup archive in the data directory: it checks the archive (manifest,
// sizes and SHA-256, PRAGMA integrity_check, a schema this binary knows) in a staging
// directory, then moves the database and keys in place. It refuses while a server holds the
// data directory, and refuses a directory that already holds files unless --force, which
// replaces the database (and its WAL) and the files of core.DataFiles.
func restore(ctx context.Context, file string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fl := newFlags(stderr)
	force := fl.fs.Bool("force", false, "replace the database and keys of a data directory that has some")
	if err := fl.fs.Parse(args); err != nil {
		return usageError{err}
	}
	cfg, rest, err := loadConfig(withoutFlag(args, "force"), stderr, getenv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	in, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	log := zerolog.New(stderr).Level(zerolog.WarnLevel)
	if err := db.PrepareDir(cfg.Data, log); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	lock, err := lockOffline(cfg.Data, "stop the server before restoring (a restore replaces the database under it)")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer lock.Unlock()
	entries, err := os.ReadDir(cfg.Data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var present []string
	for _, e := range entries {
		if e.Name() != db.LockFile {
			present = append(present, e.Name())
		}
	}
	if len(present) > 0 && !*force {
		return fmt.Errorf("restore: the data directory %s is not empty (%s): restore into an empty directory, "+
			"or pass --force to replace its database and keys", cfg.Data, strings.Join(present[:min(len(present), 5)], ", "))
	}
	staging, err := os.MkdirTemp(cfg.Data, ".gatehouse-restore-*")
	if err != nil {
		return fmt.Errorf("restore: staging directory: %w", err)
	}
	defer os.RemoveAll(staging)
	m, err := db.ExtractArchive(bufio.NewReaderSize(in, 1<<20), staging)
	if err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	if err := db.PrepareRestore(ctx, filepath.Join(staging, db.FileName), m); err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	replaced := slices.Clone(core.DataFiles())
	if err := db.InstallRestore(staging, cfg.Data, m, replaced); err != nil {
		return err
	}
	names := make([]string, len(m.Files))
	for i, mf := range m.Files {
		names[i] = mf.Name
	}
	fmt.Fprintf(stdout, "restored %s into %s: %s (schema %s, written by gatehouse %s at %s); the event log starts a new epoch\n",
		file, cfg.Data, strings.Join(names, ", "), m.SchemaVersion, m.GatehouseVersion, m.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	return nil
}
