package journal

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
)

// CheckReport is what Check found in a journal file.
type CheckReport struct {
	Path string
	// NotAJournal says why the file is not a journal ("" when it is one).
	NotAJournal string
	JournalID   string
	// Log is the write-ahead log's scan.
	Log walScan
	// Integrity lists what SQLite's integrity_check found (at most 20).
	Integrity []string
	// Unreadable is set when the entries cannot be read at all.
	Unreadable string
	// Entries counts the entries read; UnreadablePositions those SQLite
	// could not read.
	Entries, UnreadablePositions int
	// Damaged lists entries that no longer verify, ChainBreaks the links
	// from an entry to its predecessor that do not hold.
	Damaged, ChainBreaks []string
	// Gaps counts jumps in a device's seq (thinned telemetry and journal
	// breaks make them legitimately; their events say so).
	Gaps int
}

// OK reports whether nothing is damaged.
func (r CheckReport) OK() bool {
	return r.NotAJournal == "" && !r.Log.Damaged() && len(r.Integrity) == 0 && r.Unreadable == "" &&
		r.UnreadablePositions == 0 && len(r.Damaged) == 0 && len(r.ChainBreaks) == 0
}

func (r CheckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "journal %s", r.Path)
	if r.JournalID != "" {
		fmt.Fprintf(&b, " (id %s)", r.JournalID)
	}
	b.WriteString("\n")
	if r.NotAJournal != "" {
		fmt.Fprintf(&b, "NOT A JOURNAL: %s\n", r.NotAJournal)
		return b.String()
	}
	fmt.Fprintf(&b, "%s\n", r.Log)
	if len(r.Integrity) == 0 {
		b.WriteString("integrity_check: ok\n")
	}
	for _, p := range r.Integrity {
		fmt.Fprintf(&b, "integrity_check: %s\n", p)
	}
	if r.Unreadable != "" {
		fmt.Fprintf(&b, "entries: cannot be read: %s\n", r.Unreadable)
	}
	fmt.Fprintf(&b, "entries: %d read, %d unreadable positions, %d damaged, %d broken chain links, %d seq gaps\n",
		r.Entries, r.UnreadablePositions, len(r.Damaged), len(r.ChainBreaks), r.Gaps)
	for _, d := range r.Damaged {
		fmt.Fprintf(&b, "damaged: %s\n", d)
	}
	for _, c := range r.ChainBreaks {
		fmt.Fprintf(&b, "chain: %s\n", c)
	}
	if r.OK() {
		b.WriteString("OK\n")
	} else {
		b.WriteString("DAMAGED\n")
	}
	return b.String()
}

// Check examines the journal at path without writing to it (it may run
// while a gateway uses the journal): the file's kind, its write-ahead
// log, SQLite's integrity_check, and every entry: its payload against its
// stored hash, and each device's chain. Errors are for a file that cannot
// be opened at all; damage is in the report.
func Check(ctx context.Context, path string) (CheckReport, error) {
	rep := CheckReport{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return rep, err
	}
	kind, why, err := inspectFile(path, fi.Size())
	if err != nil {
		return rep, err
	}
	if kind == fileForeign {
		rep.NotAJournal = why
		return rep, nil
	}
	if rep.Log, err = scanWAL(path + "-wal"); err != nil {
		return rep, err
	}
	if kind == fileDamaged {
		rep.Integrity = []string{why}
		return rep, nil
	}
	db, err := sqlOpenReadOnly(path)
	if err != nil {
		return rep, err
	}
	defer db.Close()
	problems, err := quickCheck(ctx, db, "integrity_check")
	if err != nil {
		problems = []string{err.Error()}
	}
	rep.Integrity = problems
	db.QueryRowContext(ctx, `SELECT value FROM journal_meta WHERE key = 'journal_id'`).Scan(&rep.JournalID)
	type link struct {
		seq  uint64
		hash string
	}
	last := map[string]link{}
	err = readAllEntries(ctx, db, func(e Entry) error {
		rep.Entries++
		if why := verifyStandalone(&e); why != "" {
			rep.Damaged = append(rep.Damaged, why)
			return nil
		}
		if e.Replay {
			return nil // a salvaged entry: the damaged journal's chain
		}
		f, _ := chainFieldsOf(e.Payload)
		prev, ok := last[e.Device]
		switch {
		case !ok:
		case e.Seq == prev.seq+1 && f.prevHash != prev.hash:
			rep.ChainBreaks = append(rep.ChainBreaks, fmt.Sprintf("%s seq %d: prev_hash %s, seq %d hashes to %s", e.Device, e.Seq, f.prevHash, prev.seq, prev.hash))
		case e.Seq <= prev.seq:
			rep.ChainBreaks = append(rep.ChainBreaks, fmt.Sprintf("%s seq %d comes after seq %d", e.Device, e.Seq, prev.seq))
		case e.Seq > prev.seq+1:
			rep.Gaps++
		}
		last[e.Device] = link{e.Seq, e.Hash}
		return nil
	}, &rep.UnreadablePositions)
	if err != nil {
		rep.Unreadable = err.Error()
	}
	return rep, nil
}

func sqlOpenReadOnly(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", readOnlyDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}
