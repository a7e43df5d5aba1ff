package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sterigate/sterigate/protocol"
)

// runHelperThenKill runs TestHelperProcess on path until it acknowledged
// want appends, then SIGKILLs it: the write-ahead log keeps every commit
// since the last checkpoint.
func runHelperThenKill(t *testing.T, path string, want int) {
	t.Helper()
	cmd, sc := startHelper(t, path)
	for n := 0; n < want && sc.Scan(); n++ {
		if !strings.HasPrefix(sc.Text(), "ok ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", sc.Text())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
	}
	cmd.Wait()
}

// killedJournal leaves in a new directory a journal whose appender was
// SIGKILLed (its write-ahead log full of commits) and returns its path
// and, read from an untouched copy, every entry it holds.
func killedJournal(t *testing.T) (dir, path string, held []Entry) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "journal.db")
	runHelperThenKill(t, path, 600)
	pristine := filepath.Join(t.TempDir(), "journal.db")
	copyFile(t, path, pristine)
	copyFile(t, path+"-wal", pristine+"-wal")
	return dir, path, readAll(t, pristine)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readAll opens a journal and returns every entry in it.
func readAll(t *testing.T, path string) []Entry {
	t.Helper()
	j := openTest(t, path, Options{})
	defer j.Close()
	es, err := j.Entries(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// flipInFrame flips a byte in the page of WAL frame i.
func flipInFrame(t *testing.T, wal string, frame int) {
	t.Helper()
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.BigEndian.Uint32(b[8:]))
	b[walHeaderSize+frame*(walFrameHeaderSize+pageSize)+walFrameHeaderSize+pageSize/2] ^= 0x5a
	if err := os.WriteFile(wal, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWALFlipStartsANewJournalPastEveryPublishableSeq flips one byte in
// the middle of a journal's write-ahead log. SQLite would silently drop
// every commit after it and hand their seqs and ids out again for new
// content; the journal must find it, keep the damaged file aside, and
// continue each device past anything the damaged journal held.
func TestWALFlipStartsANewJournalPastEveryPublishableSeq(t *testing.T) {
	ctx := context.Background()
	dir, path, held := killedJournal(t)
	maxSeq := map[string]uint64{}
	ids := map[string]bool{}
	for _, e := range held {
		maxSeq[e.Device] = max(maxSeq[e.Device], e.Seq)
		ids[e.RecordID] = true
	}

	scan, err := scanWAL(path + "-wal")
	if err != nil || scan.ValidFrames < 10 {
		t.Fatalf("scan of the log before the flip: %+v %v", scan, err)
	}
	flipInFrame(t, path+"-wal", scan.ValidFrames/3)
	if s, _ := scanWAL(path + "-wal"); !s.Damaged() {
		t.Fatalf("the flip left no commit behind it: %+v", s)
	}

	j := openTest(t, path, Options{})
	if !slices.Contains(j.Alarms(), AlarmDamaged) {
		t.Errorf("alarms %v, want %s", j.Alarms(), AlarmDamaged)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "journal.damaged-*.db"))
	if len(kept) != 1 || !fileExists(kept[0]+"-wal") {
		t.Fatalf("damaged journal kept as %v (with its -wal?), want one", kept)
	}
	if fi, err := os.Stat(kept[0]); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("kept journal mode %v %v, want read-only 0400", fi.Mode(), err)
	}
	for _, d := range []string{"ac-0", "ac-1"} {
		if err := j.Telemetry(ctx, testTelemetry(d, 3)); err != nil {
			t.Fatal(err)
		}
		if err := j.Event(ctx, protocol.Event{Device: d, Kind: protocol.EventAlarm, Code: 3}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	for _, e := range es {
		if e.Seq <= maxSeq[e.Device] {
			t.Errorf("%s: new entry %s has seq %d; the damaged journal held up to seq %d", e.Device, e.RecordID, e.Seq, maxSeq[e.Device])
		}
		if ids[e.RecordID] {
			t.Errorf("new entry re-issues id %s", e.RecordID)
		}
		if first[e.Device] {
			continue
		}
		first[e.Device] = true
		var ev protocol.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil || ev.Kind != protocol.EventJournalBreak {
			t.Fatalf("%s: first entry of the new journal is %s, want a journal_break event", e.Device, e.Payload)
		}
		// The break chains onto the last good entry, which the damaged
		// journal (as SQLite reads it) still holds, whole.
		var f chainFields
		json.Unmarshal(e.Payload, &f)
		if f.PrevHash != ev.LastHash || ev.LastSeq == 0 || ev.LastSeq > maxSeq[e.Device] || ev.Journal == "" || ev.Journal == j.ID() {
			t.Errorf("%s: journal_break %s: prev_hash, last_seq, last_hash or journal wrong", e.Device, e.Payload)
		}
		found := false
		for _, h := range held {
			if h.Device == e.Device && h.Seq == ev.LastSeq {
				sum := sha256.Sum256(h.Payload)
				found = hex.EncodeToString(sum[:]) == ev.LastHash
			}
		}
		if !found {
			t.Errorf("%s: last good entry seq %d hash %s is not an entry the journal held", e.Device, ev.LastSeq, ev.LastHash)
		}
		if !strings.Contains(ev.Text, kept[0]) {
			t.Errorf("journal_break text %q does not say where the damaged journal is kept", ev.Text)
		}
	}
	if len(first) != 2 {
		t.Fatalf("new journal holds entries of %d devices, want 2", len(first))
	}
	// A restart finds a whole journal: no second replacement.
	j.Close()
	j = openTest(t, path, Options{})
	if got, _ := filepath.Glob(filepath.Join(dir, "journal.damaged-*.db")); len(got) != 1 {
		t.Fatalf("after a clean restart %d damaged journals, want still 1", len(got))
	}
}

func TestZeroLengthOrForeignFileIsRefusedUnlessStartFresh(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		why     string
	}{
		{"zero-length", nil, "empty"},
		{"text file", []byte("not a journal\n"), "not a SQLite database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, Options{Gateway: "g", Site: "s"})
			var unusable *UnusableError
			if !errors.As(err, &unusable) || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "start-fresh") {
				t.Fatalf("Open: %v, want an UnusableError saying %q and naming start-fresh", err, tc.why)
			}
			if b, _ := os.ReadFile(path); string(b) != string(tc.content) {
				t.Fatal("the refused file was changed")
			}
			j := openTest(t, path, Options{StartFresh: true})
			if err := j.Event(context.Background(), protocol.Event{Device: "ac-1", Kind: protocol.EventOnline}); err != nil {
				t.Fatal(err)
			}
			kept, _ := filepath.Glob(filepath.Join(dir, "journal.unusable-*.db"))
			if len(kept) != 1 {
				t.Fatalf("the refused file kept as %v, want one copy", kept)
			}
			if b, _ := os.ReadFile(kept[0]); string(b) != string(tc.content) {
				t.Fatal("the kept file differs from the refused one")
			}
		})
	}
}

func TestJournalFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	j := openTest(t, path, Options{})
	if err := j.Event(context.Background(), protocol.Event{Device: "ac-1", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", seqMarkPath(path), spaceReservePath(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// TestSalvageRecoversWhatTheWALFlipHid salvages the journal a flipped WAL
// byte damaged: every entry it held comes back with its payload, id and
// seq, except those whose page the flip hit, which are named.
func TestSalvageRecoversWhatTheWALFlipHid(t *testing.T) {
	ctx := context.Background()
	dir, path, held := killedJournal(t)

	scan, _ := scanWAL(path + "-wal")
	flipInFrame(t, path+"-wal", scan.ValidFrames/3)
	j := openTest(t, path, Options{})
	kept, _ := filepath.Glob(filepath.Join(dir, "journal.damaged-*.db"))
	if len(kept) != 1 {
		t.Fatalf("kept %v", kept)
	}
	if rep, err := Check(ctx, kept[0]); err != nil || rep.OK() || !rep.Log.Damaged() {
		t.Fatalf("Check of the damaged journal: %v %v, want its log reported damaged", rep, err)
	}
	visible := len(readAllFromCopyWithoutRepair(t, kept[0]))

	rep, err := Salvage(ctx, path, kept[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if !rep.LogRepaired || rep.Read <= visible {
		t.Fatalf("salvage read %d entries (repaired log: %v); SQLite alone sees %d: the commits after the flip were not read", rep.Read, rep.LogRepaired, visible)
	}
	es, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Entry{}
	for _, e := range es {
		byID[e.RecordID] = e
	}
	missing := 0
	for _, h := range held {
		got, ok := byID[h.RecordID]
		if !ok {
			missing++
			continue
		}
		if string(got.Payload) != string(h.Payload) || got.Seq != h.Seq || !got.Replay {
			t.Fatalf("%s salvaged as seq %d %q (replay %v), held seq %d %q", h.RecordID, got.Seq, got.Payload, got.Replay, h.Seq, h.Payload)
		}
	}
	if missing > len(rep.Damaged)+rep.Unreadable {
		t.Fatalf("%d of %d held entries are not salvaged; salvage names %d damaged and %d unreadable", missing, len(held), len(rep.Damaged), rep.Unreadable)
	}
	// Undelivered salvaged entries wait to be published, with the
	// journal's own.
	if p, _ := j.Pending(ctx, 100000); len(p) < rep.Pending {
		t.Fatalf("%d pending after salvage, salvage says %d to publish", len(p), rep.Pending)
	}
	// The alarm clears once the damaged journal is salvaged.
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(j.Alarms(), AlarmDamaged) {
		t.Fatalf("alarms %v after the salvage", j.Alarms())
	}
	// A second salvage copies nothing twice.
	rep2, err := Salvage(ctx, path, kept[0])
	if err != nil || rep2.Salvaged != 0 || rep2.AlreadyThere != rep.Salvaged {
		t.Fatalf("second salvage: %v %v", rep2, err)
	}
	if rep, err := Check(ctx, path); err != nil || !rep.OK() {
		t.Fatalf("Check of the new journal after salvage: %v %v", rep, err)
	}
}

// readAllFromCopyWithoutRepair returns what SQLite alone reads from a
// journal (its log replayed up to the first bad frame).
func readAllFromCopyWithoutRepair(t *testing.T, path string) []Entry {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, path, cp)
	copyFile(t, path+"-wal", cp+"-wal")
	db, err := sqlOpenReadOnly(cp)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []Entry
	var unreadable int
	if err := readAllEntries(context.Background(), db, func(e Entry) error { out = append(out, e); return nil }, &unreadable); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMainFileFlipIsCaughtBeforePublishing flips one byte of a cycle
// record's payload in the database file. quick_check does not look at
// payload bytes; the check before publishing must, and the record must
// never reach a consumer as it now reads.
func TestMainFileFlipIsCaughtBeforePublishing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	j := openTest(t, path, Options{})
	for c := range uint64(5) {
		if err := j.Telemetry(ctx, testTelemetry("ac-1", 3)); err != nil {
			t.Fatal(err)
		}
		if err := j.Cycle(ctx, testRecord("ac-1", 100+c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	j.Close() // the payloads are in the main file
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	target := []byte(`"schema":"sterigate.cycle.v1","id":"dax:ac-1:102"`)
	// The record's page may also have a stale copy in a free page: flip
	// the byte in every copy.
	n := 0
	for i := bytes.Index(b, target); i >= 0; i = bytes.Index(b[i+1:], target) + i + 1 {
		b[i+len(target)+40] ^= 0x01
		n++
		if bytes.Index(b[i+1:], target) < 0 {
			break
		}
	}
	if n == 0 {
		t.Fatal("record 102 not found in the file")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	j = openTest(t, path, Options{})
	p, err := j.Pending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := j.Verify(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Entry.RecordID != "dax:ac-1:102" || !strings.Contains(bad[0].Why, "hashes to") {
		t.Fatalf("Verify found %v, want record 102 and its hash", bad)
	}
	j.ReportDamage(bad[0].Why)
	select {
	case <-j.Damaged():
	default:
		t.Fatal("Damaged() not closed after ReportDamage")
	}
	j.Close()

	// The gateway reopens it as damaged: the journal is replaced, and a
	// salvage recovers every other entry.
	j = openTest(t, path, Options{ReplaceDamaged: bad[0].Why})
	kept, _ := filepath.Glob(filepath.Join(dir, "journal.damaged-*.db"))
	if len(kept) != 1 {
		t.Fatalf("kept %v", kept)
	}
	rep, err := Salvage(ctx, path, kept[0])
	if err != nil {
		t.Fatal(err)
	}
	if rep.Salvaged != 9 || len(rep.Damaged) != 1 || !strings.Contains(rep.Damaged[0], "dax:ac-1:102") {
		t.Fatalf("salvage: %v %v, want 9 entries and record 102 named damaged", rep, rep.Damaged)
	}
	p, _ = j.Pending(ctx, 100)
	if bad, err := j.Verify(ctx, p); err != nil || len(bad) != 0 {
		t.Fatalf("Verify after salvage: %v %v", bad, err)
	}
}
