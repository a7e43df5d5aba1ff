// Package modbus reads sterilizers over Modbus and turns their registers
// into sterigate cycle records.
//
// The package is split along who owns what:
//   - A link owner (TCPPoller here; the RTU bus owner and RTU-over-TCP
//     elsewhere) owns one physical connection in one goroutine and reads
//     blocks of registers through a RegisterReader.
//   - A Unit is one sterilizer behind a link: it reads its profile's blocks
//     through whatever RegisterReader its owner hands it, decodes them, and
//     feeds its cycle assembler (package drivers/cycle).
//
// Only read function codes (1–4) ever leave the gateway: the link exposes
// no write method, profiles cannot name another function, and a guard at
// the transport refuses any other frame (see ReadOnlyTransporter).
package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// RegisterReader reads one block from one unit. For functions 3 and 4 it
// returns quantity registers; for functions 1 and 2 it returns quantity
// words, each 0 or 1 (one per coil or discrete input). Implementations: the
// TCP link here; the RTU bus and RTU over TCP elsewhere.
type RegisterReader interface {
	ReadRegisters(ctx context.Context, unit byte, function byte, address, quantity uint16) ([]uint16, error)
}

// UnitConfig describes one sterilizer behind a link.
type UnitConfig struct {
	Device  string // device id: journal key, MQTT topic level
	Unit    byte   // Modbus unit (slave) id: 1–247 on a serial bus; on TCP often 1, 0 or 255 (the link owner checks its range)
	Profile *profile.Profile
	Source  string // "modbus-tcp", "modbus-rtu", "modbus-rtu-over-tcp", ...

	// TelemetryInterval / TelemetryMaxSamples: see cycle.Config (defaults 5 s, 10).
	TelemetryInterval   time.Duration
	TelemetryMaxSamples int
	// PollInterval is how often the link owner polls this unit; the link
	// owner sets it. It gives the default max sample gap of the unit's
	// cycle records (see cycle.Config).
	PollInterval time.Duration
	// TimeScale: device seconds per wall-clock second, for simulators
	// running fast (0 or 1: a real device). Records carry it.
	TimeScale float64
	// Now is the clock (nil: time.Now). Tests inject a scripted clock.
	Now func() time.Time
}

// Unit polls one sterilizer with its profile and feeds its cycle assembler.
// Poll and Unreachable are called by the link owner's goroutine only; Stats
// may be read from any goroutine.
type Unit struct {
	cfg         UnitConfig
	assembler   *cycle.Assembler
	log         *slog.Logger
	stats       unitCounters
	lastErr     string // kind of the last logged poll error, so a steady failure logs once
	sinkFailing bool   // the last Observe could not deliver or save

	statusMu sync.Mutex
	status   protocol.DeviceStatus
}

