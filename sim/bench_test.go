package sim

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
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

// BenchmarkRun200DevicesSpeed60Polled is the same with one Modbus TCP
// client in the process reading all 24 registers of every unit once per
// second, as a gateway would; the client's own CPU is included, so the
// figure is an upper bound for the simulator.
func BenchmarkRun200DevicesSpeed60Polled(b *testing.B) {
	for b.Loop() {
		s, err := New(Options{Devices: 200, Speed: 60, Seed: 1, ModbusTCP: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		done := make(chan error, 1)
		cpu0, wall0 := cpuTime(), time.Now()
		go func() { done <- s.Run(ctx) }()
		c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + s.Addrs()[0], Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		for c.Open() != nil && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond) // the server is starting
		}
		reads := 0
		for next := time.Now(); ctx.Err() == nil; next = next.Add(time.Second) {
			for unit := uint8(1); unit <= 200 && ctx.Err() == nil; unit++ {
				c.SetUnitId(unit)
				if _, err := c.ReadRegisters(0, 24, modbus.HOLDING_REGISTER); err == nil {
					reads++
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(next.Add(time.Second))):
			}
		}
		c.Close()
		<-done
		cancel()
		b.ReportMetric((cpuTime()-cpu0).Seconds()/time.Since(wall0).Seconds(), "cores")
		b.ReportMetric(float64(reads)/time.Since(wall0).Seconds(), "reads/s")
	}
}
