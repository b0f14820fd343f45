package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// The credential types as stored (see resource.CredentialType for what each client sees).
const (
	// TypeRFIDCard is an RFID card: card id and number of bits.
	TypeRFIDCard = resource.TypeRFIDCard
	// TypePINCode is a PIN code alone.
	TypePINCode = resource.TypePINCode
	// TypeRFIDCardPIN is an RFID card that must be followed by its PIN; Leosac-dialect clients
	// see it as an rfid-card with "pin-required": true.
	TypeRFIDCardPIN = resource.TypeRFIDCardPIN
)

// Limits of credential attributes.
const (
	maxNbBits    = 128
	minPINLength = 4
	maxPINLength = 12
)

// hiddenPIN is what clients see in place of a PIN, and may send back to keep it.
const hiddenPIN = "***"

// Credential is a row of the credentials table. CardID is lower-case hex bytes separated by
// ':' (the raw Wiegand bit stream, see reference §5.3), NbBits the number of bits read. PinHash
// is the keyed hash of the PIN (PINHasher.Hash for pin-code, PINHasher.HashFor for
// rfid-card-pin); it never leaves the server.
type Credential struct {
	ID              int64 `gorm:"primaryKey"`
	Type            string
	Alias           string
	AliasFold       string
	Description     string
	OwnerID         *int64
	CardID          string
	NbBits          int
	PinHash         string `json:"-"`
	ValidityEnabled bool
	ValidityStart   *time.Time
	ValidityEnd     *time.Time
	Version         int64
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// TableName implements GORM's tabler.
func (Credential) TableName() string { return "credentials" }

// HasCard reports whether the credential's type carries a card id and number of bits.
func (c *Credential) HasCard() bool { return c.Type == TypeRFIDCard || c.Type == TypeRFIDCardPIN }

// HasPIN reports whether the credential's type carries a PIN.
func (c *Credential) HasPIN() bool { return c.Type == TypePINCode || c.Type == TypeRFIDCardPIN }

// Validity returns the credential's validity window.
func (c *Credential) Validity() resource.Validity {
	return resource.Validity{Enabled: c.ValidityEnabled, Start: c.ValidityStart, End: c.ValidityEnd}
}

func (c *Credential) setValidity(v resource.Validity) {
	c.ValidityEnabled, c.ValidityStart, c.ValidityEnd = v.Enabled, v.Start, v.End
}

func (c *Credential) owner() int64 {
	if c.OwnerID == nil {
		return 0
	}
	return *c.OwnerID
}

// snapshot is what the audit trail keeps of a credential: never the PIN or its hash.
func (c *Credential) snapshot() map[string]any {
	s := map[string]any{
		"id": c.ID, "type": c.Type, "alias": c.Alias, "description": c.Description,
		"owner_id": c.OwnerID, "version": c.Version,
	}
	if c.HasCard() {
		s["card_id"], s["nb_bits"] = c.CardID, c.NbBits
	}
	c.Validity().Attributes(s)
	return s
}

// data is the payload of the credential.* topics: no PIN, no hash.
func (c *Credential) data() map[string]any {
	d := map[string]any{"id": c.ID, "type": c.Type, "owner_id": c.OwnerID}
	if c.HasCard() {
		d["card_id"], d["nb_bits"] = c.CardID, c.NbBits
	}
	return d
}

func (m *Module) registerCredentials(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "credential.read", Handler: m.credentialRead},
		core.Method{Type: "credential.create", Handler: m.credentialCreate},
		core.Method{Type: "credential.update", Handler: m.credentialUpdate},
		core.Method{Type: "credential.delete", Handler: m.credentialDelete},
	)
}

func loadCredential(ctx context.Context, q *gorm.DB, id int64) (Credential, error) {
	return resource.Take[Credential](ctx, q, "credential", id)
}

