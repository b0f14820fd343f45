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

// Door is a row of the doors table: a named door, driven through at most one access point.
type Door struct {
	ID            int64 `gorm:"primaryKey"`
	Alias         string
	AliasFold     string
	Description   string
	AccessPointID *int64 // nil = no access point
	Version       int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TableName implements GORM's tabler.
func (Door) TableName() string { return "doors" }

// apID returns the door's access point id, 0 for none.
func (d Door) apID() int64 {
	if d.AccessPointID == nil {
		return 0
	}
	return *d.AccessPointID
}

// snapshot is what the audit trail keeps of a door.
func (d Door) snapshot() map[string]any {
	return map[string]any{"id": d.ID, "alias": d.Alias, "description": d.Description,
		"access_point_id": d.AccessPointID, "version": d.Version}
}

// data is the payload of the door.* topics.
func (d Door) data() map[string]any {
	return map[string]any{"id": d.ID, "alias": d.Alias, "access_point_id": d.AccessPointID}
}

// doorEdit loads doors for .update and .delete, which managers and above may make; an
// update answers the door as read after the change.
func (m *Module) doorEdit() resource.Edit[Door] {
	return resource.Edit[Door]{Log: m.events, Load: m.loadDoor, Reply: m.doorReply}
}

func (m *Module) loadDoor(ctx context.Context, q *gorm.DB, id int64) (Door, error) {
	return resource.Take[Door](ctx, q, "door", id)
}

// doorObjects serialises doors with their relationships (the access point, and the zones that
// contain each door), loading the zones of all of them at once.
func doorObjects(q *gorm.DB, doors []Door) ([]resource.Object, error) {
	ids := make([]int64, len(doors))
	for i, d := range doors {
		ids[i] = d.ID
	}
	pairs, err := loadPairs(q, `SELECT door_id AS a, zone_id AS b FROM zone_doors WHERE door_id IN ? ORDER BY a, b`, ids)
	if err != nil {
		return nil, resource.DBError(err)
	}
	zones := group(pairs)
	out := make([]resource.Object, len(doors))
	for i, d := range doors {
		out[i] = resource.Object{
			ID: d.ID, Type: "door",
			Attributes: map[string]any{"alias": d.Alias, "description": d.Description, "version": d.Version},
			Relationships: map[string]resource.Rel{
				"access-point": resource.One("access-point", d.apID()),
				"zones":        resource.Many("zone", zones[d.ID]),
			},
		}
	}
	return out, nil
}

// readableDoors returns the doors the caller may read: every door (every = true) for viewers and
// above, otherwise those targeted by a mapping that applies to the caller.
func readableDoors(ctx context.Context, q *gorm.DB, c *core.Identity) (doors map[int64]bool, every bool, err error) {
	if resource.ReadsAll(c) {
		return nil, true, nil
	}
	doors, every, err = DoorsOf(ctx, q, c.UserID)
	return doors, every, resource.DBError(err)
}

// doorRead: door_id 0 lists the doors the caller may read; another id reads one door
// (PERMISSION_DENIED when the caller may not read it).
func (m *Module) doorRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "door_id")
	if err != nil {
		return nil, err
	}
	var out any
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		readable, every, err := readableDoors(ctx, tx, call.Caller)
		if err != nil {
			return err
		}
		if id == 0 {
			var doors []Door
			q := tx.Order("id")
			if !every {
				q = q.Where("id IN ?", keys(readable))
			}
			if !every && len(readable) == 0 {
				doors = []Door{}
			} else if err := q.Find(&doors).Error; err != nil {
				return resource.DBError(err)
			}
			objs, err := doorObjects(tx, doors)
			if err != nil {
				return err
			}
			out = resource.List(objs)
			return nil
		}
		d, err := m.loadDoor(ctx, tx, id)
		if err != nil {
			return err
		}
		if !every && !readable[id] {
			return core.ErrPermissionDenied
		}
		objs, err := doorObjects(tx, []Door{d})
		if err != nil {
			return err
		}
		out = resource.Single(objs[0])
		return nil
	})
	return out, err
}

type doorAttributes struct {
	Alias         *string    `json:"alias"`
	Description   *string    `json:"description"`
	AccessPointID optionalID `json:"access_point_id"`
}

// validate checks the length of the strings sent.
func (a doorAttributes) validate() error {
	return resource.ValidateTexts(resource.Text{Attr: "alias", Value: a.Alias}, resource.Text{Attr: "description", Value: a.Description})
}

// apply copies the attributes that were sent onto d.
func (a doorAttributes) apply(d *Door) {
	if a.Alias != nil {
		d.Alias, d.AliasFold = *a.Alias, resource.Fold(*a.Alias)
	}
	if a.Description != nil {
		d.Description = *a.Description
	}
	if a.AccessPointID.Set {
		if a.AccessPointID.ID == 0 {
			d.AccessPointID = nil
		} else {
			id := a.AccessPointID.ID
			d.AccessPointID = &id
		}
	}
}

