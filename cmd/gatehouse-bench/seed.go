package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/db"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// This file is the bulk seeder of the "site" scenarios: it fills a fresh data directory with a
// large site straight through SQL, before the gatehouse child that serves it starts.

// siteSize is how large the seeded site is.
type siteSize struct {
	Users               int `json:"users"`       // plus the admin
	Credentials         int `json:"credentials"` // two RFID cards per user
	Doors               int `json:"doors"`       // each with its own access point
	Groups              int `json:"groups"`
	MembersPerGroup     int `json:"members_per_group"`
	Schedules           int `json:"schedules"`
	MappingsPerSchedule int `json:"mappings_per_schedule"`
	Events              int `json:"events"`
}

// The sites of a normal run (the acceptance figures) and of -quick.
var (
	fullSite = siteSize{Users: 100_000, Credentials: 200_000, Doors: 1_000, Groups: 100, MembersPerGroup: 100,
		Schedules: 500, MappingsPerSchedule: 10, Events: 1_000_000}
	quickSite = siteSize{Users: 2_000, Credentials: 4_000, Doors: 50, Groups: 10, MembersPerGroup: 100,
		Schedules: 50, MappingsPerSchedule: 10, Events: 10_000}
)

// Links of every schedule mapping.
const (
	usersPerMapping  = 5
	groupsPerMapping = 1
	doorsPerMapping  = 2
)

// seedTarget is the limit on seeding the site.
const seedTarget = 60 * time.Second

// String returns e.g. "100000 users, 200000 credentials, 1000 doors, 5000 mappings, 1000000 events".
func (s siteSize) String() string {
	return fmt.Sprintf("%d users, %d credentials, %d doors, %d mappings, %d events",
		s.Users, s.Credentials, s.Doors, s.Schedules*s.MappingsPerSchedule, s.Events)
}

// The id layout of the seeded site. Rows are inserted with explicit ids: the admin is user 1,
// seeded user k (1-based, username userNNNNNN) is user k+1, its cards are credentials
// 2k-1 and 2k; door and access point d share the id d; groups and schedules count from 1.
const adminID = 1

func seededUserID(k int) int64 { return int64(k) + 1 }

func seededUsername(k int) string { return fmt.Sprintf("user%06d", k) }

func doorAlias(d int) string { return fmt.Sprintf("Door %04d", d) }

// cardID returns the unique card number of credential c (1-based) as Leosac writes a 26-bit
// Wiegand card: four lower-case hex bytes "aa:bb:cc:dd". Multiplying by an odd constant is a
// bijection modulo 2^26, so distinct credentials below 2^26 get distinct cards.
func cardID(c int) string {
	v := uint32(c) * 0x9E3779B1 & (1<<26 - 1)
	b := []byte("00:00:00:00")
	for i := range 4 {
		x := byte(v >> (24 - 8*i))
		b[3*i], b[3*i+1] = hexDigits[x>>4], hexDigits[x&0xf]
	}
	return string(b)
}

// seedPart is one step of the seeding with what it inserted and how long it took.
type seedPart struct {
	Name string        `json:"name"`
	Rows int64         `json:"rows"`
	Took time.Duration `json:"took_ns"`
	// CPU is the CPU time this process used meanwhile (0 where /proc is not available): on a
	// busy machine it tells the seeder's cost apart from the wait for a CPU.
	CPU time.Duration `json:"cpu_ns"`
}

// seedResult is the seeded site: where, how large, and the time each part took.
type seedResult struct {
	Dir     string        `json:"-"`
	Size    siteSize      `json:"size"`
	Parts   []seedPart    `json:"parts"`
	Total   time.Duration `json:"total_ns"`
	CPU     time.Duration `json:"cpu_ns"`
	DBBytes int64         `json:"db_bytes"`
}

// part returns the time of the named part (0 if absent).
func (r *seedResult) part(name string) time.Duration {
	for _, p := range r.Parts {
		if p.Name == name {
			return p.Took
		}
	}
	return 0
}

