package door

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Mode is a door's own mode, set with door.set_mode.
type Mode string

// Door modes.
const (
	// ModeNormal locks the strike except during a release window.
	ModeNormal Mode = "normal"
	// ModeUnlocked releases the strike until further notice; no credential is needed.
	ModeUnlocked Mode = "unlocked"
	// ModeLocked keeps the strike locked and refuses grants.
	ModeLocked Mode = "locked"
)

// ParseMode returns the door mode named s ("normal", "unlocked", "locked"), or an error
// wrapping ErrInvalidMode.
func ParseMode(s string) (Mode, error) {
	m := Mode(s)
	if !m.valid() {
		return "", fmt.Errorf("door mode %q: %w", s, ErrInvalidMode)
	}
	return m, nil
}

func (m Mode) valid() bool {
	return m == ModeNormal || m == ModeUnlocked || m == ModeLocked
}

// SiteMode is the site-wide mode, set with site.set_mode; it overrides every door's mode.
type SiteMode string

// Site modes.
const (
	// SiteNormal lets each door follow its own mode.
	SiteNormal SiteMode = "normal"
	// SiteLockdown locks every door; only exit requests release.
	SiteLockdown SiteMode = "lockdown"
	// SiteEvacuation releases every door.
	SiteEvacuation SiteMode = "evacuation"
)

// ParseSiteMode returns the site mode named s ("normal", "lockdown", "evacuation"), or an
// error wrapping ErrInvalidMode.
func ParseSiteMode(s string) (SiteMode, error) {
	m := SiteMode(s)
	if !m.valid() {
		return "", fmt.Errorf("site mode %q: %w", s, ErrInvalidMode)
	}
	return m, nil
}

func (m SiteMode) valid() bool {
	return m == SiteNormal || m == SiteLockdown || m == SiteEvacuation
}

// Effective is the mode a door actually behaves by: the site mode when it is lockdown or
// evacuation, otherwise the door's own mode.
type Effective string

// Effective modes.
const (
	EffectiveNormal     Effective = "normal"
	EffectiveUnlocked   Effective = "unlocked"
	EffectiveLocked     Effective = "locked"
	EffectiveLockdown   Effective = "lockdown"
	EffectiveEvacuation Effective = "evacuation"
)

// EffectiveOf combines a door mode and a site mode.
func EffectiveOf(m Mode, s SiteMode) Effective {
	switch s {
	case SiteLockdown:
		return EffectiveLockdown
	case SiteEvacuation:
		return EffectiveEvacuation
	}
	return Effective(m)
}

// Released reports whether the mode releases the strike permanently (unlocked, evacuation):
// no credential is needed and an opening is never forced.
func (e Effective) Released() bool {
	return e == EffectiveUnlocked || e == EffectiveEvacuation
}

// Errors returned with the effects of a refused input. The effects returned alongside are
// still valid (deadlines that passed before the input) and must be applied.
var (
	// ErrDoorLocked refuses a Grant in door mode locked (access reason "door_locked").
	ErrDoorLocked = errors.New("door is locked")
	// ErrLockdown refuses a Grant or an OpenMomentarily during a site lockdown (access
	// reason "lockdown").
	ErrLockdown = errors.New("site is in lockdown")
	// ErrNoExitButton refuses an ExitRequest on a door configured without an exit button.
	ErrNoExitButton = errors.New("door has no exit button")
	// ErrInvalidMode is wrapped by the errors of ParseMode, ParseSiteMode, SetMode and
	// SetSiteMode for an unknown mode.
	ErrInvalidMode = errors.New("invalid mode")
)

// Reason returns the access-decision reason for a refusal error: "door_locked" for
// ErrDoorLocked, "lockdown" for ErrLockdown, "" otherwise.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrDoorLocked):
		return "door_locked"
	case errors.Is(err, ErrLockdown):
		return "lockdown"
	}
	return ""
}

// Kind tells what an Effect asks of the caller.
type Kind uint8

