package verify_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
	"github.com/sterigate/sterigate/protocol/verify"
	"github.com/sterigate/sterigate/protocol/verify/verifytest"
)

// porous134 is the criteria of a 134 °C / 3 min porous program.
func porous134(t *testing.T) protocol.Criteria {
	t.Helper()
	c, err := verify.Standard(verify.KindPorous, 134, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkNamed returns the check called name, failing the test if absent.
func checkNamed(t *testing.T, v protocol.Verification, name string) protocol.Check {
	t.Helper()
	for _, c := range v.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %s", name, dump(v))
	return protocol.Check{}
}

func hasCheck(v protocol.Verification, name string) bool {
	for _, c := range v.Checks {
		if c.Name == name {
			return true
		}
	}
	return false
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// holdStart is when the hold of a default verifytest.Cycle begins: after
// 1 min of air removal, 2 min of heating and 10 s of equilibration.
var holdStart = verifytest.T0.Add(3*time.Minute + 10*time.Second)

type want struct {
	result   string
	measured float64 // NaN: no measured value expected
	at       time.Time
}

func expect(t *testing.T, v protocol.Verification, name string, w want) {
	t.Helper()
	c := checkNamed(t, v, name)
	if c.Result != w.result {
		t.Errorf("%s: result %s, want %s (%s)", name, c.Result, w.result, c.Note)
	}
	if c.OK != (w.result == protocol.CheckPass || w.result == protocol.CheckInfo) {
		t.Errorf("%s: ok %v with result %s", name, c.OK, c.Result)
	}
	switch {
	case math.IsNaN(w.measured) && c.Measured != nil:
		t.Errorf("%s: measured %v, want none", name, *c.Measured)
	case !math.IsNaN(w.measured) && (c.Measured == nil || math.Abs(*c.Measured-w.measured) > 0.0015):
		t.Errorf("%s: measured %v, want %v (%s)", name, ptr(c.Measured), w.measured, c.Note)
	}
	switch {
	case w.at.IsZero() && c.At != nil && w.result != protocol.CheckPass:
		// a first violation not asked about
	case !w.at.IsZero() && (c.At == nil || !c.At.Equal(w.at)):
		t.Errorf("%s: at %v, want %v", name, c.At, w.at)
	}
}

func ptr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

var none = math.NaN()

// dipAt sets the chamber to tempC (saturated, so only the band moves) in
// the hold from `from` for `length`.
func dipAt(from, length time.Duration, tempC float64) func(time.Duration, *verifytest.Reading) {
	return func(e time.Duration, r *verifytest.Reading) {
		if e >= from && e < from+length {
			*r = verifytest.Saturated(tempC)
		}
	}
}

func TestTemperatureBand(t *testing.T) {
	at60 := holdStart.Add(60 * time.Second)
	cases := []struct {
		name    string
		c       verifytest.Cycle
		bandK   float64
		verdict string
		band    want
	}{
		{"on the lower edge", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 134)}, 0, protocol.VerdictPass, want{protocol.CheckPass, 134, time.Time{}}},
		{"just inside the lower edge", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 134.01)}, 0, protocol.VerdictPass, want{protocol.CheckPass, 134.01, time.Time{}}},
		{"just below the band", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 133.99)}, 0, protocol.VerdictFail, want{protocol.CheckFail, 133.99, at60}},
		{"on the upper edge", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 137)}, 0, protocol.VerdictPass, want{protocol.CheckPass, 135, time.Time{}}},
		{"just inside the upper edge", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 136.99)}, 0, protocol.VerdictPass, want{protocol.CheckPass, 135, time.Time{}}},
		{"just above the band", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 137.01)}, 0, protocol.VerdictFail, want{protocol.CheckFail, 137.01, at60}},
		{"a 4 K band (EN 13060) takes 138 °C", verifytest.Cycle{During: dipAt(60*time.Second, time.Second, 138)}, 4, protocol.VerdictPass, want{protocol.CheckPass, 135, time.Time{}}},
		{"a load probe below the band", verifytest.Cycle{Probes: true, During: func(e time.Duration, r *verifytest.Reading) {
			if e >= 100*time.Second {
				r.Ch[verifytest.Load] = 133.5
			}
		}}, 0, protocol.VerdictFail, want{protocol.CheckFail, 133.5, holdStart.Add(100 * time.Second)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := porous134(t)
			c.BandK = tc.bandK
			v := verify.Check(tc.c.Record(), c)
			expect(t, v, verify.CheckTemperatureBand, tc.band)
			if v.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %v", v.Verdict, tc.verdict, v.Reasons)
			}
		})
	}
}

