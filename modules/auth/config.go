package auth

import (
	"fmt"
	"runtime"
	"time"

	"gatehouse/core"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/auth/throttle"
)

// DefaultMinPasswordLength is the default of min_password_length.
const DefaultMinPasswordLength = 8

var (
	_ core.Defaulter     = (*Module)(nil)
	_ core.ConfigChecker = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: the password hash parameters, the hashing
// concurrency (GOMAXPROCS of this process), the minimum password length and the login
// throttling limits (throttle.Config.WithDefaults, device tokens valid 90 days).
func (m *Module) ApplyDefaults() {
	th := &m.Throttle
	d := throttle.Config{}.WithDefaults()
	for _, f := range []struct {
		v   *int
		def int
	}{{&th.UserAddrLimit, d.UserAddrLimit}, {&th.AddrLimit, d.AddrLimit}, {&th.UserLimit, d.UserLimit}, {&th.DeviceLimit, d.DeviceLimit}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		v   *core.Duration
		def time.Duration
	}{{&th.Window, d.Window}, {&th.BaseDelay, d.BaseDelay}, {&th.MaxDelay, d.MaxDelay}, {&th.DeviceLifetime, 90 * 24 * time.Hour}} {
		if *f.v <= 0 {
			*f.v = core.Duration(f.def)
		}
	}
	if m.MinPasswordLength <= 0 {
		m.MinPasswordLength = DefaultMinPasswordLength
	}
	if m.PasswordHash.MemoryKiB == 0 {
		m.PasswordHash.MemoryKiB = password.DefaultParams.MemoryKiB
	}
	if m.PasswordHash.Iterations == 0 {
		m.PasswordHash.Iterations = password.DefaultParams.Iterations
	}
	if m.PasswordHash.Parallelism == 0 {
		m.PasswordHash.Parallelism = password.DefaultParams.Parallelism
	}
	if m.HashConcurrency <= 0 {
		m.HashConcurrency = runtime.GOMAXPROCS(0)
	}
}

// CheckConfig implements core.ConfigChecker: GATEHOUSE_ADMIN_PASSWORD, when set, must be
// acceptable as a password, so that a first start never creates a database and then fails
// on it.
func (m *Module) CheckConfig(cfg core.Config) error {
	if m.MinPasswordLength > password.MaxLength {
		return fmt.Errorf("min_password_length %d is above the longest password accepted (%d)", m.MinPasswordLength, password.MaxLength)
	}
	if pw := cfg.AdminPassword; pw != "" && (len(pw) < m.MinPasswordLength || len(pw) > password.MaxLength) {
		return fmt.Errorf("%sADMIN_PASSWORD must be %d to %d characters long", core.EnvPrefix, m.MinPasswordLength, password.MaxLength)
	}
	return nil
}
