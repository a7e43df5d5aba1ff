package verify

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// eps absorbs the last bits of floating-point arithmetic, so a value
// exactly on a limit is judged on the limit.
const eps = 1e-9

// tempChannel is one temperature the steam checks read: the chamber
// temperature (temp_c) or a drain, load or reference probe. The jacket
// is the chamber's wall heating, not the sterilizing environment: it is
// not judged.
type tempChannel struct {
	id  string
	sat bool // measures the steam itself (chamber, drain, reference): compared with Tsat(p)
}

// chamberID names the chamber temperature (Sample.TempC) in notes.
const chamberID = "temp_c"

// tempChannels lists the channels the steam checks read, whether a load
// or drain probe exists (equilibration can be measured), and the
// channels that cannot be read as temperatures.
func tempChannels(rec *protocol.CycleRecord) (chans []tempChannel, probe bool, unusable []string) {
	chans = append(make([]tempChannel, 0, len(rec.Channels)+1), tempChannel{id: chamberID, sat: true})
	for _, ch := range rec.Channels {
		var sat bool
		switch ch.Role {
		case protocol.RoleDrainTemperature, protocol.RoleReferenceTemperature:
			sat = true
		case protocol.RoleLoadTemperature:
		default:
			continue
		}
		switch {
		case ch.Unit != "°C" && ch.Unit != "":
			unusable = append(unusable, fmt.Sprintf("channel %s has unit %q, not °C", ch.ID, ch.Unit))
			continue
		case ch.ID == "" || ch.ID == chamberID || duplicate(chans, ch.ID):
			unusable = append(unusable, fmt.Sprintf("channel id %q is empty or not unique", ch.ID))
			continue
		}
		probe = probe || ch.Role != protocol.RoleReferenceTemperature
		chans = append(chans, tempChannel{id: ch.ID, sat: sat})
	}
	return chans, probe, unusable
}

func duplicate(chans []tempChannel, id string) bool {
	for _, c := range chans {
		if c.id == id {
			return true
		}
	}
	return false
}

// reading holds the last value read of every temperature channel: a
// channel missing from a sample keeps its previous value (the sample
// interval check bounds how old it may be).
type reading struct {
	chans []tempChannel
	value []float64
	known []bool
	read  []bool // read in the current sample
	// The extremes of the known values after the last update: the lowest
	// and highest, their channels, and how many channels are known.
	lo, hi     float64
	loK, hiK   int
	knownCount int
}

func (r *reading) update(s *protocol.Sample) {
	for k, ch := range r.chans {
		v, ok := s.TempC, true
		if k > 0 {
			v, ok = s.Ch[ch.id]
		}
		r.read[k] = ok && finite(v)
		if r.read[k] {
			r.value[k], r.known[k] = v, true
		}
	}
	r.lo, r.hi, r.loK, r.hiK, r.knownCount = math.Inf(1), math.Inf(-1), -1, -1, 0
	for k := range r.chans {
		if !r.known[k] {
			continue
		}
		r.knownCount++
		if v := r.value[k]; v < r.lo {
			r.lo, r.loK = v, k
		}
		if v := r.value[k]; v > r.hi {
			r.hi, r.hiK = v, k
		}
	}
}

