package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

type seqRange struct{ from, to uint64 }

func gapRanges(t *testing.T, entries []Entry) map[string][]seqRange {
	t.Helper()
	out := map[string][]seqRange{}
	for _, e := range entries {
		if e.Kind != KindEvent {
			continue
		}
		var ev protocol.Event
		if err := jsonUnmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != protocol.EventGap {
			continue
		}
		var n int
		var r seqRange
		if _, err := fmt.Sscanf(ev.Text, "journal quota reached: %d telemetry batches, seq %d to %d", &n, &r.from, &r.to); err == nil {
			out[e.Device] = append(out[e.Device], r)
		}
	}
	return out
}

func TestQuotaThinsTelemetryKeepsCyclesAndAlarms(t *testing.T) {
	ctx := context.Background()
	const quota = 512 << 10
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{QuotaBytes: quota, MaintenanceInterval: time.Hour})
	cycles, alarms := 0, 0
	sawNearQuota, sawOverQuota := false, false
	const rounds, perRound = 80, 20 // about 1.8 MB of telemetry into 0.5 MB
	for i := range rounds {
		device := fmt.Sprintf("ac-%d", i%2)
		appendTelemetryConcurrently(t, j, device, perRound)
		// Cycle records and alarms are kept whatever happens; one every
		// fourth round leaves telemetry most of the quota, so how much of
		// it a run keeps does not hang on the last thinning's timing.
		if i%4 != 0 {
			continue
		}
		if err := j.Cycle(ctx, testRecord(device, uint64(i))); err != nil {
			t.Fatal(err)
		}
		if err := j.Event(ctx, protocol.Event{Device: device, Kind: protocol.EventAlarm, Code: i}); err != nil {
			t.Fatal(err)
		}
		cycles++
		alarms++
		sawOverQuota = sawOverQuota || slices.Contains(j.Alarms(), AlarmOverQuota)
		if !sawNearQuota && slices.Contains(j.Alarms(), AlarmNearQuota) {
			sawNearQuota = true
			if slices.Contains(j.Alarms(), AlarmOverQuota) {
				t.Fatal("the near-quota alarm came only together with the quota itself")
			}
			if n, _ := j.Entries(ctx, "", KindEvent); len(gapRanges(t, n)) > 0 {
				t.Fatal("telemetry was thinned before the near-quota alarm")
			}
		}
	}
	if !sawNearQuota {
		t.Fatal("no near-quota alarm")
	}
	if !sawOverQuota {
		t.Fatalf("never saw the %s alarm", AlarmOverQuota)
	}
	st, err := j.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.UsedBytes > quota*12/10 {
		t.Fatalf("journal uses %d bytes with a quota of %d", st.UsedBytes, quota)
	}
	all, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	gotCycles, gotAlarms, tele := 0, 0, 0
	for _, e := range all {
		switch e.Kind {
		case KindCycle:
			gotCycles++
		case KindTelemetry:
			tele++
		case KindEvent:
			var ev protocol.Event
			jsonUnmarshal(e.Payload, &ev)
			if ev.Kind == protocol.EventAlarm {
				gotAlarms++
			}
		}
	}
	if gotCycles != cycles || gotAlarms != alarms {
		t.Fatalf("after thinning: %d/%d cycle records and %d/%d alarms kept", gotCycles, cycles, gotAlarms, alarms)
	}
	if tele >= rounds*perRound || tele == 0 {
		t.Fatalf("%d telemetry batches kept of %d: want thinning, not all or nothing", tele, rounds*perRound)
	}
	// Every missing seq is covered by a recorded gap.
	gaps := gapRanges(t, all)
	byDevice := map[string][]Entry{}
	for _, e := range all {
		byDevice[e.Device] = append(byDevice[e.Device], e)
	}
	for d, es := range byDevice {
		if len(gaps[d]) == 0 {
			t.Fatalf("%s: telemetry thinned without a gap event", d)
		}
		next := uint64(1)
		for _, e := range es {
			for s := next; s < e.Seq; s++ {
				covered := false
				for _, r := range gaps[d] {
					covered = covered || (s >= r.from && s <= r.to)
				}
				if !covered {
					t.Fatalf("%s: seq %d is missing and no gap event covers it", d, s)
				}
			}
			next = e.Seq + 1
		}
	}
}

