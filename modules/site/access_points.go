package site

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// The controller modules an access point may name (contract §11).
const (
	ControllerSimulator = "simulator"
	ControllerWiegand   = "wiegand"
	ControllerMQTT      = "mqtt"
	// ControllerLeosacBuiltin is Leosac's name, accepted and stored as given; it means the
	// simulator.
	ControllerLeosacBuiltin = "LEOSAC-BUILTIN-ACCESS-POINT"
)

// ControllerModule returns the module that drives access points of the given controller-module
// value ("simulator", "wiegand" or "mqtt"; Leosac's built-in name maps to "simulator"), and
// false for a value gatehouse does not know.
func ControllerModule(value string) (string, bool) {
	switch value {
	case ControllerSimulator, ControllerLeosacBuiltin:
		return ControllerSimulator, true
	case ControllerWiegand, ControllerMQTT:
		return value, true
	}
	return "", false
}

// AccessPoint is a row of the access_points table: a reader, driven by the module its
// ControllerModule names, with that module's settings in Config (a JSON object).
type AccessPoint struct {
	ID               int64 `gorm:"primaryKey"`
	Alias            string
	AliasFold        string
	Description      string
	ControllerModule string
	Config           string
	Version          int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// TableName implements GORM's tabler.
func (AccessPoint) TableName() string { return "access_points" }

// configJSON returns the config as raw JSON ({} when empty).
func (a AccessPoint) configJSON() json.RawMessage {
	if a.Config == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(a.Config)
}

// snapshot is what the audit trail keeps of an access point (secret-looking config keys are
// redacted by eventlog.Snapshot).
func (a AccessPoint) snapshot() map[string]any {
	return map[string]any{"id": a.ID, "alias": a.Alias, "description": a.Description,
		"controller-module": a.ControllerModule, "config": a.configJSON(), "version": a.Version}
}

// data is the payload of the access_point.* topics. The config is left out (it may hold a
// module's connection settings); a driving module reads it from the database by id.
func (a AccessPoint) data(doorID int64) map[string]any {
	d := map[string]any{"id": a.ID, "alias": a.Alias, "controller_module": a.ControllerModule, "door_id": nil}
	if doorID != 0 {
		d["door_id"] = doorID
	}
	return d
}

// accessPointEdit loads access points for .update and .delete, which managers and above may
// make; an update answers the access point as read after the change.
func (m *Module) accessPointEdit() resource.Edit[AccessPoint] {
	return resource.Edit[AccessPoint]{Log: m.events, Load: m.loadAccessPoint, Reply: m.accessPointReply}
}

func (m *Module) loadAccessPoint(ctx context.Context, q *gorm.DB, id int64) (AccessPoint, error) {
	return resource.Take[AccessPoint](ctx, q, "access-point", id)
}

// doorsOfAccessPoints maps access point ids to the door that uses each.
func doorsOfAccessPoints(q *gorm.DB, ids []int64) (map[int64]int64, error) {
	pairs, err := loadPairs(q, `SELECT access_point_id AS a, id AS b FROM doors WHERE access_point_id IN ?`, ids)
	if err != nil {
		return nil, resource.DBError(err)
	}
	out := make(map[int64]int64, len(pairs))
	for _, p := range pairs {
		out[p.A] = p.B
	}
	return out, nil
}

// accessPointObjects serialises access points with their door.
func accessPointObjects(q *gorm.DB, aps []AccessPoint) ([]resource.Object, error) {
	ids := make([]int64, len(aps))
	for i, a := range aps {
		ids[i] = a.ID
	}
	doors, err := doorsOfAccessPoints(q, ids)
	if err != nil {
		return nil, err
	}
	out := make([]resource.Object, len(aps))
	for i, a := range aps {
		out[i] = resource.Object{
			ID: a.ID, Type: "access-point",
			Attributes: map[string]any{"alias": a.Alias, "description": a.Description,
				"controller-module": a.ControllerModule, "config": a.configJSON(), "version": a.Version},
			Relationships: map[string]resource.Rel{"door": resource.One("door", doors[a.ID])},
		}
	}
	return out, nil
}

// accessPointRead: access_point_id 0 lists every access point, another id reads one; viewers
// and above.
func (m *Module) accessPointRead(ctx context.Context, call *core.Call) (any, error) {
	return readOneOrAll(ctx, m, call, "access_point_id", m.loadAccessPoint, accessPointObjects)
}

type accessPointAttributes struct {
	Alias            *string         `json:"alias"`
	Description      *string         `json:"description"`
	ControllerModule *string         `json:"controller-module"`
	Config           json.RawMessage `json:"config"`
}

// apply copies the sent attributes onto a and validates them.
func (in accessPointAttributes) apply(a *AccessPoint, creating bool) error {
	var errs []core.FieldError
	if in.Alias != nil {
		a.Alias, a.AliasFold = *in.Alias, resource.Fold(*in.Alias)
	}
	if in.Description != nil {
		a.Description = *in.Description
	}
	const cmPtr = "data/attributes/controller-module"
	switch {
	case in.ControllerModule != nil:
		if _, ok := ControllerModule(*in.ControllerModule); !ok {
			errs = append(errs, core.FieldError{Detail: fmt.Sprintf("Unknown controller module %s (use simulator, wiegand or mqtt).", *in.ControllerModule), Pointer: cmPtr})
		} else {
			a.ControllerModule = *in.ControllerModule
		}
	case creating:
		errs = append(errs, core.FieldError{Detail: "The controller module is required (use simulator, wiegand or mqtt).", Pointer: cmPtr})
	}
	if raw := bytes.TrimSpace(in.Config); len(raw) > 0 {
		switch {
		case bytes.Equal(raw, []byte("null")):
			a.Config = "{}"
		case raw[0] == '{':
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				errs = append(errs, core.FieldError{Detail: "Config must be a JSON object.", Pointer: "data/attributes/config"})
			} else {
				a.Config = buf.String()
			}
		default:
			errs = append(errs, core.FieldError{Detail: "Config must be a JSON object.", Pointer: "data/attributes/config"})
		}
	}
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "alias", Value: in.Alias}, resource.Text{Attr: "description", Value: in.Description})...)
	errs = append(errs, resource.CheckBytes("config", in.Config)...)
	if len(errs) > 0 {
		return core.Validation(errs...)
	}
	return nil
}

