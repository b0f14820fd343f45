package doorman

import (
	"context"
	"fmt"
	"time"

	"gatehouse/core"
	"gatehouse/modules/doorman/door"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "door.open", Handler: m.doorOpen},
		core.Method{Type: "door.set_mode", Handler: m.doorSetMode},
		core.Method{Type: "site.set_mode", Handler: m.siteSetMode},
		core.Method{Type: "door.state", Handler: m.doorState},
	)
}

// doorOpen releases a door's strike momentarily (managers and above).
func (m *Module) doorOpen(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	id, err := resource.ID(call, "door_id")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.doorLocked(id)
	if d == nil {
		return nil, core.NotFound("door", id)
	}
	effects, oerr := d.sm.OpenMomentarily(time.Now())
	if err := m.apply(ctx, d, effects); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, core.E(core.PermissionDenied, "The door cannot be opened now: "+door.Reason(oerr)+".", nil)
	}
	m.log.Info().Int64("door_id", id).Int64("by_user_id", call.Caller.UserID).Msg("door opened by an operator")
	return map[string]any{}, nil
}

// doorSetMode sets a door's mode: normal, unlocked or locked (managers and above). The mode is
// kept across restarts.
func (m *Module) doorSetMode(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		DoorID int64  `json:"door_id"`
		Mode   string `json:"mode"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	mode, err := door.ParseMode(req.Mode)
	if err != nil {
		return nil, core.Validation(core.FieldError{Detail: "Mode must be normal, unlocked or locked.", Pointer: "data/attributes/mode"})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.doorLocked(req.DoorID)
	if d == nil {
		return nil, core.NotFound("door", req.DoorID)
	}
	effects, err := d.sm.SetMode(time.Now(), mode)
	if err != nil {
		return nil, core.E(core.GeneralFailure, err.Error(), err)
	}
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := tx.Exec(`INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
			modeKey(d.id), string(mode)).Error; err != nil {
			return err
		}
		return m.recordEffects(tx, d, withAuthor(effects, call.Caller))
	})
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	m.actuate(d, effects)
	return map[string]any{}, nil
}

// withAuthor adds who changed a mode to its mode events.
func withAuthor(effects []door.Effect, c *core.Identity) []door.Effect {
	for i, e := range effects {
		if e.Kind == door.Event && e.Topic == door.TopicMode {
			data := map[string]any{"by_user_id": c.UserID, "by": c.Username}
			for k, v := range e.Data {
				data[k] = v
			}
			effects[i].Data = data
		}
	}
	return effects
}

// siteSetMode sets the site mode: normal, lockdown or evacuation (managers and above). It
// applies to every door at once, is kept across restarts and is published as "site.mode".
func (m *Module) siteSetMode(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		Mode string `json:"mode"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	mode, err := door.ParseSiteMode(req.Mode)
	if err != nil {
		return nil, core.Validation(core.FieldError{Detail: "Mode must be normal, lockdown or evacuation.", Pointer: "data/attributes/mode"})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	previous := m.site
	var ids []int64
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT id FROM doors ORDER BY id`).Scan(&ids).Error; err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	now := time.Now()
	type change struct {
		d       *runtimeDoor
		effects []door.Effect
	}
	var changes []change
	for _, id := range ids {
		if d := m.doorLocked(id); d != nil {
			effects, _ := d.sm.SetSiteMode(now, mode)
			changes = append(changes, change{d, effects})
		}
	}
	m.site = mode
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := tx.Exec(`INSERT INTO meta(key, value) VALUES ('doorman.site_mode', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
			string(mode)).Error; err != nil {
			return err
		}
		if err := tx.Record(eventlog.Change{Topic: "site.mode", Kind: eventlog.KindDoor, Mask: eventlog.ModeChanged,
			Caller: call.Caller, Description: fmt.Sprintf("Site mode %s → %s by %s.", previous, mode, call.Caller.Username),
			Data: map[string]any{"mode": string(mode), "previous": string(previous), "by_user_id": call.Caller.UserID}}); err != nil {
			return err
		}
		for _, c := range changes {
			if err := m.recordEffects(tx, c.d, c.effects); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	for _, c := range changes {
		m.actuate(c.d, c.effects)
	}
	return map[string]any{}, nil
}

// DoorState is one door's state as door.state answers it.
type DoorState struct {
	DoorID int64      `json:"door_id"`
	Door   string     `json:"door"`
	State  door.State `json:"state"`
}

// doorState answers the state of one door, or of every door for id 0 (viewers and above), and
// the site mode: {"site_mode", "doors": [...]}.
func (m *Module) doorState(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	id, err := resource.ID(call, "door_id")
	if err != nil {
		return nil, err
	}
	var ids []int64
	if id != 0 {
		ids = []int64{id}
	} else if err := m.db.Read.WithContext(ctx).Raw(`SELECT id FROM doors ORDER BY id`).Scan(&ids).Error; err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []DoorState{}
	for _, did := range ids {
		d := m.doorLocked(did)
		if d == nil {
			if id != 0 {
				return nil, core.NotFound("door", id)
			}
			continue
		}
		alias, _ := m.engine.DoorAlias(did)
		out = append(out, DoorState{DoorID: did, Door: alias, State: d.sm.State()})
	}
	return map[string]any{"site_mode": string(m.site), "doors": out}, nil
}