// checkDoorAccessPoint checks, inside tx, that the door's access point exists and is not used
// by another door (the door itself may keep its own: Leosac bug §8.3-17).
func checkDoorAccessPoint(tx *gorm.DB, d Door) error {
	ap := d.apID()
	if ap == 0 {
		return nil
	}
	const ptr = "data/attributes/access_point_id"
	var n int64
	if err := tx.Model(&AccessPoint{}).Where("id = ?", ap).Count(&n).Error; err != nil {
		return resource.DBError(err)
	}
	if n == 0 {
		return core.Validation(core.FieldError{Detail: fmt.Sprintf("Access point %d does not exist.", ap), Pointer: ptr})
	}
	var other []int64
	if err := tx.Model(&Door{}).Where("access_point_id = ? AND id <> ?", ap, d.ID).Limit(1).Pluck("id", &other).Error; err != nil {
		return resource.DBError(err)
	}
	if len(other) > 0 {
		return core.Validation(core.FieldError{Detail: fmt.Sprintf("The access point %d is already used by door %d.", ap, other[0]), Pointer: ptr})
	}
	return nil
}

func (m *Module) doorCreate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Attributes doorAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	d := Door{Version: 1}
	req.Attributes.apply(&d)
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := resource.RequireManager(call.Caller); err != nil {
			return err
		}
		if err := req.Attributes.validate(); err != nil {
			return err
		}
		if err := checkDoorAccessPoint(tx.DB, d); err != nil {
			return err
		}
		if err := tx.Create(&d).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "door.created", Kind: eventlog.KindDoor, Mask: eventlog.DoorCreated, Caller: call.Caller,
			TargetID: d.ID, DoorID: d.ID, Description: fmt.Sprintf("Door %q (%d) created.", d.Alias, d.ID),
			After: d.snapshot(), Data: d.data(),
		})
	})
	if err != nil {
		return nil, err
	}
	return m.doorReply(ctx, d)
}

// doorReply answers {"data": door} as read after a change.
func (m *Module) doorReply(ctx context.Context, d Door) (any, error) {
	return replyOne(ctx, m, d, doorObjects)
}

func (m *Module) doorUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		DoorID     int64          `json:"door_id"`
		Attributes doorAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	return m.doorEdit().Update(ctx, call.Caller, req.DoorID, func(tx *eventlog.Tx, d *Door) error {
		before := d.snapshot()
		if err := req.Attributes.validate(); err != nil {
			return err
		}
		req.Attributes.apply(d)
		if err := checkDoorAccessPoint(tx.DB, *d); err != nil {
			return err
		}
		d.Version++
		if err := tx.Save(d).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "door.updated", Kind: eventlog.KindDoor, Mask: eventlog.DoorUpdated, Caller: call.Caller,
			TargetID: d.ID, DoorID: d.ID, Description: fmt.Sprintf("Door %q (%d) updated.", d.Alias, d.ID),
			Before: before, After: d.snapshot(), Data: d.data(),
		})
	})
}

// doorDelete deletes a door; its zone and mapping links go with it (foreign keys). A mapping
// whose only target was this door is deleted too: left without doors and zones it would target
// every door, widening access instead of narrowing it.
func (m *Module) doorDelete(ctx context.Context, call *core.Call) (any, error) {
	return m.doorEdit().Delete(ctx, call, "door_id", func(tx *eventlog.Tx, d Door) error {
		var orphans []int64
		if err := tx.Raw(`SELECT md.mapping_id FROM mapping_doors md WHERE md.door_id = ?
			AND NOT EXISTS (SELECT 1 FROM mapping_doors o WHERE o.mapping_id = md.mapping_id AND o.door_id <> md.door_id)
			AND NOT EXISTS (SELECT 1 FROM mapping_zones z WHERE z.mapping_id = md.mapping_id)
			ORDER BY md.mapping_id`, d.ID).Scan(&orphans).Error; err != nil {
			return resource.DBError(err)
		}
		drop, err := m.prepareOrphanDrop(ctx, tx.DB, orphans)
		if err != nil {
			return err
		}
		if err := tx.Delete(&Door{}, d.ID).Error; err != nil {
			return resource.DBError(err)
		}
		data := d.data()
		data["mappings_removed"] = nonNil(orphans)
		if err := tx.Record(eventlog.Change{
			Topic: "door.deleted", Kind: eventlog.KindDoor, Mask: eventlog.DoorDeleted, Caller: call.Caller,
			TargetID: d.ID, DoorID: d.ID, Description: fmt.Sprintf("Door %q (%d) deleted.", d.Alias, d.ID),
			Before: d.snapshot(), Data: data,
		}); err != nil {
			return err
		}
		return drop.finish(ctx, tx, call.Caller, fmt.Sprintf("door %q (%d)", d.Alias, d.ID), []int64{d.ID}, nil)
	})
}
