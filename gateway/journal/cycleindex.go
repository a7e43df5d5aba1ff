package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// The cycle index is what the console lists and filters cycle records by,
// without reading a single payload: one row per journaled cycle record,
// written in the same transaction as the record, plus the release
// decisions made on it. Both outlive retention pruning of the entries, as
// cycle_ids does: a list of ten years of cycles stays a list even when the
// full records were pruned after delivery.

// cycleIndexMigration creates the index and fills it from the cycle
// records already in the journal.
func cycleIndexMigration() migration {
	// unix ms of an RFC 3339 timestamp from a payload, as time.UnixMilli
	// gives it for the same instant.
	ms := func(path string) string {
		return `CAST(ROUND(unixepoch(json_extract(CAST(e.payload AS TEXT), '` + path + `'), 'subsec') * 1000) AS INTEGER)`
	}
	field := func(path string) string { return `json_extract(CAST(e.payload AS TEXT), '` + path + `')` }
	return migration{what: "cycle index and release decisions for the console", stmts: []string{
		`CREATE TABLE cycle_index (
			entry_id     INTEGER PRIMARY KEY,
			record_id    TEXT    NOT NULL UNIQUE,
			device       TEXT    NOT NULL,
			cycle        INTEGER NOT NULL,
			program      TEXT    NOT NULL,
			started_at   INTEGER NOT NULL,
			ended_at     INTEGER NOT NULL,
			result       TEXT    NOT NULL,
			verdict      TEXT    NOT NULL,
			disagreement INTEGER NOT NULL,
			complete     INTEGER NOT NULL,
			end_seen     INTEGER NOT NULL,
			revision     INTEGER NOT NULL,
			supersedes   TEXT    NOT NULL,
			seq          INTEGER NOT NULL,
			hash         TEXT    NOT NULL,
			release      TEXT    NOT NULL DEFAULT ''
		)`,
		// Newest first, by every filter the list offers: each index leads
		// with the filtered column and ends in the list's order, so a page
		// is an index range scan whatever the filter.
		`CREATE INDEX cycle_index_ended ON cycle_index (ended_at, entry_id)`,
		`CREATE INDEX cycle_index_device ON cycle_index (device, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_result ON cycle_index (result, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_verdict ON cycle_index (verdict, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_release ON cycle_index (release, ended_at, entry_id)`,
		// A sterilizer's records by result, verdict or release state: the
		// combined filter a person uses most, which either index alone
		// would answer by scanning all of one device's records.
		`CREATE INDEX cycle_index_device_result ON cycle_index (device, result, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_device_verdict ON cycle_index (device, verdict, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_device_release ON cycle_index (device, release, ended_at, entry_id)`,
		`CREATE INDEX cycle_index_supersedes ON cycle_index (supersedes) WHERE supersedes != ''`,
		`CREATE TABLE cycle_releases (
			event_id   TEXT    PRIMARY KEY,
			record_id  TEXT    NOT NULL,
			device     TEXT    NOT NULL,
			seq        INTEGER NOT NULL,
			hash       TEXT    NOT NULL,
			decision   TEXT    NOT NULL CHECK (decision IN ('released','rejected','quarantined')),
			operator   TEXT    NOT NULL,
			note       TEXT    NOT NULL,
			load_ref   TEXT    NOT NULL,
			supersedes TEXT    NOT NULL,
			confirmed  INTEGER NOT NULL,
			at         INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE INDEX cycle_releases_record ON cycle_releases (record_id, seq)`,
		`INSERT INTO cycle_index (entry_id, record_id, device, cycle, program, started_at, ended_at, result, verdict,
			disagreement, complete, end_seen, revision, supersedes, seq, hash)
		SELECT e.id, e.record_id, e.device, COALESCE(` + field("$.cycle") + `, 0), COALESCE(` + field("$.program") + `, ''),
			COALESCE(` + ms("$.started_at") + `, 0), COALESCE(` + ms("$.ended_at") + `, 0),
			COALESCE(` + field("$.result") + `, 'unknown'), COALESCE(` + field("$.verification.verdict") + `, ''),
			COALESCE(` + field("$.verification.agrees_with_device") + ` = 0, 0),
			COALESCE(` + field("$.complete") + `, 0), COALESCE(` + field("$.end_seen") + `, 0),
			COALESCE(` + field("$.revision") + `, 0), COALESCE(` + field("$.supersedes") + `, ''), e.seq, e.hash
		FROM entries e WHERE e.kind = 'cycle' AND json_valid(CAST(e.payload AS TEXT))`,
	}}
}

