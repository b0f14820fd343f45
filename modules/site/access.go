package site

import (
	"context"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// This file is the one place that says what a schedule mapping means: whom it applies to and
// which doors it targets. door.read, schedule.read, the searches, access_overview and the
// access engine all use it, so they cannot disagree.
//
// A mapping applies to the users it lists, to the members of the groups it lists, and to the
// credentials it lists (for "who could ever open it" questions, to the owners of those
// credentials). It targets the doors it lists plus the doors of the zones it lists and of all
// their descendant zones; a mapping that lists no door and no zone targets every door, including
// doors created later (Leosac's "default target").

// Mapping is one schedule mapping with its members and targets. Every id list is sorted and
// free of duplicates.
type Mapping struct {
	ID          int64
	ScheduleID  int64
	Alias       string
	Position    int
	Version     int64
	Users       []int64
	Groups      []int64
	Credentials []int64
	Doors       []int64
	Zones       []int64
}

// TargetsEveryDoor reports whether the mapping lists no door and no zone, which means that it
// targets every door.
func (m *Mapping) TargetsEveryDoor() bool { return len(m.Doors) == 0 && len(m.Zones) == 0 }

// Subject is someone a mapping may apply to: a user (0 for none), the groups that user belongs
// to, and credentials. For an access decision Credentials holds the one credential presented;
// for "what concerns this user" questions it holds every credential the user owns.
type Subject struct {
	UserID      int64
	Groups      map[int64]bool
	Credentials map[int64]bool
}

// AppliesTo reports whether the mapping applies to the subject: it lists the user, one of the
// user's groups, or one of the subject's credentials.
func (m *Mapping) AppliesTo(s Subject) bool {
	if s.UserID != 0 && contains(m.Users, s.UserID) {
		return true
	}
	for _, g := range m.Groups {
		if s.Groups[g] {
			return true
		}
	}
	for _, c := range m.Credentials {
		if s.Credentials[c] {
			return true
		}
	}
	return false
}

// contains reports whether the sorted list ids holds id.
func contains(ids []int64, id int64) bool {
	_, ok := slices.BinarySearch(ids, id)
	return ok
}

// ZoneTree is the zone hierarchy with each zone's own doors. It is not modified after it is
// built, so it is safe for concurrent use.
type ZoneTree struct {
	children map[int64][]int64
	doors    map[int64][]int64
}

// NewZoneTree returns the tree of the given parent → children edges and zone → doors links.
func NewZoneTree(children, doors map[int64][]int64) *ZoneTree {
	if children == nil {
		children = map[int64][]int64{}
	}
	if doors == nil {
		doors = map[int64][]int64{}
	}
	return &ZoneTree{children: children, doors: doors}
}

// DoorsUnder returns the doors of the given zones and of all their descendants. It tolerates
// cycles (which the zone rules forbid anyway) and unknown zones.
func (z *ZoneTree) DoorsUnder(zones ...int64) map[int64]bool {
	out := map[int64]bool{}
	seen := map[int64]bool{}
	stack := append([]int64(nil), zones...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		for _, d := range z.doors[id] {
			out[d] = true
		}
		stack = append(stack, z.children[id]...)
	}
	return out
}

// Targets returns the doors a mapping targets: the doors it lists and the doors of the zones
// it lists and of their descendants. every is true, and doors nil, when the mapping targets
// every door.
func (z *ZoneTree) Targets(m *Mapping) (doors map[int64]bool, every bool) {
	if m.TargetsEveryDoor() {
		return nil, true
	}
	doors = z.DoorsUnder(m.Zones...)
	for _, d := range m.Doors {
		doors[d] = true
	}
	return doors, false
}

// People says who belongs to which group and who owns which credential: what is needed, beyond
// a mapping itself, to know to which users it applies.
type People struct {
	// GroupMembers maps a group to its members' user ids.
	GroupMembers map[int64][]int64
	// CredentialOwner maps a credential to its owner's user id (absent: no owner).
	CredentialOwner map[int64]int64
}

// Users returns the users a mapping applies to: the users it lists, the members of the groups it
// lists and the owners of the credentials it lists.
func (p *People) Users(m *Mapping) map[int64]bool {
	out := make(map[int64]bool, len(m.Users))
	for _, u := range m.Users {
		out[u] = true
	}
	for _, g := range m.Groups {
		for _, u := range p.GroupMembers[g] {
			out[u] = true
		}
	}
	for _, c := range m.Credentials {
		if u, ok := p.CredentialOwner[c]; ok {
			out[u] = true
		}
	}
	return out
}

// MappingFilter selects mappings for LoadMappings. A nil field does not restrict; an empty,
// non-nil one selects nothing.
type MappingFilter struct {
	MappingIDs  []int64
	ScheduleIDs []int64
}

// LoadMappings loads the selected mappings with their members and targets, in six queries,
// ordered by schedule, position and id.
func LoadMappings(ctx context.Context, q *gorm.DB, f MappingFilter) ([]*Mapping, error) {
	if (f.MappingIDs != nil && len(f.MappingIDs) == 0) || (f.ScheduleIDs != nil && len(f.ScheduleIDs) == 0) {
		return []*Mapping{}, nil
	}
	q = q.WithContext(ctx)
	var rows []ScheduleMapping
	mq := q.Order("schedule_id, position, id")
	if f.MappingIDs != nil {
		mq = mq.Where("id IN ?", f.MappingIDs)
	}
	if f.ScheduleIDs != nil {
		mq = mq.Where("schedule_id IN ?", f.ScheduleIDs)
	}
	if err := mq.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load mappings: %w", err)
	}
	out := make([]*Mapping, len(rows))
	byID := make(map[int64]*Mapping, len(rows))
	ids := make([]int64, len(rows))
	for i, r := range rows {
		m := &Mapping{ID: r.ID, ScheduleID: r.ScheduleID, Alias: r.Alias, Position: r.Position, Version: r.Version,
			Users: []int64{}, Groups: []int64{}, Credentials: []int64{}, Doors: []int64{}, Zones: []int64{}}
		out[i], byID[r.ID], ids[i] = m, m, r.ID
	}
	if len(rows) == 0 {
		return out, nil
	}
	all := f.MappingIDs == nil && f.ScheduleIDs == nil
	for _, link := range mappingLinks {
		var pairs []idPair
		var err error
		if all {
			err = q.Raw(fmt.Sprintf(`SELECT mapping_id AS a, %s AS b FROM mapping_%s ORDER BY a, b`, link.column, link.table)).
				Scan(&pairs).Error
		} else {
			pairs, err = loadPairs(q, fmt.Sprintf(`SELECT mapping_id AS a, %s AS b FROM mapping_%s WHERE mapping_id IN ? ORDER BY a, b`,
				link.column, link.table), ids)
		}
		if err != nil {
			return nil, fmt.Errorf("load mapping %s: %w", link.table, err)
		}
		for _, p := range pairs {
			if m := byID[p.A]; m != nil {
				f := link.field(m)
				*f = append(*f, p.B)
			}
		}
	}
	return out, nil
}