// credentialObjects serialises credentials with their relationships, loading the schedules of
// all of them in one query (all=true: the credentials are every credential, no id filter).
// A session that gets only Leosac's types (core.Session.LeosacTypes) sees a card + PIN
// credential as an "rfid-card" without "code", and every rfid-card with "pin-required".
func (m *Module) credentialObjects(ctx context.Context, sess *core.Session, creds []Credential, all bool) ([]resource.Object, error) {
	out := make([]resource.Object, len(creds))
	if len(creds) == 0 {
		return out, nil
	}
	ids := make([]int64, len(creds))
	for i := range creds {
		ids[i] = creds[i].ID
	}
	where, args := "mc.credential_id IN ?", []any{ids}
	if all {
		where, args = "1", nil
	}
	var links []struct{ CredentialID, ScheduleID int64 }
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT DISTINCT mc.credential_id, sm.schedule_id FROM mapping_credentials mc
		JOIN schedule_mappings sm ON sm.id = mc.mapping_id WHERE `+where+` ORDER BY 1, 2`, args...).
		Scan(&links).Error; err != nil {
		return nil, resource.DBError(err)
	}
	schedules := map[int64][]int64{}
	for _, l := range links {
		schedules[l.CredentialID] = append(schedules[l.CredentialID], l.ScheduleID)
	}
	leosac := sess.LeosacTypes()
	for i := range creds {
		c := &creds[i]
		attrs := map[string]any{"version": c.Version, "alias": c.Alias, "description": c.Description}
		c.Validity().Attributes(attrs)
		if c.HasCard() {
			attrs["card-id"], attrs["nb-bits"] = c.CardID, c.NbBits
		}
		switch {
		case leosac && c.HasCard():
			attrs[resource.PINRequiredAttr] = c.Type == TypeRFIDCardPIN
		case c.HasPIN():
			attrs["code"] = hiddenPIN
		}
		out[i] = resource.Object{
			ID: c.ID, Type: resource.CredentialType(sess, c.Type), Attributes: attrs,
			Relationships: map[string]resource.Rel{
				"owner":     resource.One("user", c.owner()),
				"schedules": resource.Many("schedule", schedules[c.ID]),
			},
		}
	}
	return out, nil
}

// credentialRead: id 0 lists the credentials the caller may read (all for viewers and above,
// else the caller's own); any other id reads one of them.
func (m *Module) credentialRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "credential_id")
	if err != nil {
		return nil, err
	}
	c := call.Caller
	if id == 0 {
		var creds []Credential
		q := m.db.Read.WithContext(ctx).Order("id")
		if !resource.ReadsAll(c) {
			q = q.Where("owner_id = ?", c.UserID)
		}
		if err := q.Find(&creds).Error; err != nil {
			return nil, resource.DBError(err)
		}
		objs, err := m.credentialObjects(ctx, call.Session, creds, resource.ReadsAll(c))
		if err != nil {
			return nil, err
		}
		return resource.List(objs), nil
	}
	cr, err := loadCredential(ctx, m.db.Read, id)
	if err != nil {
		return nil, err
	}
	if !resource.ReadsAll(c) && cr.owner() != c.UserID {
		return nil, core.ErrPermissionDenied
	}
	objs, err := m.credentialObjects(ctx, call.Session, []Credential{cr}, false)
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

// optionalID is an id attribute that distinguishes absent (Set false) from null or 0 (Set,
// ID 0). It accepts a JSON integer or a string of digits (JSON:API clients send ids as
// strings).
type optionalID struct {
	Set bool
	ID  int64
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optionalID) UnmarshalJSON(b []byte) error {
	o.Set = true
	s := string(b)
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return core.E(core.InvalidArgument, "owner_id: want an integer or null", nil)
		}
		if s == "" {
			return nil
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return core.E(core.InvalidArgument, "owner_id: want an integer or null", nil)
	}
	o.ID = id
	return nil
}

// credentialAttributes are the attributes of credential.create and credential.update. A nil
// field was absent.
type credentialAttributes struct {
	Alias           *string       `json:"alias"`
	Description     *string       `json:"description"`
	OwnerID         optionalID    `json:"owner_id"`
	CardID          *string       `json:"card-id"`
	NbBits          *int          `json:"nb-bits"`
	Code            *string       `json:"code"`
	PINRequired     *bool         `json:"pin-required"`
	ValidityEnabled *bool         `json:"validity-enabled"`
	ValidityStart   resource.Date `json:"validity-start"`
	ValidityEnd     resource.Date `json:"validity-end"`
}

var cardIDPattern = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2})*$`)

