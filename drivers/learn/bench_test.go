package learn

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

// synthRecording steps a simulator (standard register map) one second at
// a time and lays its registers out as place says (image index → holding
// register address); every other address of the blocks holds filler: a
// mix of constants, random walks, toggling bits, timers, slow counters and
// noise, the kind of registers a real controller has around the few that
// matter.
func synthRecording(t testing.TB, sc *scenario.Scenario, seconds int, blocks []Block, place map[int]int, skip int) *Recording {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: 1, Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(float64(skip))
	rec := &Recording{Header: Header{Format: RecordingFormat, Version: RecordingVersion, Device: "synthetic", Unit: 1,
		StartedAt: time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC), TimeScale: 1, IntervalS: 1, Blocks: blocks}}
	at := map[int]int{}
	for idx, addr := range place {
		at[addr] = idx
	}
	rng := rand.New(rand.NewPCG(7, 7))
	state := map[int]float64{}
	for k := 0; k < seconds; k++ {
		s.Advance(1)
		img, _ := s.Bank().Image(1)
		smp := Sample{T: float64(k), Values: make([][]uint16, len(blocks))}
		for bi, b := range blocks {
			v := make([]uint16, b.Count)
			for j := range v {
				addr := int(b.Start) + j
				if idx, ok := at[addr]; ok {
					v[j] = img[idx]
					continue
				}
				switch addr % 8 {
				case 0: // constant
					v[j] = uint16(addr * 7)
				case 1: // random walk
					state[addr] += rng.NormFloat64() * 3
					v[j] = uint16(int(state[addr]) + 20000)
				case 2: // a bit that toggles now and then
					if rng.IntN(300) == 0 {
						state[addr] = 1 - state[addr]
					}
					v[j] = uint16(state[addr])
				case 3: // a timer
					v[j] = uint16((k + addr) % 3600)
				case 4: // a noisy level
					v[j] = uint16(500 + rng.IntN(40))
				case 5: // a slow counter
					v[j] = uint16(k / 600)
				case 6:
					v[j] = 0
				default: // raw noise
					v[j] = uint16(rng.Uint32())
				}
			}
			smp.Values[bi] = v
		}
		rec.Samples = append(rec.Samples, smp)
	}
	return rec
}

// bigRecording is 45 minutes at 1 Hz of 2000 holding registers, the
// simulator's 24 among them at 1000–1023: two minutes of idle, then a
// 40-minute 121 °C cycle, after a warm-up cycle that left the latched
// block holding a finished one.
func bigRecording(t testing.TB) *Recording {
	var blocks []Block
	for a := 0; a < 2000; a += 125 {
		blocks = append(blocks, Block{Function: 3, Start: uint16(a), Count: 125})
	}
	place := map[int]int{}
	for i := 0; i < sim.RegisterCount; i++ {
		place[i] = 1000 + i
	}
	return synthRecording(t, learnScenario(t, "121-15", 812), 45*60, blocks, place, 20*60)
}

// peakHeap samples the live heap while fn runs and returns its maximum.
func peakHeap(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(done)
	wg.Wait()
	return peak
}

// BenchmarkAnalyse45Minutes2000Registers: reading the recording file of a
// 45-minute cycle of 2000 registers back, analysing it and writing the
// draft. Target: ≤ 10 s and ≤ 200 MB of heap.
func BenchmarkAnalyse45Minutes2000Registers(b *testing.B) {
	rec := bigRecording(b)
	var file bytes.Buffer
	w, _ := NewRecordingWriter(&file, rec.Header)
	for _, s := range rec.Samples {
		w.Sample(s)
	}
	b.ReportMetric(float64(file.Len())/1e6, "file-MB")
	rec = nil
	runtime.GC()
	b.ResetTimer()
	var peak uint64
	for range b.N {
		p := peakHeap(func() {
			back, err := ReadRecording(bytes.NewReader(file.Bytes()), "big.jsonl")
			if err != nil {
				b.Fatal(err)
			}
			res := Analyse(back)
			if _, err := Draft(res, back, DraftOptions{}); err != nil {
				b.Fatal(err)
			}
			for role, addr := range map[profile.Role]uint16{profile.RoleChamberTemperature: 1000, profile.RoleChamberPressure: 1002,
				profile.RolePhase: 1003, profile.RoleCycleCounter: 1006, profile.RoleLastCycle: 1017} {
				if f := res.Find(role); f == nil || f.Address != addr {
					b.Fatalf("%s not found at %d: %+v", role, addr, f)
				}
			}
		})
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// BenchmarkScan2000Registers: the scan of the default ranges of a device
// with 2000 readable registers in five tables (not starting on round
// addresses, one of them 1-based) and no coils or inputs. What matters is
// the number of requests: at the default 5 requests/s they project to the
// time the scan takes on a real device (target ≤ 2 min).
func BenchmarkScan2000Registers(b *testing.B) {
	d := &tableDevice{tables: []Range{{3, 1, 401}, {3, 950, 1450}, {4, 0, 300}, {4, 2990, 3490}, {4, 5100, 5400}},
		unsupported: map[byte]bool{1: true, 2: true}}
	var sum *ScanSummary
	for range b.N {
		var err error
		if sum, err = Scan(context.Background(), d, ScanOptions{Unit: 1, Rate: -1}); err != nil {
			b.Fatal(err)
		}
	}
	if regs, _ := sum.ReadableCount(); regs != 2000 {
		b.Fatalf("found %d registers, want 2000: %v", regs, sum.Readable)
	}
	b.ReportMetric(float64(sum.Requests), "requests")
	b.ReportMetric(float64(sum.Requests)/DefaultRate, "projected-s")
}
