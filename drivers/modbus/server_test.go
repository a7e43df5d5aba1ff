package modbus

import (
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// registerImage is a scripted device served by a real Modbus TCP server
// (simonvetter/modbus): holding and input registers from one image, a
// count of reads, and a count of every write attempt.
type registerImage struct {
	mu       sync.Mutex
	holding  []uint16
	input    []uint16
	reads    int
	writes   int
	delayOne time.Duration // the next read reply is delayed this long, once

	// A staged change is applied when a read starts at pollStart, i.e. at
	// the start of a poll of a multi-block profile, so that no poll sees
	// half of the old state and half of the new one.
	pollStart uint16
	staged    func(holding, input []uint16)
	appliedAt int // reads count when the last staged change was applied
}

// stage sets a change to apply at the start of the next poll.
func (d *registerImage) stage(f func(holding, input []uint16)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.staged = f
}

// stagedState reports whether the staged change was applied, and the read
// count at that moment.
func (d *registerImage) stagedState() (applied bool, at, reads int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.staged == nil, d.appliedAt, d.reads
}

func (d *registerImage) set(f func(holding, input []uint16)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.holding, d.input)
}

func (d *registerImage) readCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reads
}

func (d *registerImage) writeCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writes
}

func (d *registerImage) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		d.writes++
		return nil, smodbus.ErrIllegalFunction
	}
	return nil, smodbus.ErrIllegalDataAddress
}

func (d *registerImage) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalDataAddress
}

func (d *registerImage) serve(regs []uint16, addr, qty uint16) ([]uint16, error) {
	if d.staged != nil && addr == d.pollStart {
		d.staged(d.holding, d.input)
		d.staged = nil
		d.appliedAt = d.reads
	}
	d.reads++
	if int(addr)+int(qty) > len(regs) {
		return nil, smodbus.ErrIllegalDataAddress
	}
	if d.delayOne > 0 {
		delay := d.delayOne
		d.delayOne = 0
		d.mu.Unlock()
		time.Sleep(delay) // the device is slow to answer; this is the fault under test, not synchronization
		d.mu.Lock()
	}
	return append([]uint16(nil), regs[addr:addr+qty]...), nil
}

func (d *registerImage) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if req.IsWrite {
		d.writes++
		return nil, smodbus.ErrIllegalFunction
	}
	return d.serve(d.holding, req.Addr, req.Quantity)
}

func (d *registerImage) HandleInputRegisters(req *smodbus.InputRegistersRequest) ([]uint16, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.serve(d.input, req.Addr, req.Quantity)
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string { return freeAddrB(t) }

func freeAddrB(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startServer serves img on addr until the returned stop is called (and at
// the end of the test).
func startServer(t *testing.T, addr string, img *registerImage) (stop func()) {
	return startServerB(t, addr, img)
}

func startServerB(t testing.TB, addr string, img *registerImage) (stop func()) {
	t.Helper()
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{
		URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 8,
		Logger: log.New(io.Discard, "", 0),
	}, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { srv.Stop() }) }
	t.Cleanup(stop)
	return stop
}

// rawServer is a hand-written Modbus TCP peer for faults a real server
// does not produce: it records the function code of every frame it gets
// and answers through a test-supplied function (nil reply: stay silent).
type rawServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	fcs   []byte
	conns []net.Conn
	reply func(n int, req []byte) []byte // n counts requests from 0
}

func startRawServer(t *testing.T, reply func(n int, req []byte) []byte) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, reply: reply}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *rawServer) serve(c net.Conn) {
	defer s.wg.Done()
	for {
		hdr := make([]byte, 7)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint16(hdr[4:]))-1)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		req := append(hdr, body...)
		s.mu.Lock()
		n := len(s.fcs)
		s.fcs = append(s.fcs, req[7])
		s.mu.Unlock()
		if resp := s.reply(n, req); resp != nil {
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
}

func (s *rawServer) functionCodes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.fcs...)
}

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// answerRegisters builds a well-formed FC3/FC4 reply to req with values
// 1, 2, 3, ... and transaction id shifted by tidShift.
func answerRegisters(req []byte, tidShift uint16) []byte {
	qty := binary.BigEndian.Uint16(req[10:])
	resp := make([]byte, 9+2*int(qty))
	binary.BigEndian.PutUint16(resp, binary.BigEndian.Uint16(req)+tidShift)
	binary.BigEndian.PutUint16(resp[4:], uint16(3+2*int(qty)))
	resp[6], resp[7], resp[8] = req[6], req[7], byte(2*qty)
	for i := 0; i < int(qty); i++ {
		binary.BigEndian.PutUint16(resp[9+2*i:], uint16(i+1))
	}
	return resp
}

// eventually retries f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		select {
		case <-time.After(5 * time.Millisecond): // polling interval, not synchronization
		}
	}
	t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
}

var errNotYet = errors.New("not yet")
