package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Archived. An archive ('sterigate archive') tells the gateway, with a
// receipt, the seq up to which every entry of a device is stored in its
// database. Entries up to it are marked archived_at; the age of the oldest
// entry not archived says how far behind the archive is, and with
// KeepUnarchived nothing unarchived is pruned.

// MarkArchived marks archived every entry of each device up to its seq.
func (j *Journal) MarkArchived(ctx context.Context, through map[string]uint64) error {
	if len(through) == 0 {
		return nil
	}
	cp := make(map[string]uint64, len(through))
	for d, s := range through {
		cp[d] = s
	}
	return j.submit(ctx, &request{kind: reqMarkArchived, archivedThrough: cp})
}

// OldestUnarchived returns when the oldest entry not yet archived was
// journaled; the zero time when every entry is archived.
func (j *Journal) OldestUnarchived(ctx context.Context) (time.Time, error) {
	var created int64
	err := j.rdb.QueryRowContext(ctx, `SELECT created_at FROM entries WHERE archived_at IS NULL ORDER BY id LIMIT 1`).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("journal: read the oldest unarchived entry: %w", err)
	}
	return time.UnixMilli(created), nil
}

// UnarchivedAfter returns up to limit entries of any kind after outbox
// position after that were delivered before t and are not archived yet,
// in outbox order (at least one, about 1 MiB of payload at most).
func (j *Journal) UnarchivedAfter(ctx context.Context, after int64, t time.Time, limit int) ([]Entry, error) {
	rows, err := j.rdb.QueryContext(ctx, `SELECT `+entryColumns+` FROM entries
		WHERE archived_at IS NULL AND id > ? AND delivered_at IS NOT NULL AND delivered_at < ? ORDER BY id LIMIT ?`, after, t.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("journal: read unarchived entries: %w", err)
	}
	return scanEntriesWithin(rows, readBudget)
}
