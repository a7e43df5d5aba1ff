package journal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// BenchmarkDurableAppendsGroupCommit measures telemetry appends that each
// wait for their own fsynced commit, from 512 concurrent producers (spread
// over 20 sterilizers) that share group commits. Each batch holds 10 samples (~1 KB of JSON).
// Producers only share a commit while they wait, so the rate grows with
// their number until the single writer is busy. "signed" runs with a
// signing key, as the gateway does: telemetry is not signed one batch at
// a time, but checkpoints cover it (every 60 s, as in production).
func BenchmarkDurableAppendsGroupCommit(b *testing.B) {
	for _, signed := range []bool{false, true} {
		b.Run(signedName(signed), func(b *testing.B) { benchGroupCommit(b, signed, 0) })
	}
}

// BenchmarkDurableMixedAppendsGroupCommit is the same with one event (a
// phase change, an alarm) in every ten appends: with a signing key each
// of those events is signed by the single writer, inside the commit.
func BenchmarkDurableMixedAppendsGroupCommit(b *testing.B) {
	for _, signed := range []bool{false, true} {
		b.Run(signedName(signed), func(b *testing.B) { benchGroupCommit(b, signed, 10) })
	}
}

func signedName(signed bool) string {
	if signed {
		return "signed"
	}
	return "unsigned"
}

func benchGroupCommit(b *testing.B, signed bool, eventEvery int) {
	opts := Options{}
	if signed {
		opts.Signer = testSigner(b, 1)
	}
	j := openTest(b, filepath.Join(b.TempDir(), "bench.db"), opts)
	ctx := context.Background()
	var dev atomic.Int64
	b.SetParallelism(256) // 512 producers on 2 CPUs
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		device := fmt.Sprintf("ac-%02d", dev.Add(1)%20) // 20 sterilizers
		batch := testTelemetry(device, 10)
		ev := protocol.Event{Device: device, Kind: protocol.EventPhase, Phase: protocol.PhaseSterilizing, Cycle: 42}
		for i := 0; pb.Next(); i++ {
			var err error
			if eventEvery > 0 && i%eventEvery == 0 {
				err = j.Event(ctx, ev)
			} else {
				err = j.Telemetry(ctx, batch)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkDurableCycleAppendSequential is one producer waiting for each
// cycle record's own fsynced commit: the latency a driver sees.
func BenchmarkDurableCycleAppendSequential(b *testing.B) {
	j := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		rec := testRecord("ac-1", uint64(i+1))
		rec.Samples = make([]protocol.Sample, 0)
		if err := j.Cycle(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollStateSaves is what every good poll of a device in a cycle
// asks of the journal: its open cycle's last chunk of samples (~7 KB) and
// its state (~1 KB), durable before the poll ends. 200 devices save
// concurrently, as 200 links do. "separate" saves them with one call each
// (two commits in a row for one poll), "together" with one SaveStates
// call. One op is one poll; cpu-µs/poll is the process's CPU time per poll.
func BenchmarkPollStateSaves(b *testing.B) {
	for _, together := range []bool{false, true} {
		name := "separate"
		if together {
			name = "together"
		}
		b.Run(name, func(b *testing.B) {
			j := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
			ctx := context.Background()
			chunk := make([]byte, 7000)
			state := make([]byte, 1000)
			var dev atomic.Int64
			b.SetParallelism(100) // 200 producers on 2 CPUs
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				device := fmt.Sprintf("ac-%03d", dev.Add(1))
				chunkKey := device + "/cycle-samples/0"
				for pb.Next() {
					var err error
					if together {
						err = j.SaveStates(ctx, []protocol.SavedState{{Key: chunkKey, State: chunk}, {Key: device, State: state}})
					} else if err = j.SaveState(ctx, chunkKey, chunk); err == nil {
						err = j.SaveState(ctx, device, state)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(processCPU(b)-cpu0)/1e3/float64(b.N), "cpu-µs/poll")
		})
	}
}

// processCPU is the CPU time (user + system) the whole process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPollStateSavesPaced is the state saves of 200 devices polled
// every second, as a gateway makes them: spread evenly over the second,
// each device waiting for its own save. One op is one save (a 3.5 KB
// chunk of samples and a 1 KB state, the average of a device in a cycle);
// cpu-µs/save is the process's CPU time per save. The benchmark runs in
// real time, 200 ops a second: use -benchtime 1000x.
func BenchmarkPollStateSavesPaced(b *testing.B) {
	const devices = 200
	j := openTest(b, filepath.Join(b.TempDir(), "bench.db"), Options{})
	ctx := context.Background()
	chunk, state := make([]byte, 3500), make([]byte, 1000)
	ticks := make([]chan struct{}, devices)
	var wg sync.WaitGroup
	for i := range devices {
		ticks[i] = make(chan struct{}, 1)
		device := fmt.Sprintf("ac-%03d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks[i] {
				if err := j.SaveStates(ctx, []protocol.SavedState{{Key: device + "/cycle-samples/0", State: chunk}, {Key: device, State: state}}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	cpu0 := processCPU(b)
	b.ResetTimer()
	tick := time.NewTicker(time.Second / devices)
	for i := range b.N {
		<-tick.C
		ticks[i%devices] <- struct{}{}
	}
	tick.Stop()
	for _, c := range ticks {
		close(c)
	}
	wg.Wait()
	b.ReportMetric(float64(processCPU(b)-cpu0)/1e3/float64(b.N), "cpu-µs/save")
}
