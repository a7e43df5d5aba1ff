package modbus_test

// The behaviour every transport shares, run once per transport: Modbus TCP,
// RTU on a real pseudo-terminal, RTU over TCP (a serial device server). The
// one polling loop (modbus.Link) decides offline, back-off and recovery the
// same way whatever carries the frames; these tests hold it to that.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/drivers/rtu"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/modbusframe"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/ptyport"
	"github.com/sterigate/sterigate/sim/rtuslave"
)

// fakeBus is the units behind one link: the simulator's idle autoclaves
// (its register bank, docs/simulator.md), whose behaviour a test switches:
// answering, silent (powered off on a serial line), or answering every
// request with an exception (exception 11: powered off behind a Modbus TCP
// gateway). The RTU transports reach it through the simulator's RTU slave,
// Modbus TCP through serveMBAP.
type fakeBus struct {
	bank      *sim.Bank
	mu        sync.Mutex
	silent    map[byte]bool
	exception map[byte]byte
	nonReads  int
}

// newFakeBus has units 1..n.
func newFakeBus(t *testing.T, n int) *fakeBus {
	s, err := sim.New(sim.Options{Devices: n})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeBus{bank: s.Bank(), silent: map[byte]bool{}, exception: map[byte]byte{}}
}

func (b *fakeBus) set(f func(b *fakeBus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

func (b *fakeBus) nonReadCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nonReads
}

// HasUnit implements rtuslave.UnitPresence: a silent unit does not answer.
func (b *fakeBus) HasUnit(unit byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bank.HasUnit(unit) && !b.silent[unit]
}

func (b *fakeBus) ReadRegisters(unit, function byte, address, quantity uint16) ([]uint16, error) {
	b.mu.Lock()
	silent := b.silent[unit]
	b.mu.Unlock()
	if silent {
		return nil, rtuslave.ErrNoSuchUnit
	}
	return b.bank.ReadRegisters(unit, function, address, quantity)
}

func (b *fakeBus) RefuseWrite(byte, byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nonReads++
}

// fault makes the RTU slave answer a unit's exception.
func (b *fakeBus) fault(r rtuslave.Request) rtuslave.Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	return rtuslave.Fault{Exception: b.exception[r.Unit]}
}

// serveMBAP answers Modbus TCP frames on ln from bus until ln is closed.
func serveMBAP(t *testing.T, ln net.Listener, bus *fakeBus) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					req := make([]byte, 7)
					if _, err := io.ReadFull(c, req); err != nil {
						return
					}
					pdu := make([]byte, int(binary.BigEndian.Uint16(req[4:]))-1)
					if _, err := io.ReadFull(c, pdu); err != nil {
						return
					}
					if reply := bus.mbapReply(req[6], pdu); reply != nil {
						hdr := append([]byte(nil), req[:7]...)
						binary.BigEndian.PutUint16(hdr[4:], uint16(1+len(reply)))
						if _, err := c.Write(append(hdr, reply...)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// mbapReply is the PDU a Modbus TCP server answers, nil for silence.
func (b *fakeBus) mbapReply(unit byte, pdu []byte) []byte {
	fc := pdu[0]
	if !modbusframe.IsReadFunction(fc) {
		b.RefuseWrite(unit, fc)
		return []byte{fc | modbusframe.ExceptionBit, modbusframe.ExceptionIllegalFunction}
	}
	b.mu.Lock()
	code := b.exception[unit]
	b.mu.Unlock()
	if code != 0 {
		return []byte{fc | modbusframe.ExceptionBit, code}
	}
	values, err := b.ReadRegisters(unit, fc, binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:]))
	switch {
	case errors.Is(err, rtuslave.ErrNoSuchUnit):
		return nil
	case err != nil:
		return []byte{fc | modbusframe.ExceptionBit, modbusframe.ExceptionIllegalDataAddress}
	}
	reply := []byte{fc, byte(2 * len(values))}
	for _, v := range values {
		reply = binary.BigEndian.AppendUint16(reply, v)
	}
	return reply
}

// transportCase starts a server for bus and returns a new transport to it.
type transportCase struct {
	name  string
	start func(t *testing.T, bus *fakeBus, timeout time.Duration) modbus.Transport
}

