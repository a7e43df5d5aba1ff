package cycle_test

import (
	"context"
	"errors"
	"fmt"
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

// What a record says must never be more than what the gateway saw: every
// alarm up to the poll that ended the cycle, the holes in its samples and
// why, the device's own figures as reported, no impossible value.

// The alarm that ends a cycle often appears in the very poll that shows
// the end (the simulator's power loss: alarm 92 and the latched end in one
// register image). It belongs in that cycle's record, in every mode.
func TestAlarmSeenInTheEndPollIsInTheRecord(t *testing.T) {
	t.Run("last_cycle_change", func(t *testing.T) {
		r := newRig(t)
		r.dev = device{tempC: 21, kPa: 101, counter: 4, latch: 4}
		r.poll()
		r.dev.counter, r.dev.phase, r.dev.tempC, r.dev.kPa = 5, 5, 134.8, 310
		r.polls(3)
		// Power comes back: alarm 92, phase fault, the cycle latched as
		// aborted, all in one image.
		r.dev.alarmBits, r.dev.phase, r.dev.latch, r.dev.result = 1<<8, 11, 5, 3
		r.poll()
		r.polls(2)
		recs := r.sink.Records()
		if len(recs) != 1 || recs[0].Result != protocol.ResultAborted {
			t.Fatalf("records = %+v", recs)
		}
		if al := recs[0].Alarms; len(al) != 1 || al[0].Code != 92 || al[0].Text != "power interrupted" || al[0].Latched {
			t.Fatalf("alarms = %+v; want alarm 92 as seen in the end poll", al)
		}
		if ev := r.sink.EventsOf(protocol.EventAlarm); len(ev) != 1 || ev[0].Code != 92 {
			t.Errorf("alarm events = %+v", ev)
		}
	})
	t.Run("counter_change", func(t *testing.T) {
		p := parse(t, `
fields: {t: {address: 0}, p: {address: 1}, ph: {address: 2}, n: {address: 3}, res: {address: 4}, al: {address: 5}}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n, last_result: res}
phases: {0: idle, 2: sterilizing}
results: {3: aborted}
alarms: [{field: al, bit: 0, code: 92, text: power interrupted}]
cycle_end: {on: counter_change}
`)
		sink := observeRegs(t, p, [][]uint16{
			{20, 100, 0, 7, 1, 0}, {134, 304, 2, 7, 1, 0}, {134, 304, 2, 7, 1, 0},
			{40, 100, 0, 8, 3, 1}, // idle, counter 8, aborted, alarm: all at once
		})
		if recs := sink.Records(); len(recs) != 1 || len(recs[0].Alarms) != 1 || recs[0].Alarms[0].Code != 92 {
			t.Fatalf("records = %+v", recs)
		}
	})
	t.Run("phase_enters", func(t *testing.T) {
		p := parse(t, `
fields: {t: {address: 0}, p: {address: 1}, ph: {address: 2}, n: {address: 3}, al: {address: 4}}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n}
phases: {0: idle, 2: sterilizing, 4: fault}
alarms: [{field: al, bit: 0, code: 92}]
cycle_end: {on: phase_enters, phases: [fault]}
`)
		sink := observeRegs(t, p, [][]uint16{{20, 100, 0, 7, 0}, {134, 304, 2, 8, 0}, {134, 304, 2, 8, 0}, {60, 100, 4, 8, 1}})
		if recs := sink.Records(); len(recs) != 1 || len(recs[0].Alarms) != 1 || recs[0].Alarms[0].Code != 92 {
			t.Fatalf("records = %+v", recs)
		}
	})
}

// The device's latched last-alarm code goes into the record when the
// gateway did not see the alarm active (it was away when it rose), with
// the profile's text, marked latched; the device's own figures come as
// reported from the same latched block.
func TestLatchedAlarmAndDeviceFigures(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 4, latch: 4}
	r.poll()
	r.dev.counter, r.dev.phase, r.dev.tempC, r.dev.kPa = 5, 5, 134.8, 310
	r.polls(3)
	r.asm.Unreachable(context.Background(), errors.New("no answer"))
	r.clk.advance(3 * time.Minute)
	r.dev.phase, r.dev.latch, r.dev.result, r.dev.lastAlarm = 0, 5, 3, 92
	r.dev.plateauMin, r.dev.plateauMax, r.dev.holdS = 134.6, 135.9, 30
	r.dev.tempC, r.dev.kPa = 60, 101
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	rec := recs[0]
	if al := rec.Alarms; len(al) != 1 || al[0].Code != 92 || !al[0].Latched || al[0].Text != "power interrupted" || !al[0].At.Equal(rec.EndedAt) {
		t.Errorf("alarms = %+v; want the latched alarm 92", al)
	}
	f := rec.DeviceFigures
	if f == nil || *f.PlateauMinC != 134.6 || *f.PlateauMaxC != 135.9 || *f.HoldSeconds != 30 || f.LeakRateKPaMin != nil {
		t.Errorf("device figures = %+v", f)
	}
	if rec.Complete || rec.EndSeen || len(rec.Holes) != 1 || rec.Holes[0].Reason != protocol.HoleDeviceOffline {
		t.Errorf("complete %v, end seen %v, holes %+v: the device was offline over the end", rec.Complete, rec.EndSeen, rec.Holes)
	}
	// A latched code the record already holds is not added twice.
	r.dev.counter, r.dev.phase, r.dev.alarmBits, r.dev.lastAlarm = 6, 5, 0, 92
	r.polls(2)
	r.dev.alarmBits = 1 << 8
	r.poll()
	r.dev.latch, r.dev.phase = 6, 11
	r.poll()
	if recs := r.sink.Records(); len(recs) != 2 || len(recs[1].Alarms) != 1 || recs[1].Alarms[0].Latched {
		t.Errorf("second record alarms = %+v", recs[len(recs)-1].Alarms)
	}
}