func TestHoldTime(t *testing.T) {
	// 1 Hz samples: the samples place a hold to within a second.
	late := func(d time.Duration) func(*protocol.CycleRecord) {
		return func(rec *protocol.CycleRecord) {
			for i := range rec.Samples {
				if rec.Samples[i].Phase == protocol.PhaseSterilizing {
					rec.Samples[i].At = rec.Samples[i].At.Add(d)
					return
				}
			}
		}
	}
	type holdCase struct {
		name   string
		c      verifytest.Cycle
		edit   func(*protocol.CycleRecord)
		minS   float64
		result string
		held   float64
	}
	cases := []holdCase{
		{"exactly the minimum", verifytest.Cycle{Hold: 180 * time.Second}, nil, 0, protocol.CheckPass, 180},
		{"a second more", verifytest.Cycle{Hold: 181 * time.Second}, nil, 0, protocol.CheckPass, 181},
		{"a second short: cannot have reached it", verifytest.Cycle{Hold: 179 * time.Second}, nil, 0, protocol.CheckFail, 179},
		{"half a second short, within the sampling", verifytest.Cycle{Hold: 180 * time.Second}, late(500 * time.Millisecond), 0, protocol.CheckIndeterminate, 179.5},
		{"a prion hold of 18 min", verifytest.Cycle{Hold: 18 * time.Minute}, nil, 1080, protocol.CheckPass, 1080},
		{"a porous hold judged as prion", verifytest.Cycle{Hold: 3 * time.Minute}, nil, 1080, protocol.CheckFail, 180},
		// A 20 s sag from 60 s: the hold counts only between two in-band
		// samples, 0→59 s and 80→179 s, and the last second up to the
		// exhaust sample: 59 + 99 + 1.
		{"a sag pauses the count", verifytest.Cycle{Hold: 180 * time.Second, During: dipAt(60*time.Second, 20*time.Second, 133)}, nil, 0, protocol.CheckFail, 159},
	}
	// The gateway came up in the middle of the hold, or lost the device
	// there: the samples show a short hold, but not that it was short.
	cases = append(cases, holdCase{"the gateway saw only the end of the hold", verifytest.Cycle{}, func(rec *protocol.CycleRecord) {
		for i := range rec.Samples {
			if rec.Samples[i].Phase == protocol.PhaseSterilizing {
				rec.Samples = rec.Samples[i+100:]
				break
			}
		}
		rec.StartedAt, rec.Complete = rec.Samples[0].At, false
	}, 0, protocol.CheckIndeterminate, 80}, holdCase{"the record stops in the hold, its end unseen", verifytest.Cycle{}, func(rec *protocol.CycleRecord) {
		for i := range rec.Samples {
			if rec.Samples[i].Phase == protocol.PhaseSterilizing {
				rec.Samples = rec.Samples[:i+100]
				break
			}
		}
		rec.EndedAt, rec.EndSeen, rec.Complete = rec.Samples[len(rec.Samples)-1].At, false, false
	}, 0, protocol.CheckIndeterminate, 99}, holdCase{"power lost in the hold, the end seen", verifytest.Cycle{}, func(rec *protocol.CycleRecord) {
		for i := range rec.Samples {
			if rec.Samples[i].Phase == protocol.PhaseSterilizing {
				rec.Samples = rec.Samples[:i+100]
				break
			}
		}
		rec.EndedAt, rec.Result = rec.Samples[len(rec.Samples)-1].At, protocol.ResultAborted
	}, 0, protocol.CheckFail, 99})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.c.Record()
			if tc.edit != nil {
				tc.edit(&rec)
			}
			c := porous134(t)
			if tc.minS > 0 {
				c.MinHoldSeconds = tc.minS
			}
			v := verify.Check(rec, c)
			expect(t, v, verify.CheckHoldTime, want{tc.result, tc.held, time.Time{}})
		})
	}
}

func TestSaturatedSteam(t *testing.T) {
	// The pressure of saturated steam at 137 °C; the chamber temperature
	// is put a given distance from Tsat(p) computed back from it.
	p := steam.PressureKPa(137)
	tsat := steam.TempC(p)
	off := func(dev float64) func(time.Duration, *verifytest.Reading) {
		return func(e time.Duration, r *verifytest.Reading) {
			if e == 30*time.Second {
				r.TempC, r.PressureKPa = tsat+dev, p
			}
		}
	}
	at30 := holdStart.Add(30 * time.Second)
	cases := []struct {
		name string
		dev  float64
		w    want
		note string
	}{
		{"2 K below", -2, want{protocol.CheckPass, 2, time.Time{}}, "below"},
		{"1.99 K below", -1.99, want{protocol.CheckPass, 1.99, time.Time{}}, "below"},
		{"2.01 K below: air", -2.01, want{protocol.CheckFail, 2.01, at30}, "air or non-condensable gas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := verify.Check(verifytest.Cycle{HoldTempC: 135.5, During: off(tc.dev)}.Record(), porous134(t))
			expect(t, v, verify.CheckSaturatedSteam, tc.w)
			if c := checkNamed(t, v, verify.CheckSaturatedSteam); !strings.Contains(c.Note, tc.note) {
				t.Errorf("note %q lacks %q", c.Note, tc.note)
			}
		})
	}
	// Above Tsat, with the band (134–137 °C) still met: steam over the
	// pressure of 134 °C steam.
	superheated := func(dev float64) func(time.Duration, *verifytest.Reading) {
		q := steam.PressureKPa(134)
		return func(e time.Duration, r *verifytest.Reading) {
			if e == 30*time.Second {
				r.TempC, r.PressureKPa = steam.TempC(q)+dev, q
			}
		}
	}
	for _, tc := range []struct {
		dev float64
		w   want
	}{
		{2, want{protocol.CheckPass, 2, time.Time{}}},
		{2.01, want{protocol.CheckFail, 2.01, at30}},
	} {
		v := verify.Check(verifytest.Cycle{During: superheated(tc.dev)}.Record(), porous134(t))
		expect(t, v, verify.CheckSaturatedSteam, tc.w)
		if c := checkNamed(t, v, verify.CheckSaturatedSteam); tc.w.result == protocol.CheckFail && !strings.Contains(c.Note, "superheated") {
			t.Errorf("superheat note: %q", c.Note)
		}
	}
}

