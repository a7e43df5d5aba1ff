package rtu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// BusConfig describes one RTU bus: a serial port (driver modbus-rtu) or a
// TCP connection to a serial device server (driver modbus-rtu-tcp), and the
// units on it.
type BusConfig struct {
	// Name identifies the bus in logs and stats (e.g. the port or the
	// config key); defaults to the port or address.
	Name string
	// Exactly one of Serial and Address is set.
	Serial  *SerialConfig
	Address string // host:port of a serial device server in raw (transparent) TCP mode

	// Timeout bounds the wait for each reply; default 1 s. A silent unit
	// costs the bus this much per attempt, so keep it short.
	Timeout time.Duration
	// PauseBetweenRequests is added to t3.5 between frames; default 0.
	PauseBetweenRequests time.Duration
	// ReconnectMin and ReconnectMax bound the back-off between attempts to
	// reopen the port or reconnect (defaults 500 ms and 30 s).
	ReconnectMin, ReconnectMax time.Duration
	// UnitBackoffMax caps how long a unit that does not answer is skipped
	// (default 60 s). The skip doubles from the unit's interval at each
	// consecutive timeout.
	UnitBackoffMax time.Duration
	// OfflineAfter is how many consecutive failed polls make a unit
	// unreachable (default 3), so a single CRC error does not flap its status.
	OfflineAfter int

	Units []UnitConfig
}

// UnitConfig is one unit (slave) on the bus.
type UnitConfig struct {
	Device   string // device id, for logs and stats
	Unit     byte   // Modbus address 1..247
	Interval time.Duration
	Poller   Poller
}

// defaultInterval is the poll interval when a unit names none.
const defaultInterval = time.Second

// Bus owns one serial port or RTU-over-TCP connection: its Run goroutine is
// the only one that touches the link, and it polls every unit in turn.
type Bus struct {
	cfg   BusConfig
	log   *slog.Logger
	units []*busUnit
	list  portLister

	mu         sync.Mutex // guards the stats below and in units
	connected  bool
	linkName   string
	opens      uint64
	linkErrors uint64
	lastLink   string
}

type busUnit struct {
	cfg      UnitConfig
	next     time.Time // when it is due
	failures int       // consecutive failed polls
	offline  bool      // Unreachable was called and no poll succeeded since
	stats    UnitStats // guarded by Bus.mu
}