func (m *Module) accessPointCreate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Attributes accessPointAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	a := AccessPoint{Config: "{}", Version: 1}
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := resource.RequireManager(call.Caller); err != nil {
			return err
		}
		if err := req.Attributes.apply(&a, true); err != nil {
			return err
		}
		if err := tx.Create(&a).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "access_point.created", Kind: eventlog.KindAccessPoint, Mask: eventlog.AccessPointCreated,
			Caller: call.Caller, TargetID: a.ID, Description: fmt.Sprintf("Access point %q (%d) created.", a.Alias, a.ID),
			After: a.snapshot(), Data: a.data(0),
		})
	})
	if err != nil {
		return nil, err
	}
	return m.accessPointReply(ctx, a)
}

// accessPointReply answers {"data": access point} as read after a change.
func (m *Module) accessPointReply(ctx context.Context, a AccessPoint) (any, error) {
	return replyOne(ctx, m, a, accessPointObjects)
}

func (m *Module) accessPointUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		AccessPointID int64                 `json:"access_point_id"`
		Attributes    accessPointAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	return m.accessPointEdit().Update(ctx, call.Caller, req.AccessPointID, func(tx *eventlog.Tx, a *AccessPoint) error {
		before := a.snapshot()
		if err := req.Attributes.apply(a, false); err != nil {
			return err
		}
		a.Version++
		if err := tx.Save(a).Error; err != nil {
			return resource.DBError(err)
		}
		doors, err := doorsOfAccessPoints(tx.DB, []int64{a.ID})
		if err != nil {
			return err
		}
		return tx.Record(eventlog.Change{
			Topic: "access_point.updated", Kind: eventlog.KindAccessPoint, Mask: eventlog.AccessPointUpdated,
			Caller: call.Caller, TargetID: a.ID, DoorID: doors[a.ID],
			Description: fmt.Sprintf("Access point %q (%d) updated.", a.Alias, a.ID),
			Before:      before, After: a.snapshot(), Data: a.data(doors[a.ID]),
		})
	})
}

// accessPointDelete deletes an access point; the door that used it is left without one
// (foreign key ON DELETE SET NULL).
func (m *Module) accessPointDelete(ctx context.Context, call *core.Call) (any, error) {
	return m.accessPointEdit().Delete(ctx, call, "access_point_id", func(tx *eventlog.Tx, a AccessPoint) error {
		doors, err := doorsOfAccessPoints(tx.DB, []int64{a.ID})
		if err != nil {
			return err
		}
		if err := tx.Delete(&AccessPoint{}, a.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "access_point.deleted", Kind: eventlog.KindAccessPoint, Mask: eventlog.AccessPointDeleted,
			Caller: call.Caller, TargetID: a.ID, DoorID: doors[a.ID],
			Description: fmt.Sprintf("Access point %q (%d) deleted.", a.Alias, a.ID),
			Before:      a.snapshot(), Data: a.data(doors[a.ID]),
		})
	})
}