// steamCycle runs every check of a steam program over one pass of the
// samples. The hold is the samples from the first to the last one in the
// sterilizing phase; anything in between (a device that fell back to
// heating) is judged as part of the hold. Samples of the equilibration
// phase are not part of the hold: they serve the equilibration time and
// F0, and, with a drain or load probe, the holding time once every
// channel is in band (holdStart).
func (j *judge) steamCycle() {
	r, c := j.rec, j.c
	samples := r.Samples
	n := len(samples)
	chans, probe, unusable := tempChannels(r)
	j.chans = chans
	rd := reading{chans: chans, value: make([]float64, len(chans)), known: make([]bool, len(chans)), read: make([]bool, len(chans))}

	hs, he := phaseSpan(samples, protocol.PhaseSterilizing)
	var f0 f0Tracker
	if hs < 0 {
		j.noHold(probe, len(chans))
		for i := range samples {
			rd.update(&samples[i])
			j.observeF0(&f0, &rd, i)
		}
		j.reportF0(f0)
		return
	}
	next := -1 // the sample that ends the hold
	if he+1 < n {
		next = he + 1
	}
	lo, hi := c.SetPointC, c.SetPointC+c.BandK
	// The holding time (EN 285) begins when every part of the load is in
	// the band: with a drain or load probe the samples show when that
	// was, possibly during the device's equilibration phase, before its
	// own timer started; without one, the device's sterilizing phase is
	// all the record can go by.
	holdFrom := hs
	if probe {
		holdFrom = holdStart(samples, hs, chans, lo, hi)
	}
	// The stretch whose sampling decides what the hold can show: from the
	// sample before the hold (its start lies in between) to the sample
	// after it (its end lies in between).
	// Without a sample before (after) it, the hold began (ended) at the
	// start (end) of its phase as the record places it (a printout prints
	// the time), or else at the start (end) of the record.
	phaseStart, phaseEnd := phaseTimes(r.Phases, protocol.PhaseSterilizing)
	r0, tStart := holdFrom, samples[holdFrom].At
	switch {
	case holdFrom > 0:
		r0, tStart = holdFrom-1, samples[holdFrom-1].At
	case !phaseStart.IsZero() && !phaseStart.Before(r.StartedAt) && !phaseStart.After(tStart):
		tStart = phaseStart
	case r.StartedAt.Before(tStart):
		tStart = r.StartedAt
	}
	tEnd := samples[he].At
	switch {
	case next >= 0:
		tEnd = samples[next].At
	case !phaseEnd.IsZero() && !phaseEnd.Before(tEnd) && !phaseEnd.After(r.EndedAt):
		tEnd = phaseEnd
	case r.EndedAt.After(tEnd):
		tEnd = r.EndedAt
	}
	// Without a sample before (after) the hold, it began (ended) at an
	// instant the record can bound only if the gateway saw the cycle
	// start (end): otherwise a hold cannot be shown to be short.
	unbounded := (holdFrom == 0 && !r.Complete) || (next < 0 && !(r.Complete && r.EndSeen))
	eqStart := hs
	for i := 0; i < hs; i++ {
		if p := samples[i].Phase; p == protocol.PhaseHeating || p == protocol.PhaseEquilibrate {
			eqStart = i
			break
		}
	}

	var (
		gap       = gapTracker{prev: make([]time.Time, len(chans))}
		band      = bandTracker{lo: lo, hi: hi, min: math.Inf(1), max: math.Inf(-1)}
		sat       = satTracker{limit: c.SaturationK}
		spread    = spreadTracker{limit: c.SpreadK}
		heldS     float64 // device seconds with every channel in band
		inBand    bool
		eqA, eqB  = -1, -1
		neverRead = -1 // a channel with no reading by the end of the hold
	)
	for i := 0; i < n; i++ {
		s := &samples[i]
		rd.update(s)
		j.observeF0(&f0, &rd, i)
		if i == r0 {
			for k := range gap.prev {
				gap.prev[k] = tStart
			}
		}
		if i >= r0 && (i <= he || i == next) {
			gap.observe(&rd, s.At)
		}
		if i >= eqStart && i <= he {
			if eqA < 0 && rd.hi >= lo-eps {
				eqA = i
			}
			if eqA >= 0 && eqB < 0 && rd.knownCount == len(chans) && rd.lo >= lo-eps {
				eqB = i
			}
		}
		if i > holdFrom && i < hs {
			// Equilibration samples with every channel in band already.
			heldS += j.device(s.At.Sub(samples[i-1].At))
		}
		if i < hs || i > he {
			continue
		}
		was := inBand || (i == hs && holdFrom < hs)
		inBand = band.observe(&rd, s.At)
		if i > holdFrom && was && inBand {
			heldS += j.device(s.At.Sub(samples[i-1].At))
		}
		if i == he && inBand && next >= 0 {
			heldS += j.device(samples[next].At.Sub(s.At))
		}
		if i == he {
			for k := range rd.known {
				if !rd.known[k] && neverRead < 0 {
					neverRead = k
				}
			}
		}
		sat.observe(&rd, s)
		spread.observe(&rd, s.At)
	}
	gap.finish(tEnd)

	interval := j.device(gap.largest)
	j.sampleInterval(interval, gap, tStart, tEnd)
	j.band(band, unusable)
	j.holdTime(heldS, interval, unbounded, tEnd)
	if probe {
		j.equilibration(samples, eqA, eqB, neverRead, tEnd)
	}
	j.saturation(sat)
	if len(chans) > 1 {
		j.spread(spread)
	}
	j.reportF0(f0)
}