var transportCases = []transportCase{
	{"modbus-tcp", func(t *testing.T, bus *fakeBus, timeout time.Duration) modbus.Transport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveMBAP(t, ln, bus)
		tr, err := modbus.NewTCPTransport(modbus.TCPConfig{Address: ln.Addr().String(), Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}},
	{"modbus-rtu", func(t *testing.T, bus *fakeBus, timeout time.Duration) modbus.Transport {
		port, err := ptyport.Open("")
		if err != nil {
			t.Fatal(err)
		}
		serveRTU(t, port, bus)
		tr, err := rtu.NewSerial(rtu.SerialConfig{Port: port.Path()}, rtu.Options{Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}},
	{"modbus-rtu-tcp", func(t *testing.T, bus *fakeBus, timeout time.Duration) modbus.Transport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- rtuslave.ServeListener(ctx, ln, bus, rtuslave.Options{Faults: bus.fault}) }()
		t.Cleanup(func() { cancel(); <-served })
		tr, err := rtu.NewTCP(ln.Addr().String(), rtu.Options{Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}},
}

// serveRTU runs the simulator's RTU slave on a pty until the test ends.
func serveRTU(t *testing.T, port *ptyport.Port, bus *fakeBus) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rtuslave.Serve(ctx, port, bus, rtuslave.Options{Faults: bus.fault})
	}()
	t.Cleanup(func() { cancel(); port.Close(); wg.Wait() })
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// runLink builds a link of the sim-autoclave units and runs it until the
// test ends.
func runLink(t *testing.T, tr modbus.Transport, cfg modbus.LinkConfig) (*modbus.Link, *cycletest.Sink) {
	t.Helper()
	prof, ok := profile.Builtin("sim-autoclave")
	if !ok {
		t.Fatal("no sim-autoclave profile")
	}
	for i := range cfg.Units {
		cfg.Units[i].Profile = prof
	}
	sink := &cycletest.Sink{}
	l, err := modbus.NewLink(cfg, tr, sink, &cycletest.Store{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l, sink
}

func unitStats(l *modbus.Link, device string) modbus.UnitStats {
	for _, u := range l.Stats().Units {
		if u.Device == device {
			return u
		}
	}
	return modbus.UnitStats{}
}

func eventsOf(s *cycletest.Sink, kind protocol.EventKind, device string) int {
	n := 0
	for _, e := range s.EventsOf(kind) {
		if e.Device == device {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

// A unit that does not answer goes offline after exactly offline_after
// failed polls, is backed off, and does not stall the unit beside it; when
// it answers again it comes back online.
func TestSilentUnitOfflineAfterNBackedOffAndRecovers(t *testing.T) {
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus(t, 2)
			bus.set(func(b *fakeBus) { b.silent[2] = true })
			tr := tc.start(t, bus, 150*time.Millisecond)
			l, sink := runLink(t, tr, modbus.LinkConfig{Name: tc.name, BackoffMax: 600 * time.Millisecond, Units: []modbus.UnitConfig{
				{Device: "live", Unit: 1, PollInterval: 10 * time.Millisecond},
				{Device: "dead", Unit: 2, PollInterval: 100 * time.Millisecond, OfflineAfter: 4},
			}})
			eventually(t, 30*time.Second, "the dead unit offline and the live one polled", func() bool {
				// The event is emitted after the failure that earns it is
				// counted: seen before 4 failures, it came too early.
				offline := eventsOf(sink, protocol.EventOffline, "dead")
				dead := unitStats(l, "dead")
				if offline > 0 && dead.Timeouts+dead.TransportErrors < 4 {
					t.Fatalf("offline after %d failed polls, want offline_after 4: %+v", dead.Timeouts+dead.TransportErrors, dead)
				}
				return offline == 1 && unitStats(l, "live").GoodPolls >= 100
			})
			dead, live := unitStats(l, "dead"), unitStats(l, "live")
			if dead.Timeouts == 0 || dead.GoodPolls != 0 || dead.Backoff <= 100*time.Millisecond || !dead.Offline {
				t.Fatalf("dead unit %+v: want timeouts, a growing back-off and offline", dead)
			}
			// Without back-off the dead unit would cost one timeout per
			// round; with it the live unit gets many polls per timeout.
			if live.GoodPolls < 5*dead.Polls {
				t.Fatalf("%d good polls of the live unit for %d polls of the dead one: back-off is not working", live.GoodPolls, dead.Polls)
			}
			if eventsOf(sink, protocol.EventOffline, "live") != 0 {
				t.Fatalf("the live unit went offline: %+v", live)
			}
			if st := l.Units()[1].Status(); st.State != protocol.DeviceOffline {
				t.Fatalf("dead unit status %+v", st)
			}

			bus.set(func(b *fakeBus) { b.silent[2] = false })
			eventually(t, 30*time.Second, "the unit back online", func() bool {
				return eventsOf(sink, protocol.EventOnline, "dead") == 1 && unitStats(l, "dead").GoodPolls >= 3
			})
			if s := unitStats(l, "dead"); s.ConsecutiveFailures != 0 || s.Backoff != 0 || s.Offline {
				t.Fatalf("recovered unit %+v", s)
			}
			if n := eventsOf(sink, protocol.EventOffline, "dead"); n != 1 {
				t.Fatalf("%d offline events for one outage", n)
			}
			if st := l.Units()[1].Status(); st.State != protocol.DeviceOnline {
				t.Fatalf("recovered unit status %+v", st)
			}
		})
	}
}

// Exceptions 10 and 11 say the unit is not there (powered off behind a
// gateway): offline like a timeout, with an offline event and status, and
// back-off. Any other exception says the unit is there but the profile
// asks for what it does not have: never offline, never backed off.
func TestGatewayExceptionsMeanOfflineOthersDoNot(t *testing.T) {
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus(t, 4)
			bus.set(func(b *fakeBus) {
				b.exception[2] = modbusframe.ExceptionGatewayTargetFailedToRespond
				b.exception[3] = modbusframe.ExceptionIllegalDataAddress
				b.exception[4] = modbusframe.ExceptionGatewayPathUnavailable
			})
			tr := tc.start(t, bus, time.Second)
			l, sink := runLink(t, tr, modbus.LinkConfig{Name: tc.name, BackoffMax: 200 * time.Millisecond, Units: []modbus.UnitConfig{
				{Device: "ok", Unit: 1, PollInterval: 10 * time.Millisecond},
				{Device: "off", Unit: 2, PollInterval: 10 * time.Millisecond},
				{Device: "misconfigured", Unit: 3, PollInterval: 10 * time.Millisecond},
				{Device: "no-path", Unit: 4, PollInterval: 10 * time.Millisecond},
			}})
			eventually(t, 20*time.Second, "offline events of the absent units and exceptions of the misconfigured one", func() bool {
				return eventsOf(sink, protocol.EventOffline, "off") == 1 && eventsOf(sink, protocol.EventOffline, "no-path") == 1 &&
					unitStats(l, "misconfigured").Exceptions >= 30
			})
			for i, dev := range []string{"off", "no-path"} {
				s := unitStats(l, dev)
				if s.Exceptions < 3 || s.Timeouts+s.TransportErrors != 0 || s.ConsecutiveFailures < 3 || s.Backoff <= 10*time.Millisecond || !s.Offline {
					t.Errorf("%s: %+v: want exceptions, offline and backed off", dev, s)
				}
				code := []byte{11, 10}[i]
				if s.ExceptionsByCode[code] != s.Exceptions {
					t.Errorf("%s: exceptions by code %v, want all %d", dev, s.ExceptionsByCode, code)
				}
				if st := l.Units()[1+2*i].Status(); st.State != protocol.DeviceOffline || st.Error == "" {
					t.Errorf("%s: status %+v, want offline with the reason", dev, st)
				}
			}
			mis := unitStats(l, "misconfigured")
			if mis.ConsecutiveFailures != 0 || mis.Backoff != 0 || mis.Offline || eventsOf(sink, protocol.EventOffline, "misconfigured") != 0 {
				t.Errorf("misconfigured unit %+v: an exception 2 is not an outage", mis)
			}
			if ok := unitStats(l, "ok"); ok.GoodPolls == 0 || eventsOf(sink, protocol.EventOffline, "ok") != 0 {
				t.Errorf("the good unit: %+v", ok)
			}

			// Powered on again: online, and the back-off is over.
			bus.set(func(b *fakeBus) { delete(b.exception, 2) })
			eventually(t, 20*time.Second, "the unit back online", func() bool {
				return eventsOf(sink, protocol.EventOnline, "off") == 1 && unitStats(l, "off").ConsecutiveFailures == 0
			})
			if st := l.Units()[1].Status(); st.State != protocol.DeviceOnline {
				t.Errorf("status after recovery %+v", st)
			}
		})
	}
}

// Whatever the transport, nothing but a read function code reaches the
// device: a write asked of the transport is refused before the wire, and
// the link stays usable.
func TestNoWriteReachesTheDeviceOnAnyTransport(t *testing.T) {
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus(t, 1)
			tr := tc.start(t, bus, time.Second)
			ctx := context.Background()
			if _, err := tr.Open(ctx); err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			for _, fc := range []byte{0, 5, 6, 7, 8, 15, 16, 17, 20, 21, 22, 23, 24, 43, 0x83} {
				if _, err := tr.ReadRegisters(ctx, 1, fc, 0, 1); !errors.Is(err, modbus.ErrWriteRefused) {
					t.Errorf("function %d: err = %v, want ErrWriteRefused", fc, err)
				}
			}
			if !tr.IsOpen() {
				t.Fatal("a refused request closed the link")
			}
			img, _ := bus.bank.Image(1)
			if v, err := tr.ReadRegisters(ctx, 1, 3, 5, 2); err != nil || v[0] != img[5] || v[1] != img[6] {
				t.Fatalf("read after the refused writes: %v %v", v, err)
			}
			if n := bus.nonReadCount(); n != 0 {
				t.Fatalf("the device received %d non-read requests", n)
			}
		})
	}
}
