package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// Transport frames and carries one request at a time on one physical link:
// MBAP over a TCP connection (TCPTransport), RTU frames over a serial port
// or a TCP connection to a serial device server (drivers/rtu). A Link owns
// it; only the Link's goroutine calls it.
type Transport interface {
	// Open opens the link (dials, or opens and configures the serial
	// port) and returns what it opened, for logs and stats: an address or
	// a device node. It returns a *LinkError when it cannot.
	Open(ctx context.Context) (string, error)
	// ReadRegisters sends one read request on the open link and returns
	// its reply's values (see RegisterReader). Errors are classified by
	// Classify. After an error that leaves the link unusable or
	// untrustworthy (the port or connection failed; on TCP also a timeout
	// or a reply to another request, since a late reply cannot be flushed
	// from a stream) the transport closes the link itself, and IsOpen
	// reports false.
	ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error)
	IsOpen() bool
	Close() error
	// CheckUnit says whether a unit id can be addressed on this link
	// (1–247 on a serial line; any on Modbus TCP).
	CheckUnit(unit byte) error
}

// Defaults of LinkConfig: the same back-off rules for every transport.
const (
	// DefaultBackoffMax caps how long a unit that does not answer is left
	// alone between attempts.
	DefaultBackoffMax = 30 * time.Second
	// DefaultReopenMin and DefaultReopenMax bound the wait between attempts
	// to reopen a link that failed (dial refused, serial adapter unplugged).
	DefaultReopenMin = 500 * time.Millisecond
	DefaultReopenMax = 30 * time.Second
)

// LinkConfig describes one physical link and the units on it.
type LinkConfig struct {
	// Name identifies the link in logs, stats and metrics, e.g.
	// "modbus-tcp 10.0.0.5:502" or "modbus-rtu serial:/dev/ttyUSB0".
	Name  string
	Units []UnitConfig
	// BackoffMax caps the back-off of a unit that does not answer
	// (default 30 s); ReopenMin and ReopenMax bound the link's reopen
	// back-off (defaults 500 ms and 30 s). See Link.
	BackoffMax           time.Duration
	ReopenMin, ReopenMax time.Duration
}

// Link owns one physical link and every unit on it: its Run goroutine is
// the only one that touches the transport, so requests never interleave
// (RTU is strictly one request at a time on a line; goburrow's TCP client
// must not be shared either).
//
// Scheduling: units are polled in turn, each at its own PollInterval, the
// one due first going first; a unit that falls behind is polled once as
// soon as possible, never several times to catch up.
//
// Failures (IsUnreachable: timeouts, transport and CRC errors, exceptions
// 10 and 11): after the n-th consecutive failed poll a unit waits
// max(interval, min(interval·2^(n-1), BackoffMax)), ±25 % jitter, before
// its next attempt, so a dead unit costs one timeout per back-off period
// instead of one per round and does not stall the others; after
// OfflineAfter consecutive failures it is told it is unreachable (one
// offline event per outage). Its first answer ends both.
//
// The link: when it cannot be opened, every unit that is due counts a
// failed poll, and the next attempt waits ReopenMin, doubling up to
// ReopenMax (±25 % jitter); a successful open resets the wait. A link the
// transport closed after an error is reopened at once.
type Link struct {
	cfg    LinkConfig
	t      Transport
	reader RegisterReader // t behind the read-only guard, what units read through
	units  []*linkUnit
	log    *slog.Logger

	reopenDelay time.Duration
	reopenAt    time.Time
	failingOpen string // text of the open error last logged, so a steady failure logs once
	lost        bool   // a lost link was logged and no poll has succeeded since

	mu    sync.Mutex // guards stats
	stats LinkStats
}

type linkUnit struct {
	unit     *Unit
	next     time.Time // when it is due
	failures int       // consecutive failed polls
	offline  bool      // Unreachable was called and no answer since
}

