package rtu

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial/enumerator"

	"github.com/sterigate/sterigate/sim/ptyport"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openPty opens a pty with a symlink in the test's temp dir and a slave on
// its master serving units.
func openPty(t *testing.T, ctx context.Context, link string, units ...byte) (*ptyport.Port, *testSlave) {
	t.Helper()
	p, err := ptyport.Open(link)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSlave(p, units...)
	s.start(t, ctx, p)
	return p, s
}

func TestClientOverPty(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, filepath.Join(t.TempDir(), "ttyRTU"), 1, 2, 3)
	// A generous timeout: the machine may be loaded (2 cores, -race).
	c, err := OpenSerial(SerialConfig{Port: p.Path(), Parity: "N", StopBits: 2}, ClientOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	v, err := c.ReadRegisters(ctx, 1, FuncReadHoldingRegisters, 0, 24)
	if err != nil || len(v) != 24 || v[0] != 1000 || v[23] != 1023 {
		t.Fatalf("FC3 unit 1: %v %v", v, err)
	}
	v, err = c.ReadRegisters(ctx, 2, FuncReadInputRegisters, 100, 125)
	if err != nil || len(v) != 125 || v[124] != 2224 {
		t.Fatalf("FC4 unit 2: %v %v", v[len(v)-1:], err)
	}
	v, err = c.ReadRegisters(ctx, 3, FuncReadCoils, 0, 11)
	if err != nil || len(v) != 11 || v[0] != 0 || v[1] != 1 || v[10] != 0 {
		t.Fatalf("FC1 unit 3: %v %v", v, err)
	}

	slave.set(func(s *testSlave) { s.exception[2] = 2 })
	_, err = c.ReadRegisters(ctx, 2, 3, 0, 1)
	var ex *ExceptionError
	if !errors.As(err, &ex) || ex.Code != 2 {
		t.Fatalf("exception: %v", err)
	}

	slave.set(func(s *testSlave) { s.corrupt[1] = 1 })
	_, err = c.ReadRegisters(ctx, 1, 3, 0, 4)
	var ce *CRCError
	if !errors.As(err, &ce) {
		t.Fatalf("corrupted reply: %v, want *CRCError", err)
	}
	// The stale tail of a bad frame must not poison the next request.
	if v, err := c.ReadRegisters(ctx, 1, 3, 5, 2); err != nil || v[0] != 1005 {
		t.Fatalf("after CRC error: %v %v", v, err)
	}

	slave.set(func(s *testSlave) { s.garbage[3] = 1 })
	if v, err := c.ReadRegisters(ctx, 3, 4, 7, 3); err != nil || v[2] != 3009 {
		t.Fatalf("reply behind line noise: %v %v", v, err)
	}

	c.timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = c.ReadRegisters(ctx, 9, 3, 0, 1)
	c.timeout = 2 * time.Second
	var te *TimeoutError
	if !errors.As(err, &te) || te.Received != 0 {
		t.Fatalf("silent unit: %v, want *TimeoutError", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("timeout came after %s, before the 200ms timeout", took)
	}
	if v, err := c.ReadRegisters(ctx, 1, 3, 0, 1); err != nil || v[0] != 1000 {
		t.Fatalf("after timeout: %v %v", v, err)
	}
}

func TestReadOnlyNothingElseLeavesTheClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1)
	c, err := OpenSerial(SerialConfig{Port: p.Path()}, ClientOptions{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, fc := range []byte{0, 5, 6, 15, 16, 22, 23, 43, 0x83} {
		if _, err := c.ReadRegisters(ctx, 1, fc, 0, 1); err == nil {
			t.Fatalf("function %d was sent", fc)
		}
	}
	// A read goes through afterwards, and the slave saw only that read.
	if _, err := c.ReadRegisters(ctx, 1, 3, 0, 1); err != nil {
		t.Fatal(err)
	}
	slave.mu.Lock()
	defer slave.mu.Unlock()
	if slave.nonReads != 0 || slave.requests[1] != 1 {
		t.Fatalf("slave saw %d non-read requests and %d requests, want 0 and 1", slave.nonReads, slave.requests[1])
	}
}

func runBus(t *testing.T, ctx context.Context, cfg BusConfig, list portLister) *Bus {
	t.Helper()
	b, err := NewBus(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if list != nil {
		b.list = list
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return b
}

func unitStats(b *Bus, unit byte) UnitStats {
	for _, u := range b.Stats().Units {
		if u.Unit == unit {
			return u
		}
	}
	return UnitStats{}
}

func TestBusSilentUnitDoesNotStallTheOthers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1, 2, 3) // unit 4 is configured but silent
	pollers := map[byte]*recordingPoller{}
	var units []UnitConfig
	for _, u := range []byte{1, 2, 3, 4} {
		pollers[u] = &recordingPoller{unit: u, function: 3, count: 24}
		units = append(units, UnitConfig{Device: "d", Unit: u, Interval: 10 * time.Millisecond, Poller: pollers[u]})
	}
	units[1].Device, units[2].Device, units[3].Device = "d2", "d3", "d4"
	timeout := 250 * time.Millisecond
	b := runBus(t, ctx, BusConfig{Serial: &SerialConfig{Port: p.Path()}, Timeout: timeout, UnitBackoffMax: 400 * time.Millisecond, Units: units}, nil)

	start := time.Now()
	eventually(t, 20*time.Second, "100 good polls of each live unit", func() bool {
		return pollers[1].goodPolls() >= 100 && pollers[2].goodPolls() >= 100 && pollers[3].goodPolls() >= 100
	})
	elapsed := time.Since(start)
	dead := unitStats(b, 4)
	if dead.Timeouts == 0 || dead.Replies != 0 {
		t.Fatalf("silent unit stats %+v: want timeouts and no replies", dead)
	}
	if pollers[4].unreachableCalls() != 1 {
		t.Fatalf("silent unit: Unreachable called %d times, want once", pollers[4].unreachableCalls())
	}
	// Without back-off every round would cost the silent unit's timeout
	// (the others are due again long before it ends), so each live unit
	// would get about one poll per timeout. With back-off, many more.
	if good := pollers[1].goodPolls(); uint64(good) < 5*dead.Timeouts {
		t.Fatalf("%d good polls of unit 1 for %d timeouts of the silent unit in %s: back-off is not working", good, dead.Timeouts, elapsed)
	}
	if dead.Backoff <= 10*time.Millisecond {
		t.Fatalf("silent unit back-off %s did not grow", dead.Backoff)
	}
	for _, u := range []byte{1, 2, 3} {
		s := unitStats(b, u)
		// A timeout or two can be real on a loaded 2-core machine under
		// -race; cross-talk from the silent unit would show as many.
		if s.Timeouts > 2 || s.CRCErrors != 0 || s.FrameErrors != 0 || pollers[u].unreachableCalls() != 0 {
			t.Fatalf("live unit %d: %+v unreachable=%d", u, s, pollers[u].unreachableCalls())
		}
	}
	if slave.count(4) == 0 {
		t.Fatal("the silent unit was never asked")
	}
}

func TestBusCountsCRCErrorsExceptionsAndGarbage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1, 2, 3)
	slave.set(func(s *testSlave) {
		s.corrupt[1] = 3
		s.exception[2] = 2
		s.garbage[3] = 2
	})
	pollers := map[byte]*recordingPoller{}
	var units []UnitConfig
	for _, u := range []byte{1, 2, 3} {
		pollers[u] = &recordingPoller{unit: u, function: 4, address: 3, count: 8}
		units = append(units, UnitConfig{Device: string('a' + rune(u)), Unit: u, Interval: 5 * time.Millisecond, Poller: pollers[u]})
	}
	b := runBus(t, ctx, BusConfig{Serial: &SerialConfig{Port: p.Path()}, Timeout: time.Second, OfflineAfter: 3, Units: units}, nil)

	eventually(t, 10*time.Second, "good polls of units 1 and 3, exceptions of unit 2", func() bool {
		return pollers[1].goodPolls() >= 10 && pollers[3].goodPolls() >= 10 && unitStats(b, 2).Exceptions >= 10
	})
	if s := unitStats(b, 1); s.CRCErrors != 3 || s.Timeouts != 0 {
		t.Fatalf("unit 1: %+v, want exactly 3 CRC errors", s)
	}
	// Three CRC errors in a row reach OfflineAfter: the unit was offline once.
	if n := pollers[1].unreachableCalls(); n != 1 {
		t.Fatalf("unit 1: Unreachable called %d times, want 1", n)
	}
	s2 := unitStats(b, 2)
	if s2.Replies != 0 || s2.Timeouts != 0 || s2.Backoff != 5*time.Millisecond {
		t.Fatalf("unit 2: %+v: exceptions must not count as timeouts or back off", s2)
	}
	if n := pollers[2].unreachableCalls(); n != 0 {
		t.Fatalf("unit 2 answers exceptions, so it is reachable; Unreachable called %d times", n)
	}
	if s := unitStats(b, 3); s.FrameErrors != 0 || s.CRCErrors != 0 {
		t.Fatalf("unit 3: %+v: replies behind noise must be recovered", s)
	}
}

