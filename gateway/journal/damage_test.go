package journal

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "STERIGATE_JOURNAL_HELPER_DB="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for n := 0; n < want && sc.Scan(); n++ {
		if !strings.HasPrefix(sc.Text(), "ok ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", sc.Text())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	io.Copy(io.Discard, stdout)
	cmd.Wait()
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
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	runHelperThenKill(t, path, 600)

	// What the journal really held, from an untouched copy.
	pristine := filepath.Join(t.TempDir(), "journal.db")
	copyFile(t, path, pristine)
	copyFile(t, path+"-wal", pristine+"-wal")
	held := readAll(t, pristine)
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
