// Package sim is sterigate's autoclave simulator: N steam sterilizers
// (sim/autoclave) stepped on one simulated clock, served over Modbus TCP
// (simonvetter/modbus), Modbus RTU on a pseudo-terminal (sim/rtuslave,
// sim/ptyport) and the RS-232 printer port (sim/printout), with process
// and communication faults scheduled by a scenario (sim/scenario). It
// writes the ground truth of every finished cycle as JSON lines, so the
// gateway's tests can compare what it recorded with what really happened.
//
// The register map is the contract of docs/simulator.md.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterigate/sterigate/sim/autoclave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// Scenario schedules programs and faults per device (see sim/scenario).
type Scenario = scenario.Scenario

// Options configures a Simulator.
type Options struct {
	Devices       int       // autoclaves, default 1
	Speed         float64   // simulated seconds per real second, default 1
	Seed          int64     // makes noise, leaks and start offsets reproducible
	Scenario      *Scenario // nil: 134-porous back to back on every device
	ModbusTCP     string    // listen address, e.g. "127.0.0.1:1502" (port 0: a free one); "" = no TCP server
	PortPerDevice bool      // false: one port, unit ids 1..N; true: ports ModbusTCP, +1, +2 …
	Truth         io.Writer // nil: none; else one JSON line per finished cycle
	Logger        *slog.Logger

	// Console receives the human lines other tools wait for ("modbus-tcp
	// listening on …", "cycle finished …"); nil: none.
	Console io.Writer
	// Epoch is the device clocks' time at simulated second 0; zero: now.
	Epoch time.Time
	// Tick is the real interval between publications of the registers;
	// default one simulated second (1/Speed s), between 10 ms and 100 ms.
	Tick time.Duration
	// Shuffle, if set, serves every device's registers in this other
	// layout (NewShuffle) over TCP and RTU, instead of docs/simulator.md's.
	Shuffle *Shuffle

	// RTU, if set, is the path of a symlink to a pseudo-terminal on which
	// all devices answer as Modbus RTU units 1..N of one bus.
	RTU     string
	RTUBaud int // timing of the RTU slave, default 19200

	// Printer, if set, is the path of a symlink to a pseudo-terminal that
	// receives each finished cycle as a printout (one device), or the
	// prefix of one per device ("PATH-1", "PATH-2" …) when Devices > 1.
	Printer           string
	PrinterStyle      string // "en" (default), "de" or "stream" (one line of values per real second)
	PrinterBaud       int    // bytes are paced at this rate, default 9600 (8N1)
	PrinterLineEnding string // "\r\n" (default), "\n" or "\r"
	PrinterCharset    string // cp850, cp437, latin1 or ascii; default per style

	// InstantFinish makes every device go straight back to idle (phase
	// 0, state 0) when a cycle ends, passed or not: its end lasts less
	// than any poll. With a profile that leaves out the latched last-cycle
	// counter, it is a device whose counter numbers the running cycle and
	// whose result register holds the last finished verdict
	// (cycle_end: next_cycle_starts).
	InstantFinish bool
}

// Simulator runs the devices and their servers.
type Simulator struct {
	opts  Options
	log   *slog.Logger
	units []*unit
	bank  *Bank
	addrs []string // TCP listen addresses, chosen in New
	epoch time.Time

	ran     sync.Once
	updates []update
	clockNs atomic.Int64 // simulated time since New, for goroutines that do not own the devices
	owed    float64      // simulated seconds not yet stepped
}

// unit is one device with its schedule.
type unit struct {
	n       int
	dev     *autoclave.Device
	plan    scenario.Plan
	entry   int     // index into plan.Cycles
	done    int     // runs of that entry so far
	nextAt  float64 // device clock at which the next cycle starts
	idleFor bool    // the plan is exhausted
	faults  []string
	printer *printer
}

