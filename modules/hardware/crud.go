package hardware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// kindInfo is how one kind of device appears in Leosac's API.
type kindInfo struct {
	kind     string // hardware_devices.kind
	jsonType string // the JSON:API type
	entity   string // ENTITY_NOT_FOUND's entity_type
	idKey    string // the id argument key
	prefix   string // the message type prefix
	class    int    // device-class
}

var (
	gpioKind   = kindInfo{KindGPIO, "libgpiod-gpio", "libgpiod.gpio", "gpio_id", "libgpiod.gpio", ClassGPIO}
	ledKind    = kindInfo{KindLED, "led", "led", "led_id", "led", ClassLED}
	buzzerKind = kindInfo{KindBuzzer, "buzzer", "buzzer", "buzzer_id", "buzzer", ClassBuzzer}
	readerKind = kindInfo{KindWiegandReader, "wiegand-reader", "wiegand-reader", "reader_id", "wiegand-reader", ClassRFIDReader}
	kinds      = []kindInfo{gpioKind, ledKind, buzzerKind, readerKind}
)

// Types returns the JSON:API types these calls answer: Leosac's web GUI has a model for each.
func Types() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.jsonType
	}
	return out
}

// modes are the Wiegand reader modes Leosac accepts (S:src/modules/wiegand/WiegandConfig.cpp).
var modes = []string{"SIMPLE_WIEGAND", "WIEGAND_PIN_4BITS", "WIEGAND_PIN_8BITS", "WIEGAND_PIN_BUFFERED",
	"WIEGAND_CARD_PIN_4BITS", "WIEGAND_CARD_PIN_8BITS", "WIEGAND_CARD_PIN_BUFFERED", "AUTODETECT"}

// object is a device as sent to clients: a resource whose id is a UUID string.
type object struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Attributes    map[string]any `json:"attributes"`
	Relationships map[string]rel `json:"relationships,omitempty"`
}

type rel struct {
	Data *ref `json:"data"`
}

type ref struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

func one(k kindInfo, id *string) rel {
	if id == nil {
		return rel{}
	}
	return rel{Data: &ref{ID: *id, Type: k.jsonType}}
}

// serialize writes a device in Leosac's shape.
func serialize(k kindInfo, d Device) object {
	o := object{ID: d.ID, Type: k.jsonType, Attributes: map[string]any{
		"name": d.Name, "device-class": k.class, "enabled": d.Enabled}}
	switch k.kind {
	case KindGPIO:
		o.Attributes["number"] = d.LineOffset
		o.Attributes["offset"] = d.LineOffset
		o.Attributes["device"] = d.Chip
		o.Attributes["direction"] = d.Direction
		o.Attributes["default-value"] = d.DefaultValue
		o.Attributes["interrupt-mode"] = d.InterruptMode
		o.Attributes["active-low"] = d.ActiveLow
	case KindLED, KindBuzzer:
		o.Attributes["default-blink-duration"] = d.BlinkDuration
		o.Attributes["default-blink-speed"] = d.BlinkSpeed
		o.Relationships = map[string]rel{"gpio": one(gpioKind, d.GPIOID)}
	case KindWiegandReader:
		o.Attributes["mode"] = d.Mode
		o.Relationships = map[string]rel{
			"gpio-high": one(gpioKind, d.GPIOHighID), "gpio-low": one(gpioKind, d.GPIOLowID),
			"buzzer": one(buzzerKind, d.BuzzerID), "green-led": one(ledKind, d.GreenLEDID)}
	}
	return o
}

// errBadUUID is Leosac's answer to an id that is not a UUID string.
var errBadUUID = core.E(core.GeneralFailure, "Failed to unserialize UUID", nil)

// deviceID is an id argument or a reference attribute: a UUID string. Absent, null, 0, "" and
// the nil UUID all mean none (the GUI sends 0 for an empty relationship).
type deviceID struct {
	Set bool
	ID  string // "" = none
	Bad bool   // present but not a UUID string
}

