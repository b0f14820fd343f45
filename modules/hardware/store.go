package hardware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// The kinds of hardware devices, as stored in hardware_devices.kind.
const (
	KindGPIO          = "gpio"
	KindLED           = "led"
	KindBuzzer        = "buzzer"
	KindWiegandReader = "wiegand-reader"
)

// Leosac's device classes (reference §3.10, S:src/hardware/Device.hpp).
const (
	ClassGPIO        = 1
	ClassRFIDReader  = 2
	ClassLED         = 3
	ClassBuzzer      = 4
	directionInput   = 0
	directionOutput  = 1
	interruptNone    = "none"
	defaultBlinkMs   = 3000
	defaultBlinkRate = 1000
)

// Device is a row of hardware_devices. Columns that do not apply to the row's Kind keep their
// defaults.
type Device struct {
	ID       string `gorm:"primaryKey"`
	Kind     string `gorm:"column:kind"`
	Name     string `gorm:"column:name"`
	NameFold string `gorm:"column:name_fold"`
	Enabled  bool   `gorm:"column:enabled"`
	// GPIO: a line of a Linux GPIO chip.
	Chip          string `gorm:"column:chip"`
	LineOffset    int64  `gorm:"column:line_offset"`
	Direction     int    `gorm:"column:direction"` // 0 input, 1 output (Leosac's encoding)
	ActiveLow     bool   `gorm:"column:active_low"`
	DefaultValue  bool   `gorm:"column:default_value"`
	InterruptMode string `gorm:"column:interrupt_mode"`
	// LED and buzzer.
	GPIOID        *string `gorm:"column:gpio_id"`
	BlinkDuration int64   `gorm:"column:blink_duration"` // ms
	BlinkSpeed    int64   `gorm:"column:blink_speed"`    // ms
	// Wiegand reader.
	Mode       string  `gorm:"column:mode"`
	GPIOHighID *string `gorm:"column:gpio_high_id"`
	GPIOLowID  *string `gorm:"column:gpio_low_id"`
	GreenLEDID *string `gorm:"column:green_led_id"`
	BuzzerID   *string `gorm:"column:buzzer_id"`

	Version   int64     `gorm:"column:version"`
	CreatedAt time.Time `gorm:"column:created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName implements GORM's tabler.
func (Device) TableName() string { return "hardware_devices" }

// ErrNotFound is returned by the loaders for a device that does not exist or is of another
// kind.
var ErrNotFound = errors.New("hardware: no such device")

// load reads the device with id of the given kind.
func load(ctx context.Context, q *gorm.DB, kind, id string) (Device, error) {
	var d Device
	err := q.WithContext(ctx).Where("id = ? AND kind = ?", id, kind).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("load %s %s: %w", kind, id, err)
	}
	return d, nil
}

// Line is a GPIO line as a reader or an output uses it.
type Line struct {
	// Name is the GPIO device's name.
	Name string `json:"name"`
	// Chip is the GPIO chip ("gpiochip0" or "/dev/gpiochip0").
	Chip string `json:"chip"`
	// Offset is the line's offset on the chip.
	Offset int `json:"offset"`
	// ActiveLow: the line is active (on) when low.
	ActiveLow bool `json:"active_low"`
	// DefaultValue is the value an output takes when requested and when released.
	DefaultValue bool `json:"default_value"`
}

// Feedback is an LED or a buzzer on a GPIO output line.
type Feedback struct {
	// Name is the LED's or buzzer's name.
	Name string `json:"name"`
	// Line is its GPIO line.
	Line Line `json:"line"`
	// BlinkDuration is how long a blink lasts.
	BlinkDuration time.Duration `json:"blink_duration"`
	// BlinkSpeed is the period of a blink's on/off toggles; 0 is steadily on.
	BlinkSpeed time.Duration `json:"blink_speed"`
}

// ReaderWiring is a Wiegand reader as configured from Leosac's GUI, resolved down to its GPIO
// lines: what the wiegand module needs to run it.
type ReaderWiring struct {
	// ID and Name are the wiegand-reader device's.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Mode is Leosac's mode name (SIMPLE_WIEGAND, …).
	Mode string `json:"mode"`
	// High is the DATA1 line (Leosac's gpio-high), Low the DATA0 line (gpio-low).
	High Line `json:"high"`
	Low  Line `json:"low"`
	// GreenLED and Buzzer are the feedback outputs; nil when the reader has none, or when the
	// device or its GPIO is disabled or missing.
	GreenLED *Feedback `json:"green_led"`
	Buzzer   *Feedback `json:"buzzer"`
}

// LoadReaderWiring reads the Wiegand reader device with id and resolves its GPIO lines, LED and
// buzzer. It fails with ErrNotFound for an unknown reader, and with a descriptive error for a
// disabled reader or one whose data lines are missing, disabled, not inputs or on two chips.
func LoadReaderWiring(ctx context.Context, q *gorm.DB, id string) (ReaderWiring, error) {
	r, err := load(ctx, q, KindWiegandReader, id)
	if err != nil {
		return ReaderWiring{}, err
	}
	w := ReaderWiring{ID: r.ID, Name: r.Name, Mode: r.Mode}
	if !r.Enabled {
		return w, fmt.Errorf("wiegand-reader %q is disabled", r.Name)
	}
	dataLine := func(what string, ref *string) (Line, error) {
		if ref == nil {
			return Line{}, fmt.Errorf("wiegand-reader %q has no %s GPIO", r.Name, what)
		}
		g, err := load(ctx, q, KindGPIO, *ref)
		if err != nil {
			return Line{}, fmt.Errorf("wiegand-reader %q: %s GPIO: %w", r.Name, what, err)
		}
		if !g.Enabled {
			return Line{}, fmt.Errorf("wiegand-reader %q: %s GPIO %q is disabled", r.Name, what, g.Name)
		}
		if g.Direction != directionInput {
			return Line{}, fmt.Errorf("wiegand-reader %q: %s GPIO %q is not an input", r.Name, what, g.Name)
		}
		return lineOf(g), nil
	}
	if w.High, err = dataLine("high", r.GPIOHighID); err != nil {
		return w, err
	}
	if w.Low, err = dataLine("low", r.GPIOLowID); err != nil {
		return w, err
	}
	if w.High.Chip != w.Low.Chip {
		return w, fmt.Errorf("wiegand-reader %q: its data lines are on two chips (%s, %s)", r.Name, w.High.Chip, w.Low.Chip)
	}
	if w.GreenLED, err = loadFeedback(ctx, q, KindLED, r.GreenLEDID); err != nil {
		return w, err
	}
	if w.Buzzer, err = loadFeedback(ctx, q, KindBuzzer, r.BuzzerID); err != nil {
		return w, err
	}
	return w, nil
}

// loadFeedback resolves an LED or buzzer reference; nil when there is none, or when it or its
// GPIO is disabled, missing or not an output.
func loadFeedback(ctx context.Context, q *gorm.DB, kind string, ref *string) (*Feedback, error) {
	if ref == nil {
		return nil, nil
	}
	d, err := load(ctx, q, kind, *ref)
	if errors.Is(err, ErrNotFound) || err == nil && (!d.Enabled || d.GPIOID == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	g, err := load(ctx, q, KindGPIO, *d.GPIOID)
	if errors.Is(err, ErrNotFound) || err == nil && (!g.Enabled || g.Direction != directionOutput) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Feedback{Name: d.Name, Line: lineOf(g), BlinkDuration: time.Duration(d.BlinkDuration) * time.Millisecond,
		BlinkSpeed: time.Duration(d.BlinkSpeed) * time.Millisecond}, nil
}

func lineOf(g Device) Line {
	return Line{Name: g.Name, Chip: g.Chip, Offset: int(g.LineOffset), ActiveLow: g.ActiveLow, DefaultValue: g.DefaultValue}
}

// SearchHit is a device found by search.hardware_name, in Leosac's shape (reference §4.1):
// {"id": "<uuid>", "name", "device-class", "type"}.
type SearchHit struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DeviceClass int    `json:"device-class"`
	Type        string `json:"type"`
}

// Search returns the devices whose lower-cased name matches the SQL LIKE pattern, ordered by
// id, at most limit.
func Search(ctx context.Context, q *gorm.DB, pattern string, limit int) ([]SearchHit, error) {
	var rows []Device
	if err := q.WithContext(ctx).Where("name_fold LIKE ?", pattern).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("search hardware: %w", err)
	}
	out := make([]SearchHit, 0, len(rows))
	for _, d := range rows {
		for _, k := range kinds {
			if k.kind == d.Kind {
				out = append(out, SearchHit{ID: d.ID, Name: d.Name, DeviceClass: k.class, Type: k.jsonType})
			}
		}
	}
	return out, nil
}
