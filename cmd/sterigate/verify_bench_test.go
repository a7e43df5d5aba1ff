package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// BenchmarkVerifyJournal measures 'sterigate verify --journal' on a
// journal of 20 sterilizers as a gateway writes it, sampling at 1 Hz:
// per device, a batch of 10 samples every 10 s, a signed checkpoint every
// 6 batches (once a minute), a phase event every 27 batches (ten per
// 45-minute cycle) and a cycle record of 2,700 samples every 270. It
// reports journal entries checked per second, reading from SQLite and
// every signature check included.
func BenchmarkVerifyJournal(b *testing.B) {
	const devices, batchesPerDevice = 20, 1080
	path := filepath.Join(b.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{Gateway: "gw", Site: "dax", Signer: seededSigner(b, 1), CheckpointEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	for i := range batchesPerDevice {
		var wg sync.WaitGroup
		for d := range devices {
			device := fmt.Sprintf("autoclave-%02d", d+1)
			wg.Go(func() {
				batch := protocol.Telemetry{Device: device, Cycle: uint64(i / 270)}
				for s := range 10 {
					batch.Samples = append(batch.Samples, protocol.Sample{At: at.Add(time.Duration(i*10+s) * time.Second), TempC: 134.2, PressureKPa: 304.5, Phase: protocol.PhaseSterilizing})
				}
				if err := j.Telemetry(ctx, batch); err != nil {
					b.Error(err)
					return
				}
				if i%27 == 26 {
					j.Event(ctx, protocol.Event{Device: device, Kind: protocol.EventPhase, Phase: protocol.PhaseDrying, Cycle: uint64(i / 270)})
				}
				if i%270 == 269 {
					rec := protocol.CycleRecord{Device: device, Cycle: uint64(i / 270), Program: "134-porous", StartedAt: at, EndedAt: at.Add(time.Hour),
						Result: protocol.ResultPassed, Complete: true, Source: "modbus-tcp"}
					for s := range 2700 {
						rec.Samples = append(rec.Samples, protocol.Sample{At: at.Add(time.Duration(s) * time.Second), TempC: 134.2, PressureKPa: 304.5, Phase: protocol.PhaseSterilizing})
					}
					if err := j.Cycle(ctx, rec); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if i%6 == 5 {
			if err := j.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
	r, err := journal.OpenReader(path)
	if err != nil {
		b.Fatal(err)
	}
	entries := 0
	r.Scan(ctx, journal.Filter{}, func(journal.Entry) error { entries++; return nil })
	r.Close()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := verifyEvidence(ctx, []string{"--journal", path}, nil, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(entries*b.N)/time.Since(start).Seconds(), "entries/s")
	b.ReportMetric(float64(entries), "entries")
}
