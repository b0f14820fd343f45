package site

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// Schedule is a row of the schedules table: named weekly timeframes. Its mappings (who, where)
// are rows of schedule_mappings; see Mapping.
type Schedule struct {
	ID          int64 `gorm:"primaryKey"`
	Name        string
	NameFold    string
	Description string
	Timeframes  Frames `gorm:"serializer:json"`
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements GORM's tabler.
func (Schedule) TableName() string { return "schedules" }

// ScheduleMapping is a row of the schedule_mappings table; its members and targets are in the
// mapping_* link tables (LoadMappings reads them all).
type ScheduleMapping struct {
	ID         int64 `gorm:"primaryKey"`
	ScheduleID int64
	Alias      string
	Position   int
	Version    int64
}

// TableName implements GORM's tabler.
func (ScheduleMapping) TableName() string { return "schedule_mappings" }

// scheduleSnapshot is what the audit trail keeps of a schedule: its attributes and mappings.
func scheduleSnapshot(s Schedule, mappings []*Mapping) map[string]any {
	ms := make([]map[string]any, 0, len(mappings))
	for _, mp := range mappings {
		ms = append(ms, map[string]any{"id": mp.ID, "alias": mp.Alias, "users": mp.Users, "groups": mp.Groups,
			"credentials": mp.Credentials, "doors": mp.Doors, "zones": mp.Zones})
	}
	return map[string]any{"id": s.ID, "name": s.Name, "description": s.Description,
		"timeframes": framesAttribute(s.Timeframes), "version": s.Version, "mappings": ms}
}

// scheduleData is the payload of the schedule.* topics: the schedule and the doors and zones
// named by its mappings before and after the change (the doors whose access may have changed).
func scheduleData(s Schedule, mappingSets ...[]*Mapping) map[string]any {
	doors, zones := map[int64]bool{}, map[int64]bool{}
	for _, set := range mappingSets {
		for _, mp := range set {
			for _, d := range mp.Doors {
				doors[d] = true
			}
			for _, z := range mp.Zones {
				zones[z] = true
			}
		}
	}
	return map[string]any{"id": s.ID, "name": s.Name, "doors": keys(doors), "zones": keys(zones)}
}

// scheduleEdit loads schedules for .update and .delete, which managers and above may make.
// Its Reply is left to the update, which answers with the mappings it wrote.
func (m *Module) scheduleEdit() resource.Edit[Schedule] {
	return resource.Edit[Schedule]{Log: m.events, Load: m.loadSchedule}
}

func (m *Module) loadSchedule(ctx context.Context, q *gorm.DB, id int64) (Schedule, error) {
	return resource.Take[Schedule](ctx, q, "schedule", id)
}

// scheduleObjects serialises schedules and the given mappings (the "included" objects); each
// schedule's "mapping" relationship lists those of the given mappings that belong to it.
// Credentials are referenced by the type the session sees (resource.CredentialType).
func scheduleObjects(q *gorm.DB, sess *core.Session, schedules []Schedule, mappings []*Mapping) (data, included []resource.Object, err error) {
	bySchedule := map[int64][]int64{}
	var credIDs []int64
	for _, mp := range mappings {
		bySchedule[mp.ScheduleID] = append(bySchedule[mp.ScheduleID], mp.ID)
		credIDs = append(credIDs, mp.Credentials...)
	}
	credTypes, err := credentialTypes(q, sortedUnique(credIDs))
	if err != nil {
		return nil, nil, err
	}
	data = make([]resource.Object, len(schedules))
	for i, s := range schedules {
		data[i] = resource.Object{
			ID: s.ID, Type: "schedule",
			Attributes: map[string]any{"version": s.Version, "name": s.Name, "description": s.Description,
				"timeframes": framesAttribute(s.Timeframes)},
			Relationships: map[string]resource.Rel{"mapping": resource.Many("schedule-mapping", bySchedule[s.ID])},
		}
	}
	included = make([]resource.Object, len(mappings))
	for i, mp := range mappings {
		creds := make([]resource.Ref, len(mp.Credentials))
		for j, c := range mp.Credentials {
			creds[j] = resource.Ref{ID: c, Type: resource.CredentialType(sess, credTypes[c])}
		}
		included[i] = resource.Object{
			ID: mp.ID, Type: "schedule-mapping",
			Attributes: map[string]any{"alias": mp.Alias, "version": mp.Version},
			Relationships: map[string]resource.Rel{
				"users":       resource.Many("user", mp.Users),
				"groups":      resource.Many("group", mp.Groups),
				"credentials": resource.Refs(creds),
				"doors":       resource.Many("door", mp.Doors),
				"zones":       resource.Many("zone", mp.Zones),
			},
		}
	}
	return data, included, nil
}

// credentialTypes returns the JSON type ("rfid-card", "pin-code", …) of each credential.
func credentialTypes(q *gorm.DB, ids []int64) (map[int64]string, error) {
	out := map[int64]string{}
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), inChunk)
		var rows []struct {
			ID   int64
			Type string
		}
		if err := q.Raw(`SELECT id, type FROM credentials WHERE id IN ?`, rest[:n]).Scan(&rows).Error; err != nil {
			return nil, resource.DBError(err)
		}
		for _, r := range rows {
			out[r.ID] = r.Type
		}
		rest = rest[n:]
	}
	return out, nil
}

