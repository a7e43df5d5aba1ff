package journal

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// With KeepUnarchived, retention prunes only entries a receipt marked
// archived; the oldest unarchived entry's age follows the receipts.
func TestRetentionKeepsUnarchived(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now.Store(start.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{Retention: time.Hour, MaintenanceInterval: time.Hour, Now: clock, KeepUnarchived: true})
	for i := range 10 {
		if err := j.Telemetry(ctx, testTelemetry("ac-1", i)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := j.Pending(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range p {
		ids = append(ids, e.ID)
	}
	if err := j.MarkDelivered(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	oldest, err := j.OldestUnarchived(ctx)
	if err != nil || !oldest.Equal(start) {
		t.Fatalf("oldest unarchived %v (%v), want %v", oldest, err, start)
	}
	if err := j.MarkArchived(ctx, map[string]uint64{"ac-1": 4}); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Hour))
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.DeliveredKept(ctx); n != 6 {
		t.Fatalf("%d delivered entries kept, want the 6 unarchived", n)
	}
	later, _ := j.UnarchivedAfter(ctx, 0, clock(), 100)
	if len(later) != 6 || later[0].Seq != 5 {
		t.Fatalf("unarchived entries %d from seq %d, want 6 from seq 5", len(later), later[0].Seq)
	}
	if err := j.MarkArchived(ctx, map[string]uint64{"ac-1": 10}); err != nil {
		t.Fatal(err)
	}
	if oldest, _ := j.OldestUnarchived(ctx); !oldest.IsZero() {
		t.Fatalf("oldest unarchived %v after the receipt for seq 10, want none", oldest)
	}
	if err := j.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.DeliveredKept(ctx); n != 0 {
		t.Fatalf("%d delivered entries kept after they were archived, want 0", n)
	}
}
