package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// BenchmarkDeviceStatuses200 reads the statuses of 200 devices that each
// finished a cycle, as the publisher does at every status change of any
// device and the console at every scrape.
func BenchmarkDeviceStatuses200(b *testing.B) {
	j := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
	ctx := context.Background()
	for i := range 200 {
		rec := testRecord(fmt.Sprintf("ac-%03d", i), 1)
		rec.Samples = nil
		if err := j.Cycle(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if err := j.Event(ctx, protocol.Event{Device: rec.Device, Kind: protocol.EventPhase, Phase: protocol.PhaseHeating, Cycle: 2, At: time.Now().UTC()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sts, err := j.DeviceStatuses(ctx)
		if err != nil || len(sts) != 200 {
			b.Fatal(len(sts), err)
		}
	}
}