// UnmarshalJSON implements json.Unmarshaler; a bad value is kept in Bad, not returned, so that
// the call answers Leosac's error.
func (d *deviceID) UnmarshalJSON(b []byte) error {
	*d = deviceID{Set: true}
	switch s := string(bytes.TrimSpace(b)); s {
	case "null", "0":
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		d.Bad = true
		return nil
	}
	if s == "" {
		return nil
	}
	u, err := uuid.Parse(s)
	if err != nil {
		d.Bad = true
		return nil
	}
	if u != uuid.Nil {
		d.ID = u.String()
	}
	return nil
}

// idArg reads the call's id argument; "" for none (list, or no such device).
func idArg(call *core.Call, key string) (string, error) {
	var raw map[string]json.RawMessage
	if err := call.Decode(&raw); err != nil {
		return "", err
	}
	var d deviceID
	if v, ok := raw[key]; ok {
		_ = d.UnmarshalJSON(v)
	}
	if d.Bad {
		return "", errBadUUID
	}
	return d.ID, nil
}

// notFound answers ENTITY_NOT_FOUND for id (the nil UUID when none was given, as Leosac).
func notFound(k kindInfo, id string) error {
	if id == "" {
		id = uuid.Nil.String()
	}
	return core.NotFound(k.entity, id)
}

func (m *Module) read(k kindInfo) core.Handler {
	return func(ctx context.Context, call *core.Call) (any, error) {
		if err := resource.RequireAdmin(call.Caller); err != nil {
			return nil, err
		}
		id, err := idArg(call, k.idKey)
		if err != nil {
			return nil, err
		}
		q := m.db.Read.WithContext(ctx)
		if id != "" {
			d, err := load(ctx, q, k.kind, id)
			if errors.Is(err, ErrNotFound) {
				return nil, notFound(k, id)
			}
			if err != nil {
				return nil, resource.DBError(err)
			}
			return resource.Single(serialize(k, d)), nil
		}
		var rows []Device
		if err := q.Where("kind = ?", k.kind).Order("id").Find(&rows).Error; err != nil {
			return nil, resource.DBError(err)
		}
		out := make([]object, len(rows))
		for i, d := range rows {
			out[i] = serialize(k, d)
		}
		return resource.List(out), nil
	}
}

// attributes are the writable attributes of every kind; each kind reads its own.
type attributes struct {
	Name    *string `json:"name"`
	Enabled *bool   `json:"enabled"`
	// GPIO.
	Device        *string         `json:"device"`
	Offset        *int64          `json:"offset"`
	Number        *int64          `json:"number"`
	Direction     json.RawMessage `json:"direction"`
	DefaultValue  json.RawMessage `json:"default-value"`
	ActiveLow     *bool           `json:"active-low"`
	InterruptMode *string         `json:"interrupt-mode"`
	// LED and buzzer.
	BlinkDuration *int64   `json:"default-blink-duration"`
	BlinkSpeed    *int64   `json:"default-blink-speed"`
	GPIO          deviceID `json:"gpio_id"`
	// Wiegand reader.
	Mode     *string  `json:"mode"`
	GPIOHigh deviceID `json:"gpio_high_id"`
	GPIOLow  deviceID `json:"gpio_low_id"`
	GreenLED deviceID `json:"green_led_id"`
	Buzzer   deviceID `json:"buzzer_id"`
}

func ptr(p string) string { return "data/attributes/" + p }