// phaseTimes is when the first phase called name began and the last one
// ended, as the record's phases say; zero when it has none.
func phaseTimes(phases []protocol.Phase, name protocol.PhaseName) (start, end time.Time) {
	for _, ph := range phases {
		if ph.Name != name {
			continue
		}
		if start.IsZero() {
			start = ph.Start
		}
		end = ph.End
	}
	return start, end
}

// holdStart is the first sample of the holding time of a record with a
// drain or load probe: the first of the equilibration samples right
// before the sterilizing phase (hs) in which every temperature channel
// was already known and in band, or hs when the sample before it was
// not such a sample.
func holdStart(samples []protocol.Sample, hs int, chans []tempChannel, lo, hi float64) int {
	rd := reading{chans: chans, value: make([]float64, len(chans)), known: make([]bool, len(chans)), read: make([]bool, len(chans))}
	start := hs
	for i := 0; i < hs; i++ {
		rd.update(&samples[i])
		inBand := samples[i].Phase == protocol.PhaseEquilibrate && rd.knownCount == len(chans) && rd.lo >= lo-eps && rd.hi <= hi+eps
		switch {
		case !inBand:
			start = hs
		case start == hs:
			start = i
		}
	}
	return start
}

// noHold reports the hold checks of a record with no sample in the
// sterilizing phase.
func (j *judge) noHold(probe bool, nChans int) {
	result, note := j.neverReached(protocol.PhaseSterilizing)
	none := "no sample in the sterilizing phase: no hold to judge"
	j.add(protocol.Check{Name: CheckSampleInterval, Result: protocol.CheckIndeterminate, Unit: "s", LimitMax: num(j.c.MaxSampleIntervalSeconds), Note: none})
	j.add(protocol.Check{Name: CheckTemperatureBand, Result: protocol.CheckIndeterminate, Unit: "°C", LimitMin: num(j.c.SetPointC), LimitMax: num(j.c.SetPointC + j.c.BandK), Note: none})
	hold := protocol.Check{Name: CheckHoldTime, Result: result, Unit: "s", LimitMin: num(j.c.MinHoldSeconds), Note: note}
	if result == protocol.CheckFail {
		hold.Measured = num(0)
	}
	j.add(hold)
	if probe {
		j.add(protocol.Check{Name: CheckEquilibrationTime, Result: protocol.CheckIndeterminate, Unit: "s", LimitMax: num(j.c.EquilibrationSeconds), Note: none})
	}
	j.add(protocol.Check{Name: CheckSaturatedSteam, Result: protocol.CheckIndeterminate, Unit: "K", LimitMax: num(j.c.SaturationK), Note: none})
	if nChans > 1 {
		j.add(protocol.Check{Name: CheckTemperatureSpread, Result: protocol.CheckIndeterminate, Unit: "K", LimitMax: num(j.c.SpreadK), Note: none})
	}
}

// gapTracker finds the longest time any temperature channel went without
// a reading around the hold.
type gapTracker struct {
	prev    []time.Time // last reading of each channel
	largest time.Duration
	channel int
	from    time.Time // start of the largest gap
}

func (g *gapTracker) observe(rd *reading, t time.Time) {
	for k := range g.prev {
		if rd.read[k] {
			g.note(k, t)
		}
	}
}