func TestEquilibrationTime(t *testing.T) {
	// The load probe reaches the set point exactly LoadLag after the
	// chamber and the drain (see verifytest.Cycle); a 20 s equilibration
	// phase keeps it out of the hold.
	plateau := verifytest.T0.Add(3 * time.Minute)
	cases := []struct {
		name   string
		lag    time.Duration
		limit  float64
		shiftB time.Duration // move the sample where the load arrives later
		w      want
	}{
		{"14 s", 14 * time.Second, 0, 0, want{protocol.CheckPass, 14, time.Time{}}},
		{"15 s, on the limit", 15 * time.Second, 0, 0, want{protocol.CheckPass, 15, time.Time{}}},
		{"16 s: more than 15 even a sample earlier", 16 * time.Second, 0, 0, want{protocol.CheckFail, 16, plateau.Add(15 * time.Second)}},
		{"15.5 s with a late sample: could be either", 15 * time.Second, 0, 500 * time.Millisecond, want{protocol.CheckIndeterminate, 15.5, time.Time{}}},
		{"16 s in a large chamber (30 s)", 16 * time.Second, 30, 0, want{protocol.CheckPass, 16, time.Time{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := verifytest.Cycle{Probes: true, LoadLag: tc.lag, Equil: 20 * time.Second}.Record()
			if tc.shiftB != 0 {
				for i := range rec.Samples {
					if rec.Samples[i].At.Equal(plateau.Add(tc.lag)) {
						rec.Samples[i].At = rec.Samples[i].At.Add(tc.shiftB)
					}
				}
			}
			c := porous134(t)
			c.EquilibrationSeconds = tc.limit
			v := verify.Check(rec, c)
			expect(t, v, verify.CheckEquilibrationTime, tc.w)
		})
	}
	// A load probe declared but never read cannot make the equilibration
	// fail: the data say nothing about it.
	rec := verifytest.Cycle{Probes: true}.Record()
	for i := range rec.Samples {
		delete(rec.Samples[i].Ch, verifytest.Load)
	}
	v := verify.Check(rec, porous134(t))
	expect(t, v, verify.CheckEquilibrationTime, want{protocol.CheckIndeterminate, none, time.Time{}})
	if v.Verdict != protocol.VerdictIndeterminate {
		t.Errorf("a load probe never read: verdict %s: %v", v.Verdict, v.Reasons)
	}
	// Without a load or drain probe there is nothing to measure.
	if v := verify.Check(verifytest.Cycle{}.Record(), porous134(t)); hasCheck(v, verify.CheckEquilibrationTime) {
		t.Errorf("equilibration judged without a probe: %s", dump(v.Checks))
	}
}

func TestTemperatureSpread(t *testing.T) {
	// The load probe held at 134.0 °C while the chamber reads HoldTempC.
	load134 := func(e time.Duration, r *verifytest.Reading) { r.Ch[verifytest.Load] = 134 }
	for _, tc := range []struct {
		holdC float64
		w     want
	}{
		{135.99, want{protocol.CheckPass, 1.99, time.Time{}}},
		{136, want{protocol.CheckPass, 2, time.Time{}}},
		{136.01, want{protocol.CheckFail, 2.01, holdStart}},
	} {
		v := verify.Check(verifytest.Cycle{Probes: true, HoldTempC: tc.holdC, During: load134}.Record(), porous134(t))
		expect(t, v, verify.CheckTemperatureSpread, tc.w)
	}
	if v := verify.Check(verifytest.Cycle{}.Record(), porous134(t)); hasCheck(v, verify.CheckTemperatureSpread) {
		t.Errorf("spread judged with one channel")
	}
}

// plateauOnly is a record of a hold at tempC for d, with one sample
// below 100 °C on either side: its F0 is d × 10^((T − 121.1)/10).
func plateauOnly(tempC float64, d time.Duration) protocol.CycleRecord {
	return verifytest.New("x", time.Second).
		Phase(protocol.PhaseHeating, time.Second, func(time.Duration) verifytest.Reading { return verifytest.Saturated(99) }).
		Phase(protocol.PhaseSterilizing, d, func(time.Duration) verifytest.Reading { return verifytest.Saturated(tempC) }).
		Phase(protocol.PhaseExhaust, time.Second, func(time.Duration) verifytest.Reading { return verifytest.Saturated(90) }).
		Record()
}

func TestF0(t *testing.T) {
	for _, tc := range []struct {
		tempC float64
		d     time.Duration
		scale float64
		f0    float64
	}{
		{134, 3 * time.Minute, 0, 58.495},         // 3 × 10^1.29
		{134, 18 * time.Minute, 0, 350.97},        // 18 × 10^1.29
		{121, 15 * time.Minute, 0, 14.659},        // 15 × 10^-0.01
		{134, 9 * time.Second, 20, 58.495},        // 9 s of a simulator at 20×: 3 device minutes
		{121.1, 1 * time.Minute, 0, 1},            // the definition
		{99.9, 10 * time.Minute, 0, 0},            // below 100 °C nothing counts
		{111.1, 10 * time.Minute, 0, 1 * 10 / 10}, // 10 min × 10^-1
	} {
		rec := plateauOnly(tc.tempC, tc.d)
		rec.TimeScale = tc.scale
		v := verify.Check(rec, porous134(t))
		c := checkNamed(t, v, verify.CheckF0)
		if c.Result != protocol.CheckInfo || !c.OK || c.Measured == nil || math.Abs(*c.Measured-tc.f0) > 0.01 {
			t.Errorf("F0 of %v °C × %v (scale %v) = %v (%s), want %v", tc.tempC, tc.d, tc.scale, ptr(c.Measured), c.Result, tc.f0)
		}
	}
}

func TestSampleInterval(t *testing.T) {
	cases := []struct {
		name    string
		c       verifytest.Cycle
		edit    func(*protocol.CycleRecord)
		w       want
		verdict string
		note    string
	}{
		{"every second", verifytest.Cycle{}, nil, want{protocol.CheckPass, 1, time.Time{}}, protocol.VerdictPass, ""},
		{"every 2.5 s, on the limit", verifytest.Cycle{Every: 2500 * time.Millisecond}, nil, want{protocol.CheckPass, 2.5, time.Time{}}, protocol.VerdictPass, ""},
		{"every 2.6 s", verifytest.Cycle{Every: 2600 * time.Millisecond}, nil, want{protocol.CheckIndeterminate, 2.6, time.Time{}}, protocol.VerdictIndeterminate, "2.6 s without a reading"},
		// A printer tap prints a line every 30 s: a 20 s sag between two
		// lines would not show.
		{"a printout every 30 s", verifytest.Cycle{Every: 30 * time.Second}, nil, want{protocol.CheckIndeterminate, 30, time.Time{}}, protocol.VerdictIndeterminate, "a dip shorter than that would not show"},
		{"a load probe read every other second", verifytest.Cycle{Probes: true}, func(rec *protocol.CycleRecord) {
			for i := range rec.Samples {
				if i%2 == 1 {
					delete(rec.Samples[i].Ch, verifytest.Load)
				}
			}
		}, want{protocol.CheckPass, 2, time.Time{}}, protocol.VerdictPass, ""},
		{"a load probe missing for 3 samples in the hold", verifytest.Cycle{Probes: true}, func(rec *protocol.CycleRecord) {
			for i := range rec.Samples {
				if d := rec.Samples[i].At.Sub(holdStart); d >= 50*time.Second && d < 53*time.Second {
					delete(rec.Samples[i].Ch, verifytest.Load)
				}
			}
		}, want{protocol.CheckIndeterminate, 4, holdStart.Add(49 * time.Second)}, protocol.VerdictIndeterminate, "load_1"},
		{"a hole in the hold", verifytest.Cycle{}, func(rec *protocol.CycleRecord) {
			// Samples every second around a hole the driver reported:
			// whatever the intervals, a hole is a hole.
			rec.Holes = []protocol.Hole{{From: holdStart.Add(10 * time.Second), To: holdStart.Add(11 * time.Second), Reason: protocol.HolePollErrors}}
			rec.Complete = false
		}, want{protocol.CheckIndeterminate, 1, time.Time{}}, protocol.VerdictIndeterminate, "poll_errors"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.c.Record()
			if tc.edit != nil {
				tc.edit(&rec)
			}
			v := verify.Check(rec, porous134(t))
			expect(t, v, verify.CheckSampleInterval, tc.w)
			if v.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %v", v.Verdict, tc.verdict, v.Reasons)
			}
			if !strings.Contains(strings.Join(v.Reasons, "\n")+checkNamed(t, v, verify.CheckSampleInterval).Note, tc.note) {
				t.Errorf("reasons %q lack %q", v.Reasons, tc.note)
			}
		})
	}
}

