package demo

import "fmt"

// This file is the demo site itself, as data: seed.go creates it through the API, traffic.go
// reads it to know which cards and PINs exist (the PINs are stored hashed, so the simulated
// people must know their own).

// facilityCode is the facility code of every demo card.
const facilityCode = 42

// h10301 returns the raw card id, in gatehouse's (Leosac's) format, and the bit count of a
// 26-bit HID H10301 card: an even parity bit over the next 12 bits, the 8-bit facility code, the
// 16-bit card number and an odd parity bit over the 12 bits before it, packed MSB first into 4
// bytes, the last byte right-padded with zeros (facility 42, card 1001 → "95:01:f4:80").
func h10301(facility uint8, number uint16) (cardID string, nbBits int) {
	payload := uint32(facility)<<16 | uint32(number) // 24 bits
	v := payload << 1                                // room for the odd parity bit
	if ones(payload>>12)%2 == 1 {                    // even parity over bits 1–12
		v |= 1 << 25
	}
	if ones(payload&0xfff)%2 == 0 { // odd parity over bits 13–24
		v |= 1
	}
	v <<= 6 // 26 bits, left-aligned in 32
	return fmt.Sprintf("%02x:%02x:%02x:%02x", byte(v>>24), byte(v>>16), byte(v>>8), byte(v)), 26
}

// ones counts the bits set in v.
func ones(v uint32) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

// doorDef is a door and its simulated reader.
type doorDef struct {
	Alias, Description string
}

// The doors' aliases the traffic refers to.
const (
	doorMain      = "Main entrance"
	doorLobby     = "Lobby"
	doorServer    = "Server room"
	doorLab       = "Lab"
	doorWarehouse = "Warehouse"
	doorRoof      = "Roof access"
)

var demoDoors = []doorDef{
	{doorMain, "Street door of the headquarters."},
	{doorLobby, "Glass door between the reception and the offices."},
	{doorServer, "IT only; the card must be followed by its PIN."},
	{doorLab, "Prototype lab on the first floor."},
	{doorWarehouse, "Loading bay door, used by the contractors."},
	{doorRoof, "Stairway to the roof and the HVAC plant."},
}

// zoneDef is a physical zone: its direct doors and child zones.
type zoneDef struct {
	Alias, Description string
	Doors, Children    []string
}

// demoZones are created in order: children before their parent.
var demoZones = []zoneDef{
	{Alias: "Ground floor", Description: "Entrance, reception and warehouse.", Doors: []string{doorMain, doorLobby, doorWarehouse}},
	{Alias: "First floor", Description: "Offices, lab, server room and roof access.", Doors: []string{doorServer, doorLab, doorRoof}},
	{Alias: "HQ", Description: "The headquarters building.", Children: []string{"Ground floor", "First floor"}},
}

// groupDef is a group. Group names follow Leosac's rule (3 to 50 of A-Z a-z 0-9 _ - .).
type groupDef struct{ Name, Description string }

const (
	groupStaff       = "Staff"
	groupIT          = "IT-team"
	groupContractors = "Contractors"
)

var demoGroups = []groupDef{
	{groupStaff, "Employees: the ground floor during office hours."},
	{groupIT, "IT department: every door, at any time."},
	{groupContractors, "External contractors: the warehouse during office hours."},
}

// personDef is a cardholder. A person has a card (Card > 0), either alone or, when CardPIN is
// set, as a card + PIN credential; PIN, when set, is an additional PIN-only credential.
type personDef struct {
	Username, Firstname, Lastname string
	Groups                        []string
	Card                          uint16
	CardPIN                       string
	PIN                           string
	// Expired people's validity ended a month before the seeding: they are refused everywhere.
	Expired bool
}

