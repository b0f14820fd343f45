package engine

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"gatehouse/modules/site"
)

// user is what the engine keeps of a user.
type user struct {
	ID       int64
	Username string
	Enabled  bool
	Start    *time.Time
	End      *time.Time
}

func (u *user) validAt(t time.Time) bool {
	return u.Enabled && (u.Start == nil || !t.Before(*u.Start)) && (u.End == nil || !t.After(*u.End))
}

// credential is what the engine keeps of a credential. PINs are only known by their keyed hash.
type credential struct {
	ID      int64
	Type    string // rfid-card, pin-code, rfid-card-pin
	OwnerID int64  // 0 = unowned
	CardID  string
	NbBits  int
	PINHash string
	Enabled bool
	Start   *time.Time
	End     *time.Time
}

func (c *credential) validAt(t time.Time) bool {
	return c.Enabled && (c.Start == nil || !t.Before(*c.Start)) && (c.End == nil || !t.After(*c.End))
}

type cardKey struct {
	card string
	bits int
}

// door is what the engine keeps of a door.
type door struct {
	ID            int64
	Alias         string
	AccessPointID int64
}

// target is what a mapping targets, resolved through the zone tree.
type target struct {
	every bool
	doors map[int64]bool
}

// people is the part of the index about who: users, their groups, their credentials. It is
// patched entity by entity from change events.
type people struct {
	users    map[int64]*user
	groupsOf map[int64]map[int64]bool // user → groups
	creds    map[int64]*credential
	byCard   map[cardKey]*credential // rfid-card credentials
	byPIN    map[string]*credential  // pin-code and rfid-card-pin credentials, by PIN hash
	cardPIN  map[cardKey]*credential // rfid-card-pin credentials, by card (one per card: unique index credentials_card)
}

// layout is the part of the index about where and when: schedules, mappings, doors, zones.
// It is rebuilt as a whole when any of it changes (rare, small).
type layout struct {
	schedules map[int64]site.Frames
	mappings  []*site.Mapping
	byUser    map[int64][]*site.Mapping
	byGroup   map[int64][]*site.Mapping
	byCred    map[int64][]*site.Mapping
	targets   map[int64]target // mapping id → target
	doors     map[int64]*door
	doorOfAP  map[int64]int64 // access point id → door id
}

type userRow struct {
	ID              int64
	Username        string
	ValidityEnabled bool
	ValidityStart   *time.Time
	ValidityEnd     *time.Time
}

type credRow struct {
	ID              int64
	Type            string
	OwnerID         *int64
	CardID          string
	NbBits          int
	PinHash         string
	ValidityEnabled bool
	ValidityStart   *time.Time
	ValidityEnd     *time.Time
}

func newPeople() *people {
	return &people{
		users: map[int64]*user{}, groupsOf: map[int64]map[int64]bool{}, creds: map[int64]*credential{},
		byCard: map[cardKey]*credential{}, byPIN: map[string]*credential{}, cardPIN: map[cardKey]*credential{},
	}
}

// loadPeople reads every user, membership and credential.
func loadPeople(ctx context.Context, q *gorm.DB) (*people, error) {
	q = q.WithContext(ctx)
	p := newPeople()
	var users []userRow
	if err := q.Table("users").Select("id, username, validity_enabled, validity_start, validity_end").
		FindInBatches(&users, 20000, func(*gorm.DB, int) error {
			for _, r := range users {
				p.putUser(r)
			}
			return nil
		}).Error; err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	var ms []struct{ UserID, GroupID int64 }
	if err := q.Raw(`SELECT user_id, group_id FROM memberships`).Scan(&ms).Error; err != nil {
		return nil, fmt.Errorf("load memberships: %w", err)
	}
	for _, m := range ms {
		p.addMembership(m.UserID, m.GroupID)
	}
	var creds []credRow
	if err := q.Table("credentials").
		Select("id, type, owner_id, card_id, nb_bits, pin_hash, validity_enabled, validity_start, validity_end").
		FindInBatches(&creds, 20000, func(*gorm.DB, int) error {
			for _, r := range creds {
				p.putCredential(r)
			}
			return nil
		}).Error; err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	return p, nil
}

func (p *people) putUser(r userRow) {
	p.users[r.ID] = &user{ID: r.ID, Username: r.Username, Enabled: r.ValidityEnabled, Start: r.ValidityStart, End: r.ValidityEnd}
}

func (p *people) removeUser(id int64) {
	delete(p.users, id)
	delete(p.groupsOf, id)
	for _, c := range p.creds {
		if c.OwnerID == id {
			c.OwnerID = 0 // the database sets owner_id to NULL
		}
	}
}

