package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// GroupRank is a member's rank inside a group (Leosac's GroupRank). It only decides who may
// administer the group through the API; for door access every member is equal.
type GroupRank int

// The group ranks.
const (
	GroupMember   GroupRank = 0
	GroupOperator GroupRank = 1
	GroupAdmin    GroupRank = 2
)

// Group is a row of the groups table.
type Group struct {
	ID          int64 `gorm:"primaryKey"`
	Name        string
	NameFold    string
	Description string
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements GORM's tabler.
func (Group) TableName() string { return "groups" }

// snapshot is what the audit trail keeps of a group.
func (g Group) snapshot() map[string]any {
	return map[string]any{"id": g.ID, "name": g.Name, "description": g.Description, "version": g.Version}
}

// Membership is a row of the memberships table.
type Membership struct {
	ID        int64 `gorm:"primaryKey"`
	UserID    int64
	GroupID   int64
	Rank      GroupRank
	CreatedAt time.Time
}

// TableName implements GORM's tabler.
func (Membership) TableName() string { return "memberships" }

func (m *Module) registerGroups(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "group.read", Handler: m.groupRead},
		core.Method{Type: "group.create", Handler: m.groupCreate},
		core.Method{Type: "group.update", Handler: m.changes.Guard(m.groupUpdate)},
		core.Method{Type: "group.delete", Handler: m.changes.Guard(m.groupDelete)},
		core.Method{Type: "user-group-membership.read", Handler: m.membershipRead},
		core.Method{Type: "user-group-membership.create", Handler: m.changes.Guard(m.membershipCreate)},
		core.Method{Type: "user-group-membership.update", Handler: m.changes.Guard(m.membershipUpdate)},
		core.Method{Type: "user-group-membership.delete", Handler: m.changes.Guard(m.membershipDelete)},
	)
}

// groupRankOf returns the caller's rank in a group, or -1 when not a member.
func (m *Module) groupRankOf(ctx context.Context, q *gorm.DB, userID, groupID int64) (GroupRank, error) {
	var ms Membership
	err := q.WithContext(ctx).Where("user_id = ? AND group_id = ?", userID, groupID).Take(&ms).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return -1, nil
	}
	if err != nil {
		return -1, resource.DBError(err)
	}
	return ms.Rank, nil
}

// canAdministerGroup: managers, and the group's own administrators (Leosac's delegation).
func (m *Module) canAdministerGroup(ctx context.Context, q *gorm.DB, c *core.Identity, groupID int64) (bool, error) {
	if resource.Manages(c) {
		return true, nil
	}
	r, err := m.groupRankOf(ctx, q, c.UserID, groupID)
	return r == GroupAdmin, err
}

// canListMemberships: whoever reads everything, and the group's administrators.
func (m *Module) canListMemberships(ctx context.Context, c *core.Identity, groupID int64) (bool, error) {
	if resource.ReadsAll(c) {
		return true, nil
	}
	r, err := m.groupRankOf(ctx, m.db.Read, c.UserID, groupID)
	return r == GroupAdmin, err
}

