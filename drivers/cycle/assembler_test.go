package cycle_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle"
	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// device is a scripted sterilizer with the simulator's register map.
type device struct {
	tempC, kPa     float64
	phase, program uint16
	counter, latch uint32
	result         uint16
	lastProgram    uint16
	alarmBits      uint16
	// the latched block's alarm and figures (registers 20-23)
	lastAlarm              uint16
	plateauMin, plateauMax float64
	holdS                  uint16
}

func (d *device) image() []uint16 {
	img := make([]uint16, 24)
	img[0] = uint16(int16(d.tempC * 10))
	img[1] = uint16(int16(d.tempC*10)) + 10 // jacket: 1 K above
	img[2] = uint16(d.kPa * 10)
	img[12] = uint16(int16(d.tempC*10)) - 1 // drain probe: 0.1 K below
	img[13] = uint16(int16(d.tempC*10)) - 5 // load probe: 0.5 K below
	img[20] = d.lastAlarm
	img[21], img[22], img[23] = uint16(int16(d.plateauMin*10)), uint16(int16(d.plateauMax*10)), d.holdS
	img[3] = d.phase
	img[4] = d.program
	img[5], img[6] = uint16(d.counter>>16), uint16(d.counter)
	img[8] = d.alarmBits
	img[16], img[17] = uint16(d.latch>>16), uint16(d.latch)
	img[18] = d.result
	img[19] = d.lastProgram
	return img
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type rig struct {
	t     *testing.T
	prof  *profile.Profile
	sink  *cycletest.Sink
	store *cycletest.Store
	clk   *clock
	asm   *cycle.Assembler
	dev   device
}

func newRig(t *testing.T) *rig {
	t.Helper()
	p, ok := profile.Builtin("sim-autoclave")
	if !ok {
		t.Fatal("no sim-autoclave")
	}
	return newRigWith(t, p)
}

// newRigWith is a rig for any profile with one block; feed it with observe.
func newRigWith(t *testing.T, p *profile.Profile) *rig {
	t.Helper()
	r := &rig{t: t, prof: p, sink: &cycletest.Sink{}, store: &cycletest.Store{}, clk: &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}}
	r.restart()
	return r
}

// observe feeds one poll of a one-block profile, a second after the last.
func (r *rig) observe(frame []uint16) {
	r.t.Helper()
	r.clk.advance(time.Second)
	reading, err := r.prof.Decode([][]uint16{frame})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.asm.Observe(context.Background(), reading); err != nil {
		r.t.Fatalf("Observe: %v", err)
	}
}

// restart builds a fresh assembler on the same store: a gateway restart.
func (r *rig) restart() {
	asm, err := cycle.New(cycle.Config{Device: "ac1", Source: "modbus-tcp", Profile: r.prof, Now: r.clk.now, TelemetryMaxSamples: 5},
		r.sink, r.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		r.t.Fatal(err)
	}
	r.asm = asm
}

func (r *rig) poll() {
	r.t.Helper()
	r.clk.advance(time.Second)
	reading, err := r.prof.Decode([][]uint16{r.dev.image()})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.asm.Observe(context.Background(), reading); err != nil {
		r.t.Fatalf("Observe: %v", err)
	}
}

// pollRefused polls while the sink refuses: Observe must report it.
func (r *rig) pollRefused() {
	r.t.Helper()
	r.clk.advance(time.Second)
	reading, err := r.prof.Decode([][]uint16{r.dev.image()})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.asm.Observe(context.Background(), reading); err == nil {
		r.t.Fatal("Observe hid a refused delivery")
	}
}

func (r *rig) polls(n int) {
	for range n {
		r.poll()
	}
}

// runCycle drives the device through a 134 °C porous cycle: counter+1 at
// the start, latch = counter and result at the end.
func (r *rig) runCycle(result uint16) {
	d := &r.dev
	d.counter++
	d.program = 1
	steps := []struct {
		phase uint16
		t, p  float64
		n     int
	}{
		{1, 40, 101.3, 2}, {2, 60, 8, 3}, {3, 120, 200, 3}, {5, 134.6, 308.2, 2}, {5, 135.4, 312.5, 2},
		{6, 110, 105, 2}, {7, 50, 6.5, 3}, {8, 45, 100, 2},
	}
	for _, s := range steps {
		d.phase, d.tempC, d.kPa = s.phase, s.t, s.p
		r.polls(s.n)
	}
	d.phase, d.latch, d.result, d.lastProgram = 10, d.counter, result, d.program
	r.poll()
	d.phase = 0
	r.polls(2)
}

