package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of a gatehouse process. It is read from a JSON file
// (unknown keys are errors), then overridden by GATEHOUSE_* environment variables, then by
// command-line flags. The zero value of every field means its documented default.
type Config struct {
	// InstanceName names this site in system_overview and the dashboard. Default "gatehouse".
	InstanceName string `json:"instance_name,omitempty"`
	// ConfigVersion is reported by system_overview; operators bump it when they edit the file.
	ConfigVersion uint64 `json:"config_version,omitempty"`
	// Data is the data directory (database, keys, initial password). Default "./gatehouse-data".
	Data string `json:"data,omitempty"`
	// Listen is the address of the one HTTP listener. Default "127.0.0.1:8080".
	Listen string `json:"listen,omitempty"`
	// Unix, if set, is the path of a Unix socket on which the same handler is also served
	// (mode 0660, removed on shutdown); requests on it carry the peer's credentials (PeerCred).
	Unix string `json:"unix,omitempty"`
	// SysadmListen, if set, is the address of a second TCP listener that serves only the sysadm
	// dialect, its websocket at the root path "/" and its REST calls, as TrueOS sysadm's own
	// server does on port 12150 (the clients cannot add a path). It uses the main listener's
	// TLS settings, Host check and timeouts. Default: off.
	SysadmListen string `json:"sysadm_listen,omitempty"`
	// Hostnames are the names (or addresses) clients reach this server by, besides those always
	// accepted: the host of Listen, this machine's host name, the address a connection came in
	// on, and localhost on a loopback connection. A request over TCP whose Host header names
	// anything else is refused with 421 (protection against DNS rebinding). Names behind a
	// reverse proxy or a NAT go here, e.g. ["gatehouse.example.com"].
	Hostnames []string `json:"hostnames,omitempty"`
	// BodyTimeout bounds reading one request, headers and body together (http.Server's
	// ReadTimeout); a client that sends its body slower is disconnected. Websockets are not
	// affected once upgraded. Default 30s.
	BodyTimeout Duration `json:"body_timeout,omitempty"`
	// TLSCert and TLSKey are PEM files; TLSSelfSigned creates and keeps a certificate in Data.
	TLSCert       string `json:"tls_cert,omitempty"`
	TLSKey        string `json:"tls_key,omitempty"`
	TLSSelfSigned bool   `json:"tls_self_signed,omitempty"`
	// LogLevel is a zerolog level name (debug, info, warn, error). Default "info".
	LogLevel string `json:"log_level,omitempty"`
	// LogFormat is "json" (default) or "console".
	LogFormat string `json:"log_format,omitempty"`
	// Demo seeds a demo site and runs simulated traffic.
	Demo bool `json:"demo,omitempty"`
	// Timezone is the IANA name of the site's time zone for schedules. Default: the host's.
	Timezone string `json:"timezone,omitempty"`
	// ShutdownTimeout bounds a graceful shutdown. Default 10s.
	ShutdownTimeout Duration `json:"shutdown_timeout,omitempty"`
	// AdminPassword, when set (only from GATEHOUSE_ADMIN_PASSWORD, never from a file), is the
	// password of the admin user created on first start.
	AdminPassword string `json:"-"`
	// Modules lists the modules to load, in order, each with its own configuration; entries
	// with "disabled": true are skipped. The command line merges a file's list into the
	// standard one by module ID (MergeModules): a module the file leaves out still loads.
	Modules []ModuleConfig `json:"modules,omitempty"`
}

// ModuleConfig is one entry of Config.Modules: the module ID and its raw configuration, which
// is decoded strictly into the module's value. Disabled leaves the module out.
type ModuleConfig struct {
	Module   string          `json:"module"`
	Disabled bool            `json:"disabled,omitempty"`
	Config   json.RawMessage `json:"config,omitempty"`
}

// MergeModules returns the module list a configuration file asks for: the defaults, in their
// order, each replaced by the configured entry of the same module ID (its config, or
// "disabled": true), followed by the configured entries that name no default module, in their
// order. So a file that configures one module still loads every other one with its defaults.
func MergeModules(defaults, configured []ModuleConfig) []ModuleConfig {
	byID := make(map[string]ModuleConfig, len(configured))
	for _, mc := range configured {
		byID[mc.Module] = mc
	}
	out := make([]ModuleConfig, 0, len(defaults)+len(configured))
	isDefault := make(map[string]bool, len(defaults))
	for _, d := range defaults {
		isDefault[d.Module] = true
		if mc, ok := byID[d.Module]; ok {
			d = mc
		}
		out = append(out, d)
	}
	for _, mc := range configured {
		if !isDefault[mc.Module] {
			out = append(out, mc)
		}
	}
	return out
}

// EnabledModules returns the entries of Modules that are not disabled, in order.
func (c Config) EnabledModules() []ModuleConfig {
	out := make([]ModuleConfig, 0, len(c.Modules))
	for _, mc := range c.Modules {
		if !mc.Disabled {
			out = append(out, mc)
		}
	}
	return out
}

