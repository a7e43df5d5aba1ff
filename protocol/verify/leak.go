package verify

import (
	"fmt"

	"github.com/sterigate/sterigate/protocol"
)

// leakTest judges the vacuum leak test: from the start of the leak_test
// phase (the valves closed on the evacuated chamber), P1 after the
// equalisation period and P2 a measuring period later; the rise rate
// (P2 − P1) over that period must not exceed the limit. P1 is the first
// sample at or after its instant, P2 the last at or before its instant,
// each within one allowed sample interval of it; the rate is taken over
// the time actually between them.
func (j *judge) leakTest() {
	c := j.c
	samples := j.rec.Samples
	ch := protocol.Check{Name: CheckLeakRate, Unit: "kPa/min", LimitMax: num(c.LeakRateKPaMin)}
	first, last := phaseSpan(samples, protocol.PhaseLeakTest)
	if first < 0 {
		ch.Result, ch.Note = j.neverReached(protocol.PhaseLeakTest)
		j.add(ch)
		return
	}
	t0 := samples[first].At
	tol := j.wall(c.MaxSampleIntervalSeconds)
	t1 := t0.Add(j.wall(c.LeakEqualiseSeconds))
	t2 := t1.Add(j.wall(c.LeakMeasureSeconds))
	usable := func(i int) bool {
		p := samples[i].PressureKPa
		return samples[i].Phase == protocol.PhaseLeakTest && finite(p) && p > 0
	}
	i1, i2, iLast := -1, -1, -1
	for i := first; i <= last; i++ {
		if !usable(i) {
			continue
		}
		iLast = i
		if i1 < 0 && !samples[i].At.Before(t1) {
			i1 = i
		}
		if !samples[i].At.After(t2) {
			i2 = i
		}
	}
	lasted := j.device(samples[last].At.Sub(t0))
	needs := c.LeakEqualiseSeconds + c.LeakMeasureSeconds
	switch {
	case i1 < 0 || samples[i1].At.Sub(t1) > tol:
		ch.Result = protocol.CheckIndeterminate
		ch.Note = fmt.Sprintf("no usable pressure within %s s after P1's instant (%s s after the leak_test phase began at %s); the phase lasted %s s of the %s s the test needs",
			fmtNum(c.MaxSampleIntervalSeconds), fmtNum(c.LeakEqualiseSeconds), stamp(t0), fmtNum(lasted), fmtNum(needs))
	case i2 <= i1 || t2.Sub(samples[i2].At) > tol || !samples[i2].At.After(samples[i1].At):
		// The test stopped short of P2 (or the samples there are too
		// sparse): it fails only if the pressure already rose by more
		// than the whole measuring period allows.
		rise := samples[iLast].PressureKPa - samples[i1].PressureKPa
		allowed := c.LeakRateKPaMin * c.LeakMeasureSeconds / 60
		if minutes := j.device(samples[iLast].At.Sub(samples[i1].At)) / 60; rise > allowed+eps && minutes > 0 {
			ch.Result, ch.At, ch.Measured = protocol.CheckFail, at(samples[iLast].At), round3(rise/minutes)
			ch.Note = fmt.Sprintf("the pressure rose %s kPa in %s min after P1, more than the %s kPa the whole %s min measuring period allows",
				fmtNum(rise), fmtNum(minutes), fmtNum(allowed), fmtNum(c.LeakMeasureSeconds/60))
			break
		}
		ch.Result = protocol.CheckIndeterminate
		ch.Note = fmt.Sprintf("no usable pressure within %s s before P2's instant (%s s after the leak_test phase began at %s); the phase lasted %s s of the %s s the test needs",
			fmtNum(c.MaxSampleIntervalSeconds), fmtNum(needs), stamp(t0), fmtNum(lasted), fmtNum(needs))
	default:
		p1, p2 := samples[i1].PressureKPa, samples[i2].PressureKPa
		minutes := j.device(samples[i2].At.Sub(samples[i1].At)) / 60
		rate := (p2 - p1) / minutes
		ch.Measured = round3(rate)
		ch.Note = fmt.Sprintf("P1 %s kPa at %s, P2 %s kPa %s min later: %s kPa/min", fmtNum(p1), stamp(samples[i1].At), fmtNum(p2), fmtNum(minutes), fmtNum(rate))
		if rate > c.LeakRateKPaMin+eps {
			ch.Result, ch.At = protocol.CheckFail, at(samples[i2].At)
		} else {
			ch.Result = protocol.CheckPass
		}
	}
	j.add(ch)
}
