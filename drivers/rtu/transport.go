package rtu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.bug.st/serial"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// Options are the timing settings of a Transport.
type Options struct {
	// Timeout bounds the wait for each reply (the unit's think time; the
	// wire time of the request and reply comes on top); default 1 s. A
	// silent unit costs the whole line this long per attempt, so keep it
	// short.
	Timeout time.Duration
	// PauseBetweenRequests is added to t3.5 between frames, for slow units
	// that need time after answering; default 0.
	PauseBetweenRequests time.Duration
}

// DefaultTimeout is the reply timeout when Options names none.
const DefaultTimeout = time.Second

func (o Options) withDefaults() (Options, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PauseBetweenRequests < 0 {
		return o, fmt.Errorf("pause_between_requests %s is negative", o.PauseBetweenRequests)
	}
	return o, nil
}

// Transport is the Modbus RTU transport (a modbus.Transport): RTU frames on
// a serial port, or on a TCP connection to a serial device server in raw
// ("transparent") mode. It is not safe for concurrent use: one goroutine
// (a modbus.Link, or a command such as probe) owns it.
type Transport struct {
	name string // the configured port or address
	// openLine opens the line; the serial constructor re-finds a USB
	// adapter by its identity on every call.
	openLine func(ctx context.Context) (line, string, error)
	// closeOnError: over TCP nothing can flush a late reply, so after any
	// failed transaction but an exception the connection is replaced.
	closeOnError bool
	framer
}

// NewSerial returns a transport over the serial port cfg describes; Open
// opens it.
func NewSerial(cfg SerialConfig, opts Options) (*Transport, error) {
	return newSerial(cfg, opts, listPorts)
}

func newSerial(cfg SerialConfig, opts Options, list portLister) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	name := cfg.Port
	if name == "" {
		name = cfg.USB.String()
	}
	return &Transport{
		name: name,
		openLine: func(context.Context) (line, string, error) {
			path, err := cfg.resolve(list)
			if err != nil {
				return nil, "", &modbus.LinkError{Op: "open", Err: err}
			}
			port, err := serial.Open(path, cfg.mode())
			if err != nil {
				return nil, "", &modbus.LinkError{Op: "open " + path, Err: err}
			}
			return &serialLine{port: port, name: path}, path, nil
		},
		framer: framer{
			interFrame: modbusframe.FrameSilence(cfg.Baud, cfg.bitsPerChar()),
			charTime:   modbusframe.CharacterTime(cfg.Baud, cfg.bitsPerChar()),
			pause:      opts.PauseBetweenRequests,
			timeout:    opts.Timeout,
		},
	}, nil
}

// NewTCP returns a transport to a serial device server that carries raw RTU
// frames over TCP; Open connects. The device server does the line timing,
// so only the pause between requests is applied here.
func NewTCP(address string, opts Options) (*Transport, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("modbus rtu over tcp: address %q is not host:port (e.g. 10.20.30.40:4001): %w", address, err)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Transport{
		name:         address,
		closeOnError: true,
		openLine: func(ctx context.Context) (line, string, error) {
			d := net.Dialer{Timeout: opts.Timeout, KeepAlive: 15 * time.Second}
			conn, err := d.DialContext(ctx, "tcp", address)
			if err != nil {
				return nil, "", &modbus.LinkError{Op: "connect " + address, Err: err}
			}
			return &tcpLine{conn: conn, name: address}, address, nil
		},
		framer: framer{pause: opts.PauseBetweenRequests, timeout: opts.Timeout},
	}, nil
}

// Name is the configured port or address.
func (t *Transport) Name() string { return t.name }

// CheckUnit accepts the unit ids a serial line can address: 1–247 (0 is
// broadcast, which gets no reply; 248–255 are reserved).
func (t *Transport) CheckUnit(unit byte) error {
	if unit < 1 || unit > 247 {
		return fmt.Errorf("unit %d out of range 1..247 (0 is broadcast, which gets no reply; 248..255 are reserved)", unit)
	}
	return nil
}

// Open opens the port or connection.
func (t *Transport) Open(ctx context.Context) (string, error) {
	t.Close()
	l, name, err := t.openLine(ctx)
	if err != nil {
		return "", err
	}
	t.line, t.readyAt = l, time.Time{}
	return name, nil
}

// IsOpen reports whether the port or connection is open.
func (t *Transport) IsOpen() bool { return t.line != nil }

// Close closes the port or connection, if open.
func (t *Transport) Close() error {
	if t.line == nil {
		return nil
	}
	err := t.line.close()
	t.line = nil
	return err
}

// ReadRegisters sends one read request (function 1–4) and returns one value
// per register (functions 3, 4) or per bit (functions 1, 2). Any other
// function code is refused before anything is sent.
func (t *Transport) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	req, err := NewRequest(unit, function, address, quantity)
	if err != nil {
		return nil, err
	}
	if t.line == nil {
		return nil, &modbus.LinkError{Op: "read", Err: errors.New(t.name + " is not open")}
	}
	values, err := t.transact(ctx, req)
	var le *modbus.LinkError
	if err != nil && (errors.As(err, &le) || t.closeOnError && modbus.AsException(err) == nil) {
		t.Close()
	}
	return values, err
}

// line is one open link to a bus: a serial port or a TCP connection to a
// serial device server.
type line interface {
	// write sends a whole frame.
	write(frame []byte) error
	// readSome reads what has arrived, waiting at most until deadline. It
	// returns errDeadline when nothing arrived by then, a
	// *modbus.LinkError when the link failed.
	readSome(p []byte, deadline time.Time) (int, error)
	// discardInput drops bytes already received and not read: a late reply
	// to a timed-out request must not be taken for the next one's.
	discardInput() error
	close() error
}

