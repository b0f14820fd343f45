package site

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// ZoneType is a zone's kind, in Leosac's values.
type ZoneType int

// The zone types. A physical zone is a place (a building, a floor); a logical zone is any
// grouping of doors and zones.
const (
	ZonePhysical ZoneType = 0
	ZoneLogical  ZoneType = 1
)

// Zone is a row of the zones table. Its children and doors are in zone_children and zone_doors.
type Zone struct {
	ID          int64 `gorm:"primaryKey"`
	Alias       string
	AliasFold   string
	Description string
	Type        ZoneType
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements GORM's tabler.
func (Zone) TableName() string { return "zones" }

// The zone hierarchy messages, as Leosac words them (pointer "").
const (
	msgZoneCycle             = "There cannot be cycle in parent/child relationship."
	msgZoneTwoPhysical       = "A physical zone cannot have more than one physical parent."
	msgZoneLogicalInPhysical = "A logical zone cannot have physical zone as a parent"
)

// CheckZoneGraph checks Leosac's zone hierarchy rules on a whole graph: types gives every zone's
// type, children every parent's children. The rules: no cycle (a zone that is its own child is
// one); a physical zone has at most one physical parent; a logical zone has no physical parent.
// It returns the error of the first broken rule (cycles are looked for first, zones are visited
// in id order) with pointer "", or nil when the graph is valid.
func CheckZoneGraph(types map[int64]ZoneType, children map[int64][]int64) *core.FieldError {
	ids := make([]int64, 0, len(types))
	for id := range types {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// Cycles: iterative depth-first search with three colours.
	const (
		white = iota
		grey
		black
	)
	colour := map[int64]int{}
	type frame struct {
		id   int64
		next int
	}
	for _, root := range ids {
		if colour[root] != white {
			continue
		}
		colour[root] = grey
		stack := []frame{{id: root}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			kids := children[top.id]
			if top.next == len(kids) {
				colour[top.id] = black
				stack = stack[:len(stack)-1]
				continue
			}
			kid := kids[top.next]
			top.next++
			switch colour[kid] {
			case grey:
				return &core.FieldError{Detail: msgZoneCycle}
			case white:
				colour[kid] = grey
				stack = append(stack, frame{id: kid})
			}
		}
	}
	physicalParents := map[int64]int{}
	for parent, kids := range children {
		if types[parent] != ZonePhysical {
			continue
		}
		for _, kid := range kids {
			physicalParents[kid]++
		}
	}
	for _, id := range ids {
		n := physicalParents[id]
		switch {
		case n > 0 && types[id] == ZoneLogical:
			return &core.FieldError{Detail: msgZoneLogicalInPhysical}
		case n > 1:
			return &core.FieldError{Detail: msgZoneTwoPhysical}
		}
	}
	return nil
}

// checkZones checks the zone rules on the whole hierarchy as it stands inside tx.
func checkZones(tx *gorm.DB) error {
	var zs []struct {
		ID   int64
		Type ZoneType
	}
	if err := tx.Raw(`SELECT id, type FROM zones`).Scan(&zs).Error; err != nil {
		return resource.DBError(err)
	}
	var edges []idPair
	if err := tx.Raw(`SELECT parent_id AS a, child_id AS b FROM zone_children ORDER BY a, b`).Scan(&edges).Error; err != nil {
		return resource.DBError(err)
	}
	types := make(map[int64]ZoneType, len(zs))
	for _, z := range zs {
		types[z.ID] = z.Type
	}
	if fe := CheckZoneGraph(types, group(edges)); fe != nil {
		return core.Validation(*fe)
	}
	return nil
}

// zoneLinks are a zone's relationships.
type zoneLinks struct {
	Children, Doors, Parents []int64
}

// loadZoneLinks loads the children, doors and parents of the given zones.
func loadZoneLinks(q *gorm.DB, ids []int64) (map[int64]*zoneLinks, error) {
	out := make(map[int64]*zoneLinks, len(ids))
	for _, id := range ids {
		out[id] = &zoneLinks{Children: []int64{}, Doors: []int64{}, Parents: []int64{}}
	}
	for _, l := range []struct {
		query string
		field func(*zoneLinks) *[]int64
	}{
		{`SELECT parent_id AS a, child_id AS b FROM zone_children WHERE parent_id IN ? ORDER BY a, b`, func(z *zoneLinks) *[]int64 { return &z.Children }},
		{`SELECT zone_id AS a, door_id AS b FROM zone_doors WHERE zone_id IN ? ORDER BY a, b`, func(z *zoneLinks) *[]int64 { return &z.Doors }},
		{`SELECT child_id AS a, parent_id AS b FROM zone_children WHERE child_id IN ? ORDER BY a, b`, func(z *zoneLinks) *[]int64 { return &z.Parents }},
	} {
		pairs, err := loadPairs(q, l.query, ids)
		if err != nil {
			return nil, resource.DBError(err)
		}
		for _, p := range pairs {
			if z := out[p.A]; z != nil {
				f := l.field(z)
				*f = append(*f, p.B)
			}
		}
	}
	return out, nil
}

// zoneSnapshot is what the audit trail keeps of a zone, and also the payload of its topics.
func zoneSnapshot(z Zone, l *zoneLinks) map[string]any {
	return map[string]any{"id": z.ID, "alias": z.Alias, "description": z.Description, "type": int(z.Type),
		"version": z.Version, "parents": l.Parents, "children": l.Children, "doors": l.Doors}
}

// zoneData is the payload of the zone.* topics: enough for an engine to update its zone index.
func zoneData(z Zone, l *zoneLinks) map[string]any {
	return map[string]any{"id": z.ID, "alias": z.Alias, "type": int(z.Type), "parents": l.Parents, "children": l.Children, "doors": l.Doors}
}

// zoneEdit loads zones for .update and .delete, which managers and above may make; an
// update answers the zone as read after the change.
func (m *Module) zoneEdit() resource.Edit[Zone] {
	return resource.Edit[Zone]{Log: m.events, Load: m.loadZone, Reply: m.zoneReply}
}

func (m *Module) loadZone(ctx context.Context, q *gorm.DB, id int64) (Zone, error) {
	return resource.Take[Zone](ctx, q, "zone", id)
}

// zoneObjects serialises zones with their children, doors and parents.
func zoneObjects(q *gorm.DB, zones []Zone) ([]resource.Object, error) {
	ids := make([]int64, len(zones))
	for i, z := range zones {
		ids[i] = z.ID
	}
	links, err := loadZoneLinks(q, ids)
	if err != nil {
		return nil, err
	}
	out := make([]resource.Object, len(zones))
	for i, z := range zones {
		l := links[z.ID]
		out[i] = resource.Object{
			ID: z.ID, Type: "zone",
			Attributes: map[string]any{"alias": z.Alias, "description": z.Description, "type": int(z.Type), "version": z.Version},
			Relationships: map[string]resource.Rel{
				"children": resource.Many("zone", l.Children),
				"doors":    resource.Many("door", l.Doors),
				"parents":  resource.Many("zone", l.Parents),
			},
		}
	}
	return out, nil
}

// zoneRead: zone_id 0 lists every zone, another id reads one; viewers and above.
func (m *Module) zoneRead(ctx context.Context, call *core.Call) (any, error) {
	return readOneOrAll(ctx, m, call, "zone_id", m.loadZone, zoneObjects)
}

type zoneAttributes struct {
	Alias       *string `json:"alias"`
	Description *string `json:"description"`
	Type        *int    `json:"type"`
	Doors       idList  `json:"doors"`
	Children    idList  `json:"children"`
}

// applyZone copies the sent attributes onto z and replaces its door and child lists when they
// were sent, inside tx (z must already have its id). It validates the type and the ids, but not
// the hierarchy (checkZones does, once everything is written).
func applyZone(tx *gorm.DB, z *Zone, a zoneAttributes) error {
	var errs []core.FieldError
	if a.Alias != nil {
		z.Alias, z.AliasFold = *a.Alias, resource.Fold(*a.Alias)
	}
	if a.Description != nil {
		z.Description = *a.Description
	}
	if a.Type != nil {
		if t := ZoneType(*a.Type); t != ZonePhysical && t != ZoneLogical {
			errs = append(errs, core.FieldError{Detail: "Invalid zone type.", Pointer: "data/attributes/type"})
		} else {
			z.Type = t
		}
	}
	doorErrs, err := referenceErrors(tx, "doors", "Door", "data/attributes/doors", a.Doors.IDs)
	if err != nil {
		return err
	}
	childErrs, err := referenceErrors(tx, "zones", "Zone", "data/attributes/children", a.Children.IDs)
	if err != nil {
		return err
	}
	errs = append(append(errs, doorErrs...), childErrs...)
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "alias", Value: a.Alias}, resource.Text{Attr: "description", Value: a.Description})...)
	if len(errs) > 0 {
		return core.Validation(errs...)
	}
	return nil
}