func TestBusBacksOffAUnitWhoseLineCarriesOnlyNoise(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1, 2)
	slave.set(func(s *testSlave) { s.noise[2] = true })
	good := &recordingPoller{unit: 1, function: 3, count: 4}
	noisy := &recordingPoller{unit: 2, function: 3, count: 4}
	b := runBus(t, ctx, BusConfig{Serial: &SerialConfig{Port: p.Path()}, Timeout: 250 * time.Millisecond, UnitBackoffMax: time.Second,
		Units: []UnitConfig{{Device: "a", Unit: 1, Interval: 10 * time.Millisecond, Poller: good}, {Device: "b", Unit: 2, Interval: 10 * time.Millisecond, Poller: noisy}}}, nil)
	eventually(t, 20*time.Second, "the noisy unit offline and the good one polled", func() bool {
		return noisy.unreachableCalls() == 1 && good.goodPolls() >= 50
	})
	s := unitStats(b, 2)
	if s.FrameErrors < 3 || s.Replies != 0 || s.Backoff <= 10*time.Millisecond {
		t.Fatalf("noisy unit: %+v: want frame errors and a growing back-off", s)
	}
	if uint64(good.goodPolls()) < 5*s.FrameErrors {
		t.Fatalf("%d good polls for %d frame errors: the noisy unit is stalling the bus", good.goodPolls(), s.FrameErrors)
	}
}

