package cycle_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle"
	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
)

// BenchmarkObserveInLongCycle measures one poll's work (assemble + save the
// whole working state) late in a one-hour cycle polled at 1 Hz, and
// reports the size of the state saved on every poll.
func BenchmarkObserveInLongCycle(b *testing.B) {
	p, _ := profile.Builtin("sim-autoclave")
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	asm, err := cycle.New(cycle.Config{Device: "d", Profile: p, Now: clk.now}, sink, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	d := device{tempC: 134.5, kPa: 306.2, phase: 5, program: 1, counter: 2, latch: 1}
	reading, _ := p.Decode([][]uint16{d.image()})
	ctx := context.Background()
	for range 3600 {
		clk.advance(time.Second)
		if err := asm.Observe(ctx, reading); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		clk.advance(time.Millisecond) // stays within the same cycle; the sample list grows slowly
		if err := asm.Observe(ctx, reading); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(store.Bytes("d"))), "main-state-bytes")
	calls, bytes := store.Writes()
	b.ReportMetric(float64(bytes)/float64(3600+b.N), "bytes-written/poll")
	b.ReportMetric(float64(calls)/float64(3600+b.N), "saves/poll")
}