// NewBus checks cfg, fills the defaults and builds the bus. It opens
// nothing: Run does. log should already name the bus (log.With("bus", …)).
func NewBus(cfg BusConfig, log *slog.Logger) (*Bus, error) {
	if (cfg.Serial == nil) == (cfg.Address == "") {
		return nil, fmt.Errorf("modbus rtu bus %q: give exactly one of serial and address", cfg.Name)
	}
	if cfg.Serial != nil {
		s, err := cfg.Serial.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("modbus rtu bus %q: %w", cfg.Name, err)
		}
		cfg.Serial = &s
		if cfg.Name == "" {
			cfg.Name = s.Port
			if cfg.Name == "" {
				cfg.Name = s.USB.String()
			}
		}
	} else if cfg.Name == "" {
		cfg.Name = cfg.Address
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.PauseBetweenRequests < 0 {
		return nil, fmt.Errorf("modbus rtu bus %q: pause_between_requests %s is negative", cfg.Name, cfg.PauseBetweenRequests)
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(30*time.Second, cfg.ReconnectMin)
	}
	if cfg.UnitBackoffMax <= 0 {
		cfg.UnitBackoffMax = time.Minute
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 3
	}
	if len(cfg.Units) == 0 {
		return nil, fmt.Errorf("modbus rtu bus %q: no units", cfg.Name)
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{cfg: cfg, log: log, list: listPorts}
	seen := map[byte]string{}
	for i, u := range cfg.Units {
		switch {
		case u.Unit < 1 || u.Unit > 247:
			return nil, fmt.Errorf("modbus rtu bus %q: units[%d] (%s): unit %d out of range 1..247", cfg.Name, i, u.Device, u.Unit)
		case u.Poller == nil:
			return nil, fmt.Errorf("modbus rtu bus %q: units[%d] (%s): no poller", cfg.Name, i, u.Device)
		case seen[u.Unit] != "":
			return nil, fmt.Errorf("modbus rtu bus %q: units[%d] (%s): unit %d is already used by %s; two slaves cannot share an address on one bus", cfg.Name, i, u.Device, u.Unit, seen[u.Unit])
		case u.Interval < 0:
			return nil, fmt.Errorf("modbus rtu bus %q: units[%d] (%s): interval %s is negative", cfg.Name, i, u.Device, u.Interval)
		}
		seen[u.Unit] = u.Device
		if u.Interval == 0 {
			u.Interval = defaultInterval
		}
		b.units = append(b.units, &busUnit{cfg: u, stats: UnitStats{Device: u.Device, Unit: u.Unit}})
	}
	return b, nil
}

// Run opens the link and polls the units until ctx is done, reopening the
// link with back-off whenever it fails. It returns ctx's error.
func (b *Bus) Run(ctx context.Context) error {
	var client *Client
	defer func() {
		if client != nil {
			client.Close()
		}
		b.setConnected(false, "")
	}()
	delay := b.cfg.ReconnectMin
	failingSince := ""
	for ctx.Err() == nil {
		if client == nil {
			c, err := b.open(ctx)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				b.noteLinkError(err)
				if msg := err.Error(); msg != failingSince {
					b.log.Warn("modbus rtu link unavailable; retrying with back-off", "err", err, "retry_in", delay)
					failingSince = msg
				}
				b.allUnreachable(ctx, err)
				if sleepUntil(ctx, time.Now().Add(delay)) != nil {
					break
				}
				delay = min(2*delay, b.cfg.ReconnectMax)
				continue
			}
			client, delay, failingSince = c, b.cfg.ReconnectMin, ""
			b.setConnected(true, c.Name())
			b.log.Info("modbus rtu link open", "link", c.Name())
		}
		u := b.nextDue()
		if sleepUntil(ctx, u.next) != nil {
			break
		}
		if err := b.poll(ctx, client, u); err != nil {
			// The link is broken (or, over TCP, may hold a stale reply):
			// close it so the next round reopens it.
			client.Close()
			client = nil
			b.setConnected(false, "")
			if IsLinkError(err) {
				b.noteLinkError(err)
				b.log.Warn("modbus rtu link lost; reopening", "err", err)
				b.allUnreachable(ctx, err)
			}
		}
	}
	return ctx.Err()
}

func (b *Bus) open(ctx context.Context) (*Client, error) {
	opts := ClientOptions{Timeout: b.cfg.Timeout, PauseBetweenRequests: b.cfg.PauseBetweenRequests}
	if b.cfg.Serial != nil {
		return openSerial(*b.cfg.Serial, opts, b.list)
	}
	return DialTCP(ctx, b.cfg.Address, opts)
}

// nextDue is the unit due first; ties go to the unit listed first.
func (b *Bus) nextDue() *busUnit {
	due := b.units[0]
	for _, u := range b.units[1:] {
		if u.next.Before(due.next) {
			due = u
		}
	}
	return due
}

// poll runs one unit's Poll and schedules its next one. It returns an error
// only when the link must be closed.
func (b *Bus) poll(ctx context.Context, client *Client, u *busUnit) error {
	r := &unitReader{bus: b, client: client, unit: u}
	err := u.cfg.Poller.Poll(ctx, r)
	now := time.Now()
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		// Keep the cadence, but never try to catch up on missed polls.
		u.next = u.next.Add(u.cfg.Interval)
		if u.next.Before(now) {
			u.next = now
		}
		u.failures = 0
		u.offline = false
		b.update(u, func(s *UnitStats) { s.Polls++; s.ConsecutiveFailures = 0; s.Backoff = 0 })
		return nil
	}
	var (
		ex *ExceptionError
		te *TimeoutError
		fe *FrameError
	)
	wait := u.cfg.Interval
	switch {
	case r.lastErr == nil || errors.As(r.lastErr, &ex):
		// The unit answered (with an exception, or with data the profile
		// could not decode): it is reachable but misconfigured. Unit.Poll
		// logs that; marking it offline would send the engineer looking at
		// the wiring instead of the profile.
		u.failures = 0
	case errors.As(r.lastErr, &te) || errors.As(r.lastErr, &fe):
		// A silent unit (or one whose line only carries noise) costs the
		// whole bus a timeout per attempt: skip it for longer and longer,
		// so the others keep their cadence.
		u.failures++
		wait = min(u.cfg.Interval<<min(u.failures-1, 20), b.cfg.UnitBackoffMax)
	default:
		u.failures++
	}
	u.next = now.Add(wait)
	b.update(u, func(s *UnitStats) {
		s.Polls++
		s.FailedPolls++
		s.ConsecutiveFailures = u.failures
		s.LastError = err.Error()
		s.Backoff = wait
	})
	if u.failures >= b.cfg.OfflineAfter && !u.offline {
		u.offline = true
		u.cfg.Poller.Unreachable(ctx, err)
	}
	if IsLinkError(r.lastErr) {
		return r.lastErr
	}
	if client.isTCP && r.lastErr != nil && !errors.As(r.lastErr, &ex) {
		// Over TCP nothing can flush a late reply: start a fresh connection.
		return r.lastErr
	}
	return nil
}

