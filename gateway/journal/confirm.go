package journal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Delivered and confirmed. A PUBACK (MQTT 3.1.1, QoS 1) says the broker
// took responsibility for a message, nothing more: a broker whose ACL
// denies the topic acknowledges and drops it, and a broker killed before
// it saved its queues forgets it. The publisher therefore also subscribes
// to its own cycle and event topics; an entry that comes back byte for
// byte is confirmed (confirmed_at). Delivered cycle records and events
// that are not confirmed are published again, and are never pruned.

func confirmSQL(n int) string {
	return `UPDATE entries SET confirmed_at = ?1, delivered_at = coalesce(delivered_at, ?1) WHERE confirmed_at IS NULL AND id IN (?` +
		strings.Repeat(",?", n-1) + `)`
}

// MarkConfirmed records that the entries came back, byte for byte, on the
// gateway's own subscription. An entry confirmed is delivered too.
func (j *Journal) MarkConfirmed(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	return j.submit(ctx, &request{kind: reqMarkDelivered, confirm: true, ids: append([]int64(nil), ids...)})
}

// UnconfirmedAfter returns up to limit cycle records and events after
// outbox position after that the broker acknowledged before t and that
// have not come back since, in outbox order (at least one, and about 1 MiB
// of payload at most).
func (j *Journal) UnconfirmedAfter(ctx context.Context, after int64, t time.Time, limit int) ([]Entry, error) {
	rows, err := j.rdb.QueryContext(ctx, `SELECT `+entryColumns+` FROM entries
		WHERE urgent = 1 AND confirmed_at IS NULL AND id > ? AND delivered_at IS NOT NULL AND delivered_at < ? ORDER BY id LIMIT ?`, after, t.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("journal: read unconfirmed entries: %w", err)
	}
	return scanEntriesWithin(rows, readBudget)
}

// CountUnconfirmed counts the cycle records and events acknowledged by the
// broker before t (all of them when t is zero) that have not come back.
func (j *Journal) CountUnconfirmed(ctx context.Context, t time.Time) (int64, error) {
	limit := int64(1) << 62
	if !t.IsZero() {
		limit = t.UnixMilli()
	}
	var n sql.NullInt64
	if err := j.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM entries WHERE urgent = 1 AND confirmed_at IS NULL AND delivered_at IS NOT NULL AND delivered_at < ?`, limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("journal: count unconfirmed entries: %w", err)
	}
	return n.Int64, nil
}