func TestFullCycleBecomesOneRecord(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101.3, counter: 41, latch: 41, result: 1, program: 1, lastProgram: 1}
	r.polls(3) // baseline: cycle 41 finished before the gateway existed
	if n := len(r.sink.Records()); n != 0 {
		t.Fatalf("%d records before any cycle ran; cycle 41 predates the gateway", n)
	}
	r.dev.alarmBits = 0
	r.runCycle(1)
	recs := r.sink.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.Cycle != 42 || rec.Device != "ac1" || rec.Source != "modbus-tcp" || !rec.Complete ||
		rec.Result != protocol.ResultPassed || rec.ResultCode == nil || *rec.ResultCode != 1 ||
		rec.Program != "134-porous" || rec.ProgramCode == nil || *rec.ProgramCode != 1 {
		t.Fatalf("record = %+v", rec)
	}
	if len(rec.Samples) != 20 {
		t.Errorf("%d samples, want 20 (19 polls in the cycle + the end poll)", len(rec.Samples))
	}
	var names []string
	for _, ph := range rec.Phases {
		names = append(names, string(ph.Name))
	}
	want := "preparation air_removal heating sterilizing exhaust drying air_admission complete"
	if strings.Join(names, " ") != want {
		t.Errorf("phases = %s\nwant     %s", strings.Join(names, " "), want)
	}
	ster := rec.Phases[3]
	if *ster.TempMinC != 134.6 || *ster.TempMaxC != 135.4 || *ster.PressureMinKPa != 308.2 || *ster.PressureMaxKPa != 312.5 {
		t.Errorf("sterilizing extremes %v..%v °C %v..%v kPa", *ster.TempMinC, *ster.TempMaxC, *ster.PressureMinKPa, *ster.PressureMaxKPa)
	}
	if !ster.End.Equal(rec.Phases[4].Start) || ster.End.Sub(ster.Start) != 4*time.Second {
		t.Errorf("sterilizing %v..%v, exhaust starts %v", ster.Start, ster.End, rec.Phases[4].Start)
	}
	if !rec.StartedAt.Equal(rec.Samples[0].At) || !rec.EndedAt.Equal(rec.Samples[len(rec.Samples)-1].At) {
		t.Errorf("started %v ended %v", rec.StartedAt, rec.EndedAt)
	}
	if err := rec.Validate(); err != nil {
		t.Error(err)
	}
	// Events: online once, a phase event per change, no gap.
	if n := len(r.sink.EventsOf(protocol.EventOnline)); n != 1 {
		t.Errorf("%d online events", n)
	}
	if n := len(r.sink.EventsOf(protocol.EventPhase)); n != 10 {
		t.Errorf("%d phase events, want 10 (idle, 7 cycle phases, complete, idle)", n)
	}
	if n := len(r.sink.EventsOf(protocol.EventGap)); n != 0 {
		t.Errorf("gap events: %+v", r.sink.EventsOf(protocol.EventGap))
	}
	// Telemetry: one sample per poll, in batches of at most 5.
	total := 0
	for _, b := range r.sink.TelemetryBatches() {
		if len(b.Samples) > 5 || b.Device != "ac1" {
			t.Errorf("batch of %d samples for %s", len(b.Samples), b.Device)
		}
		total += len(b.Samples)
	}
	if total != 25 {
		t.Errorf("%d telemetry samples delivered, want 25 (5 per batch of 25 polls)", total)
	}
	// A second cycle gets the next counter; the failed verdict is mapped.
	r.runCycle(2)
	recs = r.sink.Records()
	if len(recs) != 2 || recs[1].Cycle != 43 || recs[1].Result != protocol.ResultFailed || !recs[1].Complete {
		t.Fatalf("second record %+v", recs[len(recs)-1])
	}
}