// seedSite creates the database of a site of the given size in dir (which must hold no
// database yet) and reports progress to out. The admin user is created with benchPassword
// hashed as the auth module does, since the auth module bootstraps it only into an empty users
// table. Each part is one transaction of multi-row INSERTs on the writer connection.
func seedSite(ctx context.Context, dir string, size siteSize, out io.Writer) (_ *seedResult, err error) {
	res := &seedResult{Dir: dir, Size: size}
	start, cpu0 := time.Now(), selfCPU()
	fmt.Fprintf(out, "seeding a site of %s into a fresh data directory\n", size)
	d, err := db.Open(ctx, dir, zerolog.Nop(), db.Options{})
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer func() {
		if cerr := d.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("seed: %w", cerr)
		}
	}()
	sqlDB, err := d.Write.DB()
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	// The writer has one connection: the seeding holds it, and gives it back before Optimize.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer conn.Close()
	var n int64
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("seed: the database in %s already has %d users", dir, n)
	}
	// A large page cache for this connection only: it also bounds the memory the index builds
	// sort in before they spill to temporary files. The server's connections keep theirs.
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}

	s := &seeder{ctx: ctx, conn: conn, out: out, res: res, size: size,
		rng: rand.New(rand.NewPCG(1, 2)), now: time.Now().UTC()}
	fmt.Fprintf(out, "  %-12s %9s %9s %9s\n", "part", "rows", "took", "CPU")
	for _, p := range []struct {
		name   string
		fn     func(tx *sql.Tx) (int64, error)
		tables []string // whose indexes are rebuilt after the inserts
	}{
		{"admin", s.admin, nil},
		{"users", s.users, []string{"users"}},
		{"credentials", s.credentials, []string{"credentials"}},
		{"doors", s.doors, nil},
		{"groups", s.groups, []string{"memberships"}},
		{"schedules", s.schedules, []string{"schedule_mappings", "mapping_users", "mapping_groups", "mapping_doors"}},
		{"events", s.events, []string{"events"}},
	} {
		if err := s.part(p.name, p.fn, p.tables); err != nil {
			return nil, err
		}
	}
	// Fold the write-ahead log into the database file (db.Optimize: a checkpoint and PRAGMA
	// optimize), so that the server starts on a database file that holds everything.
	t0, c0 := time.Now(), selfCPU()
	if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -2000`); err != nil { // SQLite's default
		return nil, fmt.Errorf("seed: %w", err)
	}
	if err := conn.Close(); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if err := d.Optimize(ctx); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	s.record("checkpoint", 0, time.Since(t0), selfCPU()-c0)
	res.Total, res.CPU = time.Since(start), selfCPU()-cpu0
	if fi, err := os.Stat(d.Path); err == nil {
		res.DBBytes = fi.Size()
	}
	fmt.Fprintf(out, "  %-12s %9s %9s %9s  (%s on disk)\n\n", "total", "", fmtDur(res.Total), fmtDur(res.CPU), fmtBytes(res.DBBytes))
	return res, nil
}

// seeder holds the state of one seeding.
type seeder struct {
	ctx  context.Context
	conn *sql.Conn
	out  io.Writer
	res  *seedResult
	size siteSize
	rng  *rand.Rand
	now  time.Time
}

// part runs fn in one transaction. The secondary indexes of tables (those created by CREATE
// INDEX in the migrations, not the automatic ones of UNIQUE and PRIMARY KEY constraints) are
// dropped before the inserts and created again after them, in the same transaction, from
// the very SQL the migrations stored in sqlite_master: building an index from sorted keys is
// several times cheaper than growing it one random insert at a time, and the schema comes out
// identical (a duplicate in a unique index fails its CREATE, and the part with it).
func (s *seeder) part(name string, fn func(tx *sql.Tx) (int64, error), tables []string) (err error) {
	t0, c0 := time.Now(), selfCPU()
	tx, err := s.conn.BeginTx(s.ctx, nil)
	if err != nil {
		return fmt.Errorf("seed %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("seed %s: %w", name, err), tx.Rollback())
		}
	}()
	indexes, err := dropIndexes(s.ctx, tx, tables)
	if err != nil {
		return err
	}
	rows, err := fn(tx)
	if err != nil {
		return err
	}
	t1 := time.Now()
	for _, ddl := range indexes {
		if _, err := tx.ExecContext(s.ctx, ddl); err != nil {
			return fmt.Errorf("%s: %w", ddl, err)
		}
	}
	rebuilt := time.Since(t1)
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.record(name, rows, time.Since(t0), selfCPU()-c0)
	if len(indexes) > 0 {
		fmt.Fprintf(s.out, "  %-12s %9s %9s %9s  (of which building %d indexes after the inserts)\n", "", "", fmtDur(rebuilt), "", len(indexes))
	}
	return nil
}

// dropIndexes drops the indexes of the tables that CREATE INDEX statements made and returns
// those statements.
func dropIndexes(ctx context.Context, tx *sql.Tx, tables []string) ([]string, error) {
	var names, ddl []string
	for _, t := range tables {
		rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master
			WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name`, t)
		if err != nil {
			return nil, fmt.Errorf("indexes of %s: %w", t, err)
		}
		for rows.Next() {
			var name, q string
			if err := rows.Scan(&name, &q); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("indexes of %s: %w", t, err)
			}
			names, ddl = append(names, name), append(ddl, q)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("indexes of %s: %w", t, err)
		}
	}
	for _, name := range names {
		if _, err := tx.ExecContext(ctx, `DROP INDEX "`+name+`"`); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", name, err)
		}
	}
	return ddl, nil
}

