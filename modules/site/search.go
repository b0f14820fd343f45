package site

import (
	"context"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/hardware"
	"gatehouse/modules/resource"
)

// aliasItem is a result of search.door_alias, search.access_point_alias and search.zone_alias.
type aliasItem struct {
	ID    int64  `json:"id"`
	Alias string `json:"alias"`
}

// nameItem is a result of search.schedule_name.
type nameItem struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// searchRows runs a search query (ordered by id, at most searchLimit rows) and returns [] rather
// than null when nothing matches.
func searchRows[T any](q *gorm.DB) ([]T, error) {
	out := []T{}
	if err := q.Order("id").Limit(searchLimit).Scan(&out).Error; err != nil {
		return nil, resource.DBError(err)
	}
	return out, nil
}

// searchDoorAlias finds doors by alias, case-insensitively in every script, among the doors the
// caller may read (any logged-in user).
func (m *Module) searchDoorAlias(ctx context.Context, call *core.Call) (any, error) {
	pattern, err := decodeSearch(call)
	if err != nil {
		return nil, err
	}
	var out []aliasItem
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		readable, every, err := readableDoors(ctx, tx, call.Caller)
		if err != nil {
			return err
		}
		if !every && len(readable) == 0 {
			out = []aliasItem{}
			return nil
		}
		q := tx.Table("doors").Select("id, alias").Where("alias_fold LIKE ?", pattern)
		if !every {
			q = q.Where("id IN ?", keys(readable))
		}
		out, err = searchRows[aliasItem](q)
		return err
	})
	return out, err
}

// searchAccessPointAlias finds access points by alias (viewers and above).
func (m *Module) searchAccessPointAlias(ctx context.Context, call *core.Call) (any, error) {
	pattern, err := decodeSearch(call)
	if err != nil {
		return nil, err
	}
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	return searchRows[aliasItem](m.db.Read.WithContext(ctx).Table("access_points").Select("id, alias").Where("alias_fold LIKE ?", pattern))
}

// searchZoneAlias finds zones by alias (viewers and above).
func (m *Module) searchZoneAlias(ctx context.Context, call *core.Call) (any, error) {
	pattern, err := decodeSearch(call)
	if err != nil {
		return nil, err
	}
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	return searchRows[aliasItem](m.db.Read.WithContext(ctx).Table("zones").Select("id, alias").Where("alias_fold LIKE ?", pattern))
}

// searchScheduleName finds schedules by name among those the caller may read (any logged-in
// user).
func (m *Module) searchScheduleName(ctx context.Context, call *core.Call) (any, error) {
	pattern, err := decodeSearch(call)
	if err != nil {
		return nil, err
	}
	var out []nameItem
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		_, readable, every, err := readableSchedules(ctx, tx, call.Caller)
		if err != nil {
			return err
		}
		if !every && len(readable) == 0 {
			out = []nameItem{}
			return nil
		}
		q := tx.Table("schedules").Select("id, name").Where("name_fold LIKE ?", pattern)
		if !every {
			q = q.Where("id IN ?", keys(readable))
		}
		out, err = searchRows[nameItem](q)
		return err
	})
	return out, err
}

// DeviceClassReader is Leosac's device class of an RFID reader (reference §3.10: 0 unknown,
// 1 GPIO, 2 RFID_READER, 3 LED, 4 BUZZER, …).
const DeviceClassReader = 2

// hardwareItem is a result of search.hardware_name, in Leosac's shape (reference §4.1).
type hardwareItem struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	DeviceClass int    `json:"device-class"`
	Type        string `json:"type"`
}

// searchHardwareName finds hardware devices by name (administrators only, as Leosac's
// HARDWARE_SEARCH): first the access points (the readers and the controllers behind doors),
// each {"id", "name" (its alias), "device-class": 2 (reader), "type": "access-point"}, then the
// devices of Leosac's hardware pages (modules/hardware), each {"id": "<uuid>", "name",
// "device-class", "type"} with its JSON:API type. Doors are found by search.door_alias.
func (m *Module) searchHardwareName(ctx context.Context, call *core.Call) (any, error) {
	pattern, err := decodeSearch(call)
	if err != nil {
		return nil, err
	}
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	var out []any
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		aps, err := searchRows[hardwareItem](tx.Table("access_points").
			Select("id, alias AS name, ? AS device_class, 'access-point' AS type", DeviceClassReader).Where("alias_fold LIKE ?", pattern))
		if err != nil {
			return err
		}
		var devices []hardware.SearchHit
		if rest := searchLimit - len(aps); rest > 0 {
			if devices, err = hardware.Search(ctx, tx, pattern, rest); err != nil {
				return resource.DBError(err)
			}
		}
		out = make([]any, 0, len(aps)+len(devices))
		for _, a := range aps {
			out = append(out, a)
		}
		for _, d := range devices {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}
