package cycle_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle"
	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
)

// FuzzAssembler drives each cycle-end mode with an arbitrary device (any
// counters, latches, phases, jumps backwards, restarts, clock jumps) and a
// possibly corrupt saved state. It must never panic, every record must pass
// protocol validation (the test sink checks it), no cycle number may be
// recorded twice within one counter epoch, no record holds a sample or a
// hole outside its start and end, and a complete record has its end seen
// and no hole.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 5, 1, 0, 2, 10, 2, 1, 3, 0, 2, 2}, []byte(nil))
	f.Add([]byte{5, 9, 3, 7, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4}, []byte(`{"v":2,"baselined":true,"recorded":3,"current":{"counter":9,"start_ms":5,"n_samples":3}}`))
	f.Add([]byte{1, 1, 1, 1}, []byte(`{"v":2,"current":{"counter":1,"samples":[{"t":1,"T":1,"p":1,"ph":"heating"}]},"pending":[{}]}`))
	// A running-counter device: cycle 1 runs, fails polls, goes idle
	// with a verdict, the gateway restarts, cycle 2 starts; and a state
	// saved with an ended cycle and open holes.
	f.Add([]byte{4, 13, 10, 1, 4, 13, 10, 2, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4, 13, 10, 0, 4, 3, 21, 0, 0, 0, 0, 0, 1, 9, 0, 0, 4, 20, 10, 1, 4, 20, 10, 2},
		[]byte(`{"v":2,"baselined":true,"recorded":0,"last_counter":1,"last_seen_ms":1,"last_active_ms":5,"current":{"counter":1,"start_ms":1,"last_ms":4,"covered_ms":9,"ended_ms":3,"end_seen":true,"missing":[{"from_ms":2,"reason":"poll_errors"}],"holes":[{"from":"2026-01-01T00:00:00Z","to":"2025-01-01T00:00:00Z","reason":"x"}],"n_samples":0}}`))
	modes := []string{"{on: last_cycle_change}", "{on: counter_change}", "{on: phase_enters, phases: [complete, fault]}", "{on: next_cycle_starts}"}
	profiles := make([]*profile.Profile, len(modes))
	for i, m := range modes {
		p, err := profile.Parse("fuzz.yaml", []byte(`
fields:
  t: {address: 0, type: i16, scale: 0.1}
  p: {address: 1, scale: 0.1}
  ph: {address: 2}
  n: {address: 3}
  l: {address: 4}
  res: {address: 5}
  al: {address: 6}
  load: {address: 7, type: i16, scale: 0.1}
  hold: {address: 8}
roles: {chamber_temperature: t, chamber_pressure: p, phase: ph, cycle_counter: n, last_cycle: l, last_result: res,
        last_alarm_code: al, load_temperature: [load], last_hold_seconds: hold, program: res}
phases: {0: idle, 1: heating, 2: sterilizing, 3: complete, 4: fault}
program_phases: {2: {1: leak_test}}
plausible: {chamber_temperature: {min: 0, max: 200}}
results: {1: passed, 2: failed}
alarms: [{field: al, bit: 0, code: 1}, {field: al, bit: 1, code: 2}]
cycle_end: `+m+"\n"))
		if err != nil {
			f.Fatal(err)
		}
		profiles[i] = p
	}
	f.Fuzz(func(t *testing.T, script []byte, saved []byte) {
		if len(script) > 800 {
			script = script[:800] // long scripts only slow the fuzzer down
		}
		for _, p := range profiles {
			sink, store := &cycletest.Sink{}, &cycletest.Store{}
			ctx := context.Background()
			if saved != nil {
				_ = store.SaveState(ctx, "d", saved)
			}
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			newAsm := func() *cycle.Assembler {
				a, err := cycle.New(cycle.Config{Device: "d", Source: "fuzz", Profile: p, Now: clk.now}, sink, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			asm := newAsm()
			for i := 0; i+3 < len(script); i += 4 {
				op, a, b, c := script[i], script[i+1], script[i+2], script[i+3]
				switch op % 8 {
				case 0:
					asm = newAsm() // restart
				case 1:
					clk.advance(time.Duration(a) * time.Minute)
				case 2:
					asm.Unreachable(ctx, context.DeadlineExceeded)
				case 3:
					clk.advance(time.Second)
					asm.PollFailed(ctx, errors.New("exception 4"))
				default:
					clk.advance(time.Second)
					frame := []uint16{uint16(a) * 10, uint16(b) * 10, uint16(c % 6), uint16(a % 8), uint16(b % 8), uint16(c % 3), uint16(op >> 4), uint16(a) * 7, uint16(b)}
					r, err := p.Decode([][]uint16{frame})
					if err != nil {
						t.Fatal(err)
					}
					if err := asm.Observe(ctx, r); err != nil {
						t.Fatalf("Observe: %v", err)
					}
				}
			}
			seen := map[[2]uint64]bool{}
			for _, rec := range sink.Records() {
				k := [2]uint64{uint64(rec.CounterEpoch), rec.Cycle}
				if seen[k] {
					t.Fatalf("%s: cycle %d of epoch %d recorded twice", p.CycleEnd.On, rec.Cycle, rec.CounterEpoch)
				}
				seen[k] = true
				if rec.Complete && (!rec.EndSeen || len(rec.Holes) > 0) {
					t.Fatalf("%s: cycle %d complete with end seen %v and holes %+v", p.CycleEnd.On, rec.Cycle, rec.EndSeen, rec.Holes)
				}
				for i, s := range rec.Samples {
					if s.At.Before(rec.StartedAt) || s.At.After(rec.EndedAt) || (i > 0 && s.At.Before(rec.Samples[i-1].At)) {
						t.Fatalf("%s: cycle %d sample %d at %v outside %v..%v or out of order", p.CycleEnd.On, rec.Cycle, i, s.At, rec.StartedAt, rec.EndedAt)
					}
				}
				for _, h := range rec.Holes {
					if !h.To.After(h.From) || h.From.Before(rec.StartedAt) || h.To.After(rec.EndedAt) {
						t.Fatalf("%s: cycle %d hole %+v outside %v..%v", p.CycleEnd.On, rec.Cycle, h, rec.StartedAt, rec.EndedAt)
					}
				}
			}
		}
	})
}