// writeZoneLinks replaces the zone's doors and children that were sent, checks the hierarchy
// rules on the whole graph (the zone's row must be saved already) and returns the zone's links
// as they now are.
func writeZoneLinks(tx *gorm.DB, id int64, a zoneAttributes) (map[int64]*zoneLinks, error) {
	if err := replaceZoneLinks(tx, id, a); err != nil {
		return nil, err
	}
	if err := checkZones(tx); err != nil {
		return nil, err
	}
	return loadZoneLinks(tx, []int64{id})
}

// replaceZoneLinks replaces the zone's doors and children that were sent.
func replaceZoneLinks(tx *gorm.DB, id int64, a zoneAttributes) error {
	if a.Doors.Set {
		if err := tx.Exec(`DELETE FROM zone_doors WHERE zone_id = ?`, id).Error; err != nil {
			return resource.DBError(err)
		}
		if err := insertLinks(tx, "zone_doors", "zone_id", "door_id", id, a.Doors.IDs); err != nil {
			return err
		}
	}
	if a.Children.Set {
		if err := tx.Exec(`DELETE FROM zone_children WHERE parent_id = ?`, id).Error; err != nil {
			return resource.DBError(err)
		}
		if err := insertLinks(tx, "zone_children", "parent_id", "child_id", id, a.Children.IDs); err != nil {
			return err
		}
	}
	return nil
}

