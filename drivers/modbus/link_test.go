package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
)

// tcpClient is a TCPTransport used as its link owner would: opened when
// closed, with the opens and the closes after an error counted.
type tcpClient struct {
	*TCPTransport
	opens, closes int
}

// openTCP returns an opened transport to addr, closed at the end of the test.
func openTCP(t testing.TB, addr string, timeout time.Duration) *TCPTransport {
	t.Helper()
	tr, err := NewTCPTransport(TCPConfig{Address: addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func newTCPClient(t *testing.T, addr string, timeout time.Duration) *tcpClient {
	t.Helper()
	tr, err := NewTCPTransport(TCPConfig{Address: addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &tcpClient{TCPTransport: tr}
}

func (c *tcpClient) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	if !c.IsOpen() {
		if _, err := c.Open(ctx); err != nil {
			return nil, err
		}
		c.opens++
	}
	v, err := c.TCPTransport.ReadRegisters(ctx, unit, function, address, quantity)
	if !c.IsOpen() {
		c.closes++
	}
	return v, err
}

func readOK(l *tcpClient, want uint16) error {
	words, err := l.ReadRegisters(context.Background(), 1, 3, 0, 4)
	if err != nil {
		return err
	}
	if words[0] != want {
		return fmt.Errorf("register 0 = %d, want %d", words[0], want)
	}
	return nil
}

func newImage(v uint16) *registerImage {
	img := &registerImage{holding: make([]uint16, 24), input: make([]uint16, 24)}
	img.holding[0] = v
	return img
}

// goburrow trap 1: after the peer restarts, goburrow's own transport fails
// with "broken pipe" forever. Ours must recover on the next request.
func TestLinkRecoversAfterServerRestart(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(7)
	stop := startServer(t, addr, img)
	l := newTCPClient(t, addr, 500*time.Millisecond)
	if err := readOK(l, 7); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := readOK(l, 7); err == nil {
		t.Fatal("read succeeded with the server stopped")
	}
	startServer(t, addr, newImage(8))
	// The first attempt may still see the old connection die; within a
	// few attempts it must work, and then keep working.
	eventually(t, 3*time.Second, "read after restart", func() error { return readOK(l, 8) })
	for i := range 5 {
		if err := readOK(l, 8); err != nil {
			t.Fatalf("read %d after recovery: %v", i, err)
		}
	}
}

// goburrow trap 2: one reply later than Timeout leaves goburrow one
// transaction id behind for good. Ours drops the connection on the timeout,
// so every later read is correct.
func TestLinkRecoversAfterSlowReply(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(5)
	startServer(t, addr, img)
	l := newTCPClient(t, addr, 300*time.Millisecond)
	if err := readOK(l, 5); err != nil {
		t.Fatal(err)
	}
	img.set(func([]uint16, []uint16) {})
	img.mu.Lock()
	img.delayOne = 900 * time.Millisecond
	img.mu.Unlock()
	err := readOK(l, 5)
	var te *TimeoutError
	if kind, _ := Classify(err); kind != KindTimeout || !errors.As(err, &te) {
		t.Fatalf("slow reply: err = %v, want a timeout", err)
	}
	for i := range 10 {
		img.set(func(h, _ []uint16) { h[0] = uint16(100 + i) })
		if err := readOK(l, uint16(100+i)); err != nil {
			t.Fatalf("read %d after the slow reply: %v", i, err)
		}
	}
}

// A mismatched transaction id (a stale reply) is a reason to reconnect.
func TestLinkReconnectsOnTransactionIDMismatch(t *testing.T) {
	srv := startRawServer(t, func(n int, req []byte) []byte {
		if n == 1 {
			return answerRegisters(req, 7) // a reply for another request
		}
		return answerRegisters(req, 0)
	})
	l := newTCPClient(t, srv.addr(), time.Second)
	if err := readOK(l, 1); err != nil {
		t.Fatal(err)
	}
	err := readOK(l, 1)
	var fe *FrameError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "transaction id") {
		t.Fatalf("err = %v, want a transaction id mismatch as a frame error", err)
	}
	if kind, _ := Classify(err); kind != KindTransport || !IsUnreachable(err) {
		t.Errorf("a reply to another request is classified %v", kind)
	}
	if l.closes != 1 {
		t.Errorf("closes = %d, want 1 (the mismatched connection is dropped)", l.closes)
	}
	for i := range 3 {
		if err := readOK(l, 1); err != nil {
			t.Fatalf("read %d after the mismatch: %v", i, err)
		}
	}
	if l.opens != 2 {
		t.Errorf("opens = %d, want 2", l.opens)
	}
}

// goburrow trap 3: a peer that accepts and never answers. The read must
// fail after Timeout and the dead connection must not be reused.
func TestLinkTimesOutOnSilentPeer(t *testing.T) {
	srv := startRawServer(t, func(int, []byte) []byte { return nil })
	l := newTCPClient(t, srv.addr(), 100*time.Millisecond)
	for i := range 3 {
		start := time.Now()
		_, err := l.ReadRegisters(context.Background(), 1, 3, 0, 4)
		if kind, _ := Classify(err); kind != KindTimeout || !IsUnreachable(err) {
			t.Fatalf("read %d: err = %v, want an unreachable timeout", i, err)
		}
		// A generous bound: it catches a timeout that is not applied at
		// all, not a slow machine.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("read %d took %v with a 100 ms timeout", i, d)
		}
	}
	if l.opens != 3 || l.closes != 3 {
		t.Errorf("%d opens, %d closes: want a fresh connection per attempt", l.opens, l.closes)
	}
}

func TestLinkCancelUnblocksAtOnce(t *testing.T) {
	srv := startRawServer(t, func(int, []byte) []byte { return nil })
	l := openTCP(t, srv.addr(), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.ReadRegisters(ctx, 1, 3, 0, 1)
		done <- err
	}()
	eventually(t, 5*time.Second, "request reaches the peer", func() error {
		if len(srv.functionCodes()) == 0 {
			return errNotYet
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || IsUnreachable(err) {
			t.Fatalf("err = %v, want context.Canceled (not an outage)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not unblock the read")
	}
}

func TestExceptionKeepsTheConnection(t *testing.T) {
	addr := freeAddr(t)
	startServer(t, addr, newImage(1))
	l := newTCPClient(t, addr, time.Second)
	_, err := l.ReadRegisters(context.Background(), 1, 3, 20, 10) // past address 23
	ex := AsException(err)
	if ex == nil || ex.Code != 2 || ex.Function != 3 || ex.Unit != 1 || IsUnreachable(err) {
		t.Fatalf("err = %v, want exception 2 for function 3", err)
	}
	if err := readOK(l, 1); err != nil {
		t.Fatal(err)
	}
	if l.opens != 1 || l.closes != 0 {
		t.Errorf("%d opens, %d closes: an exception must not drop the connection", l.opens, l.closes)
	}
}

// The read-only guard: goburrow's client has write methods; even when one
// is called, the guard refuses the frame before it is written, and the
// device sees no write.
func TestNoWriteEverReachesTheDevice(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(1)
	startServer(t, addr, img)
	l := newTCPClient(t, addr, time.Second)
	c := l.client
	attempts := []func() error{
		func() error { _, err := c.WriteSingleCoil(0, 0xFF00); return err },
		func() error { _, err := c.WriteSingleRegister(0, 1); return err },
		func() error { _, err := c.WriteMultipleCoils(0, 1, []byte{1}); return err },
		func() error { _, err := c.WriteMultipleRegisters(0, 1, []byte{0, 1}); return err },
		func() error { _, err := c.MaskWriteRegister(0, 1, 2); return err },
		func() error { _, err := c.ReadWriteMultipleRegisters(0, 1, 0, 1, []byte{0, 1}); return err },
		func() error { _, err := c.ReadFIFOQueue(0); return err },
	}
	for i, write := range attempts {
		if err := write(); !errors.Is(err, ErrWriteRefused) {
			t.Errorf("attempt %d: err = %v, want ErrWriteRefused", i, err)
		}
	}
	for _, fc := range []byte{0, 5, 6, 15, 16, 22, 23, 43} {
		if _, err := l.ReadRegisters(context.Background(), 1, fc, 0, 1); !errors.Is(err, ErrWriteRefused) {
			t.Errorf("ReadRegisters with function %d: err = %v", fc, err)
		}
	}
	if err := readOK(l, 1); err != nil {
		t.Fatal(err)
	}
	if n := img.writeCount(); n != 0 {
		t.Fatalf("the device received %d write requests", n)
	}
	if l.opens != 1 {
		t.Errorf("opens = %d: refused frames must not even open a connection", l.opens)
	}
}

// The guard itself, on a transport that records what it would send.
func TestReadOnlyTransporterRefusesNonReads(t *testing.T) {
	var sent [][]byte
	rec := transporterFunc(func(adu []byte) ([]byte, error) { sent = append(sent, adu); return adu, nil })
	tcp := ReadOnlyTransporter(rec, TCPFunctionOffset)
	rtu := ReadOnlyTransporter(rec, RTUFunctionOffset)
	for fc := 0; fc < 256; fc++ {
		tcpADU := []byte{0, 1, 0, 0, 0, 6, 1, byte(fc), 0, 0, 0, 1}
		rtuADU := []byte{1, byte(fc), 0, 0, 0, 1, 0, 0}
		_, errTCP := tcp.Send(tcpADU)
		_, errRTU := rtu.Send(rtuADU)
		read := fc >= 1 && fc <= 4
		if read != (errTCP == nil) || read != (errRTU == nil) {
			t.Errorf("function %d: tcp err %v, rtu err %v", fc, errTCP, errRTU)
		}
	}
	if len(sent) != 8 {
		t.Errorf("%d frames passed the guard, want 8 (functions 1-4, TCP and RTU)", len(sent))
	}
	if _, err := tcp.Send([]byte{0, 1, 0}); !errors.Is(err, ErrWriteRefused) {
		t.Errorf("short frame: %v", err)
	}
}

type transporterFunc func([]byte) ([]byte, error)

func (f transporterFunc) Send(adu []byte) ([]byte, error) { return f(adu) }

func TestRawPeerSeesOnlyReadFunctions(t *testing.T) {
	srv := startRawServer(t, func(_ int, req []byte) []byte { return answerRegisters(req, 0) })
	l := openTCP(t, srv.addr(), time.Second)
	_, _ = l.client.WriteSingleRegister(0, 1)
	_, _ = l.client.WriteMultipleRegisters(0, 1, []byte{0, 1})
	if _, err := l.ReadRegisters(context.Background(), 1, 4, 0, 2); err != nil {
		t.Fatal(err)
	}
	if fcs := srv.functionCodes(); len(fcs) != 1 || fcs[0] != 4 {
		t.Fatalf("the peer received function codes %v, want [4]", fcs)
	}
}

func TestUnitBackoffGrowsCappedWithJitter(t *testing.T) {
	if d := unitBackoff(1, time.Second, 30*time.Second); d != time.Second {
		t.Fatalf("after one failure the unit keeps its interval, got %v", d)
	}
	for n := 2; n <= 40; n++ {
		base := min(time.Second<<min(n-1, 20), 30*time.Second)
		for range 50 {
			d := unitBackoff(n, time.Second, 30*time.Second)
			if d < base*3/4 || d >= base*5/4 {
				t.Fatalf("unitBackoff(%d) = %v, want in [%v, %v)", n, d, base*3/4, base*5/4)
			}
		}
	}
	// A unit polled less often than the cap is never polled more often.
	for range 50 {
		if d := unitBackoff(5, time.Minute, 30*time.Second); d < 45*time.Second {
			t.Fatalf("a 1 min unit backed off to %v", d)
		}
	}
	// No overflow for long intervals and many failures.
	if d := unitBackoff(1000, 24*time.Hour, 30*time.Second); d < 18*time.Hour {
		t.Fatalf("unitBackoff overflowed: %v", d)
	}
}

// A steady failure is logged once, not on every retry (each retry of a
// timeout has a new local port in its message).
func TestSteadyFailureLogsOnce(t *testing.T) {
	srv := startRawServer(t, func(int, []byte) []byte { return nil })
	var logBuf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil))
	prof, _ := profile.Builtin("sim-autoclave")
	u, err := NewUnit(UnitConfig{Device: "ac", Unit: 1, Profile: prof}, &cycletest.Sink{}, &cycletest.Store{}, log)
	if err != nil {
		t.Fatal(err)
	}
	l := newTCPClient(t, srv.addr(), 50*time.Millisecond)
	for range 3 {
		if err := u.Poll(context.Background(), l); !isTimeout(err) {
			t.Fatalf("err = %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logBuf.String(), "modbus poll failed"); n != 1 {
		t.Errorf("%d log lines for 3 identical failures:\n%s", n, logBuf.String())
	}
	if s := u.Stats(); s.Timeouts != 3 || s.Polls != 3 {
		t.Errorf("stats = %+v", s)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Exception warnings are rate-limited per device: one warning per outage
// and kind of problem, however the exception's text varies (here the failing
// block alternates, so the function and address in the text change on every
// poll); a change of kind logs again, and so does the first problem after a
// recovery.
func TestPollWarningsOncePerOutageAndKind(t *testing.T) {
	var mu sync.Mutex
	mode := "exception 2"
	toggle := false
	srv := startRawServer(t, func(_ int, req []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		fc, addr := req[7], binary.BigEndian.Uint16(req[8:])
		exception := func(code byte) []byte {
			resp := append([]byte(nil), req[:9]...)
			binary.BigEndian.PutUint16(resp[4:], 3)
			resp[7], resp[8] = fc|0x80, code
			return resp
		}
		switch mode {
		case "exception 11":
			return exception(11)
		case "silent":
			return nil
		case "good":
			return answerRegisters(req, 0)
		}
		if fc == 3 && addr == 0 {
			toggle = !toggle
			if toggle {
				return exception(2)
			}
			return answerRegisters(req, 0)
		}
		if fc == 4 {
			return exception(2)
		}
		return answerRegisters(req, 0)
	})
	prof, err := profile.Parse("two-blocks.yaml", []byte(`
fields:
  t: {function: 3, address: 0}
  p: {function: 4, address: 0}
  c: {function: 3, address: 10, type: u32}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
read: {max_gap: 0}
cycle_end: {on: counter_change}
`))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logBuf}, nil))
	u, err := NewUnit(UnitConfig{Device: "ac", Unit: 1, Profile: prof}, &cycletest.Sink{}, &cycletest.Store{}, log)
	if err != nil {
		t.Fatal(err)
	}
	l := newTCPClient(t, srv.addr(), 100*time.Millisecond)
	poll := func(m string, n int) {
		mu.Lock()
		mode = m
		mu.Unlock()
		for range n {
			u.Poll(context.Background(), l)
		}
	}
	warnings := func() int {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Count(logBuf.String(), "modbus poll failed")
	}
	poll("exception 2", 6)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings for one device answering exception 2 on alternating blocks:\n%s", n, logBuf.String())
	}
	poll("exception 11", 3)
	poll("exception 2", 2)
	if n := warnings(); n != 2 {
		t.Fatalf("%d warnings, want 2 (exception 2, then exception 11; exception 2 again is not new):\n%s", n, logBuf.String())
	}
	poll("silent", 2)
	if n := warnings(); n != 3 {
		t.Fatalf("%d warnings, want a third for the timeouts:\n%s", n, logBuf.String())
	}
	poll("good", 1)
	poll("exception 2", 2)
	logMu.Lock()
	out := logBuf.String()
	logMu.Unlock()
	if n := strings.Count(out, "modbus poll failed"); n != 4 || !strings.Contains(out, "modbus poll recovered") {
		t.Fatalf("after a recovery the next problem is a new outage; log:\n%s", out)
	}
	if s := u.Stats(); s.ExceptionsByCode[2] != 10 || s.ExceptionsByCode[11] != 3 || s.Timeouts != 2 || s.GoodPolls != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A reply whose function code is neither the request's nor its exception
// is a reply that is not ours: "reply has function code 48, expected 3",
// a transport error, never "exception 48".
func TestWrongFunctionCodeIsNotAnException(t *testing.T) {
	srv := startRawServer(t, func(_ int, req []byte) []byte {
		resp := append([]byte(nil), req[:9]...)
		binary.BigEndian.PutUint16(resp[4:], 3)
		resp[7], resp[8] = 0x30, 0x30
		return resp
	})
	l := newTCPClient(t, srv.addr(), time.Second)
	_, err := l.ReadRegisters(context.Background(), 1, 3, 0, 4)
	if err == nil || err.Error() != "reply has function code 48, expected 3" {
		t.Fatalf("err = %v", err)
	}
	if kind, _ := Classify(err); kind != KindTransport || AsException(err) != nil {
		t.Fatalf("a wrong function code is classified %v", kind)
	}
}