// mappingLink describes one mapping_* link table.
type mappingLink struct {
	table, column, what string
	field               func(*Mapping) *[]int64
}

// mappingLinks are the link tables of mappings, in the order of the JSON relationships.
var mappingLinks = []mappingLink{
	{"users", "user_id", "User", func(m *Mapping) *[]int64 { return &m.Users }},
	{"groups", "group_id", "Group", func(m *Mapping) *[]int64 { return &m.Groups }},
	{"credentials", "credential_id", "Credential", func(m *Mapping) *[]int64 { return &m.Credentials }},
	{"doors", "door_id", "Door", func(m *Mapping) *[]int64 { return &m.Doors }},
	{"zones", "zone_id", "Zone", func(m *Mapping) *[]int64 { return &m.Zones }},
}

// LoadZoneTree loads the whole zone hierarchy and the doors of every zone (two queries).
func LoadZoneTree(ctx context.Context, q *gorm.DB) (*ZoneTree, error) {
	q = q.WithContext(ctx)
	var edges, zd []idPair
	if err := q.Raw(`SELECT parent_id AS a, child_id AS b FROM zone_children ORDER BY a, b`).Scan(&edges).Error; err != nil {
		return nil, fmt.Errorf("load zone children: %w", err)
	}
	if err := q.Raw(`SELECT zone_id AS a, door_id AS b FROM zone_doors ORDER BY a, b`).Scan(&zd).Error; err != nil {
		return nil, fmt.Errorf("load zone doors: %w", err)
	}
	return NewZoneTree(group(edges), group(zd)), nil
}

