package directory

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// searchLimit is the most results a search returns.
const searchLimit = 100

func (m *Module) registerSearch(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "search.user_username", Handler: m.searchUsername},
		core.Method{Type: "search.group_name", Handler: m.searchGroupName},
		core.Method{Type: "search.credential_alias", Handler: m.searchCredentialAlias},
	)
}

// partialName reads the {"partial_name": string} content of a search and returns it folded for
// comparison with a *_fold column. A missing or non-string partial_name is INVALID_ARGUMENT.
func partialName(call *core.Call) (string, error) {
	var req struct {
		PartialName *string `json:"partial_name"`
	}
	if err := call.Decode(&req); err != nil {
		return "", err
	}
	if req.PartialName == nil {
		return "", core.E(core.InvalidArgument, "partial_name: want string", nil)
	}
	return resource.Fold(*req.PartialName), nil
}

// searchSpec says where a search looks: the table, the columns of its items, the folded
// column it matches and the index on that column.
type searchSpec struct {
	table, columns, foldCol, index string
}

// search returns at most searchLimit items, by id, of the rows of spec whose folded column
// contains partial (already folded); scope, if not empty, is an extra SQL condition on the
// rows with its args. '%' and '_' keep their LIKE meaning, so "%" lists everything. A
// substring test cannot use a B-tree, so the rows are found by scanning the folded column's
// index, which is far smaller than the table: on a large site that is several times faster
// than a scan of the table in id order. Only the matches are then read from the table. The
// result is never nil.
func search[T any](ctx context.Context, q *gorm.DB, spec searchSpec, partial, scope string, scopeArgs ...any) ([]T, error) {
	var sql string
	var args []any
	switch {
	case strings.Trim(partial, "%") == "":
		// Everything matches: the first rows by id, without a scan.
		sql = `SELECT ` + spec.columns + ` FROM ` + spec.table + where(scope) + ` ORDER BY id LIMIT ?`
		args = append(append([]any{}, scopeArgs...), searchLimit)
	default:
		cond := `instr(` + spec.foldCol + `, ?) > 0` // same result as LIKE for a plain substring, cheaper
		if strings.ContainsAny(partial, "%_") {
			cond = spec.foldCol + ` LIKE '%' || ? || '%'`
		}
		if scope != "" {
			cond += ` AND ` + scope
		}
		sql = `SELECT ` + spec.columns + ` FROM ` + spec.table + ` WHERE id IN (SELECT id FROM ` + spec.table +
			` INDEXED BY ` + spec.index + ` WHERE ` + cond + ` ORDER BY id LIMIT ?) ORDER BY id`
		args = append(append([]any{partial}, scopeArgs...), searchLimit)
	}
	out := []T{}
	if err := q.WithContext(ctx).Raw(sql, args...).Scan(&out).Error; err != nil {
		return nil, resource.DBError(fmt.Errorf("search %s: %w", spec.table, err))
	}
	return out, nil
}

func where(cond string) string {
	if cond == "" {
		return ""
	}
	return " WHERE " + cond
}

// The searched columns. Usernames are stored in lower case, so the username column is its own
// fold; its index is the one of its UNIQUE constraint.
var (
	usernameSearch   = searchSpec{table: "users", columns: "id, username", foldCol: "username", index: "sqlite_autoindex_users_1"}
	groupNameSearch  = searchSpec{table: "groups", columns: "id, name", foldCol: "name_fold", index: "groups_name_fold"}
	credentialSearch = searchSpec{table: "credentials", columns: "id, alias, type", foldCol: "alias_fold", index: "credentials_alias_fold"}
)

// UsernameHit is one result of search.user_username.
type UsernameHit struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// searchUsername finds users by part of their username (viewers and above), from the in-memory
// index of usernames when it is serving. Usernames are stored in lower case, so the username
// column is its own fold.
func (m *Module) searchUsername(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	partial, err := partialName(call)
	if err != nil {
		return nil, err
	}
	// The in-memory index answers plain substrings (and "%"-only patterns, which list
	// everyone); a pattern with '%' or '_' inside keeps its LIKE meaning through SQL, as does
	// every search while the index is not serving.
	if m.names != nil && (strings.Trim(partial, "%") == "" || !strings.ContainsAny(partial, "%_")) {
		hits, ok, err := m.names.search(ctx, partial)
		if err != nil {
			return nil, resource.DBError(fmt.Errorf("search users: %w", err))
		}
		if ok {
			return hits, nil
		}
	}
	return search[UsernameHit](ctx, m.db.Read, usernameSearch, partial, "")
}

// GroupNameHit is one result of search.group_name.
type GroupNameHit struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// searchGroupName finds groups by part of their name, among the groups the caller may read
// (all for viewers and above, else the caller's own).
func (m *Module) searchGroupName(ctx context.Context, call *core.Call) (any, error) {
	partial, err := partialName(call)
	if err != nil {
		return nil, err
	}
	if c := call.Caller; !resource.ReadsAll(c) {
		return search[GroupNameHit](ctx, m.db.Read, groupNameSearch, partial,
			"id IN (SELECT group_id FROM memberships WHERE user_id = ?)", c.UserID)
	}
	return search[GroupNameHit](ctx, m.db.Read, groupNameSearch, partial, "")
}

// CredentialAliasHit is one result of search.credential_alias.
type CredentialAliasHit struct {
	ID    int64  `json:"id"`
	Alias string `json:"alias"`
	Type  string `json:"type"`
}

// searchCredentialAlias finds credentials by part of their alias (viewers and above). Each
// hit's type is the one the session sees (resource.CredentialType).
func (m *Module) searchCredentialAlias(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireReader(call.Caller); err != nil {
		return nil, err
	}
	partial, err := partialName(call)
	if err != nil {
		return nil, err
	}
	hits, err := search[CredentialAliasHit](ctx, m.db.Read, credentialSearch, partial, "")
	for i := range hits {
		hits[i].Type = resource.CredentialType(call.Session, hits[i].Type)
	}
	return hits, err
}
