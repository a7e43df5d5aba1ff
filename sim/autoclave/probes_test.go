package autoclave

import (
	"math"
	"testing"
)

// The drain probe reads the chamber; the load probe lags it through the
// heat-up with a first-order time constant of tens of seconds, reaches the
// set point within the equilibration phase, and sits within a fraction of
// a kelvin of the chamber on the plateau.
func TestDrainAndLoadProbes(t *testing.T) {
	for _, prog := range []string{"134-porous", "121-15", "gravity-121", "bowie-dick"} {
		_, rep, trace := runCycle(t, prog)
		var maxLag, maxDrainDiff, maxPlateauDiff float64
		inHold := 0
		for _, r := range trace {
			if r.Phase == PhaseHeating {
				maxLag = math.Max(maxLag, r.TrueTempC-r.TrueLoadC)
			}
			maxDrainDiff = math.Max(maxDrainDiff, math.Abs(r.DrainC-r.TrueTempC))
			if r.Phase == PhaseSterilizing {
				inHold++
				if inHold > 60 {
					maxPlateauDiff = math.Max(maxPlateauDiff, math.Abs(r.LoadC-r.TempC))
				}
			}
		}
		t.Logf("%s: heating lag up to %.1f K, equilibration %.0f s, load %.2f..%.2f on the plateau (chamber %.2f..%.2f), |load-chamber| after 60 s of hold ≤ %.2f K, |drain-chamber| ≤ %.2f K",
			prog, maxLag, rep.EquilibrationS, rep.LoadPlateauMinC, rep.LoadPlateauMaxC, rep.PlateauTrueMinC, rep.PlateauTrueMaxC, maxPlateauDiff, maxDrainDiff)
		if maxLag < 1 || maxLag > 10 {
			t.Errorf("%s: the load lags the chamber by at most %.1f K during heat-up; want a visible first-order lag", prog, maxLag)
		}
		if rep.EquilibrationS < 3 || rep.EquilibrationS > 15 {
			t.Errorf("%s: equilibration %.0f s; want the load at the set point within the 15 s equilibration phase", prog, rep.EquilibrationS)
		}
		if rep.LoadPlateauMinC < rep.Program.SetC {
			t.Errorf("%s: the load reads %.2f °C in the hold, below the set point: a healthy cycle would fail a check of every channel", prog, rep.LoadPlateauMinC)
		}
		if maxPlateauDiff > 0.4 {
			t.Errorf("%s: load and chamber differ by %.2f K on the plateau", prog, maxPlateauDiff)
		}
		if maxDrainDiff > 0.4 {
			t.Errorf("%s: the drain probe is %.2f K from the chamber", prog, maxDrainDiff)
		}
	}
}

// With InstantFinish the device is idle at once when a cycle ends, passed
// or failed: no complete phase, no stopped state, for any poll to see.
func TestInstantFinish(t *testing.T) {
	for _, f := range [][]Fault{nil, {{Kind: FaultOperatorAbort}}} {
		p, _ := ProgramByName("bowie-dick")
		d := New(Config{Seed: 3, Stream: 1, InstantFinish: true, CounterStart: 7})
		if err := d.Start(p, f); err != nil {
			t.Fatal(err)
		}
		for range 86400 {
			if rep := d.Step(1); rep != nil {
				r := d.Read()
				if r.Phase != PhaseIdle || r.State != StateIdle || d.Busy() || d.Last().Counter != 8 || r.Counter != 8 {
					t.Fatalf("faults %v: right after the end phase %v state %v counter %d latched %+v", f, r.Phase, r.State, r.Counter, d.Last())
				}
				break
			}
		}
	}
}
