package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/resource"
	"gatehouse/modules/token"
)

// seedDialect names the in-process front door of the seeding in its token and session.
const seedDialect = "demo"

// seedResult says what seed created; Accounts carry the generated passwords, for the operator
// output only.
type seedResult struct {
	Doors, People, Groups, Schedules int
	Accounts                         []seededAccount
}

// seededAccount is an operator account and its generated password.
type seededAccount struct {
	Username, Rank, Password string
}

// errConflict is returned by seed when the database already holds a name the demo would create.
var errConflict = errors.New("the database already has")

// seeder creates resources by calling the API handlers in-process, as a logged-in
// administrator session: the same rights checks, validation, audit entries and change events
// apply as for a client.
type seeder struct {
	ctx     context.Context
	methods *core.Methods
	sess    *core.Session
	log     zerolog.Logger
}

// call runs one API call and decodes its reply into out (when not nil).
func (s *seeder) call(typ string, content any, out any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", typ, err)
	}
	res, err := s.methods.Call(s.ctx, s.sess, typ, b, s.log)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	if out == nil {
		return nil
	}
	rb, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%s: encode reply: %w", typ, err)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return fmt.Errorf("%s: decode reply: %w", typ, err)
	}
	return nil
}

// create runs a *.create call with {"attributes": attrs} plus extra top-level fields and returns
// the id of the created object.
func (s *seeder) create(typ string, attrs map[string]any, extra map[string]any) (int64, error) {
	content := map[string]any{"attributes": attrs}
	for k, v := range extra {
		content[k] = v
	}
	var reply struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := s.call(typ, content, &reply); err != nil {
		return 0, err
	}
	if reply.Data.ID == 0 {
		return 0, fmt.Errorf("%s: the reply has no id", typ)
	}
	return reply.Data.ID, nil
}

// seed creates the demo site (see site.go) through the API as the first enabled administrator,
// with a short-lived token that is revoked when it is done. It refuses, with an error wrapping
// errConflict, a database that already holds one of the demo's usernames, group or schedule
// names or cards.
func seed(ctx context.Context, d *db.DB, methods *core.Methods, am *auth.Module, log zerolog.Logger) (seedResult, error) {
	var res seedResult
	if err := checkConflicts(ctx, d); err != nil {
		return res, err
	}
	adminID, err := firstAdmin(ctx, d, am)
	if err != nil {
		return res, err
	}
	raw, tok, err := am.Tokens().Issue(ctx, token.IssueRequest{UserID: adminID, Dialect: seedDialect,
		Lifetime: seedTimeout + time.Minute, Remote: "demo seeding", UserAgent: "gatehouse demo"})
	if err != nil {
		return res, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := am.Tokens().Revoke(rctx, tok.Hash, "Demo site seeded."); err != nil {
			log.Warn().Err(err).Msg("demo: revoke the seeding token")
		}
	}()
	sess := core.NewSession(seedDialect, "demo seeding", "gatehouse demo", nil)
	sess.Login(adminID, token.Hash(raw))
	s := &seeder{ctx: ctx, methods: methods, sess: sess, log: log}

	doors, err := s.doors()
	if err != nil {
		return res, err
	}
	zones, err := s.zones(doors)
	if err != nil {
		return res, err
	}
	groups, err := s.groups()
	if err != nil {
		return res, err
	}
	users, err := s.people(groups)
	if err != nil {
		return res, err
	}
	if res.Accounts, err = s.accounts(am.MinPasswordLength); err != nil {
		return res, err
	}
	if err := s.schedules(groups, users, zones, doors); err != nil {
		return res, err
	}
	res.Doors, res.People, res.Groups, res.Schedules = len(doors), len(users), len(groups), len(demoSchedules)
	return res, nil
}