func TestBusReopensAVanishedPort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link := filepath.Join(t.TempDir(), "ttyUSB-rtu")
	first, _ := openPty(t, ctx, link, 5)
	poller := &recordingPoller{unit: 5, function: 3, count: 2}
	b := runBus(t, ctx, BusConfig{
		Serial:       &SerialConfig{Port: link},
		Timeout:      time.Second,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		Units: []UnitConfig{{Device: "ster5", Unit: 5, Interval: 5 * time.Millisecond, Poller: poller}},
	}, nil)
	eventually(t, 5*time.Second, "polls through the first pty", func() bool { return poller.goodPolls() >= 5 })

	first.Close() // the adapter is unplugged: the node and its link vanish
	eventually(t, 5*time.Second, "the bus to notice", func() bool {
		s := b.Stats()
		return !s.Connected && s.LinkErrors >= 2 && poller.unreachableCalls() == 1
	})
	before := poller.goodPolls()

	openPty(t, ctx, link, 5) // plugged back in: same path, new device node
	eventually(t, 5*time.Second, "polls through the second pty", func() bool { return poller.goodPolls() >= before+5 })
	if s := b.Stats(); s.Opens != 2 || !s.Connected {
		t.Fatalf("bus stats %+v: want 2 opens and connected", s)
	}
	if poller.unreachableCalls() != 1 {
		t.Fatalf("Unreachable called %d times for one outage", poller.unreachableCalls())
	}
}