// A printer-port tap prints the hold every 30 s; its record cannot show a
// pass, says why, and still catches what its lines do show.
func TestPrinterTapRecord(t *testing.T) {
	rec := verifytest.Cycle{Program: "Universal/134°C/3min", Every: 30 * time.Second}.Record()
	rec.Source = "printer"
	v := verify.Judge(rec, nil)
	if v.Verdict != protocol.VerdictIndeterminate || v.AgreesWithDevice == nil || *v.AgreesWithDevice {
		t.Fatalf("printer record: %s", dump(v))
	}
	c := checkNamed(t, v, verify.CheckSampleInterval)
	if !strings.Contains(c.Note, "30 s without a reading") || !strings.Contains(strings.Join(v.Reasons, " "), "sample_interval") {
		t.Errorf("does not say why: %q / %q", c.Note, v.Reasons)
	}
	if v.Criteria.Source != verify.SourceInferred || v.Criteria.SetPointC != 134 {
		t.Errorf("criteria %+v", v.Criteria)
	}
	// A printed line below the band is still a fail.
	// The hold starts at 190 s; lines are printed at 210 s, 240 s, …
	rec = verifytest.Cycle{Program: "Universal/134°C/3min", Every: 30 * time.Second, During: dipAt(50*time.Second, time.Second, 132)}.Record()
	if v := verify.Judge(rec, nil); v.Verdict != protocol.VerdictFail {
		t.Errorf("a printed sag: %s", v.Verdict)
	}
}

// Scaling the sample interval above the limit never yields a pass, whatever
// the cycle looks like between the samples.
func TestSparseSamplesNeverPass(t *testing.T) {
	seed := uint64(20260302)
	rnd := func() float64 { // xorshift: reproducible without global state
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return float64(seed%1_000_000) / 1_000_000
	}
	for i := 0; i < 300; i++ {
		limit := 1 + 4*rnd()
		every := time.Duration((limit*(1.001+10*rnd()))*1e3) * time.Millisecond
		c := verifytest.Cycle{
			Every:     every,
			HoldTempC: 134.2 + 2.6*rnd(),
			Hold:      time.Duration(180+600*rnd()) * time.Second,
			Probes:    rnd() < 0.5,
			LoadLag:   time.Duration(1+10*rnd()) * time.Second,
		}
		crit := porous134(t)
		crit.MaxSampleIntervalSeconds = limit
		v := verify.Check(c.Record(), crit)
		if v.Verdict == protocol.VerdictPass {
			t.Fatalf("sampled every %v against a %.3f s limit: pass\n%s", every, limit, dump(v))
		}
		if si := checkNamed(t, v, verify.CheckSampleInterval); si.Result != protocol.CheckIndeterminate {
			t.Fatalf("sample_interval %s at %v against %.3f s", si.Result, every, limit)
		}
	}
}

