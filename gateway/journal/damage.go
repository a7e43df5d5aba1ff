package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// AlarmDamaged is the gateway alarm raised while a damaged journal that
// was replaced has not been salvaged.
const AlarmDamaged = "journal_damaged"

// applicationID marks a SQLite file as a sterigate journal ("STGJ").
const applicationID = 0x5354474a

// UnusableError says the file at a journal's path is not a journal: it is
// empty or foreign. Open refuses it unless Options.StartFresh is set.
type UnusableError struct {
	Path string
	Why  string
}

func (e *UnusableError) Error() string {
	return fmt.Sprintf("%s is not a sterigate journal (%s); check gateway.data_dir, then move the file away or run 'sterigate journal start-fresh --journal %s', which keeps it aside and starts a new journal", e.Path, e.Why, e.Path)
}

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// replacement is a damaged journal moved aside, which the new journal at
// the same path replaces.
type replacement struct {
	oldPath string // where the damaged journal now is
	reason  string
}

// prepare makes path ready to be opened: it creates a missing journal,
// refuses (or, with StartFresh, replaces) a file that is not a journal,
// checks an existing journal and replaces it when it is damaged. It
// returns what was replaced, if anything.
func prepare(ctx context.Context, path string, opts Options, log *slog.Logger) (*replacement, error) {
	if err := finishInterruptedMove(path); err != nil {
		return nil, err
	}
	damage := opts.ReplaceDamaged
	if damage == "" {
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, createJournal(ctx, path)
		case err != nil:
			return nil, err
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file", path)
		}
		kind, why, err := inspectFile(path, fi.Size())
		if err != nil {
			return nil, err
		}
		switch kind {
		case fileForeign:
			if !opts.StartFresh {
				return nil, &UnusableError{Path: path, Why: why}
			}
			moved, err := moveAside(path, "unusable", opts.Now())
			if err != nil {
				return nil, err
			}
			log.Warn("journal: the file was not a journal; moved aside and a new journal started, as asked", "why", why, "kept_as", moved)
			return nil, createJournal(ctx, path)
		case fileDamaged:
			damage = why
		default:
			damage, err = startupCheck(ctx, path)
			var unusable *UnusableError
			if errors.As(err, &unusable) && opts.StartFresh {
				moved, err := moveAside(path, "unusable", opts.Now())
				if err != nil {
					return nil, err
				}
				log.Warn("journal: the file was not a journal; moved aside and a new journal started, as asked", "why", unusable.Why, "kept_as", moved)
				return nil, createJournal(ctx, path)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if damage == "" {
		return nil, nil
	}
	moved, err := moveAside(path, "damaged", opts.Now())
	if err != nil {
		return nil, fmt.Errorf("damaged (%s), and it cannot be moved aside: %w", damage, err)
	}
	log.Error("journal damaged: moved aside and kept; a new journal continues every device's sequence", "damage", damage, "kept_as", moved,
		"salvage", fmt.Sprintf("sterigate journal salvage --journal %s %s", path, moved))
	if err := createJournal(ctx, path); err != nil {
		return nil, err
	}
	return &replacement{oldPath: moved, reason: damage}, nil
}

type fileKind int

const (
	fileJournal fileKind = iota
	fileForeign
	fileDamaged
)

// inspectFile tells a journal from a file that is not one, by its first
// page, without SQLite.
func inspectFile(path string, size int64) (fileKind, string, error) {
	if size == 0 {
		return fileForeign, "the file is empty (0 bytes)", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fileDamaged, fmt.Sprintf("its first page cannot be read: %v", err), nil
	}
	head = head[:n]
	if !bytes.HasPrefix(head, sqliteMagic) {
		// A zeroed or overwritten header on a file whose first page still
		// holds the journal's schema is a damaged journal, not a foreign
		// file.
		if bytes.Contains(head, []byte("CREATE TABLE entries")) && bytes.Contains(head, []byte("device_heads")) {
			return fileDamaged, "its SQLite header is overwritten", nil
		}
		return fileForeign, "it is not a SQLite database", nil
	}
	if len(head) < 100 {
		return fileDamaged, fmt.Sprintf("it is cut short (%d bytes)", size), nil
	}
	switch app := uint32(head[68])<<24 | uint32(head[69])<<16 | uint32(head[70])<<8 | uint32(head[71]); app {
	case applicationID:
		return fileJournal, "", nil
	case 0:
		// Journals made before the application id was set; the start-up
		// check looks for the journal's tables.
		return fileJournal, "", nil
	default:
		return fileForeign, fmt.Sprintf("a SQLite database of another application (application_id %#x)", app), nil
	}
}

// startupCheck checks a journal before anything writes to it: the
// write-ahead log first (SQLite would silently drop the commits after a bad
// frame), then SQLite's quick_check. It returns what is damaged, or "".
func startupCheck(ctx context.Context, path string) (string, error) {
	scan, err := scanWAL(path + "-wal")
	if err != nil {
		return fmt.Sprintf("its write-ahead log cannot be read: %v", err), nil
	}
	if scan.Damaged() {
		return scan.String(), nil
	}
	// quick_check reads the whole file in b-tree order; read it once in
	// file order first, which the kernel's read-ahead makes several times
	// faster on a cold cache.
	if err := readThrough(path); err != nil {
		return fmt.Sprintf("the file cannot be read: %v", err), nil
	}
	db, err := sql.Open("sqlite", readOnlyDSN(path))
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	problems, err := quickCheck(ctx, db, "quick_check")
	if err != nil {
		if isDamageError(err) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("check: %w", err)
	}
	if len(problems) > 0 {
		return "quick_check: " + strings.Join(problems, "; "), nil
	}
	// A SQLite file without the journal's schema_version is not a journal
	// (not damage: Open refuses it unless told to start fresh).
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&tables); err != nil {
		if isDamageError(err) {
			return err.Error(), nil
		}
		return "", err
	}
	if tables == 0 {
		return "", &UnusableError{Path: path, Why: "a SQLite database without the journal's tables"}
	}
	return "", nil
}

// quickCheck runs PRAGMA quick_check or integrity_check and returns the
// problems it lists (none: the file is whole).
func quickCheck(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma+"(20)")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			out = append(out, line)
		}
	}
	return out, rows.Err()
}

