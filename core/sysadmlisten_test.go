package core_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/all"
)

// TestSysadmListenerBoundBeforeAfterListen: the sysadm listener is bound before AfterListen
// runs (where serve drops root privileges for --user), like the main listener, so a
// privileged port stays usable after the drop; and a failing start releases it.
func TestSysadmListenerBoundBeforeAfterListen(t *testing.T) {
	t.Parallel()
	var addr string
	var srv *core.Server
	var err error
	// A port is picked by the kernel, released, then configured: retry in the rare case
	// another process took it meanwhile.
	for range 5 {
		probe, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		addr = probe.Addr().String()
		probe.Close()
		boundAtDrop := false
		srv, err = core.NewServer(context.Background(), core.ServerOptions{Registry: all.Registry(), Log: zerolog.Nop(),
			Config: core.Config{Data: t.TempDir(), Listen: "127.0.0.1:0", SysadmListen: addr, Modules: all.DefaultModules()},
			AfterListen: func() error {
				l, err := net.Listen("tcp", addr)
				if err == nil {
					l.Close()
				}
				boundAtDrop = errors.Is(err, syscall.EADDRINUSE)
				return errors.New("stop here")
			}})
		if err != nil && strings.Contains(err.Error(), "sysadm_listen on") {
			continue // the port was taken before NewServer bound it
		}
		if !boundAtDrop {
			t.Fatalf("the sysadm listener %s was not bound when AfterListen ran (NewServer: %v)", addr, err)
		}
		break
	}
	if err == nil || srv != nil {
		t.Fatalf("NewServer: %v, want AfterListen's error", err)
	}
	// The failed start closed the listener.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the sysadm listener %s outlived the failed start: %v", addr, err)
	}
	l.Close()
}
