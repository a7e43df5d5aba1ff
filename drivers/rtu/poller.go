package rtu

import "context"

// RegisterReader reads one block from one unit; the bus hands one to each
// unit's Poll. It has the method set of modbus.RegisterReader.
type RegisterReader interface {
	ReadRegisters(ctx context.Context, unit byte, function byte, address, quantity uint16) ([]uint16, error)
}

// Poller is one unit on the bus: *modbus.Unit implements it. Poll reads the
// unit's blocks through r; Unreachable tells it the bus cannot reach it.
// Both are called from the bus goroutine only.
type Poller interface {
	Poll(ctx context.Context, r RegisterReader) error
	Unreachable(ctx context.Context, err error)
}