// Effect kinds.
const (
	// StrikeRelease: drive the strike to released. Effect.Until is the planned end of the
	// release, zero for "until further notice" (unlocked, evacuation). The Door itself emits
	// the matching StrikeLock at that time; Until is there for controllers that want a
	// hardware-side pulse as a fail-safe.
	StrikeRelease Kind = iota + 1
	// StrikeLock: drive the strike to locked.
	StrikeLock
	// Event: publish door.<id>.<Effect.Topic> with Effect.Data (plus door_id and door).
	Event
)

// String returns "strike_release", "strike_lock" or "event".
func (k Kind) String() string {
	switch k {
	case StrikeRelease:
		return "strike_release"
	case StrikeLock:
		return "strike_lock"
	case Event:
		return "event"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event topic suffixes and their Data.
const (
	// TopicOpened: the door opened. Data: "granted", "manual", "exit" (bool: a release
	// window of that cause covered the opening) and "forced" (bool).
	TopicOpened = "opened"
	// TopicClosed: the door closed. Data: "duration_ms" (int64, how long it was open),
	// "forced" and "held_open" (bool: the alarms this closing ends).
	TopicClosed = "closed"
	// TopicForced: alarm, the door opened while the strike was locked. Data: "mode" (the
	// effective mode).
	TopicForced = "forced"
	// TopicHeldOpen: alarm, the door has been open longer than Config.HeldOpenAfter. Data:
	// "open_ms" (int64) and "limit_ms" (int64).
	TopicHeldOpen = "held_open"
	// TopicMode: the door mode or the site mode changed. Data: "mode", "effective",
	// "site_mode" (strings).
	TopicMode = "mode"
)

// Effect is one output of a Door: a strike command or an event to publish.
type Effect struct {
	Kind Kind
	// At is when it happened. For opened and closed (and the forced that accompanies an
	// opening) it is the instant the contact first changed, which precedes the time the
	// change was confirmed by Debounce; otherwise the Door's time when it was produced.
	At time.Time
	// Until is the planned end of a StrikeRelease; zero means until further notice.
	Until time.Time
	// Topic is the event's topic suffix (TopicOpened, …); empty for strike commands.
	Topic string
	// Data is the event's payload; nil for strike commands. Values are bool, int64 or string.
	Data map[string]any
}

// String renders the effect for logs and test failures.
func (e Effect) String() string {
	var b strings.Builder
	switch e.Kind {
	case Event:
		b.WriteString(e.Topic)
	default:
		b.WriteString(e.Kind.String())
	}
	b.WriteString("@")
	b.WriteString(e.At.UTC().Format(time.RFC3339Nano))
	if e.Kind == StrikeRelease {
		if e.Until.IsZero() {
			b.WriteString(" until=forever")
		} else {
			b.WriteString(" until=" + e.Until.UTC().Format(time.RFC3339Nano))
		}
	}
	if len(e.Data) > 0 {
		fmt.Fprintf(&b, " %v", e.Data)
	}
	return b.String()
}

// State is a snapshot of a door, what a dashboard door tile shows.
type State struct {
	// Open is the debounced contact state; always false without a contact sensor.
	Open bool `json:"open"`
	// OpenedAt is when the current opening began; zero when closed.
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// Locked is the commanded strike state.
	Locked bool `json:"locked"`
	// Mode, SiteMode and Effective are the door mode, the site mode and their combination.
	Mode      Mode      `json:"mode"`
	SiteMode  SiteMode  `json:"site_mode"`
	Effective Effective `json:"effective"`
	// Forced is the forced-open alarm, active until the door closes.
	Forced bool `json:"forced"`
	// HeldOpen is the held-open alarm, active until the door closes.
	HeldOpen bool `json:"held_open"`
	// ReleaseUntil is when the current release window ends; zero when the strike is locked
	// or released until further notice.
	ReleaseUntil time.Time `json:"release_until,omitzero"`
}
