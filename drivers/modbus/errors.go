package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	gmodbus "github.com/goburrow/modbus"
)

// ExceptionError is a Modbus exception reply: the device is reachable and
// answered, but refused the request (wrong address in the profile, device
// busy). A link owner must not drop the connection for it.
type ExceptionError struct {
	Function  byte // the request's function code (without the 0x80 flag)
	Exception byte // 1 illegal function, 2 illegal data address, 3 illegal data value, 4 device failure, ...
}

func (e *ExceptionError) Error() string {
	name := map[byte]string{
		1: "illegal function", 2: "illegal data address", 3: "illegal data value",
		4: "server device failure", 5: "acknowledge", 6: "server device busy",
		10: "gateway path unavailable", 11: "gateway target device failed to respond",
	}[e.Exception]
	if name == "" {
		name = "unknown exception"
	}
	return fmt.Sprintf("modbus exception %d (%s) for function %d", e.Exception, name, e.Function)
}

// AsException converts goburrow's *ModbusError (or an *ExceptionError)
// anywhere in err's chain to an *ExceptionError; it returns nil for any
// other error. RTU link owners built on goburrow use it too.
func AsException(err error) *ExceptionError {
	var ex *ExceptionError
	if errors.As(err, &ex) {
		return ex
	}
	var me *gmodbus.ModbusError
	if errors.As(err, &me) {
		return &ExceptionError{Function: me.FunctionCode &^ 0x80, Exception: me.ExceptionCode}
	}
	return nil
}

// ErrCRC marks a frame whose CRC did not match. RTU link owners wrap it
// (fmt.Errorf("...: %w", ErrCRC)) so Unit.Stats counts CRC errors.
var ErrCRC = errors.New("modbus: CRC mismatch")

// ErrTimeout marks a request that got no complete reply in time. Link owners
// may wrap it; IsTimeout also recognises net and context timeouts.
var ErrTimeout = errors.New("modbus: no reply within the timeout")

// ErrWriteRefused is returned by the read-only guard for any frame whose
// function code is not a read (1–4). It never reaches the device.
var ErrWriteRefused = errors.New("modbus: refused to send a non-read function code (sterigate is read-only)")

// IsTimeout reports whether err means "no reply in time".
func IsTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Positions of the function code inside an ADU, for ReadOnlyTransporter.
const (
	TCPFunctionOffset = 7 // MBAP header: transaction(2) protocol(2) length(2) unit(1)
	RTUFunctionOffset = 1 // unit(1)
)

// IsReadFunction reports whether fc is one of the read function codes
// sterigate may send: 1 coils, 2 discrete inputs, 3 holding registers,
// 4 input registers.
func IsReadFunction(fc byte) bool { return fc >= 1 && fc <= 4 }

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
// unless adu carries a read function code at functionOffset. Link owners
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
