package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/sterigate/sterigate/protocol/steam"
	"github.com/sterigate/sterigate/sim/rtuslave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// The example fault scenario, driven without a wall clock: every fault
// ends its cycle with the result and alarm the register map documents, and
// the truth file says what really happened.
func TestFaultScenarioTruth(t *testing.T) {
	sc, err := scenario.Load("scenarios/faults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	truth := &syncBuffer{}
	s, err := New(Options{Devices: 6, Seed: 11, Scenario: sc, Truth: truth})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{sim: s, truth: truth}
	for range 4 * 3600 / 60 {
		s.Advance(60)
	}
	type key struct {
		device int
		fault  string
	}
	got := map[key]Truth{}
	for _, l := range r.truthLines(t) {
		k := key{l.Device, l.Fault}
		if _, seen := got[k]; !seen {
			got[k] = l
		}
	}
	want := []struct {
		device        int
		fault         string
		result        string
		alarm         uint16
		truthVerdict  string
		satAbove2K    bool
		plateauInBand bool
	}{
		{1, "air_leak", "failed", 91, "failed", false, false}, // the leak test (first)
		{1, "ncg", "failed", 60, "failed", true, true},
		{1, "", "passed", 0, "passed", false, true},
		{2, "temp_sag", "failed", 84, "failed", false, false},
		{2, "overshoot", "failed", 66, "failed", false, false},
		{3, "heating_timeout", "failed", 62, "failed", false, false},
		{3, "door_seal", "failed", 72, "failed", false, false},
		{3, "operator_abort", "aborted", 93, "failed", false, false},
		{4, "power_loss", "aborted", 92, "failed", false, false},
		{4, "sensor_stuck", "failed", 83, "failed", false, false},
		{4, "sensor_out_of_range", "failed", 85, "failed", false, false},
		{5, "lying", "passed", 0, "failed", false, false},
		{6, "", "passed", 0, "passed", false, true},
	}
	for _, w := range want {
		l, ok := got[key{w.device, w.fault}]
		if !ok {
			t.Errorf("device %d never finished a cycle with fault %q", w.device, w.fault)
			continue
		}
		if l.Result != w.result || l.AlarmCode != w.alarm || l.TruthVerdict != w.truthVerdict {
			t.Errorf("device %d %q: result %s alarm %d truth %s, want %s %d %s", w.device, w.fault, l.Result, l.AlarmCode, l.TruthVerdict, w.result, w.alarm, w.truthVerdict)
		}
		if w.satAbove2K && l.MaxSatDeviationK < 2 {
			t.Errorf("device %d %q: T only %.2f K below Tsat(p)", w.device, w.fault, l.MaxSatDeviationK)
		}
		if w.plateauInBand && (l.PlateauMinC == nil || *l.PlateauMinC < 134 || *l.PlateauMaxC > 137) {
			t.Errorf("device %d %q: plateau %v..%v", w.device, w.fault, l.PlateauMinC, l.PlateauMaxC)
		}
		if w.fault == "" && (l.MaxSatDeviationK > 2 || l.MaxSatDeviationK < -2) {
			t.Errorf("device %d healthy: |T−Tsat(p)| %.2f K", w.device, l.MaxSatDeviationK)
		}
	}
	// Healthy plateau pressure is the saturation pressure of its temperature.
	l := got[key{6, ""}]
	if lo, hi := steam.PressureKPa(*l.PlateauMinC)-5, steam.PressureKPa(*l.PlateauMaxC)+5; *l.PlateauMinKPa < lo || *l.PlateauMaxKPa > hi {
		t.Errorf("plateau %.1f..%.1f kPa for %.2f..%.2f °C", *l.PlateauMinKPa, *l.PlateauMaxKPa, *l.PlateauMinC, *l.PlateauMaxC)
	}
	leak := got[key{1, "air_leak"}]
	if leak.LeakRateKPaMin == nil || *leak.LeakRateKPaMin <= 0.13 {
		t.Errorf("leak test with an air leak: rate %v", leak.LeakRateKPaMin)
	}
}

// A device on its own port that loses power closes the port (connection
// refused), then comes back with the cycle aborted (alarm 92).
func TestPowerLossClosesItsPort(t *testing.T) {
	// A long pause keeps device 2 stopped on its fault while the test reads
	// it, however slow the machine.
	sc := mustParse(t, `
pause: 10h
devices:
  - device: default
    cycles: [{program: 134-porous}]
  - device: 2
    cycles:
      - program: 134-porous
        faults: [{kind: power_loss, phase: heating, after: 10s, duration: 20m}]
`)
	r := start(t, Options{Devices: 2, Speed: 600, Seed: 5, Scenario: sc, PortPerDevice: true})
	addrs := r.sim.Addrs()
	if len(addrs) != 2 || !strings.Contains(r.console.String(), addrs[1]+" units 2-2") {
		t.Fatalf("addresses %v, console %q", addrs, r.console.String())
	}
	dial := func(a string) error {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	waitFor(t, "device 2's port to close", 20*time.Second, func() bool { return dial(addrs[1]) != nil })
	if err := dial(addrs[0]); err != nil {
		t.Errorf("device 1's port closed with device 2's: %v", err)
	}
	waitFor(t, "device 2's port to reopen", 20*time.Second, func() bool { return dial(addrs[1]) == nil })
	c := client(t, addrs[1], 1)
	regs, err := c.ReadRegisters(0, 24, modbus.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	if regs[18] != 3 || regs[20] != 92 || regs[10] != 2 || regs[8]&(1<<8) == 0 || regs[17] != 1 {
		t.Errorf("after power returns: last result %d alarm %d state %d bits %b last cycle %d, want 3 92 2 bit8 1", regs[18], regs[20], regs[10], regs[8], regs[17])
	}
}

func TestTCPCommunicationFaults(t *testing.T) {
	sc := mustParse(t, `
devices:
  - device: 1
    comm: [{kind: slow, at: 0s, duration: 1000h, delay: 300ms}]
  - device: 2
    comm: [{kind: exception, at: 0s, duration: 1000h, exception: 6}]
  - device: 3
    comm: [{kind: drop, at: 0s, duration: 1000h, every: 2}]
  - device: 4
    comm: [{kind: silence, at: 0s, duration: 1000h}]
  - device: 5
    comm: [{kind: silence, at: 1000h, duration: 1h}]
`)
	r := start(t, Options{Devices: 5, Speed: 1, Scenario: sc})
	addr := r.sim.Addrs()[0]

	c1 := client(t, addr, 1)
	began := time.Now()
	if _, err := c1.ReadRegisters(0, 24, modbus.HOLDING_REGISTER); err != nil {
		t.Errorf("slow device: %v", err)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("slow device answered in %v, want ≥ 300 ms", took)
	}

	c2 := client(t, addr, 2)
	if _, err := c2.ReadRegisters(0, 24, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrServerDeviceBusy) {
		t.Errorf("exception device: %v, want server device busy", err)
	}

	// drop: every second request closes the connection unanswered.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := []byte{0, 1, 0, 0, 0, 6, 3, 3, 0, 0, 0, 1}
	reply := make([]byte, 64)
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(reply); err != nil || n != 11 {
		t.Fatalf("first request to the dropping device: %d bytes, %v", n, err)
	}
	conn.Write(req)
	if _, err := conn.Read(reply); !errors.Is(err, io.EOF) {
		t.Errorf("second request: %v, want the connection closed", err)
	}

	// silence: nothing comes back within a poll timeout.
	c4, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c4.Open(); err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	c4.SetUnitId(4)
	if _, err := c4.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Errorf("silent device: %v, want a timeout", err)
	}
	c5 := client(t, addr, 5)
	if _, err := c5.ReadRegisters(0, 24, modbus.INPUT_REGISTER); err != nil {
		t.Errorf("device 5 (fault scheduled later) failed now: %v", err)
	}
}

// The RTU bus on a pseudo-terminal, read with mbpoll like a gateway would.
func TestRTUWithMbpoll(t *testing.T) {
	if _, err := execLookPath("mbpoll"); err != nil {
		t.Skip("mbpoll not installed")
	}
	link := t.TempDir() + "/rtu"
	r := start(t, Options{Devices: 2, Speed: 1, RTU: link})
	waitFor(t, "the RTU line", 5*time.Second, func() bool { return strings.Contains(r.console.String(), "modbus-rtu on "+link) })
	out, err := execOutput("mbpoll", "-m", "rtu", "-a", "2", "-b", "19200", "-P", "none", "-r", "1", "-c", "24", "-t", "3", "-1", "-o", "2", link)
	if err != nil {
		t.Fatalf("mbpoll: %v\n%s", err, out)
	}
	img, _ := r.sim.Bank().Image(2)
	got := parseMbpoll(out)
	if len(got) != 24 {
		t.Fatalf("mbpoll printed %d registers:\n%s", len(got), out)
	}
	// Program, counters and the latched block are stable between the reads;
	// the temperature moves only with noise.
	for _, a := range []int{4, 5, 6, 16, 17, 18, 19} {
		if uint16(got[a]) != img[a] {
			t.Errorf("register %d: mbpoll %d, simulated %d", a, got[a], img[a])
		}
	}
	if tc := float64(int16(uint16(got[0]))) / 10; tc < 20 || tc > 140 || tc-float64(int16(img[0]))/10 > 1 || float64(int16(img[0]))/10-tc > 1 {
		t.Errorf("chamber temperature %.1f °C over RTU, simulated %.1f", tc, float64(int16(img[0]))/10)
	}
	out, _ = execOutput("mbpoll", "-m", "rtu", "-a", "9", "-b", "19200", "-P", "none", "-r", "1", "-c", "1", "-1", "-o", "0.3", link)
	if !strings.Contains(strings.ToLower(out), "timed out") && !strings.Contains(strings.ToLower(out), "timeout") {
		t.Errorf("absent unit 9 answered:\n%s", out)
	}
}

// A finished cycle comes out of the printer port as a printout.
func TestPrinterPrintsFinishedCycles(t *testing.T) {
	link := t.TempDir() + "/printer"
	sc := mustParse(t, "pause: 10m\ndevices:\n  - device: default\n    cycles: [{program: bowie-dick}]\n")
	r := start(t, Options{Devices: 1, Speed: 3000, Scenario: sc, Printer: link, PrinterStyle: "de", PrinterBaud: 115200})
	waitFor(t, "the printer line", 5*time.Second, func() bool { return strings.Contains(r.console.String(), "printer device=1 on "+link) })
	f, err := os.Open(link)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); f.Close() }()
	var text strings.Builder
	sc2 := bufio.NewScanner(f)
	for sc2.Scan() {
		text.WriteString(sc2.Text() + "\n")
		if strings.Contains(sc2.Text(), "Zyklusende") {
			break
		}
	}
	got := text.String()
	if !strings.Contains(got, "Zyklus") || !strings.Contains(got, "Haltezeit") {
		t.Errorf("printout:\n%s", got)
	}
}