func (g *gapTracker) note(k int, t time.Time) {
	if d := t.Sub(g.prev[k]); d > g.largest {
		g.largest, g.channel, g.from = d, k, g.prev[k]
	}
	g.prev[k] = t
}

func (g *gapTracker) finish(end time.Time) {
	for k := range g.prev {
		g.note(k, end)
	}
}

func (j *judge) sampleInterval(interval float64, g gapTracker, from, to time.Time) {
	ch := protocol.Check{Name: CheckSampleInterval, Unit: "s", LimitMax: num(j.c.MaxSampleIntervalSeconds), Measured: round3(interval)}
	var holes []string
	for _, h := range j.rec.Holes {
		if h.From.Before(to) && h.To.After(from) {
			holes = append(holes, describeHole(h))
		}
	}
	switch {
	case interval > j.c.MaxSampleIntervalSeconds+eps:
		ch.Result, ch.At = protocol.CheckIndeterminate, at(g.from)
		ch.Note = fmt.Sprintf("the hold went %s s without a reading of %s: a dip shorter than that would not show; a pass needs a reading every %s s or less",
			fmtNum(interval), j.chanName(g.channel), fmtNum(j.c.MaxSampleIntervalSeconds))
	case len(holes) > 0:
		ch.Result = protocol.CheckIndeterminate
		ch.Note = "the hold has stretches without samples: " + strings.Join(holes, ", ")
	default:
		ch.Result = protocol.CheckPass
		ch.Note = fmt.Sprintf("every channel read at least every %s s through the hold", fmtNum(interval))
	}
	j.add(ch)
}

// chanName names temperature channel k.
func (j *judge) chanName(k int) string {
	if k < 0 || k >= len(j.chans) {
		return chamberID
	}
	return j.chans[k].id
}

// bandTracker follows every temperature channel against the band.
type bandTracker struct {
	lo, hi     float64
	min, max   float64
	minK, maxK int
	first      *time.Time // first violation
	firstV     float64
	firstK     int
	unknownAt  *time.Time // first sample with a channel never read
	unknownK   int
}

// observe judges one hold sample and reports whether every channel is
// known and in band.
func (b *bandTracker) observe(rd *reading, t time.Time) bool {
	in := true
	for k := range rd.chans {
		if !rd.known[k] {
			if b.unknownAt == nil {
				b.unknownAt, b.unknownK = at(t), k
			}
			in = false
			continue
		}
		v := rd.value[k]
		if v < b.min {
			b.min, b.minK = v, k
		}
		if v > b.max {
			b.max, b.maxK = v, k
		}
		if v < b.lo-eps || v > b.hi+eps {
			in = false
			if b.first == nil {
				b.first, b.firstV, b.firstK = at(t), v, k
			}
		}
	}
	return in
}

func (j *judge) band(b bandTracker, unusable []string) {
	ch := protocol.Check{Name: CheckTemperatureBand, Unit: "°C", LimitMin: num(b.lo), LimitMax: num(b.hi)}
	rangeNote := fmt.Sprintf("the hold read %s–%s °C (lowest %s, highest %s); band %s–%s °C",
		fmtNum(b.min), fmtNum(b.max), j.chanName(b.minK), j.chanName(b.maxK), fmtNum(b.lo), fmtNum(b.hi))
	switch {
	case b.first != nil:
		ch.Result, ch.At = protocol.CheckFail, b.first
		side := "below"
		if b.firstV > b.hi {
			side = "above"
		}
		ch.Measured = round3(b.min)
		if b.max-b.hi > b.lo-b.min {
			ch.Measured = round3(b.max)
		}
		ch.Note = fmt.Sprintf("%s read %s °C at %s, %s the band; %s", j.chanName(b.firstK), fmtNum(b.firstV), stamp(*b.first), side, rangeNote)
	case b.unknownAt != nil:
		ch.Result, ch.At = protocol.CheckIndeterminate, b.unknownAt
		ch.Note = fmt.Sprintf("%s had no reading yet at %s, in the hold", j.chanName(b.unknownK), stamp(*b.unknownAt))
	case len(unusable) > 0:
		ch.Result, ch.Measured = protocol.CheckIndeterminate, round3(b.min)
		ch.Note = strings.Join(unusable, "; ") + ": that channel cannot be judged"
	default:
		ch.Result, ch.Measured = protocol.CheckPass, round3(b.min)
		ch.Note = rangeNote
	}
	j.add(ch)
}

