package rtu

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// testSlave is a minimal RTU slave for this package's tests: it answers
// functions 1-4 for several units on one byte stream (a pty master or a TCP
// connection) and injects faults per unit. Register a of unit u holds
// u*1000+a, so a reply proves which unit answered.
type testSlave struct {
	rw io.ReadWriter

	mu        sync.Mutex
	units     map[byte]bool
	silent    map[byte]bool
	exception map[byte]byte // answer every request of the unit with this exception
	corrupt   map[byte]int  // corrupt the CRC of the next N replies
	garbage   map[byte]int  // send noise bytes before the next N replies
	noise     map[byte]bool // answer with noise only, never a valid frame
	requests  map[byte]int
	nonReads  int // requests with a function other than 1-4
	badFrames int // bytes dropped while resynchronising
}

func newTestSlave(rw io.ReadWriter, units ...byte) *testSlave {
	s := &testSlave{
		rw: rw, units: map[byte]bool{}, silent: map[byte]bool{}, exception: map[byte]byte{},
		corrupt: map[byte]int{}, garbage: map[byte]int{}, noise: map[byte]bool{}, requests: map[byte]int{},
	}
	for _, u := range units {
		s.units[u] = true
	}
	return s
}

// start serves until ctx is done or the stream fails; at cleanup the test
// closes the stream (which ends a pending Read) and waits for it.
func (s *testSlave) start(t *testing.T, ctx context.Context, stream io.Closer) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.serve(ctx)
	}()
	t.Cleanup(func() {
		stream.Close()
		wg.Wait()
	})
}

func (s *testSlave) set(f func(s *testSlave)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *testSlave) count(unit byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[unit]
}

func (s *testSlave) serve(ctx context.Context) {
	buf := make([]byte, 0, 512)
	chunk := make([]byte, 256)
	for ctx.Err() == nil {
		n, err := s.rw.Read(chunk)
		if err != nil {
			return
		}
		buf = append(buf, chunk[:n]...)
		// Requests for functions 1-4 are always 8 bytes.
		for len(buf) >= 8 {
			if !modbusframe.CRCValid(buf[:8]) {
				s.set(func(s *testSlave) { s.badFrames++ })
				buf = buf[1:]
				continue
			}
			frame := append([]byte(nil), buf[:8]...)
			buf = buf[8:]
			if reply := s.answer(frame); reply != nil {
				if _, err := s.rw.Write(reply); err != nil {
					return
				}
			}
		}
	}
}

func (s *testSlave) answer(req []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	unit, fc := req[0], req[1]
	addr, qty := binary.BigEndian.Uint16(req[2:]), binary.BigEndian.Uint16(req[4:])
	s.requests[unit]++
	if fc < 1 || fc > 4 {
		s.nonReads++
	}
	if !s.units[unit] || s.silent[unit] {
		return nil
	}
	var reply []byte
	switch {
	case fc < 1 || fc > 4:
		reply = modbusframe.AppendCRC([]byte{unit, fc | 0x80, 1})
	case s.exception[unit] != 0:
		reply = modbusframe.AppendCRC([]byte{unit, fc | 0x80, s.exception[unit]})
	case fc == 3 || fc == 4:
		reply = []byte{unit, fc, byte(2 * qty)}
		for i := range qty {
			reply = binary.BigEndian.AppendUint16(reply, uint16(unit)*1000+addr+i)
		}
		reply = modbusframe.AppendCRC(reply)
	default:
		data := make([]byte, (qty+7)/8)
		for i := range qty {
			if (addr+i)%2 == 1 {
				data[i/8] |= 1 << (i % 8)
			}
		}
		reply = modbusframe.AppendCRC(append([]byte{unit, fc, byte(len(data))}, data...))
	}
	if s.corrupt[unit] > 0 {
		s.corrupt[unit]--
		reply[len(reply)-1] ^= 0x5A
	}
	if s.noise[unit] {
		reply = []byte{unit, 0x55, 0xAA, unit, fc, 0xFF, 0x00, 0x13}
	}
	if s.garbage[unit] > 0 {
		s.garbage[unit]--
		reply = append([]byte{0x00, 0xFF, unit, 0x42, 0x13}, reply...)
	}
	return reply
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