// scheduleReply is {"data": data, "included": included}.
func scheduleReply(data any, included []resource.Object) map[string]any {
	if included == nil {
		included = []resource.Object{}
	}
	return map[string]any{"data": data, "included": included}
}

// readableSchedules returns the mappings that apply to the caller and the set of their
// schedules, or every = true for viewers and above (who read every schedule).
func readableSchedules(ctx context.Context, q *gorm.DB, c *core.Identity) (mine []*Mapping, schedules map[int64]bool, every bool, err error) {
	if resource.ReadsAll(c) {
		return nil, nil, true, nil
	}
	ids, err := MappingIDsOf(ctx, q, c.UserID)
	if err != nil {
		return nil, nil, false, resource.DBError(err)
	}
	if mine, err = LoadMappings(ctx, q, MappingFilter{MappingIDs: ids}); err != nil {
		return nil, nil, false, resource.DBError(err)
	}
	schedules = map[int64]bool{}
	for _, mp := range mine {
		schedules[mp.ScheduleID] = true
	}
	return mine, schedules, false, nil
}

// scheduleRead: schedule_id 0 lists the schedules the caller may read, with their mappings in
// "included"; another id reads one. Viewers and above read every schedule and mapping; a user
// reads the schedules that have a mapping applying to them, and only those mappings.
func (m *Module) scheduleRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "schedule_id")
	if err != nil {
		return nil, err
	}
	var out any
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		mine, readable, every, err := readableSchedules(ctx, tx, call.Caller)
		if err != nil {
			return err
		}
		var schedules []Schedule
		mappings := mine
		if id == 0 {
			q := tx.Order("id")
			if !every {
				q = q.Where("id IN ?", keys(readable))
			}
			if !every && len(readable) == 0 {
				schedules = []Schedule{}
			} else if err := q.Find(&schedules).Error; err != nil {
				return resource.DBError(err)
			}
			if every {
				if mappings, err = LoadMappings(ctx, tx, MappingFilter{}); err != nil {
					return resource.DBError(err)
				}
			}
		} else {
			s, err := m.loadSchedule(ctx, tx, id)
			if err != nil {
				return err
			}
			if !every && !readable[id] {
				return core.ErrPermissionDenied
			}
			schedules = []Schedule{s}
			if every {
				if mappings, err = LoadMappings(ctx, tx, MappingFilter{ScheduleIDs: []int64{id}}); err != nil {
					return resource.DBError(err)
				}
			} else {
				mappings = nil
				for _, mp := range mine {
					if mp.ScheduleID == id {
						mappings = append(mappings, mp)
					}
				}
			}
		}
		data, included, err := scheduleObjects(tx, call.Session, schedules, mappings)
		if err != nil {
			return err
		}
		if id == 0 {
			out = scheduleReply(data, included)
		} else {
			out = scheduleReply(data[0], included)
		}
		return nil
	})
	return out, err
}

type scheduleAttributes struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Timeframes  frameList `json:"timeframes"`
}

// Limits of a schedule's lists (issue 10, point 5: sizes are bounded everywhere): a week of
// timeframes a few minutes apart, and far more mappings than any site uses.
const (
	// MaxTimeframes is the most timeframes a schedule holds.
	MaxTimeframes = 1000
	// MaxMappings is the most mappings a schedule holds.
	MaxMappings = 1000
)

// mappingEntry is one element of the "mapping" array of schedule.create/update.
type mappingEntry struct {
	ID          *int64  `json:"id"`
	Alias       *string `json:"alias"`
	Users       idList  `json:"users"`
	Groups      idList  `json:"groups"`
	Credentials idList  `json:"credentials"`
	Doors       idList  `json:"doors"`
	Zones       idList  `json:"zones"`
}

