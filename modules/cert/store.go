package cert

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// Cert is a registered public key.
type Cert struct {
	ID       int64
	UserID   int64
	Username string
	// Fingerprint is the SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex: the key id.
	Fingerprint string
	// Algorithm is "rsa", "ed25519" or "ecdsa-p256".
	Algorithm string
	Nickname  string
	Email     string
	// RegisteredAt is when the key was registered, in UTC to the second.
	RegisteredAt time.Time
	// PublicKeyPEM is the key as a PEM "PUBLIC KEY" block (what sysadm clients list and name
	// keys by, base64-encoded). It is public, but the Leosac calls do not send it.
	PublicKeyPEM string
}

// Field limits of a registration.
const (
	MaxNickname = 64  // characters
	MaxEmail    = 254 // bytes
	// MaxKeysPerUser is the most keys one user holds (issue 10, point 5: a plain user must not
	// grow the database without bound); a registration beyond it is refused until one is
	// revoked.
	MaxKeysPerUser = 100
)

// row is a row of the certificates table joined with its owner's username.
type row struct {
	ID           int64     `gorm:"column:id"`
	UserID       int64     `gorm:"column:user_id"`
	Username     string    `gorm:"column:username"`
	Fingerprint  string    `gorm:"column:fingerprint"`
	Algorithm    string    `gorm:"column:algorithm"`
	KeySize      int       `gorm:"column:key_size"`
	PublicKey    []byte    `gorm:"column:public_key"`
	Nickname     string    `gorm:"column:nickname"`
	Email        string    `gorm:"column:email"`
	RegisteredAt time.Time `gorm:"column:registered_at"`
}

func (r *row) cert() Cert {
	return Cert{ID: r.ID, UserID: r.UserID, Username: r.Username, Fingerprint: r.Fingerprint,
		Algorithm: r.Algorithm, Nickname: r.Nickname, Email: r.Email,
		RegisteredAt: r.RegisteredAt.UTC().Truncate(time.Second), PublicKeyPEM: pemEncode(r.PublicKey)}
}

// snapshot is what the audit entry keeps of a key (no key material beyond the fingerprint).
func (r *row) snapshot() map[string]any {
	return map[string]any{"id": r.ID, "user_id": r.UserID, "fingerprint": r.Fingerprint,
		"algorithm": r.Algorithm, "nickname": r.Nickname, "email": r.Email}
}

// data is the payload of the key's bus events.
func (r *row) data() map[string]any {
	return map[string]any{"id": r.ID, "user_id": r.UserID, "fingerprint": r.Fingerprint, "algorithm": r.Algorithm}
}

const selectRows = `SELECT c.id, c.user_id, u.username, c.fingerprint, c.algorithm, c.key_size, c.public_key,
	c.nickname, c.email, c.registered_at FROM certificates c JOIN users u ON u.id = c.user_id`

// caller is who a call acts as, as of now in the database.
type caller struct {
	id       int64
	username string
	admin    bool
}

// currentCaller reads the caller's current username and rank: rights are re-checked on every
// call, whoever resolved the Identity. A caller who no longer exists gets PERMISSION_DENIED.
func currentCaller(ctx context.Context, tx *gorm.DB, c *core.Identity) (caller, error) {
	if c == nil {
		return caller{}, core.ErrPermissionDenied
	}
	var rows []struct {
		Username string
		Rank     core.Rank
	}
	if err := tx.WithContext(ctx).Raw(`SELECT username, rank FROM users WHERE id = ?`, c.UserID).Scan(&rows).Error; err != nil {
		return caller{}, resource.DBError(err)
	}
	if len(rows) == 0 {
		return caller{}, core.ErrPermissionDenied
	}
	return caller{id: c.UserID, username: rows[0].Username, admin: rows[0].Rank == core.RankAdministrator}, nil
}

// validateFields checks the nickname and email of a registration.
func validateFields(nickname, email string) []core.FieldError {
	var errs []core.FieldError
	if !utf8.ValidString(nickname) || utf8.RuneCountInString(nickname) > MaxNickname || strings.IndexFunc(nickname, unicode.IsControl) >= 0 {
		errs = append(errs, core.FieldError{Detail: fmt.Sprintf("The nickname must be at most %d characters, without control characters.", MaxNickname), Pointer: "data/attributes/nickname"})
	}
	if email != "" {
		a, err := mail.ParseAddress(email)
		if len(email) > MaxEmail || err != nil || a.Address != email || a.Name != "" {
			errs = append(errs, core.FieldError{Detail: fmt.Sprintf("The email must be a plain address (name@example.com) of at most %d characters.", MaxEmail), Pointer: "data/attributes/email"})
		}
	}
	return errs
}