// NewUnit checks cfg and builds the unit and its assembler.
func NewUnit(cfg UnitConfig, sink protocol.Sink, state protocol.StateStore, log *slog.Logger) (*Unit, error) {
	if cfg.Device == "" {
		return nil, errors.New("modbus unit: device id is empty")
	}
	if cfg.Profile == nil {
		return nil, fmt.Errorf("modbus unit %s: no profile", cfg.Device)
	}
	if cfg.Source == "" {
		cfg.Source = "modbus"
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("device", cfg.Device, "unit", cfg.Unit)
	a, err := cycle.New(cycle.Config{
		Device:              cfg.Device,
		Source:              cfg.Source,
		Profile:             cfg.Profile,
		TelemetryInterval:   cfg.TelemetryInterval,
		TelemetryMaxSamples: cfg.TelemetryMaxSamples,
		PollInterval:        cfg.PollInterval,
		TimeScale:           cfg.TimeScale,
		Now:                 cfg.Now,
	}, sink, state, log)
	if err != nil {
		return nil, fmt.Errorf("modbus unit %s: %w", cfg.Device, err)
	}
	return &Unit{cfg: cfg, assembler: a, log: log, status: protocol.DeviceStatus{Device: cfg.Device, State: protocol.DeviceUnknown}}, nil
}

// Status returns the device's state as of the last poll, for the retained
// device status topic. Safe from any goroutine.
func (u *Unit) Status() protocol.DeviceStatus {
	u.statusMu.Lock()
	defer u.statusMu.Unlock()
	return u.status
}

func (u *Unit) setStatus(f func(*protocol.DeviceStatus)) {
	u.statusMu.Lock()
	defer u.statusMu.Unlock()
	f(&u.status)
	u.status.At = u.now().UTC()
}

func (u *Unit) now() time.Time {
	if u.cfg.Now != nil {
		return u.cfg.Now()
	}
	return time.Now()
}

// Config returns the unit's configuration.
func (u *Unit) Config() UnitConfig { return u.cfg }

// Poll reads every block of the unit's profile through r, decodes them and
// feeds the assembler. It returns the first read error (an *ExceptionError
// when the device answered with a Modbus exception, otherwise a transport
// error) or a decode error; on error nothing is fed to the assembler and the
// caller decides whether the unit is unreachable.
func (u *Unit) Poll(ctx context.Context, r RegisterReader) error {
	u.stats.polls.Add(1)
	p := u.cfg.Profile
	data := make([][]uint16, len(p.Blocks))
	for i, b := range p.Blocks {
		words, err := r.ReadRegisters(ctx, u.cfg.Unit, b.Function, b.Start, b.Count)
		if err != nil {
			u.countError(err)
			err = fmt.Errorf("device %s unit %d: read function %d address %d count %d: %w", u.cfg.Device, u.cfg.Unit, b.Function, b.Start, b.Count, err)
			u.logOnce(err)
			if ctx.Err() == nil { // shutting down is not a failed poll
				u.assembler.PollFailed(ctx, err)
			}
			return err
		}
		data[i] = words
	}
	reading, err := p.Decode(data)
	if err != nil {
		u.stats.decodeErrors.Add(1)
		err = fmt.Errorf("device %s profile %s: %w: %w", u.cfg.Device, p.Name, ErrDecode, err)
		u.logOnce(err)
		u.assembler.PollFailed(ctx, err)
		return err
	}
	if len(reading.Implausible) > 0 {
		// Counters and codes are still good, so the reading is used (a
		// broken probe must not hide the end of a cycle); the implausible
		// values are not (the assembler raises the event).
		u.stats.implausibleValues.Add(uint64(len(reading.Implausible)))
		u.logOnce(fmt.Errorf("device %s profile %s: %w; not recorded", u.cfg.Device, p.Name, reading.Implausible[0]))
	} else if u.lastErr != "" {
		u.log.Info("modbus poll recovered", "after", u.lastErr)
		u.lastErr = ""
	}
	u.stats.goodPolls.Add(1)
	u.stats.lastGood.Store(time.Now().UnixNano())
	u.setStatus(func(s *protocol.DeviceStatus) {
		s.State, s.Phase, s.Cycle, s.Error, s.Program = protocol.DeviceOnline, reading.Phase, reading.Counter, "", ""
		if reading.HasProgram {
			s.Program = p.ProgramName(reading.ProgramCode)
		}
	})
	if err := u.assembler.Observe(ctx, reading); err != nil {
		// The reading was good; what failed is the sink or the state
		// store. The assembler keeps what it could not deliver and
		// retries on the next poll, so this is logged (once per outage),
		// not returned.
		u.stats.sinkErrors.Add(1)
		if !u.sinkFailing {
			u.sinkFailing = true
			u.log.Warn("cannot deliver to the journal or save the cycle state; keeping it and retrying on every poll", "err", err)
		}
	} else if u.sinkFailing {
		u.sinkFailing = false
		u.log.Info("journal delivery recovered")
	}
	return nil
}

// Unreachable tells the unit its link owner could not reach it. The unit
// emits one offline event per outage and marks the cycle in progress as not
// fully observed.
func (u *Unit) Unreachable(ctx context.Context, err error) {
	u.setStatus(func(s *protocol.DeviceStatus) {
		s.State = protocol.DeviceOffline
		if err != nil {
			s.Error = err.Error()
		}
	})
	u.assembler.Unreachable(ctx, err)
}

// logOnce logs a poll error unless the previous poll failed the same way.
// The comparison is on the kind of error, not its text: a timeout names a
// new local port on every reconnect, and must not log on every retry.
func (u *Unit) logOnce(err error) {
	if kind := errorKind(err); kind != u.lastErr {
		u.lastErr = kind
		u.log.Warn("modbus poll failed", "err", err)
	}
}

func errorKind(err error) string {
	var de *profile.DecodeError
	var iv profile.Implausible
	switch ex := AsException(err); {
	case ex != nil:
		return ex.Error()
	case errors.As(err, &de):
		return "decode " + de.Field
	case errors.As(err, &iv):
		return "implausible " + iv.Field
	case errors.Is(err, ErrCRC):
		return "crc"
	case IsTimeout(err):
		return "timeout"
	case errors.Is(err, ErrDecode):
		return "decode"
	}
	return "transport"
}

func (u *Unit) countError(err error) {
	var ex *ExceptionError
	switch {
	case errors.As(err, &ex):
		u.stats.exceptions.Add(1)
	case errors.Is(err, ErrCRC):
		u.stats.crcErrors.Add(1)
	case IsTimeout(err):
		u.stats.timeouts.Add(1)
	default:
		u.stats.transportErrors.Add(1)
	}
}

// UnitStats counts what happened on one unit since start, for metrics.
type UnitStats struct {
	Polls           uint64 // poll attempts
	GoodPolls       uint64 // polls whose replies decoded (possibly without a valid measurement)
	Exceptions      uint64 // Modbus exception replies
	Timeouts        uint64 // no (complete) reply within the timeout
	CRCErrors       uint64 // RTU frames with a bad CRC
	TransportErrors uint64 // other I/O or framing errors (connection refused, reset, transaction id mismatch...)
	DecodeErrors    uint64 // replies the profile could not decode
	// ImplausibleValues counts measured values refused as not plausible
	// (outside their role's range, or not a number): metrics expose it.
	ImplausibleValues uint64
	SinkErrors        uint64    // polls whose output could not be delivered or saved (retried)
	LastGoodPoll      time.Time // zero until the first good poll
}

// Stats returns a snapshot of the unit's counters. Safe from any goroutine.
func (u *Unit) Stats() UnitStats {
	s := UnitStats{
		Polls:             u.stats.polls.Load(),
		GoodPolls:         u.stats.goodPolls.Load(),
		Exceptions:        u.stats.exceptions.Load(),
		Timeouts:          u.stats.timeouts.Load(),
		CRCErrors:         u.stats.crcErrors.Load(),
		TransportErrors:   u.stats.transportErrors.Load(),
		DecodeErrors:      u.stats.decodeErrors.Load(),
		ImplausibleValues: u.stats.implausibleValues.Load(),
		SinkErrors:        u.stats.sinkErrors.Load(),
	}
	if ns := u.stats.lastGood.Load(); ns != 0 {
		s.LastGoodPoll = time.Unix(0, ns)
	}
	return s
}

type unitCounters struct {
	polls, goodPolls, exceptions, timeouts, crcErrors, transportErrors, decodeErrors, sinkErrors, implausibleValues atomic.Uint64
	lastGood                                                                                                        atomic.Int64
}