func (s *seeder) record(name string, rows int64, took, cpu time.Duration) {
	s.res.Parts = append(s.res.Parts, seedPart{Name: name, Rows: rows, Took: took, CPU: cpu})
	fmt.Fprintf(s.out, "  %-12s %9d %9s %9s\n", name, rows, fmtDur(took), fmtDur(cpu))
}

// selfCPU returns the CPU time this process used so far (0 where unknown).
func selfCPU() time.Duration {
	d, _ := processCPU(os.Getpid())
	return d
}

// userCols are the columns the seeder fills in users.
var userCols = []string{"id", "username", "password_hash", "firstname", "lastname", "email", "rank",
	"validity_enabled", "version", "created_at", "updated_at"}

// admin creates the admin account as the auth module's bootstrap does: username "admin",
// firstname "Admin", rank administrator, the bench password hashed with the default argon2id
// parameters.
func (s *seeder) admin(tx *sql.Tx) (int64, error) {
	hash, err := password.NewHasher(password.DefaultParams, 1).Hash(s.ctx, benchPassword)
	if err != nil {
		return 0, err
	}
	in := newInserter(s.ctx, tx, "users", userCols...)
	if err := in.add(adminID, adminUser, hash, "Admin", "", "", 4, 1, 1, s.now, s.now); err != nil {
		return 0, err
	}
	return in.close()
}