var demoPeople = []personDef{
	{Username: "alice.martin", Firstname: "Alice", Lastname: "Martin", Groups: []string{groupStaff}, Card: 1001},
	{Username: "bruno.costa", Firstname: "Bruno", Lastname: "Costa", Groups: []string{groupStaff}, Card: 1002},
	{Username: "chloe.dubois", Firstname: "Chloé", Lastname: "Dubois", Groups: []string{groupStaff}, Card: 1003, PIN: "4827"},
	{Username: "david.okafor", Firstname: "David", Lastname: "Okafor", Groups: []string{groupStaff}, Card: 1004},
	{Username: "emma.schmidt", Firstname: "Emma", Lastname: "Schmidt", Groups: []string{groupStaff}, Card: 1005},
	{Username: "farid.haddad", Firstname: "Farid", Lastname: "Haddad", Groups: []string{groupStaff}, Card: 1006, PIN: "3916"},
	{Username: "grace.kim", Firstname: "Grace", Lastname: "Kim", Groups: []string{groupIT}, Card: 1007, CardPIN: "2580"},
	{Username: "henrik.larsen", Firstname: "Henrik", Lastname: "Larsen", Groups: []string{groupIT}, Card: 1008, PIN: "7153"},
	{Username: "ines.moreau", Firstname: "Inès", Lastname: "Moreau", Groups: []string{groupIT, groupStaff}, Card: 1009},
	{Username: "jamal.wright", Firstname: "Jamal", Lastname: "Wright", Groups: []string{groupContractors}, Card: 1010},
	{Username: "kasia.nowak", Firstname: "Katarzyna", Lastname: "Nowak", Groups: []string{groupContractors}, Card: 1011},
	{Username: "liam.obrien", Firstname: "Liam", Lastname: "O'Brien", Groups: []string{groupContractors}, Card: 1012, Expired: true},
}

// lostBadge is a card registered to nobody and mapped nowhere: presented, it is refused.
const lostBadge uint16 = 1013

// unknownCards is the range of card numbers (facility 42) the traffic presents as cards the
// site does not know.
const unknownCardsFrom, unknownCardsTo = 2000, 2999

// accountDef is an operator account with a generated password.
type accountDef struct {
	Username, Firstname, Lastname string
	Rank                          int
}

var demoAccounts = []accountDef{
	{Username: "operator", Firstname: "Demo", Lastname: "Operator", Rank: 2}, // manager
	{Username: "guard", Firstname: "Demo", Lastname: "Guard", Rank: 1},       // viewer
}

// frameDef is a weekly timeframe: day 0 = Monday … 6 = Sunday; an end before the start spans
// midnight.
type frameDef struct {
	Day        int
	Start, End string
}

// mappingDef says who (groups, users) may pass which doors (zones, doors) during a schedule.
type mappingDef struct {
	Alias                       string
	Groups, Users, Zones, Doors []string
}

// scheduleDef is a schedule and its mappings. Names follow Leosac's rule, like groups'.
type scheduleDef struct {
	Name, Description string
	Frames            []frameDef
	Mappings          []mappingDef
}

// days returns one frame per day in [from, to] (0 = Monday).
func days(from, to int, start, end string) []frameDef {
	var out []frameDef
	for d := from; d <= to; d++ {
		out = append(out, frameDef{Day: d, Start: start, End: end})
	}
	return out
}

var demoSchedules = []scheduleDef{
	{
		Name: "Office-hours", Description: "Monday to Friday, 07:00 to 20:00.",
		Frames: days(0, 4, "07:00", "20:00"),
		Mappings: []mappingDef{
			{Alias: "Staff on the ground floor", Groups: []string{groupStaff}, Zones: []string{"Ground floor"}},
			{Alias: "Contractors at the warehouse", Groups: []string{groupContractors}, Doors: []string{doorWarehouse}},
		},
	},
	{
		Name: "Always", Description: "Every day, all day.",
		Frames: days(0, 6, "00:00", "23:59"),
		Mappings: []mappingDef{
			{Alias: "IT everywhere", Groups: []string{groupIT}, Zones: []string{"HQ"}},
		},
	},
	{
		Name: "Night-shift", Description: "Every night, 22:00 to 06:00 the next morning.",
		Frames: days(0, 6, "22:00", "06:00"),
		Mappings: []mappingDef{
			{Alias: "Night rounds", Users: []string{"bruno.costa", "farid.haddad"}, Zones: []string{"Ground floor"}, Doors: []string{doorLab}},
		},
	},
}
