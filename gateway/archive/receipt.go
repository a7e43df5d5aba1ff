package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// Receipt reads the high-water marks of a gateway's devices.
func (s *Store) Receipt(ctx context.Context, g GatewayRef, archiveID string) (protocol.Receipt, error) {
	r := protocol.Receipt{Schema: protocol.ReceiptSchema, Archive: archiveID, At: time.Now().UTC(), Devices: map[string]uint64{}}
	rows, err := s.pool.Query(ctx, `SELECT device, stored_through FROM devices WHERE site = $1 AND gateway = $2`, g.Site, g.Gateway)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var st int64
		if err := rows.Scan(&d, &st); err != nil {
			return r, err
		}
		r.Devices[d] = uint64(st)
	}
	return r, rows.Err()
}

// SweepGaps records, as open gaps, the first hole of each device that
// stayed open longer than after (measured from the arrival of the entry
// after it: entries may overtake each other, cycle records go before
// telemetry), and returns the alarms of those not recorded before.
func (s *Store) SweepGaps(ctx context.Context, archiveID string, after time.Duration) ([]Alarm, error) {
	now := time.Now().UTC()
	rows, err := s.pool.Query(ctx, `
		SELECT d.site, d.device, d.gateway, d.stored_through, n.seq
		FROM devices d
		JOIN LATERAL (SELECT seq, received_at FROM chain c WHERE c.site = d.site AND c.device = d.device AND c.seq > d.stored_through
		              ORDER BY seq LIMIT 1) n ON true
		WHERE n.seq > d.stored_through + 1 AND n.received_at < $1`, now.Add(-after))
	if err != nil {
		return nil, fmt.Errorf("sweep gaps: %w", err)
	}
	var holes []Alarm
	for rows.Next() {
		var a Alarm
		var st, next int64
		if err := rows.Scan(&a.Site, &a.Device, &a.Gateway, &st, &next); err != nil {
			rows.Close()
			return nil, err
		}
		a.FromSeq, a.ToSeq, a.Code = uint64(st+1), uint64(next-1), evidence.CodeMissing
		a.Text = fmt.Sprintf("seq %d–%d did not arrive within %s of seq %d, and no gap or journal_break event explains them", st+1, next-1, after, next)
		holes = append(holes, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var alarms []Alarm
	for _, a := range holes {
		// Under the device's lock, and only if its mark has not moved: a
		// batch filling the hole right now must not leave it open.
		inserted := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var st int64
			if err := tx.QueryRow(ctx, `SELECT stored_through FROM devices WHERE site = $1 AND device = $2 FOR UPDATE`, a.Site, a.Device).Scan(&st); err != nil {
				return err
			}
			if uint64(st+1) != a.FromSeq {
				return nil
			}
			tag, err := tx.Exec(ctx, `INSERT INTO chain_problems (site, device, gateway, from_seq, to_seq, code, state, detail, detected_at)
				VALUES ($1, $2, $3, $4, $5, 'missing', 'open', $6, $7) ON CONFLICT DO NOTHING`,
				a.Site, a.Device, a.Gateway, int64(a.FromSeq), int64(a.ToSeq), a.Text, now)
			inserted = err == nil && tag.RowsAffected() > 0
			return err
		})
		if err != nil {
			return alarms, fmt.Errorf("record gap: %w", err)
		}
		if inserted {
			a.Schema, a.Archive, a.At = AlarmSchema, archiveID, now
			alarms = append(alarms, a)
		}
	}
	return alarms, nil
}
