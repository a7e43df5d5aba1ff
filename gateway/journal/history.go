package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

var _ protocol.CycleHistory = (*Journal)(nil)

// LatestCycleRecord returns the newest record journaled for a device cycle:
// the one with the highest revision among "<cycle id>" and
// "<cycle id>:r<n>" (protocol.CycleHistory). It reads cycle_ids, which
// outlives retention pruning: a record whose entry was pruned comes back
// with its identity only (ID, Device, Cycle, CounterEpoch, Revision) and
// Result unknown.
func (j *Journal) LatestCycleRecord(ctx context.Context, device string, counterEpoch uint32, cycle uint64) (*protocol.CycleRecord, error) {
	base := protocol.CycleIDInEpoch(j.opts.Site, device, counterEpoch, cycle)
	// Revision ids sort between base+":r" and base+":s"; the range excludes
	// other cycles whose number starts with this one's (31 and 310).
	rows, err := j.rdb.QueryContext(ctx, `SELECT c.record_id, e.payload FROM cycle_ids c LEFT JOIN entries e ON e.id = c.entry_id
		WHERE c.record_id = ? OR (c.record_id > ? AND c.record_id < ?)`, base, base+":r", base+":s")
	if err != nil {
		return nil, fmt.Errorf("journal: look up records of %s: %w", base, err)
	}
	defer rows.Close()
	var latest *protocol.CycleRecord
	var latestPayload []byte
	for rows.Next() {
		var id string
		var payload []byte
		if err := rows.Scan(&id, &payload); err != nil {
			return nil, fmt.Errorf("journal: look up records of %s: %w", base, err)
		}
		rev := 1
		if id != base {
			n, err := strconv.Atoi(strings.TrimPrefix(id, base+":r"))
			if err != nil || n < 2 {
				continue // not a revision id of this cycle
			}
			rev = n
		}
		if latest != nil && max(latest.Revision, 1) >= rev {
			continue
		}
		latest = &protocol.CycleRecord{ID: id, Device: device, Cycle: cycle, CounterEpoch: counterEpoch, Result: protocol.ResultUnknown}
		if rev > 1 {
			latest.Revision = rev
		}
		latestPayload = payload
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: look up records of %s: %w", base, err)
	}
	if latest == nil || latestPayload == nil {
		return latest, nil
	}
	var rec protocol.CycleRecord
	if err := json.Unmarshal(latestPayload, &rec); err != nil {
		return nil, fmt.Errorf("journal: record %s is not valid JSON: %w", latest.ID, err)
	}
	return &rec, nil
}
