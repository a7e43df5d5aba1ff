package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Connect opens one connection to the archive's database for a query; it
// changes nothing (no migration).
func Connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("postgres: the connection URL cannot be parsed")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return conn, nil
}

// Query selects cycle records.
type Query struct {
	Site   string
	Device string // "" for every device of the site
	// From and To bound started_at (From included, To excluded); zero
	// leaves that side open.
	From, To time.Time
	// Verdict is sterigate's verdict, or "none" for records without one.
	Verdict string
}

// CycleRow is one stored cycle record.
type CycleRow struct {
	ID, Device, Program, DeviceResult string
	Cycle                             uint64
	StartedAt                         *time.Time
	Verdict                           *string
	Complete                          bool
	// Record is the record as stored (jsonb, so keys in PostgreSQL's
	// order), with the archive's received_at added as stored_at.
	Record []byte
}

// QueryCycles calls each for every record q selects, oldest first.
func QueryCycles(ctx context.Context, conn *pgx.Conn, q Query, each func(CycleRow) error) error {
	where := []string{"site = $1"}
	args := []any{q.Site}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Device != "" {
		add("device = $%d", q.Device)
	}
	if !q.From.IsZero() {
		add("started_at >= $%d", q.From)
	}
	if !q.To.IsZero() {
		add("started_at < $%d", q.To)
	}
	switch q.Verdict {
	case "":
	case "none":
		where = append(where, "verdict IS NULL")
	default:
		add("verdict = $%d", q.Verdict)
	}
	rows, err := conn.Query(ctx, `SELECT id, device, cycle, program, device_result, started_at, verdict, complete,
		(record || jsonb_build_object('stored_at', received_at))::text
		FROM cycle_records WHERE `+strings.Join(where, " AND ")+` ORDER BY started_at, device, id`, args...)
	if err != nil {
		return fmt.Errorf("query cycle records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CycleRow
		var cycle int64
		var rec string
		if err := rows.Scan(&c.ID, &c.Device, &cycle, &c.Program, &c.DeviceResult, &c.StartedAt, &c.Verdict, &c.Complete, &rec); err != nil {
			return err
		}
		c.Cycle, c.Record = uint64(cycle), []byte(rec)
		if err := each(c); err != nil {
			return err
		}
	}
	return rows.Err()
}