// groupReply answers {"data": group} as the caller c sees it after a change.
func (m *Module) groupReply(ctx context.Context, c *core.Identity, g Group) (any, error) {
	objs, err := m.groupObjects(ctx, c, []Group{g})
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

// groupEdit loads groups for .update and .delete, which those who may administer the group
// may make (checked once the group is loaded); an update answers the group as caller sees it.
func (m *Module) groupEdit(caller *core.Identity) resource.Edit[Group] {
	return resource.Edit[Group]{Log: m.events, Load: m.loadGroup,
		Allow: func(ctx context.Context, tx *gorm.DB, c *core.Identity, g Group) error {
			if ok, err := m.canAdministerGroup(ctx, tx, c, g.ID); err != nil {
				return err
			} else if !ok {
				return core.ErrPermissionDenied
			}
			return nil
		},
		Reply: func(ctx context.Context, g Group) (any, error) { return m.groupReply(ctx, caller, g) },
	}
}

func (m *Module) loadGroup(ctx context.Context, q *gorm.DB, id int64) (Group, error) {
	return resource.Take[Group](ctx, q, "group", id)
}

// groupObjects serialises groups with their relationships, loading the relationships of all of
// them in two queries. Memberships are those the caller may read.
func (m *Module) groupObjects(ctx context.Context, c *core.Identity, groups []Group) ([]resource.Object, error) {
	ids := make([]int64, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	var mss []Membership
	if err := m.db.Read.WithContext(ctx).Where("group_id IN ?", ids).Order("id").Find(&mss).Error; err != nil {
		return nil, resource.DBError(err)
	}
	var links []struct{ GroupID, ScheduleID int64 }
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT DISTINCT mg.group_id, sm.schedule_id FROM mapping_groups mg
		JOIN schedule_mappings sm ON sm.id = mg.mapping_id WHERE mg.group_id IN ? ORDER BY sm.schedule_id`, ids).
		Scan(&links).Error; err != nil {
		return nil, resource.DBError(err)
	}
	// Which groups' member lists the caller may see, decided once per group.
	listable := map[int64]bool{}
	for _, g := range groups {
		ok, err := m.canListMemberships(ctx, c, g.ID)
		if err != nil {
			return nil, err
		}
		listable[g.ID] = ok
	}
	members := map[int64][]int64{}
	for _, ms := range mss {
		if listable[ms.GroupID] || ms.UserID == c.UserID {
			members[ms.GroupID] = append(members[ms.GroupID], ms.ID)
		}
	}
	schedules := map[int64][]int64{}
	for _, l := range links {
		schedules[l.GroupID] = append(schedules[l.GroupID], l.ScheduleID)
	}
	out := make([]resource.Object, len(groups))
	for i, g := range groups {
		out[i] = resource.Object{
			ID: g.ID, Type: "group",
			Attributes: map[string]any{"name": g.Name, "description": g.Description, "version": g.Version},
			Relationships: map[string]resource.Rel{
				"memberships": resource.Many("user-group-membership", members[g.ID]),
				"schedules":   resource.Many("schedule", schedules[g.ID]),
			},
		}
	}
	return out, nil
}

// groupRead: id 0 lists the groups the caller may read (everyone's for viewers and above, else
// the caller's own groups); any other id reads one group the caller may read.
func (m *Module) groupRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "group_id")
	if err != nil {
		return nil, err
	}
	c := call.Caller
	q := m.db.Read.WithContext(ctx).Order("id")
	if !resource.ReadsAll(c) {
		q = q.Where("id IN (SELECT group_id FROM memberships WHERE user_id = ?)", c.UserID)
	}
	if id == 0 {
		var groups []Group
		if err := q.Find(&groups).Error; err != nil {
			return nil, resource.DBError(err)
		}
		objs, err := m.groupObjects(ctx, c, groups)
		if err != nil {
			return nil, err
		}
		return resource.List(objs), nil
	}
	g, err := m.loadGroup(ctx, m.db.Read, id)
	if err != nil {
		return nil, err
	}
	if !resource.ReadsAll(c) {
		if r, err := m.groupRankOf(ctx, m.db.Read, c.UserID, id); err != nil {
			return nil, err
		} else if r < 0 {
			return nil, core.ErrPermissionDenied
		}
	}
	objs, err := m.groupObjects(ctx, c, []Group{g})
	if err != nil {
		return nil, err
	}
	return resource.Single(objs[0]), nil
}

type groupAttributes struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

// validateGroup checks the name (format and uniqueness among other groups) and the length of
// the description sent (nil when absent) inside tx.
func validateGroup(tx *gorm.DB, name string, self int64, description *string) error {
	errs := resource.ValidateName(name)
	errs = append(errs, resource.CheckTexts(resource.Text{Attr: "description", Value: description})...)
	if len(errs) > 0 {
		return core.Validation(errs...)
	}
	var n int64
	if err := tx.Model(&Group{}).Where("name = ? AND id <> ?", name, self).Count(&n).Error; err != nil {
		return resource.DBError(err)
	}
	if n > 0 {
		return core.Validation(core.FieldError{Detail: fmt.Sprintf("A group named %s already exists.", name), Pointer: "data/attributes/name"})
	}
	return nil
}

func (m *Module) groupCreate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireManager(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		Attributes groupAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	g := Group{Version: 1}
	if req.Attributes.Name != nil {
		g.Name = *req.Attributes.Name
	}
	if req.Attributes.Description != nil {
		g.Description = *req.Attributes.Description
	}
	g.NameFold = resource.Fold(g.Name)
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := validateGroup(tx.DB, g.Name, 0, req.Attributes.Description); err != nil {
			return err
		}
		if err := tx.Create(&g).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "group.created", Kind: eventlog.KindGroup, Mask: eventlog.GroupCreated, Caller: call.Caller,
			TargetID: g.ID, Description: fmt.Sprintf("Group %q (%d) created.", g.Name, g.ID), After: g.snapshot(),
			Data: map[string]any{"id": g.ID, "name": g.Name},
		})
	})
	if err != nil {
		return nil, err
	}
	return m.groupReply(ctx, call.Caller, g)
}

func (m *Module) groupUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		GroupID    int64           `json:"group_id"`
		Attributes groupAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	return m.groupEdit(call.Caller).Update(ctx, call.Caller, req.GroupID, func(tx *eventlog.Tx, g *Group) error {
		before := g.snapshot()
		if a := req.Attributes; a.Name != nil {
			g.Name, g.NameFold = *a.Name, resource.Fold(*a.Name)
		}
		if a := req.Attributes; a.Description != nil {
			g.Description = *a.Description
		}
		if err := validateGroup(tx.DB, g.Name, g.ID, req.Attributes.Description); err != nil {
			return err
		}
		g.Version++
		if err := tx.Save(g).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "group.updated", Kind: eventlog.KindGroup, Mask: eventlog.GroupUpdated, Caller: call.Caller,
			TargetID: g.ID, Description: fmt.Sprintf("Group %q (%d) updated.", g.Name, g.ID),
			Before: before, After: g.snapshot(), Data: map[string]any{"id": g.ID, "name": g.Name},
		})
	})
}

// groupDelete deletes a group; its memberships and its places in schedule mappings go with it
// (foreign keys), in the same transaction as the audit entry.
func (m *Module) groupDelete(ctx context.Context, call *core.Call) (any, error) {
	return m.groupEdit(call.Caller).Delete(ctx, call, "group_id", func(tx *eventlog.Tx, g Group) error {
		var members []int64
		if err := tx.Model(&Membership{}).Where("group_id = ?", g.ID).Pluck("user_id", &members).Error; err != nil {
			return resource.DBError(err)
		}
		if err := tx.Delete(&Group{}, g.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "group.deleted", Kind: eventlog.KindGroup, Mask: eventlog.GroupDeleted, Caller: call.Caller,
			TargetID: g.ID, Description: fmt.Sprintf("Group %q (%d) deleted.", g.Name, g.ID), Before: g.snapshot(),
			Data: map[string]any{"id": g.ID, "name": g.Name, "members": members},
		})
	})
}

// membershipObject serialises a membership.
func membershipObject(ms Membership) resource.Object {
	return resource.Object{
		ID: ms.ID, Type: "user-group-membership",
		Attributes: map[string]any{"rank": int(ms.Rank), "timestamp": ms.CreatedAt.Unix(), "time": resource.FormatTime(&ms.CreatedAt)},
		Relationships: map[string]resource.Rel{
			"user":  resource.One("user", ms.UserID),
			"group": resource.One("group", ms.GroupID),
		},
	}
}

func (m *Module) loadMembership(ctx context.Context, q *gorm.DB, id int64) (Membership, error) {
	return resource.Take[Membership](ctx, q, "user-group-membership", id)
}

// membershipRead reads one membership: the caller's own, or one of a group whose members the
// caller may list. There is no list (id 0), as in Leosac.
func (m *Module) membershipRead(ctx context.Context, call *core.Call) (any, error) {
	id, err := resource.ID(call, "membership_id")
	if err != nil {
		return nil, err
	}
	ms, err := m.loadMembership(ctx, m.db.Read, id)
	if err != nil {
		return nil, err
	}
	if ms.UserID != call.Caller.UserID {
		if ok, err := m.canListMemberships(ctx, call.Caller, ms.GroupID); err != nil {
			return nil, err
		} else if !ok {
			return nil, core.ErrPermissionDenied
		}
	}
	return resource.Single(membershipObject(ms)), nil
}

type membershipAttributes struct {
	UserID  *int64 `json:"user_id"`
	GroupID *int64 `json:"group_id"`
	Rank    *int   `json:"rank"`
}

// mayGrantMembership: managers, or a member of the group of operator rank or above granting a
// rank no higher than their own. The check reads the very attributes the call acts on.
func (m *Module) mayGrantMembership(ctx context.Context, q *gorm.DB, c *core.Identity, groupID int64, rank GroupRank) (bool, error) {
	if resource.Manages(c) {
		return true, nil
	}
	own, err := m.groupRankOf(ctx, q, c.UserID, groupID)
	if err != nil {
		return false, err
	}
	return own >= GroupOperator && rank <= own, nil
}

func (m *Module) membershipCreate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Attributes membershipAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	a := req.Attributes
	var errs []core.FieldError
	if a.UserID == nil {
		errs = append(errs, core.FieldError{Detail: "user_id is required.", Pointer: "data/attributes/user_id"})
	}
	if a.GroupID == nil {
		errs = append(errs, core.FieldError{Detail: "group_id is required.", Pointer: "data/attributes/group_id"})
	}
	rank := GroupMember
	if a.Rank != nil {
		rank = GroupRank(*a.Rank)
	}
	if rank < GroupMember || rank > GroupAdmin {
		errs = append(errs, core.FieldError{Detail: "Invalid group rank (0 member, 1 operator, 2 administrator).", Pointer: "data/attributes/rank"})
	}
	if len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	ms := Membership{UserID: *a.UserID, GroupID: *a.GroupID, Rank: rank, CreatedAt: time.Now().UTC()}
	err := m.events.Write(ctx, func(tx *eventlog.Tx) error {
		g, err := m.loadGroup(ctx, tx.DB, ms.GroupID)
		var nf *core.Error
		if errors.As(err, &nf) && nf.Code == core.EntityNotFound {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("Group %d does not exist.", ms.GroupID), Pointer: "data/attributes/group_id"})
		} else if err != nil {
			return err
		}
		if ok, err := m.mayGrantMembership(ctx, tx.DB, call.Caller, g.ID, rank); err != nil {
			return err
		} else if !ok {
			return core.ErrPermissionDenied
		}
		var username string
		if err := tx.Raw(`SELECT username FROM users WHERE id = ?`, ms.UserID).Scan(&username).Error; err != nil {
			return resource.DBError(err)
		}
		if username == "" {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("User %d does not exist.", ms.UserID), Pointer: "data/attributes/user_id"})
		}
		if r, err := m.groupRankOf(ctx, tx.DB, ms.UserID, g.ID); err != nil {
			return err
		} else if r >= 0 {
			return core.Validation(core.FieldError{Detail: fmt.Sprintf("User %s is already in group %s.", username, g.Name), Pointer: "data/attributes/user_id"})
		}
		if err := tx.Create(&ms).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "membership.created", Kind: eventlog.KindMembership, Mask: eventlog.GroupMembershipJoined,
			Caller: call.Caller, TargetID: ms.UserID, Target2ID: g.ID, UserID: ms.UserID,
			Description: fmt.Sprintf("User %s joined group %s as %s.", username, g.Name, rankName(rank)),
			Data:        map[string]any{"id": ms.ID, "user_id": ms.UserID, "group_id": g.ID, "rank": int(rank)},
		})
	})
	if err != nil {
		return nil, err
	}
	return resource.Single(membershipObject(ms)), nil
}

// membershipUpdate changes a member's rank in the group (Leosac did not implement it).
func (m *Module) membershipUpdate(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		MembershipID int64                `json:"membership_id"`
		Attributes   membershipAttributes `json:"attributes"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	// Changing a rank needs the right to grant both the old and the new rank, checked below.
	edit := resource.Edit[Membership]{Log: m.events, Load: m.loadMembership, Allow: resource.Anyone[Membership],
		Reply: func(_ context.Context, ms Membership) (any, error) { return resource.Single(membershipObject(ms)), nil }}
	return edit.Update(ctx, call.Caller, req.MembershipID, func(tx *eventlog.Tx, ms *Membership) error {
		if req.Attributes.Rank == nil {
			return nil
		}
		rank := GroupRank(*req.Attributes.Rank)
		if rank < GroupMember || rank > GroupAdmin {
			return core.Validation(core.FieldError{Detail: "Invalid group rank (0 member, 1 operator, 2 administrator).", Pointer: "data/attributes/rank"})
		}
		for _, r := range []GroupRank{ms.Rank, rank} {
			if ok, err := m.mayGrantMembership(ctx, tx.DB, call.Caller, ms.GroupID, r); err != nil {
				return err
			} else if !ok {
				return core.ErrPermissionDenied
			}
		}
		if rank == ms.Rank {
			return nil
		}
		old := ms.Rank
		ms.Rank = rank
		if err := tx.Model(&Membership{}).Where("id = ?", ms.ID).Update("rank", rank).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "membership.updated", Kind: eventlog.KindMembership, Mask: eventlog.GroupMembershipJoined,
			Caller: call.Caller, TargetID: ms.UserID, Target2ID: ms.GroupID, UserID: ms.UserID,
			Description: fmt.Sprintf("Membership %d: rank %s → %s.", ms.ID, rankName(old), rankName(rank)),
			Before:      map[string]any{"rank": int(old)}, After: map[string]any{"rank": int(rank)},
			Data: map[string]any{"id": ms.ID, "user_id": ms.UserID, "group_id": ms.GroupID, "rank": int(rank)},
		})
	})
}

