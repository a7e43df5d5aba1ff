package cycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// runningCounterProfile describes a device nothing like the simulator's
// default: its counter numbers the running cycle, its result register holds
// the verdict of the last finished cycle, its "finished" state (9) lasts an
// instant, it has no latched counter, and its leak test (program 6) shows
// its vacuum hold with the air-removal code 2.
const runningCounterProfile = `
fields:
  t:    {address: 0, type: i16, scale: 0.1}
  p:    {address: 1, scale: 0.1}
  st:   {address: 2}
  prog: {address: 3}
  n:    {address: 4}
  res:  {address: 5}
roles: {chamber_temperature: t, chamber_pressure: p, phase: st, program: prog, cycle_counter: n, last_result: res}
phases: {0: idle, 1: preparation, 2: air_removal, 3: heating, 4: sterilizing, 5: drying, 8: fault, 9: complete}
program_phases: {6: {2: leak_test}}
programs: {1: 134-porous, 6: leak-test}
results: {0: unknown, 1: passed, 2: failed}
cycle_end: {on: next_cycle_starts}
`

// runningDevice is that device, scripted one poll per second.
type runningDevice struct {
	t, p         float64
	state, prog  uint16
	counter, res uint16
}

func (d runningDevice) frame() []uint16 {
	return []uint16{uint16(int16(d.t * 10)), uint16(d.p * 10), d.state, d.prog, d.counter, d.res}
}

// cycle runs one cycle of the device: the counter moves on at its start,
// the verdict is latched at its end, and the device shows "ready" at
// once, so no poll ever sees the finished state.
func (d *runningDevice) cycle(prog, result uint16) [][]uint16 {
	d.counter++
	d.prog = prog
	var out [][]uint16
	steps := []struct {
		state uint16
		t, p  float64
		n     int
	}{{1, 40, 101, 2}, {2, 60, 8, 3}, {3, 120, 200, 2}, {4, 135, 313, 3}, {5, 50, 7, 2}}
	if prog == 6 {
		steps = []struct {
			state uint16
			t, p  float64
			n     int
		}{{1, 40, 101, 2}, {2, 40, 5.5, 5}, {8, 40, 60, 1}}
	}
	for _, s := range steps {
		d.state, d.t, d.p = s.state, s.t, s.p
		for range s.n {
			out = append(out, d.frame())
		}
	}
	d.state, d.res, d.t, d.p = 0, result, 30, 101
	for range 4 {
		out = append(out, d.frame()) // ready, with the verdict latched
	}
	return out
}

func TestNextCycleStartsGivesOneRecordPerCycleWithItsVerdict(t *testing.T) {
	p := parse(t, runningCounterProfile)
	d := runningDevice{t: 21, p: 101, counter: 40, res: 1}
	frames := [][]uint16{d.frame(), d.frame()} // baseline: 40 finished before the gateway
	frames = append(frames, d.cycle(1, 1)...)  // 41 passed
	frames = append(frames, d.cycle(1, 2)...)  // 42 failed
	first42 := len(frames)
	frames = append(frames, d.cycle(6, 1)...) // 43, a leak test, passed
	sink := observeRegs(t, p, frames)

	// 41 and 42 are recorded when the next cycle starts; 43 waits for 44.
	recs := sink.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2 (cycle 43 waits for the next to start): %+v", len(recs), recs)
	}
	for i, want := range []struct {
		cycle  uint64
		result protocol.Result
	}{{41, protocol.ResultPassed}, {42, protocol.ResultFailed}} {
		rec := recs[i]
		if rec.Cycle != want.cycle || rec.Result != want.result || !rec.EndSeen || !rec.Complete || rec.Program != "134-porous" {
			t.Errorf("record %d: cycle %d result %s end seen %v complete %v program %s; want cycle %d %s, end seen, complete",
				i, rec.Cycle, rec.Result, rec.EndSeen, rec.Complete, rec.Program, want.cycle, want.result)
		}
		// 12 running polls; the idle polls after the end and the next
		// cycle's polls are not the record's.
		if len(rec.Samples) != 12 {
			t.Errorf("cycle %d: %d samples, want the 12 polls it ran", rec.Cycle, len(rec.Samples))
		}
		for _, s := range rec.Samples {
			if s.Phase == protocol.PhaseIdle || s.At.After(rec.EndedAt) {
				t.Errorf("cycle %d holds sample %+v (ended %v)", rec.Cycle, s, rec.EndedAt)
			}
		}
		if last := rec.Phases[len(rec.Phases)-1]; last.Name != protocol.PhaseDrying {
			t.Errorf("cycle %d: last phase %s", rec.Cycle, last.Name)
		}
	}
	_ = first42
	// The leak test is recorded when cycle 44 starts; its vacuum hold is a
	// leak_test phase, not air removal.
	frames = append(frames, d.cycle(1, 1)...)
	sink = observeRegs(t, p, frames)
	recs = sink.Records()
	if len(recs) != 3 || recs[2].Cycle != 43 || recs[2].Result != protocol.ResultPassed || recs[2].Program != "leak-test" {
		t.Fatalf("records = %+v", recs)
	}
	var names []protocol.PhaseName
	for _, ph := range recs[2].Phases {
		names = append(names, ph.Name)
	}
	if len(names) != 3 || names[0] != protocol.PhasePreparation || names[1] != protocol.PhaseLeakTest || names[2] != protocol.PhaseFault {
		t.Errorf("leak test phases = %v, want preparation leak_test fault", names)
	}
	if n := len(sink.EventsOf(protocol.EventGap)); n != 0 {
		t.Errorf("%d gap events", n)
	}
}

