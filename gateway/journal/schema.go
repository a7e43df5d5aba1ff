package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migration brings a journal from one schema_version to the next.
type migration struct {
	what  string   // for the error message
	stmts []string // run in one transaction
}

// migrations returns every schema change in order: the i-th brings a
// journal from schema_version i to i+1. Append new ones at the end; never
// change one that has shipped, journals in the field have run it.
func migrations() []migration {
	return []migration{
		{what: "entries, chain heads, statuses, driver state", stmts: []string{
			`CREATE TABLE entries (
				id           INTEGER PRIMARY KEY AUTOINCREMENT,
				device       TEXT    NOT NULL,
				kind         TEXT    NOT NULL CHECK (kind IN ('cycle','telemetry','event')),
				seq          INTEGER NOT NULL,
				record_id    TEXT    NOT NULL,
				urgent       INTEGER NOT NULL,
				payload      BLOB    NOT NULL,
				hash         TEXT    NOT NULL,
				created_at   INTEGER NOT NULL,
				delivered_at INTEGER
			)`,
			// No (device, seq) index: the single writer assigns seq from
			// device_heads, and maintaining one more b-tree cost a third of
			// the group-commit throughput (it dirties a page per device per
			// commit). Entries() sorts instead; it is for tools and tests.
			`CREATE INDEX entries_pending ON entries (urgent, id) WHERE delivered_at IS NULL`,
			`CREATE INDEX entries_delivered ON entries (delivered_at) WHERE delivered_at IS NOT NULL`,
			// cycle_ids outlives retention pruning so a re-observed cycle is
			// never journaled twice.
			`CREATE TABLE cycle_ids (record_id TEXT PRIMARY KEY, entry_id INTEGER NOT NULL, journaled_at INTEGER NOT NULL) WITHOUT ROWID`,
			// device_heads outlives pruning too: it carries the chain on.
			`CREATE TABLE device_heads (device TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID`,
			`CREATE TABLE device_status (device TEXT PRIMARY KEY, status BLOB NOT NULL) WITHOUT ROWID`,
			`CREATE TABLE device_state (device TEXT PRIMARY KEY, state BLOB NOT NULL, saved_at INTEGER NOT NULL) WITHOUT ROWID`,
		}},
		cycleIndexMigration(),
		{what: "signatures, signing keys, signed chain heads", stmts: []string{
			// A cycle record's or event's signature over its hash (NULL
			// for telemetry, which checkpoints cover; docs/evidence.md).
			`ALTER TABLE entries ADD COLUMN key_id TEXT`,
			`ALTER TABLE entries ADD COLUMN signature BLOB`,
			// Every key that ever signed in this journal, in the order
			// they took over; the last one is the current key.
			`CREATE TABLE signing_keys (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				key_id     TEXT    NOT NULL UNIQUE,
				algorithm  TEXT    NOT NULL,
				public_key BLOB    NOT NULL,
				created_at INTEGER NOT NULL,
				previous   TEXT    NOT NULL DEFAULT ''
			)`,
			// The last signed seq of each device, so a restarted gateway
			// knows which chains end in entries no signature covers yet.
			`CREATE TABLE signed_heads (device TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID`,
		}},
		{what: "journal id, confirmed delivery, damaged predecessors", stmts: []string{
			// The journal's id goes into every event and telemetry id, so a
			// journal created after another was lost never re-issues an id
			// that carried other content. 40 random bits.
			`CREATE TABLE journal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`,
			`INSERT INTO journal_meta (key, value) VALUES ('journal_id', lower(hex(randomblob(5))))`,
			// Marks the file as a sterigate journal ("STGJ"), so a foreign
			// SQLite file is not taken for one.
			`PRAGMA application_id = 1398032202`,
			// confirmed_at: the entry came back on the gateway's own
			// subscription (cycle records and events only). Entries
			// delivered before confirmation existed count as confirmed.
			`ALTER TABLE entries ADD COLUMN confirmed_at INTEGER`,
			`UPDATE entries SET confirmed_at = delivered_at WHERE urgent = 1 AND delivered_at IS NOT NULL`,
			`CREATE INDEX entries_unconfirmed ON entries (id) WHERE urgent = 1 AND confirmed_at IS NULL`,
			// replay: a salvaged entry, published with the replay marker.
			`ALTER TABLE entries ADD COLUMN replay INTEGER NOT NULL DEFAULT 0`,
			// Journals this one replaced because they were damaged, kept
			// aside for 'sterigate journal salvage'.
			`CREATE TABLE damaged_journals (path TEXT PRIMARY KEY, journal_id TEXT NOT NULL, reason TEXT NOT NULL, moved_at INTEGER NOT NULL, salvaged_at INTEGER, salvage_report TEXT) WITHOUT ROWID`,
		}},
		{what: "archived entries (receipts)", stmts: []string{
			// archived_at: an archive's receipt said the entry is stored in
			// its database (docs/fleet.md). Indexed by id, not (device,
			// seq): new entries land at the index's right edge, and the set
			// it holds is small while receipts come. It is one more b-tree
			// per commit: measured on the 2-vCPU test VM, group commit went
			// from about 33,000 to 26,000 appends/s on a busy machine, and
			// is 32,300 on a quiet one with the commit grouping of the
			// performance work (BenchmarkDurableAppendsGroupCommit):
			// thousands of times what a site's sterilizers produce.
			`ALTER TABLE entries ADD COLUMN archived_at INTEGER`,
			`CREATE INDEX entries_unarchived ON entries (id) WHERE archived_at IS NULL`,
		}},
	}
}

// migrate brings the journal on conn to the newest schema_version, one
// migration per transaction, so a crash in between leaves a journal that
// the next start carries on from.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var version int
	err := conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		version = 0
	} else if err != nil {
		return fmt.Errorf("read schema_version: %w", err)
	}
	steps := migrations()
	if version > len(steps) {
		return fmt.Errorf("schema_version %d is newer than this sterigate understands (%d): upgrade sterigate", version, len(steps))
	}
	for v := version; v < len(steps); v++ {
		if err := apply(ctx, conn, steps[v], v+1); err != nil {
			return fmt.Errorf("migrate to schema_version %d (%s): %w", v+1, steps[v].what, err)
		}
	}
	return nil
}

func apply(ctx context.Context, conn *sql.Conn, m migration, to int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	for _, s := range m.stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, to); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