// Defaults used when a Config field is empty.
const (
	DefaultInstanceName = "gatehouse"
	DefaultData         = "./gatehouse-data"
	DefaultListen       = "127.0.0.1:8080"
)

// WithDefaults returns a copy of c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	if c.InstanceName == "" {
		c.InstanceName = DefaultInstanceName
	}
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(10 * time.Second)
	}
	return c
}

// Validate checks the values that do not depend on modules.
func (c Config) Validate() error {
	var errs []error
	switch c.LogFormat {
	case "", "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want json or console", c.LogFormat))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key go together"))
	}
	if c.TLSCert != "" && c.TLSSelfSigned {
		errs = append(errs, errors.New("tls_self_signed cannot be combined with tls_cert"))
	}
	if c.Listen != "" {
		if err := checkListen(c.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SysadmListen != "" {
		if err := checkListen(c.SysadmListen); err != nil {
			errs = append(errs, fmt.Errorf("sysadm_listen: %w", err))
		}
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("timezone: %w", err))
		}
	}
	errs = append(errs, c.validateHTTP())
	seen := map[string]bool{}
	for i, m := range c.Modules {
		if m.Module == "" {
			errs = append(errs, fmt.Errorf("modules[%d]: missing \"module\"", i))
		} else if seen[m.Module] {
			errs = append(errs, fmt.Errorf("modules[%d]: module %q listed twice", i, m.Module))
		}
		seen[m.Module] = true
	}
	return errors.Join(errs...)
}

// checkListen checks that addr is host:port with a numeric port in 0..65535, without resolving
// anything.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %w (want host:port, e.g. 127.0.0.1:8080)", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listen %q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// Location returns the site time zone.
func (c Config) Location() *time.Location {
	if c.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// LoadConfigFile reads a JSON configuration file strictly: unknown keys and trailing data are
// errors that name the offending position.
func LoadConfigFile(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := StrictUnmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// StrictUnmarshal decodes JSON into v, refusing unknown fields and trailing data. Syntax and
// type errors name their position: line and column (1-based, columns count bytes) and byte
// offset.
func StrictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := position(b, se.Offset)
			return fmt.Errorf("%w at line %d, column %d (at byte %d)", err, line, col, se.Offset)
		case errors.As(err, &te):
			line, col := position(b, te.Offset)
			return fmt.Errorf("%w at line %d, column %d (at byte %d)", err, line, col, te.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			line, col := position(b, int64(len(b))+1)
			return fmt.Errorf("%w: the JSON document ends early, at line %d, column %d", err, line, col)
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

// position returns the line and column (1-based, in bytes) of the byte before offset: Go's JSON
// errors give the offset after the offending byte.
func position(b []byte, offset int64) (line, col int) {
	pos := int(min(max(offset-1, 0), int64(len(b))))
	line = 1 + bytes.Count(b[:pos], []byte("\n"))
	col = pos - bytes.LastIndexByte(b[:pos], '\n')
	return line, col
}

// EnvPrefix prefixes every environment variable gatehouse reads.
const EnvPrefix = "GATEHOUSE_"

// ApplyEnv overrides fields from GATEHOUSE_* variables looked up through getenv: INSTANCE_NAME,
// DATA, LISTEN, UNIX, SYSADM_LISTEN, TLS_CERT, TLS_KEY, TLS_SELF_SIGNED, LOG_LEVEL, LOG_FORMAT, DEMO, TIMEZONE,
// ADMIN_PASSWORD.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(EnvPrefix + name); v != "" {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) error {
		v := getenv(EnvPrefix + name)
		if v == "" {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s%s: %w", EnvPrefix, name, err)
		}
		*dst = b
		return nil
	}
	str("INSTANCE_NAME", &c.InstanceName)
	str("DATA", &c.Data)
	str("LISTEN", &c.Listen)
	str("UNIX", &c.Unix)
	str("SYSADM_LISTEN", &c.SysadmListen)
	str("TLS_CERT", &c.TLSCert)
	str("TLS_KEY", &c.TLSKey)
	str("LOG_LEVEL", &c.LogLevel)
	str("LOG_FORMAT", &c.LogFormat)
	str("TIMEZONE", &c.Timezone)
	str("ADMIN_PASSWORD", &c.AdminPassword)
	return errors.Join(boolean("TLS_SELF_SIGNED", &c.TLSSelfSigned), boolean("DEMO", &c.Demo))
}

// Duration is a time.Duration that reads from JSON as a Go duration string ("20m", "1h30m")
// or as a number of seconds, and writes as a string.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("duration: want a string like \"20m\" or a number of seconds, got %s", s)
	}
	if math.Abs(secs) > float64(math.MaxInt64)/float64(time.Second) {
		return fmt.Errorf("duration: %s seconds is out of range", s)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
