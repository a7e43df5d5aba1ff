// Package verify is sterigate's independent parametric check of a cycle:
// a pure, deterministic function from a finished cycle record and the
// criteria of its program to a protocol.Verification. It judges the
// record's own samples (temperature band, holding time, saturated steam,
// equilibration, spread between probes, the vacuum leak rate, F0) against
// EN 285 / ISO 17665 limits, independently of what the sterilizer said,
// and says where the data are too sparse or incomplete to show a pass.
//
// Durations are judged in device time: wall-clock durations times the
// record's time_scale. Timestamps stay wall-clock. docs/verification.md
// describes every criterion, its source and its limit.
package verify

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
)

// maxTimeScale bounds the speed-up a record may claim: simulators run at
// most a few thousand times faster than real time.
const maxTimeScale = 1e6

// Names of the checks (protocol.Check.Name), stable across versions.
const (
	CheckRecordComplete    = "record_complete"
	CheckSampleInterval    = "sample_interval"
	CheckTemperatureBand   = "temperature_band"
	CheckHoldTime          = "hold_time"
	CheckEquilibrationTime = "equilibration_time"
	CheckSaturatedSteam    = "saturated_steam"
	CheckTemperatureSpread = "temperature_spread"
	CheckF0                = "f0"
	CheckLeakRate          = "leak_rate"
)

// F0 constants: the lethality of a minute at 121.1 °C, z = 10 K,
// integrated only while the coldest channel is at 100 °C or more.
const (
	f0RefC   = 121.1
	f0ZK     = 10
	f0FloorC = 100
)

// Judge is what the gateway and a receiving system do with a finished
// record: check it by criteria (the program's configured ones, or the
// record's own when re-judging it), or by criteria inferred from the
// record when criteria is nil. A record no criteria can be found for is
// indeterminate, and its criteria (set "none") say what is missing.
func Judge(rec protocol.CycleRecord, criteria *protocol.Criteria) protocol.Verification {
	if criteria != nil && criteria.Set != SetNone {
		return Check(rec, *criteria)
	}
	c, ok, why := Infer(rec)
	if ok {
		return Check(rec, c)
	}
	v := protocol.Verification{
		Verdict:  protocol.VerdictIndeterminate,
		Checks:   []protocol.Check{},
		Criteria: protocol.Criteria{Set: SetNone, Version: Version, Source: SourceInferred, TimeScale: rec.TimeScale, Note: why},
		Reasons:  []string{"no criteria: " + why},
	}
	v.AgreesWithDevice = agreement(rec.Result, v.Verdict)
	return v
}

// Check judges rec by the criteria c. Parameters left at zero in c take
// their defaults, and the verification's criteria carry every value
// used, so the record can be judged again the same way. It never panics
// and never looks at anything but its arguments.
func Check(rec protocol.CycleRecord, c protocol.Criteria) protocol.Verification {
	c = withDefaults(c)
	c.TimeScale = rec.TimeScale
	v := protocol.Verification{Criteria: c, Checks: make([]protocol.Check, 0, 8)}
	if err := Validate(c); err != nil {
		v.Verdict = protocol.VerdictIndeterminate
		v.Reasons = strings.Split(err.Error(), "\n")
		v.AgreesWithDevice = agreement(rec.Result, v.Verdict)
		return v
	}
	scale := rec.TimeScale
	if scale == 0 {
		scale = 1
	}
	j := judge{rec: &rec, c: c, scale: scale, checks: v.Checks}
	if j.recordComplete() {
		if c.Kind == KindLeakTest {
			j.leakTest()
		} else {
			j.steamCycle()
		}
	}
	v.Checks = j.checks
	v.Verdict, v.Reasons = verdict(c.Kind, j.checks)
	v.AgreesWithDevice = agreement(rec.Result, v.Verdict)
	return v
}

// verdict combines the checks: any fail fails; then a Bowie-Dick test is
// not applicable (its indicator sheet decides); then any indeterminate
// check makes the whole indeterminate; otherwise it passes.
func verdict(kind string, checks []protocol.Check) (string, []string) {
	var failed, unsure []string
	for _, ch := range checks {
		switch ch.Result {
		case protocol.CheckFail:
			failed = append(failed, ch.Name+": "+ch.Note)
		case protocol.CheckIndeterminate:
			unsure = append(unsure, ch.Name+": "+ch.Note)
		}
	}
	switch {
	case len(failed) > 0:
		return protocol.VerdictFail, failed
	case kind == KindBowieDick:
		sheet := "Bowie-Dick test: its result is the indicator sheet, which sterigate cannot see. A person must check that the sheet changed colour uniformly from the centre to the edges, and file it with this record"
		if len(unsure) == 0 {
			return protocol.VerdictNotApplicable, []string{sheet + "; the chamber data met every parameter sterigate judges"}
		}
		return protocol.VerdictNotApplicable, append([]string{sheet + "; these chamber data could not show a pass:"}, unsure...)
	case len(unsure) > 0:
		return protocol.VerdictIndeterminate, unsure
	}
	return protocol.VerdictPass, nil
}

// agreement compares the device's result with the verdict: absent when
// the device gave none or sterigate judged nothing (not applicable).
func agreement(result protocol.Result, verdict string) *bool {
	var agrees bool
	switch {
	case verdict == protocol.VerdictNotApplicable:
		return nil
	case result == protocol.ResultPassed:
		agrees = verdict == protocol.VerdictPass
	case result == protocol.ResultFailed, result == protocol.ResultAborted:
		agrees = verdict != protocol.VerdictPass
	default:
		return nil
	}
	return &agrees
}

