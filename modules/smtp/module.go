// Package smtp is the SMTP notifier: it mails the events of the event log that match its
// rules (access denied, doors forced or held open, …) to the rules' addresses, through the
// first enabled server that takes the mail. It is configured by its config section and by
// Leosac's module.smtp.getconfig / setconfig / sendmail websocket calls (the web GUI's SMTP
// page); a configuration set by setconfig is kept in the database (meta key "smtp.config")
// and wins over the config section from then on.
//
// Delivery is at least once: the notifier reads the log after its own cursor (meta key
// "smtp.cursor", the seq up to which every event is dealt with), and the cursor passes an
// event only once its mail was accepted (or refused for good with a 5xx answer to MAIL,
// RCPT or DATA, which is logged). While every server fails, it retries with exponential
// back-off and the events wait in the log. A first start begins at the end of the log.
//
// Each server has a rate limit (max_per_minute, as a token bucket); events beyond it are
// not dropped: they wait, and go out together in one digest mail when the limit allows.
// smtp:// servers must offer STARTTLS (allow_plain permits plain text to a loopback host
// only, without authentication); smtps:// uses TLS from the start. Passwords are never
// logged nor returned; mails hold the event's description and data, which never contain
// secrets (the log redacts them; the notifier redacts again).
package smtp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// ModuleID is the SMTP notifier's ID.
const ModuleID = "smtp"

const (
	cursorKey = "smtp.cursor"
	configKey = "smtp.config"
	// redacted stands for a password in what getconfig answers; sent back by setconfig it
	// keeps the stored password.
	redacted = "***"
)

// Info declares the module. It must be loaded after the event log module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the SMTP notifier. Its configuration:
//
//	{"module": "smtp", "config": {
//	  "servers": [{"url": "smtp://mail.example.com:587", "from": "gatehouse@example.com",
//	    "username": "gatehouse", "password": "…", "timeout": 30000, "verify_host": true,
//	    "verify_peer": true, "enabled": true, "max_per_minute": 30}],
//	  "rules": [{"topics": ["door.*.forced", "door.*.held_open", "access.denied"],
//	    "to": ["security@example.com"]}],
//	  "retry_base": "1s", "max_backoff": "5m", "digest": 100}}
//
// With no servers or no rules it is idle.
type Module struct {
	// Servers are tried in order for each mail.
	Servers []Server `json:"servers"`
	// Rules say which events go to which addresses.
	Rules []Rule `json:"rules"`
	// RetryBase is the first delay after a failed attempt (doubling up to MaxBackoff, with
	// jitter). Defaults 1s and 5m.
	RetryBase  core.Duration `json:"retry_base,omitempty"`
	MaxBackoff core.Duration `json:"max_backoff,omitempty"`
	// Digest is the most events one digest mail lists. Default 100.
	Digest int `json:"digest,omitempty"`

	log     zerolog.Logger
	db      *db.DB
	secrets *core.Secrets // seals the passwords kept in the meta table
	events  *eventlog.Log
	metrics *metrics
	wake    chan struct{}

	mu       sync.Mutex
	servers  []Server // in effect (the database's copy once setconfig was used)
	rules    []Rule
	limiters []*rate.Limiter // per server
	version  int             // changes with the configuration
	cursor   int64           // every event up to it is dealt with
}