// New checks the options, builds the devices and reserves the TCP ports.
func New(opts Options) (*Simulator, error) {
	if opts.Devices == 0 {
		opts.Devices = 1
	}
	if opts.Devices < 0 || opts.Devices > 247 {
		return nil, fmt.Errorf("sim: Devices = %d, want 1 to 247 (Modbus unit ids)", opts.Devices)
	}
	if opts.Speed == 0 {
		opts.Speed = 1
	}
	if opts.Speed < 0 || math.IsNaN(opts.Speed) || math.IsInf(opts.Speed, 0) || opts.Speed > 100000 {
		return nil, fmt.Errorf("sim: Speed = %v, want a positive number of simulated seconds per real second, at most 100000", opts.Speed)
	}
	if opts.Tick <= 0 {
		// The registers change every simulated second, as a device's do,
		// so a poller fast enough sees every second (a gateway's check
		// judges samples up to 2.5 s apart); up to 100× that is one tick a
		// simulated second, above it a tick every 10 ms of real time.
		opts.Tick = time.Duration(math.Max(0.01, math.Min(0.1, 1/opts.Speed)) * float64(time.Second))
	}
	if opts.Scenario == nil {
		opts.Scenario = scenario.Default()
	}
	if m := opts.Scenario.MaxDevice(); m > opts.Devices {
		return nil, fmt.Errorf("sim: scenario %s plans device %d but only %d devices run (use --devices %d)", opts.Scenario.Source, m, opts.Devices, m)
	}
	switch opts.PrinterStyle {
	case "", "en", "de", "stream":
	default:
		return nil, fmt.Errorf("sim: PrinterStyle = %q, want en, de or stream", opts.PrinterStyle)
	}
	if opts.PrinterBaud == 0 {
		opts.PrinterBaud = 9600
	}
	if opts.PrinterBaud < 0 {
		return nil, fmt.Errorf("sim: PrinterBaud = %d, want a positive line speed", opts.PrinterBaud)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Simulator{opts: opts, log: log, bank: NewBank(opts.Devices), epoch: opts.Epoch}
	s.bank.shuffle = opts.Shuffle
	if s.epoch.IsZero() {
		s.epoch = time.Now().UTC().Truncate(time.Second)
	}
	seed := uint64(opts.Seed)
	for n := 1; n <= opts.Devices; n++ {
		plan := opts.Scenario.PlanFor(n)
		u := &unit{n: n, plan: plan,
			dev: autoclave.New(autoclave.Config{Seed: seed, Stream: uint64(n), CounterStart: plan.CounterStart, InstantFinish: opts.InstantFinish})}
		// Device 1 starts soon; the others are spread over one pause (at
		// most 10 min) so that many devices do not run in lockstep. A
		// first cycle with a pause of its own starts after exactly that
		// pause: a test can give a gateway time to reach every device.
		u.nextAt = 10
		if n > 1 {
			rng := rand.New(rand.NewPCG(seed, uint64(n)<<32))
			u.nextAt += rng.Float64() * math.Min(600, math.Max(60, plan.Pause.Seconds()))
		}
		if len(plan.Cycles) > 0 && plan.Cycles[0].Pause > 0 {
			u.nextAt = plan.Cycles[0].Pause.Seconds()
		}
		if len(plan.Cycles) == 0 {
			u.idleFor = true
		}
		s.units = append(s.units, u)
	}
	s.updates = make([]update, opts.Devices)
	s.publish()
	if opts.ModbusTCP != "" {
		addrs, err := reserveAddrs(opts.ModbusTCP, opts.PortPerDevice, opts.Devices)
		if err != nil {
			return nil, err
		}
		s.addrs = addrs
	}
	return s, nil
}

// reserveAddrs picks the listen addresses: the server library does not
// report the port it bound, so a port 0 is resolved to a free port here.
func reserveAddrs(addr string, perDevice bool, n int) ([]string, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("sim: ModbusTCP %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("sim: ModbusTCP %q: port %q is not 0–65535", addr, portText)
	}
	count := 1
	if perDevice {
		count = n
	}
	if port != 0 && port+count-1 > 65535 {
		return nil, fmt.Errorf("sim: ModbusTCP %q: %d ports from %d run past 65535", addr, count, port)
	}
	var addrs []string
	// The listeners of port 0 stay open until every port is picked: closed
	// at once, the kernel may hand the same port out again to the next
	// device.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range count {
		p := port + i
		if port == 0 {
			l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				return nil, fmt.Errorf("sim: find a free port on %s: %w", host, err)
			}
			held = append(held, l)
			p = l.Addr().(*net.TCPAddr).Port
		}
		addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(p)))
	}
	return addrs, nil
}

// Addrs returns the Modbus TCP listen addresses: one (units 1..N), or one
// per device in device order when PortPerDevice.
func (s *Simulator) Addrs() []string { return append([]string(nil), s.addrs...) }

// Bank returns the register bank every server reads.
func (s *Simulator) Bank() *Bank { return s.bank }

// Run serves until ctx is done, then stops everything it started and
// returns nil. It fails at once if a port or pseudo-terminal cannot be
// opened. A Simulator runs once.
func (s *Simulator) Run(ctx context.Context) error {
	first := false
	s.ran.Do(func() { first = true })
	if !first {
		return errors.New("sim: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	servers, err := s.startTCP(ctx)
	if err != nil {
		return err
	}
	defer servers.stopAll()
	for i, a := range s.addrs {
		lo, hi := 1, s.opts.Devices
		if s.opts.PortPerDevice {
			lo, hi = i+1, i+1
		}
		s.consolef("modbus-tcp listening on %s units %d-%d\n", a, lo, hi)
		s.log.Info("modbus-tcp listening", "addr", a, "first_unit", lo, "last_unit", hi)
	}
	if err := s.startRTU(ctx, &wg); err != nil {
		return err
	}
	if err := s.startPrinters(ctx, &wg); err != nil {
		return err
	}

	ticker := time.NewTicker(s.opts.Tick)
	defer ticker.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-ticker.C:
			// A process that was suspended does not replay hours at once.
			real := min(now.Sub(last), 5*time.Second)
			last = now
			s.Advance(real.Seconds() * s.opts.Speed)
			servers.follow(s.units)
		}
	}
}

