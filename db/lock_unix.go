//go:build unix

package db

import (
	"os"

	"golang.org/x/sys/unix"
)

var errWouldBlock error = unix.EWOULDBLOCK

// flock takes an exclusive, non-blocking flock(2) on f. flock locks belong to the open file,
// so two opens in one process exclude each other too.
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}
