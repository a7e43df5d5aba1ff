package journal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SalvageReport says what Salvage recovered.
type SalvageReport struct {
	// Old is the damaged journal, OldID its journal id ("" when unreadable).
	Old, OldID string
	// LogRepaired is set when the damaged journal's write-ahead log had
	// frames SQLite would not replay, and they were read through a
	// repaired copy.
	LogRepaired bool
	// Read counts the entries read; Salvaged those copied into the new
	// journal (Pending of them to be published, the rest were delivered
	// and confirmed before the damage and are kept as history).
	Read, Salvaged, Pending int
	// AlreadyThere counts entries the new journal already held (a second
	// salvage, or a cycle record journaled again after the break).
	AlreadyThere int
	// Damaged lists the entries that no longer verify; they are not
	// copied. Unreadable counts outbox positions SQLite could not read.
	Damaged    []string
	Unreadable int
}

func (r SalvageReport) String() string {
	s := fmt.Sprintf("read %d entries from %s (journal %s): %d salvaged (%d to publish, %d kept as delivered history), %d already in the new journal, %d damaged, %d unreadable positions",
		r.Read, r.Old, orUnknown(r.OldID), r.Salvaged, r.Pending, r.Salvaged-r.Pending, r.AlreadyThere, len(r.Damaged), r.Unreadable)
	if r.LogRepaired {
		s += "; the write-ahead log was read past its damaged frame"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Salvage copies every entry of the damaged journal at oldPath that still
// verifies (its payload hashes to its stored hash and names its row's id
// and seq) into the journal at newPath. The damaged files are not
// changed: they are read through a copy, whose write-ahead log is
// repaired so that the commits SQLite would drop after a damaged frame are
// read too. Salvaged entries keep their id, seq and payload (their chain
// is the damaged journal's); those the damaged journal had not delivered
// and confirmed are published again, marked as replays. Salvage may run
// while a gateway uses newPath: it writes in short transactions.
func Salvage(ctx context.Context, newPath, oldPath string) (SalvageReport, error) {
	rep := SalvageReport{Old: oldPath}
	dst, err := sql.Open("sqlite", writerDSN(newPath))
	if err != nil {
		return rep, err
	}
	defer dst.Close()
	dst.SetMaxOpenConns(1)
	var newID string
	if err := dst.QueryRowContext(ctx, `SELECT value FROM journal_meta WHERE key = 'journal_id'`).Scan(&newID); err != nil {
		return rep, fmt.Errorf("%s is not a journal this sterigate can write: %w", newPath, err)
	}

	work, err := os.MkdirTemp(filepath.Dir(oldPath), filepath.Base(oldPath)+".salvage-")
	if err != nil {
		// The damaged journal's directory may be read-only: work next to
		// the new journal instead.
		if work, err = os.MkdirTemp(filepath.Dir(newPath), "salvage-"); err != nil {
			return rep, err
		}
	}
	defer os.RemoveAll(work)
	copyPath := filepath.Join(work, "old.db")
	if err := copyFileTo(oldPath, copyPath); err != nil {
		return rep, fmt.Errorf("copy %s: %w", oldPath, err)
	}
	if fileExists(oldPath + "-wal") {
		repaired, err := repairWAL(oldPath+"-wal", copyPath+"-wal")
		if err != nil {
			return rep, fmt.Errorf("copy %s-wal: %w", oldPath, err)
		}
		rep.LogRepaired = repaired
	}
	src, err := sql.Open("sqlite", "file:"+(&url.URL{Path: copyPath}).EscapedPath()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return rep, err
	}
	defer src.Close()
	src.SetMaxOpenConns(1)
	src.QueryRowContext(ctx, `SELECT value FROM journal_meta WHERE key = 'journal_id'`).Scan(&rep.OldID)

	seen, err := salvagedIDs(ctx, dst)
	if err != nil {
		return rep, err
	}
	var batch []Entry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, there, pending, err := insertSalvaged(ctx, dst, batch, seen)
		rep.Salvaged += n
		rep.AlreadyThere += there
		rep.Pending += pending
		batch = batch[:0]
		return err
	}
	err = readAllEntries(ctx, src, func(e Entry) error {
		rep.Read++
		if why := verifyStandalone(&e); why != "" {
			rep.Damaged = append(rep.Damaged, why)
			return nil
		}
		batch = append(batch, e)
		if len(batch) >= 200 {
			return flush()
		}
		return nil
	}, &rep.Unreadable)
	if err == nil {
		err = flush()
	}
	if err != nil {
		return rep, err
	}
	abs, _ := filepath.Abs(oldPath)
	_, err = dst.ExecContext(ctx, `UPDATE damaged_journals SET salvaged_at = ?, salvage_report = ? WHERE salvaged_at IS NULL AND (path = ? OR path = ? OR journal_id = ?)`,
		time.Now().UnixMilli(), rep.String(), oldPath, abs, rep.OldID)
	return rep, err
}

// writerDSN opens a journal for writing from another process than its
// gateway: it waits for the gateway's commits.
func writerDSN(path string) string {
	q := url.Values{}
	q.Add("mode", "rw") // never create it
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(FULL)")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func copyFileTo(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// repairWAL copies a write-ahead log, rewriting the checksums of every
// frame of its current generation (and the header when it is damaged), so
// SQLite replays all of them: a frame that failed its checksum only
// because a byte of it flipped no longer hides the commits after it. The
// damaged frame's page is replayed as it is; what it breaks, the entry
// checks find. It reports whether anything needed repairing.
func repairWAL(from, to string) (bool, error) {
	b, err := os.ReadFile(from)
	if err != nil {
		return false, err
	}
	if len(b) < walHeaderSize {
		return false, os.WriteFile(to, b, 0o600)
	}
	repaired := false
	magic := binary.BigEndian.Uint32(b)
	var order binary.ByteOrder = binary.LittleEndian
	if magic == walMagicBE {
		order = binary.BigEndian
	}
	pageSize := int(binary.BigEndian.Uint32(b[8:]))
	c0, c1 := walChecksum(order, 0, 0, b[:24])
	headerOK := (magic == walMagicLE || magic == walMagicBE) && c0 == binary.BigEndian.Uint32(b[24:]) && c1 == binary.BigEndian.Uint32(b[28:]) &&
		pageSize >= 512 && pageSize <= 65536 && pageSize&(pageSize-1) == 0
	if !headerOK {
		repaired = true
		pageSize = guessWALPageSize(b)
		if pageSize == 0 {
			return true, os.WriteFile(to, nil, 0o600) // nothing to replay
		}
		order = binary.LittleEndian
		binary.BigEndian.PutUint32(b[0:], walMagicLE)
		binary.BigEndian.PutUint32(b[4:], 3007000)
		binary.BigEndian.PutUint32(b[8:], uint32(pageSize))
		copy(b[16:24], b[walHeaderSize+8:walHeaderSize+16]) // the first frame's salts
		c0, c1 = walChecksum(order, 0, 0, b[:24])
		binary.BigEndian.PutUint32(b[24:], c0)
		binary.BigEndian.PutUint32(b[28:], c1)
	}
	frameSize := walFrameHeaderSize + pageSize
	end := walHeaderSize
	for off := walHeaderSize; off+frameSize <= len(b); off += frameSize {
		fr := b[off : off+frameSize]
		if string(fr[8:16]) != string(b[16:24]) {
			break // an older generation: SQLite never replays it
		}
		c0, c1 = walChecksum(order, c0, c1, fr[:8])
		c0, c1 = walChecksum(order, c0, c1, fr[walFrameHeaderSize:])
		if binary.BigEndian.Uint32(fr[16:]) != c0 || binary.BigEndian.Uint32(fr[20:]) != c1 {
			repaired = true
			binary.BigEndian.PutUint32(fr[16:], c0)
			binary.BigEndian.PutUint32(fr[20:], c1)
		}
		end = off + frameSize
	}
	return repaired, os.WriteFile(to, b[:end], 0o600)
}

// guessWALPageSize finds the page size whose frames carry the same salts
// one after the other (0: none does).
func guessWALPageSize(b []byte) int {
	for _, ps := range []int{4096, 16384, 1024, 2048, 8192, 32768, 65536, 512} {
		fs := walFrameHeaderSize + ps
		if len(b) < walHeaderSize+2*fs {
			continue
		}
		a := b[walHeaderSize+8 : walHeaderSize+16]
		if string(a) == string(b[walHeaderSize+fs+8:walHeaderSize+fs+16]) {
			return ps
		}
	}
	return 0
}

// readAllEntries calls fn for every entry SQLite can read, in outbox
// order. A damaged page makes a range read fail: the positions behind it
// are then read one by one, and those that cannot be read are counted.
func readAllEntries(ctx context.Context, db *sql.DB, fn func(Entry) error, unreadable *int) error {
	var maxID sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(id) FROM entries`).Scan(&maxID); err != nil {
		// The table's last page is damaged: the id counter says how far
		// positions go.
		if err2 := db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'entries'`).Scan(&maxID); err2 != nil {
			return fmt.Errorf("the entries cannot be read at all: %w", errors.Join(err, err2))
		}
	}
	if !maxID.Valid {
		return nil // no entries
	}
	cols := entryColumnsOf(ctx, db)
	pos := int64(0)
	for pos < maxID.Int64 {
		rows, err := db.QueryContext(ctx, `SELECT `+cols+` FROM entries WHERE id > ? ORDER BY id LIMIT 200`, pos)
		var es []Entry
		if err == nil {
			es, err = scanEntriesTolerant(rows)
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
			pos = e.ID
		}
		if err == nil {
			if len(es) < 200 {
				return nil
			}
			continue
		}
		// Step over the damaged part one position at a time.
		for pos++; pos <= maxID.Int64; pos++ {
			rows, err := db.QueryContext(ctx, `SELECT `+cols+` FROM entries WHERE id = ?`, pos)
			if err != nil {
				*unreadable++
				continue
			}
			one, err := scanEntriesTolerant(rows)
			if err != nil {
				*unreadable++
				continue
			}
			if len(one) == 1 {
				if err := fn(one[0]); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// entryColumnsOf is entryColumns for a journal that may predate some of
// them (a journal damaged before it was ever migrated).
func entryColumnsOf(ctx context.Context, db *sql.DB) string {
	have := map[string]bool{}
	if rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info('entries')`); err == nil {
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				have[n] = true
			}
		}
		rows.Close()
	}
	cols := strings.Split(entryColumns, ", ")
	for i, c := range cols {
		if len(have) > 0 && !have[c] {
			cols[i] = "NULL"
			if c == "replay" {
				cols[i] = "0"
			}
		}
	}
	return strings.Join(cols, ", ")
}

// scanEntriesTolerant is scanEntries that keeps the rows read before an
// error.
func scanEntriesTolerant(rows *sql.Rows) ([]Entry, error) {
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		es, err := scanOne(rows)
		if err != nil {
			return out, err
		}
		out = append(out, es)
	}
	return out, rows.Err()
}

func scanOne(rows *sql.Rows) (Entry, error) {
	var e Entry
	var kind string
	var created int64
	var delivered, confirmed sql.NullInt64
	var keyID sql.NullString
	var sig []byte
	if err := rows.Scan(&e.ID, &e.Device, &kind, &e.Seq, &e.RecordID, &e.Payload, &e.Hash, &created, &delivered, &confirmed, &e.Replay, &keyID, &sig); err != nil {
		return e, err
	}
	e.Signature = signatureOf(keyID, sig)
	e.Kind = Kind(kind)
	e.CreatedAt = time.UnixMilli(created).UTC()
	if delivered.Valid {
		e.DeliveredAt = time.UnixMilli(delivered.Int64).UTC()
	}
	if confirmed.Valid {
		e.ConfirmedAt = time.UnixMilli(confirmed.Int64).UTC()
	}
	return e, nil
}

// verifyStandalone checks an entry on its own: its payload hashes to its
// stored hash and names its row's id and seq. It returns why it fails.
func verifyStandalone(e *Entry) string {
	sum := sha256.Sum256(e.Payload)
	if hex.EncodeToString(sum[:]) != e.Hash {
		return fmt.Sprintf("%s seq %d (%s %s): its payload no longer hashes to its stored hash", e.Device, e.Seq, e.Kind, e.RecordID)
	}
	f, ok := chainFieldsOf(e.Payload)
	if !ok || f.id != e.RecordID || f.seq != e.Seq {
		return fmt.Sprintf("%s seq %d (%s %s): its payload does not name its row's id and seq", e.Device, e.Seq, e.Kind, e.RecordID)
	}
	switch e.Kind {
	case KindCycle, KindEvent, KindTelemetry:
		return ""
	}
	return fmt.Sprintf("%s seq %d: unknown kind %q", e.Device, e.Seq, e.Kind)
}

// salvagedIDs returns the ids of entries salvaged into the journal before,
// so a second salvage does not copy them twice.
func salvagedIDs(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT record_id FROM entries WHERE replay = 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		seen[id] = true
	}
	return seen, rows.Err()
}

// insertSalvaged copies one batch into the new journal in one short
// transaction. A cycle record whose id the new journal journaled again
// after the break is left out: consumers de-duplicate by id, and two
// different payloads must never share one.
func insertSalvaged(ctx context.Context, db *sql.DB, batch []Entry, seen map[string]bool) (salvaged, there, pending int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer tx.Rollback()
	for _, e := range batch {
		if seen[e.RecordID] {
			there++
			continue
		}
		if e.Kind == KindCycle {
			var entry int64
			err := tx.QueryRowContext(ctx, `SELECT entry_id FROM cycle_ids WHERE record_id = ?`, e.RecordID).Scan(&entry)
			if err == nil && entry != 0 {
				there++
				continue
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return salvaged, there, pending, err
			}
		}
		urgent := 0
		if e.Kind != KindTelemetry {
			urgent = 1
		}
		var delivered, confirmed any
		done := !e.DeliveredAt.IsZero() && (urgent == 0 || !e.ConfirmedAt.IsZero())
		if done {
			delivered, confirmed = e.DeliveredAt.UnixMilli(), nullTime(e.ConfirmedAt)
		} else {
			pending++
		}
		// The signature is over the entry's hash, which salvage keeps:
		// it goes along, so the replay is as verifiable as the original.
		var keyID any
		var sig []byte
		if e.Signature != nil {
			keyID, sig = e.Signature.Key, e.Signature.Ed25519
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO entries (device, kind, seq, record_id, urgent, payload, hash, created_at, delivered_at, confirmed_at, replay, key_id, signature) VALUES (?,?,?,?,?,?,?,?,?,?,1,?,?)`,
			e.Device, string(e.Kind), e.Seq, e.RecordID, urgent, e.Payload, e.Hash, e.CreatedAt.UnixMilli(), delivered, confirmed, keyID, sig)
		if err != nil {
			return salvaged, there, pending, err
		}
		if e.Kind == KindCycle {
			id, _ := res.LastInsertId()
			if _, err := tx.ExecContext(ctx, `INSERT INTO cycle_ids (record_id, entry_id, journaled_at) VALUES (?,?,?) ON CONFLICT (record_id) DO UPDATE SET entry_id = excluded.entry_id`,
				e.RecordID, id, e.CreatedAt.UnixMilli()); err != nil {
				return salvaged, there, pending, err
			}
		}
		seen[e.RecordID] = true
		salvaged++
	}
	return salvaged, there, pending, tx.Commit()
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}