// errDeadline is a read that reached its deadline with no byte.
var errDeadline = errors.New("read deadline reached")

// tcpLine carries RTU frames over a TCP connection.
type tcpLine struct {
	conn net.Conn
	name string
}

func (t *tcpLine) write(frame []byte) error {
	// A write only fills the kernel buffer; a bounded deadline still keeps
	// a wedged peer from blocking the link forever.
	if err := t.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return &modbus.LinkError{Op: "write " + t.name, Err: err}
	}
	if _, err := t.conn.Write(frame); err != nil {
		return &modbus.LinkError{Op: "write " + t.name, Err: err}
	}
	return nil
}

func (t *tcpLine) readSome(p []byte, deadline time.Time) (int, error) {
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return 0, &modbus.LinkError{Op: "read " + t.name, Err: err}
	}
	n, err := t.conn.Read(p)
	if n > 0 {
		return n, nil // an error that came with data shows on the next read
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, errDeadline
	}
	if err == nil {
		err = errors.New("read returned no data")
	}
	return 0, &modbus.LinkError{Op: "read " + t.name, Err: err}
}

// discardInput does nothing on TCP: the transport closes the connection
// after any failed transaction, so no stale reply can be waiting on a live
// one.
func (t *tcpLine) discardInput() error { return nil }

func (t *tcpLine) close() error { return t.conn.Close() }

// framer runs request/reply transactions on a line with the RTU timing
// rules: t3.5 of silence before each request plus the configured pause,
// input flushed before each request, the reply read to its expected length.
type framer struct {
	line       line
	interFrame time.Duration // t3.5 of the line (0 over TCP: the device server keeps it)
	pause      time.Duration // extra pause between requests
	timeout    time.Duration // reply timeout
	charTime   time.Duration // wire time of one character (serial only)
	readyAt    time.Time     // earliest time the next request may start
	buf        []byte
}

// maxBuffered bounds the bytes kept while looking for a reply behind garbage.
const maxBuffered = 2 * modbusframe.MaxRTUFrame

// transact sends req and returns the values of its reply. Errors are
// *modbus.ExceptionError, *modbus.CRCError, *modbus.FrameError,
// *modbus.TimeoutError, *modbus.LinkError or the context's error.
func (f *framer) transact(ctx context.Context, req Request) ([]uint16, error) {
	if err := sleepUntil(ctx, f.readyAt); err != nil {
		return nil, err
	}
	if err := f.line.discardInput(); err != nil {
		return nil, err
	}
	frame := req.Encode()
	// Defence in depth: NewRequest already refuses non-read functions, and
	// this is the last point before the wire.
	if err := modbus.CheckReadOnlyADU(frame, modbus.RTUFunctionOffset); err != nil {
		return nil, err
	}
	if err := f.line.write(frame); err != nil {
		f.readyAt = time.Now().Add(f.interFrame + f.pause)
		return nil, err
	}
	sent := time.Now()
	// The timeout is the unit's think time: the wire time of the request
	// and the longest reply comes on top, or a long read at a low baud
	// (255 bytes take 2.3 s at 1200 baud) could never succeed.
	deadline := sent.Add(f.timeout + time.Duration(8+req.ReplyLength())*f.charTime)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	values, err := f.readReply(req, deadline)
	// The next request waits for t3.5 after the last byte we saw (or after
	// giving up): the unit must see the end of its frame before a new one.
	f.readyAt = time.Now().Add(f.interFrame + f.pause)
	if err == nil {
		return values, nil
	}
	var te *modbus.TimeoutError
	if errors.As(err, &te) {
		// The configured timeout, not the measured wait: the message stays
		// the same from poll to poll, so a steady failure is logged once.
		te.After = f.timeout
	}
	var le *modbus.LinkError
	if ctx.Err() != nil && !errors.As(err, &le) {
		return nil, ctx.Err()
	}
	return nil, err
}

func (f *framer) readReply(req Request, deadline time.Time) ([]uint16, error) {
	if cap(f.buf) < maxBuffered {
		f.buf = make([]byte, 0, maxBuffered)
	}
	buf := f.buf[:0]
	for {
		if len(buf) == cap(buf) {
			// Garbage filled the buffer: keep the newest half, a reply may
			// be arriving behind it.
			buf = buf[:copy(buf, buf[len(buf)-modbusframe.MaxRTUFrame:])]
		}
		n, err := f.line.readSome(buf[len(buf):cap(buf)], deadline)
		buf = buf[:len(buf)+n]
		if errors.Is(err, errDeadline) {
			return req.atDeadline(buf)
		}
		if err != nil {
			return nil, err
		}
		want := req.expectedLength(buf)
		switch {
		case want > 0 && len(buf) >= want:
			values, err := req.ParseReply(buf[:want])
			var ce *modbus.CRCError
			if errors.As(err, &ce) {
				// A unit address byte of noise may have made the real reply
				// look misaligned: look further before blaming the CRC.
				if off, n := req.findReply(buf); off >= 0 {
					return req.ParseReply(buf[off : off+n])
				}
			}
			return values, err
		case want < 0:
			// Not the start of our reply: line noise or a stale frame. Look
			// for the reply behind it; otherwise keep reading to the deadline.
			if off, n := req.findReply(buf); off >= 0 {
				return req.ParseReply(buf[off : off+n])
			}
		}
	}
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
