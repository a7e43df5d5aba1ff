package journal

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// TestLatestCycleRecord: the newest revision of a cycle is found, also
// after a restart, and only that cycle's ids count (31 is not 310, nor
// 31:rx); a pruned record still says it exists.
func TestLatestCycleRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	j := openTest(t, path, Options{Retention: 24 * time.Hour, MaintenanceInterval: time.Hour, Now: clock})
	if got, err := j.LatestCycleRecord(ctx, "ac-1", 0, 31); err != nil || got != nil {
		t.Fatalf("empty journal: %+v, %v; want nil, nil", got, err)
	}
	cut := testRecord("ac-1", 31)
	cut.Complete, cut.Result = false, protocol.ResultUnknown
	for _, r := range []protocol.CycleRecord{cut, testRecord("ac-1", 310), testRecord("ac-2", 31)} {
		if err := j.Cycle(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.LatestCycleRecord(ctx, "ac-1", 0, 31)
	if err != nil || got == nil || got.ID != "dax:ac-1:31" || got.Revision != 0 || got.Complete || got.Seq != 1 {
		t.Fatalf("after the first record: %+v, %v", got, err)
	}
	r2 := testRecord("ac-1", 31)
	r2.Revision, r2.Supersedes = 2, got.ID
	if err := j.Cycle(ctx, r2); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = openTest(t, path, Options{Retention: 24 * time.Hour, MaintenanceInterval: time.Hour, Now: clock})
	got, err = j.LatestCycleRecord(ctx, "ac-1", 0, 31)
	if err != nil || got == nil || got.ID != "dax:ac-1:31:r2" || got.Revision != 2 || got.Supersedes != "dax:ac-1:31" || !got.Complete {
		t.Fatalf("after a restart: %+v, %v; want revision 2", got, err)
	}
	// Once delivered and past retention, the payload is gone but the id
	// is not: the record still exists, its content unknown.
	p, err := j.Pending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range p {
		ids = append(ids, e.ID)
	}
	if err := j.MarkConfirmed(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(25 * time.Hour))
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = j.LatestCycleRecord(ctx, "ac-1", 0, 31)
	if err != nil || got == nil || got.ID != "dax:ac-1:31:r2" || got.Revision != 2 || got.Result != protocol.ResultUnknown || got.Complete {
		t.Fatalf("after pruning: %+v, %v; want the identity of revision 2 only", got, err)
	}
}