// A device that says passed while its own chamber data show a 2.5 K sag
// for 20 s, or air in the steam, is caught and the disagreement said.
func TestLyingDevice(t *testing.T) {
	pAir := steam.PressureKPa(137) // 134.5 °C measured at the pressure of 137 °C steam: 2.5 K of air
	for name, c := range map[string]verifytest.Cycle{
		"sag":         {During: dipAt(60*time.Second, 20*time.Second, 132.5)},
		"ncg":         {HoldTempC: 134.5, During: func(_ time.Duration, r *verifytest.Reading) { r.PressureKPa = pAir }},
		"short hold":  {Hold: 90 * time.Second},
		"sag, probes": {Probes: true, During: dipAt(60*time.Second, 20*time.Second, 132.5)},
	} {
		t.Run(name, func(t *testing.T) {
			c.Program = "134-porous"
			rec := c.Record()
			if rec.Result != protocol.ResultPassed {
				t.Fatal("the fixture's device must say passed")
			}
			v := verify.Judge(rec, nil)
			if v.Verdict != protocol.VerdictFail || v.AgreesWithDevice == nil || *v.AgreesWithDevice {
				t.Fatalf("lying device (%s): %s", name, dump(v))
			}
		})
	}
}

func TestLeakTest(t *testing.T) {
	leakStart := verifytest.T0.Add(2 * time.Minute)
	cases := []struct {
		name    string
		l       verifytest.LeakTest
		w       want
		verdict string
	}{
		{"0.129 kPa/min", verifytest.LeakTest{RateKPaMin: 0.129}, want{protocol.CheckPass, 0.129, time.Time{}}, protocol.VerdictPass},
		{"0.13 kPa/min, on the limit", verifytest.LeakTest{RateKPaMin: 0.13}, want{protocol.CheckPass, 0.13, time.Time{}}, protocol.VerdictPass},
		// P2 is the last sample before 900 s: 899 s.
		{"0.131 kPa/min", verifytest.LeakTest{RateKPaMin: 0.131}, want{protocol.CheckFail, 0.131, leakStart.Add(899 * time.Second)}, protocol.VerdictFail},
		{"1 kPa/min", verifytest.LeakTest{RateKPaMin: 1}, want{protocol.CheckFail, 1, leakStart.Add(899 * time.Second)}, protocol.VerdictFail},
		{"stopped at 10 min, slow", verifytest.LeakTest{RateKPaMin: 0.1, Duration: 10 * time.Minute}, want{protocol.CheckIndeterminate, none, time.Time{}}, protocol.VerdictIndeterminate},
		// 0.5 kPa/min from 300 s to 599 s: 2.49 kPa, more than the 1.3
		// kPa all ten minutes allow.
		{"stopped at 10 min, already too fast", verifytest.LeakTest{RateKPaMin: 0.5, Duration: 10 * time.Minute}, want{protocol.CheckFail, 0.5, leakStart.Add(599 * time.Second)}, protocol.VerdictFail},
		{"sampled every 30 s", verifytest.LeakTest{RateKPaMin: 0.1, Every: 30 * time.Second}, want{protocol.CheckIndeterminate, none, time.Time{}}, protocol.VerdictIndeterminate},
		{"a simulator at 20×", verifytest.LeakTest{RateKPaMin: 0.12, Every: 50 * time.Millisecond, Duration: 45 * time.Second, TimeScale: 20}, want{protocol.CheckPass, 0.12, time.Time{}}, protocol.VerdictPass},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := verify.Judge(tc.l.Record(), nil)
			expect(t, v, verify.CheckLeakRate, tc.w)
			if v.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %v", v.Verdict, tc.verdict, v.Reasons)
			}
			if v.Criteria.Kind != verify.KindLeakTest {
				t.Errorf("criteria %+v", v.Criteria)
			}
		})
	}
}

func TestBowieDickIsNotApplicable(t *testing.T) {
	rec := verifytest.Cycle{Program: "bowie-dick", Hold: 210 * time.Second}.Record()
	v := verify.Judge(rec, nil)
	if v.Verdict != protocol.VerdictNotApplicable || v.AgreesWithDevice != nil {
		t.Fatalf("Bowie-Dick: %s", dump(v))
	}
	if len(v.Reasons) == 0 || !strings.Contains(v.Reasons[0], "indicator sheet") || !strings.Contains(v.Reasons[0], "uniformly") {
		t.Errorf("reasons do not say what to check: %q", v.Reasons)
	}
	// Air in the chamber during the test cycle is a fail whatever the
	// sheet shows.
	rec = verifytest.Cycle{Program: "bowie-dick", Hold: 210 * time.Second, HoldTempC: 134.5,
		During: func(_ time.Duration, r *verifytest.Reading) { r.PressureKPa = steam.PressureKPa(137) }}.Record()
	if v := verify.Judge(rec, nil); v.Verdict != protocol.VerdictFail || v.AgreesWithDevice == nil || *v.AgreesWithDevice {
		t.Errorf("Bowie-Dick on air: %s", dump(v))
	}
}

