package autoclave

import (
	"math"
	"testing"

	"github.com/sterigate/sterigate/protocol/steam"
)

// Every healthy program must pass on the device and in the physics:
// plateau in band, saturated steam, full hold, heat-up within the envelope,
// the vacuum pulses and drying vacuum of domain.md §1.1.
func TestHealthyProgramsPass(t *testing.T) {
	for _, p := range Programs() {
		if p.Kind == LeakTest {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			d, r, trace := runCycle(t, p.Name)
			if r.Result != ResultPassed || r.AlarmCode != 0 || !r.TruthPassed {
				t.Fatalf("result %v alarm %d truth %v, want passed", r.Result, r.AlarmCode, r.TruthPassed)
			}
			if r.PlateauTrueMinC < p.SetC || r.PlateauTrueMaxC > p.SetC+p.BandK {
				t.Errorf("plateau %.2f..%.2f °C outside band %.0f..%.0f", r.PlateauTrueMinC, r.PlateauTrueMaxC, p.SetC, p.SetC+p.BandK)
			}
			if r.TrueHoldS < p.HoldS || r.ReportedHoldS < p.HoldS {
				t.Errorf("hold true %.0f s reported %.0f s, want ≥ %.0f", r.TrueHoldS, r.ReportedHoldS, p.HoldS)
			}
			if math.Abs(r.MaxSatDeviationK) > 2 {
				t.Errorf("max |T−Tsat(p)| on the plateau = %.2f K, want ≤ 2", r.MaxSatDeviationK)
			}
			if r.MaxHeatingKMin > 15 {
				t.Errorf("heat-up %.1f K/min, want ≤ 15", r.MaxHeatingKMin)
			}
			var plateau int
			for _, s := range r.Samples {
				if s.Phase != PhaseSterilizing {
					continue
				}
				plateau++
				if dev := math.Abs(s.TempC - steam.TempC(s.PressureKPa)); dev > 2 {
					t.Errorf("at %.0f s measured %.1f °C at %.1f kPa: %.2f K off saturation", s.AtS, s.TempC, s.PressureKPa, dev)
				}
			}
			if plateau < int(p.HoldS/10)-1 {
				t.Errorf("%d plateau samples, want about %.0f", plateau, p.HoldS/10)
			}
			checkVacuum(t, p, trace)
			l := d.Last()
			if l.Counter != r.Counter || l.Result != ResultPassed || l.ProgramCode != p.Code || l.HoldSeconds < p.HoldS {
				t.Errorf("latched block %+v does not describe cycle %d", l, r.Counter)
			}
			if d.State() != StateIdle {
				t.Errorf("state after a passed cycle = %d, want idle", d.State())
			}
		})
	}
}

// checkVacuum counts the vacuum pulses and checks their depth, the steam
// pulses' height and the drying vacuum.
func checkVacuum(t *testing.T, p Program, trace []Reading) {
	t.Helper()
	var lows, highs []float64
	descending := true
	extreme := 0.0
	dryMin := math.Inf(1)
	for _, r := range trace {
		if r.Phase == PhaseDrying {
			dryMin = math.Min(dryMin, r.TruePressureKPa)
		}
		if r.Phase != PhaseAirRemoval {
			continue
		}
		pr := r.TruePressureKPa
		switch {
		case descending && pr < extreme || extreme == 0:
			extreme = pr
		case descending && pr > extreme+5 && extreme < 50:
			lows, descending, extreme = append(lows, extreme), false, pr
		case !descending && pr > extreme:
			extreme = pr
		case !descending && pr < extreme-5:
			highs, descending, extreme = append(highs, extreme), true, pr
		}
	}
	if p.Kind == Gravity {
		if len(lows) != 0 {
			t.Errorf("gravity cycle pulled %d vacuum pulses", len(lows))
		}
		return
	}
	if len(lows) != p.Pulses {
		t.Errorf("%d vacuum pulses (lows %v), want %d", len(lows), lows, p.Pulses)
	}
	for _, l := range lows {
		if l < 5 || l > 10 {
			t.Errorf("vacuum pulse to %.1f kPa, want 7–10", l)
		}
	}
	for _, h := range highs {
		if h < 100 || h > 150 {
			t.Errorf("steam pulse to %.1f kPa, want 100–150", h)
		}
	}
	if dryMin > 7 {
		t.Errorf("drying vacuum %.1f kPa, want ≤ 7", dryMin)
	}
}

