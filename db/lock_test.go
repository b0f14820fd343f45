package db

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestLockDirExcludesAndReleases(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDir(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second lock: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	_ = l2.Unlock()
	if _, err := LockDir(dir + "/missing"); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("lock of a missing directory: %v", err)
	}
}

type codeErr int

func (c codeErr) Error() string { return fmt.Sprintf("sqlite %d", int(c)) }
func (c codeErr) Code() int     { return int(c) }

func TestStorageError(t *testing.T) {
	for code, want := range map[int]bool{13: true, 10: true, 778: true, 14: true, 8: true, 11: true, 26: true,
		5: false, 19: false, 2067: false, 1: false, 9: false} {
		if got := StorageError(fmt.Errorf("wrapped: %w", codeErr(code))); got != want {
			t.Errorf("StorageError(code %d) = %v, want %v", code, got, want)
		}
	}
	if StorageError(errors.New("plain")) || StorageError(nil) {
		t.Error("StorageError of a plain error or nil")
	}
}