// time_scale 20: a simulator's 9 s wall-clock hold is 180 s of device
// time, and the last 0.5 s of its equilibration with every probe in band
// 10 s more.
func TestTimeScale(t *testing.T) {
	c := verifytest.Cycle{Hold: 9 * time.Second, Every: 100 * time.Millisecond, Equil: time.Second, Heat: 6 * time.Second, TimeScale: 20, Probes: true, LoadLag: 500 * time.Millisecond}
	v := verify.Check(c.Record(), porous134(t))
	expect(t, v, verify.CheckHoldTime, want{protocol.CheckPass, 190, time.Time{}})
	expect(t, v, verify.CheckSampleInterval, want{protocol.CheckPass, 2, time.Time{}})
	expect(t, v, verify.CheckEquilibrationTime, want{protocol.CheckPass, 10, time.Time{}})
	if v.Verdict != protocol.VerdictPass || v.Criteria.TimeScale != 20 {
		t.Errorf("verdict %s, criteria %+v: %v", v.Verdict, v.Criteria, v.Reasons)
	}
	// The same record read as real time: a 9.5 s hold.
	c.TimeScale = 0
	v = verify.Check(c.Record(), porous134(t))
	expect(t, v, verify.CheckHoldTime, want{protocol.CheckFail, 9.5, time.Time{}})
	// Polled once a second at 20×: 20 s of device time between samples.
	c.TimeScale, c.Every = 20, time.Second
	c.Hold, c.Equil, c.Heat = 9*time.Second, 2*time.Second, 6*time.Second
	v = verify.Check(c.Record(), porous134(t))
	expect(t, v, verify.CheckSampleInterval, want{protocol.CheckIndeterminate, 20, time.Time{}})
}

func TestRecordCompleteness(t *testing.T) {
	good := func() protocol.CycleRecord { return verifytest.Cycle{}.Record() }
	cases := []struct {
		name    string
		edit    func(*protocol.CycleRecord)
		verdict string
		note    string
	}{
		{"complete", func(*protocol.CycleRecord) {}, protocol.VerdictPass, ""},
		{"incomplete", func(r *protocol.CycleRecord) { r.Complete = false }, protocol.VerdictIndeterminate, "complete: false"},
		{"end not seen", func(r *protocol.CycleRecord) { r.EndSeen = false }, protocol.VerdictIndeterminate, "end_seen: false"},
		{"a hole outside the hold", func(r *protocol.CycleRecord) {
			r.Holes = []protocol.Hole{{From: verifytest.T0.Add(10 * time.Second), To: verifytest.T0.Add(11 * time.Second), Reason: protocol.HoleDeviceOffline}}
		}, protocol.VerdictIndeterminate, "device_offline"},
		{"samples out of order", func(r *protocol.CycleRecord) { r.Samples[5].At = verifytest.T0.Add(-time.Hour) }, protocol.VerdictIndeterminate, "samples[5].t"},
		{"negative time_scale", func(r *protocol.CycleRecord) { r.TimeScale = -1 }, protocol.VerdictIndeterminate, "time_scale -1"},
		{"absurd time_scale", func(r *protocol.CycleRecord) { r.TimeScale = 1e300 }, protocol.VerdictIndeterminate, "time_scale 1e+300"},
		{"no samples at all", func(r *protocol.CycleRecord) { r.Samples = nil; r.Complete = false }, protocol.VerdictIndeterminate, "no samples"},
		// The cycle stopped in heating (a heating timeout) and the gateway
		// saw it all: the data show no hold.
		{"the hold was never reached", func(r *protocol.CycleRecord) {
			r.Samples = r.Samples[:150]
			r.Result = protocol.ResultFailed
		}, protocol.VerdictFail, "ended without reaching the sterilizing phase"},
		{"no hold, and the record is incomplete", func(r *protocol.CycleRecord) {
			r.Samples = r.Samples[:150]
			r.Complete = false
		}, protocol.VerdictIndeterminate, "did not see the whole cycle"},
		{"no hold, and unmapped phases", func(r *protocol.CycleRecord) {
			for i := range r.Samples {
				if r.Samples[i].Phase == protocol.PhaseSterilizing {
					r.Samples[i].Phase = protocol.PhaseUnknown
				}
			}
		}, protocol.VerdictIndeterminate, "phase the profile does not map"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := good()
			tc.edit(&rec)
			v := verify.Check(rec, porous134(t))
			if v.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s: %v", v.Verdict, tc.verdict, v.Reasons)
			}
			if !strings.Contains(strings.Join(v.Reasons, "\n"), tc.note) {
				t.Errorf("reasons %q lack %q", v.Reasons, tc.note)
			}
		})
	}
}

func TestAgreement(t *testing.T) {
	yes, no := true, false
	pass := verifytest.Cycle{Program: "134-porous"}.Record()
	fail := verifytest.Cycle{Program: "134-porous", Hold: 60 * time.Second}.Record()
	unsure := verifytest.Cycle{Program: "134-porous", Every: 30 * time.Second}.Record()
	bd := verifytest.Cycle{Program: "bowie-dick", Hold: 210 * time.Second}.Record()
	cases := []struct {
		rec    protocol.CycleRecord
		result protocol.Result
		agrees *bool
	}{
		{pass, protocol.ResultPassed, &yes},
		{fail, protocol.ResultPassed, &no},
		{unsure, protocol.ResultPassed, &no},
		{pass, protocol.ResultFailed, &no},
		{fail, protocol.ResultFailed, &yes},
		{unsure, protocol.ResultFailed, &yes},
		{pass, protocol.ResultAborted, &no},
		{fail, protocol.ResultAborted, &yes},
		{pass, protocol.ResultUnknown, nil},
		{fail, protocol.ResultUnknown, nil},
		{bd, protocol.ResultPassed, nil},
	}
	for i, tc := range cases {
		tc.rec.Result = tc.result
		v := verify.Judge(tc.rec, nil)
		if !reflect.DeepEqual(v.AgreesWithDevice, tc.agrees) {
			t.Errorf("case %d: device %s, verdict %s: agrees %v, want %v", i, tc.result, v.Verdict, ptr2(v.AgreesWithDevice), ptr2(tc.agrees))
		}
	}
}