// lists returns the entry's id lists in the order of mappingLinks.
func (e *mappingEntry) lists() [5]*idList {
	return [5]*idList{&e.Users, &e.Groups, &e.Credentials, &e.Doors, &e.Zones}
}

// applyScheduleAttributes copies the sent attributes onto s and validates the result inside tx
// (name format and uniqueness, timeframes).
func applyScheduleAttributes(tx *gorm.DB, s *Schedule, a scheduleAttributes) error {
	if a.Name != nil {
		s.Name, s.NameFold = *a.Name, resource.Fold(*a.Name)
	}
	if a.Description != nil {
		s.Description = *a.Description
	}
	errs := resource.ValidateName(s.Name)
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "description", Value: a.Description})...)
	if errs == nil {
		var n int64
		if err := tx.Model(&Schedule{}).Where("name = ? AND id <> ?", s.Name, s.ID).Count(&n).Error; err != nil {
			return resource.DBError(err)
		}
		if n > 0 {
			errs = append(errs, core.FieldError{Detail: fmt.Sprintf("A schedule named %s already exists.", s.Name), Pointer: "data/attributes/name"})
		}
	}
	if a.Timeframes.Set {
		frames, ferrs := parseFrames(a.Timeframes.Items)
		errs = append(errs, ferrs...)
		s.Timeframes = frames
	}
	if s.Timeframes == nil {
		s.Timeframes = Frames{}
	}
	if len(errs) > 0 {
		return core.Validation(errs...)
	}
	return nil
}

