package journal

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// Lane is one of the outbox's delivery queues. Cycle records and events
// (urgent) always go before telemetry, so after an outage they are not
// stuck behind hours of samples.
type Lane int

const (
	// LaneUrgent holds cycle records and events.
	LaneUrgent Lane = iota
	// LaneTelemetry holds telemetry batches.
	LaneTelemetry
)

const entryColumns = `id, device, kind, seq, record_id, payload, hash, created_at, delivered_at, confirmed_at, replay, key_id, signature`

// readBudget bounds the payload bytes one read of the outbox returns (at
// least one entry always comes back). A backlog of cycle records of a few
// hundred kilobytes each would otherwise put a whole read batch of them in
// memory at once.
const readBudget = 1 << 20

func scanEntries(rows *sql.Rows) ([]Entry, error) {
	return scanEntriesWithin(rows, -1)
}

// scanEntriesWithin reads rows until they are exhausted or, when budget is
// not negative, their payloads add up to budget bytes.
func scanEntriesWithin(rows *sql.Rows, budget int) ([]Entry, error) {
	defer rows.Close()
	var out []Entry
	for (budget != 0 || len(out) == 0) && rows.Next() {
		e, err := scanOne(rows)
		if err != nil {
			return nil, fmt.Errorf("journal: read entries: %w", err)
		}
		out = append(out, e)
		if budget >= 0 {
			budget = max(0, budget-len(e.Payload))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: read entries: %w", err)
	}
	return out, nil
}

// Pending returns up to limit undelivered entries: cycle records and
// events first, then telemetry, each in outbox order (which is seq order
// per device).
func (j *Journal) Pending(ctx context.Context, limit int) ([]Entry, error) {
	urgent, err := j.pendingInLane(ctx, LaneUrgent, 0, 0, limit, -1)
	if err != nil || len(urgent) >= limit {
		return urgent, err
	}
	tele, err := j.pendingInLane(ctx, LaneTelemetry, 0, 0, limit-len(urgent), -1)
	return append(urgent, tele...), err
}

// PendingInLane returns up to limit undelivered entries of lane with
// after < ID (and ID <= upTo when upTo > 0), in outbox order. The publisher
// walks each lane with a cursor instead of re-reading what it already has
// in flight. It returns fewer than limit entries (at least one) once their
// payloads reach about 1 MiB, so a read of large cycle records stays small.
func (j *Journal) PendingInLane(ctx context.Context, lane Lane, after, upTo int64, limit int) ([]Entry, error) {
	return j.pendingInLane(ctx, lane, after, upTo, limit, readBudget)
}

// pendingInLane is PendingInLane with a payload budget in bytes (-1: none).
func (j *Journal) pendingInLane(ctx context.Context, lane Lane, after, upTo int64, limit, budget int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	urgent := 0
	if lane == LaneUrgent {
		urgent = 1
	}
	q := `SELECT ` + entryColumns + ` FROM entries WHERE delivered_at IS NULL AND urgent = ? AND id > ?`
	args := []any{urgent, after}
	if upTo > 0 {
		q += ` AND id <= ?`
		args = append(args, upTo)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := j.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: read pending entries: %w", err)
	}
	return scanEntriesWithin(rows, budget)
}

// LastID returns the highest outbox position in use (0 when empty).
func (j *Journal) LastID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := j.rdb.QueryRowContext(ctx, `SELECT MAX(id) FROM entries`).Scan(&id); err != nil {
		return 0, fmt.Errorf("journal: read last id: %w", err)
	}
	return id.Int64, nil
}

// MarkDelivered records that the broker acknowledged the entries. Callers
// batch ids; unknown or already delivered ids are ignored.
func (j *Journal) MarkDelivered(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	return j.submit(ctx, &request{kind: reqMarkDelivered, ids: append([]int64(nil), ids...)})
}

// DeviceStatuses returns every device's committed status, ordered by
// device. Each call returns its own copies.
func (j *Journal) DeviceStatuses(ctx context.Context) ([]protocol.DeviceStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal: read device statuses: %w", err)
	}
	j.statusesMu.Lock()
	out := make([]protocol.DeviceStatus, 0, len(j.committedStatuses))
	for _, st := range j.committedStatuses {
		if st.LastCycle != nil {
			lc := *st.LastCycle
			st.LastCycle = &lc
		}
		out = append(out, st)
	}
	j.statusesMu.Unlock()
	slices.SortFunc(out, func(a, b protocol.DeviceStatus) int { return strings.Compare(a.Device, b.Device) })
	return out, nil
}