func TestFirstStartMidCycleGivesIncompleteRecord(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 120, kPa: 200, phase: 3, program: 3, counter: 8, latch: 7}
	r.polls(2)
	r.dev.phase, r.dev.latch, r.dev.result, r.dev.lastProgram = 10, 8, 1, 3
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 8 || recs[0].Complete || recs[0].Result != protocol.ResultPassed || recs[0].Program != "121-15" {
		t.Fatalf("records = %+v", recs)
	}
}

func TestRestartMidCycleResumesTheSameCycle(t *testing.T) {
	// The default max sample gap is 3 poll intervals (3 s): a restart that
	// costs one poll leaves no hole; a longer one is a gateway_down hole.
	for _, tc := range []struct {
		name     string
		downtime time.Duration
		complete bool
	}{{"quick restart", time.Second, true}, {"long outage", 5 * time.Minute, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.dev = device{tempC: 21, kPa: 101, counter: 3, latch: 3}
			r.poll()
			r.dev.counter, r.dev.phase, r.dev.program = 4, 2, 1
			r.polls(3)
			r.dev.phase, r.dev.tempC = 5, 134.8
			r.polls(2)
			r.restart() // SIGKILL: nothing but the store survives
			r.clk.advance(tc.downtime)
			r.polls(2)
			r.dev.phase, r.dev.latch, r.dev.result = 10, 4, 1
			r.poll()
			r.polls(3)
			recs := r.sink.Records()
			if len(recs) != 1 || recs[0].Cycle != 4 {
				t.Fatalf("records = %+v", recs)
			}
			rec := recs[0]
			if len(rec.Samples) != 8 || rec.Complete != tc.complete || rec.Result != protocol.ResultPassed || !rec.EndSeen {
				t.Errorf("%d samples (want 8), complete %v (want %v), result %s, end seen %v", len(rec.Samples), rec.Complete, tc.complete, rec.Result, rec.EndSeen)
			}
			if tc.complete {
				if len(rec.Holes) != 0 {
					t.Errorf("holes %+v after a restart within the max sample gap", rec.Holes)
				}
				return
			}
			// The hole runs from the last sample before the kill to the
			// first one after the restart.
			if len(rec.Holes) != 1 || rec.Holes[0].Reason != protocol.HoleGatewayDown ||
				!rec.Holes[0].From.Equal(rec.Samples[4].At) || !rec.Holes[0].To.Equal(rec.Samples[5].At) {
				t.Errorf("holes = %+v; want one gateway_down hole from %v to %v", rec.Holes, rec.Samples[4].At, rec.Samples[5].At)
			}
		})
	}
}

func TestCyclesFinishedWhileAwayAreAccountedFor(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 10, latch: 10}
	r.poll()
	r.dev.counter, r.dev.phase = 11, 3
	r.polls(3)
	r.restart()
	r.clk.advance(2 * time.Hour)
	// Meanwhile 11, 12 and 13 finished and 14 is running.
	r.dev.counter, r.dev.latch, r.dev.result, r.dev.phase = 14, 13, 2, 2
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 2 || recs[0].Cycle != 11 || recs[0].Complete || recs[0].Result != protocol.ResultUnknown || recs[0].ResultCode != nil {
		t.Fatalf("records = %+v (want cycle 11, incomplete, unknown: last_result is cycle 13's)", recs)
	}
	// 13 is what the device latched: its verdict, no samples, incomplete.
	if r13 := recs[1]; r13.Cycle != 13 || r13.Complete || r13.Result != protocol.ResultFailed || len(r13.Samples) != 0 {
		t.Fatalf("record 13 = %+v (want the latched verdict, failed, incomplete, no samples)", r13)
	}
	gaps := r.sink.EventsOf(protocol.EventGap)
	if len(gaps) != 1 || !strings.Contains(gaps[0].Text, "cycle 12 ") {
		t.Fatalf("gap events = %+v", gaps)
	}
	// 14 is being assembled (incomplete: started while away).
	r.dev.phase, r.dev.latch, r.dev.result = 10, 14, 1
	r.poll()
	recs = r.sink.Records()
	if len(recs) != 3 || recs[2].Cycle != 14 || recs[2].Complete || recs[2].Result != protocol.ResultPassed {
		t.Fatalf("record 14 = %+v", recs[len(recs)-1])
	}
}

