package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gatehouse/db"
	"gatehouse/modules/auth/throttle"
)

// Device tokens implement OWASP's "device cookies"
// (https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies): after
// a successful login the client gets a token signed by the server and bound to the user (id and
// username); a later login for that user presenting it is a "trusted client" that is not refused
// when the username is under attack, within the token's own failure budget. The tokens are not
// stored: only the failures of a token are (login_devices), so that they survive a restart.
//
// Form: "gd1." base64url(user_id "|" username "|" device id "|" issued unix seconds) "."
// base64url(HMAC-SHA256 of the part before the last dot). The key is a random 32 bytes kept
// in the meta table (device_token_key), created on first start.

const (
	deviceTokenPrefix = "gd1."
	deviceKeyMeta     = "device_token_key"
	// maxDeviceToken bounds what is parsed.
	maxDeviceToken = 512
)

// deviceSigner issues and checks device tokens.
type deviceSigner struct {
	key      []byte
	lifetime time.Duration
}

// deviceClaims is what a valid device token says.
type deviceClaims struct {
	UserID int64
	ID     string
}

// loadDeviceKey returns the device token key, creating it on first use.
func loadDeviceKey(ctx context.Context, d *db.DB) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	if err := d.Write.WithContext(ctx).Exec(`INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING`,
		deviceKeyMeta, hex.EncodeToString(fresh[:])).Error; err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	var v string
	if err := d.Write.WithContext(ctx).Raw(`SELECT value FROM meta WHERE key = ?`, deviceKeyMeta).Scan(&v).Error; err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, errors.New("device token key: malformed value in meta")
	}
	return key, nil
}

func (d *deviceSigner) mac(payload string) []byte {
	h := hmac.New(sha256.New, d.key)
	h.Write([]byte(deviceTokenPrefix + payload))
	return h.Sum(nil)
}

// issue returns a new device token for the user.
func (d *deviceSigner) issue(u User, now time.Time) (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("device token: %w", err)
	}
	b64 := base64.RawURLEncoding
	payload := b64.EncodeToString(fmt.Appendf(nil, "%d|%s|%s|%d", u.ID, strings.ToLower(u.Username), hex.EncodeToString(id[:]), now.Unix()))
	return deviceTokenPrefix + payload + "." + b64.EncodeToString(d.mac(payload)), nil
}

// verify returns the claims of a device token that is genuine, unexpired and bound to
// username; ok is false for anything else (the client is then untrusted).
func (d *deviceSigner) verify(tok, username string, now time.Time) (deviceClaims, bool) {
	if len(tok) > maxDeviceToken || !strings.HasPrefix(tok, deviceTokenPrefix) {
		return deviceClaims{}, false
	}
	payload, sig, ok := strings.Cut(tok[len(deviceTokenPrefix):], ".")
	if !ok {
		return deviceClaims{}, false
	}
	b64 := base64.RawURLEncoding
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, d.mac(payload)) {
		return deviceClaims{}, false
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return deviceClaims{}, false
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 4 || f[1] != strings.ToLower(username) || len(f[2]) != 32 {
		return deviceClaims{}, false
	}
	uid, err1 := strconv.ParseInt(f[0], 10, 64)
	issued, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || now.After(time.Unix(issued, 0).Add(d.lifetime)) {
		return deviceClaims{}, false
	}
	return deviceClaims{UserID: uid, ID: f[2]}, true
}

