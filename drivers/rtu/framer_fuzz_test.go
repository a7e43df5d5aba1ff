package rtu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// scriptedLine delivers a fixed byte stream in fixed-size chunks, then
// reports the deadline; writes are accepted and ignored.
type scriptedLine struct {
	data  []byte
	chunk int
}

func (l *scriptedLine) write([]byte) error  { return nil }
func (l *scriptedLine) discardInput() error { return nil }
func (l *scriptedLine) close() error        { return nil }
func (l *scriptedLine) readSome(p []byte, _ time.Time) (int, error) {
	if len(l.data) == 0 {
		return 0, errDeadline
	}
	n := min(len(p), l.chunk, len(l.data))
	copy(p, l.data[:n])
	l.data = l.data[n:]
	return n, nil
}

// FuzzFramerReadReply feeds the framer arbitrary line traffic, cut into
// arbitrary chunks, as the reply to a request. It must never panic or hang,
// and a reply it accepts must carry the values a valid frame in the traffic
// carried (a CRC-valid reply to this very request).
func FuzzFramerReadReply(f *testing.F) {
	good := modbusframe.AppendCRC([]byte{7, 3, 4, 0x01, 0x02, 0x03, 0x04})
	f.Add(byte(3), uint16(2), good, uint8(1))
	f.Add(byte(3), uint16(2), append([]byte{0, 7, 3, 9}, good...), uint8(3))
	f.Add(byte(3), uint16(2), modbusframe.AppendCRC([]byte{7, 0x83, 2}), uint8(2))
	f.Add(byte(4), uint16(1), []byte{7, 4, 2, 0, 0, 0, 0}, uint8(7))
	f.Add(byte(1), uint16(3), modbusframe.AppendCRC([]byte{7, 1, 1, 5}), uint8(64))
	f.Fuzz(func(t *testing.T, fc byte, qty uint16, traffic []byte, chunk uint8) {
		req, err := NewRequest(7, fc, 0, qty)
		if err != nil || len(traffic) > 4*modbusframe.MaxRTUFrame {
			return
		}
		fr := &framer{line: &scriptedLine{data: append([]byte(nil), traffic...), chunk: int(chunk%64) + 1}, timeout: time.Second}
		values, err := fr.transact(context.Background(), req)
		if err == nil {
			if len(values) != int(qty) {
				t.Fatalf("%d values for quantity %d", len(values), qty)
			}
			if off, _ := req.findReply(traffic); off < 0 {
				t.Fatalf("accepted a reply although the traffic holds no valid one: % x", traffic)
			}
			return
		}
		var (
			ex *modbus.ExceptionError
			ce *modbus.CRCError
			fe *modbus.FrameError
			te *modbus.TimeoutError
		)
		if !errors.As(err, &ex) && !errors.As(err, &ce) && !errors.As(err, &fe) && !errors.As(err, &te) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