func TestRecordWaitsForTheSinkAcrossRestarts(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.sink.Fail(true)
	r.dev.counter, r.dev.phase = 2, 5
	r.pollRefused()
	r.pollRefused()
	r.dev.phase, r.dev.latch, r.dev.result = 10, 2, 1
	r.pollRefused()
	r.restart()
	r.pollRefused()
	if len(r.sink.Records()) != 0 {
		t.Fatal("record delivered while the sink refused")
	}
	r.sink.Fail(false)
	r.poll()
	r.polls(3)
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 2 || recs[0].Result != protocol.ResultPassed {
		t.Fatalf("records = %+v", recs)
	}
}

func TestAlarmsAndOnlineOffline(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.dev.counter, r.dev.phase = 2, 5
	r.poll()
	r.dev.alarmBits = 1 << 2 // 84: below band
	r.polls(3)
	r.asm.Unreachable(context.Background(), context.DeadlineExceeded)
	r.asm.Unreachable(context.Background(), context.DeadlineExceeded)
	r.poll()
	r.dev.alarmBits = 1<<2 | 1<<9
	r.poll()
	r.dev.phase, r.dev.latch, r.dev.result, r.dev.alarmBits = 10, 2, 3, 0
	r.poll()
	alarms := r.sink.EventsOf(protocol.EventAlarm)
	if len(alarms) != 2 || alarms[0].Code != 84 || alarms[1].Code != 93 || alarms[1].Text != "operator abort" {
		t.Fatalf("alarm events = %+v", alarms)
	}
	if n, m := len(r.sink.EventsOf(protocol.EventOffline)), len(r.sink.EventsOf(protocol.EventOnline)); n != 1 || m != 2 {
		t.Errorf("%d offline / %d online events, want 1 / 2", n, m)
	}
	recs := r.sink.Records()
	if len(recs) != 1 || len(recs[0].Alarms) != 2 || recs[0].Result != protocol.ResultAborted {
		t.Fatalf("record = %+v", recs)
	}
}

func TestTelemetryFlushesOnTime(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.clk.advance(6 * time.Second)
	r.poll()
	b := r.sink.TelemetryBatches()
	if len(b) != 1 || len(b[0].Samples) != 2 {
		t.Fatalf("batches = %+v", b)
	}
}

