package directory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/auth"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// The users table belongs to the auth module (auth.User is its row type); this file serves the
// Leosac user.* calls on it. Every write here is followed, after the commit, by
// m.auth.Users().Invalidate so that the auth module's cache of callers never outlives a change.

// revokedByAdmin is the session_closed reason sent to a user whose account was disabled,
// demoted or moved outside its validity window.
const revokedByAdmin = "Account changed by an administrator."

func (m *Module) registerUsers(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "user.read", Handler: m.userRead},
		core.Method{Type: "user.create", Handler: m.userCreate},
		core.Method{Type: "user.update", Handler: m.changes.Guard(m.userUpdate)},
		core.Method{Type: "user.delete", Handler: m.userDelete},
	)
	m.registerSearch(reg)
}

// validityOf returns the validity window of a user.
func validityOf(u *auth.User) resource.Validity {
	return resource.Validity{Enabled: u.ValidityEnabled, Start: u.ValidityStart, End: u.ValidityEnd}
}

// setValidity stores a validity window into a user.
func setValidity(u *auth.User, v resource.Validity) {
	u.ValidityEnabled, u.ValidityStart, u.ValidityEnd = v.Enabled, v.Start, v.End
}

// userSnapshot is what the audit trail keeps of a user: never the password hash.
func userSnapshot(u *auth.User) map[string]any {
	s := map[string]any{
		"id": u.ID, "username": u.Username, "firstname": u.Firstname, "lastname": u.Lastname,
		"email": u.Email, "rank": int(u.Rank), "version": u.Version,
	}
	validityOf(u).Attributes(s)
	return s
}

// userData is the payload of the user.* topics.
func userData(u *auth.User) map[string]any {
	return map[string]any{"id": u.ID, "username": u.Username, "rank": int(u.Rank)}
}

func loadUser(ctx context.Context, q *gorm.DB, id int64) (auth.User, error) {
	var u auth.User
	err := q.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, core.NotFound("user", id)
	}
	return u, resource.DBError(err)
}

// currentCaller re-reads the caller's rank inside a write transaction, so that a rank lowered
// (or an account deleted) by a call committed since this call was resolved is honoured.
func currentCaller(ctx context.Context, tx *gorm.DB, c *core.Identity) (*core.Identity, error) {
	var ranks []core.Rank
	if err := tx.WithContext(ctx).Raw(`SELECT rank FROM users WHERE id = ?`, c.UserID).Scan(&ranks).Error; err != nil {
		return nil, resource.DBError(err)
	}
	if len(ranks) == 0 {
		return nil, core.ErrPermissionDenied
	}
	cur := *c
	cur.Rank = ranks[0]
	return &cur, nil
}

// userLink is one row of the relationship query of users.
type userLink struct {
	Kind  string // "m" membership, "c" credential, "s" schedule
	Owner int64  // the user
	Ref   int64  // the related id
	Typ   string // the credential's concrete type
}

// userLinksSQL returns the query of the relationships of users whose id satisfies the filter
// built by where (given the column): memberships, owned credentials (with their type) and the
// schedules whose mappings list the user directly. It has neither ORDER BY nor DISTINCT:
// userObjectsOf sorts and deduplicates, which costs less than compiling a sorted compound
// query on every call (the SQLite driver does not keep compiled statements).
func userLinksSQL(where func(col string) string) string {
	return `SELECT 'm' AS kind, user_id AS owner, id AS ref, '' AS typ FROM memberships WHERE ` + where("user_id") + `
		UNION ALL
		SELECT 'c', owner_id, id, type FROM credentials WHERE ` + where("owner_id") + `
		UNION ALL
		SELECT 's', mu.user_id, sm.schedule_id, '' FROM mapping_users mu
			JOIN schedule_mappings sm ON sm.id = mu.mapping_id WHERE ` + where("mu.user_id")
}