func TestBusFindsTheAdapterAgainByUSBIdentity(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := openPty(t, ctx, "", 7)
	var mu sync.Mutex
	current := a.DevicePath()
	lister := func() ([]*enumerator.PortDetails, error) {
		mu.Lock()
		defer mu.Unlock()
		return []*enumerator.PortDetails{
			{Name: "/dev/ttyUSB9", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "OTHER"},
			{Name: current, IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "A10K1234"},
		}, nil
	}
	poller := &recordingPoller{unit: 7, function: 3, count: 1}
	b := runBus(t, ctx, BusConfig{
		Serial:       &SerialConfig{Port: a.DevicePath(), USB: &USBIdentity{VID: "0403", PID: "6001", Serial: "A10K1234"}},
		Timeout:      time.Second,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		Units: []UnitConfig{{Device: "ster7", Unit: 7, Interval: 5 * time.Millisecond, Poller: poller}},
	}, lister)
	eventually(t, 5*time.Second, "polls through the first node", func() bool { return poller.goodPolls() >= 3 })

	a.Close()
	bNode, _ := openPty(t, ctx, "", 7)
	mu.Lock()
	current = bNode.DevicePath() // re-enumerated under another node
	mu.Unlock()
	before := poller.goodPolls()
	eventually(t, 5*time.Second, "polls through the new node", func() bool { return poller.goodPolls() >= before+3 })
	if s := b.Stats(); s.Link != bNode.DevicePath() {
		t.Fatalf("bus uses %q, want the re-found node %q", s.Link, bNode.DevicePath())
	}
}

func TestSerialConfigResolve(t *testing.T) {
	list := func() ([]*enumerator.PortDetails, error) {
		return []*enumerator.PortDetails{
			{Name: "/dev/ttyS0"},
			{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "X"},
			{Name: "/dev/ttyUSB1", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "Y"},
		}, nil
	}
	cases := []struct {
		cfg     SerialConfig
		want    string
		wantErr bool
	}{
		{SerialConfig{Port: "/dev/ttyS0"}, "/dev/ttyS0", false},
		{SerialConfig{USB: &USBIdentity{VID: "0403", PID: "6001", Serial: "Y"}}, "/dev/ttyUSB1", false},
		{SerialConfig{Port: "/dev/ttyUSB0", USB: &USBIdentity{VID: "0403", PID: "6001"}}, "/dev/ttyUSB0", false},
		{SerialConfig{USB: &USBIdentity{VID: "0403", PID: "6001"}}, "", true}, // ambiguous
		{SerialConfig{USB: &USBIdentity{VID: "1a86", PID: "7523"}}, "", true}, // absent
	}
	for _, c := range cases {
		got, err := c.cfg.resolve(list)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("resolve(%+v) = %q, %v; want %q (error %v)", c.cfg, got, err, c.want, c.wantErr)
		}
	}
}

