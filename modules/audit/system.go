package audit

import (
	"context"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// restart (administrators only) answers null, then asks the process to rebuild its modules
// in-process (Leosac's restart). The reply is not lost: the websocket module, told to stop,
// waits for the request in hand to be answered, flushes each connection's queue and closes it
// with 1001; clients then reconnect and log in again with their token.
func (m *Module) restart(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	call.Log().Info().Msg("restart requested")
	m.ctx.Restart()
	return nil, nil
}

// Update management (reference §4.6). Leosac let modules offer "updates" (configuration pushed
// to remote access points); gatehouse has no such module, so there is never an update to
// check, create, acknowledge or cancel. The calls keep Leosac's shapes so that its web UI's
// updates page works: reads are allowed to viewers and above, changes to managers and above.

// checkUpdate answers the (empty) list of update descriptors: [].
func (m *Module) checkUpdate(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	return []struct{}{}, nil
}

// updateList answers get_update_history and get_pending_update: {"data": []}.
func (m *Module) updateList(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	return resource.List([]resource.Object(nil)), nil
}

// getUpdate answers ENTITY_NOT_FOUND "update" for any {"update_id"}.
func (m *Module) getUpdate(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	id, err := resource.ID(call, "update_id")
	if err != nil {
		return nil, err
	}
	return nil, core.NotFound("update", id)
}

// changeUpdate answers ack_update and cancel_update: ENTITY_NOT_FOUND "update" for any
// {"update_id"} (Leosac crashed on an unknown id).
func (m *Module) changeUpdate(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	id, err := resource.ID(call, "update_id")
	if err != nil {
		return nil, err
	}
	return nil, core.NotFound("update", id)
}

// createUpdate answers Leosac's GENERAL_FAILURE for a descriptor that is not (or no longer)
// offered, which is every descriptor here.
func (m *Module) createUpdate(_ context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		DescriptorUUID string `json:"descriptor_uuid"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	return nil, core.E(core.GeneralFailure, "UpdateDescriptor doesn't exist anymore.", nil)
}