// Advance moves the simulation on by simulated seconds. Devices are
// stepped in fixed one-second steps (a remainder is carried to the next
// call), so a run depends only on the seed and the scenario, not on how the
// wall clock sliced it. It starts cycles as the scenario says, reports
// finished cycles and publishes the register images. Run calls it from its
// ticker; tests may call it directly instead of Run (not both).
func (s *Simulator) Advance(simSeconds float64) {
	if simSeconds <= 0 {
		return
	}
	s.owed += simSeconds
	stepped := false
	for s.owed >= 1 {
		s.owed--
		stepped = true
		for _, u := range s.units {
			s.maybeStart(u)
			if rep := u.dev.Step(1); rep != nil {
				s.finished(u, rep)
			}
		}
		s.clockNs.Add(int64(time.Second))
	}
	if stepped {
		s.publish()
	}
}

// deviceTime is the device clocks' current time of day.
func (s *Simulator) deviceTime() time.Time {
	return s.epoch.Add(time.Duration(s.clockNs.Load()))
}

func (s *Simulator) maybeStart(u *unit) {
	if u.idleFor || u.dev.Busy() || u.dev.Clock() < u.nextAt {
		return
	}
	c := u.plan.Cycles[u.entry]
	u.faults = u.faults[:0]
	for _, f := range c.Faults {
		u.faults = append(u.faults, string(f.Kind))
	}
	if err := u.dev.Start(c.Program, c.Faults); err != nil {
		// Faults were validated when the scenario was parsed.
		s.log.Error("cycle not started", "device", u.n, "program", c.Program.Name, "err", err)
		u.idleFor = true
		return
	}
	u.done++
	if u.done >= c.Count {
		u.done = 0
		u.entry++
		if u.entry >= len(u.plan.Cycles) {
			u.entry = 0
			if !u.plan.Repeat {
				u.idleFor = true
			}
		}
	}
}

func (s *Simulator) finished(u *unit, rep *autoclave.Report) {
	pause := u.plan.Pause
	if !u.idleFor {
		if p := u.plan.Cycles[u.entry].Pause; p > 0 {
			pause = p
		}
	}
	u.nextAt = u.dev.Clock() + pause.Seconds()
	t := s.truth(u, rep)
	s.consolef("cycle finished device=%d counter=%d program=%s result=%s\n", u.n, rep.Counter, rep.Program.Name, rep.Result)
	s.log.Info("cycle finished", "device", u.n, "counter", rep.Counter, "program", rep.Program.Name,
		"result", rep.Result.String(), "alarm", rep.AlarmCode, "faults", strings.Join(t.Faults, ","))
	if s.opts.Truth != nil {
		line, err := json.Marshal(t)
		if err == nil {
			_, err = s.opts.Truth.Write(append(line, '\n'))
		}
		if err != nil {
			s.log.Error("truth line not written", "device", u.n, "counter", rep.Counter, "err", err)
		} else if f, ok := s.opts.Truth.(interface{ Flush() error }); ok {
			f.Flush()
		}
	}
	if u.printer != nil {
		u.printer.enqueue(s.printCycle(u, rep))
	}
}

func (s *Simulator) consolef(format string, args ...any) {
	if s.opts.Console != nil {
		fmt.Fprintf(s.opts.Console, format, args...)
	}
}

// at converts a device clock reading to its wall-clock time.
func (s *Simulator) at(clockS float64) time.Time {
	return s.epoch.Add(time.Duration(clockS * float64(time.Second))).UTC().Round(time.Millisecond)
}

// publish copies every device's registers, power and communication fault
// into the bank under one lock.
func (s *Simulator) publish() {
	for i, u := range s.units {
		up := &s.updates[i]
		u.dev.Registers(&up.image)
		up.powered = u.dev.Powered()
		up.comm = u.activeComm()
	}
	s.bank.publish(s.updates)
}

func (u *unit) activeComm() *scenario.CommFault {
	now := time.Duration(u.dev.Clock() * float64(time.Second))
	for i := range u.plan.Comm {
		c := &u.plan.Comm[i]
		if now >= c.At && now < c.At+c.Duration {
			return c
		}
	}
	return nil
}
