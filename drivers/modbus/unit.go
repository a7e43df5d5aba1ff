// Package modbus reads sterilizers over Modbus — TCP, RTU on a serial
// line, RTU over TCP — and turns their registers into sterigate cycle
// records.
//
// The package is split along who owns what:
//   - A Link owns one physical link (a TCP connection, a serial port, a
//     connection to a serial device server) in one goroutine, and every
//     unit on it: it polls them in turn, each at its own interval, decides
//     when a unit is offline and how long to leave a silent one alone. It
//     is the only polling loop, for every transport.
//   - A Transport frames and carries one request on the open link: MBAP
//     over TCP here (TCPTransport), RTU framing over a serial port or TCP
//     in drivers/rtu. It knows nothing of units' schedules.
//   - A Unit is one sterilizer behind a link: it reads its profile's blocks
//     through the transport, decodes them, and feeds its cycle assembler
//     (package drivers/cycle).
//
// One error classification (ErrorKind: timeout, transport, CRC, exception
// by code, decode) serves the logs, the counters (UnitStats, LinkStats) and
// the offline decision (IsUnreachable).
//
// Only read function codes (1–4) ever leave the gateway: no transport has a
// write method, profiles cannot name another function, and a guard at each
// transport refuses any other frame before the wire (CheckReadOnlyADU).
package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// RegisterReader reads one block from one unit. For functions 3 and 4 it
// returns quantity registers; for functions 1 and 2 it returns quantity
// words, each 0 or 1 (one per coil or discrete input). Every Transport is
// one.
type RegisterReader interface {
	ReadRegisters(ctx context.Context, unit byte, function byte, address, quantity uint16) ([]uint16, error)
}

// Defaults of UnitConfig.
const (
	DefaultPollInterval = time.Second
	// DefaultOfflineAfter consecutive failed polls make a unit offline, on
	// every transport: one CRC error on a noisy line or one lost TCP
	// segment is not an outage.
	DefaultOfflineAfter = 3
)

// UnitConfig describes one sterilizer behind a link.
type UnitConfig struct {
	Device  string // device id: journal key, MQTT topic level
	Unit    byte   // Modbus unit (slave) id: 1–247 on a serial bus; on TCP often 1, 0 or 255 (the transport checks its range)
	Profile *profile.Profile
	Source  string // "modbus-tcp", "modbus-rtu", "modbus-rtu-tcp", ...

	// PollInterval is the time between the starts of two polls of this
	// unit (default 1 s).
	PollInterval time.Duration
	// OfflineAfter is how many consecutive failed polls (see IsUnreachable)
	// make the unit offline: one offline event, status offline. Default 3.
	OfflineAfter int

	// TelemetryInterval / TelemetryMaxSamples: see cycle.Config (defaults 5 s, 10).
	TelemetryInterval   time.Duration
	TelemetryMaxSamples int
	// TimeScale: device seconds per wall-clock second, for simulators
	// running fast (0 or 1: a real device). Records carry it.
	TimeScale float64
	// Now is the clock (nil: time.Now). Tests inject a scripted clock.
	Now func() time.Time
}

// Unit polls one sterilizer with its profile and feeds its cycle assembler.
// Poll and Unreachable are called by the link owner's goroutine only; Stats
// and Status may be read from any goroutine.
type Unit struct {
	cfg         UnitConfig
	assembler   *cycle.Assembler
	log         *slog.Logger
	logged      map[logKey]bool // problems already logged during this outage
	sinkFailing bool            // the last Observe could not deliver or save
	// bracket is the block read first and again last in every poll (the
	// phase's, when the profile needs several requests), or -1.
	bracket int

	mu     sync.Mutex // guards stats and status
	stats  UnitStats
	status protocol.DeviceStatus
}

// logKey is what makes a poll problem worth a new warning: its kind, and
// for an exception its code. Not the text: a timeout names a new local port
// on every reconnect and must not log on every retry.
type logKey struct {
	kind ErrorKind
	code byte
}