// LoadPeople loads every group membership and credential owner (two queries).
func LoadPeople(ctx context.Context, q *gorm.DB) (*People, error) {
	q = q.WithContext(ctx)
	var members, owners []idPair
	if err := q.Raw(`SELECT group_id AS a, user_id AS b FROM memberships ORDER BY a, b`).Scan(&members).Error; err != nil {
		return nil, fmt.Errorf("load memberships: %w", err)
	}
	if err := q.Raw(`SELECT id AS a, owner_id AS b FROM credentials WHERE owner_id IS NOT NULL`).Scan(&owners).Error; err != nil {
		return nil, fmt.Errorf("load credential owners: %w", err)
	}
	p := &People{GroupMembers: group(members), CredentialOwner: make(map[int64]int64, len(owners))}
	for _, o := range owners {
		p.CredentialOwner[o.A] = o.B
	}
	return p, nil
}

// mappingsOfUserSQL selects the ids of the mappings that apply to a user (bound three times):
// listing the user, one of the user's groups, or a credential the user owns.
const mappingsOfUserSQL = `SELECT mapping_id FROM mapping_users WHERE user_id = ?
	UNION SELECT mg.mapping_id FROM mapping_groups mg JOIN memberships ms ON ms.group_id = mg.group_id WHERE ms.user_id = ?
	UNION SELECT mc.mapping_id FROM mapping_credentials mc JOIN credentials c ON c.id = mc.credential_id WHERE c.owner_id = ?`

// MappingIDsOf returns the ids of the mappings that apply to a user: those that list the user,
// one of the user's groups, or a credential the user owns (sorted).
func MappingIDsOf(ctx context.Context, q *gorm.DB, userID int64) ([]int64, error) {
	ids := []int64{}
	if err := q.WithContext(ctx).Raw(`SELECT mapping_id FROM (`+mappingsOfUserSQL+`) ORDER BY mapping_id`, userID, userID, userID).
		Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("mappings of user %d: %w", userID, err)
	}
	return ids, nil
}

// DoorsOf returns the doors targeted by the mappings that apply to a user (see MappingIDsOf):
// what a user of rank "user" may read. every is true when one of those mappings targets every
// door.
func DoorsOf(ctx context.Context, q *gorm.DB, userID int64) (doors map[int64]bool, every bool, err error) {
	ids, err := MappingIDsOf(ctx, q, userID)
	if err != nil {
		return nil, false, err
	}
	mappings, err := LoadMappings(ctx, q, MappingFilter{MappingIDs: ids})
	if err != nil {
		return nil, false, err
	}
	doors = map[int64]bool{}
	var tree *ZoneTree
	for _, m := range mappings {
		if m.TargetsEveryDoor() {
			return nil, true, nil
		}
		if len(m.Zones) > 0 && tree == nil {
			if tree, err = LoadZoneTree(ctx, q); err != nil {
				return nil, false, err
			}
		}
		if tree == nil {
			for _, d := range m.Doors {
				doors[d] = true
			}
			continue
		}
		t, _ := tree.Targets(m)
		for d := range t {
			doors[d] = true
		}
	}
	return doors, false, nil
}

// idPair is a row of two ids (a link table row).
type idPair struct{ A, B int64 }

// group turns ordered pairs into a map from A to its Bs (in pair order).
func group(pairs []idPair) map[int64][]int64 {
	out := map[int64][]int64{}
	for _, p := range pairs {
		out[p.A] = append(out[p.A], p.B)
	}
	return out
}

// inChunk bounds the number of ids bound in one IN (…) list, well below SQLite's variable limit.
const inChunk = 5000

// loadPairs runs a query with one "IN ?" placeholder for ids, in chunks, and concatenates the
// pairs it returns.
func loadPairs(q *gorm.DB, query string, ids []int64) ([]idPair, error) {
	var out []idPair
	for len(ids) > 0 {
		n := min(len(ids), inChunk)
		var pairs []idPair
		if err := q.Raw(query, ids[:n]).Scan(&pairs).Error; err != nil {
			return nil, err
		}
		out = append(out, pairs...)
		ids = ids[n:]
	}
	return out, nil
}
