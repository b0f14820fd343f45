package db

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-gormigrate/gormigrate/v2"
	"github.com/rs/zerolog"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestMigrationUniqueEmails (issue 10, point 8): a database whose users share an email in
// different cases is upgraded: the oldest account keeps it, the others lose it with an audit
// entry saying why, and from then on the database refuses such duplicates.
func TestMigrationUniqueEmails(t *testing.T) {
	dir := t.TempDir()
	// The schema as it was before 0006_bounds_email, with duplicates in it.
	g, err := gorm.Open(sqlite.Open(DSN(filepath.Join(dir, FileName), 5*time.Second)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	var old []*gormigrate.Migration
	for _, m := range migrations() {
		if m.ID < "0006" {
			old = append(old, m)
		}
	}
	if err := gormigrate.New(g, &gormigrate.Options{TableName: "schema_migrations", IDColumnName: "id", IDColumnSize: 255, UseTransaction: true}, old).Migrate(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, u := range [][2]string{
		{"alice", "Alice@Example.com"}, {"mallory", "alice@example.COM"}, {"bob", "bob@example.com"},
		{"eve", "ALICE@EXAMPLE.COM"}, {"carol", ""}, {"dave", ""},
	} {
		if err := g.Exec(`INSERT INTO users(username, email, created_at, updated_at) VALUES (?, ?, ?, ?)`, u[0], u[1], now, now).Error; err != nil {
			t.Fatal(err)
		}
	}
	sqlDB, _ := g.DB()
	sqlDB.Close()

	d := openTest(t, dir, zerolog.Nop(), Options{})
	emails := map[string]string{}
	var rows []struct{ Username, Email string }
	if err := d.Read.Raw(`SELECT username, email FROM users`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		emails[r.Username] = r.Email
	}
	want := map[string]string{"alice": "Alice@Example.com", "mallory": "", "bob": "bob@example.com", "eve": "", "carol": "", "dave": ""}
	for name, e := range want {
		if emails[name] != e {
			t.Errorf("%s: email %q, want %q", name, emails[name], e)
		}
	}
	var audit []struct {
		Topic, Description string
		UserID             int64
		Before, After      string
	}
	if err := d.Read.Raw(`SELECT topic, description, user_id, before, after FROM events ORDER BY seq`).Scan(&audit).Error; err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 {
		t.Fatalf("%d audit entries, want 2 (mallory, eve): %+v", len(audit), audit)
	}
	for _, a := range audit {
		if a.Topic != "user.updated" || !strings.Contains(a.Description, "same email") || !strings.Contains(strings.ToLower(a.Before), "alice@example.com") ||
			!strings.Contains(a.After, `"email":""`) {
			t.Errorf("audit entry %+v", a)
		}
	}
	var n int64
	if err := d.Read.Raw(`SELECT n FROM event_counts WHERE kind = 'audit-user-event'`).Scan(&n).Error; err != nil || n != 2 {
		t.Errorf("event count %d (%v), want 2", n, err)
	}
	err = d.Write.WithContext(context.Background()).Exec(`UPDATE users SET email = 'BOB@example.com' WHERE username = 'carol'`).Error
	if err == nil {
		t.Error("a duplicate email in another case was stored after the upgrade")
	}
	if err := d.Write.Exec(`UPDATE users SET email = '' WHERE username = 'bob'`).Error; err != nil {
		t.Errorf("several empty emails: %v", err)
	}
}