// apply changes cr by the attributes except owner and PIN, and returns the field errors of the
// resulting credential's alias, card and validity.
func (a *credentialAttributes) apply(cr *Credential) []core.FieldError {
	var errs []core.FieldError
	if a.Alias != nil {
		cr.Alias, cr.AliasFold = *a.Alias, resource.Fold(*a.Alias)
	}
	if a.Description != nil {
		cr.Description = *a.Description
	}
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "alias", Value: a.Alias}, resource.Text{Attr: "description", Value: a.Description})...)
	if cr.HasCard() {
		if a.CardID != nil {
			cr.CardID = strings.ToLower(strings.TrimSpace(*a.CardID))
		}
		if a.NbBits != nil {
			cr.NbBits = *a.NbBits
		}
		errs = append(errs, validateCard(cr.CardID, cr.NbBits)...)
	}
	v, verrs := resource.ValidityPatch{Enabled: a.ValidityEnabled, Start: a.ValidityStart, End: a.ValidityEnd}.Apply(cr.Validity())
	cr.setValidity(v)
	return append(errs, verrs...)
}

// validateCard checks a (lower-cased) card id and its number of bits: hex bytes separated by
// ':', exactly as many bytes as the bits need, 1 to 128 bits.
func validateCard(cardID string, nbBits int) []core.FieldError {
	var errs []core.FieldError
	formatOK := cardIDPattern.MatchString(cardID)
	if !formatOK {
		errs = append(errs, core.FieldError{Detail: "Card id must have aa:bb:cc:11 format.", Pointer: "data/attributes/cardId"})
	}
	bitsOK := false
	switch {
	case nbBits <= 0:
		errs = append(errs, core.FieldError{Detail: "The number of bits must be > 0", Pointer: "data/attributes/nbBits"})
	case nbBits > maxNbBits:
		errs = append(errs, core.FieldError{Detail: fmt.Sprintf("The number of bits must be ≤ %d", maxNbBits), Pointer: "data/attributes/nbBits"})
	default:
		bitsOK = true
	}
	if formatOK && bitsOK {
		if bytes, need := (len(cardID)+1)/3, (nbBits+7)/8; bytes != need {
			errs = append(errs, core.FieldError{
				Detail:  fmt.Sprintf("Card id must have %d bytes for %d bits, not %d.", need, nbBits, bytes),
				Pointer: "data/attributes/cardId",
			})
		}
	}
	return errs
}

// validatePIN checks a PIN: digits only, 4 to 12 of them. The PIN is never part of a message.
func validatePIN(code string) []core.FieldError {
	for _, r := range code {
		if r < '0' || r > '9' {
			return []core.FieldError{{Detail: fmt.Sprintf("Pin code contains invalid character: %c", r), Pointer: "data/attributes/code"}}
		}
	}
	if n := len(code); n < minPINLength || n > maxPINLength {
		return []core.FieldError{{Detail: fmt.Sprintf("Pin code must be %d to %d digits long.", minPINLength, maxPINLength), Pointer: "data/attributes/code"}}
	}
	return nil
}

// pinHash returns the stored hash of a PIN for the credential (bound to the card for card +
// PIN credentials).
func (m *Module) pinHash(cr *Credential, code string) string {
	if cr.Type == TypeRFIDCardPIN {
		return m.pins.HashFor(cr.CardID, cr.NbBits, code)
	}
	return m.pins.Hash(code)
}

// checkCredential checks, inside the write transaction, the owner's existence and the
// uniqueness of the card and of a lone PIN.
func checkCredential(ctx context.Context, tx *gorm.DB, cr *Credential) error {
	if cr.OwnerID != nil {
		var n int64
		if err := tx.WithContext(ctx).Raw(`SELECT COUNT(*) FROM users WHERE id = ?`, *cr.OwnerID).Scan(&n).Error; err != nil {
			return resource.DBError(err)
		}
		if n == 0 {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("User %d does not exist.", *cr.OwnerID), Pointer: "data/attributes/owner_id"})
		}
	}
	if cr.HasCard() {
		var other []int64
		if err := tx.WithContext(ctx).Raw(`SELECT id FROM credentials WHERE type = ? AND card_id = ? AND nb_bits = ? AND id <> ? LIMIT 1`,
			cr.Type, cr.CardID, cr.NbBits, cr.ID).Scan(&other).Error; err != nil {
			return resource.DBError(err)
		}
		if len(other) > 0 {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("This card is already registered (credential %d).", other[0]), Pointer: "data/attributes/cardId"})
		}
	}
	if cr.Type == TypePINCode {
		var n int64
		if err := tx.WithContext(ctx).Raw(`SELECT COUNT(*) FROM credentials WHERE type = ? AND pin_hash = ? AND id <> ?`,
			TypePINCode, cr.PinHash, cr.ID).Scan(&n).Error; err != nil {
			return resource.DBError(err)
		}
		if n > 0 {
			return core.Validation(core.FieldError{Detail: "This PIN is already in use.", Pointer: "data/attributes/code"})
		}
	}
	return nil
}

