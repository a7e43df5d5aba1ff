package rtuslave

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// testMaster is a deliberately small RTU master over go.bug.st/serial, written
// for these tests so that every byte on the line is under the test's control
// (goburrow/modbus's RTU client has timing and concurrency bugs, see
// libraries.md §1).
type testMaster struct {
	t    testing.TB
	port serial.Port
}

var (
	errTimeout = errors.New("test master: no complete reply before the timeout")
	errBadCRC  = errors.New("test master: reply CRC mismatch")
)

type exceptionError struct{ function, code byte }

func (e *exceptionError) Error() string {
	return fmt.Sprintf("test master: exception %d to function %d", e.code, e.function)
}

func newTestMaster(t testing.TB, path string) *testMaster {
	t.Helper()
	port, err := serial.Open(path, &serial.Mode{BaudRate: 19200, DataBits: 8, Parity: serial.EvenParity, StopBits: serial.OneStopBit})
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { port.Close() })
	if err := port.SetReadTimeout(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return &testMaster{t: t, port: port}
}

func readRequest(unit, function byte, address, quantity uint16) []byte {
	frame := []byte{unit, function}
	frame = binary.BigEndian.AppendUint16(frame, address)
	frame = binary.BigEndian.AppendUint16(frame, quantity)
	return modbusframe.AppendCRC(frame)
}

func (m *testMaster) send(frame []byte) {
	m.t.Helper()
	if err := m.port.ResetInputBuffer(); err != nil {
		m.t.Fatalf("reset input: %v", err)
	}
	if _, err := m.port.Write(frame); err != nil {
		m.t.Fatalf("write request: %v", err)
	}
}

// readAtLeast reads until n bytes have arrived or the timeout passes; it
// returns what arrived. go.bug.st/serial signals its per-Read timeout as (0, nil).
func (m *testMaster) readAtLeast(n int, timeout time.Duration) []byte {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	var got []byte
	buf := make([]byte, 300)
	for len(got) < n && time.Now().Before(deadline) {
		k, err := m.port.Read(buf)
		if err != nil {
			m.t.Fatalf("read reply: %v", err)
		}
		got = append(got, buf[:k]...)
	}
	return got
}

// readRegisters sends a function 3 or 4 request and decodes the reply.
func (m *testMaster) readRegisters(unit, function byte, address, quantity uint16, timeout time.Duration) ([]uint16, error) {
	m.t.Helper()
	m.send(readRequest(unit, function, address, quantity))
	return m.readReply(unit, function, timeout)
}

func (m *testMaster) readReply(unit, function byte, timeout time.Duration) ([]uint16, error) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	reply := m.readAtLeast(3, time.Until(deadline))
	if len(reply) < 3 {
		return nil, errTimeout
	}
	if reply[0] != unit {
		return nil, fmt.Errorf("test master: reply from unit %d, want %d: % x", reply[0], unit, reply)
	}
	want := 5 + int(reply[2])
	if reply[1] == function|0x80 {
		want = 5
	} else if reply[1] != function {
		return nil, fmt.Errorf("test master: reply function %#x, want %#x: % x", reply[1], function, reply)
	}
	if len(reply) < want {
		reply = append(reply, m.readAtLeast(want-len(reply), time.Until(deadline))...)
	}
	if len(reply) < want {
		return nil, errTimeout
	}
	if len(reply) > want {
		return nil, fmt.Errorf("test master: %d bytes after the reply: % x", len(reply)-want, reply)
	}
	if !modbusframe.CRCValid(reply) {
		return nil, errBadCRC
	}
	if reply[1]&0x80 != 0 {
		return nil, &exceptionError{function: function, code: reply[2]}
	}
	values := make([]uint16, reply[2]/2)
	for i := range values {
		values[i] = binary.BigEndian.Uint16(reply[3+2*i:])
	}
	return values, nil
}

// expectSilence checks that nothing arrives within quiet (a dead unit, a
// broadcast, a dropped reply). quiet bounds the test's wait, not a sync point.
func (m *testMaster) expectSilence(what string, quiet time.Duration) {
	m.t.Helper()
	if got := m.readAtLeast(1, quiet); len(got) > 0 {
		m.t.Fatalf("%s: got reply % x, want silence", what, got)
	}
}