// holdTime judges the time every channel spent in band. The samples place
// the hold's start and end only to within one sample interval: a hold
// the samples put at or above the minimum passes; one that could not have
// reached it even with a full interval more fails; in between it is
// indeterminate.
func (j *judge) holdTime(heldS, interval float64, unbounded bool, end time.Time) {
	minHold := j.c.MinHoldSeconds
	ch := protocol.Check{Name: CheckHoldTime, Unit: "s", LimitMin: num(minHold), Measured: round3(heldS)}
	switch {
	case heldS >= minHold-eps:
		ch.Result = protocol.CheckPass
		ch.Note = fmt.Sprintf("every channel in band for %s s", fmtNum(heldS))
	case unbounded:
		ch.Result = protocol.CheckIndeterminate
		ch.Note = fmt.Sprintf("every channel in band for %s s of the hold the gateway saw, short of the %s s minimum; it did not see where the hold began or ended",
			fmtNum(heldS), fmtNum(minHold))
	case heldS+interval <= minHold+eps:
		ch.Result, ch.At = protocol.CheckFail, at(end)
		ch.Note = fmt.Sprintf("every channel in band for only %s s, short of the %s s minimum", fmtNum(heldS), fmtNum(minHold))
	default:
		ch.Result = protocol.CheckIndeterminate
		ch.Note = fmt.Sprintf("every channel in band for %s s, within one sample interval (%s s) of the %s s minimum: the samples cannot show it was reached",
			fmtNum(heldS), fmtNum(interval), fmtNum(minHold))
	}
	j.add(ch)
}

// equilibration judges the time from the first temperature channel
// reaching the set point (the start of the plateau) to every channel
// having reached it (samples eqA and eqB). The samples place both
// instants to within the interval before each.
func (j *judge) equilibration(samples []protocol.Sample, eqA, eqB, neverRead int, end time.Time) {
	limit, maxInt := j.c.EquilibrationSeconds, j.c.MaxSampleIntervalSeconds
	ch := protocol.Check{Name: CheckEquilibrationTime, Unit: "s", LimitMax: num(limit)}
	before := func(i int) float64 {
		if i <= 0 {
			return math.Inf(1)
		}
		return j.device(samples[i].At.Sub(samples[i-1].At))
	}
	switch {
	case eqA < 0:
		ch.Result = protocol.CheckFail
		ch.Note = fmt.Sprintf("no temperature channel reached the set point %s °C", fmtNum(j.c.SetPointC))
	case eqB < 0 && neverRead >= 0:
		ch.Result = protocol.CheckIndeterminate
		ch.Note = fmt.Sprintf("%s has no reading in the hold", j.chanName(neverRead))
	case eqB < 0:
		elapsed := j.device(end.Sub(samples[eqA].At))
		ch.Measured = round3(elapsed)
		if elapsed >= limit-eps {
			ch.Result, ch.At = protocol.CheckFail, at(samples[eqA].At.Add(j.wall(limit)))
			ch.Note = fmt.Sprintf("not every channel reached %s °C in the %s s from the first reaching it to the end of the hold", fmtNum(j.c.SetPointC), fmtNum(elapsed))
		} else {
			ch.Result = protocol.CheckIndeterminate
			ch.Note = fmt.Sprintf("not every channel reached %s °C before the hold ended, %s s after the first did", fmtNum(j.c.SetPointC), fmtNum(elapsed))
		}
	default:
		measured := j.device(samples[eqB].At.Sub(samples[eqA].At))
		dA, dB := before(eqA), 0.0
		if eqB > eqA {
			dB = before(eqB)
		}
		ch.Measured = round3(measured)
		what := fmt.Sprintf("every channel at or above %s °C %s s after the first (%s to %s)",
			fmtNum(j.c.SetPointC), fmtNum(measured), stamp(samples[eqA].At), stamp(samples[eqB].At))
		switch {
		case measured-dB >= limit-eps:
			ch.Result, ch.At, ch.Note = protocol.CheckFail, at(samples[eqA].At.Add(j.wall(limit))), what
		case measured <= limit+eps && dA <= maxInt+eps && dB <= maxInt+eps:
			ch.Result, ch.Note = protocol.CheckPass, what
		default:
			ch.Result = protocol.CheckIndeterminate
			ch.Note = what + fmt.Sprintf("; the samples around those instants are up to %s s apart, too far to show it within %s s", fmtNum(max(dA, dB)), fmtNum(limit))
		}
	}
	j.add(ch)
}

