package protocol

import "context"

// Sink is where a driver delivers what it observed. The gateway's journal
// implements it; tests implement it with a slice.
//
// Cycle must not return nil before the record is durable: a driver may
// forget a cycle once Cycle returns. The sink fills Schema, ID, Gateway,
// Site, Seq and PrevHash; the driver fills the rest.
type Sink interface {
	Cycle(ctx context.Context, rec CycleRecord) error
	Telemetry(ctx context.Context, batch Telemetry) error
	Event(ctx context.Context, ev Event) error
}

// StateStore keeps a driver's working state for a device (for example a
// half-assembled cycle) across restarts, so that a gateway killed in the
// middle of a cycle still produces a complete record when the device
// finishes it. The state is opaque to the store.
type StateStore interface {
	// LoadState returns nil, nil when nothing was saved for device.
	LoadState(ctx context.Context, device string) ([]byte, error)
	SaveState(ctx context.Context, device string, state []byte) error
}
