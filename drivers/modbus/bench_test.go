package modbus_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/sim"
)

// processCPU is the CPU time (user + system) the whole process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freePortRange finds n consecutive loopback ports nobody listens on.
func freePortRange(b *testing.B, n int) int {
	for base := 20000; base+n < 60000; base += n {
		var lns []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	b.Fatalf("no %d consecutive free ports", n)
	return 0
}

// BenchmarkPoll500TCPDevicesAt1s: 500 sterilizers, each its own Modbus TCP
// device (the simulator in process, one port per device), each polled
// every second by its own modbus.Link with the built-in profile, decoded and
// assembled (state saved in memory). One op is one poll. It reports the
// process CPU time per poll and the share of one core the polling takes:
// the CPU measured while the links run, minus the CPU the simulators use
// alone over as long (their physics and tickers), divided by the wall time.
// What remains includes the simulator's side of every request (its Modbus
// TCP server), so it overstates the gateway's own share.
func BenchmarkPoll500TCPDevicesAt1s(b *testing.B) {
	const (
		devices  = 500
		perSim   = 125 // the simulator serves at most 247 unit ids
		interval = time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var addrs []string
	base := freePortRange(b, devices)
	errs := make(chan error, devices/perSim)
	for i := range devices / perSim {
		s, err := sim.New(sim.Options{Devices: perSim, ModbusTCP: fmt.Sprintf("127.0.0.1:%d", base+i*perSim), PortPerDevice: true, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, s.Addrs()...)
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.Run(ctx) }()
	}
	// The simulators alone, for the baseline.
	time.Sleep(2 * time.Second) // let the servers come up and the tickers settle: a measurement window, not synchronisation
	base0, baseStart := processCPU(b), time.Now()
	time.Sleep(5 * time.Second) // baseline measurement window
	simOnly := float64(processCPU(b)-base0) / float64(time.Since(baseStart))
	select {
	case err := <-errs:
		b.Fatalf("a simulator stopped: %v", err)
	default:
	}

	prof, _ := profile.Builtin("sim-autoclave")
	var links []*modbus.Link
	for i, addr := range addrs {
		tr, err := modbus.NewTCPTransport(modbus.TCPConfig{Address: addr, Timeout: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		l, err := modbus.NewLink(modbus.LinkConfig{Name: addr, Units: []modbus.UnitConfig{
			{Device: "ster-" + addr, Unit: byte(i%perSim + 1), Profile: prof, PollInterval: interval, Source: "modbus-tcp"},
		}}, tr, &cycletest.Sink{}, &cycletest.Store{}, quiet())
		if err != nil {
			b.Fatal(err)
		}
		links = append(links, l)
	}
	counts := func() (good, failed uint64) {
		for _, l := range links {
			for _, u := range l.Stats().Units {
				good += u.GoodPolls
				failed += u.Timeouts + u.TransportErrors + u.Exceptions + u.DecodeErrors
			}
		}
		return good, failed
	}
	goodPolls := func() uint64 { n, _ := counts(); return n }
	for _, l := range links {
		wg.Add(1)
		go func() { defer wg.Done(); l.Run(ctx) }()
	}
	// The first round dials 500 connections: measure from the second. The
	// window is as long as b.N polls take at 500 polls/s; the counters are
	// read only at its ends, so that watching costs nothing.
	for goodPolls() < devices {
		time.Sleep(100 * time.Millisecond) // measurement resolution, not synchronisation
	}
	b.ResetTimer()
	polls0, failed0 := counts()
	start, cpu0 := time.Now(), processCPU(b)
	time.Sleep(time.Duration(b.N) * interval / devices) // the measurement window
	wall, cpu := time.Since(start), processCPU(b)-cpu0
	polls, failed := counts()
	polls, failed = polls-polls0, failed-failed0
	b.StopTimer()
	cancel()

	polling := float64(cpu) - simOnly*float64(wall)
	b.ReportMetric(float64(polls)/wall.Seconds(), "polls/s")
	b.ReportMetric(float64(cpu)/float64(polls)/1e3, "process-cpu-µs/poll")
	b.ReportMetric(polling/float64(polls)/1e3, "polling-cpu-µs/poll")
	b.ReportMetric(100*polling/float64(wall), "%-of-one-core")
	b.ReportMetric(100*simOnly, "sim-alone-%-of-one-core")
	if failed != 0 {
		b.Fatalf("%d polls failed during the measurement", failed)
	}
}