// checkConflicts returns an error wrapping errConflict when a name or card of the demo is taken.
func checkConflicts(ctx context.Context, d *db.DB) error {
	var usernames, groups, schedules []string
	for _, p := range demoPeople {
		usernames = append(usernames, p.Username)
	}
	for _, a := range demoAccounts {
		usernames = append(usernames, a.Username)
	}
	for _, g := range demoGroups {
		groups = append(groups, g.Name)
	}
	for _, sc := range demoSchedules {
		schedules = append(schedules, sc.Name)
	}
	var cards []string
	for _, p := range demoPeople {
		card, _ := h10301(facilityCode, p.Card)
		cards = append(cards, card)
	}
	lost, _ := h10301(facilityCode, lostBadge)
	cards = append(cards, lost)
	checks := []struct {
		what, query string
		args        []string
	}{
		{"user", `SELECT username FROM users WHERE username IN ?`, usernames},
		{"group", `SELECT name FROM groups WHERE name IN ?`, groups},
		{"schedule", `SELECT name FROM schedules WHERE name IN ?`, schedules},
		{"card", `SELECT card_id FROM credentials WHERE nb_bits = 26 AND card_id IN ?`, cards},
	}
	q := d.Read.WithContext(ctx)
	for _, c := range checks {
		var taken []string
		if err := q.Raw(c.query, c.args).Scan(&taken).Error; err != nil {
			return fmt.Errorf("check the %ss: %w", c.what, err)
		}
		if len(taken) > 0 {
			return fmt.Errorf("%w a %s %s", errConflict, c.what, strings.Join(taken, ", "))
		}
	}
	return nil
}

// firstAdmin returns the id of the enabled administrator with the lowest id.
func firstAdmin(ctx context.Context, d *db.DB, am *auth.Module) (int64, error) {
	var ids []int64
	if err := d.Read.WithContext(ctx).Raw(`SELECT id FROM users WHERE rank = ? ORDER BY id`, int(core.RankAdministrator)).
		Scan(&ids).Error; err != nil {
		return 0, fmt.Errorf("find an administrator: %w", err)
	}
	now := time.Now().UTC()
	for _, id := range ids {
		u, err := am.Users().Get(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("find an administrator: %w", err)
		}
		if u.ValidAt(now) {
			return id, nil
		}
	}
	return 0, errors.New("no enabled administrator to create the demo site as")
}