var (
	_ core.Provisioner    = (*Module)(nil)
	_ core.Validator      = (*Module)(nil)
	_ core.Defaulter      = (*Module)(nil)
	_ core.SecretRedactor = (*Module)(nil)
	_ core.Runner         = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter.
func (m *Module) ApplyDefaults() {
	if m.Servers == nil {
		m.Servers = []Server{}
	}
	if m.Rules == nil {
		m.Rules = []Rule{}
	}
	for i := range m.Servers {
		m.Servers[i] = m.Servers[i].withDefaults()
	}
	if m.MaxBackoff == 0 {
		m.MaxBackoff = core.Duration(5 * time.Minute)
	}
	if m.RetryBase == 0 {
		m.RetryBase = core.Duration(min(time.Second, m.MaxBackoff.D()))
	}
	if m.Digest == 0 {
		m.Digest = DefaultDigest
	}
}

// RedactSecrets implements core.SecretRedactor: passwords become "***".
func (m *Module) RedactSecrets() {
	for i := range m.Servers {
		if m.Servers[i].Password != "" {
			m.Servers[i].Password = redacted
		}
	}
}

// Validate checks the servers, the rules and the retry settings.
func (m *Module) Validate() error {
	var errs []error
	for _, fe := range check(m.Servers, m.Rules) {
		errs = append(errs, fmt.Errorf("%s: %s", fe.Pointer, fe.Detail))
	}
	for _, s := range m.Servers {
		if s.Password == redacted {
			errs = append(errs, errors.New(`servers: a password of "***" is the redacted placeholder, not a password`))
		}
	}
	if m.RetryBase < 0 || m.MaxBackoff < 0 || m.RetryBase > m.MaxBackoff && m.MaxBackoff > 0 {
		errs = append(errs, errors.New("retry_base and max_backoff: want 0 ≤ retry_base ≤ max_backoff"))
	}
	if m.Digest < 0 || m.Digest > 1000 {
		errs = append(errs, errors.New("digest: want 1 to 1000 (0 means 100)"))
	}
	return errors.Join(errs...)
}

// stored is the configuration setconfig keeps in the meta table. Its passwords are sealed
// with the data directory's secret key (core.Secrets), each bound to its server's URL and
// username, so the database alone (a copy, a backup without the key) does not reveal them.
type stored struct {
	Servers []Server `json:"servers"`
	Rules   []Rule   `json:"rules"`
}

func passwordLabel(s Server) string { return "smtp.password\x00" + s.URL + "\x00" + s.Username }

// seal returns st with every password sealed.
func (m *Module) seal(st stored) stored {
	out := st
	out.Servers = make([]Server, len(st.Servers))
	for i, s := range st.Servers {
		if s.Password != "" {
			s.Password = m.secrets.Seal(s.Password, passwordLabel(s))
		}
		out.Servers[i] = s
	}
	return out
}

// unseal opens the passwords of a stored configuration in place.
func (m *Module) unseal(st *stored) error {
	for i, s := range st.Servers {
		if s.Password == "" {
			continue
		}
		pw, err := m.secrets.Open(s.Password, passwordLabel(s))
		if err != nil {
			return fmt.Errorf("server %d: password: %w", i, err)
		}
		st.Servers[i].Password = pw
	}
	return nil
}

// Provision wires the module to the event log and the database, reads the configuration
// setconfig stored, if any, and the cursor, and registers the module.smtp.* calls.
func (m *Module) Provision(ctx *core.Context) error {
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.log, m.db = ctx.Logger, ctx.DB()
	if m.secrets, err = ctx.Secrets(); err != nil {
		return err
	}
	if m.metrics, err = newMetrics(ctx.Metrics()); err != nil {
		return err
	}
	m.wake = make(chan struct{}, 1)
	m.ApplyDefaults()
	if m.Validate() != nil {
		return nil // Validate reports it, and the server does not start
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers, rules := m.Servers, m.Rules
	var raw string
	if err := m.db.Read.WithContext(c).Raw(`SELECT value FROM meta WHERE key = ?`, configKey).Scan(&raw).Error; err != nil {
		return fmt.Errorf("read the stored SMTP configuration: %w", err)
	}
	if raw != "" {
		var st stored
		if err := json.Unmarshal([]byte(raw), &st); err != nil || m.unseal(&st) != nil || len(check(st.Servers, st.Rules)) > 0 {
			m.log.Error().Msg("the SMTP configuration stored by module.smtp.setconfig is unreadable; using the config section")
		} else {
			servers, rules = st.Servers, st.Rules
		}
	}
	m.setConfig(servers, rules)
	cursor, found, err := eventlog.ReadCursor(c, m.db, cursorKey)
	if errors.Is(err, eventlog.ErrCursorUnreadable) {
		m.log.Warn().Msg("the SMTP notifier's saved cursor is unreadable; starting at the end of the log")
	} else if err != nil {
		return err
	}
	if !found {
		if cursor, err = m.events.LastSeq(c); err != nil {
			return fmt.Errorf("read the log's end: %w", err)
		}
		if err := eventlog.SaveCursor(c, m.db, cursorKey, cursor); err != nil {
			return err
		}
	}
	m.cursor = cursor
	m.register(ctx.Methods())
	return nil
}

// setConfig puts servers and rules in effect (defaults applied) with fresh rate limiters.
func (m *Module) setConfig(servers []Server, rules []Rule) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.servers = make([]Server, len(servers))
	m.limiters = make([]*rate.Limiter, len(servers))
	for i, s := range servers {
		s = s.withDefaults()
		m.servers[i] = s
		m.limiters[i] = rate.NewLimiter(rate.Every(time.Minute/time.Duration(s.MaxPerMinute)), s.MaxPerMinute)
	}
	m.rules = append([]Rule(nil), rules...)
	m.version++
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// snapshot is the configuration in effect at one moment.
type snapshot struct {
	version  int
	servers  []Server
	rules    []Rule
	limiters []*rate.Limiter
}

func (m *Module) snapshot() snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return snapshot{version: m.version, servers: m.servers, rules: m.rules, limiters: m.limiters}
}

// Cursor returns the seq up to which every event is dealt with (mailed, or matched by no
// rule).
func (m *Module) Cursor() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor
}