// userObjects serialises users with their relationships, loading the relationships of all of
// them in one query (all=true: the users are every user, so no id filter is needed).
func (m *Module) userObjects(ctx context.Context, sess *core.Session, c *core.Identity, users []auth.User, all bool) ([]resource.Object, error) {
	if len(users) == 0 {
		return []resource.Object{}, nil
	}
	ids := make([]int64, len(users))
	for i := range users {
		ids[i] = users[i].ID
	}
	q := userLinksSQL(func(col string) string { return col + " IN ?" })
	args := []any{ids, ids, ids}
	if all {
		q, args = userLinksSQL(func(col string) string { return col + " IS NOT NULL" }), nil
	}
	var links []userLink
	if err := m.db.Read.WithContext(ctx).Raw(q, args...).Scan(&links).Error; err != nil {
		return nil, resource.DBError(err)
	}
	return userObjectsOf(sess, c, users, links), nil
}

// userObjectsOf serialises users given the rows of their relationships. Memberships and
// credentials are listed when the caller may read them (everyone's for viewers and above,
// else the caller's own); schedules are those whose mappings list the user directly. Email
// addresses are shown to the user themself and to viewers and above. Credentials are
// referenced by the type the session sees (resource.CredentialType).
func userObjectsOf(sess *core.Session, c *core.Identity, users []auth.User, links []userLink) []resource.Object {
	slices.SortFunc(links, func(a, b userLink) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.Ref, b.Ref))
	})
	links = slices.Compact(links)
	readsAll := resource.ReadsAll(c)
	memberships := map[int64][]int64{}
	credentials := map[int64][]resource.Ref{}
	schedules := map[int64][]int64{}
	for _, l := range links {
		switch l.Kind {
		case "m":
			if readsAll || l.Owner == c.UserID {
				memberships[l.Owner] = append(memberships[l.Owner], l.Ref)
			}
		case "c":
			if readsAll || l.Owner == c.UserID {
				credentials[l.Owner] = append(credentials[l.Owner], resource.Ref{ID: l.Ref, Type: resource.CredentialType(sess, l.Typ)})
			}
		case "s":
			schedules[l.Owner] = append(schedules[l.Owner], l.Ref)
		}
	}
	out := make([]resource.Object, len(users))
	for i := range users {
		u := &users[i]
		attrs := map[string]any{
			"version": u.Version, "username": u.Username, "firstname": u.Firstname,
			"lastname": u.Lastname, "rank": int(u.Rank),
		}
		validityOf(u).Attributes(attrs)
		if readsAll || u.ID == c.UserID {
			attrs["email"] = u.Email
		}
		out[i] = resource.Object{
			ID: u.ID, Type: "user", Attributes: attrs,
			Relationships: map[string]resource.Rel{
				"memberships": resource.Many("user-group-membership", memberships[u.ID]),
				"credentials": resource.Refs(credentials[u.ID]),
				"schedules":   resource.Many("schedule", schedules[u.ID]),
			},
		}
	}
	return out
}

// userByIDSQL reads one user, without the password hash.
const userByIDSQL = `SELECT ` + userColumns + ` FROM users WHERE id = ?`

// userLinksByIDSQL reads the relationships of one user (?1).
var userLinksByIDSQL = userLinksSQL(func(col string) string { return col + " = ?1" })

