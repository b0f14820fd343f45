package db

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in the data directory that a serving gatehouse holds locked, so that
// offline commands that write (user passwd, restore) do not go behind its back, and that two
// servers do not share one data directory.
const LockFile = "gatehouse.lock"

// ErrLocked means the data directory is locked by another process (or handle): a running
// gatehouse server.
var ErrLocked = errors.New("the data directory is in use by a running gatehouse server")

// DirLock is a held lock on a data directory.
type DirLock struct {
	f *os.File
}

// LockDir takes the lock of the data directory dir, which must exist, without waiting. It
// fails with an error wrapping ErrLocked (and naming the holder's pid when known) when
// another process, or another LockDir of this process, holds it. The lock is released by
// Unlock or when the process ends, however it ends.
func LockDir(dir string) (*DirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := flock(f); err != nil {
		_ = f.Close()
		if errors.Is(err, errWouldBlock) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%s%s: %w", dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is for the message above; the lock, not the file's content, is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock. The file stays: removing it would let two processes lock two
// different files of the same name.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
