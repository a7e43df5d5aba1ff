// Package rtuslave is a Modbus RTU slave (server) for the simulator: it serves
// a register image over a byte stream, normally the master side of a
// pseudo-terminal from sim/ptyport, so that a gateway, mbpoll or any RTU
// master can read it like a sterilizer on an RS-485 bus. Several unit ids
// share one stream, as several devices share one bus.
//
// simonvetter/modbus has no RTU server, so this package frames requests
// itself: function code → frame length, CRC-16/MODBUS check, t3.5 silence to
// drop partial frames. It behaves like a real slave where a master can tell:
// frames with a bad CRC are ignored, absent units and broadcasts get no reply,
// reads of functions 3 and 4 are answered, writes are refused with exception 1.
// A FaultFunc lets the simulator make replies slow, silent, corrupt or wrong.
package rtuslave

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// Registers is what the slave serves; the simulator's register bank implements it.
// It is called from the Serve goroutine only, but a bank shared with a TCP
// server must lock.
type Registers interface {
	// ReadRegisters returns quantity values starting at address, for function
	// 3 or 4 (or 1 and 2, where each non-zero value is one set bit), or one of
	// the errors below. Other errors are answered with exception 4.
	ReadRegisters(unit byte, function byte, address, quantity uint16) ([]uint16, error)
	// RefuseWrite counts a refused write attempt (functions 5, 6, 15, 16),
	// including broadcasts (unit 0), which get no reply.
	RefuseWrite(unit byte, function byte)
}

// UnitPresence may also be implemented by a Registers. Without it, the slave
// learns whether a unit exists for a write or an unknown function by asking
// ReadRegisters(unit, 3, 0, 1) and looking for ErrNoSuchUnit only.
type UnitPresence interface {
	HasUnit(unit byte) bool
}

// Errors a Registers returns; the slave turns them into Modbus replies.
var (
	ErrIllegalFunction = errors.New("rtuslave: illegal function")     // → exception 1
	ErrIllegalAddress  = errors.New("rtuslave: illegal data address") // → exception 2
	ErrNoSuchUnit      = errors.New("rtuslave: no such unit")         // → no reply at all (a dead unit on RS-485)
)

// Request describes one CRC-valid request addressed to a unit, for a FaultFunc.
// Address and Quantity are zero for functions whose frame has no such fields.
type Request struct {
	Unit     byte
	Function byte
	Address  uint16
	Quantity uint16 // the value for functions 5 and 6
}

// Fault says what to do to the reply to one request. The zero Fault is a
// normal reply.
type Fault struct {
	Drop       bool          // send nothing: the master times out
	Delay      time.Duration // wait this long before replying (a slow device)
	Garbage    []byte        // bytes sent just before the reply (noise on the line)
	CorruptCRC bool          // send the reply with a wrong CRC
	Exception  byte          // if not 0, reply with this exception code instead, e.g. modbusframe.ExceptionServerDeviceFailure
}

// FaultFunc is consulted for every request the slave is about to answer
// (never for broadcasts, absent units or bad frames). It runs on the Serve
// goroutine, so it must not block.
type FaultFunc func(Request) Fault

// MinPtySilence is the smallest inter-frame silence Serve uses by default. On
// a pseudo-terminal bytes have no transmission time and the goroutines on both
// ends are scheduled with jitter, so the 1.75 ms of a fast real line would cut
// frames apart; 5 ms is still far below any master's reply timeout.
const MinPtySilence = 5 * time.Millisecond

// Options configures Serve. The zero value is usable.
type Options struct {
	// Baud is the line speed the timings are computed for; default 19200.
	Baud int
	// InterFrameSilence overrides the quiet time after which a partial frame
	// is discarded. Zero means t3.5 at Baud (1.75 ms above 19200 baud), but
	// at least MinPtySilence.
	InterFrameSilence time.Duration
	// Faults, if not nil, may disturb replies.
	Faults FaultFunc
	// Logger receives request and error logs; nil discards them.
	Logger *slog.Logger
}

// bitsPerChar is the length of one RTU character the slave's timing
// assumes: start, 8 data, parity (or a second stop bit), stop.
const bitsPerChar = 11

// writeTimeout bounds a reply write when the stream supports deadlines: with
// no client reading the pty, the kernel buffer fills and Write would block.
const writeTimeout = time.Second

type readDeadliner interface{ SetReadDeadline(time.Time) error }
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// chunk is bytes from one Read and when they arrived, for silence detection.
type chunk struct {
	data []byte
	at   time.Time
}