var (
	firstNames = []string{"Alice", "Bruno", "Chloé", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas",
		"Kenji", "Lena", "Mateo", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Samir", "Tove"}
	lastNames = []string{"Martin", "Bernard", "Dubois", "Schmidt", "Rossi", "García", "Novak", "Jensen", "Kowalski",
		"Silva", "Müller", "Lefèvre", "Costa", "Nowak", "Berg", "Moreau", "Fischer", "Romano", "Ortiz", "Lund"}
)

func (s *seeder) users(tx *sql.Tx) (int64, error) {
	in := newInserter(s.ctx, tx, "users", userCols...)
	for k := 1; k <= s.size.Users; k++ {
		name := seededUsername(k)
		err := in.add(seededUserID(k), name, "", firstNames[k%len(firstNames)],
			lastNames[k/len(firstNames)%len(lastNames)], name+"@example.com", 0, 1, 1, s.now, s.now)
		if err != nil {
			return 0, err
		}
	}
	return in.close()
}

func (s *seeder) credentials(tx *sql.Tx) (int64, error) {
	in := newInserter(s.ctx, tx, "credentials", "id", "type", "alias", "alias_fold", "owner_id", "card_id",
		"nb_bits", "validity_enabled", "version", "created_at", "updated_at")
	for c := 1; c <= s.size.Credentials; c++ {
		k := (c + 1) / 2 // the owner: two cards per user
		var owner any
		if k <= s.size.Users {
			owner = seededUserID(k)
		}
		alias := fmt.Sprintf("Badge %06d-%d", k, 2-c%2)
		if err := in.add(c, "rfid-card", alias, resource.Fold(alias), owner, cardID(c), 26, 1, 1, s.now, s.now); err != nil {
			return 0, err
		}
	}
	return in.close()
}

func (s *seeder) doors(tx *sql.Tx) (int64, error) {
	aps := newInserter(s.ctx, tx, "access_points", "id", "alias", "alias_fold", "controller_module", "config",
		"version", "created_at", "updated_at")
	for d := 1; d <= s.size.Doors; d++ {
		alias := fmt.Sprintf("Reader %04d", d)
		if err := aps.add(d, alias, resource.Fold(alias), "LEOSAC-BUILTIN-ACCESS-POINT", "{}", 1, s.now, s.now); err != nil {
			return 0, err
		}
	}
	n1, err := aps.close()
	if err != nil {
		return 0, err
	}
	doors := newInserter(s.ctx, tx, "doors", "id", "alias", "alias_fold", "access_point_id", "version",
		"created_at", "updated_at")
	for d := 1; d <= s.size.Doors; d++ {
		alias := doorAlias(d)
		if err := doors.add(d, alias, resource.Fold(alias), d, 1, s.now, s.now); err != nil {
			return 0, err
		}
	}
	n2, err := doors.close()
	return n1 + n2, err
}

// distinct returns n distinct numbers in [1, hi] (all of them if n ≥ hi).
func (s *seeder) distinct(n, hi int) []int {
	if n >= hi {
		out := make([]int, hi)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	seen := make(map[int]bool, n)
	out := make([]int, 0, n)
	for len(out) < n {
		v := 1 + s.rng.IntN(hi)
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func (s *seeder) groups(tx *sql.Tx) (int64, error) {
	groups := newInserter(s.ctx, tx, "groups", "id", "name", "name_fold", "description", "version",
		"created_at", "updated_at")
	for g := 1; g <= s.size.Groups; g++ {
		name := fmt.Sprintf("Team-%03d", g)
		if err := groups.add(g, name, resource.Fold(name), "Seeded team "+strconv.Itoa(g), 1, s.now, s.now); err != nil {
			return 0, err
		}
	}
	n1, err := groups.close()
	if err != nil {
		return 0, err
	}
	members := newInserter(s.ctx, tx, "memberships", "user_id", "group_id", "rank", "created_at")
	for g := 1; g <= s.size.Groups; g++ {
		for _, k := range s.distinct(s.size.MembersPerGroup, s.size.Users) {
			rank := 0
			if s.rng.IntN(20) == 0 {
				rank = 1 + s.rng.IntN(2) // a few operators and administrators of the group
			}
			if err := members.add(seededUserID(k), g, rank, s.now); err != nil {
				return 0, err
			}
		}
	}
	n2, err := members.close()
	return n1 + n2, err
}

// officeHours is the timeframes of every seeded schedule: Monday to Friday, 08:00–18:00.
const officeHours = `[{"id":0,"day":0,"start-time":"08:00","end-time":"18:00"},` +
	`{"id":1,"day":1,"start-time":"08:00","end-time":"18:00"},` +
	`{"id":2,"day":2,"start-time":"08:00","end-time":"18:00"},` +
	`{"id":3,"day":3,"start-time":"08:00","end-time":"18:00"},` +
	`{"id":4,"day":4,"start-time":"08:00","end-time":"18:00"}]`

func (s *seeder) schedules(tx *sql.Tx) (int64, error) {
	scheds := newInserter(s.ctx, tx, "schedules", "id", "name", "name_fold", "description", "timeframes",
		"version", "created_at", "updated_at")
	for i := 1; i <= s.size.Schedules; i++ {
		name := fmt.Sprintf("Schedule-%03d", i)
		if err := scheds.add(i, name, resource.Fold(name), "", officeHours, 1, s.now, s.now); err != nil {
			return 0, err
		}
	}
	total, err := scheds.close()
	if err != nil {
		return 0, err
	}
	mappings := newInserter(s.ctx, tx, "schedule_mappings", "id", "schedule_id", "alias", "position", "version")
	m := 0
	for i := 1; i <= s.size.Schedules; i++ {
		for pos := range s.size.MappingsPerSchedule {
			m++
			if err := mappings.add(m, i, fmt.Sprintf("mapping-%d", pos+1), pos, 1); err != nil {
				return 0, err
			}
		}
	}
	n, err := mappings.close()
	if err != nil {
		return 0, err
	}
	total += n
	// The links go in once every mapping they name is there (the foreign keys are immediate).
	users := newInserter(s.ctx, tx, "mapping_users", "mapping_id", "user_id")
	groups := newInserter(s.ctx, tx, "mapping_groups", "mapping_id", "group_id")
	doors := newInserter(s.ctx, tx, "mapping_doors", "mapping_id", "door_id")
	for m := 1; m <= s.size.Schedules*s.size.MappingsPerSchedule; m++ {
		{
			for _, k := range s.distinct(usersPerMapping, s.size.Users) {
				if err := users.add(m, seededUserID(k)); err != nil {
					return 0, err
				}
			}
			for _, g := range s.distinct(groupsPerMapping, s.size.Groups) {
				if err := groups.add(m, g); err != nil {
					return 0, err
				}
			}
			for _, d := range s.distinct(doorsPerMapping, s.size.Doors) {
				if err := doors.add(m, d); err != nil {
					return 0, err
				}
			}
		}
	}
	for _, in := range []*inserter{users, groups, doors} {
		n, err := in.close()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// events appends the event log of a busy site over the last 90 days, oldest first: mostly
// access decisions at the doors, door openings, some user edits by the admin and logins, with
// the columns and descriptions the modules write, and the per-kind counts audit.get reads.
// Payloads (data) are "{}": what is pushed live does not matter to the audit trail.
func (s *seeder) events(tx *sql.Tx) (int64, error) {
	in := newInserter(s.ctx, tx, "events", "time", "topic", "kind", "event_mask", "author_id", "author_name",
		"target_id", "user_id", "door_id", "description", "before", "after", "data")
	counts := map[string]int64{}
	const span = 90 * 24 * time.Hour
	first := s.now.Add(-span)
	step := span / time.Duration(max(1, s.size.Events))
	for i := range s.size.Events {
		at := first.Add(time.Duration(i)*step + time.Duration(s.rng.Int64N(int64(max(1, step)))))
		k := 1 + s.rng.IntN(s.size.Users)
		uid, username := seededUserID(k), seededUsername(k)
		door := 1 + s.rng.IntN(s.size.Doors)
		var (
			topic, kind, desc string
			mask              eventlog.Mask
			author, target    any
			authorName        string
			userID, doorID    any
			before, after     any
		)
		switch r := s.rng.IntN(100); {
		case r < 78: // an access decision at a reader
			cred := 2*k - 1 + s.rng.IntN(2)
			topic, mask, desc = "access.granted", eventlog.AuthGranted, "Access granted"
			if r >= 70 {
				reason := [...]string{"outside_schedule", "no_schedule", "credential_invalid"}[s.rng.IntN(3)]
				topic, mask, desc = "access.denied", eventlog.AuthDenied, "Access denied ("+reason+")"
			}
			kind, target, userID, doorID = eventlog.KindAuth, cred, uid, door
			desc += " to " + username + " with card " + cardID(cred) + " at " + doorAlias(door) + "."
		case r < 93: // a door opened
			topic, kind, mask = "door."+strconv.Itoa(door)+".opened", eventlog.KindDoor, eventlog.DoorOpened
			target, doorID, desc = door, door, doorAlias(door)+" opened."
		case r < 97: // the admin edited a user
			topic, kind, mask = "user.updated", eventlog.KindUser, eventlog.UserEdited
			author, authorName, target, userID = adminID, adminUser, uid, uid
			desc = fmt.Sprintf(`User {"id":%d,"username":%q} has been updated.`, uid, username)
			before = fmt.Sprintf(`{"id":%d,"username":%q,"email":"","rank":0,"version":1}`, uid, username)
			after = fmt.Sprintf(`{"id":%d,"username":%q,"email":"%s@example.com","rank":0,"version":2}`, uid, username, username)
		default: // an API login of the admin
			topic, kind, mask = "auth.login", eventlog.KindLogin, eventlog.LoginSucceeded
			author, authorName, target, userID = adminID, adminUser, adminID, adminID
			desc = "User admin logged in."
		}
		counts[kind]++
		err := in.add(at, topic, kind, mask, author, authorName, target, userID, doorID, desc, before, after, "{}")
		if err != nil {
			return 0, err
		}
	}
	n, err := in.close()
	if err != nil {
		return 0, err
	}
	cnt := newInserter(s.ctx, tx, "event_counts", "kind", "n")
	for kind, c := range counts {
		if err := cnt.add(kind, c); err != nil {
			return 0, err
		}
	}
	m, err := cnt.close()
	return n + m, err
}

// The inserter's statements carry their rows as one JSON array in one bound parameter,
// INSERT … SELECT value->>0, value->>1, … FROM json_each(?), rather than as one parameter per
// value. The driver (glebarez/go-sqlite, after modernc.org/sqlite) looks each parameter up by
// a linear scan of the arguments, so binding costs O(parameters²) per statement (32766
// parameters take seconds), and it parses the SQL text again on every execution, so a
// VALUES list is parsed again for every batch; a JSON array is parsed by SQLite in one pass.
// The statements are INSERT OR ROLLBACK: a multi-row INSERT with the default ABORT
// resolution makes SQLite keep a statement journal of every page it touches, which costs as
// much as the inserts; a failure rolls the whole part back, which is what the seeder wants.
const batchBytes = 1 << 20 // JSON per statement

// sqliteTime is how the driver writes a time.Time (its first parseTimeFormats entry), so that
// the seeded dates read back as the server's own.
const sqliteTime = "2006-01-02 15:04:05.999999999-07:00"

// inserter writes rows into one table, batchBytes of JSON per statement.
type inserter struct {
	ctx   context.Context
	tx    *sql.Tx
	table string
	stmt  string
	ncols int
	buf   []byte // "[[row],[row]"
	n     int    // rows in buf
	rows  int64  // rows inserted
}

func newInserter(ctx context.Context, tx *sql.Tx, table string, cols ...string) *inserter {
	sel := make([]string, len(cols))
	for i := range cols {
		sel[i] = "value->>" + strconv.Itoa(i)
	}
	return &inserter{ctx: ctx, tx: tx, table: table, ncols: len(cols),
		stmt: "INSERT OR ROLLBACK INTO " + table + "(" + strings.Join(cols, ", ") + ") SELECT " +
			strings.Join(sel, ", ") + " FROM json_each(?)"}
}

// add queues one row, one value per column (integers, strings, time.Time or nil for NULL), and
// writes the batch once it is large enough.
func (in *inserter) add(vals ...any) error {
	if len(vals) != in.ncols {
		return fmt.Errorf("insert into %s: %d values for %d columns", in.table, len(vals), in.ncols)
	}
	if in.n == 0 {
		in.buf = append(in.buf[:0], '[')
	} else {
		in.buf = append(in.buf, ',')
	}
	in.buf = append(in.buf, '[')
	for i, v := range vals {
		if i > 0 {
			in.buf = append(in.buf, ',')
		}
		switch x := v.(type) {
		case nil:
			in.buf = append(in.buf, "null"...)
		case int:
			in.buf = strconv.AppendInt(in.buf, int64(x), 10)
		case int64:
			in.buf = strconv.AppendInt(in.buf, x, 10)
		case string:
			in.buf = appendJSONString(in.buf, x)
		case time.Time:
			in.buf = append(in.buf, '"')
			in.buf = x.AppendFormat(in.buf, sqliteTime)
			in.buf = append(in.buf, '"')
		default:
			return fmt.Errorf("insert into %s: unsupported value %T", in.table, v)
		}
	}
	in.buf = append(in.buf, ']')
	in.n++
	if len(in.buf) >= batchBytes {
		return in.flush()
	}
	return nil
}

func (in *inserter) flush() error {
	if in.n == 0 {
		return nil
	}
	in.buf = append(in.buf, ']')
	res, err := in.tx.ExecContext(in.ctx, in.stmt, string(in.buf))
	if err != nil {
		return fmt.Errorf("insert into %s: %w", in.table, err)
	}
	if got, err := res.RowsAffected(); err == nil && got != int64(in.n) {
		return fmt.Errorf("insert into %s: %d rows inserted of %d", in.table, got, in.n)
	}
	in.rows += int64(in.n)
	in.n = 0
	return nil
}

// close writes what is queued and returns the number of rows inserted.
func (in *inserter) close() (int64, error) {
	err := in.flush()
	return in.rows, err
}

// appendJSONString appends s as a JSON string (s is UTF-8).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