// judge holds one run of Check.
type judge struct {
	rec    *protocol.CycleRecord
	c      protocol.Criteria
	scale  float64
	checks []protocol.Check
	chans  []tempChannel // the temperature channels of a steam cycle
}

func (j *judge) add(ch protocol.Check) {
	ch.OK = ch.Result == protocol.CheckPass || ch.Result == protocol.CheckInfo
	j.checks = append(j.checks, ch)
}

// device converts a wall-clock duration to device seconds.
func (j *judge) device(d time.Duration) float64 { return d.Seconds() * j.scale }

// wall converts device seconds to a wall-clock duration.
func (j *judge) wall(deviceSeconds float64) time.Duration {
	return time.Duration(deviceSeconds / j.scale * float64(time.Second))
}

// recordComplete judges whether the record covers the whole cycle, and
// whether its samples can be read at all (in time order). It reports
// false when the samples cannot be judged.
func (j *judge) recordComplete() bool {
	r := j.rec
	var missing []string
	if !r.Complete {
		missing = append(missing, "the gateway did not observe the whole cycle (complete: false)")
	}
	if !r.EndSeen {
		missing = append(missing, "the gateway did not see the cycle end (end_seen: false)")
	}
	if len(r.Holes) > 0 {
		missing = append(missing, fmt.Sprintf("%d stretch(es) without samples (holes), the first %s", len(r.Holes), describeHole(r.Holes[0])))
	}
	if len(r.Samples) == 0 {
		missing = append(missing, "the record has no samples")
	}
	for i := 1; i < len(r.Samples); i++ {
		if r.Samples[i].At.Before(r.Samples[i-1].At) {
			missing = append(missing, fmt.Sprintf("samples[%d].t %s is before samples[%d].t %s: the samples cannot be judged", i, stamp(r.Samples[i].At), i-1, stamp(r.Samples[i-1].At)))
			j.add(protocol.Check{Name: CheckRecordComplete, Result: protocol.CheckIndeterminate, Note: strings.Join(missing, "; ")})
			return false
		}
	}
	if !(r.TimeScale >= 0 && r.TimeScale <= maxTimeScale) {
		missing = append(missing, fmt.Sprintf("time_scale %v is not a positive number up to %v: no duration can be judged", r.TimeScale, maxTimeScale))
		j.add(protocol.Check{Name: CheckRecordComplete, Result: protocol.CheckIndeterminate, Note: strings.Join(missing, "; ")})
		return false
	}
	if len(missing) == 0 {
		j.add(protocol.Check{Name: CheckRecordComplete, Result: protocol.CheckPass, Note: "the gateway saw the whole cycle, its end, and no stretch without samples"})
		return true
	}
	j.add(protocol.Check{Name: CheckRecordComplete, Result: protocol.CheckIndeterminate, Note: strings.Join(missing, "; ")})
	return true
}

// neverReached is the hold_time or leak_rate result for a record with no
// sample in the phase that check needs: a fail when the gateway saw the
// whole cycle end without it (and every phase was mapped), otherwise
// indeterminate.
func (j *judge) neverReached(phase protocol.PhaseName) (result, note string) {
	r := j.rec
	mapped := true
	for i := range r.Samples {
		if r.Samples[i].Phase == protocol.PhaseUnknown || r.Samples[i].Phase == "" {
			mapped = false
			break
		}
	}
	switch {
	case r.Complete && r.EndSeen && mapped:
		return protocol.CheckFail, fmt.Sprintf("the cycle ended without reaching the %s phase", phase)
	case !mapped:
		return protocol.CheckIndeterminate, fmt.Sprintf("no sample in the %s phase, and some samples are in a phase the profile does not map", phase)
	}
	return protocol.CheckIndeterminate, fmt.Sprintf("no sample in the %s phase, and the gateway did not see the whole cycle", phase)
}

// phaseSpan returns the indexes of the first and last sample in phase,
// or -1, -1 when none is.
func phaseSpan(samples []protocol.Sample, phase protocol.PhaseName) (first, last int) {
	first, last = -1, -1
	for i := range samples {
		if samples[i].Phase == phase {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last
}

func describeHole(h protocol.Hole) string {
	return fmt.Sprintf("%s to %s (%s)", stamp(h.From), stamp(h.To), h.Reason)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// round3 keeps reported figures to a thousandth, so they read the same on
// every platform; judgements are made on the unrounded values. A figure
// that is not a number (only absurd input gets there) is left out: JSON
// cannot carry it.
func round3(v float64) *float64 {
	r := math.Round(v*1000) / 1000
	if !finite(r) {
		return nil
	}
	return &r
}

func num(v float64) *float64 { return &v }

func at(t time.Time) *time.Time { return &t }

// fmtNum prints a figure without trailing zeros, at most three decimals.
func fmtNum(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// saturationTempC is Tsat(p), or false when p cannot be a reading of the
// chamber pressure (not read, zero, beyond the saturation line's range).
func saturationTempC(pressureKPa float64) (float64, bool) {
	if !(pressureKPa >= 0.62 && pressureKPa <= 22000) {
		return 0, false
	}
	t := steam.TempC(pressureKPa)
	return t, finite(t)
}