// allUnreachable tells every unit not yet told that the link is down.
func (b *Bus) allUnreachable(ctx context.Context, err error) {
	for _, u := range b.units {
		if !u.offline {
			u.offline = true
			u.failures = max(u.failures, b.cfg.OfflineAfter)
			u.cfg.Poller.Unreachable(ctx, err)
		}
	}
}

// unitReader is the RegisterReader a unit's Poll reads through: the bus's
// open link, with every outcome counted against the unit.
type unitReader struct {
	bus     *Bus
	client  *Client
	unit    *busUnit
	lastErr error // transport outcome of the last request
}

func (r *unitReader) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	values, err := r.client.ReadRegisters(ctx, unit, function, address, quantity)
	r.lastErr = err
	r.bus.update(r.unit, func(s *UnitStats) {
		s.Requests++
		var (
			ex *ExceptionError
			ce *CRCError
			fe *FrameError
			te *TimeoutError
		)
		switch {
		case err == nil:
			s.Replies++
			s.LastReply = time.Now()
		case errors.As(err, &ex):
			s.Exceptions++
		case errors.As(err, &ce):
			s.CRCErrors++
		case errors.As(err, &fe):
			s.FrameErrors++
		case errors.As(err, &te):
			s.Timeouts++
		case IsLinkError(err):
			s.LinkErrors++
		}
	})
	return values, err
}

// UnitStats counts what happened between the bus and one unit since start.
type UnitStats struct {
	Device string
	Unit   byte

	Requests    uint64 // requests sent
	Replies     uint64 // valid replies (not exceptions)
	Exceptions  uint64 // exception replies
	CRCErrors   uint64 // replies with a bad CRC
	FrameErrors uint64 // garbage or a reply that did not match the request
	Timeouts    uint64 // no complete reply within the timeout
	LinkErrors  uint64 // the port or connection failed during a request

	Polls               uint64        // Poll calls
	FailedPolls         uint64        // Poll calls that returned an error
	ConsecutiveFailures int           // failed polls since the last good one
	Backoff             time.Duration // current wait before the next attempt after a failure (0 when healthy)
	LastError           string
	LastReply           time.Time
}

// BusStats is a snapshot of the bus and its units.
type BusStats struct {
	Name          string
	Connected     bool
	Link          string // device node or address in use; empty while down
	Opens         uint64 // successful opens of the port or connection
	LinkErrors    uint64 // failed opens and lost links
	LastLinkError string
	Units         []UnitStats
}

// Stats returns a snapshot. Safe from any goroutine.
func (b *Bus) Stats() BusStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BusStats{Name: b.cfg.Name, Connected: b.connected, Link: b.linkName, Opens: b.opens, LinkErrors: b.linkErrors, LastLinkError: b.lastLink}
	for _, u := range b.units {
		s.Units = append(s.Units, u.stats)
	}
	return s
}

func (b *Bus) update(u *busUnit, f func(*UnitStats)) {
	b.mu.Lock()
	f(&u.stats)
	b.mu.Unlock()
}

func (b *Bus) setConnected(up bool, name string) {
	b.mu.Lock()
	if up && !b.connected {
		b.opens++
	}
	b.connected, b.linkName = up, name
	b.mu.Unlock()
}

func (b *Bus) noteLinkError(err error) {
	b.mu.Lock()
	b.linkErrors++
	b.lastLink = err.Error()
	b.mu.Unlock()
}