// ownerOf turns an owner_id attribute into the column value: 0 or null is unowned; a negative
// id names nobody.
func ownerOf(o optionalID) (*int64, []core.FieldError) {
	switch {
	case o.ID == 0:
		return nil, nil
	case o.ID < 0:
		return nil, []core.FieldError{{Detail: fmt.Sprintf("User %d does not exist.", o.ID), Pointer: "data/attributes/owner_id"}}
	}
	id := o.ID
	return &id, nil
}

// credentialCreate creates a credential of the type given at the top level of the content
// (managers and above). An "rfid-card" whose attributes say "pin-required": true is a card +
// PIN credential (Leosac clients' way to create one), and then needs its "code".
func (m *Module) credentialCreate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		Type       *string              `json:"credential-type"`
		Attributes credentialAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	cr := Credential{ValidityEnabled: true, Version: 1}
	if req.Type != nil {
		cr.Type = *req.Type
	}
	if !cr.HasCard() && !cr.HasPIN() {
		return nil, core.Validation(core.FieldError{Detail: fmt.Sprintf("Credential type %s is not supported.", cr.Type), Pointer: "data/type"})
	}
	a := &req.Attributes
	if ferr := pinRequired(&cr, a.PINRequired); ferr != nil {
		return nil, core.Validation(*ferr)
	}
	errs := a.apply(&cr)
	owner, oerrs := ownerOf(a.OwnerID)
	cr.OwnerID = owner
	errs = append(errs, oerrs...)
	if cr.HasPIN() {
		code := ""
		if a.Code != nil {
			code = *a.Code
		}
		if perrs := validatePIN(code); perrs != nil {
			errs = append(errs, perrs...)
		} else {
			cr.PinHash = m.pinHash(&cr, code)
		}
	}
	if len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if err := resource.RequireManager(c); err != nil {
			return err
		}
		if err := checkCredential(ctx, tx.DB, &cr); err != nil {
			return err
		}
		if err := tx.Create(&cr).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "credential.created", Kind: eventlog.KindCredential, Mask: eventlog.CredentialCreated, Caller: call.Caller,
			TargetID: cr.ID, UserID: cr.owner(), Description: fmt.Sprintf("Credential %q (%d, %s) created.", cr.Alias, cr.ID, cr.Type),
			After: cr.snapshot(), Data: cr.data(),
		})
	})
	if err != nil {
		return nil, err
	}
	objs, err := m.credentialObjects(ctx, call.Session, []Credential{cr}, false)
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

