//go:build !linux

package core

import (
	"errors"
	"net"
)

// readPeerCred is only implemented on Linux (SO_PEERCRED); elsewhere Unix socket clients get
// no peer credentials and authenticate like any other client.
func readPeerCred(*net.UnixConn) (Ucred, error) {
	return Ucred{}, errors.New("peer credentials: not supported on this system")
}
