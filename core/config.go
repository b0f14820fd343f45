package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	// Modules lists the modules to load, in order, each with its own configuration. When
	// absent, every standard module is loaded with its defaults.
	Modules []ModuleConfig `json:"modules,omitempty"`
}

// ModuleConfig is one entry of Config.Modules: the module ID and its raw configuration, which
// is decoded strictly into the module's value.
type ModuleConfig struct {
	Module string          `json:"module"`
	Config json.RawMessage `json:"config,omitempty"`
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

// StrictUnmarshal decodes JSON into v, refusing unknown fields and trailing data, and adds the
// byte offset to syntax errors.
func StrictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%w (at byte %d)", err, se.Offset)
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

// EnvPrefix prefixes every environment variable gatehouse reads.
const EnvPrefix = "GATEHOUSE_"

// ApplyEnv overrides fields from GATEHOUSE_* variables looked up through getenv: INSTANCE_NAME,
// DATA, LISTEN, UNIX, TLS_CERT, TLS_KEY, TLS_SELF_SIGNED, LOG_LEVEL, LOG_FORMAT, DEMO, TIMEZONE,
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