// readThrough reads the file sequentially, so a later random-order scan
// finds it in the page cache; a read error is damage.
func readThrough(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		_, err := f.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readOnlyDSN opens a journal for reading only: SQLite never writes the
// database or its WAL through it (it may build the -shm index).
func readOnlyDSN(path string) string {
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// isDamageError reports whether err says the database file is damaged
// (rather than busy, missing or not permitted).
func isDamageError(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FORMAT:
			return true
		}
	}
	return false
}

// isCorrupt reports whether err, from a running journal, says its file
// is damaged.
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// damagedName is where moveAside puts a journal: next to it, named after
// the reason and the time, e.g. journal.damaged-20260301T101500Z.db.
func damagedName(path, label string, at time.Time) string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if ext == "" {
		ext = ".db"
	}
	name := fmt.Sprintf("%s.%s-%s", stem, label, at.UTC().Format("20060102T150405Z"))
	candidate := filepath.Join(dir, name+ext)
	for i := 2; fileExists(candidate) || fileExists(candidate+"-wal"); i++ {
		candidate = filepath.Join(dir, fmt.Sprintf("%s-%d%s", name, i, ext))
	}
	return candidate
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// moveAside renames the journal and its -wal and -shm files together, and
// returns the new path. The -wal goes first: a journal whose log had moved
// but not itself is found by finishInterruptedMove; the other way round, a
// new journal at path would replay the old log.
func moveAside(path, label string, at time.Time) (string, error) {
	moved := damagedName(path, label, at)
	for _, suffix := range []string{"-shm", "-wal", ""} {
		err := os.Rename(path+suffix, moved+suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("move %s aside: %w", path+suffix, err)
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return moved, nil
}

// finishInterruptedMove completes a moveAside cut short by a crash: a
// moved -wal whose database is still at path.
func finishInterruptedMove(path string) error {
	dir, base := filepath.Split(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	logs, err := filepath.Glob(filepath.Join(dir, stem+".*-*-wal"))
	if err != nil {
		return err
	}
	for _, l := range logs {
		main := strings.TrimSuffix(l, "-wal")
		if fileExists(main) || !fileExists(path) {
			continue
		}
		if err := os.Rename(path, main); err != nil {
			return fmt.Errorf("finish moving %s aside to %s: %w", path, main, err)
		}
		return syncDir(dir)
	}
	return nil
}

// keepReadOnly makes a moved journal read-only: it is evidence and the
// source of a salvage, never to be written again.
func keepReadOnly(moved string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Chmod(moved+suffix, 0o400)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// createJournal creates a new, empty, migrated journal at path. It is
// built at a temporary name and renamed into place, so path is either
// absent or a whole journal: a crash half-way never leaves an empty file
// that the next start would have to refuse.
func createJournal(ctx context.Context, path string) error {
	tmp := path + ".new"
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(tmp + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// A log left behind without its database would be replayed into the
	// new one: keep it, out of the way.
	if fileExists(path+"-wal") || fileExists(path+"-shm") {
		if _, err := moveAside(path, "orphan", time.Now()); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(tmp, false, true))
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err == nil {
		err = migrate(ctx, conn)
		conn.Close()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	// The last connection's close checkpointed the log into the file.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// restrictFiles makes the journal's files readable by their owner only:
// they hold every record, and a journal predating this rule was 0644.
func restrictFiles(path string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := os.Chmod(path+suffix, 0o600)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict permissions: %w", err)
		}
	}
	return nil
}

func readJournalID(ctx context.Context, conn *sql.Conn) (string, error) {
	var id string
	if err := conn.QueryRowContext(ctx, `SELECT value FROM journal_meta WHERE key = 'journal_id'`).Scan(&id); err != nil {
		return "", fmt.Errorf("read the journal id: %w", err)
	}
	return id, nil
}

// chainHead is a device's last entry as a damaged journal holds it.
type chainHead struct {
	seq  uint64
	hash string
}

// seed fills the new journal conn (which replaces r.oldPath) with what
// the damaged journal still says: device statuses, driver state, the ids of
// journaled cycles and each device's last good entry. It sets each
// device's chain head so that its first entry, the returned journal_break
// event, carries the last good hash as prev_hash and a seq past anything
// the damaged journal could have published.
func (r *replacement) seed(ctx context.Context, conn *sql.Conn, seqs *seqMark, opts Options, log *slog.Logger) ([]protocol.Event, error) {
	defer keepReadOnly(r.oldPath)
	now := opts.Now()
	attached := true
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS old`, "file:"+(&url.URL{Path: r.oldPath}).EscapedPath()+"?mode=ro"); err != nil {
		log.Warn("journal: the damaged journal cannot be opened at all; the new one starts from the sequence reservations only", "err", err)
		attached = false
	}
	if attached {
		defer conn.ExecContext(ctx, `DETACH DATABASE old`)
	}
	oldID := "unknown"
	heads := map[string]chainHead{}
	var maxEntry int64
	if attached {
		conn.QueryRowContext(ctx, `SELECT value FROM old.journal_meta WHERE key = 'journal_id'`).Scan(&oldID)
		// Each table on its own: what can be read is kept.
		for _, c := range []struct{ what, sql string }{
			{"device statuses", `INSERT OR IGNORE INTO device_status SELECT device, status FROM old.device_status`},
			{"driver state", `INSERT OR IGNORE INTO device_state SELECT device, state, saved_at FROM old.device_state`},
			{"journaled cycle ids", `INSERT OR IGNORE INTO cycle_ids SELECT record_id, 0, journaled_at FROM old.cycle_ids`},
			{"damaged journals", `INSERT OR IGNORE INTO damaged_journals SELECT * FROM old.damaged_journals WHERE salvaged_at IS NULL`},
		} {
			if _, err := conn.ExecContext(ctx, c.sql); err != nil {
				log.Warn("journal: could not carry "+c.what+" over from the damaged journal", "err", err)
			}
		}
		var err error
		if heads, maxEntry, err = lastGoodEntries(ctx, conn); err != nil {
			log.Warn("journal: could not read every device's last entry from the damaged journal", "err", err)
		}
	}
	devices := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for d := range heads {
			seen[d] = true
			if !yield(d) {
				return
			}
		}
		for _, d := range seqs.devices() {
			if !seen[d] && !yield(d) {
				return
			}
		}
	})
	var events []protocol.Event
	for _, d := range devices {
		h := heads[d]
		// Past every seq the damaged journal reserved, which is past every
		// seq it assigned, and so past every seq it could have published.
		next := h.seq + 1
		if reserved, ok := seqs.reserved(d); ok && reserved+1 > next {
			next = reserved + 1
		} else if !ok {
			next = h.seq + seqBlock + 1 // no reservation survived: leave a block's room
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO device_heads (device, seq, hash) VALUES (?,?,?) ON CONFLICT (device) DO UPDATE SET seq=excluded.seq, hash=excluded.hash`, d, next-1, h.hash); err != nil {
			return nil, err
		}
		text := fmt.Sprintf("the journal was damaged (%s) and replaced by a new one: the last good entry of this device is seq %d", r.reason, h.seq)
		if h.seq == 0 {
			text = fmt.Sprintf("the journal was damaged (%s) and replaced by a new one: no good entry of this device could be read", r.reason)
		}
		text += fmt.Sprintf("; entries up to seq %d may be missing, and may come later with their original ids if the damaged journal %s (kept as %s) is salvaged", next-1, oldID, r.oldPath)
		events = append(events, protocol.Event{Device: d, At: now.UTC(), Kind: protocol.EventJournalBreak,
			Text: text, LastSeq: h.seq, LastHash: h.hash, Journal: oldID})
	}
	// Entry positions continue past the damaged journal's: a position a
	// publisher still holds from before the replacement is never a new
	// entry's.
	base := max(maxEntry, now.UnixMicro())
	if _, err := conn.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) SELECT 'entries', ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'entries')`, base); err != nil {
		return nil, fmt.Errorf("set entry positions: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'entries'`, base); err != nil {
		return nil, fmt.Errorf("set entry positions: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO damaged_journals (path, journal_id, reason, moved_at) VALUES (?,?,?,?)`,
		r.oldPath, oldID, r.reason, now.UnixMilli()); err != nil {
		return nil, err
	}
	return events, nil
}

// lastGoodEntries reads, from the attached damaged journal, each device's
// last entry whose payload still hashes to its stored hash: the chain
// head when it verifies, otherwise the newest entry that does. It also
// returns the highest entry position in use.
func lastGoodEntries(ctx context.Context, conn *sql.Conn) (map[string]chainHead, int64, error) {
	heads := map[string]chainHead{}
	var errs []error
	rows, err := conn.QueryContext(ctx, `SELECT device, seq, hash FROM old.device_heads`)
	if err == nil {
		for rows.Next() {
			var d string
			var h chainHead
			if rows.Scan(&d, &h.seq, &h.hash) == nil {
				heads[d] = h
			}
		}
		errs = append(errs, rows.Err())
		rows.Close()
	} else {
		errs = append(errs, err)
	}
	var maxEntry sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(id) FROM old.entries`).Scan(&maxEntry); err != nil {
		errs = append(errs, err)
	}
	// Each device's newest entry that still verifies, newest first (salvaged
	// entries, which carry older seqs, left out); a device whose entries
	// were all pruned keeps its head.
	good := map[string]chainHead{}
	rows, err = conn.QueryContext(ctx, `SELECT device, seq, payload, hash FROM old.entries WHERE replay = 0 ORDER BY id DESC`)
	if err != nil {
		rows, err = conn.QueryContext(ctx, `SELECT device, seq, payload, hash FROM old.entries ORDER BY id DESC`)
	}
	if err != nil {
		return heads, maxEntry.Int64, errors.Join(append(errs, err)...)
	}
	defer rows.Close()
	pendingHeads := len(heads)
	for (len(heads) == 0 || pendingHeads > 0) && rows.Next() {
		var d, hash string
		var seq uint64
		var payload []byte
		if err := rows.Scan(&d, &seq, &payload, &hash); err != nil {
			errs = append(errs, err)
			break
		}
		if _, done := good[d]; done {
			continue
		}
		sum := sha256.Sum256(payload)
		if hex.EncodeToString(sum[:]) != hash {
			continue
		}
		good[d] = chainHead{seq: seq, hash: hash}
		if _, ok := heads[d]; ok {
			pendingHeads--
		}
	}
	errs = append(errs, rows.Err())
	for d, h := range heads {
		if _, ok := good[d]; !ok {
			good[d] = h // no entry of it verifies or is left: the head is all there is
		}
	}
	return good, maxEntry.Int64, errors.Join(errs...)
}

// damageSignal carries damage found while the gateway runs (an entry that
// no longer verifies before publishing, a corrupt page): the gateway then
// stops, and reopens the journal with Options.ReplaceDamaged.
type damageSignal struct {
	once   sync.Once
	ch     chan struct{}
	mu     sync.Mutex
	reason string
}

func (d *damageSignal) init() { d.ch = make(chan struct{}) }

// Damaged is closed once damage was found while the journal was open.
func (j *Journal) Damaged() <-chan struct{} { return j.damage.ch }

// DamageReason says what damage was found ("" while none).
func (j *Journal) DamageReason() string {
	j.damage.mu.Lock()
	defer j.damage.mu.Unlock()
	return j.damage.reason
}

// ReportDamage records damage found while the journal is open and raises
// the journal_damaged alarm; the first report wins.
func (j *Journal) ReportDamage(reason string) {
	j.damage.once.Do(func() {
		j.damage.mu.Lock()
		j.damage.reason = reason
		j.damage.mu.Unlock()
		j.log.Error("journal damaged while running: it will be replaced", "damage", reason)
		j.setAlarm(AlarmDamaged, true)
		close(j.damage.ch)
	})
}

// refreshDamagedAlarm raises journal_damaged while a damaged journal this
// one replaced waits to be salvaged, and clears it once every one was.
func (j *Journal) refreshDamagedAlarm(ctx context.Context) error {
	var n int
	if err := j.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM damaged_journals WHERE salvaged_at IS NULL`).Scan(&n); err != nil {
		return err
	}
	if j.DamageReason() == "" {
		j.setAlarm(AlarmDamaged, n > 0)
	}
	return nil
}