// LinkStats counts what happened on one link since start.
type LinkStats struct {
	Name          string
	Connected     bool
	Link          string // address or device node in use; empty while closed
	Opens         uint64 // successful opens (connects)
	LinkErrors    uint64 // failed opens, and requests on which the link itself failed (*LinkError)
	LastLinkError string
	Units         []UnitStats
}

// NewLink checks cfg and builds the link and its units. It opens nothing:
// Run does.
func NewLink(cfg LinkConfig, t Transport, sink protocol.Sink, state protocol.StateStore, log *slog.Logger) (*Link, error) {
	if t == nil {
		return nil, fmt.Errorf("modbus link %q: no transport", cfg.Name)
	}
	if len(cfg.Units) == 0 {
		return nil, fmt.Errorf("modbus link %q: no units to poll", cfg.Name)
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.ReopenMin <= 0 {
		cfg.ReopenMin = DefaultReopenMin
	}
	if cfg.ReopenMax < cfg.ReopenMin {
		cfg.ReopenMax = max(DefaultReopenMax, cfg.ReopenMin)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("link", cfg.Name)
	l := &Link{cfg: cfg, t: t, reader: readOnlyReader{t}, log: log, reopenDelay: cfg.ReopenMin, stats: LinkStats{Name: cfg.Name}}
	seen := map[byte]string{}
	for i, uc := range cfg.Units {
		if err := t.CheckUnit(uc.Unit); err != nil {
			return nil, fmt.Errorf("modbus link %q: units[%d] (%s): %w", cfg.Name, i, uc.Device, err)
		}
		if other, dup := seen[uc.Unit]; dup {
			return nil, fmt.Errorf("modbus link %q: units[%d] (%s): unit %d is already used by %s; two units cannot share an id on one link", cfg.Name, i, uc.Device, uc.Unit, other)
		}
		seen[uc.Unit] = uc.Device
		u, err := NewUnit(uc, sink, state, log)
		if err != nil {
			return nil, err
		}
		l.units = append(l.units, &linkUnit{unit: u})
	}
	return l, nil
}

// Name is the link's name.
func (l *Link) Name() string { return l.cfg.Name }

// Units returns the link's units.
func (l *Link) Units() []*Unit {
	out := make([]*Unit, len(l.units))
	for i, lu := range l.units {
		out[i] = lu.unit
	}
	return out
}

// Stats returns a snapshot of the link's and its units' counters. Safe
// from any goroutine.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	s := l.stats
	l.mu.Unlock()
	s.Units = make([]UnitStats, len(l.units))
	for i, lu := range l.units {
		s.Units[i] = lu.unit.Stats()
	}
	return s
}

// Run polls until ctx is done, then closes the link and returns ctx's
// error.
func (l *Link) Run(ctx context.Context) error {
	defer l.close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		u := l.nextDue()
		at := u.next
		if !l.t.IsOpen() && l.reopenAt.After(at) {
			at = l.reopenAt
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		if !l.t.IsOpen() && !l.open(ctx) {
			continue
		}
		l.poll(ctx, u)
	}
}

// nextDue is the unit due first; ties go to the unit listed first.
func (l *Link) nextDue() *linkUnit {
	due := l.units[0]
	for _, u := range l.units[1:] {
		if u.next.Before(due.next) {
			due = u
		}
	}
	return due
}

// open opens the transport; on failure every due unit counts a failed
// poll and the next attempt backs off.
func (l *Link) open(ctx context.Context) bool {
	name, err := l.t.Open(ctx)
	if ctx.Err() != nil {
		return false
	}
	if err == nil {
		l.mu.Lock()
		l.stats.Opens++
		l.stats.Connected, l.stats.Link = true, name
		l.mu.Unlock()
		if l.failingOpen != "" || l.stats.Opens == 1 {
			l.log.Info("modbus link open", "open", name)
		} else {
			l.log.Debug("modbus link reopened", "open", name)
		}
		l.reopenDelay, l.failingOpen = l.cfg.ReopenMin, ""
		return true
	}
	l.noteLinkError(err)
	wait := jitter(l.reopenDelay)
	if msg := err.Error(); msg != l.failingOpen {
		l.log.Warn("modbus link cannot be opened; retrying with back-off", "err", err, "retry_in", wait.Round(time.Millisecond))
		l.failingOpen = msg
	}
	now := time.Now()
	l.reopenAt = now.Add(wait)
	l.reopenDelay = min(2*l.reopenDelay, l.cfg.ReopenMax)
	for _, u := range l.units {
		if !u.next.After(now) {
			u.unit.count(func(s *UnitStats) { s.Polls++ })
			u.unit.countError(err)
			l.failed(ctx, u, err, wait)
		}
	}
	return false
}

// poll runs one unit's Poll through the transport and schedules its next.
func (l *Link) poll(ctx context.Context, u *linkUnit) {
	err := u.unit.Poll(ctx, l.reader)
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	var le *LinkError
	switch {
	case errors.As(err, &le):
		l.noteLinkError(err)
		if !l.lost {
			l.lost = true
			l.log.Warn("modbus link lost; reopening", "err", err)
		}
	case err == nil && l.lost:
		l.lost = false
		l.log.Info("modbus link working again")
	}
	if !l.t.IsOpen() {
		l.mu.Lock()
		l.stats.Connected, l.stats.Link = false, ""
		l.mu.Unlock()
	}
	interval := u.unit.cfg.PollInterval
	if !IsUnreachable(err) {
		// The unit answered (perhaps with an exception or a reply the
		// profile cannot decode: misconfigured, not absent). Keep the
		// cadence, but never catch up on missed polls.
		u.next = u.next.Add(interval)
		if u.next.Before(now) {
			u.next = now
		}
		u.failures, u.offline = 0, false
		u.unit.count(func(s *UnitStats) { s.ConsecutiveFailures, s.Backoff, s.Offline = 0, 0, false })
		return
	}
	wait := unitBackoff(u.failures+1, interval, l.cfg.BackoffMax)
	u.next = now.Add(wait)
	l.failed(ctx, u, err, wait)
}

// failed counts a failed poll of u and tells it it is unreachable once it
// reached its OfflineAfter.
func (l *Link) failed(ctx context.Context, u *linkUnit, err error, wait time.Duration) {
	u.failures++
	u.unit.count(func(s *UnitStats) { s.ConsecutiveFailures, s.Backoff = u.failures, wait })
	if u.failures >= u.unit.cfg.OfflineAfter && !u.offline {
		u.offline = true
		u.unit.count(func(s *UnitStats) { s.Offline = true })
		u.unit.Unreachable(ctx, err)
	}
}

func (l *Link) noteLinkError(err error) {
	l.mu.Lock()
	l.stats.LinkErrors++
	l.stats.LastLinkError = err.Error()
	l.mu.Unlock()
}

func (l *Link) close() {
	if l.t.IsOpen() {
		l.t.Close()
	}
	l.mu.Lock()
	l.stats.Connected, l.stats.Link = false, ""
	l.mu.Unlock()
}

// unitBackoff is the wait after the n-th consecutive failed poll of a unit
// polled every interval: the interval after the first (a single lost reply
// changes nothing), then interval·2^(n-1) capped at cap (but never less
// than the interval), with jitter.
func unitBackoff(n int, interval, cap time.Duration) time.Duration {
	if n <= 1 {
		return interval
	}
	d := interval
	for i := 1; i < n && d < cap; i++ {
		d *= 2
	}
	return jitter(max(interval, min(d, cap)))
}

// jitter spreads d by ±25 %, so gateways (or units) that failed together
// do not retry together.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// readOnlyReader is what units read through: it refuses any function code
// but the four reads before the transport sees it (the transports guard
// the wire as well).
type readOnlyReader struct{ t Transport }

func (r readOnlyReader) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	if !IsReadFunction(function) {
		return nil, fmt.Errorf("%w: function %d", ErrWriteRefused, function)
	}
	return r.t.ReadRegisters(ctx, unit, function, address, quantity)
}
