package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
		{ID: "0002_site_directory_events", Migrate: sqlSteps(
			// Directory: groups, memberships, credentials. *_fold columns hold the lower-cased
			// name for case-insensitive search in every script.
			`CREATE TABLE groups (
				id          INTEGER PRIMARY KEY AUTOINCREMENT,
				name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
				name_fold   TEXT NOT NULL,
				description TEXT NOT NULL DEFAULT '',
				version     INTEGER NOT NULL DEFAULT 1,
				created_at  DATETIME NOT NULL,
				updated_at  DATETIME NOT NULL
			)`,
			`CREATE INDEX groups_name_fold ON groups(name_fold)`,
			`CREATE TABLE memberships (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
				rank       INTEGER NOT NULL DEFAULT 0 CHECK (rank BETWEEN 0 AND 2),
				created_at DATETIME NOT NULL,
				UNIQUE (user_id, group_id)
			)`,
			`CREATE INDEX memberships_group ON memberships(group_id)`,
			`CREATE TABLE credentials (
				id               INTEGER PRIMARY KEY AUTOINCREMENT,
				type             TEXT NOT NULL CHECK (type IN ('rfid-card', 'pin-code', 'rfid-card-pin')),
				alias            TEXT NOT NULL DEFAULT '',
				alias_fold       TEXT NOT NULL DEFAULT '',
				description      TEXT NOT NULL DEFAULT '',
				owner_id         INTEGER REFERENCES users(id) ON DELETE SET NULL,
				card_id          TEXT NOT NULL DEFAULT '',
				nb_bits          INTEGER NOT NULL DEFAULT 0,
				pin_hash         TEXT NOT NULL DEFAULT '',
				validity_enabled INTEGER NOT NULL DEFAULT 1,
				validity_start   DATETIME,
				validity_end     DATETIME,
				version          INTEGER NOT NULL DEFAULT 1,
				created_at       DATETIME NOT NULL,
				updated_at       DATETIME NOT NULL
			)`,
			`CREATE INDEX credentials_owner ON credentials(owner_id)`,
			`CREATE INDEX credentials_alias_fold ON credentials(alias_fold)`,
			`CREATE UNIQUE INDEX credentials_card ON credentials(type, card_id, nb_bits) WHERE card_id <> ''`,
			`CREATE UNIQUE INDEX credentials_pin ON credentials(pin_hash) WHERE type = 'pin-code'`,
			// Site: access points (readers), doors, zones.
			`CREATE TABLE access_points (
				id                INTEGER PRIMARY KEY AUTOINCREMENT,
				alias             TEXT NOT NULL DEFAULT '',
				alias_fold        TEXT NOT NULL DEFAULT '',
				description       TEXT NOT NULL DEFAULT '',
				controller_module TEXT NOT NULL,
				config            TEXT NOT NULL DEFAULT '{}',
				version           INTEGER NOT NULL DEFAULT 1,
				created_at        DATETIME NOT NULL,
				updated_at        DATETIME NOT NULL
			)`,
			`CREATE INDEX access_points_alias_fold ON access_points(alias_fold)`,
			`CREATE TABLE doors (
				id              INTEGER PRIMARY KEY AUTOINCREMENT,
				alias           TEXT NOT NULL DEFAULT '',
				alias_fold      TEXT NOT NULL DEFAULT '',
				description     TEXT NOT NULL DEFAULT '',
				access_point_id INTEGER UNIQUE REFERENCES access_points(id) ON DELETE SET NULL,
				version         INTEGER NOT NULL DEFAULT 1,
				created_at      DATETIME NOT NULL,
				updated_at      DATETIME NOT NULL
			)`,
			`CREATE INDEX doors_alias_fold ON doors(alias_fold)`,
			`CREATE TABLE zones (
				id          INTEGER PRIMARY KEY AUTOINCREMENT,
				alias       TEXT NOT NULL DEFAULT '',
				alias_fold  TEXT NOT NULL DEFAULT '',
				description TEXT NOT NULL DEFAULT '',
				type        INTEGER NOT NULL DEFAULT 1 CHECK (type IN (0, 1)),
				version     INTEGER NOT NULL DEFAULT 1,
				created_at  DATETIME NOT NULL,
				updated_at  DATETIME NOT NULL
			)`,
			`CREATE INDEX zones_alias_fold ON zones(alias_fold)`,
			`CREATE TABLE zone_children (
				parent_id INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
				child_id  INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
				PRIMARY KEY (parent_id, child_id)
			)`,
			`CREATE INDEX zone_children_child ON zone_children(child_id)`,
			`CREATE TABLE zone_doors (
				zone_id INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
				door_id INTEGER NOT NULL REFERENCES doors(id) ON DELETE CASCADE,
				PRIMARY KEY (zone_id, door_id)
			)`,
			`CREATE INDEX zone_doors_door ON zone_doors(door_id)`,
			// Schedules: timeframes as JSON, mappings as link tables that cascade from both ends.
			`CREATE TABLE schedules (
				id          INTEGER PRIMARY KEY AUTOINCREMENT,
				name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
				name_fold   TEXT NOT NULL,
				description TEXT NOT NULL DEFAULT '',
				timeframes  TEXT NOT NULL DEFAULT '[]',
				version     INTEGER NOT NULL DEFAULT 1,
				created_at  DATETIME NOT NULL,
				updated_at  DATETIME NOT NULL
			)`,
			`CREATE INDEX schedules_name_fold ON schedules(name_fold)`,
			`CREATE TABLE schedule_mappings (
				id          INTEGER PRIMARY KEY AUTOINCREMENT,
				schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
				alias       TEXT NOT NULL DEFAULT '',
				position    INTEGER NOT NULL DEFAULT 0,
				version     INTEGER NOT NULL DEFAULT 1
			)`,
			`CREATE INDEX schedule_mappings_schedule ON schedule_mappings(schedule_id)`,
			mappingLink("users", "user_id", "users"),
			`CREATE INDEX mapping_users_user ON mapping_users(user_id)`,
			mappingLink("groups", "group_id", "groups"),
			`CREATE INDEX mapping_groups_group ON mapping_groups(group_id)`,
			mappingLink("credentials", "credential_id", "credentials"),
			`CREATE INDEX mapping_credentials_credential ON mapping_credentials(credential_id)`,
			mappingLink("doors", "door_id", "doors"),
			`CREATE INDEX mapping_doors_door ON mapping_doors(door_id)`,
			mappingLink("zones", "zone_id", "zones"),
			`CREATE INDEX mapping_zones_zone ON mapping_zones(zone_id)`,
			// The append-only event log: audit trail and history of the live stream. No foreign
			// keys: the log outlives what it names.
			`CREATE TABLE events (
				seq         INTEGER PRIMARY KEY AUTOINCREMENT,
				time        DATETIME NOT NULL,
				topic       TEXT NOT NULL,
				kind        TEXT NOT NULL DEFAULT '',
				event_mask  INTEGER NOT NULL DEFAULT 0,
				author_id   INTEGER,
				author_name TEXT NOT NULL DEFAULT '',
				target_id   INTEGER,
				target2_id  INTEGER,
				user_id     INTEGER,
				door_id     INTEGER,
				description TEXT NOT NULL DEFAULT '',
				before      TEXT,
				after       TEXT,
				data        TEXT NOT NULL DEFAULT '{}'
			)`,
			`CREATE INDEX events_kind ON events(kind, seq)`,
			`CREATE INDEX events_time ON events(time)`,
			`CREATE INDEX events_user ON events(user_id, seq) WHERE user_id IS NOT NULL`,
			`CREATE INDEX events_door ON events(door_id, seq) WHERE door_id IS NOT NULL`,
			`CREATE INDEX events_author ON events(author_id, seq) WHERE author_id IS NOT NULL`,
			`CREATE TABLE event_counts (
				kind TEXT PRIMARY KEY,
				n    INTEGER NOT NULL
			)`,
		)},
		{ID: "0003_certificates", Migrate: sqlSteps(
			// Registered public keys (cert module). public_key is the DER SubjectPublicKeyInfo;
			// fingerprint its SHA-256 in hex, unique: one key belongs to one user. key_size is
			// the RSA modulus length in bytes (0 for other algorithms), so that a legacy proof
			// only tries the keys its signature length fits.
			`CREATE TABLE certificates (
				id            INTEGER PRIMARY KEY AUTOINCREMENT,
				user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				fingerprint   TEXT NOT NULL UNIQUE,
				algorithm     TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519', 'ecdsa-p256')),
				key_size      INTEGER NOT NULL DEFAULT 0,
				public_key    BLOB NOT NULL,
				nickname      TEXT NOT NULL DEFAULT '',
				email         TEXT NOT NULL DEFAULT '',
				registered_at DATETIME NOT NULL
			)`,
			`CREATE INDEX certificates_user ON certificates(user_id)`,
			`CREATE INDEX certificates_algorithm_size ON certificates(algorithm, key_size)`,
		)},
		{ID: "0004_refresh_tokens", Migrate: sqlSteps(
			// Refresh tokens of the token REST API (/0.1, access_type "offline"): one per user and
			// client id; only the SHA-256 of the token is stored.
			`CREATE TABLE refresh_tokens (
				id           TEXT PRIMARY KEY,
				hash         TEXT NOT NULL UNIQUE,
				user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				client_id    TEXT NOT NULL,
				created_at   DATETIME NOT NULL,
				last_used_at DATETIME NOT NULL,
				remote_addr  TEXT NOT NULL DEFAULT '',
				user_agent   TEXT NOT NULL DEFAULT '',
				UNIQUE (user_id, client_id)
			)`,
		)},
		{ID: "0005_login_hardening", Migrate: sqlSteps(
			// cred_gen is the user's credential generation: bumped by every password change,
			// disable and delete, and checked in the transaction that issues a login's token,
			// so a login racing a password change gets no token.
			`ALTER TABLE users ADD COLUMN cred_gen INTEGER NOT NULL DEFAULT 1`,
			// Login throttling state that survives a restart: the username+address pairs that
			// logged in (trusted during an attack on the username), and the failures of device
			// tokens (OWASP device cookies; the tokens themselves are signed, not stored).
			`CREATE TABLE login_trusted_addresses (
				user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				address TEXT NOT NULL,
				until   DATETIME NOT NULL,
				PRIMARY KEY (user_id, address)
			)`,
			`CREATE TABLE login_devices (
				id           TEXT PRIMARY KEY,
				user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
				failures     TEXT NOT NULL DEFAULT '[]',
				locked_until DATETIME,
				locks        INTEGER NOT NULL DEFAULT 0,
				updated_at   DATETIME NOT NULL
			)`,
			`CREATE INDEX login_devices_user ON login_devices(user_id)`,
		)},
		{ID: "0006_bounds_email", Migrate: uniqueEmails},
		{ID: "0010_hardware", Migrate: sqlSteps(
			// Hardware devices configured from Leosac's web GUI (modules/hardware): GPIO lines
			// of a Linux GPIO chip, LEDs and buzzers on a GPIO line, Wiegand readers on two GPIO
			// lines with an optional green LED and buzzer. One table, as Leosac's
			// HARDWARE_Device: ids are UUID strings and names are unique among all devices.
			// Columns that do not apply to a kind keep their defaults. A device that another
			// references may be deleted: the reference becomes NULL.
			`CREATE TABLE hardware_devices (
				id             TEXT PRIMARY KEY,
				kind           TEXT NOT NULL CHECK (kind IN ('gpio', 'led', 'buzzer', 'wiegand-reader')),
				name           TEXT NOT NULL UNIQUE,
				name_fold      TEXT NOT NULL,
				enabled        INTEGER NOT NULL DEFAULT 1,
				chip           TEXT NOT NULL DEFAULT '',
				line_offset    INTEGER NOT NULL DEFAULT 0 CHECK (line_offset >= 0),
				direction      INTEGER NOT NULL DEFAULT 0 CHECK (direction IN (0, 1)),
				active_low     INTEGER NOT NULL DEFAULT 0,
				default_value  INTEGER NOT NULL DEFAULT 0,
				interrupt_mode TEXT NOT NULL DEFAULT 'none',
				gpio_id        TEXT REFERENCES hardware_devices(id) ON DELETE SET NULL,
				blink_duration INTEGER NOT NULL DEFAULT 3000,
				blink_speed    INTEGER NOT NULL DEFAULT 1000,
				mode           TEXT NOT NULL DEFAULT 'SIMPLE_WIEGAND',
				gpio_high_id   TEXT REFERENCES hardware_devices(id) ON DELETE SET NULL,
				gpio_low_id    TEXT REFERENCES hardware_devices(id) ON DELETE SET NULL,
				green_led_id   TEXT REFERENCES hardware_devices(id) ON DELETE SET NULL,
				buzzer_id      TEXT REFERENCES hardware_devices(id) ON DELETE SET NULL,
				version        INTEGER NOT NULL DEFAULT 1,
				created_at     DATETIME NOT NULL,
				updated_at     DATETIME NOT NULL
			)`,
			`CREATE INDEX hardware_devices_kind ON hardware_devices(kind, id)`,
			`CREATE INDEX hardware_devices_name_fold ON hardware_devices(name_fold)`,
		)},
	}
}