func TestDiskFullHoldsInMemoryAndCatchesUp(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{MemoryTelemetryLimit: 50, RetryInterval: 10 * time.Millisecond})
	if err := j.Cycle(ctx, testRecord("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	fillDisk(t, j, "ac-1")
	// A record too big for what is left is held; one that fits would be
	// written (cycle records and events are tried while the disk is full).
	big := testRecord("ac-1", 2)
	big.Samples = testTelemetry("ac-1", 3000).Samples
	err := j.Cycle(ctx, big)
	if !errors.Is(err, ErrNotDurable) {
		t.Fatalf("Cycle while the disk is full: %v, want ErrNotDurable", err)
	}
	// The driver retries: no second copy.
	if err := j.Cycle(ctx, big); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("retried Cycle while the disk is full: %v, want ErrNotDurable", err)
	}
	// An event is held and accepted: it has no id, a retry would double it.
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventAlarm, Code: 99}); err != nil {
		t.Fatalf("Event while the disk is full: %v, want it held and accepted", err)
	}
	// Space returns.
	if err := j.exec(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(j.Alarms(), AlarmDiskFull) {
		if time.Now().After(deadline) {
			t.Fatal("the disk-full alarm did not clear after space returned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := j.Cycle(ctx, testRecord("ac-1", 2)); err != nil {
		t.Fatalf("Cycle after recovery: %v", err)
	}
	j.Close()
	j = openTest(t, path, Options{})
	var integrity string
	if err := j.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q %v", integrity, err)
	}
	all, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	verifyChains(t, all) // entries dropped from memory never got a seq
	kinds := map[Kind]int{}
	gapText := ""
	for _, e := range all {
		kinds[e.Kind]++
		var ev protocol.Event
		if e.Kind == KindEvent && jsonUnmarshal(e.Payload, &ev) == nil && ev.Kind == protocol.EventGap {
			gapText = ev.Text
		}
	}
	var dropped, samples int
	if _, err := fmt.Sscanf(gapText, "%d telemetry batches (%d samples)", &dropped, &samples); err != nil {
		t.Fatalf("gap event text %q: %v", gapText, err)
	}
	// A few batches may have fit in the last free pages before the disk
	// was full; of the rest, the memory buffer kept its 50.
	if kinds[KindCycle] != 2 || kinds[KindEvent] != 2 || kinds[KindTelemetry] < 50 || kinds[KindTelemetry]+dropped != 200 || samples != 10*dropped {
		t.Fatalf("journal holds %v and a gap of %d batches (%d samples); want 2 cycles, the alarm, the gap event, and telemetry kept + dropped = 200", kinds, dropped, samples)
	}
}

func TestRetentionPrunesDeliveredAndShrinksFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	j := openTest(t, path, Options{Retention: 24 * time.Hour, MaintenanceInterval: time.Hour, Now: clock})
	appendTelemetryConcurrently(t, j, "ac-1", 1000)
	if err := j.Cycle(ctx, testRecord("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	appendTelemetryConcurrently(t, j, "ac-1", 1000)
	p, err := j.Pending(ctx, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range p[:len(p)-1] { // the newest telemetry stays undelivered
		ids = append(ids, e.ID)
	}
	if err := j.MarkDelivered(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.DeliveredKept(ctx); n != int64(len(ids)) {
		t.Fatalf("%d delivered entries kept within retention, want %d", n, len(ids))
	}
	sizeBefore := fileSize(t, path)
	now.Add(int64(25 * time.Hour))
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	// The cycle record was acknowledged but never came back on the
	// gateway's own subscription: it is kept until it does.
	st, _ := j.Stats(ctx)
	delivered, _ := j.DeliveredKept(ctx)
	if delivered != 1 || st.Unconfirmed != 1 || st.PendingTelemetry != 1 {
		t.Fatalf("after retention: %d delivered (%d unconfirmed), %d pending telemetry; want the unconfirmed cycle record and 1", delivered, st.Unconfirmed, st.PendingTelemetry)
	}
	cycles, _ := j.Entries(ctx, "ac-1", KindCycle)
	if err := j.MarkConfirmed(ctx, cycles[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = j.Stats(ctx)
	delivered, _ = j.DeliveredKept(ctx)
	if delivered != 0 || st.Unconfirmed != 0 || st.PendingTelemetry != 1 {
		t.Fatalf("after confirmation and retention: %d delivered, %d pending telemetry; want 0 and 1", delivered, st.PendingTelemetry)
	}
	if after := fileSize(t, path); after > sizeBefore/4 {
		t.Fatalf("journal file %d bytes before pruning, %d after: it did not shrink", sizeBefore, after)
	}
	// The chain carries on across pruning.
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	es, _ := j.Entries(ctx, "ac-1", "")
	if len(es) != 2 || es[1].Seq != es[0].Seq+1 || !containsStr(string(es[1].Payload), es[0].Hash) {
		t.Fatalf("chain after pruning: %d entries, seqs %d,%d", len(es), es[0].Seq, es[len(es)-1].Seq)
	}
	// A cycle re-observed after its record was pruned is still not
	// journaled twice.
	if err := j.Cycle(ctx, testRecord("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	if cs, _ := j.Entries(ctx, "ac-1", KindCycle); len(cs) != 0 {
		t.Fatalf("pruned cycle journaled again: %d records", len(cs))
	}
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// appendTelemetryConcurrently appends n batches from 16 goroutines, so
// they share group commits and the test stays fast.
func appendTelemetryConcurrently(t *testing.T, j *Journal, device string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := j.Telemetry(context.Background(), testTelemetry(device, 10)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// fillDisk makes the disk refuse j's writes, as a full disk would: SQLite
// may not grow the file any more, and telemetry of device fills what is
// left until the journal raises its disk-full alarm.
func fillDisk(t *testing.T, j *Journal, device string) {
	t.Helper()
	ctx := context.Background()
	var pages int64
	if err := j.rdb.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := j.exec(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	appendTelemetryConcurrently(t, j, device, 200)
	if !slices.Contains(j.Alarms(), AlarmDiskFull) {
		t.Fatalf("alarms %v, want %s", j.Alarms(), AlarmDiskFull)
	}
}