// A dead device is absent from the bank (no reply on RTU, exception 11 on
// a shared TCP port) and present again with the aborted cycle latched.
func TestBankHidesADeadDevice(t *testing.T) {
	sc := mustParse(t, `
devices:
  - device: 1
    cycles:
      - program: 134-porous
        faults: [{kind: power_loss, phase: air_removal, after: 1m, duration: 5m}]
`)
	s, err := New(Options{Devices: 1, Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bank()
	var deadFor float64
	for range 3600 {
		s.Advance(1)
		if _, err := b.ReadRegisters(1, 3, 0, 24); err != nil {
			if !errors.Is(err, rtuslave.ErrNoSuchUnit) || b.HasUnit(1) {
				t.Fatalf("dead device: %v, HasUnit %v", err, b.HasUnit(1))
			}
			deadFor++
		} else if deadFor > 0 {
			break
		}
	}
	if deadFor < 299 || deadFor > 301 {
		t.Errorf("device silent for %.0f s, want 300", deadFor)
	}
	regs, _ := b.ReadRegisters(1, 4, 16, 8)
	if regs[1] != 1 || regs[2] != 3 || regs[4] != 92 {
		t.Errorf("latched block after power returned: %v", regs)
	}
	if _, err := b.ReadRegisters(1, 1, 0, 1); !errors.Is(err, rtuslave.ErrIllegalFunction) {
		t.Errorf("function 1: %v", err)
	}
	if _, err := b.ReadRegisters(1, 3, 23, 2); !errors.Is(err, rtuslave.ErrIllegalAddress) {
		t.Errorf("registers 23-24: %v", err)
	}
}

// The Amsco-LS-style stream: one line of values per second.
func TestPrinterStream(t *testing.T) {
	link := t.TempDir() + "/stream"
	r := start(t, Options{Devices: 1, Speed: 1, Printer: link, PrinterStyle: "stream", PrinterLineEnding: "\n"})
	waitFor(t, "the printer line", 5*time.Second, func() bool { return strings.Contains(r.console.String(), "printer device=1 on "+link) })
	f, err := os.Open(link)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); f.Close() }()
	sc := bufio.NewScanner(f)
	line := regexp.MustCompile(`^[S-] \d\d:\d\d:\d\d [AP]M +-?\d+\.\d\d +\d+\.\d +\d+\.\d$`)
	for range 2 {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		if !line.MatchString(sc.Text()) {
			t.Errorf("stream line %q", sc.Text())
		}
	}
}

// The same seed and scenario give the same cycles, however the time is
// sliced (the wall clock slices it differently on every run).
func TestSameSeedSameRun(t *testing.T) {
	run := func(chunk float64) []Truth {
		truth := &syncBuffer{}
		s, err := New(Options{Devices: 3, Seed: 99, Truth: truth, Epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		for elapsed := 0.0; elapsed < 7200; elapsed += chunk {
			s.Advance(chunk)
		}
		lines := (&running{truth: truth}).truthLines(t)
		for i := range lines {
			lines[i].WallEndedAt = time.Time{}
		}
		return lines
	}
	a, b := run(0.37), run(61)
	if len(a) < 6 {
		t.Fatalf("only %d cycles in two hours", len(a))
	}
	n := min(len(a), len(b))
	for i := range n {
		ja, _ := json.Marshal(a[i])
		jb, _ := json.Marshal(b[i])
		if string(ja) != string(jb) {
			t.Errorf("cycle %d differs:\n%s\n%s", i, ja, jb)
		}
	}
}
