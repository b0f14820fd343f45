package core

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestListenUnixAndPeerCred(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are read on Linux only")
	}
	dir, err := os.MkdirTemp("", "gh") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")

	// A file that is not a socket is never replaced.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(path); err == nil {
		t.Fatal("listened over a regular file")
	}
	os.Remove(path)
	// A stale socket (its process died) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	// A live one is not.
	if _, err := listenUnix(path); err == nil {
		t.Fatal("listened over a live socket")
	}

	srv := &http.Server{ConnContext: peerCredContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := PeerCred(r.Context())
		fmt.Fprintf(w, "%v %d %d", ok, c.UID, c.PID)
	})}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	go srv.Serve(tcp)
	get := func(c *http.Client, url string) string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	unixClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	if got, want := get(unixClient, "http://unix/"), fmt.Sprintf("true %d %d", os.Getuid(), os.Getpid()); got != want {
		t.Errorf("over the socket: %q, want %q", got, want)
	}
	if got := get(http.DefaultClient, "http://"+tcp.Addr().String()+"/"); got != "false 0 0" {
		t.Errorf("over TCP: %q", got)
	}
	unixClient.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after close: %v", err)
	}
}