func (m *Module) zoneCreate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Attributes zoneAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	var z Zone
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := resource.RequireManager(call.Caller); err != nil {
			return err
		}
		z = Zone{Type: ZoneLogical, Version: 1}
		if err := applyZone(tx.DB, &z, req.Attributes); err != nil {
			return err
		}
		if err := tx.Create(&z).Error; err != nil {
			return resource.DBError(err)
		}
		links, err := writeZoneLinks(tx.DB, z.ID, req.Attributes)
		if err != nil {
			return err
		}
		return tx.Record(eventlog.Change{
			Topic: "zone.created", Kind: eventlog.KindZone, Mask: eventlog.ZoneCreated, Caller: call.Caller,
			TargetID: z.ID, Description: fmt.Sprintf("Zone %q (%d) created.", z.Alias, z.ID),
			After: zoneSnapshot(z, links[z.ID]), Data: zoneData(z, links[z.ID]),
		})
	})
	if err != nil {
		return nil, err
	}
	return m.zoneReply(ctx, z)
}

// zoneReply answers {"data": zone} as read after a change.
func (m *Module) zoneReply(ctx context.Context, z Zone) (any, error) {
	return replyOne(ctx, m, z, zoneObjects)
}

// zoneUpdate changes a zone; "doors" and "children", when present, replace the lists (absent:
// kept). The hierarchy rules are checked on the whole graph after the change.
func (m *Module) zoneUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		ZoneID     int64          `json:"zone_id"`
		Attributes zoneAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	return m.zoneEdit().Update(ctx, call.Caller, req.ZoneID, func(tx *eventlog.Tx, z *Zone) error {
		old, err := loadZoneLinks(tx.DB, []int64{z.ID})
		if err != nil {
			return err
		}
		before := zoneSnapshot(*z, old[z.ID])
		if err := applyZone(tx.DB, z, req.Attributes); err != nil {
			return err
		}
		z.Version++
		if err := tx.Save(z).Error; err != nil {
			return resource.DBError(err)
		}
		links, err := writeZoneLinks(tx.DB, z.ID, req.Attributes)
		if err != nil {
			return err
		}
		return tx.Record(eventlog.Change{
			Topic: "zone.updated", Kind: eventlog.KindZone, Mask: eventlog.ZoneUpdated, Caller: call.Caller,
			TargetID: z.ID, Description: fmt.Sprintf("Zone %q (%d) updated.", z.Alias, z.ID),
			Before: before, After: zoneSnapshot(*z, links[z.ID]), Data: zoneData(*z, links[z.ID]),
		})
	})
}

// zoneDelete deletes a zone; its parent, child and door links and its places in mappings go
// with it (foreign keys). A mapping whose only target was this zone is deleted too (left
// without doors and zones it would target every door).
func (m *Module) zoneDelete(ctx context.Context, call *core.Call) (any, error) {
	return m.zoneEdit().Delete(ctx, call, "zone_id", func(tx *eventlog.Tx, z Zone) error {
		links, err := loadZoneLinks(tx.DB, []int64{z.ID})
		if err != nil {
			return err
		}
		var orphans []int64
		if err := tx.Raw(`SELECT mz.mapping_id FROM mapping_zones mz WHERE mz.zone_id = ?
			AND NOT EXISTS (SELECT 1 FROM mapping_zones o WHERE o.mapping_id = mz.mapping_id AND o.zone_id <> mz.zone_id)
			AND NOT EXISTS (SELECT 1 FROM mapping_doors d WHERE d.mapping_id = mz.mapping_id)
			ORDER BY mz.mapping_id`, z.ID).Scan(&orphans).Error; err != nil {
			return resource.DBError(err)
		}
		drop, err := m.prepareOrphanDrop(ctx, tx.DB, orphans)
		if err != nil {
			return err
		}
		if err := tx.Delete(&Zone{}, z.ID).Error; err != nil {
			return resource.DBError(err)
		}
		data := zoneData(z, links[z.ID])
		data["mappings_removed"] = nonNil(orphans)
		if err := tx.Record(eventlog.Change{
			Topic: "zone.deleted", Kind: eventlog.KindZone, Mask: eventlog.ZoneDeleted, Caller: call.Caller,
			TargetID: z.ID, Description: fmt.Sprintf("Zone %q (%d) deleted.", z.Alias, z.ID),
			Before: zoneSnapshot(z, links[z.ID]), Data: data,
		}); err != nil {
			return err
		}
		return drop.finish(ctx, tx, call.Caller, fmt.Sprintf("zone %q (%d)", z.Alias, z.ID), nil, []int64{z.ID})
	})
}
