package rtu

// What is specific to RTU: the framer over a real pty and over TCP, CRC
// errors and line noise, a vanished serial adapter found again. What every
// transport shares (offline after N, exceptions 10/11, back-off, recovery,
// the read-only guard) is tested once per transport in drivers/modbus
// (transports_test.go).

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

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
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

// openSerial returns an opened transport on port, closed at the end of the test.
func openSerial(t *testing.T, cfg SerialConfig, opts Options) *Transport {
	t.Helper()
	tr, err := NewSerial(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTransportOverPty(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, filepath.Join(t.TempDir(), "ttyRTU"), 1, 2, 3)
	// A generous timeout: the machine may be loaded (2 cores, -race).
	c := openSerial(t, SerialConfig{Port: p.Path(), Parity: "N", StopBits: 2}, Options{Timeout: 2 * time.Second})

	v, err := c.ReadRegisters(ctx, 1, 3, 0, 24)
	if err != nil || len(v) != 24 || v[0] != 1000 || v[23] != 1023 {
		t.Fatalf("FC3 unit 1: %v %v", v, err)
	}
	v, err = c.ReadRegisters(ctx, 2, 4, 100, 125)
	if err != nil || len(v) != 125 || v[124] != 2224 {
		t.Fatalf("FC4 unit 2: %v %v", v[len(v)-1:], err)
	}
	v, err = c.ReadRegisters(ctx, 3, 1, 0, 11)
	if err != nil || len(v) != 11 || v[0] != 0 || v[1] != 1 || v[10] != 0 {
		t.Fatalf("FC1 unit 3: %v %v", v, err)
	}

	slave.set(func(s *testSlave) { s.exception[2] = 2 })
	_, err = c.ReadRegisters(ctx, 2, 3, 0, 1)
	var ex *modbus.ExceptionError
	if !errors.As(err, &ex) || ex.Code != 2 {
		t.Fatalf("exception: %v", err)
	}

	slave.set(func(s *testSlave) { s.corrupt[1] = 1 })
	_, err = c.ReadRegisters(ctx, 1, 3, 0, 4)
	var ce *modbus.CRCError
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
	var te *modbus.TimeoutError
	if !errors.As(err, &te) || te.Received != 0 {
		t.Fatalf("silent unit: %v, want *TimeoutError", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("timeout came after %s, before the 200ms timeout", took)
	}
	if !c.IsOpen() {
		t.Fatal("a timeout closed the serial port; only link failures may")
	}
	if v, err := c.ReadRegisters(ctx, 1, 3, 0, 1); err != nil || v[0] != 1000 {
		t.Fatalf("after timeout: %v %v", v, err)
	}
}

func TestReadOnlyNothingElseLeavesTheTransport(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1)
	c := openSerial(t, SerialConfig{Port: p.Path()}, Options{Timeout: 2 * time.Second})
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

// testProfile reads registers 0–3 of the test slave (unit u holds
// u*1000+address): plausible values for every unit id.
func testProfile(t *testing.T) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("rtu-test.yaml", []byte(`
fields:
  t: {function: 3, address: 0, scale: 0.01, unit: "°C"}
  p: {function: 3, address: 1, scale: 0.01, unit: kPa abs}
  c: {function: 3, address: 2, type: u32}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
cycle_end: {on: counter_change}
`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// simProfile is the built-in profile of the simulator.
func simProfile(t *testing.T) *profile.Profile {
	t.Helper()
	p, ok := profile.Builtin("sim-autoclave")
	if !ok {
		t.Fatal("built-in profile sim-autoclave missing")
	}
	return p
}

// runLink builds a modbus.Link over tr for units read with prof, polled
// every interval, and runs it until the test ends.
func runLink(t *testing.T, tr modbus.Transport, cfg modbus.LinkConfig, prof *profile.Profile, interval time.Duration, units ...byte) (*modbus.Link, *cycletest.Sink) {
	t.Helper()
	for _, u := range units {
		cfg.Units = append(cfg.Units, modbus.UnitConfig{Device: unitName(u), Unit: u, Profile: prof, Source: "modbus-rtu", PollInterval: interval})
	}
	sink := &cycletest.Sink{}
	l, err := modbus.NewLink(cfg, tr, sink, &cycletest.Store{}, quietLog())
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

func unitName(u byte) string { return "ster" + string('0'+rune(u)) }

func unitStats(l *modbus.Link, unit byte) modbus.UnitStats {
	for _, u := range l.Stats().Units {
		if u.Unit == unit {
			return u
		}
	}
	return modbus.UnitStats{}
}

func offlineEvents(s *cycletest.Sink, unit byte) int {
	n := 0
	for _, e := range s.EventsOf(protocol.EventOffline) {
		if e.Device == unitName(unit) {
			n++
		}
	}
	return n
}

func TestCRCErrorsExceptionsAndGarbageOnOneBus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1, 2, 3)
	slave.set(func(s *testSlave) {
		s.corrupt[1] = 3
		s.exception[2] = 2
		s.garbage[3] = 2
	})
	l, sink := runLink(t, mustSerial(t, SerialConfig{Port: p.Path()}, Options{Timeout: time.Second}), modbus.LinkConfig{}, testProfile(t), 5*time.Millisecond, 1, 2, 3)

	eventually(t, 10*time.Second, "good polls of units 1 and 3, exceptions of unit 2", func() bool {
		return unitStats(l, 1).GoodPolls >= 10 && unitStats(l, 3).GoodPolls >= 10 && unitStats(l, 2).Exceptions >= 10
	})
	if s := unitStats(l, 1); s.CRCErrors != 3 || s.Timeouts != 0 {
		t.Fatalf("unit 1: %+v, want exactly 3 CRC errors", s)
	}
	// Three CRC errors in a row reach offline_after: the unit was offline once.
	if n := offlineEvents(sink, 1); n != 1 {
		t.Fatalf("unit 1: %d offline events, want 1", n)
	}
	s2 := unitStats(l, 2)
	if s2.GoodPolls != 0 || s2.Timeouts != 0 || s2.Backoff != 0 || s2.ConsecutiveFailures != 0 {
		t.Fatalf("unit 2: %+v: exceptions must not count as failures or back off", s2)
	}
	if n := offlineEvents(sink, 2); n != 0 {
		t.Fatalf("unit 2 answers exception 2, so it is there; %d offline events", n)
	}
	if s := unitStats(l, 3); s.TransportErrors != 0 || s.CRCErrors != 0 {
		t.Fatalf("unit 3: %+v: replies behind noise must be recovered", s)
	}
}

func TestUnitWhoseLineCarriesOnlyNoiseIsBackedOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, slave := openPty(t, ctx, "", 1, 2)
	slave.set(func(s *testSlave) { s.noise[2] = true })
	l, sink := runLink(t, mustSerial(t, SerialConfig{Port: p.Path()}, Options{Timeout: 250 * time.Millisecond}),
		modbus.LinkConfig{BackoffMax: time.Second}, testProfile(t), 10*time.Millisecond, 1, 2)
	eventually(t, 20*time.Second, "the noisy unit offline and the good one polled", func() bool {
		return offlineEvents(sink, 2) == 1 && unitStats(l, 1).GoodPolls >= 50
	})
	s := unitStats(l, 2)
	if s.TransportErrors < 3 || s.GoodPolls != 0 || s.Backoff <= 10*time.Millisecond {
		t.Fatalf("noisy unit: %+v: want frame (transport) errors and a growing back-off", s)
	}
	if good := unitStats(l, 1).GoodPolls; good < 5*s.TransportErrors {
		t.Fatalf("%d good polls for %d frame errors: the noisy unit is stalling the bus", good, s.TransportErrors)
	}
}

func mustSerial(t *testing.T, cfg SerialConfig, opts Options) *Transport {
	t.Helper()
	tr, err := NewSerial(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestVanishedPortIsReopened(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link := filepath.Join(t.TempDir(), "ttyUSB-rtu")
	first, _ := openPty(t, ctx, link, 5)
	l, sink := runLink(t, mustSerial(t, SerialConfig{Port: link}, Options{Timeout: time.Second}),
		modbus.LinkConfig{ReopenMin: 10 * time.Millisecond, ReopenMax: 50 * time.Millisecond}, testProfile(t), 5*time.Millisecond, 5)
	eventually(t, 5*time.Second, "polls through the first pty", func() bool { return unitStats(l, 5).GoodPolls >= 5 })

	first.Close() // the adapter is unplugged: the node and its link vanish
	eventually(t, 5*time.Second, "the link to notice", func() bool {
		s := l.Stats()
		return !s.Connected && s.LinkErrors >= 2 && offlineEvents(sink, 5) == 1
	})
	before := unitStats(l, 5).GoodPolls

	openPty(t, ctx, link, 5) // plugged back in: same path, new device node
	eventually(t, 5*time.Second, "polls through the second pty", func() bool { return unitStats(l, 5).GoodPolls >= before+5 })
	if s := l.Stats(); s.Opens != 2 || !s.Connected {
		t.Fatalf("link stats %+v: want 2 opens and connected", s)
	}
	if n := offlineEvents(sink, 5); n != 1 {
		t.Fatalf("%d offline events for one outage", n)
	}
}

func TestAdapterFoundAgainByUSBIdentity(t *testing.T) {
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
	tr, err := newSerial(SerialConfig{Port: a.DevicePath(), USB: &USBIdentity{VID: "0403", PID: "6001", Serial: "A10K1234"}}, Options{Timeout: time.Second}, lister)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := runLink(t, tr, modbus.LinkConfig{ReopenMin: 10 * time.Millisecond, ReopenMax: 50 * time.Millisecond}, testProfile(t), 5*time.Millisecond, 7)
	eventually(t, 5*time.Second, "polls through the first node", func() bool { return unitStats(l, 7).GoodPolls >= 3 })

	a.Close()
	bNode, _ := openPty(t, ctx, "", 7)
	mu.Lock()
	current = bNode.DevicePath() // re-enumerated under another node
	mu.Unlock()
	before := unitStats(l, 7).GoodPolls
	eventually(t, 5*time.Second, "polls through the new node", func() bool { return unitStats(l, 7).GoodPolls >= before+3 })
	if s := l.Stats(); s.Link != bNode.DevicePath() {
		t.Fatalf("link uses %q, want the re-found node %q", s.Link, bNode.DevicePath())
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

func TestTransportsNameBadSettings(t *testing.T) {
	bad := map[string]func() error{
		"parity":    func() error { _, err := NewSerial(SerialConfig{Port: "/dev/x", Parity: "X"}, Options{}); return err },
		"data_bits": func() error { _, err := NewSerial(SerialConfig{Port: "/dev/x", DataBits: 7}, Options{}); return err },
		"stop_bits": func() error { _, err := NewSerial(SerialConfig{Port: "/dev/x", StopBits: 3}, Options{}); return err },
		"port":      func() error { _, err := NewSerial(SerialConfig{}, Options{}); return err },
		"negative": func() error {
			_, err := NewSerial(SerialConfig{Port: "/dev/x"}, Options{PauseBetweenRequests: -1})
			return err
		},
		"host:port": func() error { _, err := NewTCP("no-port", Options{}); return err },
		"unit 0":    func() error { return (&Transport{}).CheckUnit(0) },
		"unit 248":  func() error { return (&Transport{}).CheckUnit(248) },
		"already":   func() error { return twoUnitsOnOneAddress() },
		"no units": func() error {
			_, err := modbus.NewLink(modbus.LinkConfig{Name: "x"}, &Transport{}, nil, nil, nil)
			return err
		},
		"units[0] (": func() error { return unitZeroOnALink() },
	}
	for mention, f := range bad {
		if err := f(); err == nil || !contains(err.Error(), mention) {
			t.Errorf("%s: error %v does not name it", mention, err)
		}
	}
}

func twoUnitsOnOneAddress() error {
	prof, _ := profile.Builtin("sim-autoclave")
	_, err := modbus.NewLink(modbus.LinkConfig{Name: "x", Units: []modbus.UnitConfig{
		{Device: "a", Unit: 1, Profile: prof}, {Device: "b", Unit: 1, Profile: prof}}}, &Transport{}, &cycletest.Sink{}, &cycletest.Store{}, quietLog())
	return err
}

func unitZeroOnALink() error {
	prof, _ := profile.Builtin("sim-autoclave")
	_, err := modbus.NewLink(modbus.LinkConfig{Name: "x", Units: []modbus.UnitConfig{{Device: "a", Unit: 0, Profile: prof}}},
		&Transport{}, &cycletest.Sink{}, &cycletest.Store{}, quietLog())
	return err
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

// Over TCP nothing can flush a late reply, so every failed transaction but
// an exception replaces the connection; a connection the device server
// drops is replaced too.
func TestRTUOverTCPReconnects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startRTUTCPServer(t, ctx, 1, 2)
	tr, err := NewTCP(srv.ln.Addr().String(), Options{Timeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := runLink(t, tr, modbus.LinkConfig{ReopenMin: 10 * time.Millisecond, ReopenMax: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, testProfile(t),
		5*time.Millisecond, 1, 2, 3) // 3 is silent
	eventually(t, 10*time.Second, "good polls of both live units", func() bool {
		return unitStats(l, 1).GoodPolls >= 20 && unitStats(l, 2).GoodPolls >= 20
	})
	if s := unitStats(l, 3); s.Timeouts == 0 {
		t.Fatalf("silent unit over TCP: %+v", s)
	}
	// Each timeout closes the connection (a late reply could otherwise be
	// taken for the next request's): one accept per timeout, plus the first.
	if got, timeouts := srv.acceptCount(), unitStats(l, 3).Timeouts; uint64(got) < timeouts {
		t.Fatalf("%d connections for %d timeouts: the link kept a connection after a timeout", got, timeouts)
	}

	// The device server drops every connection: the link reconnects.
	acceptsBefore := srv.acceptCount()
	goodBefore := unitStats(l, 1).GoodPolls
	srv.dropAll()
	eventually(t, 10*time.Second, "polls after the server dropped the connection", func() bool {
		return unitStats(l, 1).GoodPolls >= goodBefore+10 && srv.acceptCount() > acceptsBefore
	})
}
