package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/sterigate/sterigate/sim/scenario"
)

// syncBuffer is a bytes.Buffer safe for the simulator's writer and the
// test's reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

type running struct {
	sim     *Simulator
	console *syncBuffer
	truth   *syncBuffer
}

// start runs a simulator until the test ends, and waits for its listening line.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	r := &running{console: &syncBuffer{}, truth: &syncBuffer{}}
	opts.Console, opts.Truth = r.console, r.truth
	if opts.ModbusTCP == "" {
		opts.ModbusTCP = "127.0.0.1:0"
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.sim = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
	})
	waitFor(t, "the listening line", 5*time.Second, func() bool {
		return strings.Contains(r.console.String(), "modbus-tcp listening on "+s.Addrs()[len(s.Addrs())-1])
	})
	return r
}

func (r *running) truthLines(t *testing.T) []Truth {
	t.Helper()
	var out []Truth
	sc := bufio.NewScanner(strings.NewReader(r.truth.String()))
	for sc.Scan() {
		var tr Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("truth line %q: %v", sc.Text(), err)
		}
		out = append(out, tr)
	}
	return out
}

func client(t *testing.T, addr string, unit uint8) *modbus.ModbusClient {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	c.SetUnitId(unit)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustParse(t *testing.T, yaml string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Whole cycles over real TCP: the latched block a Modbus master reads
// matches the truth line of the same cycle, for every unit on one port.
func TestCyclesOverTCPMatchTruth(t *testing.T) {
	sc := mustParse(t, "pause: 30s\ndevices:\n  - device: default\n    cycles: [{program: bowie-dick}]\n")
	r := start(t, Options{Devices: 3, Speed: 2000, Seed: 7, Scenario: sc})
	if !strings.Contains(r.console.String(), "units 1-3") {
		t.Errorf("console %q lacks units 1-3", r.console.String())
	}
	waitFor(t, "a finished cycle on each device", 20*time.Second, func() bool {
		seen := map[int]bool{}
		for _, l := range r.truthLines(t) {
			seen[l.Device] = true
		}
		return len(seen) == 3
	})
	for unit := uint8(1); unit <= 3; unit++ {
		c := client(t, r.sim.Addrs()[0], unit)
		for _, typ := range []modbus.RegType{modbus.HOLDING_REGISTER, modbus.INPUT_REGISTER} {
			regs, err := c.ReadRegisters(0, 24, typ)
			if err != nil {
				t.Fatalf("unit %d: %v", unit, err)
			}
			last := uint32(regs[16])<<16 | uint32(regs[17])
			// The truth line is written before the registers change, so
			// reading it after the registers always finds the cycle.
			lines := r.truthLines(t)
			var tr *Truth
			for i := range lines {
				if lines[i].Device == int(unit) && lines[i].Counter == last {
					tr = &lines[i]
				}
			}
			if tr == nil {
				t.Fatalf("unit %d latched cycle %d has no truth line", unit, last)
			}
			if regs[18] != tr.ResultCode || regs[19] != tr.ProgramCode || regs[20] != tr.AlarmCode || float64(regs[23]) != tr.HoldS {
				t.Errorf("unit %d registers 18-23 %v disagree with truth %+v", unit, regs[18:24], tr)
			}
			if got := float64(int16(regs[21])) / 10; tr.ReportedPlateauMinC == nil || got != *tr.ReportedPlateauMinC {
				t.Errorf("unit %d plateau min %.1f, truth reported %v", unit, got, tr.ReportedPlateauMinC)
			}
			if tr.Result != "passed" || tr.Program != "bowie-dick" || *tr.PlateauMinC < 134 || *tr.PlateauMaxC > 137 {
				t.Errorf("unit %d truth %+v", unit, tr)
			}
		}
	}
	if !regexp.MustCompile(`cycle finished device=\d counter=\d+ program=bowie-dick result=passed`).MatchString(r.console.String()) {
		t.Errorf("console lacks cycle lines: %q", r.console.String())
	}
}

func exceptionOf(err error) error {
	for _, e := range []error{modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrServerDeviceBusy, modbus.ErrGWTargetFailedToRespond} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

func TestTCPRefusesWritesAndBadAddresses(t *testing.T) {
	r := start(t, Options{Devices: 2, Speed: 1})
	c := client(t, r.sim.Addrs()[0], 2)
	if _, err := c.ReadRegisters(20, 5, modbus.HOLDING_REGISTER); exceptionOf(err) != modbus.ErrIllegalDataAddress {
		t.Errorf("read 20..24: %v, want illegal data address", err)
	}
	if _, err := c.ReadRegisters(0, 24, modbus.HOLDING_REGISTER); err != nil {
		t.Errorf("read 0..23: %v", err)
	}
	if err := c.WriteRegister(3, 1); exceptionOf(err) != modbus.ErrIllegalFunction {
		t.Errorf("write single: %v, want illegal function", err)
	}
	if err := c.WriteRegisters(0, []uint16{1, 2}); exceptionOf(err) != modbus.ErrIllegalFunction {
		t.Errorf("write multiple: %v, want illegal function", err)
	}
	if err := c.WriteCoil(0, true); exceptionOf(err) != modbus.ErrIllegalFunction {
		t.Errorf("write coil: %v, want illegal function", err)
	}
	if n := r.sim.Bank().WritesRefused(2); n != 3 {
		t.Errorf("unit 2 counted %d refused writes, want 3", n)
	}
	if n := r.sim.Bank().WritesRefused(1); n != 0 {
		t.Errorf("unit 1 counted %d refused writes, want 0", n)
	}
	c9 := client(t, r.sim.Addrs()[0], 9)
	if _, err := c9.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); exceptionOf(err) != modbus.ErrGWTargetFailedToRespond {
		t.Errorf("unit 9 of 2: %v, want gateway target failed to respond", err)
	}
}

// mbpoll is a real Modbus master; its decoding of the documented registers
// must give the simulated values.
func TestMbpollReadsTCP(t *testing.T) {
	if _, err := exec.LookPath("mbpoll"); err != nil {
		t.Skip("mbpoll not installed (scripts/test installs it)")
	}
	s, err := New(Options{Devices: 1, Seed: 3, ModbusTCP: "127.0.0.1:0", Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Put the device on its plateau and freeze it there: with an hour's
	// tick the image does not change while mbpoll reads it.
	for s.units[0].dev.Phase() != 5 {
		s.Advance(1)
	}
	s.Advance(30)
	console := &syncBuffer{}
	s.opts.Console = console
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "listening", 5*time.Second, func() bool { return strings.Contains(console.String(), "listening") })
	img, _ := s.Bank().Image(1)
	_, port, _ := net.SplitHostPort(s.Addrs()[0])

	for _, typ := range []string{"4", "3"} {
		out, err := exec.Command("mbpoll", "-m", "tcp", "-a", "1", "-r", "1", "-c", "24", "-t", typ, "-1", "-p", port, "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("mbpoll -t %s: %v\n%s", typ, err, out)
		}
		got := parseMbpoll(string(out))
		if len(got) != 24 {
			t.Fatalf("mbpoll printed %d registers:\n%s", len(got), out)
		}
		tempC := float64(int16(uint16(got[0]))) / 10
		pKPa := float64(uint16(got[2])) / 10
		if tempC != float64(int16(img[0]))/10 || tempC < 134 || tempC > 137 {
			t.Errorf("chamber temperature %.1f °C, simulated %.1f", tempC, float64(int16(img[0]))/10)
		}
		if pKPa < 300 || pKPa > 335 || uint16(got[2]) != img[2] {
			t.Errorf("pressure %.1f kPa, simulated %d", pKPa, img[2])
		}
		if got[3] != 5 || got[4] != 1 || got[10] != 1 || got[5]<<16|got[6] != 1 {
			t.Errorf("phase %d program %d state %d counter %d, want sterilizing, 134-porous, running, 1", got[3], got[4], got[10], got[5]<<16|got[6])
		}
		if got[11] == 0 || got[11] > 180 || uint16(got[11]) != img[11] {
			t.Errorf("hold remaining %d s, simulated %d", got[11], img[11])
		}
	}
	out, _ := exec.Command("mbpoll", "-m", "tcp", "-a", "1", "-r", "25", "-c", "1", "-1", "-p", port, "127.0.0.1").CombinedOutput()
	if !strings.Contains(strings.ToLower(string(out)), "illegal data address") {
		t.Errorf("register 25 via mbpoll: %s", out)
	}
}

// parseMbpoll reads mbpoll's "[ref]: value" lines into zero-based addresses.
func parseMbpoll(out string) map[int]int {
	got := map[int]int{}
	for _, m := range regexp.MustCompile(`(?m)^\[(\d+)\]:\s+(-?\d+)`).FindAllStringSubmatch(out, -1) {
		ref, _ := strconv.Atoi(m[1])
		v, _ := strconv.Atoi(m[2])
		got[ref-1] = v // mbpoll numbers registers from 1
	}
	return got
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// A first cycle with a pause of its own starts after exactly that pause,
// on every device: a gateway test starts the simulator, then the gateway,
// and no cycle begins before the gateway can see it.
func TestFirstCyclePause(t *testing.T) {
	sc := mustParse(t, "pause: 30s\ndevices:\n  - device: default\n    repeat: false\n    cycles: [{program: bowie-dick, pause: 2m}]\n")
	epoch := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	r := start(t, Options{Devices: 3, Speed: 2000, Seed: 7, Scenario: sc, Epoch: epoch})
	waitFor(t, "a finished cycle on each device", 20*time.Second, func() bool { return len(r.truthLines(t)) == 3 })
	for _, l := range r.truthLines(t) {
		if want := epoch.Add(2 * time.Minute); !l.StartedAt.Equal(want) {
			t.Errorf("device %d started at %s, want %s", l.Device, l.StartedAt, want)
		}
	}
}
