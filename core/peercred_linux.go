package core

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// readPeerCred asks the kernel for the credentials of the peer of a Unix socket connection.
func readPeerCred(c *net.UnixConn) (Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", serr)
	}
	return Ucred{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}