// Serve answers Modbus RTU requests read from rw until ctx is done or rw fails.
//
// Stopping: a blocking Read on a pty master cannot see ctx. If rw has
// SetReadDeadline (a *ptyport.Port, a net.Conn, a pollable *os.File),
// cancelling ctx is enough: Serve interrupts its own Read and clears the
// deadline before returning. Otherwise the owner must cancel ctx and then
// close rw; Serve returns only after its reader goroutine has ended.
//
// Serve returns nil once ctx is done (also when the owner closed rw to stop
// it), and otherwise the read or write error that ended it.
func Serve(ctx context.Context, rw io.ReadWriter, regs Registers, opts Options) error {
	if rw == nil || regs == nil {
		return errors.New("rtuslave: Serve needs a stream and Registers, got nil")
	}
	if opts.Baud == 0 {
		opts.Baud = 19200
	}
	if opts.Baud < 0 {
		return fmt.Errorf("rtuslave: Options.Baud = %d, want a positive line speed", opts.Baud)
	}
	silence := opts.InterFrameSilence
	if silence == 0 {
		silence = max(modbusframe.FrameSilence(opts.Baud, bitsPerChar), MinPtySilence)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &slave{rw: rw, regs: regs, faults: opts.Faults, log: logger}

	readCtx, stopReading := context.WithCancel(ctx)
	chunks := make(chan chunk, 8)
	readErr := make(chan error, 1)
	var reader sync.WaitGroup
	reader.Go(func() { readLoop(readCtx, rw, chunks, readErr) })
	if d, ok := rw.(readDeadliner); ok {
		interrupted := make(chan struct{})
		stopInterrupt := context.AfterFunc(readCtx, func() {
			defer close(interrupted)
			d.SetReadDeadline(time.Unix(1, 0))
		})
		defer func() {
			// Runs after stopReading, so the interrupt has started unless it
			// was stopped; wait for it, or it could undo the reset below.
			if !stopInterrupt() {
				<-interrupted
			}
			d.SetReadDeadline(time.Time{}) // leave the port usable for the next Serve
		}()
	}
	if d, ok := rw.(writeDeadliner); ok {
		defer d.SetWriteDeadline(time.Time{})
	}
	defer reader.Wait()
	defer stopReading()

	var dec decoder
	var frames [][]byte
	var lastByte time.Time
	silenceTimer := time.NewTimer(time.Hour)
	silenceTimer.Stop()
	defer silenceTimer.Stop()

	for {
		frames = frames[:0]
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rtuslave: read request: %w", err)
		case c := <-chunks:
			if dec.pending() && c.at.Sub(lastByte) >= silence {
				frames = dec.silence(frames)
			}
			frames = dec.feed(c.data, frames)
			lastByte = c.at
			if dec.pending() {
				silenceTimer.Reset(time.Until(lastByte.Add(silence)))
			} else {
				silenceTimer.Stop()
			}
		case <-silenceTimer.C:
			frames = dec.silence(frames)
		}
		for _, frame := range frames {
			if err := s.handle(ctx, frame); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// readLoop owns the blocking Read. It ends when Read fails, including the
// deadline error by which Serve interrupts it on cancellation.
func readLoop(ctx context.Context, r io.Reader, chunks chan<- chunk, readErr chan<- error) {
	for {
		buf := make([]byte, modbusframe.MaxRTUFrame)
		n, err := r.Read(buf)
		if n > 0 {
			select {
			case chunks <- chunk{data: buf[:n], at: time.Now()}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			// Also a deadline error while ctx is live ends the loop: someone
			// else set a deadline on a stream Serve owns, and retrying would
			// spin on it.
			readErr <- err
			return
		}
	}
}

type slave struct {
	rw     io.ReadWriter
	regs   Registers
	faults FaultFunc
	log    *slog.Logger
}

// handle answers one CRC-valid frame (or stays silent).
func (s *slave) handle(ctx context.Context, frame []byte) error {
	req := parseRequest(frame)
	reply := s.reply(req, frame)
	if reply == nil {
		return nil
	}
	if s.faults != nil {
		fault := s.faults(req)
		if fault.Drop {
			s.log.Debug("rtu fault: reply dropped", "unit", req.Unit, "function", req.Function)
			return nil
		}
		if fault.Exception != 0 {
			reply = exception(req, fault.Exception)
		}
		if fault.Delay > 0 {
			timer := time.NewTimer(fault.Delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
		}
		reply = modbusframe.AppendCRC(reply)
		if fault.CorruptCRC {
			reply[len(reply)-1] ^= 0xFF
		}
		if len(fault.Garbage) > 0 {
			reply = append(append([]byte(nil), fault.Garbage...), reply...)
		}
	} else {
		reply = modbusframe.AppendCRC(reply)
	}
	return s.write(reply)
}

func (s *slave) write(adu []byte) error {
	if d, ok := s.rw.(writeDeadliner); ok {
		d.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := s.rw.Write(adu); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Nobody reads the other end; a real slave's bytes would be lost too.
			s.log.Warn("rtu reply not taken by any reader, dropped", "bytes", len(adu))
			return nil
		}
		return fmt.Errorf("rtuslave: write reply: %w", err)
	}
	return nil
}

func parseRequest(frame []byte) Request {
	req := Request{Unit: frame[0], Function: frame[1]}
	switch req.Function {
	case 1, 2, 3, 4, 5, 6, 15, 16: // the functions whose frames carry address and quantity (or value)
	default:
		return req
	}
	if len(frame) >= 8 {
		req.Address = binary.BigEndian.Uint16(frame[2:4])
		req.Quantity = binary.BigEndian.Uint16(frame[4:6])
	}
	return req
}

// reply builds the reply PDU (unit, function, data; no CRC), or nil for silence.
func (s *slave) reply(req Request, frame []byte) []byte {
	if req.Unit == 0 { // broadcast: acted upon, never answered
		if isWrite(req.Function) {
			s.regs.RefuseWrite(0, req.Function)
		}
		return nil
	}
	if req.Function == 0 || req.Function >= 0x80 {
		// Not a request: function codes with the high bit set are exception
		// replies (e.g. another slave's on a shared bus) and 0 is invalid.
		// Answering would only add noise to the line.
		return nil
	}
	switch req.Function {
	case 1, 2, 3, 4:
		return s.read(req)
	case 5, 6, 15, 16:
		if !s.unitPresent(req.Unit) {
			return nil
		}
		if (req.Function == 15 || req.Function == 16) && !writeByteCountConsistent(req, frame) {
			return exception(req, modbusframe.ExceptionIllegalDataValue)
		}
		s.regs.RefuseWrite(req.Unit, req.Function)
		s.log.Debug("rtu write refused", "unit", req.Unit, "function", req.Function, "address", req.Address)
		return exception(req, modbusframe.ExceptionIllegalFunction)
	default:
		if !s.unitPresent(req.Unit) {
			return nil
		}
		return exception(req, modbusframe.ExceptionIllegalFunction)
	}
}

func isWrite(function byte) bool {
	return function == 5 || function == 6 || function == 15 || function == 16
}

func writeByteCountConsistent(req Request, frame []byte) bool {
	byteCount := int(frame[6])
	if req.Function == 16 {
		return req.Quantity >= 1 && req.Quantity <= 123 && byteCount == 2*int(req.Quantity)
	}
	return req.Quantity >= 1 && req.Quantity <= 1968 && byteCount == (int(req.Quantity)+7)/8
}

func (s *slave) unitPresent(unit byte) bool {
	if p, ok := s.regs.(UnitPresence); ok {
		return p.HasUnit(unit)
	}
	_, err := s.regs.ReadRegisters(unit, 3, 0, 1)
	return !errors.Is(err, ErrNoSuchUnit)
}

func (s *slave) read(req Request) []byte {
	maxQuantity := uint16(125)
	if req.Function <= 2 {
		maxQuantity = 2000
	}
	if req.Quantity < 1 || req.Quantity > maxQuantity || int(req.Address)+int(req.Quantity) > 0x10000 {
		if !s.unitPresent(req.Unit) {
			return nil
		}
		return exception(req, modbusframe.ExceptionIllegalDataValue)
	}
	values, err := s.regs.ReadRegisters(req.Unit, req.Function, req.Address, req.Quantity)
	switch {
	case errors.Is(err, ErrNoSuchUnit):
		return nil
	case errors.Is(err, ErrIllegalFunction):
		return exception(req, modbusframe.ExceptionIllegalFunction)
	case errors.Is(err, ErrIllegalAddress):
		return exception(req, modbusframe.ExceptionIllegalDataAddress)
	case err != nil:
		s.log.Warn("rtu read failed", "unit", req.Unit, "function", req.Function, "address", req.Address, "quantity", req.Quantity, "err", err)
		return exception(req, modbusframe.ExceptionServerDeviceFailure)
	case len(values) != int(req.Quantity):
		s.log.Warn("rtu read returned the wrong number of values", "unit", req.Unit, "function", req.Function, "address", req.Address, "quantity", req.Quantity, "got", len(values))
		return exception(req, modbusframe.ExceptionServerDeviceFailure)
	}
	s.log.Debug("rtu read", "unit", req.Unit, "function", req.Function, "address", req.Address, "quantity", req.Quantity)
	if req.Function <= 2 {
		bits := make([]byte, (len(values)+7)/8)
		for i, v := range values {
			if v != 0 {
				bits[i/8] |= 1 << (i % 8)
			}
		}
		return append([]byte{req.Unit, req.Function, byte(len(bits))}, bits...)
	}
	pdu := make([]byte, 3, 3+2*len(values)+2)
	pdu[0], pdu[1], pdu[2] = req.Unit, req.Function, byte(2*len(values))
	for _, v := range values {
		pdu = binary.BigEndian.AppendUint16(pdu, v)
	}
	return pdu
}

func exception(req Request, code byte) []byte {
	return []byte{req.Unit, req.Function | modbusframe.ExceptionBit, code}
}
