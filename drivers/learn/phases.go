package learn

import (
	"fmt"
	"math"
	"strings"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// run is a stretch of samples during which the phase register held one
// code, with what temperature and pressure did meanwhile.
type run struct {
	code             int
	from, to         int     // sample indices, to exclusive (the next run's first sample)
	start, end       float64 // device time of the first sample, and of the next run's first
	tStart, tEnd     float64 // temperature at its first and last sample
	tMean            float64
	pStart, pEnd     float64
	pMin, pMax       float64
	pMean            float64
	name             protocol.PhaseName
	why              string
	uncertain        bool
	insidePlateauSec float64
	main             bool // part of the cycle with the plateau (not a neighbour's)
}

func (r *run) seconds() float64 { return r.end - r.start }

// runsOf splits the phase register's samples into runs.
func (tb *table) runsOf(code, temp, press []float64, plFrom, plTo float64) []run {
	var runs []run
	for i, c := range code {
		if !good(c) {
			continue
		}
		if n := len(runs); n > 0 && float64(runs[n-1].code) == c {
			runs[n-1].to = i + 1
			continue
		}
		runs = append(runs, run{code: int(c), from: i, to: i + 1})
	}
	for k := range runs {
		r := &runs[k]
		if k+1 < len(runs) {
			r.to = runs[k+1].from
		}
		r.start = tb.t[r.from]
		r.end = tb.t[r.to-1]
		if r.to < len(tb.t) {
			r.end = tb.t[r.to]
		}
		r.tStart, r.tEnd = firstGood(temp, r.from, r.to), lastGood(temp, r.from, r.to)
		r.pStart, r.pEnd = firstGood(press, r.from, r.to), lastGood(press, r.from, r.to)
		r.pMin, r.pMax = math.Inf(1), math.Inf(-1)
		var st, sp float64
		var nt, np int
		for i := r.from; i < r.to; i++ {
			if good(temp[i]) {
				st += temp[i]
				nt++
			}
			if good(press[i]) {
				sp += press[i]
				np++
				r.pMin, r.pMax = math.Min(r.pMin, press[i]), math.Max(r.pMax, press[i])
			}
		}
		r.tMean, r.pMean = st/float64(max(nt, 1)), sp/float64(max(np, 1))
		r.insidePlateauSec = math.Max(0, math.Min(r.end, plTo)-math.Max(r.start, plFrom))
	}
	return runs
}

func firstGood(v []float64, i, j int) float64 {
	for k := i; k < j; k++ {
		if good(v[k]) {
			return v[k]
		}
	}
	return math.NaN()
}

func lastGood(v []float64, i, j int) float64 {
	for k := j - 1; k >= i; k-- {
		if good(v[k]) {
			return v[k]
		}
	}
	return math.NaN()
}

// atRest reports whether a run stayed near the resting pressure (the
// chamber open to the atmosphere, or closed and idle).
func (r *run) atRest(rest float64) bool {
	return r.pMax-r.pMin < 10 && math.Abs(r.pMean-rest) < 15
}

// namePhases gives every run a sterigate phase from its place in the cycle
// and what temperature and pressure did during it: the run that covers
// the plateau is sterilizing, runs on the plateau before it equilibration,
// the rise to it heating, the vacuum pulses before that air removal, a
// quiet run at the start preparation; after the plateau the fall of
// pressure is exhaust, a vacuum drying, the return to the atmosphere air
// admission and a quiet last run complete. Idle is the code at rest
// around the cycle. Runs of a neighbouring cycle caught by the recording
// (its end before, its start after) are named the same way, with less
// weight (run.main is false).
func namePhases(runs []run, level, rest float64) {
	if len(runs) == 0 {
		return
	}
	ster := -1
	for k := range runs {
		r := &runs[k]
		if r.insidePlateauSec >= 30 && r.insidePlateauSec >= 0.6*r.seconds() &&
			(ster < 0 || r.insidePlateauSec > runs[ster].insidePlateauSec) {
			ster = k
		}
	}
	// Idle: the code the recording began with, if the chamber was at rest
	// and the plateau came later; else (the recording began during a
	// cycle) the last long quiet run after the plateau.
	idle := math.MinInt
	if runs[0].atRest(rest) && (ster < 0 || 0 < ster) {
		idle = runs[0].code
	} else if ster >= 0 {
		for k := len(runs) - 1; k > ster; k-- {
			if runs[k].atRest(rest) && runs[k].seconds() >= 60 {
				idle = runs[k].code
				break
			}
		}
	}
	first, last := 0, len(runs)-1
	for k := range runs {
		if runs[k].code != idle {
			continue
		}
		set(&runs[k], protocol.PhaseIdle, false, "before or after the cycle, chamber at rest (%.0f kPa)", runs[k].pMean)
		if ster >= 0 && k < ster {
			first = k + 1
		}
		if ster >= 0 && k > ster && last == len(runs)-1 {
			last = k - 1
		}
	}
	if ster < first || ster > last {
		for k := range runs {
			if runs[k].code != idle {
				set(&runs[k], protocol.PhaseUnknown, true, "no plateau to place it by")
			}
		}
		return
	}
	for k := first; k <= last; k++ {
		runs[k].main = true
	}
	set(&runs[ster], protocol.PhaseSterilizing, false, "covers %.0f s of the plateau at %.1f °C", runs[ster].insidePlateauSec, level)
	// Before the plateau, backwards.
	k := ster - 1
	for ; k >= first && runs[k].tMean >= level-2 && runs[k].insidePlateauSec >= 0.5*runs[k].seconds(); k-- {
		set(&runs[k], protocol.PhaseEquilibrate, false, "on the plateau just before the hold (%.0f s)", runs[k].seconds())
	}
	for ; k >= first && runs[k].tEnd >= level-8 && runs[k].tEnd-runs[k].tStart >= 3; k-- {
		set(&runs[k], protocol.PhaseHeating, false, "temperature rises %.1f → %.1f °C up to the plateau", runs[k].tStart, runs[k].tEnd)
	}
	nameStart(runs[first:k+1], rest)
	// The hold itself may be split over several codes.
	k = ster + 1
	for ; k <= last && runs[k].insidePlateauSec >= 0.8*runs[k].seconds() && runs[k].seconds() > 0; k++ {
		set(&runs[k], protocol.PhaseSterilizing, true, "also on the plateau after the main hold code")
	}
	nameEnd(runs[k:last+1], rest)
	// A neighbouring cycle: the end of the one before, the start of the next.
	prev, next := -1, len(runs)
	for j := first - 1; j >= 0; j-- {
		if runs[j].code == idle {
			prev = j
			break
		}
	}
	for j := last + 1; j < len(runs); j++ {
		if runs[j].code == idle {
			next = j
			break
		}
	}
	if prev > 0 {
		nameEnd(runs[:prev], rest)
	}
	if next < len(runs)-1 {
		after := runs[next+1:]
		for j := range after {
			if after[j].code == idle {
				after = after[:j]
				break
			}
		}
		nameStart(after, rest)
	}
}

func set(r *run, name protocol.PhaseName, uncertain bool, why string, args ...any) {
	r.name, r.uncertain, r.why = name, uncertain, fmt.Sprintf(why, args...)
}

// nameStart names the runs of a cycle before heating: a quiet first one is
// preparation, pulses or a purge are air removal.
func nameStart(runs []run, rest float64) {
	for j := range runs {
		r := &runs[j]
		switch {
		case j == 0 && r.atRest(rest) && len(runs) > 1:
			set(r, protocol.PhasePreparation, false, "first of the cycle, pressure unchanged (%.0f s)", r.seconds())
		case r.pMin < 40:
			set(r, protocol.PhaseAirRemoval, false, "vacuum pulses before heating (down to %.0f kPa)", r.pMin)
		case r.pMax-r.pMin >= 10:
			set(r, protocol.PhaseAirRemoval, false, "pressure pulses or purge before heating (%.0f–%.0f kPa)", r.pMin, r.pMax)
		default:
			set(r, protocol.PhasePreparation, true, "before heating, pressure unchanged (%.0f s)", r.seconds())
		}
	}
}

// nameEnd names the runs of a cycle after its plateau: the fall of
// pressure is exhaust, a vacuum drying, the rise back air admission, a
// quiet last run complete.
func nameEnd(runs []run, rest float64) {
	sawExhaust, sawDrying := false, false
	for j := range runs {
		r := &runs[j]
		isLast := j == len(runs)-1 && j > 0
		switch {
		case !sawExhaust && r.pStart-r.pEnd >= 30:
			set(r, protocol.PhaseExhaust, false, "pressure falls %.0f → %.0f kPa after the plateau", r.pStart, r.pEnd)
			sawExhaust = true
		case isLast && r.atRest(rest):
			set(r, protocol.PhaseComplete, false, "last of the cycle, chamber back at rest (%.0f s)", r.seconds())
		case r.pMean < 50:
			set(r, protocol.PhaseDrying, false, "vacuum after the plateau (mean %.0f kPa)", r.pMean)
			sawDrying = true
		case r.pEnd-r.pStart >= 20:
			set(r, protocol.PhaseAirAdmission, false, "pressure rises %.0f → %.0f kPa at the end", r.pStart, r.pEnd)
		case sawExhaust && !sawDrying && r.seconds() >= 60:
			set(r, protocol.PhaseDrying, true, "after exhaust, %.0f s near the atmosphere (atmospheric drying?)", r.seconds())
			sawDrying = true
		case !sawExhaust:
			set(r, protocol.PhaseExhaust, true, "first after the plateau (%.0f → %.0f kPa)", r.pStart, r.pEnd)
			sawExhaust = true
		default:
			set(r, protocol.PhaseAirAdmission, true, "between drying and the end, at the atmosphere (%.0f s)", r.seconds())
		}
	}
}

// PhaseCode is one code of the phase register and the phase it maps to.
type PhaseCode struct {
	Code      int                `json:"code"`
	Phase     protocol.PhaseName `json:"phase"`
	Seconds   float64            `json:"seconds"` // how long it was seen
	Check     bool               `json:"check"`
	Evidence  string             `json:"evidence"`
	Conflicts string             `json:"conflicts,omitempty"`
}

// phaseCodes collects one mapping per code: the first run of a code
// names it; a later run of the same code named differently is noted.
func phaseCodes(runs []run) []PhaseCode {
	var out []PhaseCode
	index := map[int]int{}
	// The cycle with the plateau names its codes first; a neighbouring
	// cycle's partial view of its codes only adds codes it alone shows.
	ordered := make([]run, 0, len(runs))
	for _, main := range []bool{true, false} {
		for _, r := range runs {
			if r.main == main {
				ordered = append(ordered, r)
			}
		}
	}
	for _, r := range ordered {
		i, ok := index[r.code]
		if !ok {
			index[r.code] = len(out)
			out = append(out, PhaseCode{Code: r.code, Phase: r.name, Seconds: r.seconds(), Check: r.uncertain || !r.main && r.name != protocol.PhaseIdle, Evidence: r.why})
			continue
		}
		pc := &out[i]
		pc.Seconds += r.seconds()
		if r.name != pc.Phase && r.main && r.name != protocol.PhaseIdle && pc.Phase != protocol.PhaseIdle {
			pc.Check = true
			pc.Conflicts = fmt.Sprintf("also seen where it looked like %s", r.name)
		}
	}
	return out
}

// events are the moments a phase register should change at: the pressure
// leaving rest, the plateau's start and end, the pressure back at rest.
func (a *analysis) events() (depart, settle float64, ok bool) {
	tb, p := a.tb, a.press.v
	di, si := -1, -1
	for i, v := range p {
		if good(v) && math.Abs(v-a.rest) > 10 {
			if di < 0 {
				di = i
			}
			si = i
		}
	}
	if di < 0 {
		return 0, 0, false
	}
	settle = tb.t[si]
	if si+1 < len(tb.t) {
		settle = tb.t[si+1]
	}
	return tb.t[di], settle, true
}

// phase looks for the phase register: a 16-bit code with a few values,
// not a timer, that changes near the moments a cycle's phases turn (at
// least two of the pressure leaving rest, the plateau's start and end, the
// pressure back at rest), and names its codes (namePhases).
func (a *analysis) phase() {
	tb, res := a.tb, a.res
	depart, settle, _ := a.events()
	events := []float64{depart, a.plFrom, a.plTo, settle}
	eventNames := []string{"the pressure leaves rest", "the plateau starts", "the plateau ends", "the pressure is back at rest"}
	near := func(s intSeries, at float64) bool {
		for _, c := range s.changes {
			if math.Abs(tb.t[c.i]-at) <= 30 {
				return true
			}
		}
		return false
	}
	var best *intSeries
	bestScore := 0.0
	for i := range a.views {
		s := &a.views[i]
		if s.field.Type != profile.TypeU16 || a.isClaimed(s.field) {
			continue
		}
		distinct := map[float64]bool{}
		for _, v := range s.v {
			if good(v) {
				distinct[v] = true
			}
			if len(distinct) > 40 {
				break
			}
		}
		nd := len(distinct)
		if nd < 3 || nd > 40 || len(s.changes)+1 > 3*nd+3 {
			continue
		}
		if _, ok := tb.countsTime(s.v, 1); ok {
			continue // a timer read every few seconds has few values too
		}
		if _, ok := tb.countsTime(s.v, -1); ok {
			continue
		}
		matched := 0
		for _, e := range events {
			if near(*s, e) {
				matched++
			}
		}
		if matched < 2 {
			continue
		}
		score := float64(matched) + float64(nd)/100
		if best == nil || score > bestScore {
			best, bestScore = s, score
		}
	}
	var when []string
	for i, e := range events {
		if best != nil && near(*best, e) {
			when = append(when, fmt.Sprintf("%s (%s)", eventNames[i], clock(e-tb.t[0])))
		}
	}
	if best == nil {
		res.Notes = append(res.Notes, "no phase register found: no register with a few codes changes where the pressure starts, the plateau begins and ends, and the pressure comes back; the draft records every sample as phase unknown")
		return
	}
	a.runs = tb.runsOf(best.v, a.temp.v, a.press.v, a.plFrom, a.plTo)
	namePhases(a.runs, a.level, a.rest)
	res.PhaseCodes = phaseCodes(a.runs)
	for _, r := range a.runs {
		if n := len(res.PhasesSeen); n == 0 || res.PhasesSeen[n-1] != r.name {
			res.PhasesSeen = append(res.PhasesSeen, r.name)
		}
	}
	unsure := 0
	for _, pc := range res.PhaseCodes {
		if pc.Check || pc.Phase == protocol.PhaseUnknown {
			unsure++
		}
	}
	conf := "high"
	if unsure > 0 {
		conf = "medium"
	}
	a.claim(&Finding{Name: "phase", Role: profile.RolePhase, Function: best.field.Function, Address: best.field.Address, Type: profile.TypeU16,
		Order: profile.OrderABCD, Scale: 1, Confidence: conf,
		Evidence: fmt.Sprintf("u16: %d codes in %d runs; changes within 30 s of where %s; %d of %d codes named with certainty",
			len(res.PhaseCodes), len(a.runs), strings.Join(when, ", "), len(res.PhaseCodes)-unsure, len(res.PhaseCodes))})
}

// cycleWindow is when the cycle ran: from the pressure leaving rest (or
// the phase leaving idle, whichever first) to the pressure back at rest
// (or the last phase of the cycle ending, whichever last).
func (a *analysis) cycleWindow() (float64, float64) {
	depart, settle, _ := a.events()
	from, to := depart, settle
	for _, r := range a.runs {
		if r.name != protocol.PhaseIdle && r.start < a.plFrom {
			from = math.Min(from, r.start)
			break
		}
	}
	for i := len(a.runs) - 1; i >= 0; i-- {
		if r := a.runs[i]; r.name != protocol.PhaseIdle && r.end > a.plTo {
			to = math.Max(to, r.end)
			break
		}
	}
	return from, to
}

// endSeen decides whether the recording holds the end of the cycle: a
// latched counter stepped (set by counters), or the phase came back to
// complete or idle after the plateau, or, without a phase register, the
// pressure has been back at rest for five minutes.
func (a *analysis) endSeen() {
	res, tb := a.res, a.tb
	if res.EndSeen {
		return
	}
	// The last run is still going on: it could be an atmospheric drying
	// taken for "complete". Only a run that ended, or that went on for
	// ten minutes, tells the cycle is over.
	for k, r := range a.runs {
		ended := k < len(a.runs)-1 || r.seconds() >= 600
		if (r.name == protocol.PhaseIdle || r.name == protocol.PhaseComplete) && r.start > a.plTo && ended {
			res.EndSeen, res.EndAt = true, r.start
			if r.name == protocol.PhaseComplete && k < len(a.runs)-1 {
				res.EndAt = a.runs[k+1].start
			}
			return
		}
	}
	if len(a.runs) == 0 {
		_, settle, _ := a.events()
		if settle > a.plTo && tb.t[len(tb.t)-1]-settle >= 300 {
			res.EndSeen, res.EndAt = true, settle
		}
	}
}
