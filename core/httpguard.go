package core

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// HTTP limits of the listener (README "HTTP limits").
const (
	// DefaultBodyTimeout is Config.BodyTimeout's default.
	DefaultBodyTimeout = 30 * time.Second
	// HeaderTimeout bounds reading a request's headers.
	HeaderTimeout = 10 * time.Second
	// MaxHeaderBytes bounds a request's headers (request line included).
	MaxHeaderBytes = 64 << 10
	// HSTS is the Strict-Transport-Security header sent with every answer over TLS.
	HSTS = "max-age=31536000"
)

// bodyTimeout returns the configured body timeout or its default.
func (c Config) bodyTimeout() time.Duration {
	if c.BodyTimeout > 0 {
		return c.BodyTimeout.D()
	}
	return DefaultBodyTimeout
}

// validateHTTP checks the HTTP listener's settings: hostnames are bare host names or IP
// addresses (no scheme, port, path or wildcard), body_timeout is not negative.
func (c Config) validateHTTP() error {
	var errs []error
	for _, h := range c.Hostnames {
		if _, err := normalHost(h); err != nil {
			errs = append(errs, fmt.Errorf("hostnames: %q: %w", h, err))
		}
	}
	if c.BodyTimeout < 0 {
		errs = append(errs, errors.New("body_timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// normalHost returns a configured host name in the form hostGuard compares (lower case, no
// trailing dot, IPv6 without brackets).
func normalHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return ip.Unmap().String(), nil
	}
	if h == "" || len(h) > 253 {
		return "", errors.New("want a host name or an IP address")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", errors.New("want a host name or an IP address (no scheme, port or path)")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", errors.New("want a host name or an IP address (no scheme, port or path)")
			}
		}
	}
	return h, nil
}

// hostGuard is the first handler of the TCP listener. It refuses a request whose Host header
// is not a name of this server (421), which defeats DNS rebinding: a page of another site whose
// name an attacker re-points at this server's address reaches it with the attacker's name in
// Host. Accepted: the names in Config.Hostnames, the hosts of Config.Listen and Config.SysadmListen and this machine's
// host name; an IP address the connection was accepted on (whatever the port); "localhost" and
// "*.localhost" on a connection to a loopback address; no Host at all (HTTP/1.0, which no
// browser sends). Under TLS every answer carries HSTS.
type hostGuard struct {
	names map[string]bool
	next  http.Handler
	log   zerolog.Logger
}

// newHostGuard returns the guard for cfg (validated) in front of next.
func newHostGuard(cfg Config, next http.Handler, log zerolog.Logger) *hostGuard {
	g := &hostGuard{names: map[string]bool{}, next: next, log: log}
	add := func(h string) {
		if n, err := normalHost(h); err == nil {
			g.names[n] = true
		}
	}
	for _, h := range cfg.Hostnames {
		add(h)
	}
	for _, l := range []string{cfg.Listen, cfg.SysadmListen} {
		if host, _, err := net.SplitHostPort(l); err == nil && host != "" {
			if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
				add(host)
			}
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		add(h)
	}
	return g
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", HSTS)
	}
	if !g.allowed(r) {
		g.log.Debug().Str("host", r.Host).Str("remote", r.RemoteAddr).Msg("refused a request for another host name")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, "421 Misdirected Request: %q is not a name of this gatehouse server.\n"+
			"If it is, add it to \"hostnames\" in the configuration (protection against DNS rebinding).\n", r.Host)
		return
	}
	g.next.ServeHTTP(w, r)
}

// allowed reports whether r's Host header names this server.
func (g *hostGuard) allowed(r *http.Request) bool {
	host := r.Host
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	local := localAddr(r)
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		return g.names[ip.String()] || local.IsValid() && ip == local
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return local.IsValid() && local.IsLoopback()
	}
	return g.names[host]
}

// localAddr returns the address the request's connection was accepted on (invalid if unknown).
func localAddr(r *http.Request) netip.Addr {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap()
}