// StartFresh replaces a file at path that is not a journal (empty or
// foreign): it is moved aside, kept, and a new journal is created. It
// returns where the file was kept. A journal, whole or damaged, is left
// alone: a damaged one is replaced by the next Open, its entries salvaged.
func StartFresh(ctx context.Context, path string) (string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", createJournal(ctx, path)
	}
	if err != nil {
		return "", err
	}
	kind, why, err := inspectFile(path, fi.Size())
	if err != nil {
		return "", err
	}
	if kind == fileJournal {
		_, err := startupCheck(ctx, path)
		var unusable *UnusableError
		if !errors.As(err, &unusable) {
			return "", fmt.Errorf("%s is a sterigate journal: refusing to start a fresh one over it (a damaged journal is replaced, and kept, when the gateway starts)", path)
		}
		why = unusable.Why
	} else if kind == fileDamaged {
		return "", fmt.Errorf("%s is a damaged sterigate journal (%s): the gateway replaces it when it starts, and keeps it for 'sterigate journal salvage'", path, why)
	}
	moved, err := moveAside(path, "unusable", time.Now())
	if err != nil {
		return "", err
	}
	keepReadOnly(moved)
	return moved, createJournal(ctx, path)
}

// EntryFilter selects entries for Range.
type EntryFilter struct {
	Device string
	// SinceSeq and Since select entries with seq >= SinceSeq and journaled
	// at or after Since (zero values select all).
	SinceSeq uint64
	Since    time.Time
	Kinds    []Kind // empty: all
}

// Range calls fn for the entries of the journal at path that f selects,
// in outbox order. It opens the journal read-only: it may run while a
// gateway uses it.
func Range(ctx context.Context, path string, f EntryFilter, fn func(Entry) error) error {
	if !fileExists(path) {
		return fmt.Errorf("%s: no such journal", path)
	}
	db, err := sqlOpenReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	kinds := map[Kind]bool{}
	for _, k := range f.Kinds {
		kinds[k] = true
	}
	after := int64(0)
	for {
		rows, err := db.QueryContext(ctx, `SELECT `+entryColumns+` FROM entries WHERE id > ? AND device = ? AND seq >= ? AND created_at >= ? ORDER BY id LIMIT 500`,
			after, f.Device, f.SinceSeq, f.Since.UnixMilli())
		if err != nil {
			return err
		}
		es, err := scanEntries(rows)
		if err != nil {
			return err
		}
		for _, e := range es {
			after = e.ID
			if len(kinds) > 0 && !kinds[e.Kind] {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(es) < 500 {
			return nil
		}
	}
}