// loadLoginState gives the throttle the trusted username+address pairs and device token
// failures persisted by earlier runs.
func (m *Module) loadLoginState(ctx context.Context) error {
	now := m.now()
	var pairs []struct {
		Username string
		Address  string
		Until    time.Time
	}
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT u.username AS username, t.address AS address, t.until AS until
		FROM login_trusted_addresses t JOIN users u ON u.id = t.user_id WHERE julianday(t.until) > julianday(?)`, now).Scan(&pairs).Error; err != nil {
		return fmt.Errorf("load trusted addresses: %w", err)
	}
	for _, p := range pairs {
		m.throttle.Trust(p.Username, p.Address, p.Until)
	}
	var devs []struct {
		ID          string
		Failures    string
		LockedUntil *time.Time
		Locks       int
	}
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT id, failures, locked_until, locks FROM login_devices`).Scan(&devs).Error; err != nil {
		return fmt.Errorf("load device token state: %w", err)
	}
	for _, d := range devs {
		var s throttle.State
		if err := json.Unmarshal([]byte(d.Failures), &s.Fails); err != nil {
			continue
		}
		if d.LockedUntil != nil {
			s.LockedUntil = *d.LockedUntil
		}
		s.Locks = d.Locks
		m.throttle.RestoreDevice(d.ID, s)
	}
	return nil
}

// saveTrust persists that the user's address is trusted until the given time.
func (m *Module) saveTrust(ctx context.Context, userID int64, host string, until time.Time) {
	err := m.db.Write.WithContext(ctx).Exec(`INSERT INTO login_trusted_addresses(user_id, address, until) VALUES (?, ?, ?)
		ON CONFLICT(user_id, address) DO UPDATE SET until = excluded.until`, userID, truncateString(host, 128), until.UTC()).Error
	if err != nil {
		m.log.Warn().Err(err).Int64("user_id", userID).Msg("trusted address not saved")
	}
}

// saveDevice persists the throttle's state of a device token (deleting it when there is
// nothing to remember).
func (m *Module) saveDevice(ctx context.Context, c deviceClaims) {
	s := m.throttle.DeviceState(c.ID)
	var err error
	if len(s.Fails) == 0 && s.Locks == 0 {
		err = m.db.Write.WithContext(ctx).Exec(`DELETE FROM login_devices WHERE id = ?`, c.ID).Error
	} else {
		fails, _ := json.Marshal(s.Fails)
		var locked *time.Time
		if !s.LockedUntil.IsZero() {
			t := s.LockedUntil.UTC()
			locked = &t
		}
		err = m.db.Write.WithContext(ctx).Exec(`INSERT INTO login_devices(id, user_id, failures, locked_until, locks, updated_at)
			SELECT ?, id, ?, ?, ?, ? FROM users WHERE id = ?
			ON CONFLICT(id) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until,
				locks = excluded.locks, updated_at = excluded.updated_at`,
			c.ID, string(fails), locked, s.Locks, m.now(), c.UserID).Error
	}
	if err != nil {
		m.log.Warn().Err(err).Int64("user_id", c.UserID).Msg("device token state not saved")
	}
}

// sweepLoginState deletes expired trust and device state nobody needs any more.
func (m *Module) sweepLoginState(ctx context.Context) {
	now := m.now()
	err := m.db.Write.WithContext(ctx).Exec(`DELETE FROM login_trusted_addresses WHERE julianday(until) <= julianday(?)`, now).Error
	if err == nil {
		keep := max(m.throttleCfg.Window, m.throttleCfg.MaxDelay, time.Hour)
		err = m.db.Write.WithContext(ctx).Exec(`DELETE FROM login_devices WHERE julianday(updated_at) < julianday(?) AND (locked_until IS NULL OR julianday(locked_until) < julianday(?))`,
			now.Add(-keep), now).Error
	}
	if err != nil {
		m.log.Warn().Err(err).Msg("login state sweep failed")
	}
}

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// DeviceCookieName is the name of the HTTP cookie that holds a browser's device token for a
// username (one cookie per username, so several people may share a browser): a prefix and the
// first 16 hex digits of the SHA-256 of the lower-cased username.
func DeviceCookieName(username string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(username)))
	return "gatehouse_device_" + hex.EncodeToString(sum[:8])
}

// DeviceTokenLifetime is how long a device token issued now stays valid.
func (m *Module) DeviceTokenLifetime() time.Duration { return m.devices.lifetime }
