package rtu

import (
	"context"
	"errors"
	"github.com/sterigate/sterigate/drivers/modbus"
	"net"
	"os"
	"time"

	"go.bug.st/serial"
)

// line is one open link to a bus: a serial port or a TCP connection to a
// serial device server. Only the bus goroutine uses it.
type line interface {
	// write sends a whole frame.
	write(frame []byte) error
	// readSome reads what has arrived, waiting at most until deadline. It
	// returns errDeadline when nothing arrived by then, a *LinkError when
	// the link failed.
	readSome(p []byte, deadline time.Time) (int, error)
	// discardInput drops bytes already received and not read: a late reply
	// to a timed-out request must not be taken for the next one's.
	discardInput() error
	close() error
}

// errDeadline is a read that reached its deadline with no byte.
var errDeadline = errors.New("read deadline reached")

// serialLine is a go.bug.st/serial port.
type serialLine struct{ port serial.Port }

func (s *serialLine) write(frame []byte) error {
	for len(frame) > 0 {
		n, err := s.port.Write(frame)
		if err != nil {
			return &LinkError{Op: "write", Err: err}
		}
		if n == 0 {
			return &LinkError{Op: "write", Err: errors.New("serial port accepted 0 bytes")}
		}
		frame = frame[n:]
	}
	return nil
}

func (s *serialLine) readSome(p []byte, deadline time.Time) (int, error) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return 0, errDeadline
	}
	if err := s.port.SetReadTimeout(wait); err != nil {
		return 0, &LinkError{Op: "read", Err: err}
	}
	n, err := s.port.Read(p)
	if err != nil {
		return n, &LinkError{Op: "read", Err: err}
	}
	if n == 0 {
		// go.bug.st/serial reports a read timeout as (0, nil) (issue #148).
		// Treat it as the deadline, never as "try again": retrying would spin.
		return 0, errDeadline
	}
	return n, nil
}

func (s *serialLine) discardInput() error {
	if err := s.port.ResetInputBuffer(); err != nil {
		return &LinkError{Op: "flush input", Err: err}
	}
	return nil
}

func (s *serialLine) close() error { return s.port.Close() }

// tcpLine carries RTU frames over a TCP connection.
type tcpLine struct{ conn net.Conn }

func dialTCPLine(ctx context.Context, address string, timeout time.Duration) (*tcpLine, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, &LinkError{Op: "dial " + address, Err: err}
	}
	return &tcpLine{conn: conn}, nil
}

func (t *tcpLine) write(frame []byte) error {
	// A write only fills the kernel buffer; a bounded deadline still keeps
	// a wedged peer from blocking the bus forever.
	if err := t.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return &LinkError{Op: "write", Err: err}
	}
	if _, err := t.conn.Write(frame); err != nil {
		return &LinkError{Op: "write", Err: err}
	}
	return nil
}

func (t *tcpLine) readSome(p []byte, deadline time.Time) (int, error) {
	if err := t.conn.SetReadDeadline(deadline); err != nil {
		return 0, &LinkError{Op: "read", Err: err}
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
	return 0, &LinkError{Op: "read", Err: err}
}

// discardInput does nothing on TCP: the bus closes the connection after any
// failed transaction, so no stale reply can be waiting on a live one.
func (t *tcpLine) discardInput() error { return nil }

func (t *tcpLine) close() error { return t.conn.Close() }

// framer runs request/reply transactions on a line with the RTU timing
// rules: t3.5 of silence before each request plus the configured pause,
// input flushed before each request, the reply read to its expected length.
type framer struct {
	line       line
	interFrame time.Duration // t3.5 of the line
	pause      time.Duration // extra pause between requests
	timeout    time.Duration // reply timeout
	charTime   time.Duration // wire time of one character (serial only)
	readyAt    time.Time     // earliest time the next request may start
	buf        []byte
}

// maxBuffered bounds the bytes kept while looking for a reply behind garbage.
const maxBuffered = 2 * maxFrame

// transact sends req and returns the values of its reply. Errors are
// *ExceptionError, *CRCError, *FrameError, *TimeoutError, *LinkError or the
// context's error.
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
	var te *TimeoutError
	if errors.As(err, &te) {
		// The configured timeout, not the measured wait: the message stays
		// the same from poll to poll, so a steady failure is logged once.
		te.After = deadline.Sub(sent)
	}
	if ctx.Err() != nil && !IsLinkError(err) {
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
			buf = buf[:copy(buf, buf[len(buf)-maxFrame:])]
		}
		n, err := f.line.readSome(buf[len(buf):cap(buf)], deadline)
		buf = buf[:len(buf)+n]
		if errors.Is(err, errDeadline) {
			if off, n := req.findReply(buf); off >= 0 {
				return req.ParseReply(buf[off : off+n])
			}
			if len(buf) == 0 || req.expectedLength(buf) >= 0 {
				return nil, &TimeoutError{Unit: req.Unit, Function: req.Function, Received: len(buf)}
			}
			return nil, &FrameError{Unit: req.Unit, Function: req.Function, Reason: "garbage on the line and no valid reply", Frame: clip(buf)}
		}
		if err != nil {
			return nil, err
		}
		want := req.expectedLength(buf)
		switch {
		case want > 0 && len(buf) >= want:
			values, err := req.ParseReply(buf[:want])
			var ce *CRCError
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

// InterFrameDelay is t3.5, the silence that separates RTU frames: 3.5
// character times at baud, each character bitsPerChar bits long (11 for
// 8E1 or 8N2, 10 for 8N1). Above 19200 baud the standard fixes it at 1.75 ms
// (Modbus over serial line v1.02 §2.5.1.1).
func InterFrameDelay(baud, bitsPerChar int) time.Duration {
	if baud <= 0 {
		return 0
	}
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * float64(bitsPerChar) * float64(time.Second) / float64(baud))
}