// uniqueEmails makes login emails unique case-insensitively (issue 10, point 8): a user must
// not take another user's email by changing its case (the token API logs in by email, and an
// ambiguous email logs nobody in). Emails compare as COLLATE NOCASE does (ASCII letters fold),
// as the token API's login lookup does. Before the index is created, each set of existing
// duplicates keeps its email on the oldest account (lowest id, normally the one that had it
// first); the others get an empty email, a new version, and an audit entry ("user.updated",
// written by the system) that says why, so that an operator can see what changed and set
// another address.
func uniqueEmails(tx *gorm.DB) error {
	type dup struct {
		ID       int64
		Username string
		Email    string
		Rank     int
		Keeper   int64
	}
	var dups []dup
	if err := tx.Raw(`SELECT u.id, u.username, u.email, u.rank,
			(SELECT MIN(k.id) FROM users k WHERE k.email = u.email COLLATE NOCASE) AS keeper
		FROM users u
		WHERE u.email <> '' AND EXISTS (SELECT 1 FROM users o WHERE o.email = u.email COLLATE NOCASE AND o.id < u.id)
		ORDER BY u.id`).Scan(&dups).Error; err != nil {
		return fmt.Errorf("find duplicate emails: %w", err)
	}
	now := time.Now().UTC()
	for _, d := range dups {
		if err := tx.Exec(`UPDATE users SET email = '', version = version + 1, updated_at = ? WHERE id = ?`, now, d.ID).Error; err != nil {
			return fmt.Errorf("clear duplicate email of user %d: %w", d.ID, err)
		}
		before, _ := json.Marshal(map[string]any{"id": d.ID, "username": d.Username, "email": d.Email})
		after, _ := json.Marshal(map[string]any{"id": d.ID, "username": d.Username, "email": ""})
		data, _ := json.Marshal(map[string]any{"id": d.ID, "username": d.Username, "rank": d.Rank})
		desc := fmt.Sprintf("User %s (%d): email %q cleared by an upgrade: user %d has the same email (emails are unique regardless of case).",
			d.Username, d.ID, d.Email, d.Keeper)
		if err := tx.Exec(`INSERT INTO events (time, topic, kind, event_mask, target_id, user_id, description, before, after, data)
			VALUES (?, 'user.updated', 'audit-user-event', 8, ?, ?, ?, ?, ?, ?)`,
			now, d.ID, d.ID, desc, string(before), string(after), string(data)).Error; err != nil {
			return fmt.Errorf("audit the cleared email of user %d: %w", d.ID, err)
		}
		if err := tx.Exec(`INSERT INTO event_counts(kind, n) VALUES ('audit-user-event', 1)
			ON CONFLICT(kind) DO UPDATE SET n = n + 1`).Error; err != nil {
			return fmt.Errorf("count the audit entry of user %d: %w", d.ID, err)
		}
	}
	if err := tx.Exec(`CREATE UNIQUE INDEX users_email_nocase ON users(email COLLATE NOCASE) WHERE email <> ''`).Error; err != nil {
		return fmt.Errorf("create the unique index of emails: %w", err)
	}
	return nil
}

