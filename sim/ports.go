package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/autoclave"
	"github.com/sterigate/sterigate/sim/printout"
	"github.com/sterigate/sterigate/sim/ptyport"
	"github.com/sterigate/sterigate/sim/rtuslave"
)

// startRTU serves the bank as Modbus RTU units 1..N on one pseudo-terminal.
func (s *Simulator) startRTU(ctx context.Context, wg *sync.WaitGroup) error {
	if s.opts.RTU == "" {
		return nil
	}
	port, err := ptyport.Open(s.opts.RTU)
	if err != nil {
		return fmt.Errorf("sim: RTU port: %w", err)
	}
	s.consolef("modbus-rtu on %s (%s) units %d-%d\n", port.Path(), port.DevicePath(), 1, s.opts.Devices)
	s.log.Info("modbus-rtu serving", "path", port.Path(), "device", port.DevicePath())
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer port.Close()
		err := rtuslave.Serve(ctx, port, s.bank, rtuslave.Options{Baud: s.opts.RTUBaud, Faults: s.bank.RTUFault, Logger: s.log})
		if err != nil {
			s.log.Error("modbus-rtu stopped", "err", err)
		}
	}()
	return nil
}

// printer is one device's printer port: reports are queued and written
// paced at the baud rate, as a serial printer line would carry them.
type printer struct {
	port  *ptyport.Port
	queue chan []byte
	baud  int
}

func (p *printer) enqueue(b []byte) {
	select {
	case p.queue <- b:
	default: // the printer's buffer is full: like a real one, it loses text
	}
}

func (p *printer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-p.queue:
			for len(b) > 0 {
				n := min(len(b), 64)
				p.port.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := p.port.Write(b[:n]); err != nil {
					break // nobody reads the port: drop the rest of this report
				}
				b = b[n:]
				// 10 bits per character at 8N1.
				t := time.NewTimer(time.Duration(n) * 10 * time.Second / time.Duration(p.baud))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
	}
}

func (s *Simulator) printerOptions() printout.Options {
	style := printout.StyleEnglish
	if s.opts.PrinterStyle == "de" {
		style = printout.StyleGerman
	}
	return printout.Options{Style: style, LineEnding: s.opts.PrinterLineEnding, Charset: s.opts.PrinterCharset}
}

func (s *Simulator) startPrinters(ctx context.Context, wg *sync.WaitGroup) error {
	if s.opts.Printer == "" {
		return nil
	}
	for _, u := range s.units {
		path := s.opts.Printer
		if len(s.units) > 1 {
			path = fmt.Sprintf("%s-%d", s.opts.Printer, u.n)
		}
		port, err := ptyport.Open(path)
		if err != nil {
			return fmt.Errorf("sim: printer port of device %d: %w", u.n, err)
		}
		u.printer = &printer{port: port, queue: make(chan []byte, 64), baud: s.opts.PrinterBaud}
		s.consolef("printer device=%d on %s (%s) style %s\n", u.n, port.Path(), port.DevicePath(), s.printerStyle())
		wg.Add(1)
		go func(p *printer) {
			defer wg.Done()
			defer p.port.Close()
			p.run(ctx)
		}(u.printer)
	}
	if s.opts.PrinterStyle == "stream" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.streamLines(ctx)
		}()
	}
	return nil
}

func (s *Simulator) printerStyle() string {
	if s.opts.PrinterStyle == "" {
		return "en"
	}
	return s.opts.PrinterStyle
}

// streamLines sends one line of values per real second per device, like
// the Amsco LS serial stream. It reads the bank, not the devices, because
// the devices belong to the ticker goroutine.
func (s *Simulator) streamLines(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	opts := s.printerOptions()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, u := range s.units {
			img, alive := s.bank.Image(byte(u.n))
			if !alive {
				continue
			}
			phase := autoclave.Phase(img[3])
			line := printout.StreamLine(s.deviceTime(), phase == autoclave.PhaseSterilizing,
				float64(img[2])/10, float64(int16(img[0]))/10, float64(int16(img[1]))/10, opts)
			u.printer.enqueue(line)
		}
	}
}

// printCycle renders a finished cycle as the printer prints it.
func (s *Simulator) printCycle(u *unit, r *autoclave.Report) []byte {
	if s.opts.PrinterStyle == "stream" {
		return nil
	}
	c := printout.Cycle{
		Model: "sterigate SIM-1", Serial: fmt.Sprintf("SIM%05d", u.n),
		Program: r.Program.Name, SetpointC: r.Program.SetC, HoldSeconds: int(r.Program.HoldS),
		Counter: r.Counter, Start: s.at(r.StartS), End: s.at(r.EndS),
		PlateauMinC: r.ReportedPlateauMinC, PlateauMaxC: r.ReportedPlateauMaxC,
		HeldSeconds: int(r.ReportedHoldS), AlarmCode: int(r.AlarmCode),
		Result: protocol.Result(r.Result.String()),
	}
	failed := r.Result != autoclave.ResultPassed
	for i, m := range r.Phases {
		if m.Phase == autoclave.PhaseFault {
			continue
		}
		ok := true
		if failed && (i+1 == len(r.Phases) || r.Phases[i+1].Phase == autoclave.PhaseFault) {
			ok = false
		}
		c.Phases = append(c.Phases, printout.Mark{Name: m.Phase.Name(), At: s.at(r.StartS + m.AtS), OK: ok})
	}
	var holdStart float64 = -1
	for _, sm := range r.Samples {
		if sm.Phase != autoclave.PhaseSterilizing {
			continue
		}
		if holdStart < 0 {
			holdStart = sm.AtS
		}
		if c.PlateauMinKPa == 0 || sm.PressureKPa < c.PlateauMinKPa {
			c.PlateauMinKPa = sm.PressureKPa
		}
		c.PlateauMaxKPa = max(c.PlateauMaxKPa, sm.PressureKPa)
		// The printer prints a plateau line about every 30 s.
		if int(sm.AtS-holdStart)%30 < 10 {
			c.Samples = append(c.Samples, printout.Sample{At: s.at(r.StartS + sm.AtS), TempC: sm.TempC, PressureKPa: sm.PressureKPa})
		}
	}
	return printout.Render(c, s.printerOptions())
}