// setCommittedStatuses is how the writer hands over the statuses it
// committed (all of them after loading, the changed ones after a commit).
func (j *Journal) setCommittedStatuses(sts map[string]protocol.DeviceStatus, all bool) {
	j.statusesMu.Lock()
	defer j.statusesMu.Unlock()
	if all || j.committedStatuses == nil {
		j.committedStatuses = make(map[string]protocol.DeviceStatus, len(sts))
	}
	for d, st := range sts {
		if st.LastCycle != nil {
			lc := *st.LastCycle
			st.LastCycle = &lc
		}
		j.committedStatuses[d] = st
	}
}

// Entries returns every entry the journal still holds (delivered or not)
// of device (all devices when empty) and kind (all kinds when empty), by
// device then seq. It is for tests, tools and audits, not the hot path.
func (j *Journal) Entries(ctx context.Context, device string, kind Kind) ([]Entry, error) {
	q := `SELECT ` + entryColumns + ` FROM entries WHERE (? = '' OR device = ?) AND (? = '' OR kind = ?) ORDER BY device, seq`
	rows, err := j.rdb.QueryContext(ctx, q, device, device, string(kind), string(kind))
	if err != nil {
		return nil, fmt.Errorf("journal: read entries: %w", err)
	}
	return scanEntries(rows)
}

// Stats is a snapshot for metrics and the console. Reading it costs
// about the number of undelivered entries, never the size of the history
// kept for retention.
type Stats struct {
	PendingUrgent    int64 // undelivered cycle records and events
	PendingTelemetry int64
	// OldestPending is when the oldest undelivered entry was journaled
	// (zero when everything is delivered).
	OldestPending time.Time
	UsedBytes     int64 // live pages
	FileBytes     int64 // database file plus WAL on disk
	QuotaBytes    int64
	Alarms        []string
	// HeldEssential and HeldTelemetry count what is held in memory, not
	// written, while the disk refuses writes: cycle records, events and
	// other writes; telemetry batches. They are lost if the gateway stops
	// before the disk takes them.
	HeldEssential, HeldTelemetry int64
	// Unconfirmed counts cycle records and events the broker acknowledged
	// that have not come back on the gateway's own subscription within
	// the confirmation time (see UnconfirmedBefore).
	Unconfirmed int64
}

// Stats reads the journal's counters.
func (j *Journal) Stats(ctx context.Context) (Stats, error) {
	// A salvage by another process clears journal_damaged: seen here at
	// the next scrape rather than at the next maintenance.
	if slices.Contains(j.Alarms(), AlarmDamaged) {
		if err := j.refreshDamagedAlarm(ctx); err != nil {
			return Stats{}, fmt.Errorf("journal: read stats: %w", err)
		}
	}
	s := Stats{QuotaBytes: j.opts.QuotaBytes, Alarms: j.Alarms(),
		HeldEssential: j.memEssential.Load(), HeldTelemetry: j.memTelemetry.Load()}
	// The oldest undelivered entry is the first of either lane in outbox
	// order: two lookups in the pending index instead of a scan of every
	// undelivered row for MIN(created_at).
	var oldest sql.NullInt64
	err := j.rdb.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM entries WHERE delivered_at IS NULL AND urgent = 1),
		(SELECT COUNT(*) FROM entries WHERE delivered_at IS NULL AND urgent = 0),
		(SELECT MIN(t) FROM (
			SELECT * FROM (SELECT created_at AS t FROM entries WHERE delivered_at IS NULL AND urgent = 1 ORDER BY id LIMIT 1)
			UNION ALL
			SELECT * FROM (SELECT created_at AS t FROM entries WHERE delivered_at IS NULL AND urgent = 0 ORDER BY id LIMIT 1)))`).Scan(&s.PendingUrgent, &s.PendingTelemetry, &oldest)
	if err != nil {
		return s, fmt.Errorf("journal: read stats: %w", err)
	}
	if oldest.Valid {
		s.OldestPending = time.UnixMilli(oldest.Int64).UTC()
	}
	if s.Unconfirmed, err = j.CountUnconfirmed(ctx, time.Time{}); err != nil {
		return s, err
	}
	var pages, free, size int64
	row := j.rdb.QueryRowContext(ctx, `SELECT * FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`)
	if err := row.Scan(&pages, &free, &size); err != nil {
		return s, fmt.Errorf("journal: read page counts: %w", err)
	}
	s.UsedBytes = (pages - free) * size
	for _, p := range []string{j.path, j.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			s.FileBytes += fi.Size()
		}
	}
	return s, nil
}

// DeliveredKept counts the delivered entries kept for local history. It
// reads every one of them: for tools and tests, not for every scrape.
func (j *Journal) DeliveredKept(ctx context.Context) (int64, error) {
	var n int64
	if err := j.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM entries WHERE delivered_at IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("journal: count delivered entries: %w", err)
	}
	return n, nil
}

// Maintain runs retention pruning, the quota and incremental vacuum now
// instead of at the next MaintenanceInterval tick.
func (j *Journal) Maintain(ctx context.Context) error {
	return j.submit(ctx, &request{kind: reqMaintain})
}
