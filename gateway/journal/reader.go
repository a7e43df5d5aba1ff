package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/sterigate/sterigate/protocol/evidence"
)

// Reader reads a journal file and never writes to it: 'sterigate verify',
// 'export' and 'key show' use it, also while a gateway runs. It reads in
// short chunks, each its own read transaction, so it never holds the
// journal's WAL back for long.
type Reader struct {
	db      *sql.DB
	path    string
	signing bool // the file has the signature columns and key table
	replay  bool // the file has the replay column (salvaged entries)
	// cols selects entryColumns from this file, NULL for those it predates.
	cols string
}

// readChunk is how many entries one read transaction of a Reader takes.
const readChunk = 1000

// OpenReader opens the journal at path read-only. It fails when the file
// does not exist or is not a sterigate journal.
func OpenReader(path string) (*Reader, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	r := &Reader{db: db, path: path}
	ctx := context.Background()
	var version int
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal %s: not a sterigate journal (no schema_version): %w", path, err)
	}
	if version > len(migrations()) {
		db.Close()
		return nil, fmt.Errorf("journal %s: schema_version %d is newer than this sterigate understands (%d): upgrade sterigate", path, version, len(migrations()))
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info('entries')`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			r.signing = r.signing || name == "signature"
			r.replay = r.replay || name == "replay"
		}
	}
	rows.Close()
	r.cols = entryColumnsOf(ctx, db)
	return r, nil
}

// Close closes the reader.
func (r *Reader) Close() error { return r.db.Close() }

// SigningKeys returns the keys the journal records, oldest first (none for
// a journal from before signing).
func (r *Reader) SigningKeys(ctx context.Context) ([]evidence.PublicKey, error) {
	if !r.signing {
		return nil, nil
	}
	return readSigningKeys(ctx, r.db)
}

// Heads returns the seq each device's chain reached (device_heads).
func (r *Reader) Heads(ctx context.Context) (map[string]uint64, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT device, seq FROM device_heads`)
	if err != nil {
		return nil, fmt.Errorf("journal %s: read device_heads: %w", r.path, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var d string
		var seq uint64
		if err := rows.Scan(&d, &seq); err != nil {
			return nil, fmt.Errorf("journal %s: read device_heads: %w", r.path, err)
		}
		out[d] = seq
	}
	return out, rows.Err()
}

// Filter selects entries for Reader.Scan; zero fields select everything.
type Filter struct {
	Device string
	Kind   Kind
	// From and To bound when entries were journaled (To excluded).
	From, To time.Time
}

// ErrStop ends a Scan early without an error.
var ErrStop = errors.New("stop scanning")

// Scan calls fn for every entry f selects, in the order they were
// journaled (seq order within a device). Entries salvaged from a damaged
// journal (replays) come first: they were copied in after the new journal
// began, but their seqs come before its journal_break.
func (r *Reader) Scan(ctx context.Context, f Filter, fn func(Entry) error) error {
	conds := []string{""}
	if r.replay {
		conds = []string{` AND replay = 1`, ` AND replay = 0`}
	}
	for _, cond := range conds {
		if err := r.scan(ctx, f, cond, fn); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// scan is Scan over the entries cond selects; it returns ErrStop when fn
// stopped it.
func (r *Reader) scan(ctx context.Context, f Filter, cond string, fn func(Entry) error) error {
	q := `SELECT ` + r.cols + ` FROM entries WHERE id > ?` + cond
	var args []any
	if f.Device != "" {
		q += ` AND device = ?`
		args = append(args, f.Device)
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, string(f.Kind))
	}
	if !f.From.IsZero() {
		q += ` AND created_at >= ?`
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		q += ` AND created_at < ?`
		args = append(args, f.To.UnixMilli())
	}
	q += ` ORDER BY id LIMIT ?`
	var after int64
	for {
		rows, err := r.db.QueryContext(ctx, q, append(append([]any{after}, args...), readChunk)...)
		if err != nil {
			return fmt.Errorf("journal %s: read entries: %w", r.path, err)
		}
		es, err := scanEntries(rows)
		if err != nil {
			return fmt.Errorf("journal %s: %w", r.path, err)
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(es) < readChunk {
			return nil
		}
		after = es[len(es)-1].ID
	}
}
