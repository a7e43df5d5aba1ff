package sim

import (
	"context"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRun200DevicesSpeed60 runs one simulator with 200 autoclaves at
// speed 60 (TCP server listening) for 3 s of wall time per iteration and
// reports the CPU it used as "cores" (CPU seconds per wall second). Goal:
// under 0.25.
func BenchmarkRun200DevicesSpeed60(b *testing.B) {
	for b.Loop() {
		s, err := New(Options{Devices: 200, Speed: 60, Seed: 1, ModbusTCP: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		cpu0, wall0 := cpuTime(), time.Now()
		if err := s.Run(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.ReportMetric((cpuTime()-cpu0).Seconds()/time.Since(wall0).Seconds(), "cores")
	}
}

// BenchmarkDeviceSecond is the cost of stepping one device by one
// simulated second, register publication included.
func BenchmarkDeviceSecond(b *testing.B) {
	s, err := New(Options{Devices: 200, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s.Advance(1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200, "ns/device-second")
}
