package sim

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/sterigate/sterigate/sim/rtuslave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// silenceHold is how long a silent device keeps a request unanswered before
// it drops the connection: longer than any sane poll timeout.
const silenceHold = 10 * time.Second

// tcpHandler answers Modbus TCP requests from the bank. The library calls it
// from one goroutine per connection, so it keeps no state of its own; the
// bank locks.
type tcpHandler struct {
	bank   *Bank
	device int             // 0: shared port, the unit id picks the device; else this device whatever the unit id
	stop   <-chan struct{} // closed when the simulator stops: slow replies give up
}

func (h *tcpHandler) unit(id uint8) byte {
	if h.device > 0 {
		return byte(h.device)
	}
	return id
}

func (h *tcpHandler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if req.IsWrite {
		h.bank.RefuseWrite(h.unit(req.UnitId), 5)
	}
	return nil, modbus.ErrIllegalFunction
}

func (h *tcpHandler) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

func (h *tcpHandler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		fn := byte(16)
		if req.Quantity == 1 {
			fn = 6
		}
		h.bank.RefuseWrite(h.unit(req.UnitId), fn)
		return nil, modbus.ErrIllegalFunction
	}
	return h.read(req.UnitId, 3, req.Addr, req.Quantity)
}

func (h *tcpHandler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.read(req.UnitId, 4, req.Addr, req.Quantity)
}

// wait blocks for d or until the simulator stops; false means stopping.
func (h *tcpHandler) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.stop:
		return false
	}
}

var exceptionErrors = map[byte]error{
	1: modbus.ErrIllegalFunction, 2: modbus.ErrIllegalDataAddress, 3: modbus.ErrIllegalDataValue,
	4: modbus.ErrServerDeviceFailure, 5: modbus.ErrAcknowledge, 6: modbus.ErrServerDeviceBusy,
	8: modbus.ErrMemoryParityError, 10: modbus.ErrGWPathUnavailable, 11: modbus.ErrGWTargetFailedToRespond,
}

func (h *tcpHandler) read(id uint8, function byte, addr, quantity uint16) ([]uint16, error) {
	u := h.unit(id)
	if c, acts := h.bank.CommFault(u); acts {
		switch c.Kind {
		case scenario.CommSlow:
			if !h.wait(slowDelay(c)) {
				return nil, modbus.ErrProtocolError
			}
		case scenario.CommSilence:
			// No reply; the library's only way to send nothing is to
			// close the connection, which it does on a protocol error.
			h.wait(silenceHold)
			return nil, modbus.ErrProtocolError
		case scenario.CommDrop:
			return nil, modbus.ErrProtocolError
		case scenario.CommException:
			if err, ok := exceptionErrors[c.Exception]; ok {
				return nil, err
			}
			return nil, modbus.ErrServerDeviceFailure
		}
	}
	regs, err := h.bank.ReadRegisters(u, function, addr, quantity)
	switch {
	case err == nil:
		return regs, nil
	case errors.Is(err, rtuslave.ErrNoSuchUnit):
		// What a Modbus TCP gateway answers for a unit that does not
		// reply on its bus.
		return nil, modbus.ErrGWTargetFailedToRespond
	case errors.Is(err, rtuslave.ErrIllegalAddress):
		return nil, modbus.ErrIllegalDataAddress
	case errors.Is(err, rtuslave.ErrIllegalFunction):
		return nil, modbus.ErrIllegalFunction
	}
	return nil, modbus.ErrServerDeviceFailure
}

// tcpServers are the running Modbus TCP servers: one shared, or one per
// device that is switched off while its device has no power.
type tcpServers struct {
	s       *Simulator
	stop    chan struct{}
	servers []*modbus.ModbusServer // nil entry: not running
}

func (s *Simulator) startTCP(ctx context.Context) (*tcpServers, error) {
	ts := &tcpServers{s: s, stop: make(chan struct{}), servers: make([]*modbus.ModbusServer, len(s.addrs))}
	for i := range s.addrs {
		if err := ts.start(i); err != nil {
			ts.stopAll()
			return nil, err
		}
	}
	return ts, nil
}

func (ts *tcpServers) start(i int) error {
	device := 0
	if ts.s.opts.PortPerDevice {
		device = i + 1
	}
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{
		URL:        "tcp://" + ts.s.addrs[i],
		Timeout:    5 * time.Minute,
		MaxClients: 16,
		Logger:     log.New(slogWriter{ts.s.log}, "", 0),
	}, &tcpHandler{bank: ts.s.bank, device: device, stop: ts.stop})
	if err != nil {
		return fmt.Errorf("sim: modbus-tcp server on %s: %w", ts.s.addrs[i], err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("sim: modbus-tcp listen on %s: %w", ts.s.addrs[i], err)
	}
	ts.servers[i] = srv
	return nil
}

// follow switches per-device servers off while their device is dead (the
// gateway sees connection refused) and on again when it comes back. A
// new server is made each time: restarting a stopped one would race with
// the library's old accept loop.
func (ts *tcpServers) follow(units []*unit) {
	if !ts.s.opts.PortPerDevice {
		return
	}
	for i, u := range units {
		alive := u.dev.Powered()
		switch {
		case !alive && ts.servers[i] != nil:
			ts.servers[i].Stop()
			ts.servers[i] = nil
			ts.s.log.Info("modbus-tcp port closed: device has no power", "device", u.n, "addr", ts.s.addrs[i])
		case alive && ts.servers[i] == nil:
			if err := ts.start(i); err != nil {
				ts.s.log.Error("modbus-tcp port not reopened", "device", u.n, "err", err)
			}
		}
	}
}

func (ts *tcpServers) stopAll() {
	select {
	case <-ts.stop:
	default:
		close(ts.stop)
	}
	for i, srv := range ts.servers {
		if srv != nil {
			srv.Stop()
			ts.servers[i] = nil
		}
	}
}

// slogWriter carries the library's log lines into slog at debug level.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("modbus-tcp", "msg", string(p))
	return len(p), nil
}