// apply copies the attributes of kind k onto d and validates them (MODEL_EXCEPTION), then
// checks the references in tx (ENTITY_NOT_FOUND naming the referenced kind).
func (in attributes) apply(ctx context.Context, tx *gorm.DB, k kindInfo, d *Device) error {
	var errs []core.FieldError
	bad := func(p, msg string) { errs = append(errs, core.FieldError{Detail: msg, Pointer: ptr(p)}) }
	if in.Name != nil {
		d.Name, d.NameFold = *in.Name, resource.Fold(*in.Name)
	}
	if in.Enabled != nil {
		d.Enabled = *in.Enabled
	}
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "name", Value: in.Name})...)
	if strings.TrimSpace(d.Name) == "" {
		bad("name", "Device name must be non empty")
	}
	type link struct {
		in   deviceID
		to   **string
		kind kindInfo
	}
	var links []link
	switch k.kind {
	case KindGPIO:
		errs = append(errs, resource.CheckTexts(resource.Text{Attr: "device", Value: in.Device})...)
		if in.Device != nil {
			d.Chip = strings.TrimSpace(*in.Device)
		}
		off := in.Offset
		if off == nil {
			off = in.Number
		}
		if off != nil {
			if *off < 0 || *off > 65535 {
				bad("offset", "The offset must be between 0 and 65535.")
			} else {
				d.LineOffset = *off
			}
		}
		if dir, ok := direction(in.Direction); !ok {
			bad("direction", "The direction must be 0 (in) or 1 (out).")
		} else if dir >= 0 {
			d.Direction = dir
		}
		if v, ok := boolish(in.DefaultValue); !ok {
			bad("default-value", "The default value must be a boolean.")
		} else if v != nil {
			d.DefaultValue = *v
		}
		if in.ActiveLow != nil {
			d.ActiveLow = *in.ActiveLow
		}
		if in.InterruptMode != nil {
			switch im := strings.ToLower(*in.InterruptMode); im {
			case "none", "rising", "falling", "both":
				d.InterruptMode = im
			default:
				bad("interrupt-mode", "The interrupt mode must be none, rising, falling or both.")
			}
		}
	case KindLED, KindBuzzer:
		if in.BlinkDuration != nil {
			if *in.BlinkDuration < 0 || *in.BlinkDuration > 15000 {
				bad("default-blink-duration", "The blink duration must be between 0 and 15000 ms.")
			} else {
				d.BlinkDuration = *in.BlinkDuration
			}
		}
		if in.BlinkSpeed != nil {
			if *in.BlinkSpeed < 0 || *in.BlinkSpeed > 5000 {
				bad("default-blink-speed", "The blink speed must be between 0 and 5000 ms.")
			} else {
				d.BlinkSpeed = *in.BlinkSpeed
			}
		}
		links = []link{{in.GPIO, &d.GPIOID, gpioKind}}
	case KindWiegandReader:
		if in.Mode != nil {
			mode := strings.ToUpper(strings.TrimSpace(*in.Mode))
			valid := false
			for _, m := range modes {
				valid = valid || m == mode
			}
			if !valid {
				bad("mode", "Invalid wiegand-reader mode.")
			} else {
				d.Mode = mode
			}
		}
		links = []link{{in.GPIOHigh, &d.GPIOHighID, gpioKind}, {in.GPIOLow, &d.GPIOLowID, gpioKind},
			{in.GreenLED, &d.GreenLEDID, ledKind}, {in.Buzzer, &d.BuzzerID, buzzerKind}}
	}
	for _, l := range links {
		if l.in.Bad {
			return errBadUUID
		}
	}
	if len(errs) > 0 {
		return core.Validation(errs...)
	}
	for _, l := range links {
		if !l.in.Set {
			continue
		}
		if l.in.ID == "" {
			*l.to = nil
			continue
		}
		if _, err := load(ctx, tx, l.kind.kind, l.in.ID); errors.Is(err, ErrNotFound) {
			return core.NotFound(l.kind.entity, l.in.ID)
		} else if err != nil {
			return resource.DBError(err)
		}
		id := l.in.ID
		*l.to = &id
	}
	var clash int64
	if err := tx.Model(&Device{}).Where("name = ? AND id <> ?", d.Name, d.ID).Count(&clash).Error; err != nil {
		return resource.DBError(err)
	}
	if clash > 0 {
		return core.Validation(core.FieldError{Detail: "Device name already used", Pointer: ptr("name")})
	}
	return nil
}

// direction reads 0/1 (Leosac, the GUI's direction transform) or "in"/"out"; -1 when absent.
func direction(raw json.RawMessage) (int, bool) {
	switch s := strings.Trim(string(bytes.TrimSpace(raw)), `"`); strings.ToLower(s) {
	case "", "null":
		return -1, true
	case "0", "in":
		return directionInput, true
	case "1", "out":
		return directionOutput, true
	}
	return 0, false
}