// applyMappings makes the mappings of a schedule what entries say, inside tx. An entry whose id
// is that of one of existing (the schedule's current mappings) updates that mapping in place
// (its id stays; absent member lists keep their current value); any other entry creates a
// mapping (absent member lists are empty); existing mappings not listed are deleted. Unknown
// member ids are validation errors at mapping/<i>/<field>. It returns the resulting mappings.
func applyMappings(ctx context.Context, tx *gorm.DB, scheduleID int64, entries []mappingEntry, existing []*Mapping) ([]*Mapping, error) {
	byID := map[int64]*Mapping{}
	for _, mp := range existing {
		byID[mp.ID] = mp
	}
	if len(entries) > MaxMappings {
		return nil, core.Validation(core.FieldError{Detail: fmt.Sprintf("A schedule has at most %d mappings.", MaxMappings), Pointer: "mapping"})
	}
	var errs []core.FieldError
	for i, e := range entries {
		errs = append(errs, resource.CheckTexts(resource.Text{Attr: "alias", Value: e.Alias, Pointer: fmt.Sprintf("mapping/%d/alias", i)})...)
	}
	target := make([]*Mapping, len(entries)) // the existing mapping each entry updates, or nil
	taken := map[int64]int{}
	for i, e := range entries {
		if e.ID == nil || byID[*e.ID] == nil {
			continue
		}
		if j, dup := taken[*e.ID]; dup {
			errs = append(errs, core.FieldError{Detail: fmt.Sprintf("Mapping %d is listed twice (entries %d and %d).", *e.ID, j, i),
				Pointer: fmt.Sprintf("mapping/%d/id", i)})
			continue
		}
		taken[*e.ID] = i
		target[i] = byID[*e.ID]
	}
	for li, link := range mappingLinks {
		var all []int64
		for i := range entries {
			all = append(all, entries[i].lists()[li].IDs...)
		}
		miss, err := missingIDs(tx, link.table, sortedUnique(all))
		if err != nil {
			return nil, err
		}
		if len(miss) == 0 {
			continue
		}
		missing := map[int64]bool{}
		for _, id := range miss {
			missing[id] = true
		}
		for i := range entries {
			for _, id := range entries[i].lists()[li].IDs {
				if missing[id] {
					errs = append(errs, core.FieldError{Detail: fmt.Sprintf("%s %d does not exist.", link.what, id),
						Pointer: fmt.Sprintf("mapping/%d/%s", i, link.table)})
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	kept := map[int64]bool{}
	for i, e := range entries {
		var id int64
		if ex := target[i]; ex != nil {
			id = ex.ID
			kept[id] = true
			alias := ex.Alias
			if e.Alias != nil {
				alias = *e.Alias
			}
			if err := tx.Model(&ScheduleMapping{}).Where("id = ?", id).
				Updates(map[string]any{"alias": alias, "position": i, "version": gorm.Expr("version + 1")}).Error; err != nil {
				return nil, resource.DBError(err)
			}
		} else {
			row := ScheduleMapping{ScheduleID: scheduleID, Position: i, Version: 1}
			if e.Alias != nil {
				row.Alias = *e.Alias
			}
			if err := tx.Create(&row).Error; err != nil {
				return nil, resource.DBError(err)
			}
			id = row.ID
		}
		for li, l := range e.lists() {
			link := mappingLinks[li]
			if target[i] != nil {
				if !l.Set {
					continue
				}
				if err := tx.Exec(fmt.Sprintf(`DELETE FROM mapping_%s WHERE mapping_id = ?`, link.table), id).Error; err != nil {
					return nil, resource.DBError(err)
				}
			}
			if err := insertLinks(tx, "mapping_"+link.table, "mapping_id", link.column, id, l.IDs); err != nil {
				return nil, err
			}
		}
	}
	var drop []int64
	for _, mp := range existing {
		if !kept[mp.ID] {
			drop = append(drop, mp.ID)
		}
	}
	if len(drop) > 0 {
		if err := tx.Where("id IN ?", drop).Delete(&ScheduleMapping{}).Error; err != nil {
			return nil, resource.DBError(err)
		}
	}
	out, err := LoadMappings(ctx, tx, MappingFilter{ScheduleIDs: []int64{scheduleID}})
	return out, resource.DBError(err)
}

// scheduleRequest is the content of schedule.create and schedule.update.
type scheduleRequest struct {
	ScheduleID int64              `json:"schedule_id"`
	Attributes scheduleAttributes `json:"attributes"`
	Mapping    *[]mappingEntry    `json:"mapping"`
}

func (m *Module) scheduleCreate(ctx context.Context, call *core.Call) (any, error) {
	var req scheduleRequest
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	var s Schedule
	var mappings []*Mapping
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := resource.RequireManager(call.Caller); err != nil {
			return err
		}
		s = Schedule{Version: 1}
		if err := applyScheduleAttributes(tx.DB, &s, req.Attributes); err != nil {
			return err
		}
		if err := tx.Create(&s).Error; err != nil {
			return resource.DBError(err)
		}
		mappings = []*Mapping{}
		mask := eventlog.ScheduleCreated
		if req.Mapping != nil {
			var err error
			if mappings, err = applyMappings(ctx, tx.DB, s.ID, *req.Mapping, nil); err != nil {
				return err
			}
			if len(mappings) > 0 {
				mask |= eventlog.MappingMayHaveChanged
			}
		}
		return tx.Record(eventlog.Change{
			Topic: "schedule.created", Kind: eventlog.KindSchedule, Mask: mask, Caller: call.Caller,
			TargetID: s.ID, Description: fmt.Sprintf("Schedule %q (%d) created.", s.Name, s.ID),
			After: scheduleSnapshot(s, mappings), Data: scheduleData(s, mappings),
		})
	})
	if err != nil {
		return nil, err
	}
	return m.scheduleWriteReply(m.db.Read.WithContext(ctx), call.Session, s, mappings)
}

// scheduleWriteReply answers {"data": schedule, "included": its mappings}.
func (m *Module) scheduleWriteReply(q *gorm.DB, sess *core.Session, s Schedule, mappings []*Mapping) (any, error) {
	data, included, err := scheduleObjects(q, sess, []Schedule{s}, mappings)
	if err != nil {
		return nil, err
	}
	return scheduleReply(data[0], included), nil
}

// scheduleUpdate changes a schedule's attributes (absent ones keep their value) and, when
// "mapping" is present, its set of mappings (see applyMappings).
func (m *Module) scheduleUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req scheduleRequest
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	var mappings []*Mapping
	edit := m.scheduleEdit()
	edit.Reply = func(ctx context.Context, s Schedule) (any, error) {
		return m.scheduleWriteReply(m.db.Read.WithContext(ctx), call.Session, s, mappings)
	}
	return edit.Update(ctx, call.Caller, req.ScheduleID, func(tx *eventlog.Tx, s *Schedule) error {
		old, err := LoadMappings(ctx, tx.DB, MappingFilter{ScheduleIDs: []int64{s.ID}})
		if err != nil {
			return resource.DBError(err)
		}
		before := scheduleSnapshot(*s, old)
		if err := applyScheduleAttributes(tx.DB, s, req.Attributes); err != nil {
			return err
		}
		mappings = old
		if req.Mapping != nil {
			if mappings, err = applyMappings(ctx, tx.DB, s.ID, *req.Mapping, old); err != nil {
				return err
			}
		}
		s.Version++
		if err := tx.Save(s).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "schedule.updated", Kind: eventlog.KindSchedule, Mask: eventlog.ScheduleUpdated | eventlog.MappingMayHaveChanged,
			Caller: call.Caller, TargetID: s.ID, Description: fmt.Sprintf("Schedule %q (%d) updated.", s.Name, s.ID),
			Before: before, After: scheduleSnapshot(*s, mappings), Data: scheduleData(*s, old, mappings),
		})
	})
}

