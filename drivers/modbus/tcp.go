package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/sterigate/sterigate/protocol"
)

// Defaults for TCPConfig.
const (
	DefaultPollInterval = time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultBackoffMin   = time.Second
	DefaultBackoffMax   = 30 * time.Second
)

// TCPConfig describes one Modbus TCP link (one IP:port) and the units
// behind it (usually one sterilizer; several behind a TCP-to-RTU gateway).
type TCPConfig struct {
	Address string // host:port
	Units   []UnitConfig
	// PollInterval is the time between the starts of two poll rounds.
	PollInterval time.Duration
	// Timeout bounds one request (dial, or write + reply). Keep it short
	// (1–3 s): a half-open connection is only detected by it.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the wait before retrying a unit that
	// could not be reached; the wait doubles per failure, with ±50 % jitter
	// so that gateways restarted together do not hammer a device together.
	BackoffMin, BackoffMax time.Duration
	// Dial opens the connection (nil: a net.Dialer), e.g. to bind a source
	// address on a gateway with several networks.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// TCPPoller owns one Modbus TCP connection: Run polls every unit in turn
// from a single goroutine, so requests never interleave.
type TCPPoller struct {
	cfg   TCPConfig
	units []*Unit
	link  *tcpLink
	log   *slog.Logger
}

// NewTCPPoller checks cfg and builds the poller and its units.
func NewTCPPoller(cfg TCPConfig, sink protocol.Sink, state protocol.StateStore, log *slog.Logger) (*TCPPoller, error) {
	if cfg.Address == "" {
		return nil, errors.New("modbus tcp: address is empty")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("modbus tcp: address %q: %w (want host:port, e.g. 192.168.1.20:502)", cfg.Address, err)
	}
	if len(cfg.Units) == 0 {
		return nil, fmt.Errorf("modbus tcp %s: no units to poll", cfg.Address)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("link", "modbus-tcp", "address", cfg.Address)
	p := &TCPPoller{cfg: cfg, log: log, link: newTCPLink(cfg.Address, cfg.Timeout, cfg.Dial)}
	for _, uc := range cfg.Units {
		if uc.Source == "" {
			uc.Source = "modbus-tcp"
		}
		uc.PollInterval = cfg.PollInterval
		u, err := NewUnit(uc, sink, state, log)
		if err != nil {
			return nil, err
		}
		p.units = append(p.units, u)
	}
	return p, nil
}

// Units returns the poller's units (for Stats).
func (p *TCPPoller) Units() []*Unit { return p.units }

// LinkStats returns the connection counters of the link.
func (p *TCPPoller) LinkStats() LinkStats { return p.link.stats() }

// LinkStats counts connection-level events of one link.
type LinkStats struct {
	Connects uint64 // successful dials
	Closes   uint64 // connections dropped after an error
}

// Run polls until ctx is done, then closes the connection and returns
// ctx's error. A unit that cannot be reached is told so (Unit.Unreachable)
// and retried after an exponential back-off with jitter, without holding up
// the other units on the link.
func (p *TCPPoller) Run(ctx context.Context) error {
	defer p.link.close()
	type schedule struct {
		failures int
		nextTry  time.Time
	}
	sched := make([]schedule, len(p.units))
	ticker := time.NewTicker(p.cfg.PollInterval)
	defer ticker.Stop()
	for {
		for i, u := range p.units {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().Before(sched[i].nextTry) {
				continue
			}
			err := u.Poll(ctx, p.link)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil || !IsUnreachable(err) {
				sched[i] = schedule{}
				continue
			}
			sched[i].failures++
			wait := backoff(sched[i].failures, p.cfg.BackoffMin, p.cfg.BackoffMax)
			sched[i].nextTry = time.Now().Add(wait)
			u.Unreachable(ctx, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// backoff returns the wait after the n-th consecutive failure: min·2^(n-1)
// capped at max, times a random factor in [0.5, 1.5).
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// ErrDecode marks a poll whose replies arrived but could not be decoded
// with the profile.
var ErrDecode = errors.New("modbus: reply does not decode with the profile")

// IsUnreachable reports whether a poll error means the unit could not be
// reached (timeout, connection refused or reset, garbled or mismatched
// reply) as opposed to a unit that answered: an exception reply or a reply
// the profile cannot decode says the device is there. Link owners call
// Unit.Unreachable when it is true.
func IsUnreachable(err error) bool {
	if err == nil || AsException(err) != nil || errors.Is(err, ErrDecode) || errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// tcpLink is the Modbus TCP client: goburrow's TCP packager for framing
// (MBAP header, transaction id check) over our own transport, which closes
// the connection on every error. goburrow's own transport keeps a broken
// connection forever (broken pipe after a peer restart, a permanent
// transaction-id offset after one late reply: libraries.md §1), so it is
// not used. The link has no write method, and the read-only guard sits
// between the client and the transport.
type tcpLink struct {
	packager  *gmodbus.TCPClientHandler
	transport *tcpTransport
	client    gmodbus.Client
}

func newTCPLink(address string, timeout time.Duration, dial func(context.Context, string, string) (net.Conn, error)) *tcpLink {
	packager := gmodbus.NewTCPClientHandler(address)
	packager.IdleTimeout = 0 // its own transport is never used; no idle timer goroutine
	t := &tcpTransport{address: address, timeout: timeout, dial: dial}
	return &tcpLink{
		packager:  packager,
		transport: t,
		client:    gmodbus.NewClient2(packager, ReadOnlyTransporter(t, TCPFunctionOffset)),
	}
}

func (l *tcpLink) close() { l.transport.close() }
func (l *tcpLink) stats() LinkStats {
	return LinkStats{Connects: l.transport.connects.Load(), Closes: l.transport.closes.Load()}
}

// ReadRegisters implements RegisterReader. Only the link owner's goroutine
// calls it.
func (l *tcpLink) ReadRegisters(ctx context.Context, unit byte, function byte, address, quantity uint16) ([]uint16, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if quantity == 0 {
		return nil, fmt.Errorf("modbus: read of 0 items from address %d", address)
	}
	l.packager.SlaveId = unit
	l.transport.ctx = ctx
	defer func() { l.transport.ctx = nil }()
	var (
		raw []byte
		err error
	)
	switch function {
	case 1:
		raw, err = l.client.ReadCoils(address, quantity)
	case 2:
		raw, err = l.client.ReadDiscreteInputs(address, quantity)
	case 3:
		raw, err = l.client.ReadHoldingRegisters(address, quantity)
	case 4:
		raw, err = l.client.ReadInputRegisters(address, quantity)
	default:
		return nil, fmt.Errorf("%w: function %d", ErrWriteRefused, function)
	}
	if err != nil {
		if ex := AsException(err); ex != nil {
			return nil, ex // the device answered; the connection is fine
		}
		// Any other error may leave unread bytes or a shifted transaction
		// id on the connection: drop it, the next request redials.
		l.transport.close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, err
	}
	words, err := unpack(function, raw, quantity)
	if err != nil {
		l.transport.close()
		return nil, err
	}
	return words, nil
}

// unpack turns a reply's data bytes into one word per register or bit.
func unpack(function byte, raw []byte, quantity uint16) ([]uint16, error) {
	words := make([]uint16, quantity)
	if function == 1 || function == 2 {
		if len(raw) < (int(quantity)+7)/8 {
			return nil, fmt.Errorf("modbus: reply has %d bytes for %d bits", len(raw), quantity)
		}
		for i := range words {
			words[i] = uint16(raw[i/8] >> (i % 8) & 1)
		}
		return words, nil
	}
	if len(raw) != 2*int(quantity) {
		return nil, fmt.Errorf("modbus: reply has %d bytes for %d registers", len(raw), quantity)
	}
	for i := range words {
		words[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	return words, nil
}

// tcpTransport sends one MBAP frame and reads one reply on a connection it
// dials on demand and closes on any error.
type tcpTransport struct {
	address string
	timeout time.Duration
	dial    func(context.Context, string, string) (net.Conn, error)
	conn    net.Conn
	ctx     context.Context // set by the link around each request

	connects, closes atomic.Uint64
}

const mbapHeader = 7

func (t *tcpTransport) Send(adu []byte) ([]byte, error) {
	ctx := t.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if t.conn == nil {
		dctx, cancel := context.WithTimeout(ctx, t.timeout)
		var (
			conn net.Conn
			err  error
		)
		if t.dial != nil {
			conn, err = t.dial(dctx, "tcp", t.address)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(dctx, "tcp", t.address)
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("modbus tcp: connect %s: %w", t.address, err)
		}
		t.conn = conn
		t.connects.Add(1)
	}
	conn := t.conn
	deadline := time.Now().Add(t.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		t.close()
		return nil, err
	}
	// Cancelling ctx unblocks a pending read at once instead of after Timeout.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := exchange(conn, adu)
	if err != nil {
		t.close()
		if IsTimeout(err) {
			return nil, fmt.Errorf("modbus tcp %s: %w: %v", t.address, ErrTimeout, err)
		}
		return nil, fmt.Errorf("modbus tcp %s: %w", t.address, err)
	}
	return resp, nil
}

func exchange(conn net.Conn, adu []byte) ([]byte, error) {
	if _, err := conn.Write(adu); err != nil {
		return nil, err
	}
	var buf [260]byte
	if _, err := io.ReadFull(conn, buf[:mbapHeader]); err != nil {
		return nil, err
	}
	length := int(binary.BigEndian.Uint16(buf[4:]))
	if length < 2 || mbapHeader-1+length > len(buf) {
		return nil, fmt.Errorf("modbus tcp: reply length field %d is out of range 2..254", length)
	}
	n := mbapHeader - 1 + length
	if _, err := io.ReadFull(conn, buf[mbapHeader:n]); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[:n]...), nil
}

func (t *tcpTransport) close() {
	if t.conn != nil {
		_ = t.conn.Close()
		t.conn = nil
		t.closes.Add(1)
	}
}

// TCPReader is a Modbus TCP connection for one-off reads (sterigate probe):
// the same read-only, close-on-error link the poller uses, without the
// polling loop. One goroutine at a time.
type TCPReader struct{ link *tcpLink }

// NewTCPReader returns a reader for address; it dials on the first read.
func NewTCPReader(address string, timeout time.Duration) (*TCPReader, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("modbus tcp: address %q is not host:port (e.g. 192.168.1.20:502): %w", address, err)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &TCPReader{link: newTCPLink(address, timeout, nil)}, nil
}

// ReadRegisters implements RegisterReader.
func (r *TCPReader) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	return r.link.ReadRegisters(ctx, unit, function, address, quantity)
}

// Close closes the connection.
func (r *TCPReader) Close() error {
	r.link.close()
	return nil
}