func ptr2(p *bool) any {
	if p == nil {
		return nil
	}
	return *p
}

// A verification carries everything it was judged by: judged again from
// its own JSON, the record gets the same verification, byte for byte.
func TestRejudgeFromRecordedCriteria(t *testing.T) {
	for _, rec := range []protocol.CycleRecord{
		verifytest.Cycle{Program: "134-porous", Probes: true}.Record(),
		verifytest.Cycle{Program: "mystery"}.Record(),
		verifytest.Cycle{Program: "unknown"}.Record(),
		verifytest.LeakTest{RateKPaMin: 0.2}.Record(),
		verifytest.Cycle{Program: "121-20", SetPointC: 121, Hold: 20 * time.Minute, TimeScale: 20}.Record(),
	} {
		v := verify.Judge(rec, nil)
		rec.Verification = &v
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		var back protocol.CycleRecord
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		again := verify.Judge(back, &back.Verification.Criteria)
		if dump(again) != dump(v) {
			t.Errorf("%s judged again differs:\n%s\n%s", rec.Program, dump(v), dump(again))
		}
	}
}

func TestCriteriaDefaultsAndValidation(t *testing.T) {
	c, err := verify.Standard(verify.KindPorous, 121, 0)
	if err != nil || c.MinHoldSeconds != 900 || c.BandK != 3 || c.SaturationK != 2 || c.EquilibrationSeconds != 15 ||
		c.MaxSampleIntervalSeconds != 2.5 || c.Set != "en285-porous" || c.Version != verify.Version || c.Source != verify.SourceDefault {
		t.Errorf("porous 121: %+v, %v", c, err)
	}
	if c, err := verify.Standard(verify.KindBowieDick, 0, 0); err != nil || c.SetPointC != 134 || c.MinHoldSeconds != 210 {
		t.Errorf("bowie-dick: %+v, %v", c, err)
	}
	if c, err := verify.Standard(verify.KindLeakTest, 134, 60); err != nil || c.SetPointC != 0 || c.LeakRateKPaMin != 0.13 || c.LeakEqualiseSeconds != 300 || c.LeakMeasureSeconds != 600 {
		t.Errorf("leak test: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		kind      string
		set, hold float64
		err       string
	}{
		{"porus", 134, 180, `criteria.kind: "porus" is not one of porous, prion, liquids, gravity, bowie_dick, leak_test`},
		{verify.KindPorous, 130, 0, "criteria.min_hold_s: 0 must be above 0"},
		{verify.KindLiquids, 0, 900, "criteria.set_point_c: 0 must be between 50 and 150 °C"},
		{verify.KindGravity, 121, -5, "criteria.min_hold_s: -5"},
	} {
		if _, err := verify.Standard(tc.kind, tc.set, tc.hold); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Standard(%q, %v, %v): %v, want %q", tc.kind, tc.set, tc.hold, err, tc.err)
		}
	}
	// Criteria the check cannot use make the record indeterminate and say
	// which key is wrong.
	c = porous134(t)
	c.BandK = -1
	v := verify.Check(verifytest.Cycle{}.Record(), c)
	if v.Verdict != protocol.VerdictIndeterminate || !strings.Contains(strings.Join(v.Reasons, " "), "criteria.band_k: -1") {
		t.Errorf("bad band: %s", dump(v))
	}
	c = porous134(t)
	c.Version = verify.Version + 1
	if v := verify.Check(verifytest.Cycle{}.Record(), c); v.Verdict != protocol.VerdictIndeterminate || !strings.Contains(v.Reasons[0], "newer") {
		t.Errorf("future criteria: %v", v.Reasons)
	}
}

