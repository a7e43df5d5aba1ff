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
	// SaveStates saves several keys' states together, all or none: one
	// durable write where a SaveState per key is one each (a poll saves
	// the open cycle's last samples and the state that counts them).
	SaveStates(ctx context.Context, states []SavedState) error
}

// SavedState is one key's state in a StateStore.SaveStates call.
type SavedState struct {
	Key   string
	State []byte
}

// CycleHistory tells a driver what a sink already holds for a device
// cycle. The printer tap asks it before journaling a printout, so that a
// complete reprint of a cut printout supersedes the cut record (a new
// revision) instead of being taken for a re-delivery and dropped. The
// journal implements it.
type CycleHistory interface {
	// LatestCycleRecord returns the newest record held for the cycle (the
	// highest revision), with the ID the sink gave it, or nil, nil when
	// none is held. A record whose content is no longer kept comes back
	// with only its identity (ID, Device, Cycle, CounterEpoch, Revision)
	// and Result unknown.
	LatestCycleRecord(ctx context.Context, device string, counterEpoch uint32, cycle uint64) (*CycleRecord, error)
}
