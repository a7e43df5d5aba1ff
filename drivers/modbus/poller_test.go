package modbus

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTCPLink builds a link over a Modbus TCP transport to addr.
func newTCPLink(t testing.TB, addr string, timeout time.Duration, cfg LinkConfig, sink protocol.Sink, store protocol.StateStore) *Link {
	t.Helper()
	tr, err := NewTCPTransport(TCPConfig{Address: addr, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name == "" {
		cfg.Name = "modbus-tcp " + addr
	}
	for i := range cfg.Units {
		if cfg.Units[i].Source == "" {
			cfg.Units[i].Source = "modbus-tcp"
		}
	}
	l, err := NewLink(cfg, tr, sink, store, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runPoller runs l until the test ends and waits for it to stop.
func runPoller(t *testing.T, l *Link) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Run(ctx); err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// settle waits until the poller has read the image at least twice more, so
// the state just set has certainly been observed.
func settle(t *testing.T, img *registerImage) {
	t.Helper()
	start := img.readCount()
	eventually(t, 5*time.Second, "the poller reads the device", func() error {
		if img.readCount() < start+2 {
			return errNotYet
		}
		return nil
	})
}

// settleStaged waits until a staged change was applied and then a whole
// poll of blocks reads ran after it.
func settleStaged(t *testing.T, img *registerImage, blocks int) {
	t.Helper()
	eventually(t, 5*time.Second, "the poller reads the staged state", func() error {
		if applied, at, reads := img.stagedState(); !applied || reads < at+2*blocks {
			return errNotYet
		}
		return nil
	})
}

// simState writes the simulator's registers (docs/simulator.md).
type simState struct {
	tempC, kPa            float64
	phase, program        uint16
	counter, last         uint32
	result, alarms, alarm uint16
}

func (s simState) apply(h []uint16) {
	h[0] = uint16(int16(math.Round(s.tempC * 10)))
	h[1] = uint16(int16(math.Round(s.tempC * 10)))
	h[2] = uint16(math.Round(s.kPa * 10))
	h[3], h[4] = s.phase, s.program
	h[5], h[6] = uint16(s.counter>>16), uint16(s.counter)
	h[8], h[9] = s.alarms, s.alarm
	h[16], h[17] = uint16(s.last>>16), uint16(s.last)
	h[18], h[19] = s.result, s.program
}

// TestSimulatorCycleOverRealModbusTCP: a real Modbus TCP server serves the
// simulator's register map through a whole 134 °C cycle; the poller, with
// the built-in profile, delivers one correct record to the sink.
func TestSimulatorCycleOverRealModbusTCP(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(0)
	st := simState{tempC: 22, kPa: 101.3, counter: 65535, last: 65535, result: 1, program: 1}
	img.set(func(h, _ []uint16) { st.apply(h) })
	startServer(t, addr, img)
	prof, _ := profile.Builtin("sim-autoclave")
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	p := newTCPLink(t, addr, time.Second, LinkConfig{
		Units: []UnitConfig{{Device: "autoclave-1", Unit: 1, Profile: prof, PollInterval: 5 * time.Millisecond}},
	}, sink, store)
	runPoller(t, p)
	settle(t, img)

	st.counter = 65536 // crosses the 16-bit boundary of the 32-bit counter
	steps := []struct {
		phase uint16
		t, p  float64
		bits  uint16
		code  uint16
	}{
		{1, 40, 101.3, 0, 0}, {2, 45, 8.2, 0, 0}, {2, 100, 120, 0, 0}, {2, 42, 7.9, 0, 0},
		{3, 121, 205, 0, 0}, {4, 134.1, 304.2, 0, 0}, {5, 134.4, 306.1, 0, 0}, {5, 136.8, 330.5, 1 << 1, 66},
		{5, 135.0, 313.2, 0, 0}, {6, 105, 120, 0, 0}, {7, 48, 6.8, 0, 0}, {8, 30, 101.3, 0, 0},
	}
	for _, s := range steps {
		st.phase, st.tempC, st.kPa, st.alarms, st.alarm = s.phase, s.t, s.p, s.bits, s.code
		img.set(func(h, _ []uint16) { st.apply(h) })
		settle(t, img)
	}
	st.phase, st.last, st.result = 10, 65536, 1
	img.set(func(h, _ []uint16) { st.apply(h) })
	sink.WaitFor(t, 5*time.Second, "the cycle record", func(s *cycletest.Sink) bool { return len(s.Records()) > 0 })
	settle(t, img)

	recs := sink.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Cycle != 65536 || rec.Device != "autoclave-1" || rec.Source != "modbus-tcp" || !rec.Complete ||
		rec.Result != protocol.ResultPassed || rec.Program != "134-porous" || *rec.ResultCode != 1 {
		t.Fatalf("record header = %+v", rec)
	}
	var names []string
	for _, ph := range rec.Phases {
		names = append(names, string(ph.Name))
	}
	want := "preparation air_removal heating equilibration sterilizing exhaust drying air_admission complete"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("phases = %s\nwant     %s", got, want)
	}
	ster := rec.Phases[4]
	if *ster.TempMinC != 134.4 || *ster.TempMaxC != 136.8 || *ster.PressureMinKPa != 306.1 || *ster.PressureMaxKPa != 330.5 {
		t.Errorf("sterilizing T %v..%v p %v..%v", *ster.TempMinC, *ster.TempMaxC, *ster.PressureMinKPa, *ster.PressureMaxKPa)
	}
	air := rec.Phases[1]
	if *air.PressureMinKPa != 7.9 || *air.PressureMaxKPa != 120 {
		t.Errorf("air removal p %v..%v", *air.PressureMinKPa, *air.PressureMaxKPa)
	}
	if len(rec.Alarms) != 1 || rec.Alarms[0].Code != 66 || rec.Alarms[0].Text != "temperature above band" {
		t.Errorf("alarms = %+v", rec.Alarms)
	}
	if len(rec.Samples) < 2*len(steps) {
		t.Errorf("%d samples for %d settled steps", len(rec.Samples), len(steps))
	}
	for i := 1; i < len(rec.Samples); i++ {
		if rec.Samples[i].At.Before(rec.Samples[i-1].At) {
			t.Fatalf("samples out of order at %d", i)
		}
	}
	if err := rec.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := img.writeCount(); n != 0 {
		t.Fatalf("the device received %d writes", n)
	}
	u := p.Units()[0].Stats()
	if u.GoodPolls == 0 || u.Exceptions+u.Timeouts+u.TransportErrors+u.DecodeErrors != 0 {
		t.Errorf("stats = %+v", u)
	}
}

// TestPollerOutageAndRecovery: the device disappears (server stopped) and
// comes back on the same address. One offline event, then an online event,
// and polling resumes on a new connection.
func TestPollerOutageAndRecovery(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(0)
	st := simState{tempC: 22, kPa: 101.3, counter: 3, last: 3, result: 1, program: 1}
	img.set(func(h, _ []uint16) { st.apply(h) })
	stop := startServer(t, addr, img)
	prof, _ := profile.Builtin("sim-autoclave")
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	p := newTCPLink(t, addr, time.Second, LinkConfig{
		BackoffMax: 40 * time.Millisecond, ReopenMin: 10 * time.Millisecond, ReopenMax: 40 * time.Millisecond,
		Units: []UnitConfig{{Device: "ac", Unit: 1, Profile: prof, PollInterval: 5 * time.Millisecond}},
	}, sink, store)
	runPoller(t, p)
	sink.WaitFor(t, 5*time.Second, "online", func(s *cycletest.Sink) bool { return len(s.EventsOf(protocol.EventOnline)) == 1 })
	stop()
	sink.WaitFor(t, 5*time.Second, "offline", func(s *cycletest.Sink) bool { return len(s.EventsOf(protocol.EventOffline)) == 1 })
	// Several failed attempts, still one offline event.
	eventually(t, 5*time.Second, "retries during the outage", func() error {
		if s := p.Units()[0].Stats(); s.TransportErrors+s.Timeouts < 3 {
			return errNotYet
		}
		return nil
	})
	img2 := newImage(0)
	img2.set(func(h, _ []uint16) { st.apply(h) })
	startServer(t, addr, img2)
	sink.WaitFor(t, 5*time.Second, "online again", func(s *cycletest.Sink) bool { return len(s.EventsOf(protocol.EventOnline)) == 2 })
	settle(t, img2)
	if n := len(sink.EventsOf(protocol.EventOffline)); n != 1 {
		t.Errorf("%d offline events for one outage", n)
	}
	if s := p.Stats(); s.Opens < 2 || s.LinkErrors == 0 {
		t.Errorf("link stats %+v", s)
	}
}

func TestProfileAddressErrorIsAnExceptionNotAnOutage(t *testing.T) {
	addr := freeAddr(t)
	startServer(t, addr, newImage(0))
	prof, err := profile.Parse("wrong.yaml", []byte(`
fields:
  t: {address: 0}
  p: {address: 1}
  c: {address: 30, type: u32}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
read: {max_gap: 0}
cycle_end: {on: counter_change}
`))
	if err != nil {
		t.Fatal(err)
	}
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	u, err := NewUnit(UnitConfig{Device: "x", Unit: 1, Profile: prof}, sink, store, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	tr := openTCP(t, addr, time.Second)
	err = u.Poll(context.Background(), tr)
	if AsException(err) == nil || IsUnreachable(err) || !strings.Contains(err.Error(), "address 30 count 2") {
		t.Fatalf("err = %v", err)
	}
	if s := u.Stats(); s.Exceptions != 1 || s.GoodPolls != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// --- a device with a layout the built-in profile does not use ---

// otherVendorProfile: input registers, f32 temperature in kelvin with the
// words swapped (CDAB), f32 pressure in bar gauge, the cycle counter low
// word first (CDAB), the latched last cycle fully little-endian (DCBA),
// letter codes for results, hex phase codes, an alarm code register.
const otherVendorProfile = `
name: other-vendor
description: test device, nothing like the simulator
read: {max_gap: 4}
fields:
  temp_k:     {function: 4, address: 0, type: f32, order: CDAB, offset: -273.15, unit: "°C"}
  press_barg: {function: 4, address: 2, type: f32, order: ABCD, scale: 100, offset: 101.325, unit: kPa abs}
  status:     {function: 4, address: 10, type: u16}
  prog:       {function: 4, address: 11, type: u16}
  counter:    {function: 4, address: 40, type: u32, order: CDAB}
  last:       {function: 4, address: 44, type: u32, order: DCBA}
  verdict:    {function: 4, address: 46, type: u16}
  fault:      {function: 4, address: 47, type: i16}
roles:
  chamber_temperature: temp_k
  chamber_pressure: press_barg
  phase: status
  program: prog
  cycle_counter: counter
  last_cycle: last
  last_result: verdict
  alarm_code: fault
phases: {0x10: idle, 0x21: air_removal, 0x22: heating, 0x30: sterilizing, 0x40: drying, 0x50: complete}
programs: {17: B-134-wrapped}
results: {0x50: passed, 0x46: failed, 0x41: aborted}
alarm_texts: {501: door not locked}
cycle_end: {on: last_cycle_change}
`

type otherDevice struct {
	tempK, barG    float32
	status, prog   uint16
	counter, last  uint32
	verdict, fault uint16
}

func (d otherDevice) apply(in []uint16) {
	tk := math.Float32bits(d.tempK)
	in[0], in[1] = uint16(tk), uint16(tk>>16) // CDAB: low word first
	pb := math.Float32bits(d.barG)
	in[2], in[3] = uint16(pb>>16), uint16(pb)
	in[10], in[11] = d.status, d.prog
	in[40], in[41] = uint16(d.counter), uint16(d.counter>>16)
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], d.last) // DCBA on the wire
	in[44], in[45] = binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
	in[46], in[47] = d.verdict, d.fault
}

func TestNewProfileForAnUnseenLayout(t *testing.T) {
	prof, err := profile.Parse("other-vendor.yaml", []byte(otherVendorProfile))
	if err != nil {
		t.Fatal(err)
	}
	if len(prof.Blocks) != 3 {
		t.Fatalf("blocks = %+v, want 3 reads", prof.Blocks)
	}
	addr := freeAddr(t)
	img := &registerImage{holding: make([]uint16, 8), input: make([]uint16, 64)}
	dev := otherDevice{tempK: 294.15, barG: 0, status: 0x10, prog: 17, counter: 131071, last: 131071, verdict: 0x50}
	img.set(func(_, in []uint16) { dev.apply(in) })
	startServer(t, addr, img)
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	p := newTCPLink(t, addr, 0, LinkConfig{
		Units: []UnitConfig{{Device: "ward-b-steri", Unit: 3, Profile: prof, PollInterval: 5 * time.Millisecond}},
	}, sink, store)
	runPoller(t, p)
	settle(t, img)
	dev.counter = 131072
	img.mu.Lock()
	img.pollStart = prof.Blocks[0].Start
	img.mu.Unlock()
	for _, s := range []struct {
		status uint16
		k, bar float32
		fault  uint16
	}{
		{0x21, 313.15, -0.93, 0}, {0x22, 394.15, 1.0, 0}, {0x30, 407.35, 2.03, 0}, {0x30, 407.75, 2.07, 501}, {0x40, 330.15, -0.95, 0},
	} {
		dev.status, dev.tempK, dev.barG, dev.fault = s.status, s.k, s.bar, s.fault
		d := dev
		img.stage(func(_, in []uint16) { d.apply(in) })
		settleStaged(t, img, len(prof.Blocks))
	}
	dev.status, dev.last, dev.verdict = 0x50, 131072, 0x46
	img.stage(func(_, in []uint16) { dev.apply(in) })
	sink.WaitFor(t, 5*time.Second, "the record", func(s *cycletest.Sink) bool { return len(s.Records()) > 0 })
	rec := sink.Records()[0]
	if rec.Cycle != 131072 || rec.Result != protocol.ResultFailed || *rec.ResultCode != 0x46 || rec.Program != "B-134-wrapped" || !rec.Complete {
		t.Fatalf("record = %+v", rec)
	}
	ster := rec.Phases[2]
	if ster.Name != protocol.PhaseSterilizing {
		t.Fatalf("phases = %+v", rec.Phases)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.01 }
	if !near(*ster.TempMinC, 134.2) || !near(*ster.TempMaxC, 134.6) || !near(*ster.PressureMinKPa, 304.325) || !near(*ster.PressureMaxKPa, 308.325) {
		t.Errorf("sterilizing T %v..%v °C p %v..%v kPa abs", *ster.TempMinC, *ster.TempMaxC, *ster.PressureMinKPa, *ster.PressureMaxKPa)
	}
	if air := rec.Phases[0]; air.Name != protocol.PhaseAirRemoval || !near(*air.PressureMinKPa, 8.325) || !near(*air.TempMinC, 40) {
		t.Errorf("air removal = %+v", air)
	}
	if len(rec.Alarms) != 1 || rec.Alarms[0].Code != 501 || rec.Alarms[0].Text != "door not locked" {
		t.Errorf("alarms = %+v", rec.Alarms)
	}
}

// TestPollerRestartMidCycleGivesOneRecord: the gateway stops in the middle
// of a cycle (its state saved through the StateStore after every poll) and
// a new poller on the same store finishes the same cycle: one record, the
// same counter, samples from both runs.
func TestPollerRestartMidCycleGivesOneRecord(t *testing.T) {
	addr := freeAddr(t)
	img := newImage(0)
	st := simState{tempC: 22, kPa: 101.3, counter: 9, last: 9, result: 1, program: 2}
	img.set(func(h, _ []uint16) { st.apply(h) })
	startServer(t, addr, img)
	prof, _ := profile.Builtin("sim-autoclave")
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	newPoller := func() *Link {
		return newTCPLink(t, addr, 0, LinkConfig{
			Units: []UnitConfig{{Device: "ac", Unit: 1, Profile: prof, PollInterval: 5 * time.Millisecond}}}, sink, store)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := newPoller()
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	settle(t, img)
	st.counter, st.phase, st.tempC, st.kPa = 10, 2, 50, 9
	img.set(func(h, _ []uint16) { st.apply(h) })
	settle(t, img)
	st.phase, st.tempC, st.kPa = 5, 134.5, 306
	img.set(func(h, _ []uint16) { st.apply(h) })
	settle(t, img)
	cancel()
	<-done
	if n := first.Units()[0].Stats().GoodPolls; n < 4 {
		t.Fatalf("first run polled %d times", n)
	}
	if got := first.Units()[0].Status(); got.State != protocol.DeviceOnline || got.Phase != protocol.PhaseSterilizing || got.Cycle != 10 || got.Program != "134-prion" {
		t.Errorf("status = %+v", got)
	}

	runPoller(t, newPoller())
	settle(t, img)
	st.phase, st.last, st.result = 10, 10, 1
	img.set(func(h, _ []uint16) { st.apply(h) })
	sink.WaitFor(t, 5*time.Second, "the record", func(s *cycletest.Sink) bool { return len(s.Records()) > 0 })
	settle(t, img)
	recs := sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 10 || recs[0].Program != "134-prion" || recs[0].Result != protocol.ResultPassed {
		t.Fatalf("records = %+v", recs)
	}
	var names []string
	for _, ph := range recs[0].Phases {
		names = append(names, string(ph.Name))
	}
	if got := strings.Join(names, " "); got != "air_removal sterilizing complete" {
		t.Errorf("phases = %s", got)
	}
	if !recs[0].Complete {
		t.Errorf("a restart of a few milliseconds made the record incomplete")
	}
}

// BenchmarkPollOverLoopback: one full poll (one 24-register read, decode,
// assemble, save state) against a real Modbus TCP server on loopback.
func BenchmarkPollOverLoopback(b *testing.B) {
	addr := freeAddrB(b)
	img := newImage(0)
	st := simState{tempC: 22, kPa: 101.3, counter: 9, last: 9, result: 1, program: 1}
	img.set(func(h, _ []uint16) { st.apply(h) })
	stop := startServerB(b, addr, img)
	defer stop()
	prof, _ := profile.Builtin("sim-autoclave")
	u, err := NewUnit(UnitConfig{Device: "ac", Unit: 1, Profile: prof}, &cycletest.Sink{}, &cycletest.Store{}, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	tr := openTCP(b, addr, time.Second)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := u.Poll(ctx, tr); err != nil {
			b.Fatal(err)
		}
	}
}

// splitProfile keeps the phase and the measurements in two requests, as
// many devices do (a status table and a measurement table).
const splitProfile = `
name: split-tables
fields:
  phase:         {function: 4, address: 0}
  counter:       {function: 4, address: 1, type: u32}
  last_counter:  {function: 4, address: 3, type: u32}
  last_result:   {function: 4, address: 5}
  chamber_temp:  {function: 4, address: 40, scale: 0.1, unit: "°C"}
  chamber_press: {function: 4, address: 41, scale: 0.1, unit: kPa abs}
roles:
  chamber_temperature: chamber_temp
  chamber_pressure: chamber_press
  phase: phase
  cycle_counter: counter
  last_cycle: last_counter
  last_result: last_result
phases: {0: idle, 1: air_removal, 2: leak_test, 3: air_admission, 4: complete}
results: {1: passed, 2: failed}
cycle_end: {on: last_cycle_change}
`

// TestPhaseEdgeBetweenRequestsIsReadAgain: the device leaves the leak test
// and starts letting air in between the request that reads its phase and
// the one that reads its pressure. The poll must not file the rising
// pressure under leak_test (that would fail a good leak test): it is read
// again, and counted.
func TestPhaseEdgeBetweenRequestsIsReadAgain(t *testing.T) {
	prof, err := profile.Parse("split.yaml", []byte(splitProfile))
	if err != nil {
		t.Fatal(err)
	}
	if len(prof.Blocks) != 2 || prof.PhaseBlock() != 0 {
		t.Fatalf("blocks = %+v, phase block %d: want the phase in the first of two", prof.Blocks, prof.PhaseBlock())
	}
	addr := freeAddr(t)
	img := &registerImage{holding: make([]uint16, 8), input: make([]uint16, 64)}
	state := func(phase, counter, last uint16, tempC, kPa float64) func(_, in []uint16) {
		return func(_, in []uint16) {
			in[0], in[1], in[3], in[5] = phase, counter, last, 1
			in[40], in[41] = uint16(tempC*10), uint16(kPa*10)
		}
	}
	img.set(state(0, 7, 7, 20, 101.3))
	startServer(t, addr, img)
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	l := newTCPLink(t, addr, 0, LinkConfig{
		Units: []UnitConfig{{Device: "split", Unit: 1, Profile: prof, PollInterval: 5 * time.Millisecond}},
	}, sink, store)
	runPoller(t, l)
	settle(t, img)
	// Every change but the edge lands at the start of a poll (the first
	// read, the phase table); the edge lands on the measurement table's
	// read, between the two reads of the phase.
	img.mu.Lock()
	img.pollStart = prof.Blocks[0].Start
	img.mu.Unlock()
	for _, s := range []func(_, in []uint16){state(1, 8, 7, 40, 20), state(2, 8, 7, 40, 6.5), state(2, 8, 7, 40, 6.6)} {
		img.stage(s)
		settleStaged(t, img, len(prof.Blocks)+1)
	}
	img.mu.Lock()
	img.pollStart = prof.Blocks[1].Start
	img.mu.Unlock()
	img.stage(state(3, 8, 7, 40, 60))
	settleStaged(t, img, len(prof.Blocks)+1)
	img.mu.Lock()
	img.pollStart = prof.Blocks[0].Start
	img.mu.Unlock()
	img.stage(state(4, 8, 8, 40, 101.3))
	sink.WaitFor(t, 5*time.Second, "the record", func(s *cycletest.Sink) bool { return len(s.Records()) > 0 })
	rec := sink.Records()[0]
	for _, s := range rec.Samples {
		if s.Phase == protocol.PhaseLeakTest && s.PressureKPa > 7 {
			t.Fatalf("a sample of %.1f kPa, read after the device left the leak test, is filed under leak_test", s.PressureKPa)
		}
	}
	if n := l.Units()[0].Stats().TornPolls; n == 0 {
		t.Fatal("the torn poll was not counted")
	}
}