func TestInfer(t *testing.T) {
	code := 9
	cases := []struct {
		program string
		rec     protocol.CycleRecord // zero: a default 134 °C cycle
		ok      bool
		kind    string
		setC    float64
		holdS   float64
		why     string
	}{
		{program: "134-porous", ok: true, kind: verify.KindPorous, setC: 134, holdS: 180},
		{program: "Universal/134°C/3min", ok: true, kind: verify.KindPorous, setC: 134, holdS: 180},
		{program: "134-prion", ok: true, kind: verify.KindPrion, setC: 134, holdS: 1080},
		{program: "134 °C 18 min", ok: true, kind: verify.KindPrion, setC: 134, holdS: 1080},
		{program: "Prion", ok: true, kind: verify.KindPrion, setC: 134, holdS: 1080},
		{program: "121-15", ok: true, kind: verify.KindPorous, setC: 121, holdS: 900},
		{program: "121-20", ok: true, kind: verify.KindPorous, setC: 121, holdS: 900},
		{program: "bowie-dick", ok: true, kind: verify.KindBowieDick, setC: 134, holdS: 210},
		{program: "B&D test", ok: true, kind: verify.KindBowieDick, setC: 134, holdS: 210},
		{program: "Helix", ok: true, kind: verify.KindBowieDick, setC: 134, holdS: 210},
		{program: "leak-test", ok: true, kind: verify.KindLeakTest},
		{program: "Vakuumtest", ok: true, kind: verify.KindLeakTest},
		{program: "gravity-121", why: "gravity or liquids"},
		{program: "Liquids 121", why: "gravity or liquids"},
		{program: "132 C/4min", why: "132 °C"},
		{program: "121/134", why: "more than one temperature"},
		{program: "unknown", why: "not mapped"},
		{program: "", why: "not mapped"},
		// Names that say nothing: the plateau decides.
		{program: "Solid/Wrapped", ok: true, kind: verify.KindPorous, setC: 134, holdS: 180},
		{program: "Standard", rec: verifytest.Cycle{SetPointC: 121, Hold: 15 * time.Minute}.Record(), ok: true, kind: verify.KindPorous, setC: 121, holdS: 900},
		{program: "Standard", rec: verifytest.Cycle{Hold: 18 * time.Minute}.Record(), ok: true, kind: verify.KindPrion, setC: 134, holdS: 1080},
		{program: "Standard", rec: verifytest.Cycle{SetPointC: 127, Hold: 10 * time.Minute}.Record(), why: "mean 128.0 °C"},
		{program: "Daily", rec: verifytest.LeakTest{}.Record(), ok: true, kind: verify.KindLeakTest},
		{program: "Standard", rec: verifytest.New("", time.Second).Record(), why: "no plateau"},
	}
	for _, tc := range cases {
		rec := tc.rec
		if rec.Schema == "" {
			rec = verifytest.Cycle{}.Record()
		}
		rec.Program = tc.program
		if tc.program == "unknown" {
			rec.ProgramCode = &code
		}
		c, ok, why := verify.Infer(rec)
		if ok != tc.ok || c.Kind != tc.kind || c.SetPointC != tc.setC || c.MinHoldSeconds != tc.holdS || !strings.Contains(why, tc.why) {
			t.Errorf("Infer(%q) = %+v, %v, %q", tc.program, c, ok, why)
		}
		if ok && (c.Source != verify.SourceInferred || !strings.Contains(c.Note, "inferred from")) {
			t.Errorf("Infer(%q): source %q, note %q", tc.program, c.Source, c.Note)
		}
		if tc.program == "unknown" && !strings.Contains(why, "program code 9") {
			t.Errorf("unknown program: %q", why)
		}
	}
	// No criteria at all: indeterminate, saying what is missing.
	rec := verifytest.Cycle{Program: "gravity-121"}.Record()
	v := verify.Judge(rec, nil)
	if v.Verdict != protocol.VerdictIndeterminate || v.Criteria.Set != verify.SetNone || !strings.Contains(v.Reasons[0], "gravity") ||
		v.AgreesWithDevice == nil || *v.AgreesWithDevice {
		t.Errorf("no criteria: %s", dump(v))
	}
}

func TestCheckIsPure(t *testing.T) {
	rec := verifytest.Cycle{Probes: true, During: dipAt(30*time.Second, 3*time.Second, 133)}.Record()
	before := dump(rec)
	a := verify.Check(rec, porous134(t))
	b := verify.Check(rec, porous134(t))
	if !reflect.DeepEqual(a, b) {
		t.Error("two checks of one record differ")
	}
	if dump(rec) != before {
		t.Error("the check changed the record")
	}
}

// The holding time begins when every part of the load is in the band (EN
// 285): a drain and a load probe show when that was, here 5 s after the
// chamber, during the device's 15 s equilibration phase. A hold the device
// timed at exactly the minimum, sampled once a second with the poll at its
// start 0.4 s late, is then shown to be long enough; read from the chamber
// alone, the samples put it 0.4 s short, within one sample interval: it
// cannot be shown. The samples that count must be dense like the hold's.
func TestHoldBeginsWhenEveryProbeIsInBand(t *testing.T) {
	late := func(rec protocol.CycleRecord) protocol.CycleRecord {
		for i := range rec.Samples {
			if rec.Samples[i].Phase == protocol.PhaseSterilizing {
				rec.Samples[i].At = rec.Samples[i].At.Add(400 * time.Millisecond)
				break
			}
		}
		return rec
	}
	probes := late(verifytest.Cycle{Probes: true, Equil: 15 * time.Second}.Record())
	v := verify.Check(probes, porous134(t))
	// 9 s of equilibration samples in band (+5 to +14 s), 1.4 s to the late
	// first hold sample, 178.6 s to the last, 1 s to the exhaust sample.
	expect(t, v, verify.CheckHoldTime, want{protocol.CheckPass, 190, time.Time{}})
	if v.Verdict != protocol.VerdictPass {
		t.Errorf("with probes: %s", dump(v))
	}
	chamber := late(verifytest.Cycle{Equil: 15 * time.Second}.Record())
	v = verify.Check(chamber, porous134(t))
	expect(t, v, verify.CheckHoldTime, want{protocol.CheckIndeterminate, 179.6, time.Time{}})

	// Three equilibration samples missing: the stretch the hold counts is
	// 5 s between two samples, too sparse to show it.
	var kept []protocol.Sample
	for _, s := range probes.Samples {
		if e := s.At.Sub(verifytest.T0); s.Phase == protocol.PhaseEquilibrate && e > 3*time.Minute+7*time.Second && e < 3*time.Minute+11*time.Second {
			continue
		}
		kept = append(kept, s)
	}
	if len(kept) != len(probes.Samples)-3 {
		t.Fatalf("removed %d samples, want 3", len(probes.Samples)-len(kept))
	}
	probes.Samples = kept
	v = verify.Check(probes, porous134(t))
	expect(t, v, verify.CheckSampleInterval, want{protocol.CheckIndeterminate, 4, time.Time{}})
	if v.Verdict != protocol.VerdictIndeterminate {
		t.Errorf("with a sparse equilibration: %s", dump(v))
	}
}
