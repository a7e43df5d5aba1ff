package modbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// ErrorKind is the one classification of what went wrong with a request or
// a poll, whatever the transport. Logs, UnitStats, the metrics and the
// offline decision all use it.
type ErrorKind uint8

const (
	// KindNone: no error.
	KindNone ErrorKind = iota
	// KindTimeout: no complete reply within the timeout (*TimeoutError).
	KindTimeout
	// KindTransport: the link failed (*LinkError: connection refused or
	// reset, serial port gone), or what came back is not a reply to the
	// request (*FrameError: garbage on the line, another unit's or another
	// request's reply, a wrong function code, a bad length).
	KindTransport
	// KindCRC: an RTU reply of the right shape with a bad CRC (*CRCError).
	KindCRC
	// KindException: the unit answered with a Modbus exception
	// (*ExceptionError; the code says which).
	KindException
	// KindDecode: the replies arrived but the profile cannot decode them
	// (ErrDecode, *profile.DecodeError).
	KindDecode
)

// ErrorKinds lists the kinds that are errors, in metric order.
var ErrorKinds = []ErrorKind{KindTimeout, KindTransport, KindCRC, KindException, KindDecode}

func (k ErrorKind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindTimeout:
		return "timeout"
	case KindTransport:
		return "transport"
	case KindCRC:
		return "crc"
	case KindException:
		return "exception"
	case KindDecode:
		return "decode"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Classify returns err's kind and, for an exception, its code.
func Classify(err error) (kind ErrorKind, exceptionCode byte) {
	if err == nil {
		return KindNone, 0
	}
	if ex := AsException(err); ex != nil {
		return KindException, ex.Code
	}
	var (
		ce *CRCError
		de *profile.DecodeError
	)
	switch {
	case errors.As(err, &ce):
		return KindCRC, 0
	case errors.Is(err, ErrDecode) || errors.As(err, &de):
		return KindDecode, 0
	case isTimeout(err):
		return KindTimeout, 0
	}
	return KindTransport, 0
}

// IsUnreachable reports whether a poll error means the unit did not answer:
// a timeout, a transport or CRC error, or exception 10 or 11 — a Modbus
// TCP gateway saying the unit behind it is not there (powered off,
// unplugged). Such failures count towards the unit's offline_after and
// back-off. Any other exception, or a reply the profile cannot decode,
// means the unit is there but misconfigured: not an outage, and the fix is
// in the profile, not the wiring. A cancelled context is no failure.
func IsUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	switch kind, code := Classify(err); kind {
	case KindException:
		return modbusframe.TargetAbsent(code)
	case KindDecode:
		return false
	}
	return true
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// ExceptionError is a Modbus exception reply: the unit (or the gateway in
// front of it) answered, but refused the request.
type ExceptionError struct {
	Unit     byte
	Function byte // the request's function code (without the exception bit)
	Code     byte // 1 illegal function, 2 illegal data address, … 11 gateway target failed to respond
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("exception %d (%s)", e.Code, modbusframe.ExceptionName(e.Code))
}

// AsException returns the *ExceptionError in err's chain (goburrow's
// *ModbusError is converted), or nil.
func AsException(err error) *ExceptionError {
	var ex *ExceptionError
	if errors.As(err, &ex) {
		return ex
	}
	var me *gmodbus.ModbusError
	if errors.As(err, &me) {
		return &ExceptionError{Function: me.FunctionCode &^ modbusframe.ExceptionBit, Code: me.ExceptionCode}
	}
	return nil
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
		return fmt.Sprintf("no reply within %s", e.After)
	}
	return fmt.Sprintf("incomplete reply within %s (%d bytes received)", e.After, e.Received)
}

// Timeout makes a TimeoutError answer like a net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// CRCError is an RTU reply of the right shape whose CRC is wrong: line
// noise, a wiring or termination fault, two masters on one bus.
type CRCError struct {
	Unit, Function byte
	Got, Want      uint16
}

func (e *CRCError) Error() string {
	return fmt.Sprintf("CRC error (frame says %04x, computed %04x)", e.Got, e.Want)
}

// FrameError is something that came back but is not the reply to the
// request: garbage, another unit's or another request's reply, a wrong
// function code or length. It is a transport error (KindTransport).
type FrameError struct {
	Unit, Function byte
	Reason         string
	Frame          []byte // the first bytes received, for debugging
}

func (e *FrameError) Error() string {
	// The bytes stay out of the message: they differ every time, which
	// would defeat log de-duplication.
	return e.Reason
}

// LinkError means the link itself failed: the connection could not be made
// or was reset, the serial port vanished. The transport has closed it; the
// link owner reopens it with back-off.
type LinkError struct {
	Op  string // "connect 10.0.0.5:502", "open /dev/ttyUSB0", "read", "write"
	Err error
}

func (e *LinkError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *LinkError) Unwrap() error { return e.Err }

// ErrDecode marks a poll whose replies arrived but could not be decoded
// with the profile.
var ErrDecode = errors.New("reply does not decode with the profile")

// ErrWriteRefused is returned by the read-only guard for any frame whose
// function code is not a read (1–4). It never reaches the device.
var ErrWriteRefused = errors.New("modbus: refused to send a non-read function code (sterigate is read-only)")

// Positions of the function code inside an ADU, for the read-only guard.
const (
	TCPFunctionOffset = 7 // MBAP header: transaction(2) protocol(2) length(2) unit(1)
	RTUFunctionOffset = 1 // unit(1)
)

// IsReadFunction reports whether fc is one of the read function codes
// sterigate may send: 1 coils, 2 discrete inputs, 3 holding registers,
// 4 input registers.
func IsReadFunction(fc byte) bool { return modbusframe.IsReadFunction(fc) }

// ReadOnlyTransporter wraps a goburrow Transporter and refuses, before
// anything is written, every ADU whose function code (at functionOffset)
// is not a read. It is the last line of the read-only guarantee: even a
// bug that called a goburrow write method could not reach the device.
func ReadOnlyTransporter(next gmodbus.Transporter, functionOffset int) gmodbus.Transporter {
	return readOnlyTransporter{next: next, offset: functionOffset}
}

type readOnlyTransporter struct {
	next   gmodbus.Transporter
	offset int
}

func (t readOnlyTransporter) Send(adu []byte) ([]byte, error) {
	if err := CheckReadOnlyADU(adu, t.offset); err != nil {
		return nil, err
	}
	return t.next.Send(adu)
}

// CheckReadOnlyADU returns ErrWriteRefused (wrapped with the function code)
// unless adu carries a read function code at functionOffset. Transports
// that frame ADUs themselves call it before every write to the wire.
func CheckReadOnlyADU(adu []byte, functionOffset int) error {
	if len(adu) <= functionOffset {
		return fmt.Errorf("%w: frame of %d bytes has no function code", ErrWriteRefused, len(adu))
	}
	if fc := adu[functionOffset]; !IsReadFunction(fc) {
		return fmt.Errorf("%w: function %d", ErrWriteRefused, fc)
	}
	return nil
}
