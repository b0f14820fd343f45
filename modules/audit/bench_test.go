package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"gatehouse/core"
)

// BenchmarkAuditGet measures audit.get through its handler (decode, count, query, building the
// entries, encoding the reply) on a log of 1,000,000 rows (GATEHOUSE_AUDIT_BENCH_ROWS to
// change it) seeded with batched INSERTs into a fresh database. Each case reports its p50 and
// p99 latency; page 1 of the whole log is the figure that must stay well under 20 ms.
//
//	go test -run '^$' -bench AuditGet -benchtime 200x ./modules/audit
func BenchmarkAuditGet(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("GATEHOUSE_AUDIT_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("GATEHOUSE_AUDIT_BENCH_ROWS=%q", s)
		}
		rows = n
	}
	m := newTestModule(b)
	start := time.Now()
	seedEvents(b, m.db, rows, 42)
	b.Logf("seeded %d rows in %v", rows, time.Since(start).Round(time.Millisecond))
	end := seedBase.Add(time.Duration(rows) * seedStep)
	lastHour := end.Add(-time.Hour).Format(time.RFC3339)
	for _, bc := range []struct {
		name    string
		rank    core.Rank
		content map[string]any
	}{
		{"page1", core.RankAdministrator, map[string]any{}},
		{"page1-viewer", core.RankViewer, map[string]any{}},
		{"page1-ps100", core.RankAdministrator, map[string]any{"ps": 100}},
		{"page50", core.RankAdministrator, map[string]any{"p": 50}},
		{"kind-user", core.RankAdministrator, map[string]any{"enabled_type": []string{"Leosac::Audit::UserEvent"}}},
		{"kinds-3", core.RankAdministrator, map[string]any{"enabled_type": []string{"Leosac::Audit::UserEvent",
			"Leosac::Audit::GroupEvent", "Gatehouse::Audit::LoginEvent"}}},
		{"user_id", core.RankAdministrator, map[string]any{"user_id": 17}},
		{"door_id", core.RankAdministrator, map[string]any{"door_id": 7}},
		{"since-last-hour", core.RankAdministrator, map[string]any{"since": lastHour}},
		{"mask-login", core.RankAdministrator, map[string]any{"enabled_type": []string{"Gatehouse::Audit::LoginEvent"},
			"mask": 1 << 37}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				r, err := callGet(b, m, bc.rank, bc.content)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(r); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
				if len(r.Data) == 0 {
					b.Fatalf("no entries: %+v", r.Meta)
				}
			}
			slices.Sort(took)
			p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
			b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
			fmt.Printf("audit.get %-16s on %d rows: p50 %v, p99 %v (%d calls)\n", bc.name, rows, p(0.50), p(0.99), len(took))
		})
	}
}
