package modbus

import (
	"context"
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

func readOK(l *tcpLink, want uint16) error {
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
	l := newTCPLink(addr, 500*time.Millisecond, nil)
	defer l.close()
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
	l := newTCPLink(addr, 300*time.Millisecond, nil)
	defer l.close()
	if err := readOK(l, 5); err != nil {
		t.Fatal(err)
	}
	img.set(func([]uint16, []uint16) {})
	img.mu.Lock()
	img.delayOne = 900 * time.Millisecond
	img.mu.Unlock()
	err := readOK(l, 5)
	if err == nil || !IsTimeout(err) || !errors.Is(err, ErrTimeout) {
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
	l := newTCPLink(srv.addr(), time.Second, nil)
	defer l.close()
	if err := readOK(l, 1); err != nil {
		t.Fatal(err)
	}
	err := readOK(l, 1)
	if err == nil || !strings.Contains(err.Error(), "transaction id") {
		t.Fatalf("err = %v, want a transaction id mismatch", err)
	}
	if s := l.stats(); s.Closes != 1 {
		t.Errorf("closes = %d, want 1 (the mismatched connection is dropped)", s.Closes)
	}
	for i := range 3 {
		if err := readOK(l, 1); err != nil {
			t.Fatalf("read %d after the mismatch: %v", i, err)
		}
	}
	if s := l.stats(); s.Connects != 2 {
		t.Errorf("connects = %d, want 2", s.Connects)
	}
}

// goburrow trap 3: a peer that accepts and never answers. The read must
// fail after Timeout and the dead connection must not be reused.
func TestLinkTimesOutOnSilentPeer(t *testing.T) {
	srv := startRawServer(t, func(int, []byte) []byte { return nil })
	l := newTCPLink(srv.addr(), 100*time.Millisecond, nil)
	defer l.close()
	for i := range 3 {
		start := time.Now()
		_, err := l.ReadRegisters(context.Background(), 1, 3, 0, 4)
		if !IsTimeout(err) || !IsUnreachable(err) {
			t.Fatalf("read %d: err = %v, want an unreachable timeout", i, err)
		}
		// A generous bound: it catches a timeout that is not applied at
		// all, not a slow machine.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("read %d took %v with a 100 ms timeout", i, d)
		}
	}
	if s := l.stats(); s.Connects != 3 || s.Closes != 3 {
		t.Errorf("stats = %+v, want a fresh connection per attempt", s)
	}
}

func TestLinkCancelUnblocksAtOnce(t *testing.T) {
	srv := startRawServer(t, func(int, []byte) []byte { return nil })
	l := newTCPLink(srv.addr(), time.Hour, nil)
	defer l.close()
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
	l := newTCPLink(addr, time.Second, nil)
	defer l.close()
	_, err := l.ReadRegisters(context.Background(), 1, 3, 20, 10) // past address 23
	ex := AsException(err)
	if ex == nil || ex.Exception != 2 || ex.Function != 3 || IsUnreachable(err) {
		t.Fatalf("err = %v, want exception 2 for function 3", err)
	}
	if err := readOK(l, 1); err != nil {
		t.Fatal(err)
	}
	if s := l.stats(); s.Connects != 1 || s.Closes != 0 {
		t.Errorf("stats = %+v: an exception must not drop the connection", s)
	}
}

// The read-only guard: goburrow's client has write methods; even when one
// is called, the guard refuses the frame before it is written, and the
// device sees no write.
func TestNoWriteEverReachesTheDevice(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(1)
	startServer(t, addr, img)
	l := newTCPLink(addr, time.Second, nil)
	defer l.close()
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
	if s := l.stats(); s.Connects != 1 {
		t.Errorf("connects = %d: refused frames must not even open a connection", s.Connects)
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
	l := newTCPLink(srv.addr(), time.Second, nil)
	defer l.close()
	_, _ = l.client.WriteSingleRegister(0, 1)
	_, _ = l.client.WriteMultipleRegisters(0, 1, []byte{0, 1})
	if _, err := l.ReadRegisters(context.Background(), 1, 4, 0, 2); err != nil {
		t.Fatal(err)
	}
	if fcs := srv.functionCodes(); len(fcs) != 1 || fcs[0] != 4 {
		t.Fatalf("the peer received function codes %v, want [4]", fcs)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	for n := 1; n <= 10; n++ {
		base := min(time.Second<<(n-1), 30*time.Second)
		for range 50 {
			d := backoff(n, time.Second, 30*time.Second)
			if d < base/2 || d >= base*3/2 {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", n, d, base/2, base*3/2)
			}
		}
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
	l := newTCPLink(srv.addr(), 50*time.Millisecond, nil)
	defer l.close()
	for range 3 {
		if err := u.Poll(context.Background(), l); !IsTimeout(err) {
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
