package site

import (
	"context"
	"math/bits"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// DoorUsers is one entry of the access overview: a door and the users who could ever open it.
type DoorUsers struct {
	DoorID  int64   `json:"door_id"`
	UserIDs []int64 `json:"user_ids"`
}

// AccessOverview computes, for every door (ordered by id), the users to whom some mapping
// applies (directly, through a group, or through a credential they own) whose targets include
// the door. Timeframes and validity are ignored: it answers "who could ever open it". It reads
// everything in a fixed number of queries and joins in memory.
func AccessOverview(ctx context.Context, q *gorm.DB) ([]DoorUsers, error) {
	var doors []int64
	if err := q.WithContext(ctx).Raw(`SELECT id FROM doors ORDER BY id`).Scan(&doors).Error; err != nil {
		return nil, err
	}
	out := make([]DoorUsers, len(doors))
	if len(doors) == 0 {
		return out, nil
	}
	mappings, err := LoadMappings(ctx, q, MappingFilter{})
	if err != nil {
		return nil, err
	}
	people, err := LoadPeople(ctx, q)
	if err != nil {
		return nil, err
	}
	tree, err := LoadZoneTree(ctx, q)
	if err != nil {
		return nil, err
	}
	// Users are numbered densely (in id order) so that user sets are bitsets: a mapping's users
	// are OR-ed into the set of each door it targets, or into the set of every door.
	var universe []int64
	for _, m := range mappings {
		universe = append(universe, m.Users...)
	}
	for _, members := range people.GroupMembers {
		universe = append(universe, members...)
	}
	for _, owner := range people.CredentialOwner {
		universe = append(universe, owner)
	}
	universe = sortedUnique(universe)
	index := make(map[int64]int, len(universe))
	for i, u := range universe {
		index[u] = i
	}
	doorIndex := make(map[int64]int, len(doors))
	for i, d := range doors {
		doorIndex[d] = i
	}
	words := (len(universe) + 63) / 64
	everywhere := make(bitset, words)
	perDoor := make([]bitset, len(doors))   // nil: no mapping targets the door itself
	zoneDoors := map[int64]map[int64]bool{} // zone → doors of it and its descendants
	users := make(bitset, words)
	for _, m := range mappings {
		clear(users)
		for _, u := range m.Users {
			users.set(index[u])
		}
		for _, g := range m.Groups {
			for _, u := range people.GroupMembers[g] {
				users.set(index[u])
			}
		}
		for _, c := range m.Credentials {
			if u, ok := people.CredentialOwner[c]; ok {
				users.set(index[u])
			}
		}
		if users.empty() {
			continue
		}
		if m.TargetsEveryDoor() {
			everywhere.or(users)
			continue
		}
		add := func(d int64) {
			i, ok := doorIndex[d]
			if !ok {
				return
			}
			if perDoor[i] == nil {
				perDoor[i] = make(bitset, words)
			}
			perDoor[i].or(users)
		}
		for _, d := range m.Doors {
			add(d)
		}
		for _, z := range m.Zones {
			zd, ok := zoneDoors[z]
			if !ok {
				zd = tree.DoorsUnder(z)
				zoneDoors[z] = zd
			}
			for d := range zd {
				add(d)
			}
		}
	}
	all := make(bitset, words)
	for i, d := range doors {
		copy(all, everywhere)
		if perDoor[i] != nil {
			all.or(perDoor[i])
		}
		ids := []int64{}
		all.each(func(u int) { ids = append(ids, universe[u]) })
		out[i] = DoorUsers{DoorID: d, UserIDs: ids}
	}
	return out, nil
}

// bitset is a set of small non-negative integers.
type bitset []uint64

func (b bitset) set(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitset) or(o bitset) {
	for i, w := range o {
		b[i] |= w
	}
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// each calls f with every member, in increasing order.
func (b bitset) each(f func(int)) {
	for i, w := range b {
		for w != 0 {
			f(i*64 + bits.TrailingZeros64(w))
			w &= w - 1
		}
	}
}

// accessOverview answers access_overview (viewers and above): [{"door_id", "user_ids"}].
func (m *Module) accessOverview(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	var out []DoorUsers
	err := m.readTx(ctx, func(tx *gorm.DB) error {
		var err error
		out, err = AccessOverview(ctx, tx)
		return resource.DBError(err)
	})
	return out, err
}
