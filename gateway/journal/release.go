package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// ReleaseDecision is a person's decision on the load of one cycle record,
// as the console's release form sends it.
type ReleaseDecision struct {
	RecordID string
	Decision string // protocol.DecisionReleased, DecisionRejected or DecisionQuarantined
	Operator string
	Note     string
	LoadRef  string
	// Supersedes is the id of the release event this decision replaces;
	// it must be the record's latest decision (empty: the record has none).
	Supersedes string
	// Confirmed: the operator confirmed releasing a load whose record is
	// not conforming.
	Confirmed bool
	At        time.Time // default: now
}

// ErrReleaseConflict is returned when the decision a release supersedes
// is no longer the record's latest (someone decided in the meantime), or
// the record has a decision the release does not name.
var ErrReleaseConflict = errors.New("the record's latest release decision changed in the meantime")

// ErrNotConforming is returned for a release of a load whose record is
// not conforming without Confirmed and a note.
var ErrNotConforming = errors.New("the record is not conforming: releasing its load needs an explicit confirmation and a note")

// NotConforming reports why releasing the load of s needs an explicit
// confirmation: sterigate's verdict is not pass, the device's result is
// not passed, or the gateway did not see the whole cycle. Empty when it
// does not.
func (s CycleSummary) NotConforming() []string {
	var why []string
	if s.Verdict != protocol.VerdictPass {
		why = append(why, "verdict")
	}
	if s.Result != protocol.ResultPassed {
		why = append(why, "result")
	}
	if !s.Complete {
		why = append(why, "incomplete")
	}
	return why
}

// Release journals a release decision as a release event on the chain of
// the record's device, and returns the event once it is committed with
// full durability (the publisher sends it on the event topic like any
// other). While the disk refuses writes it is refused, never held in
// memory: a person is told "saved" only for what is on disk.
func (j *Journal) Release(ctx context.Context, d ReleaseDecision) (protocol.Event, error) {
	if !slices.Contains(protocol.Decisions(), d.Decision) {
		return protocol.Event{}, fmt.Errorf("journal: release decision %q is not one of released, rejected, quarantined", d.Decision)
	}
	if d.Operator == "" {
		return protocol.Event{}, errors.New("journal: release decision without an operator")
	}
	rec, err := j.CycleRecord(ctx, d.RecordID)
	if err != nil {
		return protocol.Event{}, err
	}
	if d.Decision == protocol.DecisionReleased && len(rec.NotConforming()) > 0 && (!d.Confirmed || d.Note == "") {
		return protocol.Event{}, fmt.Errorf("journal: release of %s: %w", d.RecordID, ErrNotConforming)
	}
	if d.At.IsZero() {
		d.At = j.opts.Now()
	}
	ev := protocol.Event{
		Device: rec.Device, At: d.At.UTC(), Kind: protocol.EventRelease, Cycle: rec.Cycle,
		RecordID: rec.RecordID, RecordHash: rec.Hash, Decision: d.Decision, Operator: d.Operator,
		Note: d.Note, LoadRef: d.LoadRef, Supersedes: d.Supersedes, Confirmed: d.Confirmed,
	}
	r := j.eventRequest(ev, false)
	r.durableOnly = true
	r.check = func(ctx context.Context, conn *sql.Conn) error {
		var latest string
		err := conn.QueryRowContext(ctx, `SELECT event_id FROM cycle_releases WHERE record_id = ? ORDER BY seq DESC LIMIT 1`, d.RecordID).Scan(&latest)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("journal: read the release decisions of %s: %w", d.RecordID, err)
		}
		if latest != d.Supersedes {
			return fmt.Errorf("journal: release of %s supersedes %q but its latest decision is %q: %w", d.RecordID, d.Supersedes, latest, ErrReleaseConflict)
		}
		return nil
	}
	var saved protocol.Event
	r.indexed = func(ctx context.Context, conn *sql.Conn, e indexedEntry) error {
		if _, err := conn.ExecContext(ctx, `INSERT INTO cycle_releases (event_id, record_id, device, seq, hash, decision, operator, note, load_ref, supersedes, confirmed, at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`, e.recordID, d.RecordID, ev.Device, e.seq, e.hash, d.Decision, d.Operator, d.Note, d.LoadRef,
			d.Supersedes, boolInt(d.Confirmed), ev.At.UnixMilli()); err != nil {
			return fmt.Errorf("journal: save release decision on %s: %w", d.RecordID, err)
		}
		if _, err := conn.ExecContext(ctx, `UPDATE cycle_index SET release = ? WHERE record_id = ?`, d.Decision, d.RecordID); err != nil {
			return fmt.Errorf("journal: save release decision on %s: %w", d.RecordID, err)
		}
		saved = ev
		saved.Schema, saved.Gateway, saved.Site = protocol.EventSchema, j.opts.Gateway, j.opts.Site
		saved.ID, saved.Seq = e.recordID, e.seq
		return nil
	}
	if err := j.submit(ctx, r); err != nil {
		return protocol.Event{}, err
	}
	return saved, nil
}

// StoredRelease is one release decision as the journal keeps it.
type StoredRelease struct {
	EventID    string
	RecordID   string
	Seq        uint64
	Hash       string
	Decision   string
	Operator   string
	Note       string
	LoadRef    string
	Supersedes string
	Confirmed  bool
	At         time.Time
}

// Releases returns every release decision made on a record, oldest first:
// the last one is in force, the others were superseded.
func (j *Journal) Releases(ctx context.Context, recordID string) ([]StoredRelease, error) {
	rows, err := j.rdb.QueryContext(ctx, `SELECT event_id, record_id, seq, hash, decision, operator, note, load_ref, supersedes, confirmed, at
		FROM cycle_releases WHERE record_id = ? ORDER BY seq`, recordID)
	if err != nil {
		return nil, fmt.Errorf("journal: read release decisions of %s: %w", recordID, err)
	}
	defer rows.Close()
	var out []StoredRelease
	for rows.Next() {
		var r StoredRelease
		var confirmed int
		var at int64
		if err := rows.Scan(&r.EventID, &r.RecordID, &r.Seq, &r.Hash, &r.Decision, &r.Operator, &r.Note, &r.LoadRef, &r.Supersedes, &confirmed, &at); err != nil {
			return nil, fmt.Errorf("journal: read release decisions of %s: %w", recordID, err)
		}
		r.Confirmed, r.At = confirmed != 0, time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