// scheduleDelete deletes a schedule; its mappings and their links go with it (foreign keys).
func (m *Module) scheduleDelete(ctx context.Context, call *core.Call) (any, error) {
	return m.scheduleEdit().Delete(ctx, call, "schedule_id", func(tx *eventlog.Tx, s Schedule) error {
		old, err := LoadMappings(ctx, tx.DB, MappingFilter{ScheduleIDs: []int64{s.ID}})
		if err != nil {
			return resource.DBError(err)
		}
		if err := tx.Delete(&Schedule{}, s.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "schedule.deleted", Kind: eventlog.KindSchedule, Mask: eventlog.ScheduleDeleted | eventlog.MappingMayHaveChanged,
			Caller: call.Caller, TargetID: s.ID, Description: fmt.Sprintf("Schedule %q (%d) deleted.", s.Name, s.ID),
			Before: scheduleSnapshot(s, old), Data: scheduleData(s, old),
		})
	})
}

// orphanDrop removes the mappings that the deletion of a door or zone would leave without any
// door or zone: such a mapping would otherwise target every door. prepareOrphanDrop deletes
// them (before the door or zone goes) and keeps the affected schedules' "before" snapshots;
// finish records one schedule.updated per affected schedule (after the door or zone went).
type orphanDrop struct {
	mappings  map[int64][]int64 // schedule id → removed mapping ids
	schedules []Schedule
	before    map[int64]map[string]any
}

func (m *Module) prepareOrphanDrop(ctx context.Context, tx *gorm.DB, mappingIDs []int64) (*orphanDrop, error) {
	o := &orphanDrop{mappings: map[int64][]int64{}, before: map[int64]map[string]any{}}
	if len(mappingIDs) == 0 {
		return o, nil
	}
	var rows []ScheduleMapping
	if err := tx.Where("id IN ?", mappingIDs).Order("schedule_id, id").Find(&rows).Error; err != nil {
		return nil, resource.DBError(err)
	}
	for _, r := range rows {
		if _, seen := o.mappings[r.ScheduleID]; !seen {
			s, err := m.loadSchedule(ctx, tx, r.ScheduleID)
			if err != nil {
				return nil, err
			}
			ms, err := LoadMappings(ctx, tx, MappingFilter{ScheduleIDs: []int64{s.ID}})
			if err != nil {
				return nil, resource.DBError(err)
			}
			o.schedules = append(o.schedules, s)
			o.before[s.ID] = scheduleSnapshot(s, ms)
		}
		o.mappings[r.ScheduleID] = append(o.mappings[r.ScheduleID], r.ID)
	}
	if err := tx.Where("id IN ?", mappingIDs).Delete(&ScheduleMapping{}).Error; err != nil {
		return nil, resource.DBError(err)
	}
	return o, nil
}

// finish bumps the affected schedules' versions and records their changes; cause names what
// was deleted ("door \"Front\" (3)"), doors and zones are the topic's Data lists.
func (o *orphanDrop) finish(ctx context.Context, tx *eventlog.Tx, caller *core.Identity, cause string, doors, zones []int64) error {
	for _, s := range o.schedules {
		s.Version++
		if err := tx.Model(&Schedule{}).Where("id = ?", s.ID).
			Updates(map[string]any{"version": s.Version, "updated_at": time.Now().UTC()}).Error; err != nil {
			return resource.DBError(err)
		}
		after, err := LoadMappings(ctx, tx.DB, MappingFilter{ScheduleIDs: []int64{s.ID}})
		if err != nil {
			return resource.DBError(err)
		}
		if err := tx.Record(eventlog.Change{
			Topic: "schedule.updated", Kind: eventlog.KindSchedule, Mask: eventlog.ScheduleUpdated | eventlog.MappingMayHaveChanged,
			Caller: caller, TargetID: s.ID,
			Description: fmt.Sprintf("Schedule %q (%d): mapping(s) %v removed because their only target, %s, was deleted.",
				s.Name, s.ID, o.mappings[s.ID], cause),
			Before: o.before[s.ID], After: scheduleSnapshot(s, after),
			Data: map[string]any{"id": s.ID, "name": s.Name, "doors": nonNil(doors), "zones": nonNil(zones)},
		}); err != nil {
			return err
		}
	}
	return nil
}