// satTracker follows |T − Tsat(p)| of the channels that measure steam.
type satTracker struct {
	limit      float64
	worst      float64 // largest |T − Tsat|
	worstDev   float64 // signed
	worstK     int
	worstT     float64
	worstTsat  float64
	worstP     float64
	first      *time.Time
	firstDev   float64
	firstK     int
	firstT     float64
	firstTsat  float64
	firstP     float64
	noPressure *time.Time
	judged     bool
}

func (st *satTracker) observe(rd *reading, s *protocol.Sample) {
	tsat, ok := saturationTempC(s.PressureKPa)
	if !ok {
		if st.noPressure == nil {
			st.noPressure = at(s.At)
		}
		return
	}
	for k, ch := range rd.chans {
		if !ch.sat || !rd.known[k] {
			continue
		}
		st.judged = true
		dev := rd.value[k] - tsat
		if a := math.Abs(dev); a > st.worst {
			st.worst, st.worstDev, st.worstK, st.worstT, st.worstTsat, st.worstP = a, dev, k, rd.value[k], tsat, s.PressureKPa
		}
		if math.Abs(dev) > st.limit+eps && st.first == nil {
			st.first, st.firstDev, st.firstK, st.firstT, st.firstTsat, st.firstP = at(s.At), dev, k, rd.value[k], tsat, s.PressureKPa
		}
	}
}

func (j *judge) saturation(st satTracker) {
	ch := protocol.Check{Name: CheckSaturatedSteam, Unit: "K", LimitMax: num(st.limit), Measured: round3(st.worst)}
	switch {
	case st.first != nil:
		ch.Result, ch.At = protocol.CheckFail, st.first
		ch.Note = j.satNote(st.firstK, st.firstT, st.firstDev, st.firstTsat, st.firstP) + fmt.Sprintf(" at %s", stamp(*st.first))
	case st.noPressure != nil:
		ch.Result, ch.At = protocol.CheckIndeterminate, st.noPressure
		ch.Note = fmt.Sprintf("no usable chamber pressure at %s, in the hold", stamp(*st.noPressure))
	case !st.judged:
		ch.Result, ch.Measured = protocol.CheckIndeterminate, nil
		ch.Note = "no steam temperature was read in the hold"
	default:
		ch.Result = protocol.CheckPass
		ch.Note = "largest deviation: " + j.satNote(st.worstK, st.worstT, st.worstDev, st.worstTsat, st.worstP)
	}
	j.add(ch)
}

func (j *judge) satNote(k int, t, dev, tsat, p float64) string {
	what := ""
	switch {
	case dev < -j.c.SaturationK:
		what = ": air or non-condensable gas in the chamber"
	case dev > j.c.SaturationK:
		what = ": superheated steam"
	}
	side := "below"
	if dev > 0 {
		side = "above"
	}
	return fmt.Sprintf("%s %s °C is %s K %s Tsat(%s kPa) = %s °C%s",
		j.chanName(k), fmtNum(t), fmtNum(math.Abs(dev)), side, fmtNum(p), fmtNum(tsat), what)
}