func (p *people) addMembership(userID, groupID int64) {
	g := p.groupsOf[userID]
	if g == nil {
		g = map[int64]bool{}
		p.groupsOf[userID] = g
	}
	g[groupID] = true
}

func (p *people) putCredential(r credRow) {
	p.removeCredential(r.ID)
	c := &credential{ID: r.ID, Type: r.Type, CardID: r.CardID, NbBits: r.NbBits, PINHash: r.PinHash,
		Enabled: r.ValidityEnabled, Start: r.ValidityStart, End: r.ValidityEnd}
	if r.OwnerID != nil {
		c.OwnerID = *r.OwnerID
	}
	p.creds[c.ID] = c
	switch c.Type {
	case "rfid-card":
		p.byCard[cardKey{c.CardID, c.NbBits}] = c
	case "pin-code":
		p.byPIN[c.PINHash] = c
	case "rfid-card-pin":
		p.byPIN[c.PINHash] = c
		p.cardPIN[cardKey{c.CardID, c.NbBits}] = c
	}
}

func (p *people) removeCredential(id int64) {
	c, ok := p.creds[id]
	if !ok {
		return
	}
	delete(p.creds, id)
	switch c.Type {
	case "rfid-card":
		if p.byCard[cardKey{c.CardID, c.NbBits}] == c {
			delete(p.byCard, cardKey{c.CardID, c.NbBits})
		}
	case "pin-code":
		if p.byPIN[c.PINHash] == c {
			delete(p.byPIN, c.PINHash)
		}
	case "rfid-card-pin":
		if p.byPIN[c.PINHash] == c {
			delete(p.byPIN, c.PINHash)
		}
		if k := (cardKey{c.CardID, c.NbBits}); p.cardPIN[k] == c {
			delete(p.cardPIN, k)
		}
	}
}

// loadLayout reads schedules, mappings, doors and the zone tree.
func loadLayout(ctx context.Context, q *gorm.DB) (*layout, error) {
	q = q.WithContext(ctx)
	l := &layout{
		schedules: map[int64]site.Frames{}, byUser: map[int64][]*site.Mapping{}, byGroup: map[int64][]*site.Mapping{},
		byCred: map[int64][]*site.Mapping{}, targets: map[int64]target{}, doors: map[int64]*door{}, doorOfAP: map[int64]int64{},
	}
	var schedules []site.Schedule
	if err := q.Select("id, timeframes").Find(&schedules).Error; err != nil {
		return nil, fmt.Errorf("load schedules: %w", err)
	}
	for _, s := range schedules {
		l.schedules[s.ID] = s.Timeframes
	}
	mappings, err := site.LoadMappings(ctx, q, site.MappingFilter{})
	if err != nil {
		return nil, err
	}
	tree, err := site.LoadZoneTree(ctx, q)
	if err != nil {
		return nil, err
	}
	l.mappings = mappings
	for _, m := range mappings {
		for _, u := range m.Users {
			l.byUser[u] = append(l.byUser[u], m)
		}
		for _, g := range m.Groups {
			l.byGroup[g] = append(l.byGroup[g], m)
		}
		for _, c := range m.Credentials {
			l.byCred[c] = append(l.byCred[c], m)
		}
		doors, every := tree.Targets(m)
		l.targets[m.ID] = target{every: every, doors: doors}
	}
	var doors []struct {
		ID            int64
		Alias         string
		AccessPointID *int64
	}
	if err := q.Raw(`SELECT id, alias, access_point_id FROM doors`).Scan(&doors).Error; err != nil {
		return nil, fmt.Errorf("load doors: %w", err)
	}
	for _, d := range doors {
		e := &door{ID: d.ID, Alias: d.Alias}
		if d.AccessPointID != nil {
			e.AccessPointID = *d.AccessPointID
			l.doorOfAP[e.AccessPointID] = d.ID
		}
		l.doors[d.ID] = e
	}
	return l, nil
}

// applies returns whether some mapping that applies to the user (directly or through a group)
// or to the credential targets the door and has a timeframe containing local (the site's
// wall-clock time). found reports whether any mapping applied to the door at all.
func (l *layout) applies(p *people, userID int64, credID int64, doorID int64, local time.Time) (found, inTime bool) {
	check := func(ms []*site.Mapping) bool {
		for _, m := range ms {
			t := l.targets[m.ID]
			if !t.every && !t.doors[doorID] {
				continue
			}
			found = true
			if l.schedules[m.ScheduleID].ContainsTime(local) {
				return true
			}
		}
		return false
	}
	if userID != 0 {
		if check(l.byUser[userID]) {
			return true, true
		}
		for g := range p.groupsOf[userID] {
			if check(l.byGroup[g]) {
				return true, true
			}
		}
	}
	if credID != 0 && check(l.byCred[credID]) {
		return true, true
	}
	return found, false
}