func parse(t *testing.T, src string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// observeRegs runs an assembler over a profile with one block of registers.
func observeRegs(t *testing.T, p *profile.Profile, frames [][]uint16) *cycletest.Sink {
	t.Helper()
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	asm, err := cycle.New(cycle.Config{Device: "d", Source: "modbus-rtu", Profile: p, Now: clk.now}, sink, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		clk.advance(time.Second)
		r, err := p.Decode([][]uint16{f})
		if err != nil {
			t.Fatal(err)
		}
		if err := asm.Observe(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return sink
}

func TestCounterChangeMode(t *testing.T) {
	// The counter counts finished cycles; phase 0 is idle.
	p := parse(t, `
fields:
  t: {address: 0}
  p: {address: 1}
  ph: {address: 2}
  n: {address: 3}
  res: {address: 4}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n, last_result: res}
phases: {0: idle, 1: heating, 2: sterilizing, 3: drying}
results: {1: passed, 9: failed}
cycle_end: {on: counter_change}
`)
	frames := [][]uint16{
		{20, 100, 0, 7, 1}, {20, 100, 0, 7, 1}, // baseline 7
		{100, 150, 1, 7, 1}, {134, 304, 2, 7, 1}, {134, 305, 2, 7, 1}, {60, 8, 3, 7, 1},
		{30, 100, 0, 8, 9}, // counter 8: cycle 8 finished, failed
		{30, 100, 0, 8, 9},
	}
	sink := observeRegs(t, p, frames)
	recs := sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 8 || !recs[0].Complete || recs[0].Result != protocol.ResultFailed || len(recs[0].Samples) != 4 || len(recs[0].Phases) != 3 {
		t.Fatalf("records = %+v", recs)
	}
}

func TestPhaseEntersMode(t *testing.T) {
	p := parse(t, `
fields:
  t: {address: 0}
  p: {address: 1}
  ph: {address: 2}
  n: {address: 3}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n}
phases: {0: idle, 1: heating, 2: sterilizing, 3: complete, 4: fault}
cycle_end: {on: phase_enters, phases: [complete, fault]}
`)
	frames := [][]uint16{
		{20, 100, 0, 7}, // baseline: 7 done
		{100, 150, 1, 8}, {134, 304, 2, 8}, {30, 100, 3, 8}, {30, 100, 3, 8}, {20, 100, 0, 8},
		{100, 150, 1, 9}, {50, 100, 4, 9}, {20, 100, 0, 9},
	}
	sink := observeRegs(t, p, frames)
	recs := sink.Records()
	if len(recs) != 2 || recs[0].Cycle != 8 || recs[1].Cycle != 9 || !recs[0].Complete || recs[0].Result != protocol.ResultUnknown {
		t.Fatalf("records = %+v", recs)
	}
	if got := recs[1].Phases[len(recs[1].Phases)-1].Name; got != protocol.PhaseFault {
		t.Errorf("last phase of cycle 9 = %s", got)
	}
}

// A failed probe (NaN temperature) must not hide the end of the cycle: the
// record comes, without the bad polls' samples, marked incomplete.
func TestBrokenProbeDoesNotHideTheCycleEnd(t *testing.T) {
	p := parse(t, `
fields:
  t: {address: 0, type: f32}
  p: {address: 2}
  n: {address: 3, type: u32}
  l: {address: 5, type: u32}
  ph: {address: 7}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: n, last_cycle: l, phase: ph}
phases: {0: idle, 5: sterilizing, 10: complete}
cycle_end: {on: last_cycle_change}
`)
	frame := func(temp float32, counter, last uint32, phase uint16) []uint16 {
		b := math.Float32bits(temp)
		return []uint16{uint16(b >> 16), uint16(b), 300, uint16(counter >> 16), uint16(counter), uint16(last >> 16), uint16(last), phase}
	}
	nanTemp := float32(math.NaN())
	sink := observeRegs(t, p, [][]uint16{
		frame(20, 1, 1, 0),
		frame(134.5, 2, 1, 5), frame(nanTemp, 2, 1, 5), frame(nanTemp, 2, 1, 5), frame(nanTemp, 2, 1, 5), frame(135, 2, 1, 5),
		frame(nanTemp, 2, 2, 10),
	})
	recs := sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 2 || recs[0].Complete || len(recs[0].Samples) != 2 || !recs[0].EndSeen {
		t.Fatalf("records = %+v; want cycle 2, incomplete, the 2 good samples, its end seen", recs)
	}
	rec := recs[0]
	if !rec.EndedAt.After(rec.Samples[1].At) {
		t.Errorf("ended %v, last good sample %v: the end poll still counts", rec.EndedAt, rec.Samples[1].At)
	}
	// Three refused polls make a 4 s stretch without samples: longer than
	// the 3 s max sample gap.
	if len(rec.Holes) != 1 || rec.Holes[0].Reason != protocol.HoleImplausible || !rec.Holes[0].From.Equal(rec.Samples[0].At) || !rec.Holes[0].To.Equal(rec.Samples[1].At) {
		t.Errorf("holes = %+v", rec.Holes)
	}
	if ev := sink.EventsOf(protocol.EventImplausibleValue); len(ev) != 2 || ev[0].Field != "t" || ev[0].Value != nil || len(ev[0].Registers) != 2 {
		t.Errorf("implausible events = %+v; want one per occurrence, naming the field and its registers", ev)
	}
}

func TestCounterResetRebaselines(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 500, latch: 499, phase: 5}
	r.polls(2) // mid-cycle 500 at first start
	// The controller is replaced: counters start again from 0.
	r.dev = device{tempC: 21, kPa: 101, counter: 0, latch: 0}
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 500 || recs[0].Complete || recs[0].Result != protocol.ResultUnknown {
		t.Fatalf("records = %+v", recs)
	}
	gaps := r.sink.EventsOf(protocol.EventGap)
	if len(gaps) != 1 || !strings.Contains(gaps[0].Text, "went back from 500 to 0") {
		t.Fatalf("gap events = %+v", gaps)
	}
	r.runCycle(1)
	recs = r.sink.Records()
	if len(recs) != 2 || recs[1].Cycle != 1 || !recs[1].Complete || recs[1].Result != protocol.ResultPassed {
		t.Fatalf("first cycle after the reset = %+v", recs[len(recs)-1])
	}
	// The old cycle keeps its id; the counter values that come round
	// again get ids of their own, so no journal takes them for re-sends.
	if recs[0].CounterEpoch != 0 || recs[1].CounterEpoch != 1 {
		t.Errorf("counter epochs %d and %d, want 0 then 1", recs[0].CounterEpoch, recs[1].CounterEpoch)
	}
	if id0, id1 := recs[0].RecordID("dax"), recs[1].RecordID("dax"); id0 != "dax:ac1:500" || id1 != "dax:ac1:1.1" {
		t.Errorf("ids %q and %q", id0, id1)
	}
}

func TestUnlatchedCycleIsRecordedWhenTheNextStarts(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 7, latch: 7}
	r.poll()
	r.dev.counter, r.dev.phase = 8, 3
	r.polls(3)
	// Power cut: the device never latches 8 and starts 9.
	r.dev.counter, r.dev.phase = 9, 2
	r.polls(2)
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 8 || recs[0].Complete || len(recs[0].Samples) != 3 {
		t.Fatalf("records = %+v", recs)
	}
	r.dev.phase, r.dev.latch, r.dev.result = 10, 9, 1
	r.poll()
	recs = r.sink.Records()
	if len(recs) != 2 || recs[1].Cycle != 9 || !recs[1].Complete || len(recs[1].Samples) != 3 {
		t.Fatalf("cycle 9 = %+v", recs[len(recs)-1])
	}
	if n := len(r.sink.EventsOf(protocol.EventGap)); n != 0 {
		t.Errorf("%d gap events; every cycle has a record", n)
	}
}

// A long cycle keeps its samples in chunks: each poll writes a few KB, and a
// restart across chunk boundaries gives back every sample in order.
func TestLongCycleSamplesSurviveRestartsInChunks(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.dev.counter, r.dev.phase = 2, 5
	for i := range 400 {
		r.dev.tempC = 134 + float64(i%10)/10
		r.poll()
		if i == 119 || i == 120 || i == 250 {
			r.restart()
		}
	}
	_, before := r.store.Writes()
	r.poll()
	_, after := r.store.Writes()
	if per := after - before; per > 16<<10 {
		t.Errorf("one poll late in the cycle wrote %d bytes; want a chunk, not the whole cycle", per)
	}
	if n := len(r.store.Bytes("ac1")); n > 4<<10 {
		t.Errorf("main state is %d bytes; samples belong in chunks", n)
	}
	r.dev.phase, r.dev.latch, r.dev.result = 10, 2, 1
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 || len(recs[0].Samples) != 402 || !recs[0].Complete {
		t.Fatalf("got %d records; samples %d (want 402), complete %v", len(recs), len(recs[0].Samples), recs[0].Complete)
	}
	for i := 1; i < len(recs[0].Samples); i++ {
		if !recs[0].Samples[i].At.After(recs[0].Samples[i-1].At) {
			t.Fatalf("sample %d out of order", i)
		}
	}
}

// A chunk lost from the store (damaged storage) costs its samples and marks
// the record incomplete; it never stops the cycle from being recorded.
func TestMissingChunkMarksTheRecordIncomplete(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.dev.counter, r.dev.phase = 2, 5
	r.polls(130)
	if err := r.store.SaveState(context.Background(), "ac1/cycle-samples/0", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	r.restart()
	r.poll()
	r.dev.phase, r.dev.latch, r.dev.result = 10, 2, 1
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Complete || len(recs[0].Samples) != 2 {
		t.Fatalf("records = %d, complete %v, %d samples (want the 2 taken after the restart)", len(recs), recs[0].Complete, len(recs[0].Samples))
	}
}