func TestLeakTest(t *testing.T) {
	_, r, _ := runCycle(t, "leak-test")
	if r.Result != ResultPassed || r.LeakRateKPaMin > 0.13 || r.LeakRateKPaMin <= 0 {
		t.Errorf("healthy leak test: %v at %.3f kPa/min, want passed ≤ 0.13", r.Result, r.LeakRateKPaMin)
	}
	if r.LeakP1KPa > 7.5 {
		t.Errorf("P1 %.2f kPa: the test must start from about 7 kPa", r.LeakP1KPa)
	}
	_, r, _ = runCycle(t, "leak-test", Fault{Kind: FaultAirLeak})
	if r.Result != ResultFailed || r.AlarmCode != 91 || r.LeakRateKPaMin <= 0.13 {
		t.Errorf("leaking chamber: %v alarm %d at %.3f kPa/min, want failed 91 > 0.13", r.Result, r.AlarmCode, r.LeakRateKPaMin)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		fault  Fault
		result Result
		alarm  uint16
		check  func(t *testing.T, r *Report)
	}{
		{"air leak shows as air on the plateau", Fault{Kind: FaultAirLeak}, ResultFailed, 60, func(t *testing.T, r *Report) {
			if r.MaxSatDeviationK < 2 {
				t.Errorf("T only %.2f K below Tsat(p), want ≥ 2", r.MaxSatDeviationK)
			}
		}},
		{"non-condensable gas", Fault{Kind: FaultNCG}, ResultFailed, 60, func(t *testing.T, r *Report) {
			if r.MaxSatDeviationK < 2 {
				t.Errorf("T only %.2f K below Tsat(p), want ≥ 2", r.MaxSatDeviationK)
			}
			if r.PlateauTrueMinC < 134 {
				t.Errorf("the controller servoes on the drain: plateau %.2f should stay in band", r.PlateauTrueMinC)
			}
		}},
		{"temperature sag", Fault{Kind: FaultTempSag}, ResultFailed, 84, func(t *testing.T, r *Report) {
			if r.PlateauTrueMinC > 133 || r.ReportedHoldS >= 180 {
				t.Errorf("sag to %.2f °C, hold %.0f s: want below 133 °C and an unfinished hold", r.PlateauTrueMinC, r.ReportedHoldS)
			}
		}},
		{"short sag only pauses the hold timer", Fault{Kind: FaultTempSag, DurationS: 40}, ResultPassed, 0, func(t *testing.T, r *Report) {
			var hold float64
			for i, ph := range r.Phases {
				if ph.Phase == PhaseSterilizing {
					hold = r.Phases[i+1].AtS - ph.AtS
				}
			}
			if hold < 210 {
				t.Errorf("sterilizing lasted %.0f s; the timer should have paused during the sag", hold)
			}
		}},
		{"overshoot", Fault{Kind: FaultOvershoot}, ResultFailed, 66, func(t *testing.T, r *Report) {
			if r.PlateauMeasMaxC <= 137 {
				t.Errorf("plateau max %.2f, want above 137", r.PlateauMeasMaxC)
			}
		}},
		{"heating timeout", Fault{Kind: FaultHeatingTimeout}, ResultFailed, 62, nil},
		{"power loss", Fault{Kind: FaultPowerLoss}, ResultAborted, 92, nil},
		{"operator abort", Fault{Kind: FaultOperatorAbort}, ResultAborted, 93, nil},
		{"stuck temperature sensor", Fault{Kind: FaultSensorStuck}, ResultFailed, 83, nil},
		{"stuck pressure sensor", Fault{Kind: FaultSensorStuck, Sensor: "pressure"}, ResultFailed, 85, nil},
		{"temperature sensor out of range", Fault{Kind: FaultSensorOutOfRange}, ResultFailed, 83, nil},
		{"pressure sensor out of range", Fault{Kind: FaultSensorOutOfRange, Sensor: "pressure"}, ResultFailed, 85, nil},
		{"door seal", Fault{Kind: FaultDoorSeal}, ResultFailed, 72, nil},
		{"lying device hides a sag", Fault{Kind: FaultLying}, ResultPassed, 0, func(t *testing.T, r *Report) {
			if r.ReportedPlateauMinC >= 134 || r.ReportedHoldS < 180 {
				t.Errorf("reported plateau min %.2f hold %.0f: the data must show the violation while claiming the full hold", r.ReportedPlateauMinC, r.ReportedHoldS)
			}
		}},
		{"lying device hides NCG", Fault{Kind: FaultLying, Defect: "ncg"}, ResultPassed, 0, func(t *testing.T, r *Report) {
			if r.MaxSatDeviationK < 2 {
				t.Errorf("T %.2f K below Tsat(p), want ≥ 2", r.MaxSatDeviationK)
			}
		}},
		{"lying device with a short hold", Fault{Kind: FaultLying, Defect: "short_hold"}, ResultPassed, 0, func(t *testing.T, r *Report) {
			if r.TrueHoldS > 100 || r.ReportedHoldS < 180 {
				t.Errorf("true hold %.0f s reported %.0f s", r.TrueHoldS, r.ReportedHoldS)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, r, _ := runCycle(t, "134-porous", c.fault)
			if r.Result != c.result || r.AlarmCode != c.alarm {
				t.Fatalf("result %v alarm %d, want %v alarm %d (alarms %+v)", r.Result, r.AlarmCode, c.result, c.alarm, r.Alarms)
			}
			wantTruth := c.result == ResultPassed && c.fault.Kind != FaultLying
			if r.TruthPassed != wantTruth {
				t.Errorf("truth verdict %v, want %v", r.TruthPassed, wantTruth)
			}
			l := d.Last()
			if l.Result != c.result || l.AlarmCode != c.alarm || l.Counter != r.Counter {
				t.Errorf("latched block %+v", l)
			}
			if c.result != ResultPassed && d.State() != StateStopped {
				t.Errorf("state %d after a failed cycle, want stopped", d.State())
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func TestPowerLossSilencesTheDevice(t *testing.T) {
	p, _ := ProgramByName("134-porous")
	d := New(Config{Seed: 1})
	if err := d.Start(p, []Fault{{Kind: FaultPowerLoss, DurationS: 120}}); err != nil {
		t.Fatal(err)
	}
	var off float64
	for d.Step(1) == nil {
		if !d.Powered() {
			off++
			if err := d.Start(p, nil); err == nil {
				t.Fatal("a dead device accepted a new cycle")
			}
		}
		if d.Clock() > 7200 {
			t.Fatal("cycle never ended")
		}
	}
	if off < 119 || off > 121 {
		t.Errorf("device was silent %.0f s, want 120", off)
	}
	if d.Last().Result != ResultAborted || d.Read().AlarmBits&(1<<AlarmPower.Bit) == 0 {
		t.Errorf("after power returns: last %+v alarm bits %b", d.Last(), d.Read().AlarmBits)
	}
}

func TestRegistersEncodeTheMap(t *testing.T) {
	d, r, _ := runCycle(t, "134-porous")
	var img [24]uint16
	d.Registers(&img)
	counter := uint32(img[16])<<16 | uint32(img[17])
	if counter != r.Counter || uint32(img[5])<<16|uint32(img[6]) != r.Counter {
		t.Errorf("counters %d/%d, want %d", counter, uint32(img[5])<<16|uint32(img[6]), r.Counter)
	}
	if img[18] != 1 || img[19] != 1 || img[20] != 0 || img[10] != 0 {
		t.Errorf("result/program/alarm/state = %d/%d/%d/%d", img[18], img[19], img[20], img[10])
	}
	if got := float64(int16(img[21])) / 10; math.Abs(got-r.PlateauMeasMinC) > 0.051 {
		t.Errorf("plateau min %.1f, want %.2f", got, r.PlateauMeasMinC)
	}
	if got := float64(int16(img[22])) / 10; math.Abs(got-r.PlateauMeasMaxC) > 0.051 {
		t.Errorf("plateau max %.1f, want %.2f", got, r.PlateauMeasMaxC)
	}
	if img[23] != 180 {
		t.Errorf("hold seconds %d, want 180", img[23])
	}
	chamber := float64(int16(img[0])) / 10
	if drain, load := float64(int16(img[12]))/10, float64(int16(img[13]))/10; math.Abs(drain-chamber) > 0.5 || math.Abs(load-chamber) > 3 {
		t.Errorf("drain %.1f and load %.1f °C, chamber %.1f °C", drain, load, chamber)
	}
	for a := 14; a <= 15; a++ {
		if img[a] != 0 {
			t.Errorf("reserved register %d = %d", a, img[a])
		}
	}
	// Negative temperatures are two's complement.
	if v := uint16(scaled(-12.3)); int16(v) != -123 {
		t.Errorf("scaled(-12.3) = %d", int16(v))
	}
}

func TestFaultValidation(t *testing.T) {
	bad := []Fault{
		{Kind: "meteor"},
		{Kind: FaultAirLeak, Params: map[string]float64{"depth_k": 1}},
		{Kind: FaultSensorStuck, Sensor: "humidity"},
		{Kind: FaultNCG, Sensor: "pressure"},
		{Kind: FaultLying, Defect: "everything"},
		{Kind: FaultTempSag, DurationS: -1},
	}
	for _, f := range bad {
		if err := f.Normalize(); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

func TestSameSeedSameCycle(t *testing.T) {
	_, a, _ := runCycle(t, "134-porous")
	_, b, _ := runCycle(t, "134-porous")
	if a.PlateauMeasMinC != b.PlateauMeasMinC || a.EndS != b.EndS {
		t.Errorf("two runs with one seed differ: %v/%v %v/%v", a.PlateauMeasMinC, b.PlateauMeasMinC, a.EndS, b.EndS)
	}
}
