package eventlog_test

import (
	"testing"

	"gatehouse/modules/eventlog"
)

// TestLeosacMask checks the event-masks Leosac clients see: Leosac's own bits (its web GUI's
// AuditEventType, leosac/access-control-web app/leosac-constant.js: WSAPI_CALL 1<<0 to
// ZONE_DELETED 1<<29) unchanged, gatehouse's door activity as DOOR_UPDATED, nothing at 2^30 or
// above (the GUI's 32-bit "&" loses bits at 2^32 and above).
func TestLeosacMask(t *testing.T) {
	for bit := range 30 {
		if m := eventlog.Mask(1) << bit; eventlog.LeosacMask(m) != m {
			t.Errorf("Leosac's bit %d: %d", bit, eventlog.LeosacMask(m))
		}
	}
	for _, m := range []eventlog.Mask{eventlog.DoorOpened, eventlog.DoorOpenedManually, eventlog.DoorForced,
		eventlog.DoorHeldOpen, eventlog.DoorClosed, eventlog.ModeChanged} {
		if got := eventlog.LeosacMask(m); got != eventlog.DoorUpdated {
			t.Errorf("door activity %d: %d, want DOOR_UPDATED", m, got)
		}
	}
	for bit := range 63 {
		if got := eventlog.LeosacMask(eventlog.Mask(1) << bit); got >= 1<<30 || got < 0 {
			t.Errorf("bit %d: %d is not below 2^30", bit, got)
		}
	}
	if got := eventlog.LeosacMask(eventlog.AuthGranted | eventlog.LoginFailed | eventlog.UserEdited); got != eventlog.UserEdited {
		t.Errorf("gatehouse-only bits kept: %d", got)
	}
}
