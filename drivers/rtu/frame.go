// Package rtu is sterigate's Modbus RTU transport: the RTU framing
// (request encoding, reply validation, reading a reply to its expected
// length through line noise) over a serial port or over a TCP connection to
// a serial device server, and what is specific to serial lines (SerialConfig,
// finding a USB adapter again after a replug, t3.5, flushing stale input).
// The polling loop, the error classification and the statistics are
// drivers/modbus's, the same for every transport: a Transport from here is
// handed to modbus.NewLink.
//
// The package is read-only by construction: the only requests it can encode
// are the four Modbus read functions (1 read coils, 2 read discrete inputs,
// 3 read holding registers, 4 read input registers). No profile, config or
// caller can make it send anything else.
//
// The framer is written here rather than borrowed from goburrow/modbus: its
// RTU client sleeps a fixed time instead of reading to the expected length,
// mis-detects exception replies that arrive in pieces, never flushes stale
// input and exposes write functions (see README.md).
package rtu

import (
	"encoding/binary"
	"fmt"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// Limits from the Modbus application protocol specification v1.1b3 §6.1–6.4.
const (
	maxBitsPerRead      = 2000
	maxRegistersPerRead = 125
)

// Request is one validated read request.
type Request struct {
	Unit     byte
	Function byte
	Address  uint16
	Quantity uint16
}

// NewRequest validates a read request. It refuses every function code but
// 1–4, broadcast (unit 0) and out-of-range quantities, naming the bad value.
func NewRequest(unit, function byte, address, quantity uint16) (Request, error) {
	r := Request{Unit: unit, Function: function, Address: address, Quantity: quantity}
	if unit < 1 || unit > 247 {
		return r, fmt.Errorf("modbus rtu: unit %d out of range 1..247 (0 is broadcast, which gets no reply; 248..255 are reserved)", unit)
	}
	limit := uint16(0)
	switch function {
	case modbusframe.FuncReadCoils, modbusframe.FuncReadDiscreteInputs:
		limit = maxBitsPerRead
	case modbusframe.FuncReadHoldingRegisters, modbusframe.FuncReadInputRegisters:
		limit = maxRegistersPerRead
	default:
		return r, fmt.Errorf("modbus rtu: function %d refused: sterigate only reads (functions 1, 2, 3, 4): %w", function, modbus.ErrWriteRefused)
	}
	if quantity < 1 || quantity > limit {
		return r, fmt.Errorf("modbus rtu: function %d: quantity %d out of range 1..%d", function, quantity, limit)
	}
	if int(address)+int(quantity) > 0x10000 {
		return r, fmt.Errorf("modbus rtu: function %d: address %d + quantity %d runs past register 65535", function, address, quantity)
	}
	return r, nil
}

// Encode returns the request's RTU frame (8 bytes).
func (r Request) Encode() []byte {
	f := make([]byte, 6, 8)
	f[0] = r.Unit
	f[1] = r.Function
	binary.BigEndian.PutUint16(f[2:], r.Address)
	binary.BigEndian.PutUint16(f[4:], r.Quantity)
	return modbusframe.AppendCRC(f)
}

// byteCount is the data byte count a correct reply carries.
func (r Request) byteCount() int {
	if r.Function == modbusframe.FuncReadCoils || r.Function == modbusframe.FuncReadDiscreteInputs {
		return (int(r.Quantity) + 7) / 8
	}
	return 2 * int(r.Quantity)
}

// ReplyLength is the length of a correct (non-exception) reply frame:
// address, function, byte count, data, CRC.
func (r Request) ReplyLength() int { return 3 + r.byteCount() + 2 }

// exceptionLength is the length of an exception reply: address, function|0x80,
// exception code, CRC.
const exceptionLength = 5

// expectedLength says how long the reply that starts frame must be, from its
// first bytes. It returns 0 when more bytes are needed to know, and -1 when
// frame cannot be the start of a reply to r.
func (r Request) expectedLength(frame []byte) int {
	if len(frame) >= 1 && frame[0] != r.Unit {
		return -1
	}
	if len(frame) < 2 {
		return 0
	}
	switch frame[1] {
	case r.Function | modbusframe.ExceptionBit:
		return exceptionLength
	case r.Function:
	default:
		return -1
	}
	if len(frame) < 3 {
		return 0
	}
	if int(frame[2]) != r.byteCount() {
		return -1
	}
	return r.ReplyLength()
}

// ParseReply checks a complete reply frame against r and returns its values:
// one uint16 per register for functions 3 and 4, one 0/1 per bit for
// functions 1 and 2. An exception reply gives *modbus.ExceptionError, a bad
// CRC *modbus.CRCError, anything else that is not the reply to r
// *modbus.FrameError.
func (r Request) ParseReply(frame []byte) ([]uint16, error) {
	want := r.expectedLength(frame)
	switch {
	case want < 0:
		return nil, &modbus.FrameError{Unit: r.Unit, Function: r.Function, Reason: "reply does not match the request (unit, function or byte count)", Frame: clip(frame)}
	case want == 0 || len(frame) != want:
		return nil, &modbus.FrameError{Unit: r.Unit, Function: r.Function, Reason: fmt.Sprintf("reply is %d bytes, want %d", len(frame), want), Frame: clip(frame)}
	}
	if !modbusframe.CRCValid(frame) {
		got, want := modbusframe.FrameCRC(frame)
		return nil, &modbus.CRCError{Unit: r.Unit, Function: r.Function, Got: got, Want: want}
	}
	if frame[1]&modbusframe.ExceptionBit != 0 {
		return nil, &modbus.ExceptionError{Unit: r.Unit, Function: r.Function, Code: frame[2]}
	}
	data := frame[3 : len(frame)-2]
	values := make([]uint16, r.Quantity)
	if r.Function == modbusframe.FuncReadCoils || r.Function == modbusframe.FuncReadDiscreteInputs {
		for i := range values {
			values[i] = uint16(data[i/8]>>(i%8)) & 1
		}
		return values, nil
	}
	for i := range values {
		values[i] = binary.BigEndian.Uint16(data[2*i:])
	}
	return values, nil
}

// findReply looks for a complete, CRC-valid reply to r anywhere in buf, for
// replies preceded by line noise or a stale tail. It returns the frame's
// offset and length, or -1.
func (r Request) findReply(buf []byte) (offset, length int) {
	for i := 0; i+exceptionLength <= len(buf); i++ {
		want := r.expectedLength(buf[i:])
		if want <= 0 || i+want > len(buf) {
			continue
		}
		if modbusframe.CRCValid(buf[i : i+want]) {
			return i, want
		}
	}
	return -1, 0
}

func clip(frame []byte) []byte {
	if len(frame) > 32 {
		frame = frame[:32]
	}
	return append([]byte(nil), frame...)
}

// atDeadline says what the bytes that arrived by the deadline were: the
// reply behind some noise, a timeout (nothing, or only the start of a
// reply), a reply with another function code, or garbage.
func (r Request) atDeadline(buf []byte) ([]uint16, error) {
	if off, n := r.findReply(buf); off >= 0 {
		return r.ParseReply(buf[off : off+n])
	}
	if len(buf) == 0 || r.expectedLength(buf) >= 0 {
		return nil, &modbus.TimeoutError{Unit: r.Unit, Function: r.Function, Received: len(buf)}
	}
	if len(buf) >= 2 && buf[0] == r.Unit && buf[1] != r.Function && buf[1] != r.Function|modbusframe.ExceptionBit {
		return nil, &modbus.FrameError{Unit: r.Unit, Function: r.Function, Frame: clip(buf),
			Reason: fmt.Sprintf("reply has function code %d, expected %d", buf[1], r.Function)}
	}
	return nil, &modbus.FrameError{Unit: r.Unit, Function: r.Function, Reason: "garbage on the line and no valid reply", Frame: clip(buf)}
}