// membershipDelete removes a member: managers; the member themself (leaving); or a member of
// operator rank or above removing a member of no higher rank.
func (m *Module) membershipDelete(ctx context.Context, call *core.Call) (any, error) {
	edit := resource.Edit[Membership]{Log: m.events, Load: m.loadMembership,
		Allow: func(ctx context.Context, tx *gorm.DB, c *core.Identity, ms Membership) error {
			if resource.Manages(c) || ms.UserID == c.UserID {
				return nil
			}
			if ok, err := m.mayGrantMembership(ctx, tx, c, ms.GroupID, ms.Rank); err != nil {
				return err
			} else if !ok {
				return core.ErrPermissionDenied
			}
			return nil
		}}
	return edit.Delete(ctx, call, "membership_id", func(tx *eventlog.Tx, ms Membership) error {
		if err := tx.Delete(&Membership{}, ms.ID).Error; err != nil {
			return resource.DBError(err)
		}
		return tx.Record(eventlog.Change{
			Topic: "membership.deleted", Kind: eventlog.KindMembership, Mask: eventlog.GroupMembershipLeft,
			Caller: call.Caller, TargetID: ms.UserID, Target2ID: ms.GroupID, UserID: ms.UserID,
			Description: fmt.Sprintf("User %d left group %d.", ms.UserID, ms.GroupID),
			Data:        map[string]any{"id": ms.ID, "user_id": ms.UserID, "group_id": ms.GroupID},
		})
	})
}

func rankName(r GroupRank) string {
	switch r {
	case GroupMember:
		return "member"
	case GroupOperator:
		return "operator"
	case GroupAdmin:
		return "administrator"
	}
	return fmt.Sprintf("rank %d", int(r))
}
