package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// DefaultTimeout bounds one request when a transport names none: short on
// purpose, because a half-open connection is only detected by it.
const DefaultTimeout = 2 * time.Second

// TCPConfig describes one Modbus TCP connection (one IP:port: a
// sterilizer, or a TCP-to-RTU gateway with several units behind it).
type TCPConfig struct {
	Address string // host:port
	// Timeout bounds one request (dial, or write + reply); default 2 s.
	// Keep it short (1–3 s): a half-open connection is only detected by it.
	Timeout time.Duration
	// Dial opens the connection (nil: a net.Dialer), e.g. to bind a source
	// address on a gateway with several networks.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// TCPTransport is the Modbus TCP transport: goburrow/modbus's TCP handler
// for framing only (MBAP header, transaction and unit id checks, PDU
// parsing) over a connection of our own that is closed on every error but
// an exception. goburrow's own transport keeps a broken connection for ever
// (broken pipe on every call after a peer restart; one late reply leaves the
// transaction ids offset for good), so it is not used. There is no write
// method, and the read-only guard sits between goburrow's client and the
// connection.
type TCPTransport struct {
	cfg      TCPConfig
	packager *gmodbus.TCPClientHandler
	client   gmodbus.Client
	conn     net.Conn
	buf      [mbapHeader + 254]byte // the reply being read

	// Set around each request, for Send (goburrow's Transporter has no
	// context and no request).
	ctx            context.Context
	unit, function byte
}

// NewTCPTransport checks cfg and builds the transport; Open dials.
func NewTCPTransport(cfg TCPConfig) (*TCPTransport, error) {
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("modbus tcp: address %q is not host:port (e.g. 192.168.1.20:502): %w", cfg.Address, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	packager := gmodbus.NewTCPClientHandler(cfg.Address)
	packager.IdleTimeout = 0 // its own transport is never used; no idle timer goroutine
	t := &TCPTransport{cfg: cfg, packager: packager}
	t.client = gmodbus.NewClient2(packager, ReadOnlyTransporter(wireFunc(t.send), TCPFunctionOffset))
	return t, nil
}

type wireFunc func([]byte) ([]byte, error)

func (f wireFunc) Send(adu []byte) ([]byte, error) { return f(adu) }

// CheckUnit accepts every unit id: Modbus TCP devices answer on 0, 1 or
// 255 as often as on a real unit id, and a gateway forwards 1–247.
func (t *TCPTransport) CheckUnit(byte) error { return nil }

// Open dials the address.
func (t *TCPTransport) Open(ctx context.Context) (string, error) {
	t.Close()
	dctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	if t.cfg.Dial != nil {
		conn, err = t.cfg.Dial(dctx, "tcp", t.cfg.Address)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", t.cfg.Address)
	}
	if err != nil {
		return "", &LinkError{Op: "connect " + t.cfg.Address, Err: err}
	}
	t.conn = conn
	return t.cfg.Address, nil
}

// IsOpen reports whether a connection is up.
func (t *TCPTransport) IsOpen() bool { return t.conn != nil }

// Close closes the connection, if any.
func (t *TCPTransport) Close() error {
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// ReadRegisters implements Transport.
func (t *TCPTransport) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if quantity == 0 {
		return nil, fmt.Errorf("modbus: read of 0 items from address %d", address)
	}
	if t.conn == nil {
		return nil, &LinkError{Op: "read", Err: errors.New("the connection is not open")}
	}
	t.packager.SlaveId = unit
	t.ctx, t.unit, t.function = ctx, unit, function
	defer func() { t.ctx = nil }()
	var (
		raw []byte
		err error
	)
	switch function {
	case modbusframe.FuncReadCoils:
		raw, err = t.client.ReadCoils(address, quantity)
	case modbusframe.FuncReadDiscreteInputs:
		raw, err = t.client.ReadDiscreteInputs(address, quantity)
	case modbusframe.FuncReadHoldingRegisters:
		raw, err = t.client.ReadHoldingRegisters(address, quantity)
	case modbusframe.FuncReadInputRegisters:
		raw, err = t.client.ReadInputRegisters(address, quantity)
	default:
		return nil, fmt.Errorf("%w: function %d", ErrWriteRefused, function)
	}
	if err != nil {
		return nil, t.failed(ctx, err)
	}
	words, err := unpack(function, raw, quantity)
	if err != nil {
		t.Close()
		return nil, &FrameError{Unit: unit, Function: function, Reason: err.Error()}
	}
	return words, nil
}

// failed classifies an error of goburrow's client and closes the
// connection unless the device answered with an exception.
func (t *TCPTransport) failed(ctx context.Context, err error) error {
	var me *gmodbus.ModbusError
	if errors.As(err, &me) {
		if me.FunctionCode == t.function|modbusframe.ExceptionBit {
			return &ExceptionError{Unit: t.unit, Function: t.function, Code: me.ExceptionCode} // the connection is fine
		}
		// goburrow reports any reply whose function code differs from the
		// request's as an "exception" whose code is the first data byte:
		// it is a reply that is not ours.
		err = &FrameError{Unit: t.unit, Function: t.function,
			Reason: fmt.Sprintf("reply has function code %d, expected %d", me.FunctionCode, t.function)}
	}
	// Any other error may leave unread bytes or a shifted transaction id on
	// the connection: drop it, the link owner reopens.
	t.Close()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	var (
		te *TimeoutError
		le *LinkError
		fe *FrameError
	)
	if errors.As(err, &te) || errors.As(err, &le) || errors.As(err, &fe) || errors.Is(err, ErrWriteRefused) {
		return err
	}
	// goburrow's own checks: transaction id, protocol id, unit id, length.
	return &FrameError{Unit: t.unit, Function: t.function, Reason: err.Error()}
}

// unpack turns a reply's data bytes into one word per register or bit.
func unpack(function byte, raw []byte, quantity uint16) ([]uint16, error) {
	words := make([]uint16, quantity)
	if function == modbusframe.FuncReadCoils || function == modbusframe.FuncReadDiscreteInputs {
		if len(raw) < (int(quantity)+7)/8 {
			return nil, fmt.Errorf("reply has %d bytes for %d bits", len(raw), quantity)
		}
		for i := range words {
			words[i] = uint16(raw[i/8] >> (i % 8) & 1)
		}
		return words, nil
	}
	if len(raw) != 2*int(quantity) {
		return nil, fmt.Errorf("reply has %d bytes for %d registers", len(raw), quantity)
	}
	for i := range words {
		words[i] = binary.BigEndian.Uint16(raw[2*i:])
	}
	return words, nil
}

const mbapHeader = 7

// send writes one MBAP frame and reads one reply, within the timeout (or
// the context's deadline, if sooner); cancelling the context unblocks it
// at once.
func (t *TCPTransport) send(adu []byte) ([]byte, error) {
	ctx := t.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	conn := t.conn
	if conn == nil {
		return nil, &LinkError{Op: "write", Err: errors.New("the connection is not open")}
	}
	deadline := time.Now().Add(t.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, &LinkError{Op: "set deadline", Err: err}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(adu); err != nil {
		return nil, t.netError("write", 0, err)
	}
	// Read whatever has arrived: a reply usually comes in one segment, so
	// one read call (not one for the header and one for the rest) takes it.
	buf := t.buf[:]
	n := 0
	for {
		got, err := conn.Read(buf[n:])
		n += got
		if n >= mbapHeader {
			length := int(binary.BigEndian.Uint16(buf[4:]))
			if length < 2 || mbapHeader-1+length > len(buf) {
				return nil, &FrameError{Unit: t.unit, Function: t.function, Reason: fmt.Sprintf("reply length field %d is out of range 2..254", length), Frame: append([]byte(nil), buf[:mbapHeader]...)}
			}
			switch want := mbapHeader - 1 + length; {
			case n == want:
				// goburrow's client only reads the reply before the next
				// request, so the buffer is reused.
				return buf[:n], nil
			case n > want:
				// One request is outstanding at a time: anything after its
				// reply is not a reply to anything.
				return nil, &FrameError{Unit: t.unit, Function: t.function, Reason: fmt.Sprintf("%d bytes follow the reply", n-want), Frame: append([]byte(nil), buf[want:n]...)}
			}
		}
		if err != nil {
			return nil, t.netError("read", n, err)
		}
	}
}

// netError turns a read or write error into a *TimeoutError (the deadline
// passed) or a *LinkError (the connection failed).
func (t *TCPTransport) netError(op string, received int, err error) error {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &TimeoutError{Unit: t.unit, Function: t.function, After: t.cfg.Timeout, Received: received}
	}
	return &LinkError{Op: op + " " + t.cfg.Address, Err: err}
}