func TestNewBusNamesBadSettings(t *testing.T) {
	p := &recordingPoller{}
	bad := map[string]BusConfig{
		"parity":      {Serial: &SerialConfig{Port: "/dev/x", Parity: "X"}, Units: []UnitConfig{{Unit: 1, Poller: p}}},
		"data_bits":   {Serial: &SerialConfig{Port: "/dev/x", DataBits: 7}, Units: []UnitConfig{{Unit: 1, Poller: p}}},
		"stop_bits":   {Serial: &SerialConfig{Port: "/dev/x", StopBits: 3}, Units: []UnitConfig{{Unit: 1, Poller: p}}},
		"exactly one": {Serial: &SerialConfig{Port: "/dev/x"}, Address: "h:1", Units: []UnitConfig{{Unit: 1, Poller: p}}},
		"unit 0":      {Address: "h:1", Units: []UnitConfig{{Unit: 0, Poller: p}}},
		"already":     {Address: "h:1", Units: []UnitConfig{{Device: "a", Unit: 1, Poller: p}, {Device: "b", Unit: 1, Poller: p}}},
		"no units":    {Address: "h:1"},
	}
	for mention, cfg := range bad {
		_, err := NewBus(cfg, nil)
		if err == nil || !contains(err.Error(), mention) {
			t.Errorf("%s: NewBus error %v does not name it", mention, err)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// rtuTCPServer accepts connections and serves RTU frames on each with a
// testSlave, like a serial device server in transparent mode.
type rtuTCPServer struct {
	ln      net.Listener
	mu      sync.Mutex
	accepts int
	conns   []net.Conn
	slaves  []*testSlave
	units   []byte
}

func startRTUTCPServer(t *testing.T, ctx context.Context, units ...byte) *rtuTCPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rtuTCPServer{ln: ln, units: units}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			slave := newTestSlave(conn, units...)
			s.mu.Lock()
			s.accepts++
			s.conns = append(s.conns, conn)
			s.slaves = append(s.slaves, slave)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				slave.serve(ctx)
				conn.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.dropAll()
		wg.Wait()
	})
	return s
}

func (s *rtuTCPServer) acceptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

func (s *rtuTCPServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func TestRTUOverTCP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startRTUTCPServer(t, ctx, 1, 2)
	pollers := map[byte]*recordingPoller{}
	var units []UnitConfig
	for _, u := range []byte{1, 2, 3} { // 3 is silent
		pollers[u] = &recordingPoller{unit: u, function: 3, count: 24}
		units = append(units, UnitConfig{Device: string('a' + rune(u)), Unit: u, Interval: 5 * time.Millisecond, Poller: pollers[u]})
	}
	b := runBus(t, ctx, BusConfig{
		Address: srv.ln.Addr().String(), Timeout: 150 * time.Millisecond,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		UnitBackoffMax: 200 * time.Millisecond, Units: units,
	}, nil)
	eventually(t, 10*time.Second, "good polls of both live units", func() bool {
		return pollers[1].goodPolls() >= 20 && pollers[2].goodPolls() >= 20
	})
	if s := unitStats(b, 3); s.Timeouts == 0 {
		t.Fatalf("silent unit over TCP: %+v", s)
	}
	// Each timeout closes the connection (a late reply could otherwise be
	// taken for the next request's): one accept per timeout, plus the first.
	if got, timeouts := srv.acceptCount(), unitStats(b, 3).Timeouts; uint64(got) < timeouts {
		t.Fatalf("%d connections for %d timeouts: the bus kept a connection after a timeout", got, timeouts)
	}

	// The device server drops every connection: the bus reconnects.
	acceptsBefore := srv.acceptCount()
	goodBefore := pollers[1].goodPolls()
	srv.dropAll()
	eventually(t, 10*time.Second, "polls after the server dropped the connection", func() bool {
		return pollers[1].goodPolls() >= goodBefore+10 && srv.acceptCount() > acceptsBefore
	})
}

func TestInterFrameDelay(t *testing.T) {
	if d := InterFrameDelay(9600, 11); d < 4000*time.Microsecond || d > 4020*time.Microsecond {
		t.Fatalf("t3.5 at 9600 8E1 = %s, want 4.01ms", d)
	}
	if d := InterFrameDelay(19200, 11); d < 2000*time.Microsecond || d > 2010*time.Microsecond {
		t.Fatalf("t3.5 at 19200 8E1 = %s, want 2.005ms", d)
	}
	if d := InterFrameDelay(115200, 11); d != 1750*time.Microsecond {
		t.Fatalf("t3.5 at 115200 = %s, want the fixed 1.75ms", d)
	}
}
