package db

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
)

// A backup archive is one gzip-compressed tar file holding, in this order: manifest.json
// (Manifest), the database snapshot (FileName, written by VACUUM INTO) and the other files of
// the data directory that a restore needs (keys), at their paths relative to the directory.

// ArchiveFormat and ArchiveFormatVersion identify backup archives in their manifest. A reader
// refuses another format and a version it does not know.
const (
	ArchiveFormat        = "gatehouse-backup"
	ArchiveFormatVersion = 1
	manifestName         = "manifest.json"
	// maxArchiveFile bounds each file read from an archive (the database included).
	maxArchiveFile = 64 << 30
)

// Manifest describes a backup archive.
type Manifest struct {
	Format           string         `json:"format"`
	FormatVersion    int            `json:"format_version"`
	GatehouseVersion string         `json:"gatehouse_version"`
	SchemaVersion    string         `json:"schema_version"`
	CreatedAt        time.Time      `json:"created_at"`
	Files            []ManifestFile `json:"files"`
}

// ManifestFile is one file of a backup archive: its path relative to the data directory
// (slash-separated), size and SHA-256.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// WriteArchive writes a backup archive of the live database and of the files of dataDir named
// in files (relative paths; those that do not exist are left out) to w. The snapshot is taken
// with VACUUM INTO through the read pool, so the server keeps writing meanwhile; it is staged
// in a private directory created under tmpParent and removed on return. version is the
// gatehouse version recorded in the manifest.
func (d *DB) WriteArchive(ctx context.Context, w io.Writer, dataDir string, files []string, tmpParent, version string) (Manifest, error) {
	m := Manifest{Format: ArchiveFormat, FormatVersion: ArchiveFormatVersion, GatehouseVersion: version, CreatedAt: time.Now().UTC()}
	tmp, err := os.MkdirTemp(tmpParent, ".gatehouse-backup-*")
	if err != nil {
		return m, fmt.Errorf("backup: staging directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, FileName)
	if err := d.Backup(ctx, snap); err != nil {
		return m, err
	}
	if m.SchemaVersion, err = d.SchemaVersion(ctx); err != nil {
		return m, fmt.Errorf("backup: schema version: %w", err)
	}
	type source struct{ name, path string }
	sources := []source{{FileName, snap}}
	for _, name := range files {
		p := filepath.Join(dataDir, filepath.FromSlash(name))
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		sources = append(sources, source{name, p})
	}
	for _, s := range sources {
		f, err := hashFile(s.path)
		if err != nil {
			return m, fmt.Errorf("backup: %w", err)
		}
		f.Name = s.name
		m.Files = append(m.Files, f)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: m.CreatedAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(manifest)))); err != nil {
		return m, fmt.Errorf("backup: write archive: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return m, fmt.Errorf("backup: write archive: %w", err)
	}
	for i, s := range sources {
		if err := copyInto(tw, hdr(s.name, m.Files[i].Size), s.path); err != nil {
			return m, fmt.Errorf("backup: write archive: %w", err)
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return m, fmt.Errorf("backup: write archive: %w", err)
	}
	return m, nil
}

func copyInto(tw *tar.Writer, h *tar.Header, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	// The file does not change while it is copied (a staged snapshot, or a key written once);
	// the size check catches it if it did.
	n, err := io.Copy(tw, io.LimitReader(f, h.Size))
	if err == nil && n != h.Size {
		err = fmt.Errorf("%s changed while it was archived", p)
	}
	return err
}

func hashFile(p string) (ManifestFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return ManifestFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return ManifestFile{}, fmt.Errorf("read %s: %w", p, err)
	}
	return ManifestFile{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ExtractArchive reads a backup archive from r into dir (an empty, private staging directory)
// and returns its manifest. It checks everything it can without opening the database: the
// format and its version, that every file is listed in the manifest with a safe relative path
// and arrives once with the listed size and SHA-256, and that none is missing. Files are
// created with mode 0600 (directories 0700).
func ExtractArchive(r io.Reader, dir string) (Manifest, error) {
	var m Manifest
	zr, err := gzip.NewReader(r)
	if err != nil {
		return m, fmt.Errorf("not a gatehouse backup (gzip): %w", err)
	}
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil || h.Name != manifestName {
		return m, fmt.Errorf("not a gatehouse backup: no %s at the start", manifestName)
	}
	b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != ArchiveFormat {
		return m, fmt.Errorf("manifest: format %q, want %q", m.Format, ArchiveFormat)
	}
	if m.FormatVersion < 1 || m.FormatVersion > ArchiveFormatVersion {
		return m, fmt.Errorf("manifest: format version %d is not known to this gatehouse (up to %d): use a newer gatehouse", m.FormatVersion, ArchiveFormatVersion)
	}
	want := map[string]ManifestFile{}
	for _, f := range m.Files {
		if !safeName(f.Name) || f.Name == manifestName {
			return m, fmt.Errorf("manifest: unsafe file name %q", f.Name)
		}
		if _, dup := want[f.Name]; dup {
			return m, fmt.Errorf("manifest: %s listed twice", f.Name)
		}
		want[f.Name] = f
	}
	if _, ok := want[FileName]; !ok {
		return m, fmt.Errorf("manifest: no database (%s)", FileName)
	}
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("read archive: %w", err)
		}
		f, ok := want[h.Name]
		if !ok || h.Typeflag != tar.TypeReg {
			return m, fmt.Errorf("archive: %q is not a file of the manifest", h.Name)
		}
		if got[h.Name] {
			return m, fmt.Errorf("archive: %s appears twice", h.Name)
		}
		got[h.Name] = true
		if h.Size != f.Size || f.Size > maxArchiveFile {
			return m, fmt.Errorf("archive: %s has %d bytes, the manifest says %d", h.Name, h.Size, f.Size)
		}
		if err := extractFile(tr, filepath.Join(dir, filepath.FromSlash(h.Name)), f); err != nil {
			return m, fmt.Errorf("archive: %s: %w", h.Name, err)
		}
	}
	for name := range want {
		if !got[name] {
			return m, fmt.Errorf("archive: %s is in the manifest but not in the archive (truncated?)", name)
		}
	}
	return m, nil
}

// safeName reports whether name is a clean, relative, slash-separated path inside the data
// directory.
func safeName(name string) bool {
	return name != "" && name == path.Clean(name) && !path.IsAbs(name) && !strings.HasPrefix(name, "../") &&
		name != ".." && !strings.Contains(name, `\`)
}

func extractFile(r io.Reader, p string, want ManifestFile) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, want.Size))
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	if n != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		return errors.New("its content does not match the manifest's SHA-256 (corrupt backup)")
	}
	return nil
}

// PrepareRestore checks a restored database snapshot at p and readies it to serve: SQLite's
// integrity_check must pass, its schema version must be known to this binary (an older one is
// migrated when a server opens it) and match the manifest's. The event log's epoch is then
// removed, so that the server starts a new one: clients holding positions of the old history
// resynchronise instead of resuming on a history that was rewound.
func PrepareRestore(ctx context.Context, p string, m Manifest) error {
	s, err := sql.Open(sqlite.DriverName, DSN(p, 10*time.Second))
	if err != nil {
		return fmt.Errorf("open the restored database: %w", err)
	}
	defer s.Close()
	s.SetMaxOpenConns(1)
	rows, err := s.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check of the restored database: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return fmt.Errorf("integrity check of the restored database: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("integrity check of the restored database: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the restored database fails its integrity check: %s", strings.Join(problems[:min(5, len(problems))], "; "))
	}
	var schema string
	if err := s.QueryRowContext(ctx, `SELECT id FROM schema_migrations ORDER BY id DESC LIMIT 1`).Scan(&schema); err != nil {
		return fmt.Errorf("the restored database has no schema version: %w", err)
	}
	if !KnownSchema(schema) {
		return fmt.Errorf("the restored database has schema %s, newer than this gatehouse knows (up to %s): restore it with the gatehouse that wrote it", schema, LatestSchema())
	}
	if schema != m.SchemaVersion {
		return fmt.Errorf("the restored database has schema %s but the manifest says %s", schema, m.SchemaVersion)
	}
	if _, err := s.ExecContext(ctx, `DELETE FROM meta WHERE key IN ('epoch', 'health_probe')`); err != nil {
		return fmt.Errorf("reset the event log's epoch: %w", err)
	}
	if _, err := s.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint the restored database: %w", err)
	}
	return nil
}

// InstallRestore moves the files of a checked, extracted archive (staging, inside dataDir so
// that renames stay on one file system) into dataDir. Files of previous data named in
// replaced (relative paths, e.g. keys the archive does not hold) are removed first, and the
// database's WAL and shared-memory files with them; the database itself is moved last.
func InstallRestore(staging, dataDir string, m Manifest, replaced []string) error {
	names := make([]string, 0, len(m.Files))
	for _, f := range m.Files {
		if f.Name != FileName {
			names = append(names, f.Name)
		}
	}
	stale := append([]string{FileName + "-wal", FileName + "-shm"}, replaced...)
	for _, name := range stale {
		if slices.Contains(names, name) {
			continue
		}
		if err := os.Remove(filepath.Join(dataDir, filepath.FromSlash(name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: remove the previous %s: %w", name, err)
		}
	}
	for _, name := range append(names, FileName) {
		dst := filepath.Join(dataDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if err := os.Rename(filepath.Join(staging, filepath.FromSlash(name)), dst); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if dir, err := os.Open(dataDir); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}
