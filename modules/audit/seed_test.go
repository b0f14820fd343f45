package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// seedBase is the time of the first seeded row; rows are seedStep apart (with jitter).
var seedBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const seedStep = 30 * time.Second

// newTestModule opens a fresh database in a temporary directory and returns an audit module
// on it (without a core.Context: enough for audit.get).
func newTestModule(tb testing.TB) *Module {
	tb.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, tb.TempDir(), zerolog.Nop(), db.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = d.Close() })
	l, err := eventlog.Open(ctx, d, core.NewBus(zerolog.Nop(), 0), zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	return &Module{log: zerolog.Nop(), db: d, events: l}
}

// seedRow is one generated row of the events table.
type seedRow struct {
	time                                          time.Time
	topic, kind                                   string
	mask                                          int64
	authorID, targetID, target2ID, userID, doorID *int64
	authorName, description                       string
	before, after                                 *string
	data                                          string
}

func ptr(v int64) *int64 { return &v }

// genRow returns a plausible row: 10 % live-only events (kind ”), 50 % access decisions,
// 10 % logins, 10 % door events, 20 % changes of every other kind. Times increase by
// seedStep with a few seconds of jitter, so that time and seq do not agree exactly.
func genRow(rng *rand.Rand, i int) seedRow {
	r := seedRow{time: seedBase.Add(time.Duration(i)*seedStep + time.Duration(rng.IntN(10_000)-5_000)*time.Millisecond)}
	user := ptr(int64(1 + rng.IntN(2000)))
	door := ptr(int64(1 + rng.IntN(50)))
	author := ptr(int64(1 + rng.IntN(20)))
	target := ptr(int64(1 + rng.IntN(3000)))
	switch p := rng.IntN(100); {
	case p < 10:
		r.topic, r.data = fmt.Sprintf("reader.%d.swipe", *door), `{"reader_id":1}`
	case p < 60:
		r.kind, r.userID, r.doorID, r.targetID = eventlog.KindAuth, user, door, target
		r.topic, r.mask = "access.granted", eventlog.AuthGranted
		if rng.IntN(5) == 0 {
			r.topic, r.mask = "access.denied", eventlog.AuthDenied
		}
		r.description = fmt.Sprintf("Access %s to user %d at door %d.", r.topic[7:], *user, *door)
		r.data = fmt.Sprintf(`{"door_id":%d,"user_id":%d,"credential_id":%d,"granted":%t}`, *door, *user, *target, r.mask == eventlog.AuthGranted)
	case p < 70:
		r.kind, r.userID, r.authorID, r.authorName = eventlog.KindLogin, user, user, fmt.Sprintf("user%d", *user)
		r.topic, r.mask = "auth.login", eventlog.LoginSucceeded
		r.description = fmt.Sprintf("User user%d logged in (leosac, password) from 10.0.0.1:5555.", *user)
		r.data = fmt.Sprintf(`{"user_id":%d,"username":"user%d"}`, *user, *user)
	case p < 80:
		r.kind, r.doorID, r.targetID = eventlog.KindDoor, door, door
		r.topic, r.mask = fmt.Sprintf("door.%d.opened", *door), eventlog.DoorOpened
		r.description = fmt.Sprintf("Door %d opened.", *door)
		r.data = fmt.Sprintf(`{"door_id":%d}`, *door)
	default:
		kinds := []string{eventlog.KindUser, eventlog.KindGroup, eventlog.KindMembership, eventlog.KindCredential, eventlog.KindSchedule, eventlog.KindZone}
		r.kind = kinds[rng.IntN(len(kinds))]
		r.authorID, r.authorName, r.targetID = author, fmt.Sprintf("admin%d", *author), target
		r.topic, r.mask = strings.TrimSuffix(strings.TrimPrefix(r.kind, "audit-"), "-event")+".updated", eventlog.UserEdited
		if r.kind == eventlog.KindMembership {
			r.userID, r.targetID, r.target2ID = user, user, ptr(int64(1+rng.IntN(100)))
			r.topic, r.mask = "membership.created", eventlog.GroupMembershipJoined
		}
		b := fmt.Sprintf(`{"id":%d,"name":"thing %d","version":%d}`, *target, *target, 1+rng.IntN(9))
		a := strings.Replace(b, "thing", "Thing", 1)
		r.before, r.after = &b, &a
		r.description = fmt.Sprintf("%s %d updated.", r.topic, *target)
		r.data = fmt.Sprintf(`{"id":%d}`, *target)
	}
	return r
}

// seedEvents appends n generated rows with batched multi-row INSERTs (not through the event
// log: a million appends one by one would take minutes) and rebuilds event_counts.
func seedEvents(tb testing.TB, d *db.DB, n int, seed uint64) {
	tb.Helper()
	const perInsert = 256
	const cols = 15
	sqlDB, err := d.Write.DB()
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed))
	insert := func(rows int) string {
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
		return `INSERT INTO events (time, topic, kind, event_mask, author_id, author_name, target_id, target2_id,
			user_id, door_id, description, before, after, data, seq) VALUES ` +
			strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
	}
	var last int64
	if err := sqlDB.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&last); err != nil {
		tb.Fatal(err)
	}
	full := insert(perInsert)
	for done := 0; done < n; {
		tx, err := sqlDB.BeginTx(ctx, nil)
		if err != nil {
			tb.Fatal(err)
		}
		for end := min(n, done+50_000); done < end; {
			k := min(perInsert, end-done)
			args := make([]any, 0, k*cols)
			for j := 0; j < k; j++ {
				r := genRow(rng, done+j)
				last++
				args = append(args, r.time, r.topic, r.kind, r.mask, r.authorID, r.authorName, r.targetID, r.target2ID,
					r.userID, r.doorID, r.description, r.before, r.after, []byte(r.data), last) // data as GORM writes it: a BLOB
			}
			stmt := full
			if k != perInsert {
				stmt = insert(k)
			}
			if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
				tb.Fatal(err)
			}
			done += k
		}
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := sqlDB.ExecContext(ctx, `DELETE FROM event_counts`); err != nil {
		tb.Fatal(err)
	}
	if _, err := sqlDB.ExecContext(ctx, `INSERT INTO event_counts(kind, n)
		SELECT kind, COUNT(*) FROM events WHERE kind <> '' GROUP BY kind`); err != nil {
		tb.Fatal(err)
	}
}

// callGet runs audit.get through its handler as the given rank and returns the reply as the
// client would decode it.
func callGet(tb testing.TB, m *Module, rank core.Rank, content any) (getReply, error) {
	tb.Helper()
	b, err := json.Marshal(content)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := m.auditGet(context.Background(), &core.Call{Type: "audit.get",
		Caller: &core.Identity{UserID: 1, Username: "admin", Rank: rank}, Content: b})
	if err != nil {
		return getReply{}, err
	}
	return res.(getReply), nil
}
