// Package rtu is sterigate's Modbus RTU master: the RTU framing (CRC-16,
// request encoding, reply validation), and the Bus that owns one serial
// port or one RTU-over-TCP connection and polls every unit on it in turn.
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
	"errors"
	"fmt"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// Read function codes: the only ones this package can send.
const (
	FuncReadCoils            byte = 1
	FuncReadDiscreteInputs   byte = 2
	FuncReadHoldingRegisters byte = 3
	FuncReadInputRegisters   byte = 4
)

// Limits from the Modbus application protocol specification v1.1b3 §6.1–6.4.
const (
	maxBitsPerRead      = 2000
	maxRegistersPerRead = 125
	// maxFrame is the longest RTU frame: address, function, 252 data bytes,
	// CRC (a 125-register reply is 255 bytes; 256 is the serial-line maximum).
	maxFrame = 256
)

// exceptionBit marks a reply as an exception: the slave echoes the request's
// function code with the high bit set.
const exceptionBit = 0x80

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
	case FuncReadCoils, FuncReadDiscreteInputs:
		limit = maxBitsPerRead
	case FuncReadHoldingRegisters, FuncReadInputRegisters:
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
	return AppendCRC(f)
}

// byteCount is the data byte count a correct reply carries.
func (r Request) byteCount() int {
	if r.Function == FuncReadCoils || r.Function == FuncReadDiscreteInputs {
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

// CRC16 is the Modbus CRC (CRC-16/MODBUS: polynomial 0xA001 reflected,
// initial value 0xFFFF). On the wire it is sent low byte first.
func CRC16(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendCRC appends the CRC of frame, low byte first.
func AppendCRC(frame []byte) []byte {
	crc := CRC16(frame)
	return append(frame, byte(crc), byte(crc>>8))
}

// frameCRCOK reports whether the last two bytes of frame are the CRC of the rest.
func frameCRCOK(frame []byte) bool {
	if len(frame) < 4 {
		return false
	}
	n := len(frame) - 2
	return CRC16(frame[:n]) == binary.LittleEndian.Uint16(frame[n:])
}

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
	case r.Function | exceptionBit:
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
// functions 1 and 2. An exception reply gives *ExceptionError, a bad CRC
// *CRCError, anything else that is not the reply to r *FrameError.
func (r Request) ParseReply(frame []byte) ([]uint16, error) {
	want := r.expectedLength(frame)
	switch {
	case want < 0:
		return nil, &FrameError{Unit: r.Unit, Function: r.Function, Reason: "reply does not match the request (unit, function or byte count)", Frame: clip(frame)}
	case want == 0 || len(frame) != want:
		return nil, &FrameError{Unit: r.Unit, Function: r.Function, Reason: fmt.Sprintf("reply is %d bytes, want %d", len(frame), want), Frame: clip(frame)}
	}
	if !frameCRCOK(frame) {
		n := len(frame) - 2
		return nil, &CRCError{Unit: r.Unit, Function: r.Function, Got: binary.LittleEndian.Uint16(frame[n:]), Want: CRC16(frame[:n])}
	}
	if frame[1]&exceptionBit != 0 {
		return nil, &ExceptionError{Unit: r.Unit, Function: r.Function, Code: frame[2]}
	}
	data := frame[3 : len(frame)-2]
	values := make([]uint16, r.Quantity)
	if r.Function == FuncReadCoils || r.Function == FuncReadDiscreteInputs {
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
		if frameCRCOK(buf[i : i+want]) {
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

// ExceptionError is an exception reply: the unit is alive and answered, but
// refused the request (for example exception 2, illegal data address, for a
// register block the device does not have).
type ExceptionError struct {
	Unit, Function, Code byte
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus rtu: unit %d function %d: exception %d (%s)", e.Unit, e.Function, e.Code, exceptionName(e.Code))
}

func exceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	}
	return "unknown exception code"
}

// CRCError is a reply of the right shape whose CRC is wrong: line noise,
// a wiring or termination fault, or two masters on one bus.
type CRCError struct {
	Unit, Function byte
	Got, Want      uint16
}

func (e *CRCError) Error() string {
	return fmt.Sprintf("modbus rtu: unit %d function %d: CRC error (frame says %04x, computed %04x)", e.Unit, e.Function, e.Got, e.Want)
}

// TimeoutError means no complete reply arrived within the timeout.
// Received counts the bytes that did arrive (0: the unit is silent).
type TimeoutError struct {
	Unit, Function byte
	After          time.Duration
	Received       int
}

func (e *TimeoutError) Error() string {
	if e.Received == 0 {
		return fmt.Sprintf("modbus rtu: unit %d function %d: no reply within %s", e.Unit, e.Function, e.After)
	}
	return fmt.Sprintf("modbus rtu: unit %d function %d: incomplete reply within %s (%d bytes received)", e.Unit, e.Function, e.After, e.Received)
}

// Timeout lets callers test for it like a net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// FrameError is a reply that is not a reply to the request: garbage on the
// line, another unit's frame, a wrong byte count.
type FrameError struct {
	Unit, Function byte
	Reason         string
	Frame          []byte // the first bytes received, for the log
}

func (e *FrameError) Error() string {
	// The bytes themselves stay out of the message (they differ every
	// time, which would defeat log de-duplication); Frame keeps them.
	return fmt.Sprintf("modbus rtu: unit %d function %d: %s", e.Unit, e.Function, e.Reason)
}

// LinkError means the serial port or TCP connection itself failed (adapter
// unplugged, connection reset). The bus closes the link and reopens it.
type LinkError struct {
	Op  string // "open", "write", "read", "dial"
	Err error
}

func (e *LinkError) Error() string { return "modbus rtu: " + e.Op + ": " + e.Err.Error() }
func (e *LinkError) Unwrap() error { return e.Err }

// IsLinkError reports whether err is (or wraps) a *LinkError.
func IsLinkError(err error) bool {
	var l *LinkError
	return errors.As(err, &l)
}