// doors creates each door with its simulated reader and returns the doors' ids by alias.
func (s *seeder) doors() (map[string]int64, error) {
	out := map[string]int64{}
	for _, d := range demoDoors {
		ap, err := s.create("access_point.create", map[string]any{
			"alias": d.Alias + " reader", "description": "Simulated reader of the demo.",
			"controller-module": "simulator", "config": map[string]any{},
		}, nil)
		if err != nil {
			return nil, err
		}
		if out[d.Alias], err = s.create("door.create", map[string]any{
			"alias": d.Alias, "description": d.Description, "access_point_id": ap,
		}, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// zones creates the physical zone tree and returns the zones' ids by alias.
func (s *seeder) zones(doors map[string]int64) (map[string]int64, error) {
	out := map[string]int64{}
	for _, z := range demoZones {
		doorIDs, childIDs := []int64{}, []int64{}
		for _, d := range z.Doors {
			doorIDs = append(doorIDs, doors[d])
		}
		for _, c := range z.Children {
			childIDs = append(childIDs, out[c])
		}
		id, err := s.create("zone.create", map[string]any{
			"alias": z.Alias, "description": z.Description, "type": 0, // physical
			"doors": doorIDs, "children": childIDs,
		}, nil)
		if err != nil {
			return nil, err
		}
		out[z.Alias] = id
	}
	return out, nil
}

// groups creates the groups and returns their ids by name.
func (s *seeder) groups() (map[string]int64, error) {
	out := map[string]int64{}
	for _, g := range demoGroups {
		id, err := s.create("group.create", map[string]any{"name": g.Name, "description": g.Description}, nil)
		if err != nil {
			return nil, err
		}
		out[g.Name] = id
	}
	return out, nil
}

// people creates the cardholders (no password: they do not log in), their memberships and
// credentials, and the lost badge; it returns the users' ids by username.
func (s *seeder) people(groups map[string]int64) (map[string]int64, error) {
	out := map[string]int64{}
	now := time.Now().UTC()
	for _, p := range demoPeople {
		attrs := map[string]any{
			"username": p.Username, "firstname": p.Firstname, "lastname": p.Lastname,
			"email": p.Username + "@example.com", "rank": int(core.RankUser),
		}
		if p.Expired {
			attrs["validity-enabled"] = true
			start, end := now.AddDate(-1, 0, 0), now.AddDate(0, -1, 0)
			attrs["validity-start"], attrs["validity-end"] = resource.FormatTime(&start), resource.FormatTime(&end)
		}
		uid, err := s.create("user.create", attrs, nil)
		if err != nil {
			return nil, err
		}
		out[p.Username] = uid
		for _, g := range p.Groups {
			if _, err := s.create("user-group-membership.create", map[string]any{
				"user_id": uid, "group_id": groups[g], "rank": 0,
			}, nil); err != nil {
				return nil, err
			}
		}
		name := p.Firstname + " " + p.Lastname
		card, bits := h10301(facilityCode, p.Card)
		cattrs := map[string]any{
			"alias":       fmt.Sprintf("Badge %d", p.Card),
			"description": fmt.Sprintf("%s's badge (H10301, facility %d, card %d).", name, facilityCode, p.Card),
			"owner_id":    uid, "card-id": card, "nb-bits": bits,
		}
		typ := "rfid-card"
		if p.CardPIN != "" {
			typ, cattrs["code"] = "rfid-card-pin", p.CardPIN
			cattrs["description"] = fmt.Sprintf("%s's badge, with PIN (H10301, facility %d, card %d).", name, facilityCode, p.Card)
		}
		if _, err := s.create("credential.create", cattrs, map[string]any{"credential-type": typ}); err != nil {
			return nil, err
		}
		if p.PIN != "" {
			if _, err := s.create("credential.create", map[string]any{
				"alias": "PIN of " + p.Username, "description": name + "'s keypad code.", "owner_id": uid, "code": p.PIN,
			}, map[string]any{"credential-type": "pin-code"}); err != nil {
				return nil, err
			}
		}
	}
	card, bits := h10301(facilityCode, lostBadge)
	if _, err := s.create("credential.create", map[string]any{
		"alias": fmt.Sprintf("Badge %d", lostBadge), "description": "Visitor badge reported lost; owned by nobody.",
		"card-id": card, "nb-bits": bits,
	}, map[string]any{"credential-type": "rfid-card"}); err != nil {
		return nil, err
	}
	return out, nil
}

// accounts creates the operator accounts with generated passwords (at least 16 characters, or
// the auth module's minimum) and returns them.
func (s *seeder) accounts(minLength int) ([]seededAccount, error) {
	var out []seededAccount
	for _, a := range demoAccounts {
		pw, err := password.Generate(max(16, minLength))
		if err != nil {
			return nil, err
		}
		if _, err := s.create("user.create", map[string]any{
			"username": a.Username, "firstname": a.Firstname, "lastname": a.Lastname,
			"rank": a.Rank, "password": pw,
		}, nil); err != nil {
			return nil, err
		}
		out = append(out, seededAccount{Username: a.Username, Rank: core.Rank(a.Rank).String(), Password: pw})
	}
	return out, nil
}

// schedules creates the schedules with their mappings.
func (s *seeder) schedules(groups, users, zones, doors map[string]int64) error {
	ids := func(names []string, by map[string]int64) []int64 {
		out := []int64{}
		for _, n := range names {
			out = append(out, by[n])
		}
		return out
	}
	for _, sc := range demoSchedules {
		frames := make([]map[string]any, len(sc.Frames))
		for i, f := range sc.Frames {
			frames[i] = map[string]any{"day": f.Day, "start-time": f.Start, "end-time": f.End}
		}
		mappings := make([]map[string]any, len(sc.Mappings))
		for i, mp := range sc.Mappings {
			mappings[i] = map[string]any{
				"alias": mp.Alias, "groups": ids(mp.Groups, groups), "users": ids(mp.Users, users),
				"zones": ids(mp.Zones, zones), "doors": ids(mp.Doors, doors), "credentials": []int64{},
			}
		}
		if _, err := s.create("schedule.create", map[string]any{
			"name": sc.Name, "description": sc.Description, "timeframes": frames,
		}, map[string]any{"mapping": mappings}); err != nil {
			return err
		}
	}
	return nil
}
