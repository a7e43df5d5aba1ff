package rtu

import (
	"context"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// RegisterReader is what the bus hands to each unit's Poll.
type RegisterReader = modbus.RegisterReader

// Poller is one unit on the bus: *modbus.Unit implements it. Poll reads the
// unit's blocks through r; Unreachable tells it the bus cannot reach it.
// Both are called from the bus goroutine only.
type Poller interface {
	Poll(ctx context.Context, r RegisterReader) error
	Unreachable(ctx context.Context, err error)
}

var _ Poller = (*modbus.Unit)(nil)

// The errors of this package answer to the modbus package's classification
// (modbus.AsException, modbus.ErrCRC, modbus.IsTimeout,
// modbus.ErrWriteRefused), so modbus.Unit.Stats counts RTU exceptions, CRC
// errors and timeouts like TCP ones.

// As lets errors.As find a *modbus.ExceptionError in an RTU exception.
func (e *ExceptionError) As(target any) bool {
	if t, ok := target.(**modbus.ExceptionError); ok {
		*t = &modbus.ExceptionError{Function: e.Function, Exception: e.Code}
		return true
	}
	return false
}

// Is makes errors.Is(err, modbus.ErrCRC) true for a CRC error.
func (e *CRCError) Is(target error) bool { return target == modbus.ErrCRC }

// Is makes errors.Is(err, modbus.ErrTimeout) true for a timeout.
func (e *TimeoutError) Is(target error) bool { return target == modbus.ErrTimeout }
