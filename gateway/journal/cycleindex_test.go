package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

func verified(rec protocol.CycleRecord, verdict string, agrees bool) protocol.CycleRecord {
	rec.Verification = &protocol.Verification{Verdict: verdict, AgreesWithDevice: &agrees, Checks: []protocol.Check{}}
	return rec
}

func ids(p CyclePage) []string {
	var out []string
	for _, c := range p.Cycles {
		out = append(out, c.RecordID)
	}
	return out
}

func TestCycleIndexListsAndFilters(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	failed := testRecord("ac-2", 2)
	failed.Result = protocol.ResultFailed
	records := []protocol.CycleRecord{
		verified(testRecord("ac-1", 1), protocol.VerdictPass, true),
		verified(failed, protocol.VerdictFail, true),
		verified(testRecord("ac-1", 3), protocol.VerdictIndeterminate, false),
		testRecord("ac-2", 4), // no verification yet
	}
	for _, r := range records {
		if err := j.Cycle(ctx, r); err != nil {
			t.Fatal(err)
		}
		// Telemetry and events between records must not show in the index.
		if err := j.Telemetry(ctx, testTelemetry(r.Device, 3)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := j.Cycles(ctx, CycleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all), []string{"dax:ac-2:4", "dax:ac-1:3", "dax:ac-2:2", "dax:ac-1:1"}; !slices.Equal(got, want) {
		t.Fatalf("newest first: %v, want %v", got, want)
	}
	entries, _ := j.Entries(ctx, "ac-1", KindCycle)
	if all.Cycles[3].Hash != entries[0].Hash || all.Cycles[3].Seq != entries[0].Seq {
		t.Errorf("index row %+v does not name the entry's seq %d and hash %s", all.Cycles[3], entries[0].Seq, entries[0].Hash)
	}
	if c := all.Cycles[1]; c.Verdict != protocol.VerdictIndeterminate || !c.Disagreement || c.Program != "134C prevacuum" || !c.Complete {
		t.Errorf("row %+v", c)
	}
	for _, c := range []struct {
		f    CycleFilter
		want []string
	}{
		{CycleFilter{Device: "ac-1"}, []string{"dax:ac-1:3", "dax:ac-1:1"}},
		{CycleFilter{Result: protocol.ResultFailed}, []string{"dax:ac-2:2"}},
		{CycleFilter{Verdict: protocol.VerdictPass}, []string{"dax:ac-1:1"}},
		{CycleFilter{Verdict: VerdictNone}, []string{"dax:ac-2:4"}},
		{CycleFilter{Release: ReleaseNone, Device: "ac-2"}, []string{"dax:ac-2:4", "dax:ac-2:2"}},
		{CycleFilter{Release: protocol.DecisionReleased}, nil},
		// ended_at of cycle n is 08:45 + n hours.
		{CycleFilter{From: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 11, 45, 0, 0, time.UTC)}, []string{"dax:ac-2:2"}},
	} {
		p, err := j.Cycles(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(p), c.want) {
			t.Errorf("%+v: %v, want %v", c.f, ids(p), c.want)
		}
	}

	// Pages of 3, there and back.
	p1, _ := j.Cycles(ctx, CycleFilter{Limit: 3})
	if !p1.Older || p1.Newer || len(p1.Cycles) != 3 {
		t.Fatalf("first page %v older %v newer %v", ids(p1), p1.Older, p1.Newer)
	}
	last := p1.Cycles[2].Cursor()
	p2, _ := j.Cycles(ctx, CycleFilter{Limit: 3, Before: &last})
	if !slices.Equal(ids(p2), []string{"dax:ac-1:1"}) || p2.Older || !p2.Newer {
		t.Fatalf("second page %v older %v newer %v", ids(p2), p2.Older, p2.Newer)
	}
	first := p2.Cycles[0].Cursor()
	back, _ := j.Cycles(ctx, CycleFilter{Limit: 3, After: &first})
	if !slices.Equal(ids(back), ids(p1)) || back.Newer || !back.Older {
		t.Fatalf("back to the first page: %v newer %v, want %v", ids(back), back.Newer, ids(p1))
	}

	devs, err := j.CycleDevices(ctx)
	if err != nil || !slices.Equal(devs, []string{"ac-1", "ac-2"}) {
		t.Errorf("CycleDevices = %v, %v", devs, err)
	}

	rec, err := j.CycleRecord(ctx, "dax:ac-2:2")
	if err != nil {
		t.Fatal(err)
	}
	var got protocol.CycleRecord
	if err := jsonUnmarshal(rec.Payload, &got); err != nil || got.Result != protocol.ResultFailed || got.ID != "dax:ac-2:2" {
		t.Errorf("payload %+v, %v", got, err)
	}
	if _, err := j.CycleRecord(ctx, "dax:ac-9:1"); !errors.Is(err, ErrNoRecord) {
		t.Errorf("unknown record: %v, want ErrNoRecord", err)
	}
}

// A revision names the record it supersedes, and the superseded record
// names its revisions.
func TestCycleIndexRevisions(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	cut := testRecord("printer-1", 7)
	cut.Complete = false
	if err := j.Cycle(ctx, cut); err != nil {
		t.Fatal(err)
	}
	full := testRecord("printer-1", 7)
	full.Revision, full.Supersedes = 2, "dax:printer-1:7"
	if err := j.Cycle(ctx, full); err != nil {
		t.Fatal(err)
	}
	old, err := j.CycleRecord(ctx, "dax:printer-1:7")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(old.SupersededBy, []string{"dax:printer-1:7:r2"}) {
		t.Errorf("SupersededBy = %v", old.SupersededBy)
	}
	rev, _ := j.CycleRecord(ctx, "dax:printer-1:7:r2")
	if rev.Supersedes != "dax:printer-1:7" || rev.Revision != 2 {
		t.Errorf("revision %+v", rev.CycleSummary)
	}
}

// A journal written before the index existed gets its records indexed by
// the migration, with the same rows the writer would have written.
func TestCycleIndexBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	rec := verified(testRecord("ac-1", 1), protocol.VerdictFail, false)
	rec.EndedAt = rec.EndedAt.Add(123456789 * time.Nanosecond)
	rev := testRecord("ac-1", 2)
	rev.Revision, rev.Supersedes, rev.EndSeen = 3, "dax:ac-1:2:r2", true
	for _, r := range []protocol.CycleRecord{rec, testRecord("ac-2", 5), rev} {
		if err := j.Cycle(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	before, err := j.Cycles(ctx, CycleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()

	// Back to the schema before the index.
	db, err := sql.Open("sqlite", dsn(path, false, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TABLE cycle_index`, `DROP TABLE cycle_releases`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	// Run the index's migration again, as a journal from before it would:
	// whatever migrations come after it are not undone here.
	var version int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, conn, cycleIndexMigration(), version); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	db.Close()

	j = openTest(t, path, Options{})
	after, err := j.Cycles(ctx, CycleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		t.Errorf("backfilled index differs:\n got %+v\nwant %+v", after, before)
	}
}

func TestReleaseDecisions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	if err := j.Cycle(ctx, verified(testRecord("ac-1", 1), protocol.VerdictPass, true)); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, verified(testRecord("ac-1", 2), protocol.VerdictFail, false)); err != nil {
		t.Fatal(err)
	}
	ev, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionReleased, Operator: "marie", LoadRef: "L-0042"})
	if err != nil {
		t.Fatal(err)
	}
	// The failed record carried its disagreement event (e3); the release
	// decision is the next entry of the device's chain, pending for MQTT.
	if !strings.HasPrefix(ev.ID, "dax:ac-1:"+j.ID()+".") || !strings.HasSuffix(ev.ID, ".e4") || ev.Kind != protocol.EventRelease || ev.RecordHash == "" {
		t.Errorf("event %+v", ev)
	}
	entries, _ := j.Entries(ctx, "ac-1", KindEvent)
	if len(entries) != 2 || entries[1].RecordID != ev.ID {
		t.Fatalf("event entries %+v", entries)
	}
	var published protocol.Event
	if err := jsonUnmarshal(entries[1].Payload, &published); err != nil {
		t.Fatal(err)
	}
	cycles, _ := j.Entries(ctx, "ac-1", KindCycle)
	if published.Decision != "released" || published.Operator != "marie" || published.LoadRef != "L-0042" ||
		published.RecordID != "dax:ac-1:1" || published.RecordHash != cycles[0].Hash || published.Cycle != 1 {
		t.Errorf("published %+v", published)
	}
	verifyChains(t, mustEntries(t, j))

	// A second decision must name the first: never two decisions in force.
	_, err = j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionQuarantined, Operator: "paul"})
	if !errors.Is(err, ErrReleaseConflict) {
		t.Fatalf("decision that ignores the one in force: %v, want ErrReleaseConflict", err)
	}
	second, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionQuarantined, Operator: "paul",
		Note: "indicator doubtful", Supersedes: ev.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionRejected, Operator: "paul", Supersedes: ev.ID}); !errors.Is(err, ErrReleaseConflict) {
		t.Fatalf("superseding a superseded decision: %v, want ErrReleaseConflict", err)
	}

	// A non-conforming load needs the confirmation and a note.
	for _, d := range []ReleaseDecision{
		{RecordID: "dax:ac-1:2", Decision: protocol.DecisionReleased, Operator: "paul"},
		{RecordID: "dax:ac-1:2", Decision: protocol.DecisionReleased, Operator: "paul", Confirmed: true},
		{RecordID: "dax:ac-1:2", Decision: protocol.DecisionReleased, Operator: "paul", Note: "BI negative"},
	} {
		if _, err := j.Release(ctx, d); !errors.Is(err, ErrNotConforming) {
			t.Errorf("%+v: %v, want ErrNotConforming", d, err)
		}
	}
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:2", Decision: protocol.DecisionRejected, Operator: "paul"}); err != nil {
		t.Errorf("rejecting a failed load needs no confirmation: %v", err)
	}
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-9:1", Decision: protocol.DecisionRejected, Operator: "paul"}); !errors.Is(err, ErrNoRecord) {
		t.Errorf("unknown record: %v", err)
	}
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: "approved", Operator: "paul"}); err == nil {
		t.Error("an unknown decision was accepted")
	}

	// The history survives a restart, oldest first.
	j.Close()
	j = openTest(t, path, Options{})
	hist, err := j.Releases(ctx, "dax:ac-1:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].EventID != ev.ID || hist[1].EventID != second.ID || hist[1].Supersedes != ev.ID || hist[1].Note != "indicator doubtful" {
		t.Fatalf("history %+v", hist)
	}
	p, _ := j.Cycles(ctx, CycleFilter{Release: protocol.DecisionQuarantined})
	if !slices.Equal(ids(p), []string{"dax:ac-1:1"}) {
		t.Errorf("quarantined: %v", ids(p))
	}
	p, _ = j.Cycles(ctx, CycleFilter{Release: ReleaseNone})
	if len(p.Cycles) != 0 {
		t.Errorf("undecided: %v", ids(p))
	}
}

// While the disk refuses writes a release decision is refused, not held:
// the person must not be told "saved" for a decision only in memory.
func TestReleaseRefusedWhileDiskFull(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{MemoryTelemetryLimit: 50, RetryInterval: 10 * time.Millisecond})
	if err := j.Cycle(ctx, verified(testRecord("ac-1", 1), protocol.VerdictPass, true)); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, j, "ac-1")
	// Cycle records and events are still tried while the disk is full
	// (one that fits is written); this decision's note does not fit in
	// what is left, so it cannot be made durable.
	note := strings.Repeat("load checked against the list; ", 8000)
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionReleased, Operator: "marie", Note: note}); err == nil {
		t.Fatal("a release decision was accepted while the disk refuses writes")
	}
	if err := j.exec(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(j.Alarms(), AlarmDiskFull) {
		if time.Now().After(deadline) {
			t.Fatal("the disk-full alarm did not clear")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hist, _ := j.Releases(ctx, "dax:ac-1:1"); len(hist) != 0 {
		t.Errorf("the refused decision was written later: %+v", hist)
	}
	if _, err := j.Release(ctx, ReleaseDecision{RecordID: "dax:ac-1:1", Decision: protocol.DecisionReleased, Operator: "marie"}); err != nil {
		t.Errorf("after space returned: %v", err)
	}
}

func mustEntries(t *testing.T, j *Journal) []Entry {
	t.Helper()
	es, err := j.Entries(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return es
}
