package modbus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

// truthOf reads the simulator's truth lines so far.
func truthOf(t *testing.T, l *sim.TruthLog) []sim.Truth {
	t.Helper()
	tr, err := l.Cycles()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// runSim runs the simulator in process on a free loopback port until the
// test ends, and returns its address and truth log.
func runSim(t *testing.T, opts sim.Options, scenarioYAML string) (string, *sim.TruthLog) {
	t.Helper()
	sc, err := scenario.Parse("test-scenario.yaml", []byte(scenarioYAML))
	if err != nil {
		t.Fatal(err)
	}
	truth := &sim.TruthLog{}
	opts.Scenario, opts.Truth, opts.ModbusTCP = sc, truth, "127.0.0.1:0"
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulator: %v", err)
		}
	})
	return s.Addrs()[0], truth
}

// The simulator's power loss raises alarm 92 in the very step that latches
// the cycle as aborted: the gateway sees both in one poll. The record must
// hold the alarm, as seen (not only from the latched last-alarm register),
// whether the poller is faster than the simulator (1×) or slower (120×,
// the demo's speed).
func TestPowerLossAlarmIsInTheRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated cycle in real time")
	}
	for _, c := range []struct {
		name  string
		speed float64
		poll  time.Duration
		fault string
	}{
		// At 1× a short loss early in the cycle, so the test takes 25 s.
		{"1x", 1, 200 * time.Millisecond, "{kind: power_loss, phase: preparation, after: 5s, duration: 10s}"},
		// At 120×, polled every second like the demo, the default: 3 min
		// without power in the hold.
		{"120x", 120, time.Second, "{kind: power_loss}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			addr, truth := runSim(t, sim.Options{Speed: c.speed, Seed: 3}, `
pause: 30m
devices:
  - device: default
    repeat: false
    cycles:
      - program: 134-porous
        faults: [`+c.fault+`]
`)
			prof, _ := profile.Builtin("sim-autoclave")
			sink := &cycletest.Sink{}
			runPoller(t, newTCPLink(t, addr, time.Second, LinkConfig{BackoffMax: 200 * time.Millisecond,
				Units: []UnitConfig{{Device: "ac", Unit: 1, Profile: prof, PollInterval: c.poll, TimeScale: c.speed}}}, sink, &cycletest.Store{}))
			sink.WaitFor(t, 90*time.Second, "the aborted cycle's record", func(s *cycletest.Sink) bool { return len(s.Records()) > 0 })
			rec := sink.Records()[0]
			tr := truthOf(t, truth)
			if len(tr) != 1 || tr[0].Counter != uint32(rec.Cycle) || tr[0].AlarmCode != 92 {
				t.Fatalf("truth %+v for record of cycle %d", tr, rec.Cycle)
			}
			if rec.Result != protocol.ResultAborted {
				t.Errorf("result %s, want aborted", rec.Result)
			}
			var seen, latched int
			for _, al := range rec.Alarms {
				if al.Code == 92 && al.Latched {
					latched++
				} else if al.Code == 92 {
					seen++
				}
			}
			if seen != 1 || latched != 0 {
				t.Errorf("alarms = %+v; want alarm 92 once, as seen in the end poll", rec.Alarms)
			}
			if c.speed != 1 && rec.TimeScale != c.speed {
				t.Errorf("time_scale = %v, want %v", rec.TimeScale, c.speed)
			}
		})
	}
}

// A device whose counter numbers the running cycle, whose result register
// holds the last finished verdict, whose end lasts less than one poll and
// whose profile has no latched counter, polled once per device second:
// one record per cycle with the device's verdict, its end seen, and no
// sample of the next cycle.
func TestRunningCounterDeviceWithAnInstantEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated cycles")
	}
	const speed = 200
	addr, truth := runSim(t, sim.Options{Speed: speed, Seed: 5, Tick: time.Second / speed, InstantFinish: true}, `
pause: 1m
devices:
  - device: default
    counter_start: 300
    cycles:
      - program: bowie-dick
      - program: 134-porous
        faults: [{kind: operator_abort}]
      - program: leak-test
        faults: [{kind: air_leak}]
      - program: bowie-dick
`)
	prof, err := profile.Load("testdata/sim-running-counter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sink := &cycletest.Sink{}
	runPoller(t, newTCPLink(t, addr, time.Second, LinkConfig{
		Units: []UnitConfig{{Device: "rc", Unit: 1, Profile: prof, PollInterval: time.Second / speed, TimeScale: speed}}}, sink, &cycletest.Store{}))
	// Four cycles are recorded once the fifth has started.
	sink.WaitFor(t, 120*time.Second, "four cycle records", func(s *cycletest.Sink) bool { return len(s.Records()) >= 4 })
	byCounter := map[uint64]sim.Truth{}
	for _, tr := range truthOf(t, truth) {
		byCounter[uint64(tr.Counter)] = tr
	}
	for i, rec := range sink.Records()[:4] {
		tr, ok := byCounter[rec.Cycle]
		if !ok {
			t.Fatalf("record of cycle %d, which the simulator did not finish", rec.Cycle)
		}
		if rec.Cycle != uint64(301+i) || string(rec.Result) != tr.Result || rec.Program != tr.Program {
			t.Errorf("record %d: cycle %d %s %s; simulator: cycle %d %s %s", i, rec.Cycle, rec.Program, rec.Result, tr.Counter, tr.Program, tr.Result)
		}
		if !rec.EndSeen {
			t.Errorf("cycle %d: end not seen, though the gateway polled through it", rec.Cycle)
		}
		// The record ends when the device went back to idle: the truth's
		// end, give or take a poll and a simulator step (wall-clock times
		// against device times at 200x: compare durations).
		got := rec.EndedAt.Sub(rec.StartedAt).Seconds() * speed
		want := tr.EndedAt.Sub(tr.StartedAt).Seconds()
		// A poll is 1 device second; the simulator's steps jitter with the
		// host's scheduling by a few more. The pause before the next
		// cycle is 60 s: a record that ran on to it would be far off.
		if i > 0 && (got < want-30 || got > want+30) {
			t.Errorf("cycle %d lasted %.0f device seconds in the record, %.0f in truth", rec.Cycle, got, want)
		}
		for _, s := range rec.Samples {
			if s.Phase == protocol.PhaseIdle {
				t.Errorf("cycle %d holds an idle sample at %v", rec.Cycle, s.At)
				break
			}
		}
		if rec.Program == "leak-test" && rec.Phases[len(rec.Phases)-1].Name != protocol.PhaseFault {
			t.Errorf("leak test phases %+v", rec.Phases)
		}
	}
	if got := fmt.Sprint(sink.EventsOf(protocol.EventGap)); got != "[]" {
		t.Errorf("gap events: %s", got)
	}
}