// credentialUpdate edits a credential (managers and above). Absent attributes keep their
// value; the type cannot change, except that "pin-required" turns a card into a card + PIN
// credential (a new PIN must then be given) and back (its PIN is forgotten); a
// "credential-type" of "rfid-card" names any card. A PIN sent as "***" or absent is kept,
// except that changing the card of a card + PIN credential needs the PIN again (its hash is
// bound to the card).
func (m *Module) credentialUpdate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		CredentialID int64                `json:"credential_id"`
		Type         *string              `json:"credential-type"`
		Attributes   credentialAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	a := &req.Attributes
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if err := resource.RequireManager(c); err != nil {
			return err
		}
		before, err := loadCredential(ctx, tx.DB, req.CredentialID)
		if err != nil {
			return err
		}
		cr := before
		if ferr := pinRequired(&cr, a.PINRequired); ferr != nil {
			return core.Validation(*ferr)
		}
		// "rfid-card" names every card to a Leosac client, a card + PIN one included.
		if req.Type != nil && *req.Type != cr.Type && (*req.Type != TypeRFIDCard || !cr.HasCard()) {
			return core.Validation(core.FieldError{Detail: "The type of a credential cannot change.", Pointer: "data/type"})
		}
		if cr.Type == TypeRFIDCard {
			cr.PinHash = "" // a card that no longer requires its PIN forgets it
		}
		errs := a.apply(&cr)
		if a.OwnerID.Set {
			owner, oerrs := ownerOf(a.OwnerID)
			cr.OwnerID = owner
			errs = append(errs, oerrs...)
		}
		pinChanged := false
		if cr.HasPIN() {
			newPIN := a.Code != nil && *a.Code != hiddenPIN
			cardChanged := cr.CardID != before.CardID || cr.NbBits != before.NbBits
			switch {
			case newPIN:
				if perrs := validatePIN(*a.Code); perrs != nil {
					errs = append(errs, perrs...)
				} else {
					cr.PinHash, pinChanged = m.pinHash(&cr, *a.Code), true
				}
			case cr.Type == TypeRFIDCardPIN && before.Type != TypeRFIDCardPIN:
				errs = append(errs, core.FieldError{Detail: "A PIN must be given to require one.", Pointer: "data/attributes/code"})
			case cr.Type == TypeRFIDCardPIN && cardChanged:
				errs = append(errs, core.FieldError{Detail: "The PIN must be given again when the card changes.", Pointer: "data/attributes/code"})
			}
		}
		if len(errs) > 0 {
			return core.Validation(errs...)
		}
		if err := checkCredential(ctx, tx.DB, &cr); err != nil {
			return err
		}
		cr.Version++
		cr.UpdatedAt = time.Now().UTC()
		if err := tx.Model(&Credential{}).Where("id = ?", cr.ID).Updates(map[string]any{
			"type": cr.Type, "alias": cr.Alias, "alias_fold": cr.AliasFold, "description": cr.Description, "owner_id": cr.OwnerID,
			"card_id": cr.CardID, "nb_bits": cr.NbBits, "pin_hash": cr.PinHash,
			"validity_enabled": cr.ValidityEnabled, "validity_start": cr.ValidityStart, "validity_end": cr.ValidityEnd,
			"version": cr.Version, "updated_at": cr.UpdatedAt,
		}).Error; err != nil {
			return resource.DBError(err)
		}
		desc := fmt.Sprintf("Credential %q (%d, %s) updated.", cr.Alias, cr.ID, cr.Type)
		if cr.Type != before.Type {
			desc = fmt.Sprintf("Credential %q (%d, %s, now %s) updated.", cr.Alias, cr.ID, before.Type, cr.Type)
		}
		if pinChanged {
			desc += " PIN changed."
		}
		return tx.Record(eventlog.Change{
			Topic: "credential.updated", Kind: eventlog.KindCredential, Mask: eventlog.CredentialUpdated, Caller: call.Caller,
			TargetID: cr.ID, UserID: cr.owner(), Description: desc,
			Before: before.snapshot(), After: cr.snapshot(), Data: cr.data(),
		})
	})
	return nil, err
}

// credentialDelete deletes a credential (managers and above) and, through the foreign keys, its
// places in schedule mappings.
func (m *Module) credentialDelete(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "credential_id")
	if err != nil {
		return nil, err
	}
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if err := resource.RequireManager(c); err != nil {
			return err
		}
		cr, err := loadCredential(ctx, tx.DB, id)
		if err != nil {
			return err
		}
		if err := tx.Delete(&Credential{}, cr.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "credential.deleted", Kind: eventlog.KindCredential, Mask: eventlog.CredentialDeleted, Caller: call.Caller,
			TargetID: cr.ID, UserID: cr.owner(), Description: fmt.Sprintf("Credential %q (%d, %s) deleted.", cr.Alias, cr.ID, cr.Type),
			Before: cr.snapshot(), Data: cr.data(),
		})
	})
	return nil, err
}

// pinRequired applies the "pin-required" attribute, the Leosac dialect's way of naming a card
// + PIN credential (Leosac 0.8 has no such type): true makes a card a card + PIN credential,
// false a card alone; absent keeps the type. It is an error on a PIN code.
func pinRequired(cr *Credential, req *bool) *core.FieldError {
	switch {
	case req == nil:
		return nil
	case !cr.HasCard():
		return &core.FieldError{Detail: "pin-required applies to cards only.", Pointer: "data/attributes/pin-required"}
	case *req:
		cr.Type = TypeRFIDCardPIN
	default:
		cr.Type = TypeRFIDCard
	}
	return nil
}