// A gateway killed in the hold and back 8 s later (shorter than the 10 s
// that used to be tolerated silently) leaves a gateway_down hole over the
// hold: the record is not complete, though the end was seen.
func TestKilledMidHoldLeavesAGatewayDownHole(t *testing.T) {
	r := newRig(t)
	r.dev = device{tempC: 21, kPa: 101, counter: 9, latch: 9}
	r.poll()
	r.dev.counter, r.dev.phase, r.dev.program = 10, 3, 1
	r.polls(2)
	r.dev.phase, r.dev.tempC, r.dev.kPa = 5, 135.1, 312
	r.polls(3)
	killedAfter := r.clk.t
	r.restart() // SIGKILL: only the store survives
	r.clk.advance(7 * time.Second)
	r.polls(2)
	r.dev.phase, r.dev.latch, r.dev.result = 10, 10, 1
	r.poll()
	recs := r.sink.Records()
	if len(recs) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	rec := recs[0]
	if rec.Complete || !rec.EndSeen || rec.Result != protocol.ResultPassed {
		t.Errorf("complete %v, end seen %v, result %s; want incomplete, end seen, passed", rec.Complete, rec.EndSeen, rec.Result)
	}
	want := protocol.Hole{From: killedAfter, To: killedAfter.Add(8 * time.Second), Reason: protocol.HoleGatewayDown}
	if len(rec.Holes) != 1 || rec.Holes[0] != want {
		t.Errorf("holes = %+v, want [%+v]", rec.Holes, want)
	}
}

// Failed polls that are not an outage (exceptions, undecodable replies)
// and then an outage each name their part of the hole.
func TestPollErrorsThenOfflineAreHolesWithTheirReasons(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.dev = device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	r.poll()
	r.dev.counter, r.dev.phase = 2, 5
	r.polls(2)
	last := r.clk.t
	for range 3 {
		r.clk.advance(time.Second)
		r.asm.PollFailed(ctx, errors.New("exception 4"))
	}
	offlineAt := r.clk.t.Add(time.Second)
	for range 4 {
		r.clk.advance(time.Second)
		r.asm.Unreachable(ctx, context.DeadlineExceeded)
	}
	r.poll()
	back := r.clk.t
	r.dev.phase, r.dev.latch, r.dev.result = 10, 2, 1
	r.poll()
	rec := r.sink.Records()[0]
	want := []protocol.Hole{
		{From: last, To: offlineAt, Reason: protocol.HolePollErrors},
		{From: offlineAt, To: back, Reason: protocol.HoleDeviceOffline},
	}
	if len(rec.Holes) != 2 || rec.Holes[0] != want[0] || rec.Holes[1] != want[1] || rec.Complete {
		t.Fatalf("holes = %+v\nwant    %+v", rec.Holes, want)
	}
	// A single failed poll at 1 Hz leaves a 2 s stretch: no hole.
	r.dev.counter, r.dev.phase = 3, 5
	r.polls(2)
	r.clk.advance(time.Second)
	r.asm.PollFailed(ctx, errors.New("exception 4"))
	r.polls(2)
	r.dev.phase, r.dev.latch = 10, 3
	r.poll()
	if rec := r.sink.Records()[1]; len(rec.Holes) != 0 || !rec.Complete {
		t.Errorf("one failed poll: holes %+v, complete %v", rec.Holes, rec.Complete)
	}
}

