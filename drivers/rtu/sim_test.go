package rtu

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/modbusframe"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/ptyport"
	"github.com/sterigate/sterigate/sim/rtuslave"
)

// idleAutoclaves is the simulator's register bank for n idle autoclaves,
// units 1..n (docs/simulator.md); it counts refused writes.
func idleAutoclaves(t testing.TB, n int) *sim.Bank {
	t.Helper()
	s, err := sim.New(sim.Options{Devices: n})
	if err != nil {
		t.Fatal(err)
	}
	return s.Bank()
}

// serveSlave runs rtuslave.Serve on rw until the test ends.
func serveSlave(t *testing.T, ctx context.Context, rw interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}, regs rtuslave.Registers, opts rtuslave.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rtuslave.Serve(ctx, rw, regs, opts)
	}()
	t.Cleanup(func() {
		cancel()
		rw.Close()
		wg.Wait()
	})
}

// Real modbus.Units with the built-in simulator profile on one virtual bus
// served by the simulator's RTU slave: three answer (one with a noisy line),
// one is silent.
func TestBusPollsModbusUnitsOnTheSimulatorSlave(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port, err := ptyport.Open("")
	if err != nil {
		t.Fatal(err)
	}
	regs := idleAutoclaves(t, 3)
	var served atomic.Int64
	serveSlave(t, ctx, port, regs, rtuslave.Options{Faults: func(r rtuslave.Request) rtuslave.Fault {
		n := served.Add(1)
		switch {
		case r.Unit == 2 && n%5 == 0:
			return rtuslave.Fault{CorruptCRC: true}
		case r.Unit == 3 && n%7 == 0:
			return rtuslave.Fault{Garbage: []byte{0xFF, 0x00, 0x03}}
		}
		return rtuslave.Fault{}
	}})

	l, sink := runLink(t, mustSerial(t, SerialConfig{Port: port.Path()}, Options{Timeout: 400 * time.Millisecond}), modbus.LinkConfig{}, simProfile(t), 5*time.Millisecond, 1, 2, 3, 4)

	eventually(t, 20*time.Second, "good polls of the three live units", func() bool {
		return unitStats(l, 1).GoodPolls >= 20 && unitStats(l, 2).GoodPolls >= 20 && unitStats(l, 3).GoodPolls >= 20
	})
	if s := unitStats(l, 2); s.CRCErrors == 0 || s.Timeouts != 0 {
		t.Fatalf("unit 2 stats %+v: the injected CRC errors were not counted", s)
	}
	if s := unitStats(l, 4); s.Timeouts == 0 || s.GoodPolls != 0 {
		t.Fatalf("silent unit 4 stats %+v: want timeouts", s)
	}
	eventually(t, 5*time.Second, "the silent unit's offline event", func() bool {
		for _, ev := range sink.EventsOf(protocol.EventOffline) {
			if ev.Device == "ster4" {
				return true
			}
		}
		return false
	})
	for u := byte(1); u <= 3; u++ {
		if w := regs.WritesRefused(u); w != 0 {
			t.Fatalf("unit %d received %d write requests", u, w)
		}
	}
}

// RTU over TCP: the simulator's RTU slave behind a TCP listener, like a
// serial device server in transparent mode.
func TestRTUOverTCPAgainstTheSimulatorSlave(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- rtuslave.ServeListener(ctx, counted, idleAutoclaves(t, 2), rtuslave.Options{}) }()
	t.Cleanup(func() { cancel(); <-served })

	tr, err := NewTCP(ln.Addr().String(), Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := runLink(t, tr, modbus.LinkConfig{}, simProfile(t), 5*time.Millisecond, 1, 2)
	eventually(t, 10*time.Second, "good polls over RTU-over-TCP", func() bool {
		return unitStats(l, 1).GoodPolls >= 20 && unitStats(l, 2).GoodPolls >= 20
	})
	if s := l.Stats(); s.Opens != 1 || counted.accepts.Load() != 1 {
		t.Fatalf("link stats %+v, %d accepts: a healthy link must stay on one connection", s, counted.accepts.Load())
	}
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// BenchmarkPollRate19200Baud8Units measures the one polling loop
// (modbus.Link, real modbus.Units with the built-in simulator profile) on a
// virtual 19200-baud 8E1 bus with 8 units, each poll one FC3 read of 24
// registers. A pty has no line timing, so the slave delays each reply by the
// time the request and the reply would occupy the wire plus t3.5; the
// master adds its own t3.5 before each request, as on a real line. It
// reports polls/s and the share of the line limit they reach.
func BenchmarkPollRate19200Baud8Units(b *testing.B) {
	const baud = 19200
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	port, err := ptyport.Open("")
	if err != nil {
		b.Fatal(err)
	}
	ids := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	regs := idleAutoclaves(b, len(ids))
	char := modbusframe.CharacterTime(baud, 11)
	t35 := modbusframe.FrameSilence(baud, 11)
	slaveDone := make(chan struct{})
	go func() {
		defer close(slaveDone)
		rtuslave.Serve(ctx, port, regs, rtuslave.Options{Baud: baud, Faults: func(r rtuslave.Request) rtuslave.Fault {
			replyChars := 5 + 2*int(r.Quantity)
			return rtuslave.Fault{Delay: time.Duration(8+replyChars)*char + t35}
		}})
	}()
	defer func() { cancel(); port.Close(); <-slaveDone }()

	prof, _ := profile.Builtin("sim-autoclave")
	var cfg modbus.LinkConfig
	for _, id := range ids {
		// Due all the time: the line is the only limit.
		cfg.Units = append(cfg.Units, modbus.UnitConfig{Device: unitName(id), Unit: id, Profile: prof, PollInterval: time.Nanosecond})
	}
	tr, err := NewSerial(SerialConfig{Port: port.Path(), Baud: baud}, Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	link, err := modbus.NewLink(cfg, tr, &cycletest.Sink{}, &cycletest.Store{}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	goodPolls := func() uint64 {
		var n uint64
		for _, u := range link.Stats().Units {
			n += u.GoodPolls
		}
		return n
	}
	linkCtx, stopLink := context.WithCancel(ctx)
	linkDone := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { defer close(linkDone); link.Run(linkCtx) }()
	for goodPolls() < uint64(b.N) {
		time.Sleep(time.Millisecond) // measurement resolution, not synchronisation
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopLink()
	<-linkDone

	perPoll := time.Duration(8+5+48)*char + 2*t35
	rate := float64(goodPolls()) / elapsed.Seconds()
	limit := float64(time.Second) / float64(perPoll)
	b.ReportMetric(rate, "polls/s")
	b.ReportMetric(limit, "line-limit-polls/s")
	b.ReportMetric(100*rate/limit, "%-of-line-limit")
	for _, u := range link.Stats().Units {
		if u.Timeouts+u.CRCErrors+u.TransportErrors != 0 {
			b.Fatalf("unit %d: %+v", u.Unit, u)
		}
	}
}
