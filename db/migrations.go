package db

import (
	"context"
	"fmt"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrations is the schema history, oldest first. A migration is never edited once released:
// changes go in a new one. Each runs in its own transaction on the writer and is recorded in
// the schema_migrations table. DDL is written out in SQL so that the history does not move
// when a module's Go types change.
func migrations() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		{ID: "0001_users_tokens_meta", Migrate: sqlSteps(
			`CREATE TABLE meta (
				key   TEXT PRIMARY KEY,
				value TEXT NOT NULL
			)`,
			`CREATE TABLE users (
				id               INTEGER PRIMARY KEY AUTOINCREMENT,
				username         TEXT NOT NULL UNIQUE COLLATE NOCASE,
				password_hash    TEXT NOT NULL DEFAULT '',
				firstname        TEXT NOT NULL DEFAULT '',
				lastname         TEXT NOT NULL DEFAULT '',
				email            TEXT NOT NULL DEFAULT '',
				rank             INTEGER NOT NULL DEFAULT 0 CHECK (rank BETWEEN 0 AND 4),
				validity_enabled INTEGER NOT NULL DEFAULT 1,
				validity_start   DATETIME,
				validity_end     DATETIME,
				version          INTEGER NOT NULL DEFAULT 1,
				created_at       DATETIME NOT NULL,
				updated_at       DATETIME NOT NULL
			)`,
			`CREATE TABLE tokens (
				id           TEXT PRIMARY KEY,
				hash         TEXT NOT NULL UNIQUE,
				user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				dialect      TEXT NOT NULL,
				issued_at    DATETIME NOT NULL,
				expires_at   DATETIME NOT NULL,
				idle_seconds INTEGER NOT NULL,
				last_used_at DATETIME NOT NULL,
				remote_addr  TEXT NOT NULL DEFAULT '',
				user_agent   TEXT NOT NULL DEFAULT ''
			)`,
			`CREATE INDEX tokens_user_id ON tokens(user_id)`,
		)},
	}
}

// sqlSteps returns a migration function that executes the statements in order.
func sqlSteps(stmts ...string) gormigrate.MigrateFunc {
	return func(tx *gorm.DB) error {
		for _, s := range stmts {
			if err := tx.Exec(s).Error; err != nil {
				return fmt.Errorf("%.60s…: %w", s, err)
			}
		}
		return nil
	}
}

// Migrate applies every pending migration. It is called by Open.
func (d *DB) Migrate(ctx context.Context) error {
	m := gormigrate.New(d.Write.WithContext(ctx), &gormigrate.Options{
		TableName:      "schema_migrations",
		IDColumnName:   "id",
		IDColumnSize:   255,
		UseTransaction: true,
	}, migrations())
	if err := m.Migrate(); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// SchemaVersion returns the ID of the last applied migration.
func (d *DB) SchemaVersion(ctx context.Context) (string, error) {
	var id string
	err := d.Read.WithContext(ctx).Raw(`SELECT id FROM schema_migrations ORDER BY id DESC LIMIT 1`).Scan(&id).Error
	return id, err
}