// NewUnit checks cfg, fills its defaults and builds the unit and its
// assembler.
func NewUnit(cfg UnitConfig, sink protocol.Sink, state protocol.StateStore, log *slog.Logger) (*Unit, error) {
	if cfg.Device == "" {
		return nil, errors.New("modbus unit: device id is empty")
	}
	if cfg.Profile == nil {
		return nil, fmt.Errorf("modbus unit %s: no profile", cfg.Device)
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("modbus unit %s: poll interval %s is negative", cfg.Device, cfg.PollInterval)
	}
	if cfg.OfflineAfter < 0 {
		return nil, fmt.Errorf("modbus unit %s: offline_after %d is negative", cfg.Device, cfg.OfflineAfter)
	}
	if cfg.Source == "" {
		cfg.Source = "modbus"
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = DefaultOfflineAfter
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
	bracket := -1
	if len(cfg.Profile.Blocks) > 1 {
		bracket = cfg.Profile.PhaseBlock()
	}
	return &Unit{
		cfg: cfg, assembler: a, log: log, logged: map[logKey]bool{}, bracket: bracket,
		stats:  UnitStats{Device: cfg.Device, Unit: cfg.Unit},
		status: protocol.DeviceStatus{Device: cfg.Device, State: protocol.DeviceUnknown},
	}, nil
}

// Status returns the device's state as of the last poll, for the retained
// device status topic. Safe from any goroutine.
func (u *Unit) Status() protocol.DeviceStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

func (u *Unit) setStatus(f func(*protocol.DeviceStatus)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(&u.status)
	u.status.At = u.now().UTC()
}

func (u *Unit) now() time.Time {
	if u.cfg.Now != nil {
		return u.cfg.Now()
	}
	return time.Now()
}

// Config returns the unit's configuration, defaults filled in.
func (u *Unit) Config() UnitConfig { return u.cfg }

// Poll reads every block of the unit's profile through r, decodes them and
// feeds the assembler. It returns the first read error (an *ExceptionError
// when the device answered with a Modbus exception, otherwise a transport
// error) or a decode error; on error nothing is fed to the assembler and the
// link owner decides, with IsUnreachable, whether the unit is reachable.
func (u *Unit) Poll(ctx context.Context, r RegisterReader) error {
	u.count(func(s *UnitStats) { s.Polls++ })
	p := u.cfg.Profile
	var reading profile.Reading
	for attempt := 1; ; attempt++ {
		data, phaseBefore, err := u.readBlocks(ctx, r)
		if err != nil {
			return err
		}
		reading, err = p.Decode(data)
		if err != nil {
			err = fmt.Errorf("device %s profile %s: %w: %w", u.cfg.Device, p.Name, ErrDecode, err)
			u.countError(err)
			u.logOnce(ctx, err)
			u.assembler.PollFailed(ctx, err)
			return err
		}
		if phaseBefore == nil || attempt > 1 || !u.torn(data, phaseBefore, reading) {
			break
		}
		// The phase or the counter changed while the poll read: its
		// measurements may belong to either side of the edge, so they
		// are read again rather than filed under the wrong phase. Once:
		// a second tear in a row is used as read (phases do not change
		// every few milliseconds).
		u.count(func(s *UnitStats) { s.TornPolls++ })
	}
	if len(reading.Implausible) > 0 {
		// Counters and codes are still good, so the reading is used (a
		// broken probe must not hide the end of a cycle); the implausible
		// values are not (the assembler raises the event).
		u.count(func(s *UnitStats) { s.ImplausibleValues += uint64(len(reading.Implausible)) })
		u.logOnce(ctx, fmt.Errorf("device %s profile %s: %w: %w; not recorded", u.cfg.Device, p.Name, ErrDecode, reading.Implausible[0]))
	} else if len(u.logged) > 0 {
		u.log.Info("modbus poll recovered")
		clear(u.logged)
	}
	now := time.Now()
	u.count(func(s *UnitStats) { s.GoodPolls++; s.LastGoodPoll = now })
	u.setStatus(func(s *protocol.DeviceStatus) {
		s.State, s.Phase, s.Cycle, s.Error, s.Program = protocol.DeviceOnline, reading.Phase, reading.Counter, "", ""
		if reading.HasProgram {
			s.Program = p.ProgramName(reading.ProgramCode)
		}
	})
	if err := u.assembler.Observe(ctx, reading); err != nil && ctx.Err() != nil {
		// The gateway is stopping and cut the delivery short: not a
		// journal problem. Counted, not logged: the gateway logs one line
		// for every device this happened to (InterruptedAtStop).
		u.count(func(s *UnitStats) { s.InterruptedAtStop = true })
	} else if err != nil {
		// The reading was good; what failed is the sink or the state
		// store. The assembler keeps what it could not deliver and
		// retries on the next poll, so this is logged (once per outage),
		// not returned.
		u.count(func(s *UnitStats) { s.SinkErrors++ })
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

// readBlocks reads every block of the unit's profile. When the profile
// needs several requests, the block holding the phase is read first and
// again last (phaseBefore holds the first read): registers read in several
// requests are not one snapshot, and a phase edge between the requests
// would otherwise file a measurement under the wrong phase.
func (u *Unit) readBlocks(ctx context.Context, r RegisterReader) (data [][]uint16, phaseBefore []uint16, err error) {
	p, bracket := u.cfg.Profile, u.bracket
	read := func(i int) ([]uint16, error) {
		b := p.Blocks[i]
		words, err := r.ReadRegisters(ctx, u.cfg.Unit, b.Function, b.Start, b.Count)
		u.countRequest(ctx, err)
		if err != nil {
			err = fmt.Errorf("device %s unit %d: read function %d address %d count %d: %w", u.cfg.Device, u.cfg.Unit, b.Function, b.Start, b.Count, err)
			u.logOnce(ctx, err)
			if ctx.Err() == nil { // shutting down is not a failed poll
				u.assembler.PollFailed(ctx, err)
			}
		}
		return words, err
	}
	data = make([][]uint16, len(p.Blocks))
	if bracket >= 0 {
		if phaseBefore, err = read(bracket); err != nil {
			return nil, nil, err
		}
	}
	for i := range p.Blocks {
		if i == bracket {
			continue
		}
		if data[i], err = read(i); err != nil {
			return nil, nil, err
		}
	}
	if bracket >= 0 {
		if data[bracket], err = read(bracket); err != nil {
			return nil, nil, err
		}
	}
	return data, phaseBefore, nil
}

// torn reports whether the phase block read before the others decodes to
// another phase or counter than the one read after them.
func (u *Unit) torn(data [][]uint16, phaseBefore []uint16, after profile.Reading) bool {
	if slices.Equal(phaseBefore, data[u.bracket]) {
		return false // the usual case: nothing in the block moved
	}
	earlier := slices.Clone(data)
	earlier[u.bracket] = phaseBefore
	before, err := u.cfg.Profile.Decode(earlier)
	if err != nil {
		return true
	}
	return before.PhaseCode != after.PhaseCode || before.HasPhase != after.HasPhase || before.Counter != after.Counter
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

// logOnce logs a poll problem unless one of the same kind (and exception
// code) was already logged since the last good poll: one warning per device
// per outage and kind, however often the failure repeats.
func (u *Unit) logOnce(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // shutting down: a cancelled request is not a device problem
	}
	kind, code := Classify(err)
	key := logKey{kind, code}
	if u.logged[key] {
		return
	}
	u.logged[key] = true
	u.log.Warn("modbus poll failed", "kind", kind.String(), "err", err)
}

// countRequest counts one request and its outcome. Requests cut short by
// shutdown are not counted as errors.
func (u *Unit) countRequest(ctx context.Context, err error) {
	u.count(func(s *UnitStats) { s.Requests++ })
	if err != nil && ctx.Err() == nil {
		u.countError(err)
	}
}

func (u *Unit) countError(err error) {
	kind, code := Classify(err)
	u.count(func(s *UnitStats) {
		if n := s.errorCounter(kind); n != nil {
			*n++
		}
		if kind == KindException {
			if s.ExceptionsByCode == nil {
				s.ExceptionsByCode = map[byte]uint64{}
			}
			s.ExceptionsByCode[code]++
		}
		s.LastError, s.LastErrorKind = err.Error(), kind
	})
}

func (u *Unit) count(f func(*UnitStats)) {
	u.mu.Lock()
	f(&u.stats)
	u.mu.Unlock()
}

// UnitStats counts what happened between the gateway and one unit since
// start, whatever the transport. The metrics are made from it (see
// docs/config.md, "Metrics").
type UnitStats struct {
	Device string
	Unit   byte

	Polls     uint64 // poll attempts (including those that failed because the link could not be opened)
	GoodPolls uint64 // polls whose replies decoded (possibly without a valid measurement)
	Requests  uint64 // read requests sent

	// Errors by kind (see ErrorKind). A failed request ends its poll, so
	// each failed poll counts one of them.
	Timeouts         uint64
	TransportErrors  uint64 // link failures and replies that were not the reply (frame errors)
	CRCErrors        uint64
	Exceptions       uint64
	ExceptionsByCode map[byte]uint64
	DecodeErrors     uint64 // replies the profile could not decode
	// ImplausibleValues counts measured values refused as not plausible
	// (outside their role's range, or not a number).
	ImplausibleValues uint64
	// TornPolls counts polls read again because the phase or the cycle
	// counter changed between the requests of one poll.
	TornPolls uint64

	SinkErrors uint64 // polls whose output could not be delivered or saved (retried)
	// InterruptedAtStop: the gateway stopped while the last poll's output
	// was being delivered or saved, and cut it short.
	InterruptedAtStop bool

	ConsecutiveFailures int           // failed polls (IsUnreachable) since the last answer
	Backoff             time.Duration // wait before the next attempt after a failure; 0 when healthy
	Offline             bool          // told Unreachable and no answer since
	LastError           string
	LastErrorKind       ErrorKind
	LastGoodPoll        time.Time // zero until the first good poll
}

// Stats returns a snapshot of the unit's counters. Safe from any goroutine.
func (u *Unit) Stats() UnitStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	if s.ExceptionsByCode != nil {
		s.ExceptionsByCode = make(map[byte]uint64, len(u.stats.ExceptionsByCode))
		for c, n := range u.stats.ExceptionsByCode {
			s.ExceptionsByCode[c] = n
		}
	}
	return s
}

// Errors returns the count of errors of kind k.
func (s UnitStats) Errors(k ErrorKind) uint64 {
	if n := s.errorCounter(k); n != nil {
		return *n
	}
	return 0
}

// errorCounter is the counter of kind k (nil for KindNone).
func (s *UnitStats) errorCounter(k ErrorKind) *uint64 {
	switch k {
	case KindTimeout:
		return &s.Timeouts
	case KindTransport:
		return &s.TransportErrors
	case KindCRC:
		return &s.CRCErrors
	case KindException:
		return &s.Exceptions
	case KindDecode:
		return &s.DecodeErrors
	}
	return nil
}
