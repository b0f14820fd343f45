package auth

import (
	"fmt"
	"runtime"

	"gatehouse/core"
	"gatehouse/modules/auth/password"
)

// DefaultMinPasswordLength is the default of min_password_length.
const DefaultMinPasswordLength = 8

var (
	_ core.Defaulter     = (*Module)(nil)
	_ core.ConfigChecker = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: the password hash parameters, the hashing
// concurrency (GOMAXPROCS of this process) and the minimum password length.
func (m *Module) ApplyDefaults() {
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
