package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// Ucred is the operating-system identity of the process at the other end of a Unix socket
// connection, as the kernel reported it when the connection was accepted (SO_PEERCRED).
type Ucred struct {
	PID int32
	UID uint32
	GID uint32
}

type peerCredKey struct{}

// PeerCred returns the peer credentials of the connection a request arrived on. ok is false
// for every connection that is not on the Unix socket listener (TCP, including loopback, never
// has any), and when the kernel could not report them.
func PeerCred(ctx context.Context) (Ucred, bool) {
	c, ok := ctx.Value(peerCredKey{}).(Ucred)
	return c, ok
}

// peerCredContext is the http.Server ConnContext: for a Unix socket connection it stores the
// peer's credentials in the connection's context.
func peerCredContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	cred, err := readPeerCred(uc)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, peerCredKey{}, cred)
}

// listenUnix listens on a Unix socket at path with mode 0660. A stale socket file left by a
// process that died is replaced; a live one (something answers) or any other file is an error.
// Closing the listener removes the file.
func listenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("unix socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("unix socket %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("unix socket %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("unix socket %s: chmod: %w", path, err)
	}
	return ln, nil
}