// readUser loads one user with the rows of its relationships, or ENTITY_NOT_FOUND. It is the
// measured hot path of user.read, so it bypasses GORM (its reflection costs as much as the
// query) and runs two indexed queries straight on the read pool.
func (m *Module) readUser(ctx context.Context, id int64) (auth.User, []userLink, error) {
	var u auth.User
	pool, err := m.db.Read.DB()
	if err != nil {
		return u, nil, resource.DBError(fmt.Errorf("read user %d: %w", id, err))
	}
	err = scanUser(pool.QueryRowContext(ctx, userByIDSQL, id), &u)
	if errors.Is(err, sql.ErrNoRows) {
		return u, nil, core.NotFound("user", id)
	}
	if err != nil {
		return u, nil, resource.DBError(fmt.Errorf("read user %d: %w", id, err))
	}
	rows, err := pool.QueryContext(ctx, userLinksByIDSQL, id)
	if err != nil {
		return u, nil, resource.DBError(fmt.Errorf("read relationships of user %d: %w", id, err))
	}
	defer rows.Close()
	var links []userLink
	for rows.Next() {
		var l userLink
		if err := rows.Scan(&l.Kind, &l.Owner, &l.Ref, &l.Typ); err != nil {
			return u, nil, resource.DBError(fmt.Errorf("read relationships of user %d: %w", id, err))
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return u, nil, resource.DBError(fmt.Errorf("read relationships of user %d: %w", id, err))
	}
	return u, links, nil
}

// userRead: id 0 lists the users the caller may read (every user, by id, for viewers and
// above; else only the caller); any other id reads the caller themself, or anyone for viewers
// and above. Reading one id is the hot path: it is served from the in-memory view of users
// (userview.go) when that is ready, else by two indexed queries.
func (m *Module) userRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "user_id")
	if err != nil {
		return nil, err
	}
	c := call.Caller
	if id == 0 {
		var users []auth.User
		q := m.db.Read.WithContext(ctx).Order("id")
		if !resource.ReadsAll(c) {
			q = q.Where("id = ?", c.UserID)
		}
		if err := q.Find(&users).Error; err != nil {
			return nil, resource.DBError(err)
		}
		objs, err := m.userObjects(ctx, call.Session, c, users, resource.ReadsAll(c))
		if err != nil {
			return nil, err
		}
		return resource.List(objs), nil
	}
	if id != c.UserID && !resource.ReadsAll(c) {
		return nil, core.ErrPermissionDenied
	}
	if m.view != nil {
		if reply, ok, err := m.view.read(ctx, call.Session.LeosacTypes(), id, m.readUser); ok {
			return reply, err
		}
	}
	u, links, err := m.readUser(ctx, id)
	if err != nil {
		return nil, err
	}
	return resource.Single(userObjectsOf(call.Session, c, []auth.User{u}, links)[0]), nil
}

// userAttributes are the attributes of user.create and user.update. A nil field was absent.
type userAttributes struct {
	Username        *string         `json:"username"`
	Password        json.RawMessage `json:"password"`
	Firstname       *string         `json:"firstname"`
	Lastname        *string         `json:"lastname"`
	Email           *string         `json:"email"`
	Rank            *int            `json:"rank"`
	ValidityEnabled *bool           `json:"validity-enabled"`
	ValidityStart   resource.Date   `json:"validity-start"`
	ValidityEnd     resource.Date   `json:"validity-end"`
}

func (a *userAttributes) validity() resource.ValidityPatch {
	return resource.ValidityPatch{Enabled: a.ValidityEnabled, Start: a.ValidityStart, End: a.ValidityEnd}
}

// passwordAbsent reports whether a password attribute is absent, null or "".
func passwordAbsent(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == `""`
}

func usernameError(err error) core.FieldError {
	return core.FieldError{Detail: err.Error(), Pointer: "data/attributes/username"}
}

func rankError(r int) core.FieldError {
	return core.FieldError{
		Detail:  fmt.Sprintf("Invalid rank %d (0 user, 1 viewer, 2 manager, 3 supervisor, 4 administrator).", r),
		Pointer: "data/attributes/rank",
	}
}

// checkUsernameFree answers the Leosac MODEL_EXCEPTION when another user has the name.
func checkUsernameFree(ctx context.Context, tx *gorm.DB, name string, self int64) error {
	var n int64
	if err := tx.WithContext(ctx).Model(&auth.User{}).Where("username = ? AND id <> ?", name, self).Count(&n).Error; err != nil {
		return resource.DBError(err)
	}
	if n > 0 {
		return core.Validation(core.FieldError{Detail: fmt.Sprintf("The username %s is already in use.", name), Pointer: "data/attributes/username"})
	}
	return nil
}

// userTexts are the stored strings of a user.create or user.update, for resource.CheckTexts.
func (a *userAttributes) texts() []resource.Text {
	return []resource.Text{{Attr: "firstname", Value: a.Firstname}, {Attr: "lastname", Value: a.Lastname}, {Attr: "email", Value: a.Email}}
}