// spreadTracker follows the difference between the hottest and coldest
// temperature channel.
type spreadTracker struct {
	limit       float64
	worst       float64
	worstLo     float64
	worstHi     float64
	loK, hiK    int
	first       *time.Time
	judged      bool
	firstSpread float64
	firstLoK    int
	firstHiK    int
	firstLo     float64
	firstHi     float64
}

func (sp *spreadTracker) observe(rd *reading, t time.Time) {
	lo, hi, loK, hiK := rd.lo, rd.hi, rd.loK, rd.hiK
	if rd.knownCount < 2 {
		return
	}
	sp.judged = true
	d := hi - lo
	if d > sp.worst {
		sp.worst, sp.worstLo, sp.worstHi, sp.loK, sp.hiK = d, lo, hi, loK, hiK
	}
	if d > sp.limit+eps && sp.first == nil {
		sp.first, sp.firstSpread, sp.firstLo, sp.firstHi, sp.firstLoK, sp.firstHiK = at(t), d, lo, hi, loK, hiK
	}
}

func (j *judge) spread(sp spreadTracker) {
	ch := protocol.Check{Name: CheckTemperatureSpread, Unit: "K", LimitMax: num(sp.limit), Measured: round3(sp.worst)}
	switch {
	case sp.first != nil:
		ch.Result, ch.At = protocol.CheckFail, sp.first
		ch.Note = fmt.Sprintf("%s K between %s (%s °C) and %s (%s °C) at %s", fmtNum(sp.firstSpread),
			j.chanName(sp.firstHiK), fmtNum(sp.firstHi), j.chanName(sp.firstLoK), fmtNum(sp.firstLo), stamp(*sp.first))
	case !sp.judged:
		ch.Result, ch.Measured = protocol.CheckIndeterminate, nil
		ch.Note = "no hold sample had two channels read"
	default:
		ch.Result = protocol.CheckPass
		ch.Note = fmt.Sprintf("largest spread %s K, between %s (%s °C) and %s (%s °C)", fmtNum(sp.worst),
			j.chanName(sp.hiK), fmtNum(sp.worstHi), j.chanName(sp.loK), fmtNum(sp.worstLo))
	}
	j.add(ch)
}

// f0Tracker integrates the lethality of the whole cycle at the coldest
// channel, each sample standing for the time until the next, leaving out
// the stretches in a hole. It is reported, not judged.
type f0Tracker struct {
	f0, minutes float64
}

// ln10z turns (T − reference) into the exponent of e: 10^(ΔT/z).
const ln10z = math.Ln10 / f0ZK

func (j *judge) observeF0(f *f0Tracker, rd *reading, i int) {
	samples := j.rec.Samples
	if i+1 >= len(samples) {
		return
	}
	cold := rd.lo
	if rd.loK < 0 || cold < f0FloorC {
		return
	}
	from, to := samples[i].At, samples[i+1].At
	if len(j.rec.Holes) > 0 && j.inHole(from, to) {
		return
	}
	m := j.device(to.Sub(from)) / 60
	if m <= 0 {
		return
	}
	f.minutes += m
	f.f0 += m * math.Exp((cold-f0RefC)*ln10z)
}

func (j *judge) reportF0(f f0Tracker) {
	ch := protocol.Check{Name: CheckF0, Result: protocol.CheckInfo, Unit: "min", Measured: round3(f.f0),
		Note: fmt.Sprintf("lethality at the coldest channel over %s min at or above %s °C (z = %s K, reference %s °C); reported, not a release criterion for porous loads",
			fmtNum(f.minutes), fmtNum(f0FloorC), fmtNum(f0ZK), fmtNum(f0RefC))}
	if ch.Measured == nil {
		ch.Note = "not computed: the temperatures are too high to be a steam cycle's"
	}
	j.add(ch)
}

func (j *judge) inHole(from, to time.Time) bool {
	for _, h := range j.rec.Holes {
		if h.From.Before(to) && h.To.After(from) {
			return true
		}
	}
	return false
}
