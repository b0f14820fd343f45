//go:build !unix

package db

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("locked")

// flock does nothing where flock(2) does not exist: the data directory is not locked there.
func flock(*os.File) error { return nil }