// boolish reads true/false or 1/0; nil when absent.
func boolish(raw json.RawMessage) (*bool, bool) {
	t, f := true, false
	switch string(bytes.TrimSpace(raw)) {
	case "", "null":
		return nil, true
	case "true", "1":
		return &t, true
	case "false", "0":
		return &f, true
	}
	return nil, false
}

// write runs fn in a write transaction; once committed, it logs the change with its author
// (these calls write no audit entry, as Leosac's) and publishes it.
func (m *Module) write(ctx context.Context, call *core.Call, topic string, k kindInfo, fn func(tx *gorm.DB) (string, error)) error {
	var id string
	err := m.db.Write.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		id, err = fn(tx)
		return err
	})
	if err != nil {
		var ce *core.Error
		if !errors.As(err, &ce) && strings.Contains(err.Error(), "UNIQUE") {
			return core.Validation(core.FieldError{Detail: "Device name already used", Pointer: ptr("name")})
		}
		return resource.DBError(err)
	}
	m.log.Info().Str("topic", topic).Str("type", k.jsonType).Str("device_id", id).Str("by", call.Caller.Username).
		Msg("hardware device changed")
	m.bus.Publish(core.Event{Topic: topic, Source: ModuleID, Data: map[string]string{"id": id, "type": k.jsonType}})
	return nil
}

func (m *Module) create(k kindInfo) core.Handler {
	return func(ctx context.Context, call *core.Call) (any, error) {
		if err := resource.RequireAdmin(call.Caller); err != nil {
			return nil, err
		}
		var req struct {
			Attributes attributes `json:"attributes"`
		}
		if err := call.Decode(&req); err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		d := Device{ID: uuid.NewString(), Kind: k.kind, Enabled: true, InterruptMode: interruptNone,
			BlinkDuration: defaultBlinkMs, BlinkSpeed: defaultBlinkRate, Mode: modes[0], Version: 1, CreatedAt: now, UpdatedAt: now}
		err := m.write(ctx, call, "hardware.created", k, func(tx *gorm.DB) (string, error) {
			if err := req.Attributes.apply(ctx, tx, k, &d); err != nil {
				return "", err
			}
			return d.ID, tx.Create(&d).Error
		})
		if err != nil {
			return nil, err
		}
		return resource.Single(serialize(k, d)), nil
	}
}

func (m *Module) update(k kindInfo) core.Handler {
	return func(ctx context.Context, call *core.Call) (any, error) {
		if err := resource.RequireAdmin(call.Caller); err != nil {
			return nil, err
		}
		id, err := idArg(call, k.idKey)
		if err != nil {
			return nil, err
		}
		var req struct {
			Attributes attributes `json:"attributes"`
		}
		if err := call.Decode(&req); err != nil {
			return nil, err
		}
		var d Device
		err = m.write(ctx, call, "hardware.updated", k, func(tx *gorm.DB) (string, error) {
			var err error
			if d, err = load(ctx, tx, k.kind, id); errors.Is(err, ErrNotFound) {
				return "", notFound(k, id)
			} else if err != nil {
				return "", err
			}
			if err := req.Attributes.apply(ctx, tx, k, &d); err != nil {
				return "", err
			}
			d.Version++
			d.UpdatedAt = time.Now().UTC()
			return d.ID, tx.Save(&d).Error
		})
		if err != nil {
			return nil, err
		}
		return resource.Single(serialize(k, d)), nil
	}
}

func (m *Module) remove(k kindInfo) core.Handler {
	return func(ctx context.Context, call *core.Call) (any, error) {
		if err := resource.RequireAdmin(call.Caller); err != nil {
			return nil, err
		}
		id, err := idArg(call, k.idKey)
		if err != nil {
			return nil, err
		}
		return nil, m.write(ctx, call, "hardware.deleted", k, func(tx *gorm.DB) (string, error) {
			res := tx.Where("id = ? AND kind = ?", id, k.kind).Delete(&Device{})
			if res.Error != nil {
				return "", res.Error
			}
			if res.RowsAffected == 0 {
				return "", notFound(k, id)
			}
			return id, nil
		})
	}
}