// mappingLink returns the DDL of the link table between schedule mappings and one kind of
// member; a row goes when either end is deleted.
func mappingLink(table, column, target string) string {
	return fmt.Sprintf(`CREATE TABLE mapping_%s (
		mapping_id INTEGER NOT NULL REFERENCES schedule_mappings(id) ON DELETE CASCADE,
		%s INTEGER NOT NULL REFERENCES %s(id) ON DELETE CASCADE,
		PRIMARY KEY (mapping_id, %s)
	)`, table, column, target, column)
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

// LatestSchema returns the ID of the newest migration this binary knows.
func LatestSchema() string {
	m := migrations()
	return m[len(m)-1].ID
}

// KnownSchema reports whether id is the ID of a migration this binary knows: a database whose
// schema version is unknown was written by a newer gatehouse.
func KnownSchema(id string) bool {
	for _, m := range migrations() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// checkSchemaKnown fails when the database's schema is newer than this binary (Open with
// NoMigrate).
func (d *DB) checkSchemaKnown(ctx context.Context) error {
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the schema version of %s: %w", d.Path, err)
	}
	if v != "" && !KnownSchema(v) {
		return fmt.Errorf("the database %s has schema %s, newer than this gatehouse knows (up to %s): use the gatehouse that wrote it", d.Path, v, LatestSchema())
	}
	return nil
}
