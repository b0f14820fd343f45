package site

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// idList is an optional list of ids in a request. Set reports whether the key was present;
// null, [] and the number 0 (which Leosac's web UI sends for "no doors") are the empty list.
// IDs are sorted and free of duplicates.
type idList struct {
	Set bool
	IDs []int64
}

// UnmarshalJSON implements json.Unmarshaler. A value of the wrong type is a type error that
// names the field, so that call.Decode answers INVALID_ARGUMENT.
func (l *idList) UnmarshalJSON(b []byte) error {
	l.Set, l.IDs = true, nil
	switch s := string(bytes.TrimSpace(b)); s {
	case "null", "0":
		return nil
	}
	var ids []int64
	if err := json.Unmarshal(b, &ids); err != nil {
		return err
	}
	l.IDs = sortedUnique(ids)
	return nil
}

// optionalID is an optional id attribute such as access_point_id: Set reports whether the key
// was present; null and 0 mean none.
type optionalID struct {
	Set bool
	ID  int64
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *optionalID) UnmarshalJSON(b []byte) error {
	o.Set, o.ID = true, 0
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	return json.Unmarshal(b, &o.ID)
}

// sortedUnique returns ids sorted without duplicates (a new slice, never nil).
func sortedUnique(ids []int64) []int64 {
	out := append([]int64{}, ids...)
	slices.Sort(out)
	return slices.Compact(out)
}

// nonNil returns ids, or [] for nil (JSON lists are never null).
func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

// keys returns the keys of a set, sorted.
func keys(set map[int64]bool) []int64 {
	out := make([]int64, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// missingIDs returns those of ids (sorted, unique) that are not ids of rows of table.
func missingIDs(q *gorm.DB, table string, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found := map[int64]bool{}
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), inChunk)
		var got []int64
		if err := q.Raw(fmt.Sprintf(`SELECT id FROM %s WHERE id IN ?`, table), rest[:n]).Scan(&got).Error; err != nil {
			return nil, resource.DBError(err)
		}
		for _, id := range got {
			found[id] = true
		}
		rest = rest[n:]
	}
	var out []int64
	for _, id := range ids {
		if !found[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// referenceErrors checks that every id exists in table and returns one field error per missing
// id: "<What> <id> does not exist." at pointer.
func referenceErrors(q *gorm.DB, table, what, pointer string, ids []int64) ([]core.FieldError, error) {
	miss, err := missingIDs(q, table, ids)
	if err != nil {
		return nil, err
	}
	errs := make([]core.FieldError, 0, len(miss))
	for _, id := range miss {
		errs = append(errs, core.FieldError{Detail: fmt.Sprintf("%s %d does not exist.", what, id), Pointer: pointer})
	}
	return errs, nil
}

// insertLinks inserts (a, b) rows into a two-column link table, many rows per statement.
func insertLinks(tx *gorm.DB, table, colA, colB string, a int64, bs []int64) error {
	const perStatement = 400
	for len(bs) > 0 {
		n := min(len(bs), perStatement)
		args := make([]any, 0, 2*n)
		for _, b := range bs[:n] {
			args = append(args, a, b)
		}
		stmt := fmt.Sprintf(`INSERT INTO %s (%s, %s) VALUES %s`, table, colA, colB,
			strings.TrimSuffix(strings.Repeat("(?, ?),", n), ","))
		if err := tx.Exec(stmt, args...).Error; err != nil {
			return resource.DBError(fmt.Errorf("insert into %s: %w", table, err))
		}
		bs = bs[n:]
	}
	return nil
}

// readTx runs fn in one read transaction, so that the several queries of a reply see one
// snapshot of the database.
func (m *Module) readTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return m.db.Read.WithContext(ctx).Transaction(fn)
}

// readOneOrAll answers a .read that viewers and above may make: id 0 lists every row by id
// ({"data": [...]}), another id reads one ({"data": {...}}; load answers ENTITY_NOT_FOUND),
// both serialised by objects within one read transaction.
func readOneOrAll[T any](ctx context.Context, m *Module, call *core.Call, idKey string,
	load func(context.Context, *gorm.DB, int64) (T, error),
	objects func(*gorm.DB, []T) ([]resource.Object, error)) (any, error) {
	id, err := resource.ID(call, idKey)
	if err != nil {
		return nil, err
	}
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	var out any
	err = m.readTx(ctx, func(tx *gorm.DB) error {
		var rows []T
		if id == 0 {
			if err := tx.Order("id").Find(&rows).Error; err != nil {
				return resource.DBError(err)
			}
		} else {
			row, err := load(ctx, tx, id)
			if err != nil {
				return err
			}
			rows = []T{row}
		}
		objs, err := objects(tx, rows)
		if err != nil {
			return err
		}
		if id == 0 {
			out = resource.List(objs)
		} else {
			out = resource.Single(objs[0])
		}
		return nil
	})
	return out, err
}

// replyOne answers {"data": row} as read after a change.
func replyOne[T any](ctx context.Context, m *Module, row T, objects func(*gorm.DB, []T) ([]resource.Object, error)) (any, error) {
	objs, err := objects(m.db.Read.WithContext(ctx), []T{row})
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

// searchRequest is the content of the search.* calls.
type searchRequest struct {
	PartialName *string `json:"partial_name"`
}

// decodeSearch reads partial_name (required) and returns the LIKE pattern on *_fold columns.
func decodeSearch(call *core.Call) (string, error) {
	var req searchRequest
	if err := call.Decode(&req); err != nil {
		return "", err
	}
	if req.PartialName == nil {
		return "", core.E(core.InvalidArgument, "partial_name: required", nil)
	}
	return "%" + resource.Fold(*req.PartialName) + "%", nil
}

// searchLimit is the most results a search returns.
const searchLimit = 100
