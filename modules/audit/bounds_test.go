package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"gatehouse/core/coretest"
	"gatehouse/modules/audit"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/wsapi/wstest"
)

// TestAuditGetReplyIsBounded (issue 10, point 5): however large the audit rows — rows written
// before sizes were bounded included — an administrator's audit.get answers at most
// audit.MaxReplyBytes: the page ends early and meta says so, the entries it holds are the
// newest ones in order, and an oversized snapshot or data reads as {"truncated": true}.
// Before, a page of 500 such rows was one reply of hundreds of megabytes.
func TestAuditGetReplyIsBounded(t *testing.T) {
	t.Parallel()
	srv := start(t)
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)

	// 120 rows with snapshots at the bound (64 KiB each), then 3 rows far beyond every bound, as
	// an older version could write them.
	const normal, old = 120, 3
	snap := func(n int) string { return `{"firstname":"` + strings.Repeat("x", n) + `"}` }
	now := time.Now().UTC()
	err := srv.DB().Write.Transaction(func(tx *gorm.DB) error {
		for i := range normal + old {
			before, after, data, desc := snap(eventlog.MaxSnapshotBytes-20), snap(eventlog.MaxSnapshotBytes-20), `{"id":1}`, "Group updated."
			if i >= normal {
				before, after, data, desc = snap(2<<20), snap(2<<20), `{"pad":"`+strings.Repeat("d", 1<<20)+`"}`, strings.Repeat("D", 1<<20)
			}
			if err := tx.Exec(`INSERT INTO events (time, topic, kind, event_mask, target_id, description, before, after, data)
				VALUES (?, 'group.updated', ?, ?, 1, ?, ?, ?, ?)`, now, eventlog.KindGroup, eventlog.GroupUpdated, desc, before, after, data).Error; err != nil {
				return err
			}
		}
		return tx.Exec(`INSERT INTO event_counts(kind, n) VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET n = n + excluded.n`,
			eventlog.KindGroup, normal+old).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	// The newest of those rows (the admin's login is recorded in the background and may land
	// after them: it is of another kind).
	var last int64
	if err := srv.DB().Read.Raw(`SELECT MAX(seq) FROM events WHERE kind = ?`, eventlog.KindGroup).Scan(&last).Error; err != nil {
		t.Fatal(err)
	}

	r := admin.Call("audit.get", map[string]any{"ps": 500, "enabled_type": []string{eventlog.KindGroup}})
	want(t, r, codeOK)
	if len(r.Content) > audit.MaxReplyBytes {
		t.Fatalf("audit.get answered %d bytes, over the %d bound", len(r.Content), audit.MaxReplyBytes)
	}
	var page struct {
		Meta struct {
			Count     int64 `json:"count"`
			Truncated bool  `json:"truncated"`
			Returned  int   `json:"returned"`
		} `json:"meta"`
		Data []entry `json:"data"`
	}
	r.Decode(t, &page)
	t.Logf("a page of 500 asked: %d entries in %d bytes", len(page.Data), len(r.Content))
	if page.Meta.Count < normal+old || !page.Meta.Truncated || page.Meta.Returned != len(page.Data) || len(page.Data) == 0 || len(page.Data) >= normal+old {
		t.Fatalf("meta %+v with %d entries: want a truncated page", page.Meta, len(page.Data))
	}
	for i, e := range page.Data {
		if e.ID != last-int64(i) {
			t.Fatalf("entry %d is %d, want %d: the page must hold the newest entries in order", i, e.ID, last-int64(i))
		}
		before, after := e.str(t, "before"), e.str(t, "after")
		if i < old {
			if before != `{"truncated":true}` || after != `{"truncated":true}` || string(e.Attributes["data"]) != `{"truncated":true}` ||
				len(e.str(t, "description")) > eventlog.MaxDescriptionBytes {
				t.Errorf("oversized entry %d read as before %.40s… data %.40s… description of %d bytes", e.ID, before, e.Attributes["data"], len(e.str(t, "description")))
			}
		} else if len(before) != eventlog.MaxSnapshotBytes-20+len(`{"firstname":""}`) || !json.Valid([]byte(after)) {
			t.Errorf("entry %d: snapshot of %d bytes, want it whole", e.ID, len(before))
		}
	}
	// A page that fits is not marked.
	r = admin.Call("audit.get", map[string]any{"ps": 5})
	want(t, r, codeOK)
	if strings.Contains(string(r.Content), `"truncated":true,"returned"`) {
		t.Errorf("a small page is marked truncated: %.200s", r.Content)
	}
}

// TestAuditSnapshotsAreBounded: whatever a module records, a before/after snapshot is at most
// eventlog.MaxSnapshotBytes, its strings at most eventlog.MaxSnapshotString bytes, and a
// description at most eventlog.MaxDescriptionBytes.
func TestAuditSnapshotsAreBounded(t *testing.T) {
	t.Parallel()
	srv := start(t)
	l := eventLog(t, srv)
	long := strings.Repeat("é", 10_000)
	var many []string
	for range 100 {
		many = append(many, strings.Repeat("m", 2000))
	}
	var got struct{ Description, Before, After string }
	err := l.Write(t.Context(), func(tx *eventlog.Tx) error {
		return tx.Record(eventlog.Change{Topic: "group.updated", Kind: eventlog.KindGroup, Mask: eventlog.GroupUpdated,
			TargetID: 1, Description: long, Before: map[string]any{"name": long}, After: map[string]any{"list": many}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.DB().Read.Raw(`SELECT description, before, after FROM events ORDER BY seq DESC LIMIT 1`).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	var before map[string]string
	if err := json.Unmarshal([]byte(got.Before), &before); err != nil || len(before["name"]) > eventlog.MaxSnapshotString || !strings.HasSuffix(before["name"], "…") {
		t.Errorf("before %.80s… (%d bytes): %v", got.Before, len(got.Before), err)
	}
	if got.After != `{"bytes":`+itoa(len(`{"list":[]}`)+100*2003-1)+`,"truncated":true}` {
		t.Errorf("after %.80s…: want the truncated marker", got.After)
	}
	if len(got.Description) > eventlog.MaxDescriptionBytes || !strings.HasSuffix(got.Description, "…") {
		t.Errorf("description of %d bytes", len(got.Description))
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