// checkEmailFree answers MODEL_EXCEPTION at data/attributes/email when another user has the
// email, compared as the unique index users_email_nocase compares (COLLATE NOCASE): a user
// cannot take another's login email by changing its case (issue 10, point 8). The reply does
// not say who has it.
func checkEmailFree(ctx context.Context, tx *gorm.DB, email string, self int64) error {
	if email == "" {
		return nil
	}
	var n int64
	if err := tx.WithContext(ctx).Raw(`SELECT COUNT(*) FROM users WHERE email = ? COLLATE NOCASE AND email <> '' AND id <> ?`, email, self).
		Scan(&n).Error; err != nil {
		return resource.DBError(err)
	}
	if n > 0 {
		return core.Validation(core.FieldError{Detail: "This email address is already in use (emails are unique regardless of case).", Pointer: "data/attributes/email"})
	}
	return nil
}

// userCreate creates a user (managers and above). Only administrators may give a rank other
// than user or a validity other than enabled and unbounded. The password, if any, is hashed
// before the write transaction opens.
func (m *Module) userCreate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		Attributes userAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	a := &req.Attributes
	var pw *string
	if s := strings.TrimSpace(string(a.Password)); s != "" && s != "null" {
		var p string
		if err := json.Unmarshal(a.Password, &p); err != nil {
			return nil, core.E(core.InvalidArgument, "attributes.password: want string", nil)
		}
		pw = &p
	}
	// Rights that do not depend on the database, before any costly work; re-checked in the
	// transaction against the caller's current rank.
	if err := createRights(call.Caller, a); err != nil {
		return nil, err
	}
	var errs []core.FieldError
	u := auth.User{Version: 1}
	if a.Username == nil {
		errs = append(errs, core.FieldError{Detail: "Invalid username: a username is required.", Pointer: "data/attributes/username"})
	} else if name, err := auth.NormalizeUsername(*a.Username); err != nil {
		errs = append(errs, usernameError(err))
	} else {
		u.Username = name
	}
	if pw != nil && (len(*pw) < m.auth.MinPasswordLength || len(*pw) > password.MaxLength) {
		errs = append(errs, core.FieldError{
			Detail:  fmt.Sprintf("Password must be %d to %d characters long.", m.auth.MinPasswordLength, password.MaxLength),
			Pointer: "data/attributes/password",
		})
	}
	if a.Rank != nil {
		if r := core.Rank(*a.Rank); !r.Valid() {
			errs = append(errs, rankError(*a.Rank))
		} else {
			u.Rank = r
		}
	}
	v, verrs := a.validity().Apply(resource.Validity{Enabled: true})
	errs = append(errs, verrs...)
	errs = append(errs, resource.CheckTexts(a.texts()...)...)
	if len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	setValidity(&u, v)
	if a.Firstname != nil {
		u.Firstname = *a.Firstname
	}
	if a.Lastname != nil {
		u.Lastname = *a.Lastname
	}
	if a.Email != nil {
		u.Email = *a.Email
	}
	if pw != nil {
		hash, err := m.auth.Hasher().Hash(ctx, *pw)
		if err != nil {
			return nil, fmt.Errorf("hash password of new user: %w", err)
		}
		u.PasswordHash = hash
	}
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if err := createRights(c, a); err != nil {
			return err
		}
		if err := checkUsernameFree(ctx, tx.DB, u.Username, 0); err != nil {
			return err
		}
		if err := checkEmailFree(ctx, tx.DB, u.Email, 0); err != nil {
			return err
		}
		if err := tx.Create(&u).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "user.created", Kind: eventlog.KindUser, Mask: eventlog.UserCreated, Caller: call.Caller,
			TargetID: u.ID, UserID: u.ID, Description: fmt.Sprintf("User %s (%d) created with rank %s.", u.Username, u.ID, u.Rank),
			After: userSnapshot(&u), Data: userData(&u),
		})
	})
	if err != nil {
		return nil, err
	}
	m.auth.Users().Invalidate(u.ID)
	objs, err := m.userObjects(ctx, call.Session, call.Caller, []auth.User{u}, false)
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

// createRights: managers create users; only administrators give a rank other than user or a
// validity other than the default (enabled, unbounded).
func createRights(c *core.Identity, a *userAttributes) error {
	if err := resource.RequireManager(c); err != nil {
		return err
	}
	if resource.IsAdmin(c) {
		return nil
	}
	if a.Rank != nil && *a.Rank != int(core.RankUser) {
		return core.ErrPermissionDenied
	}
	if a.validity().Changes(resource.Validity{Enabled: true}) {
		return core.ErrPermissionDenied
	}
	return nil
}