// Every mapped channel comes out in the record (channels, each sample's
// ch, each phase's ch extremes) and in telemetry; time_scale is carried.
func TestChannelsAndTimeScaleInTheRecord(t *testing.T) {
	p, _ := profile.Builtin("sim-autoclave")
	sink, store := &cycletest.Sink{}, &cycletest.Store{}
	clk := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	asm, err := cycle.New(cycle.Config{Device: "ac", Profile: p, Now: clk.now, TimeScale: 20, TelemetryMaxSamples: 1}, sink, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d := device{tempC: 21, kPa: 101, counter: 1, latch: 1}
	observe := func() {
		clk.advance(time.Second)
		reading, err := p.Decode([][]uint16{d.image()})
		if err != nil {
			t.Fatal(err)
		}
		if err := asm.Observe(context.Background(), reading); err != nil {
			t.Fatal(err)
		}
	}
	observe()
	d.counter, d.phase = 2, 5
	for _, temp := range []float64{134.5, 135.5, 135} {
		d.tempC = temp
		observe()
	}
	d.phase, d.latch, d.result = 10, 2, 1
	observe()
	rec := sink.Records()[0]
	if rec.TimeScale != 20 {
		t.Errorf("time_scale = %v", rec.TimeScale)
	}
	want := []protocol.Channel{{ID: "drain_temp", Role: "drain_temperature", Unit: "°C"}, {ID: "load_temp", Role: "load_temperature", Unit: "°C"}, {ID: "jacket_temp", Role: "jacket_temperature", Unit: "°C"}}
	if len(rec.Channels) != 3 || rec.Channels[0] != want[0] || rec.Channels[1] != want[1] || rec.Channels[2] != want[2] {
		t.Errorf("channels = %+v", rec.Channels)
	}
	if s := rec.Samples[1]; s.Ch["drain_temp"] != 135.4 || s.Ch["load_temp"] != 135 || s.Ch["jacket_temp"] != 136.5 {
		t.Errorf("sample ch = %v", s.Ch)
	}
	if e := rec.Phases[0].Ch["load_temp"]; rec.Phases[0].Name != protocol.PhaseSterilizing || e.Min != 134 || e.Max != 135 {
		t.Errorf("sterilizing load extremes = %+v", rec.Phases[0].Ch)
	}
	batches := sink.TelemetryBatches()
	if last := batches[len(batches)-1].Samples; len(last) == 0 || last[0].Ch["drain_temp"] == 0 {
		t.Errorf("telemetry samples carry no channels: %+v", last)
	}
}

// A profile with the wrong word order for an f32 temperature: each value
// is refused (no sample, no telemetry), one implausible_value event per
// occurrence names the field, the value, the raw registers and the byte
// order, and the stretch without samples is an implausible_value hole.
func TestWrongWordOrderIsNotData(t *testing.T) {
	p := parse(t, `
fields:
  temp:  {function: 4, address: 0, type: f32, order: ABCD}
  press: {function: 4, address: 2, scale: 0.1}
  n:     {function: 4, address: 3}
  ph:    {function: 4, address: 4}
roles: {chamber_temperature: temp, chamber_pressure: press, cycle_counter: n, phase: ph}
phases: {0: idle, 5: sterilizing, 10: complete}
cycle_end: {on: phase_enters, phases: [complete]}
`)
	frame := func(temp float32, n, ph uint16) []uint16 {
		b := math.Float32bits(temp)
		return []uint16{uint16(b), uint16(b >> 16), 3050, n, ph} // the device sends CDAB
	}
	sink := observeRegs(t, p, [][]uint16{
		frame(20.3, 1, 0), frame(134.2, 2, 5), frame(135.7, 2, 5), frame(134.9, 2, 5), frame(135.3, 2, 5), frame(40, 2, 10),
	})
	for _, b := range sink.TelemetryBatches() {
		for _, s := range b.Samples {
			t.Errorf("telemetry sample %+v from an implausible reading", s)
		}
	}
	ev := sink.EventsOf(protocol.EventImplausibleValue)
	if len(ev) != 1 {
		t.Fatalf("implausible events = %+v; want one for the whole occurrence", ev)
	}
	e := ev[0]
	w0, w1 := frame(20.3, 0, 0)[0], frame(20.3, 0, 0)[1]
	if e.Field != "temp" || e.Value == nil || *e.Value < 1e20 || len(e.Registers) != 2 || e.Registers[0] != w0 || e.Registers[1] != w1 ||
		!strings.Contains(e.Text, "wrong byte order: with order: CDAB") || !strings.Contains(e.Text, "20.3 °C") {
		t.Errorf("event = %+v", e)
	}
	recs := sink.Records()
	if len(recs) != 1 || len(recs[0].Samples) != 0 || recs[0].Complete {
		t.Fatalf("records = %+v; want one, without samples, incomplete", recs)
	}
	if h := recs[0].Holes; len(h) != 1 || h[0].Reason != protocol.HoleImplausible {
		t.Errorf("holes = %+v", h)
	}
}

// max_sample_gap from the profile replaces the default of 3 polls.
func TestMaxSampleGapFromTheProfile(t *testing.T) {
	src := `
fields: {t: {address: 0}, p: {address: 1}, ph: {address: 2}, n: {address: 3}}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n}
phases: {0: idle, 5: sterilizing, 10: complete}
cycle_end: {on: phase_enters, phases: [complete]}
`
	for _, c := range []struct {
		extra string
		poll  time.Duration
		gap   time.Duration
	}{
		{"", 0, 3 * time.Second}, {"", 10 * time.Second, 30 * time.Second}, {"", 10 * time.Millisecond, time.Second},
		{"max_sample_gap: 2500ms\n", 10 * time.Second, 2500 * time.Millisecond},
	} {
		asm, err := cycle.New(cycle.Config{Device: "d", Profile: parse(t, src+c.extra), PollInterval: c.poll}, &cycletest.Sink{}, &cycletest.Store{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := asm.MaxSampleGap(); got != c.gap {
			t.Errorf("%q, poll %v: max sample gap %v, want %v", c.extra, c.poll, got, c.gap)
		}
	}
}

// Saved samples keep their channels across a restart, a channel not read
// (implausible) included: it stays missing, it does not become 0.
func TestChannelsSurviveARestart(t *testing.T) {
	p := parse(t, `
fields: {t: {address: 0}, p: {address: 1}, n: {address: 2}, l: {address: 3}, ph: {address: 4}, drain: {address: 5}, load: {address: 6}}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: n, last_cycle: l, phase: ph, drain_temperature: drain, load_temperature: [load]}
phases: {0: idle, 5: sterilizing}
plausible: {load_temperature: {max: 150}}
cycle_end: {on: last_cycle_change}
`)
	r := newRigWith(t, p)
	r.observe([]uint16{20, 100, 1, 1, 0, 20, 20})
	r.observe([]uint16{134, 304, 2, 1, 5, 133, 130})
	r.observe([]uint16{135, 305, 2, 1, 5, 134, 999}) // the load probe reads 999 °C
	r.restart()
	r.observe([]uint16{135, 305, 2, 1, 5, 134, 134})
	r.observe([]uint16{100, 101, 2, 2, 0, 100, 120})
	rec := r.sink.Records()[0]
	if len(rec.Samples) != 4 {
		t.Fatalf("%d samples: %+v", len(rec.Samples), rec.Samples)
	}
	want := []map[string]float64{{"drain": 133, "load": 130}, {"drain": 134}, {"drain": 134, "load": 134}, {"drain": 100, "load": 120}}
	for i, s := range rec.Samples {
		if fmt.Sprint(s.Ch) != fmt.Sprint(want[i]) {
			t.Errorf("sample %d ch = %v, want %v", i, s.Ch, want[i])
		}
	}
	if e := rec.Phases[0].Ch["load"]; e.Min != 130 || e.Max != 134 {
		t.Errorf("sterilizing load extremes %+v", rec.Phases[0].Ch)
	}
}

// counter_change: back after an absence, the counter has jumped past the
// open cycle and another cycle runs. That reading is not the open cycle's.
func TestCounterJumpTakesNoSampleOfALaterCycle(t *testing.T) {
	p := parse(t, `
fields: {t: {address: 0}, p: {address: 1}, ph: {address: 2}, n: {address: 3}}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n}
phases: {0: idle, 2: sterilizing, 3: heating}
cycle_end: {on: counter_change}
`)
	r := newRigWith(t, p)
	r.observe([]uint16{20, 100, 0, 7})
	r.observe([]uint16{134, 304, 2, 7})
	r.observe([]uint16{134, 304, 2, 7})
	r.clk.advance(2 * time.Hour)
	r.observe([]uint16{90, 150, 3, 10}) // 8, 9, 10 finished; 11 heats
	recs := r.sink.Records()
	if len(recs) != 1 || recs[0].Cycle != 8 || len(recs[0].Samples) != 2 || recs[0].EndSeen {
		t.Fatalf("records = %+v; want cycle 8 with its 2 samples, end not seen", recs)
	}
}
