package smtp

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// Defaults and limits of the configuration.
const (
	// DefaultTimeout is a server's timeout in milliseconds (Leosac's unit and default).
	DefaultTimeout = 30000
	// DefaultMaxPerMinute is how many mails a server is sent per minute by default.
	DefaultMaxPerMinute = 30
	// DefaultDigest is the most events one digest mail lists.
	DefaultDigest = 100
	// MaxServers, MaxRules and MaxRecipients bound the configuration's lists.
	MaxServers, MaxRules, MaxRecipients = 10, 50, 50
)

// Server is one SMTP server, in the shape of Leosac's module.smtp.getconfig plus gatehouse's
// own keys (allow_plain, max_per_minute).
type Server struct {
	// URL is smtp://host[:port] (default port 25; STARTTLS is required) or
	// smtps://host[:port] (default port 465; TLS from the start). No credentials, query or
	// path.
	URL string `json:"url"`
	// From is the envelope sender and From header (an address).
	From string `json:"from"`
	// Username and Password authenticate with AUTH PLAIN (over TLS only) when Username is set.
	Username string `json:"username"`
	// Password is never logged, never returned (getconfig answers "***") and never put in a
	// mail. It is stored in the database (meta table) in clear, like the rest of the
	// configuration: the database file is readable by the service account only.
	Password string `json:"password"`
	// Timeout bounds one whole mail transaction (connect, TLS, auth, send), in milliseconds.
	Timeout int64 `json:"timeout"`
	// VerifyHost checks that the certificate names the URL's host; VerifyPeer checks its
	// chain against the system's roots. Both default to true.
	VerifyHost *bool `json:"verify_host"`
	VerifyPeer *bool `json:"verify_peer"`
	// Enabled servers are used, in order: a mail goes to the first one that takes it.
	Enabled *bool `json:"enabled"`
	// AllowPlain lets an smtp:// server that offers no STARTTLS be used without TLS; only for
	// a loopback host (localhost, 127.0.0.0/8, ::1), and then without authentication.
	AllowPlain bool `json:"allow_plain,omitempty"`
	// MaxPerMinute is the most mails sent to this server per minute (a burst of that many,
	// then one every 60/MaxPerMinute seconds); events beyond it wait and are sent together in
	// one digest mail. Default 30.
	MaxPerMinute int `json:"max_per_minute,omitempty"`
}

// Rule sends the events whose topic matches one of Topics (NATS patterns: "access.denied",
// "door.*.forced", "door.>") to the addresses To. An event matching several rules is sent
// once, to all their addresses.
type Rule struct {
	Topics []string `json:"topics"`
	To     []string `json:"to"`
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// withDefaults returns s with its zero settings filled.
func (s Server) withDefaults() Server {
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxPerMinute == 0 {
		s.MaxPerMinute = DefaultMaxPerMinute
	}
	for _, p := range []**bool{&s.VerifyHost, &s.VerifyPeer, &s.Enabled} {
		if *p == nil {
			*p = new(true)
		}
	}
	return s
}

// endpoint is a parsed server URL.
type endpoint struct {
	implicitTLS bool
	host, addr  string
	loopback    bool
}

func parseURL(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("not a URL")
	}
	var ep endpoint
	port := "25"
	switch u.Scheme {
	case "smtp":
	case "smtps":
		ep.implicitTLS, port = true, "465"
	default:
		return ep, fmt.Errorf("want smtp://host[:port] or smtps://host[:port]")
	}
	if u.User != nil {
		return ep, fmt.Errorf("must not hold credentials (use username and password)")
	}
	if u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" || u.Opaque != "" {
		return ep, fmt.Errorf("want smtp://host[:port] or smtps://host[:port], nothing else")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return ep, fmt.Errorf("invalid port")
		}
		port = p
	}
	ep.host = u.Hostname()
	ep.addr = net.JoinHostPort(ep.host, port)
	if ip := net.ParseIP(ep.host); ip != nil {
		ep.loopback = ip.IsLoopback()
	} else {
		ep.loopback = strings.EqualFold(ep.host, "localhost")
	}
	return ep, nil
}

// validAddress reports whether s is one bare address (a@b), without a display name.
func validAddress(s string) bool {
	if s == "" || len(s) > 254 || strings.ContainsAny(s, "\r\n<>,; ") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// check validates servers and rules; each problem is a FieldError whose pointer names the
// field ("servers/0/url").
func check(servers []Server, rules []Rule) []core.FieldError {
	var errs []core.FieldError
	bad := func(ptr, format string, args ...any) {
		errs = append(errs, core.FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
	}
	if len(servers) > MaxServers {
		bad("servers", "at most %d servers", MaxServers)
	}
	for i, s := range servers {
		p := fmt.Sprintf("servers/%d/", i)
		ep, err := parseURL(s.URL)
		if err != nil {
			bad(p+"url", "url: %v", err)
		} else if s.AllowPlain && !ep.loopback {
			bad(p+"allow_plain", "allow_plain is only allowed for a loopback host (localhost, 127.0.0.1, ::1)")
		} else if s.AllowPlain && s.Username != "" {
			bad(p+"allow_plain", "allow_plain cannot be used with a username: credentials are only sent over TLS")
		}
		if !validAddress(s.From) {
			bad(p+"from", "from: want one address such as gatehouse@example.com")
		}
		if len(s.Username) > 256 || strings.ContainsAny(s.Username, "\x00\r\n") {
			bad(p+"username", "username: at most 256 characters, no NUL or line break")
		}
		if len(s.Password) > 1024 || strings.ContainsAny(s.Password, "\x00") {
			bad(p+"password", "password: at most 1024 characters, no NUL")
		}
		if s.Timeout < 0 || s.Timeout > 600000 {
			bad(p+"timeout", "timeout: want 1 to 600000 milliseconds (0 means %d)", DefaultTimeout)
		}
		if s.MaxPerMinute < 0 || s.MaxPerMinute > 10000 {
			bad(p+"max_per_minute", "max_per_minute: want 1 to 10000 (0 means %d)", DefaultMaxPerMinute)
		}
	}
	if len(rules) > MaxRules {
		bad("rules", "at most %d rules", MaxRules)
	}
	for i, r := range rules {
		p := fmt.Sprintf("rules/%d/", i)
		if len(r.Topics) == 0 || len(r.Topics) > eventlog.MaxPatterns {
			bad(p+"topics", "topics: want 1 to %d topic patterns", eventlog.MaxPatterns)
		}
		for _, t := range r.Topics {
			if err := core.ValidatePattern(t); err != nil {
				bad(p+"topics", "topics: %v", err)
			}
		}
		if len(r.To) == 0 || len(r.To) > MaxRecipients {
			bad(p+"to", "to: want 1 to %d addresses", MaxRecipients)
		}
		for _, a := range r.To {
			if !validAddress(a) {
				bad(p+"to", "to: %q is not an address such as security@example.com", eventlog.Cut(a, 64))
			}
		}
	}
	return errs
}