// mayUpdateUser: everyone may edit themself; managers and supervisors users of a lower rank
// than theirs; administrators anyone.
func mayUpdateUser(c *core.Identity, target *auth.User) bool {
	return target.ID == c.UserID || resource.IsAdmin(c) || resource.Manages(c) && target.Rank < c.Rank
}

// userUpdate edits a user. Absent attributes keep their value. Rank and validity change only
// by administrators (a non-administrator may echo the current values); user.update never
// changes a password. A user disabled, moved outside their validity window or demoted loses
// every session at once.
func (m *Module) userUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		UserID     int64          `json:"user_id"`
		Attributes userAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	a := &req.Attributes
	if !passwordAbsent(a.Password) {
		return nil, core.Validation(core.FieldError{Detail: "Use password_change to change a password.", Pointer: "data/attributes/password"})
	}
	var before, after auth.User
	now := time.Now().UTC()
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if req.UserID != c.UserID && !resource.Manages(c) {
			return core.ErrPermissionDenied // whether the user exists is none of the caller's business
		}
		if before, err = loadUser(ctx, tx.DB, req.UserID); err != nil {
			return err
		}
		if !mayUpdateUser(c, &before) {
			return core.ErrPermissionDenied
		}
		after = before
		var errs []core.FieldError
		if a.Rank != nil && *a.Rank != int(before.Rank) {
			if !resource.IsAdmin(c) {
				return core.ErrPermissionDenied
			}
			if r := core.Rank(*a.Rank); !r.Valid() {
				errs = append(errs, rankError(*a.Rank))
			} else {
				after.Rank = r
			}
		}
		vp := a.validity()
		if vp.Changes(validityOf(&before)) && !resource.IsAdmin(c) {
			return core.ErrPermissionDenied
		}
		v, verrs := vp.Apply(validityOf(&before))
		errs = append(errs, verrs...)
		if a.Username != nil {
			if name, err := auth.NormalizeUsername(*a.Username); err != nil {
				errs = append(errs, usernameError(err))
			} else {
				after.Username = name
			}
		}
		errs = append(errs, resource.CheckTexts(a.texts()...)...)
		if len(errs) > 0 {
			return core.Validation(errs...)
		}
		setValidity(&after, v)
		if a.Firstname != nil {
			after.Firstname = *a.Firstname
		}
		if a.Lastname != nil {
			after.Lastname = *a.Lastname
		}
		if a.Email != nil {
			after.Email = *a.Email
		}
		if after.ID == c.UserID && validityOf(&before).ValidAt(now) && !validityOf(&after).ValidAt(now) {
			return core.E(core.GeneralFailure, "You cannot disable your own user account.", nil)
		}
		if err := ensureAdminRemains(ctx, tx.DB, &before, &after, now); err != nil {
			return err
		}
		if after.Username != before.Username {
			if err := checkUsernameFree(ctx, tx.DB, after.Username, after.ID); err != nil {
				return err
			}
		}
		if after.Email != before.Email {
			if err := checkEmailFree(ctx, tx.DB, after.Email, after.ID); err != nil {
				return err
			}
		}
		after.Version++
		after.UpdatedAt = now
		cols := map[string]any{
			"username": after.Username, "firstname": after.Firstname, "lastname": after.Lastname,
			"email": after.Email, "rank": after.Rank, "validity_enabled": after.ValidityEnabled,
			"validity_start": after.ValidityStart, "validity_end": after.ValidityEnd,
			"version": after.Version, "updated_at": after.UpdatedAt,
		}
		if revokesTokens(&before, &after, now) {
			// A login that checked the password before this commit gets no token after it.
			cols["cred_gen"] = gorm.Expr("cred_gen + 1")
		}
		if err := tx.Model(&auth.User{}).Where("id = ?", after.ID).Updates(cols).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "user.updated", Kind: eventlog.KindUser, Mask: eventlog.UserEdited, Caller: call.Caller,
			TargetID: after.ID, UserID: after.ID, Description: fmt.Sprintf("User %s (%d) updated.", after.Username, after.ID),
			Before: userSnapshot(&before), After: userSnapshot(&after), Data: userData(&after),
		})
	})
	if err != nil {
		return nil, err
	}
	m.auth.Users().Invalidate(after.ID)
	if revokesTokens(&before, &after, now) {
		if _, err := m.auth.Tokens().RevokeUser(ctx, after.ID, "", revokedByAdmin); err != nil {
			return nil, resource.DBError(fmt.Errorf("revoke tokens of user %d: %w", after.ID, err))
		}
	}
	return nil, nil
}