// indexedEntry is what an index hook learns about the entry just added.
type indexedEntry struct {
	entryID  int64 // the outbox position; 0 for an entry buffered for a multi-row insert
	recordID string
	seq      uint64
	hash     string
	at       time.Time
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// indexCycle returns the hook that adds rec to cycle_index.
func indexCycle(rec *protocol.CycleRecord) func(context.Context, *sql.Conn, indexedEntry) error {
	return func(ctx context.Context, conn *sql.Conn, e indexedEntry) error {
		verdict, disagreement := "", false
		if v := rec.Verification; v != nil {
			verdict = v.Verdict
			disagreement = v.AgreesWithDevice != nil && !*v.AgreesWithDevice
		}
		_, err := conn.ExecContext(ctx, `INSERT INTO cycle_index (entry_id, record_id, device, cycle, program, started_at, ended_at,
			result, verdict, disagreement, complete, end_seen, revision, supersedes, seq, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			e.entryID, e.recordID, rec.Device, rec.Cycle, rec.Program, rec.StartedAt.UnixMilli(), rec.EndedAt.UnixMilli(),
			string(rec.Result), verdict, boolInt(disagreement), boolInt(rec.Complete), boolInt(rec.EndSeen),
			rec.Revision, rec.Supersedes, e.seq, e.hash)
		if err != nil {
			return fmt.Errorf("journal: index cycle record %s: %w", e.recordID, err)
		}
		return nil
	}
}

// CycleSummary is one row of the cycle index: what the console's list
// shows of a cycle record.
type CycleSummary struct {
	EntryID   int64
	RecordID  string
	Device    string
	Cycle     uint64
	Program   string
	StartedAt time.Time
	EndedAt   time.Time
	Result    protocol.Result
	// Verdict is sterigate's (verification.verdict); empty when the record
	// carries no verification.
	Verdict      string
	Disagreement bool
	Complete     bool
	EndSeen      bool
	Revision     int
	Supersedes   string
	Seq          uint64
	// Hash is the hex SHA-256 of the journaled payload.
	Hash string
	// Release is the latest release decision; empty when none was made.
	Release string
}

// ReleaseNone filters the records on which no release decision was made.
const ReleaseNone = "none"

// VerdictNone filters the records that carry no verification.
const VerdictNone = "none"

// CycleFilter selects cycle records. Zero fields do not filter.
type CycleFilter struct {
	Device string
	// From and To bound ended_at: From <= ended_at < To.
	From, To time.Time
	Result   protocol.Result
	// Verdict is a verification verdict, or VerdictNone.
	Verdict string
	// Release is a decision, or ReleaseNone.
	Release string
	// Before and After page: records listed after (older than) Before, or
	// before (newer than) After. At most one is set.
	Before, After *CycleCursor
	// Limit is the page size (default 50).
	Limit int
}

// CycleCursor is a position in the newest-first list.
type CycleCursor struct {
	EndedAt int64 // unix ms
	EntryID int64
}

// Cursor is the list position of s.
func (s CycleSummary) Cursor() CycleCursor {
	return CycleCursor{EndedAt: s.EndedAt.UnixMilli(), EntryID: s.EntryID}
}

// CyclePage is one page of the list, newest first.
type CyclePage struct {
	Cycles []CycleSummary
	// Older and Newer say whether more records match beyond the page.
	Older, Newer bool
}

const cycleSummaryColumns = `entry_id, record_id, device, cycle, program, started_at, ended_at, result, verdict,
	disagreement, complete, end_seen, revision, supersedes, seq, hash, release`

func scanCycleSummary(sc interface{ Scan(...any) error }) (CycleSummary, error) {
	var s CycleSummary
	var started, ended int64
	var result string
	var disagreement, complete, endSeen int
	err := sc.Scan(&s.EntryID, &s.RecordID, &s.Device, &s.Cycle, &s.Program, &started, &ended, &result, &s.Verdict,
		&disagreement, &complete, &endSeen, &s.Revision, &s.Supersedes, &s.Seq, &s.Hash, &s.Release)
	s.StartedAt, s.EndedAt = time.UnixMilli(started).UTC(), time.UnixMilli(ended).UTC()
	s.Result = protocol.Result(result)
	s.Disagreement, s.Complete, s.EndSeen = disagreement != 0, complete != 0, endSeen != 0
	return s, err
}

// Cycles returns one page of the cycle records that match f, newest
// (latest end) first.
func (j *Journal) Cycles(ctx context.Context, f CycleFilter) (CyclePage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("device", f.Device)
	eq("result", string(f.Result))
	switch f.Verdict {
	case VerdictNone:
		where = append(where, "verdict = ''")
	default:
		eq("verdict", f.Verdict)
	}
	switch f.Release {
	case ReleaseNone:
		where = append(where, "release = ''")
	default:
		eq("release", f.Release)
	}
	if !f.From.IsZero() {
		where = append(where, "ended_at >= ?")
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		where = append(where, "ended_at < ?")
		args = append(args, f.To.UnixMilli())
	}
	order := "DESC"
	switch {
	case f.Before != nil:
		where = append(where, "(ended_at, entry_id) < (?, ?)")
		args = append(args, f.Before.EndedAt, f.Before.EntryID)
	case f.After != nil:
		where = append(where, "(ended_at, entry_id) > (?, ?)")
		args = append(args, f.After.EndedAt, f.After.EntryID)
		order = "ASC"
	}
	q := `SELECT ` + cycleSummaryColumns + ` FROM cycle_index`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY ended_at ` + order + `, entry_id ` + order + ` LIMIT ?`
	args = append(args, limit+1)
	rows, err := j.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return CyclePage{}, fmt.Errorf("journal: list cycle records: %w", err)
	}
	defer rows.Close()
	var page CyclePage
	for rows.Next() {
		s, err := scanCycleSummary(rows)
		if err != nil {
			return CyclePage{}, fmt.Errorf("journal: list cycle records: %w", err)
		}
		page.Cycles = append(page.Cycles, s)
	}
	if err := rows.Err(); err != nil {
		return CyclePage{}, fmt.Errorf("journal: list cycle records: %w", err)
	}
	more := len(page.Cycles) > limit
	if more {
		page.Cycles = page.Cycles[:limit]
	}
	switch {
	case f.After != nil:
		// Read oldest first to find the page; shown newest first.
		for i, k := 0, len(page.Cycles)-1; i < k; i, k = i+1, k-1 {
			page.Cycles[i], page.Cycles[k] = page.Cycles[k], page.Cycles[i]
		}
		page.Newer, page.Older = more, true
	case f.Before != nil:
		page.Older, page.Newer = more, true
	default:
		page.Older = more
	}
	return page, nil
}

// CycleDevices returns every device that has a cycle record in the index.
func (j *Journal) CycleDevices(ctx context.Context) ([]string, error) {
	// A skip-scan over the device index: one seek per device, not a read
	// of every row.
	rows, err := j.rdb.QueryContext(ctx, `WITH RECURSIVE d(device) AS (
		SELECT MIN(device) FROM cycle_index
		UNION ALL
		SELECT (SELECT MIN(device) FROM cycle_index WHERE device > d.device) FROM d WHERE d.device IS NOT NULL)
		SELECT device FROM d WHERE device IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("journal: list devices with cycle records: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("journal: list devices with cycle records: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ErrNoRecord is returned for a cycle record id the journal never held.
var ErrNoRecord = errors.New("no such cycle record")

// StoredCycle is one cycle record as the journal holds it.
type StoredCycle struct {
	CycleSummary
	// Payload is the exact journaled JSON; nil when the entry was pruned
	// after delivery (retention), leaving only its summary.
	Payload     []byte
	JournaledAt time.Time
	// DeliveredAt is when the broker acknowledged it; zero while pending.
	DeliveredAt time.Time
	// SupersededBy lists the ids of later revisions that replace this one.
	SupersededBy []string
}

// CycleRecord returns the cycle record with id (an error wrapping ErrNoRecord
// when there is none).
func (j *Journal) CycleRecord(ctx context.Context, id string) (*StoredCycle, error) {
	row := j.rdb.QueryRowContext(ctx, `SELECT `+cycleSummaryColumns+` FROM cycle_index WHERE record_id = ?`, id)
	s, err := scanCycleSummary(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("journal: cycle record %q: %w", id, ErrNoRecord)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: read cycle record %q: %w", id, err)
	}
	out := &StoredCycle{CycleSummary: s}
	var created int64
	var delivered sql.NullInt64
	err = j.rdb.QueryRowContext(ctx, `SELECT payload, created_at, delivered_at FROM entries WHERE id = ?`, s.EntryID).Scan(&out.Payload, &created, &delivered)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		out.Payload = nil
	case err != nil:
		return nil, fmt.Errorf("journal: read cycle record %q: %w", id, err)
	default:
		out.JournaledAt = time.UnixMilli(created).UTC()
		if delivered.Valid {
			out.DeliveredAt = time.UnixMilli(delivered.Int64).UTC()
		}
	}
	rows, err := j.rdb.QueryContext(ctx, `SELECT record_id FROM cycle_index WHERE supersedes = ? ORDER BY revision`, id)
	if err != nil {
		return nil, fmt.Errorf("journal: read revisions of %q: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("journal: read revisions of %q: %w", id, err)
		}
		out.SupersededBy = append(out.SupersededBy, r)
	}
	return out, rows.Err()
}