// Register registers a key for the caller (every logged-in user registers keys for themselves
// only). pubKeyB64PEM is read by ParsePublicKey; nickname (at most 64 characters) and email
// (empty, or a plain address) are free labels. A bad key or field is a MODEL_EXCEPTION whose
// errors point at data/attributes/pub_key, nickname or email; a key already registered, by
// anyone, is a MODEL_EXCEPTION on pub_key that does not say by whom.
func (m *Module) Register(ctx context.Context, caller *core.Identity, pubKeyB64PEM, nickname, email string) (Cert, error) {
	var errs []core.FieldError
	key, err := ParsePublicKey(pubKeyB64PEM)
	if err != nil {
		errs = append(errs, core.FieldError{Detail: upperFirst(err.Error()) + ".", Pointer: "data/attributes/pub_key"})
	}
	errs = append(errs, validateFields(nickname, email)...)
	if len(errs) > 0 {
		return Cert{}, core.Validation(errs...)
	}
	if err := m.changes.Spend(caller); err != nil {
		return Cert{}, err
	}
	var r row
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, caller)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.Raw(`SELECT COUNT(*) FROM certificates WHERE fingerprint = ?`, key.Fingerprint).Scan(&n).Error; err != nil {
			return resource.DBError(err)
		}
		if n > 0 {
			return core.Validation(core.FieldError{Detail: "This key is already registered.", Pointer: "data/attributes/pub_key"})
		}
		if err := tx.Raw(`SELECT COUNT(*) FROM certificates WHERE user_id = ?`, c.id).Scan(&n).Error; err != nil {
			return resource.DBError(err)
		}
		if n >= MaxKeysPerUser {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("A user holds at most %d keys: revoke one first.", MaxKeysPerUser), Pointer: "data/attributes/pub_key"})
		}
		r = row{UserID: c.id, Username: c.username, Fingerprint: key.Fingerprint, Algorithm: key.Algorithm,
			KeySize: key.Size, PublicKey: key.DER, Nickname: nickname, Email: email,
			RegisteredAt: time.Now().UTC().Truncate(time.Second)}
		res := tx.Exec(`INSERT INTO certificates (user_id, fingerprint, algorithm, key_size, public_key, nickname, email, registered_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.UserID, r.Fingerprint, r.Algorithm, r.KeySize, r.PublicKey, r.Nickname, r.Email, r.RegisteredAt)
		if res.Error != nil {
			return resource.DBError(res.Error)
		}
		if err := tx.Raw(`SELECT last_insert_rowid()`).Scan(&r.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "cert.registered", Kind: eventlog.KindUser, Mask: eventlog.UserEdited, Caller: caller,
			TargetID: r.UserID, UserID: r.UserID,
			Description: fmt.Sprintf("Key %s (%s, %q) registered for user %q.", short(r.Fingerprint), r.Algorithm, r.Nickname, r.Username),
			After:       r.snapshot(), Data: r.data(),
		})
	})
	if err != nil {
		return Cert{}, err
	}
	return r.cert(), nil
}

// List returns the caller's keys, or every key for administrators, oldest first.
func (m *Module) List(ctx context.Context, caller *core.Identity) ([]Cert, error) {
	c, err := currentCaller(ctx, m.db.Read, caller)
	if err != nil {
		return nil, err
	}
	q := m.db.Read.WithContext(ctx)
	var rows []row
	if c.admin {
		err = q.Raw(selectRows + ` ORDER BY c.id`).Scan(&rows).Error
	} else {
		err = q.Raw(selectRows+` WHERE c.user_id = ? ORDER BY c.id`, c.id).Scan(&rows).Error
	}
	if err != nil {
		return nil, resource.DBError(err)
	}
	out := make([]Cert, len(rows))
	for i := range rows {
		out[i] = rows[i].cert()
	}
	return out, nil
}

// Revoke deletes a key by id. Users revoke their own keys, administrators anyone's. A key that
// does not exist, or that belongs to someone else when the caller is not an administrator, is
// ENTITY_NOT_FOUND alike, so that ids of other users' keys do not leak.
func (m *Module) Revoke(ctx context.Context, caller *core.Identity, certID int64) error {
	return m.revoke(ctx, caller, `c.id = ?`, certID, certID)
}

// RevokeByFingerprint is Revoke naming the key by its fingerprint (64 hex digits, any case).
// A malformed fingerprint is INVALID_ARGUMENT.
func (m *Module) RevokeByFingerprint(ctx context.Context, caller *core.Identity, fingerprint string) error {
	fp := strings.ToLower(strings.TrimSpace(fingerprint))
	if !validFingerprint(fp) {
		return core.E(core.InvalidArgument, "The fingerprint must be 64 hexadecimal digits (SHA-256).", nil)
	}
	return m.revoke(ctx, caller, `c.fingerprint = ?`, fp, fp)
}

func (m *Module) revoke(ctx context.Context, caller *core.Identity, where string, arg any, id any) error {
	if err := m.changes.Spend(caller); err != nil {
		return err
	}
	return m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, caller)
		if err != nil {
			return err
		}
		var rows []row
		if err := tx.Raw(selectRows+` WHERE `+where, arg).Scan(&rows).Error; err != nil {
			return resource.DBError(err)
		}
		if len(rows) == 0 || !c.admin && rows[0].UserID != c.id {
			return core.NotFound("certificate", id)
		}
		r := rows[0]
		if err := tx.Exec(`DELETE FROM certificates WHERE id = ?`, r.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "cert.revoked", Kind: eventlog.KindUser, Mask: eventlog.UserEdited, Caller: caller,
			TargetID: r.UserID, UserID: r.UserID,
			Description: fmt.Sprintf("Key %s (%s, %q) of user %q revoked.", short(r.Fingerprint), r.Algorithm, r.Nickname, r.Username),
			Before:      r.snapshot(), Data: r.data(),
		})
	})
}

// short returns the first 16 hex digits of a fingerprint, for descriptions.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
