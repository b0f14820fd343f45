package eventlog

// Mask is the audit event-mask: the bit layout of Leosac's web UI (reference leosac.md §5.7)
// with gatehouse's additions appended (contract §5).
type Mask = int64

// The event-mask bits.
const (
	WSAPICall                 Mask = 1 << 0
	UserCreated               Mask = 1 << 1
	UserDeleted               Mask = 1 << 2
	UserEdited                Mask = 1 << 3
	UserPasswordChanged       Mask = 1 << 4
	UserPasswordChangeFailure Mask = 1 << 5
	GroupCreated              Mask = 1 << 6
	GroupUpdated              Mask = 1 << 7
	GroupDeleted              Mask = 1 << 8
	GroupMembershipJoined     Mask = 1 << 9
	GroupMembershipLeft       Mask = 1 << 10
	CredentialDeleted         Mask = 1 << 11
	CredentialCreated         Mask = 1 << 12
	CredentialUpdated         Mask = 1 << 13
	ScheduleCreated           Mask = 1 << 14
	ScheduleDeleted           Mask = 1 << 15
	ScheduleUpdated           Mask = 1 << 16
	DoorCreated               Mask = 1 << 17
	DoorUpdated               Mask = 1 << 18
	DoorDeleted               Mask = 1 << 19
	MappingMayHaveChanged     Mask = 1 << 20
	AccessPointCreated        Mask = 1 << 21
	AccessPointUpdated        Mask = 1 << 22
	AccessPointDeleted        Mask = 1 << 23
	UpdateCreated             Mask = 1 << 24
	UpdateAcked               Mask = 1 << 25
	UpdateCancelled           Mask = 1 << 26
	ZoneCreated               Mask = 1 << 27
	ZoneUpdated               Mask = 1 << 28
	ZoneDeleted               Mask = 1 << 29
	AuthGranted               Mask = 1 << 30
	AuthDenied                Mask = 1 << 31
	DoorOpened                Mask = 1 << 32
	DoorOpenedManually        Mask = 1 << 33
	DoorForced                Mask = 1 << 34
	DoorHeldOpen              Mask = 1 << 35
	DoorClosed                Mask = 1 << 36
	// gatehouse additions beyond the contract's list.
	LoginSucceeded Mask = 1 << 37
	LoginFailed    Mask = 1 << 38
	ModeChanged    Mask = 1 << 39
)

// leosacBits are the event-mask bits Leosac defines (reference leosac.md §5.7: WSAPI_CALL 1<<0
// to ZONE_DELETED 1<<29, the layout of its web GUI's AuditEventType).
const leosacBits Mask = 1<<30 - 1

// doorActivity are gatehouse's bits for what happens at a door, for which Leosac defines no
// bit its GUI knows.
const doorActivity = DoorOpened | DoorOpenedManually | DoorForced | DoorHeldOpen | DoorClosed | ModeChanged

// LeosacMask returns an event-mask as Leosac's web GUI reads it, for the clients of the Leosac
// dialect: the bits Leosac defines (below 2^30) are kept; gatehouse's door-activity bits (door
// opened, opened manually, forced, held open, closed, mode changed; 2^32 and above, lost by the
// GUI's 32-bit "&") become DoorUpdated, the Leosac flag of an entry about a door that changed;
// every other bit is dropped. The result is below 2^30.
func LeosacMask(m Mask) Mask {
	out := m & leosacBits
	if m&doorActivity != 0 {
		out |= DoorUpdated
	}
	return out
}

// LeosacKinds are the kinds of audit entries Leosac's web GUI has a model for
// (leosac/access-control-web app/models/audit-*.js, app/services/audit-log.js): the only
// ones audit.get shows to a client of the Leosac dialect that did not opt into gatehouse's
// types. Access decisions (audit-auth-event), logins (audit-login-event) and access point
// events (audit-access-point-event) are not among them.
var LeosacKinds = []string{
	KindWSAPICall, KindUser, KindGroup, KindMembership, KindCredential, KindSchedule, KindDoor, KindZone, KindUpdate,
}

// Kinds of audit entries, named as their JSON type in audit.get.
const (
	KindUser        = "audit-user-event"
	KindGroup       = "audit-group-event"
	KindMembership  = "audit-user-group-membership-event"
	KindCredential  = "audit-credential-event"
	KindSchedule    = "audit-schedule-event"
	KindDoor        = "audit-door-event"
	KindZone        = "audit-zone-event"
	KindAccessPoint = "audit-access-point-event"
	KindUpdate      = "audit-update-event"
	KindAuth        = "audit-auth-event"  // access decisions at readers
	KindLogin       = "audit-login-event" // API logins (gatehouse addition)
	KindWSAPICall   = "audit-wsapicall-event"
)

// LeosacTypes maps Leosac's polymorphic audit type ids (audit.get enabled_type) to kinds.
var LeosacTypes = map[string]string{
	"Leosac::Audit::WSAPICall":                KindWSAPICall,
	"Leosac::Audit::UserEvent":                KindUser,
	"Leosac::Audit::GroupEvent":               KindGroup,
	"Leosac::Audit::UserGroupMembershipEvent": KindMembership,
	"Leosac::Audit::CredentialEvent":          KindCredential,
	"Leosac::Audit::ScheduleEvent":            KindSchedule,
	"Leosac::Audit::DoorEvent":                KindDoor,
	"Leosac::Audit::ZoneEvent":                KindZone,
	"Leosac::Audit::UpdateEvent":              KindUpdate,
	"Leosac::Audit::AuthEvent":                KindAuth,
	"Leosac::Audit::AccessPointEvent":         KindAccessPoint,
	"Gatehouse::Audit::LoginEvent":            KindLogin,
}
