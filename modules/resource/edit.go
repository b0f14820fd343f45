package resource

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// Edit is the part that every .update and .delete handler of one kind of stored row shares: in
// one event-log write transaction, check the caller's right, load the row, then run the
// handler's own step (validate, save or delete, record the change). The change is published
// on the bus when the transaction commits, by eventlog.Log.Write.
type Edit[T any] struct {
	// Log is the event log whose transaction the edit runs in.
	Log *eventlog.Log
	// Load reads the row with an id inside the transaction (ENTITY_NOT_FOUND when absent).
	Load func(ctx context.Context, q *gorm.DB, id int64) (T, error)
	// Allow checks the caller's right on the loaded row. When nil, only managers and above may
	// edit, and that is checked before loading, so that others learn nothing of which ids exist.
	Allow func(ctx context.Context, tx *gorm.DB, c *core.Identity, row T) error
	// Reply answers an .update once its transaction has committed, from the row as changed
	// (typically {"data": row} as read again). Only Update uses it.
	Reply func(ctx context.Context, row T) (any, error)
}

// Update loads the row with id and passes it to change, which changes and saves it and records
// the change in tx; once committed it answers with Reply. An error of the rights check, of
// Load or of change rolls the whole transaction back and is returned as is.
func (e Edit[T]) Update(ctx context.Context, c *core.Identity, id int64, change func(tx *eventlog.Tx, row *T) error) (any, error) {
	var row T
	err := e.Log.Write(ctx, func(tx *eventlog.Tx) error {
		var err error
		if row, err = e.load(ctx, tx.DB, c, id); err != nil {
			return err
		}
		return change(tx, &row)
	})
	if err != nil {
		return nil, err
	}
	return e.Reply(ctx, row)
}

// Delete reads the id argument key ("door_id", …) of a .delete call, loads that row and passes
// it to remove, which deletes it and records the change in tx. It answers as a .delete
// handler does: no content, or the first error.
func (e Edit[T]) Delete(ctx context.Context, call *core.Call, key string, remove func(tx *eventlog.Tx, row T) error) (any, error) {
	id, err := ID(call, key)
	if err != nil {
		return nil, err
	}
	return nil, e.Log.Write(ctx, func(tx *eventlog.Tx) error {
		row, err := e.load(ctx, tx.DB, call.Caller, id)
		if err != nil {
			return err
		}
		return remove(tx, row)
	})
}

// load checks the caller's right and loads the row, in the order Allow's contract states.
func (e Edit[T]) load(ctx context.Context, tx *gorm.DB, c *core.Identity, id int64) (T, error) {
	if e.Allow == nil {
		if err := RequireManager(c); err != nil {
			var zero T
			return zero, err
		}
	}
	row, err := e.Load(ctx, tx, id)
	if err != nil {
		return row, err
	}
	if e.Allow != nil {
		if err := e.Allow(ctx, tx, c, row); err != nil {
			return row, err
		}
	}
	return row, nil
}

// Anyone is an Allow that lets every caller load the row, for handlers whose rights depend on
// what the call asks and are checked by their own step.
func Anyone[T any](context.Context, *gorm.DB, *core.Identity, T) error { return nil }

// Take loads the row of T with id, or answers ENTITY_NOT_FOUND naming typ ("door", …) when
// there is none; other failures are DATABASE_ERROR.
func Take[T any](ctx context.Context, q *gorm.DB, typ string, id int64) (T, error) {
	var row T
	err := q.WithContext(ctx).Take(&row, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, core.NotFound(typ, id)
	}
	return row, DBError(err)
}