// revokesTokens reports whether an update ends the user's sessions: the account is no longer
// valid (disabled, outside its validity) or its rank was lowered. Such an update also bumps the
// user's credential generation, so that no login racing it issues a token.
func revokesTokens(before, after *auth.User, now time.Time) bool {
	return !validityOf(after).ValidAt(now) || after.Rank < before.Rank
}

// ensureAdminRemains refuses a change that leaves no enabled administrator: it applies when
// the user was an enabled administrator and no longer is one (after is nil for a deletion).
func ensureAdminRemains(ctx context.Context, tx *gorm.DB, before, after *auth.User, now time.Time) error {
	if before.Rank != core.RankAdministrator || !validityOf(before).ValidAt(now) {
		return nil
	}
	if after != nil && after.Rank == core.RankAdministrator && validityOf(after).ValidAt(now) {
		return nil
	}
	var admins []auth.User
	if err := tx.WithContext(ctx).Where("rank = ? AND validity_enabled = ? AND id <> ?", core.RankAdministrator, true, before.ID).
		Find(&admins).Error; err != nil {
		return resource.DBError(err)
	}
	for i := range admins {
		if validityOf(&admins[i]).ValidAt(now) {
			return nil
		}
	}
	pointer := ""
	switch {
	case after == nil:
	case after.Rank != core.RankAdministrator:
		pointer = "data/attributes/rank"
	case !after.ValidityEnabled:
		pointer = "data/attributes/validity-enabled"
	case after.ValidityStart != nil && now.Before(*after.ValidityStart):
		pointer = "data/attributes/validity-start"
	default:
		pointer = "data/attributes/validity-end"
	}
	return core.Validation(core.FieldError{Detail: "There must remain at least one enabled administrator.", Pointer: pointer})
}

// userDelete deletes a user (administrators only, never themself nor the last enabled
// administrator). Memberships, schedule mapping entries and tokens go with it (foreign keys);
// credentials they owned become unowned. Their live sessions end after the commit.
func (m *Module) userDelete(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "user_id")
	if err != nil {
		return nil, err
	}
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		c, err := currentCaller(ctx, tx.DB, call.Caller)
		if err != nil {
			return err
		}
		if err := resource.RequireAdmin(c); err != nil {
			return err
		}
		u, err := loadUser(ctx, tx.DB, id)
		if err != nil {
			return err
		}
		if u.ID == c.UserID {
			return core.E(core.GeneralFailure, "You cannot delete your own user account.", nil)
		}
		if err := ensureAdminRemains(ctx, tx.DB, &u, nil, now); err != nil {
			return err
		}
		if err := tx.Delete(&auth.User{}, u.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "user.deleted", Kind: eventlog.KindUser, Mask: eventlog.UserDeleted, Caller: call.Caller,
			TargetID: u.ID, UserID: u.ID, Description: fmt.Sprintf("User %s (%d) deleted.", u.Username, u.ID),
			Before: userSnapshot(&u), Data: map[string]any{"id": u.ID, "username": u.Username},
		})
	})
	if err != nil {
		return nil, err
	}
	m.auth.Users().Invalidate(id)
	// The tokens' rows went with the user; RevokeUser still ends the live sessions holding them.
	if _, err := m.auth.Tokens().RevokeUser(ctx, id, "", "Account deleted."); err != nil {
		return nil, resource.DBError(fmt.Errorf("revoke tokens of user %d: %w", id, err))
	}
	return nil, nil
}