// An end the gateway did not see is not claimed: the gateway was away when
// the device went back to ready. The verdict is still the device's,
// because the counter moving on tells which cycle it belongs to.
func TestNextCycleStartsEndNotSeen(t *testing.T) {
	p := parse(t, runningCounterProfile)
	r := newRigWith(t, p)
	d := runningDevice{t: 21, p: 101, counter: 7, res: 1}
	r.observe(d.frame())
	d.counter, d.state, d.prog, d.t, d.p = 8, 4, 1, 135, 313
	r.observe(d.frame())
	r.observe(d.frame())
	r.asm.Unreachable(context.Background(), errors.New("no answer"))
	r.clk.advance(10 * time.Minute)
	d.state, d.res, d.t, d.p = 0, 2, 30, 101 // ended while away: failed
	r.observe(d.frame())
	r.observe(d.frame())
	if n := len(r.sink.Records()); n != 0 {
		t.Fatalf("%d records before the counter moved on", n)
	}
	d.counter, d.state = 9, 1
	r.observe(d.frame())
	recs := r.sink.Records()
	if len(recs) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	rec := recs[0]
	if rec.Cycle != 8 || rec.Result != protocol.ResultFailed || rec.EndSeen || rec.Complete || len(rec.Samples) != 2 || !rec.EndedAt.Equal(rec.Samples[1].At) {
		t.Errorf("record: cycle %d result %s end seen %v complete %v, %d samples, ended %v; want 8, failed, end not seen, incomplete, ended at the last sample",
			rec.Cycle, rec.Result, rec.EndSeen, rec.Complete, len(rec.Samples), rec.EndedAt)
	}
	if len(rec.Holes) != 0 {
		t.Errorf("holes %+v after the record's end", rec.Holes)
	}
}

// After an absence the device is ready with a counter two steps on: the
// verdict it shows is the last cycle's, so the cycle the gateway held data
// for gets no verdict, the one between is a gap, and the last is recorded
// from the latched verdict alone.
func TestNextCycleStartsNeverGuessesAfterAnAbsence(t *testing.T) {
	p := parse(t, runningCounterProfile)
	r := newRigWith(t, p)
	d := runningDevice{t: 21, p: 101, counter: 7, res: 1}
	r.observe(d.frame())
	d.counter, d.state, d.prog, d.t, d.p = 8, 4, 1, 135, 313
	r.observe(d.frame())
	r.restart()
	r.clk.advance(2 * time.Hour)
	d.counter, d.state, d.res, d.t, d.p = 10, 0, 2, 25, 101
	r.observe(d.frame())
	recs := r.sink.Records()
	if len(recs) != 2 || recs[0].Cycle != 8 || recs[0].Result != protocol.ResultUnknown || recs[0].ResultCode != nil ||
		recs[1].Cycle != 10 || recs[1].Result != protocol.ResultFailed || len(recs[1].Samples) != 0 || recs[1].Complete {
		t.Fatalf("records = %+v; want 8 without a verdict, 10 from the latched verdict", recs)
	}
	if gaps := r.sink.EventsOf(protocol.EventGap); len(gaps) != 1 || gaps[0].Cycle != 9 {
		t.Errorf("gap events = %+v; want one for cycle 9", gaps)
	}
	// Cycle 11 starts: nothing is recorded twice.
	d.counter, d.state = 11, 1
	r.observe(d.frame())
	if n := len(r.sink.Records()); n != 2 {
		t.Errorf("%d records after cycle 11 started", n)
	}
}
