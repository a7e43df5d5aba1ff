package learn

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
)

// Finding is one field the analysis identified.
type Finding struct {
	Name     string        `json:"name"`           // field name in the draft
	Role     profile.Role  `json:"role,omitempty"` // "" for a field no role uses
	Function byte          `json:"function"`
	Address  uint16        `json:"address"`
	Type     profile.Type  `json:"type"`
	Order    profile.Order `json:"order"`
	Scale    float64       `json:"scale"`
	Offset   float64       `json:"offset"`
	Unit     string        `json:"unit,omitempty"` // the profile's unit: °C, kPa abs, s
	Sent     string        `json:"sent,omitempty"` // how the device sends it, e.g. "bar gauge"
	// Confidence is high, medium or low; Check marks what a person must
	// confirm (the draft says "# check").
	Confidence string `json:"confidence"`
	Check      bool   `json:"check"`
	Evidence   string `json:"evidence"`
	// FutureRole names a role this field will fill once the profile
	// format has it (jacket_temperature, last_plateau_min, …).
	FutureRole string `json:"future_role,omitempty"`
}

func (f *Finding) field() profile.Field {
	return profile.Field{Name: f.Name, Function: f.Function, Address: f.Address, Type: f.Type, Order: f.Order, Scale: f.Scale, Offset: f.Offset}
}

// Span is the window of the recording a cycle or plateau took.
type Span struct {
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
}

// Result is what the analysis found in a recording.
type Result struct {
	Samples   int     `json:"samples"`
	Seconds   float64 `json:"seconds"`   // device seconds from the first to the last sample
	Registers int     `json:"registers"` // registers and bits recorded
	Changed   int     `json:"changed"`   // of which changed at least once

	Findings   []Finding   `json:"findings"`
	PhaseCodes []PhaseCode `json:"phase_codes,omitempty"`
	// PhasesSeen is the sequence of phases guessed, in order.
	PhasesSeen []protocol.PhaseName `json:"phases_seen,omitempty"`

	CycleEnd         profile.CycleEndOn   `json:"cycle_end,omitempty"`
	CycleEndPhases   []protocol.PhaseName `json:"cycle_end_phases,omitempty"`
	CycleEndEvidence string               `json:"cycle_end_evidence,omitempty"`

	Cycle   *Span `json:"cycle,omitempty"`
	Plateau *Span `json:"plateau,omitempty"`
	// PlateauC and PlateauKPa are the plateau's median temperature and pressure.
	PlateauC   float64 `json:"plateau_c,omitempty"`
	PlateauKPa float64 `json:"plateau_kpa,omitempty"`
	// EndSeen: the recording holds the end of a cycle (the pressure back
	// at rest after the plateau, or a latched counter that stepped).
	EndSeen bool    `json:"end_seen"`
	EndAt   float64 `json:"end_at_s,omitempty"`

	// Missing names required roles that were not found, with why.
	Missing []string `json:"missing,omitempty"`
	// Unexplained lists registers that changed but were not identified.
	Unexplained []string `json:"unexplained,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Find returns the finding for a role, or nil.
func (r *Result) Find(role profile.Role) *Finding {
	for i := range r.Findings {
		if r.Findings[i].Role == role {
			return &r.Findings[i]
		}
	}
	return nil
}

// FindName returns the finding called name, or nil.
func (r *Result) FindName(name string) *Finding {
	for i := range r.Findings {
		if r.Findings[i].Name == name {
			return &r.Findings[i]
		}
	}
	return nil
}

// Complete reports whether the required roles were all found.
func (r *Result) Complete() bool { return len(r.Missing) == 0 }

// maxPhaseChanges bounds how often a phase register changes in a recording
// (3 × 40 codes + 3): a register that changes more is no code.
const maxPhaseChanges = 123

// analysis carries the state of one Analyse call.
type analysis struct {
	tb      *table
	res     *Result
	claimed map[regKey]string // register → the finding that uses it
	temp    *numCand
	press   *numCand
	rest    float64 // resting pressure, kPa
	level   float64
	plFrom  float64
	plTo    float64
	runs    []run
	views   []intSeries
}

// Analyse looks for the chamber temperature and pressure, the counters,
// the phase code and the rest of a steam cycle in a recording.
func Analyse(rec *Recording) *Result {
	tb := newTable(rec)
	a := &analysis{tb: tb, res: &Result{Samples: len(tb.t), Registers: len(tb.cols)}, claimed: map[regKey]string{}}
	res := a.res
	if n := len(tb.t); n > 0 {
		res.Seconds = tb.t[n-1] - tb.t[0]
	}
	mirrors := 0
	for _, c := range tb.cols {
		if !c.constant {
			res.Changed++
			if c.mirror {
				mirrors++
			}
		}
	}
	if mirrors > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d input registers (function 4) read like the holding registers (function 3) at the same addresses: the device serves its table as both; learn uses function 3", mirrors))
	}
	if len(tb.t) < 30 {
		res.Missing = append(res.Missing, fmt.Sprintf("everything: %d samples are too few; record a whole cycle", len(tb.t)))
		return res
	}
	if !a.temperatureAndPressure() {
		return res
	}
	a.views = tb.integerViews(maxPhaseChanges)
	a.phase()
	from, to := a.cycleWindow()
	res.Cycle = &Span{from, to}
	a.program() // before the counters: a program code is no counter's high word
	a.counters()
	a.endRegisters()
	a.timers()
	a.extras()
	a.unexplained()
	sort.SliceStable(res.Findings, func(i, j int) bool { return findingRank(res.Findings[i]) < findingRank(res.Findings[j]) })
	return res
}

// findingRank orders the draft's fields: roles first in the documentation's
// order, then the others.
func findingRank(f Finding) int {
	order := []profile.Role{profile.RoleChamberTemperature, profile.RoleChamberPressure, profile.RolePhase, profile.RoleProgram,
		profile.RoleCycleCounter, profile.RoleLastCycle, profile.RoleLastResult, profile.RoleLastProgram, profile.RoleAlarmCode}
	for i, r := range order {
		if f.Role == r {
			return i
		}
	}
	return len(order)
}

func (a *analysis) claim(f *Finding) {
	for w := 0; w < f.Type.Registers(); w++ {
		a.claimed[regKey{f.Function, f.Address + uint16(w)}] = f.Name
	}
	a.res.Findings = append(a.res.Findings, *f)
}

func (a *analysis) isClaimed(f profile.Field) bool {
	for w := 0; w < f.Type.Registers(); w++ {
		if _, ok := a.claimed[regKey{f.Function, f.Address + uint16(w)}]; ok {
			return true
		}
	}
	return false
}

// clock formats device seconds since the start as m:ss.
func clock(s float64) string {
	s = math.Max(0, s)
	return fmt.Sprintf("%d:%02d", int(s)/60, int(s)%60)
}

func (a *analysis) temperatureAndPressure() bool {
	tb, res := a.tb, a.res
	chambers, jackets, presses := tb.numericCandidates()
	pairs := tb.pair(chambers, presses)
	if len(pairs) == 0 {
		switch {
		case len(chambers) == 0:
			res.Missing = append(res.Missing, "chamber_temperature: no register rises to a plateau between 105 and 140 °C; the recording must include a whole steam cycle with its hold")
		case len(presses) == 0:
			res.Missing = append(res.Missing, "chamber_pressure: no register swings like a chamber pressure (to 110–700 kPa)")
		default:
			res.Missing = append(res.Missing, fmt.Sprintf("chamber_temperature, chamber_pressure: %d temperature and %d pressure candidates, but none agree through the saturation curve (|T − Tsat(p)| ≤ 3 K on the plateau)", len(chambers), len(presses)))
		}
		res.Missing = append(res.Missing, "cycle_counter: not looked for without the temperature and pressure")
		return false
	}
	best := pairs[0]
	a.temp, a.press = best.temp, best.press
	a.level = best.temp.level
	a.plFrom, a.plTo = tb.t[best.temp.plateauFrom], tb.t[best.temp.plateauTo-1]
	res.Plateau = &Span{a.plFrom, a.plTo}
	res.PlateauC = a.level
	res.PlateauKPa = median(best.press.v[best.temp.plateauFrom:best.temp.plateauTo])
	a.rest = restingPressure(best.press.v)
	// A competing pairing that reads other values and scores as well
	// makes both uncertain.
	var rivals []string
	for _, p := range pairs[1:] {
		if best.score-p.score > 0.005 {
			break
		}
		if !nearlySame(p.temp.v, best.temp.v) || !nearlySame(p.press.v, best.press.v) {
			rivals = append(rivals, fmt.Sprintf("%s with %s", fieldRef(p.temp.field), fieldRef(p.press.field)))
		}
	}
	conf := "high"
	if best.medianDev > 1 || best.r < 0.99 {
		conf = "medium"
	}
	check := len(rivals) > 0
	rivalNote := ""
	if check {
		conf = "low"
		rivalNote = "; as likely: " + strings.Join(rivals[:min(3, len(rivals))], ", ")
	}
	t := best.temp
	a.claim(&Finding{Name: "chamber_temp", Role: profile.RoleChamberTemperature, Function: t.field.Function, Address: t.field.Address,
		Type: t.field.Type, Order: t.field.Order, Scale: t.conv.scale, Offset: t.conv.offset, Unit: "°C", Sent: t.conv.label,
		Confidence: conf, Check: check,
		Evidence: fmt.Sprintf("%s: rises from %.0f °C to a plateau at %.1f °C held %.0f s (%s–%s); %.4f correlation with Tsat(p) over %d samples of heat-up and hold; median |T − Tsat(p)| %.2f K on the plateau%s",
			t.describe(), t.low, a.level, t.plateauSeconds, clock(a.plFrom-tb.t[0]), clock(a.plTo-tb.t[0]), best.r, best.rSamples, best.medianDev, rivalNote)})
	p := best.press
	vac := ""
	if best.vacuum {
		vac = fmt.Sprintf(", vacuum pulses down to %.1f kPa", p.low)
	}
	a.claim(&Finding{Name: "chamber_pressure", Role: profile.RoleChamberPressure, Function: p.field.Function, Address: p.field.Address,
		Type: p.field.Type, Order: p.field.Order, Scale: p.conv.scale, Offset: p.conv.offset, Unit: "kPa abs", Sent: p.conv.label,
		Confidence: conf, Check: check,
		Evidence: fmt.Sprintf("%s: %.1f–%.1f kPa abs%s; on the plateau %.1f kPa, Tsat(p) %.1f °C against T %.1f °C (median |T − Tsat(p)| %.2f K)%s",
			p.describe(), p.low, p.high, vac, res.PlateauKPa, steam.TempC(res.PlateauKPa), a.level, best.medianDev, rivalNote)})
	a.jacket(jackets)
	return true
}

// restingPressure is the chamber's pressure between cycles: the first or
// else the last ten samples if the pressure is steady there near the
// atmosphere, else a standard atmosphere.
func restingPressure(p []float64) float64 {
	n := min(10, len(p))
	for _, w := range [][]float64{p[:n], p[len(p)-n:]} {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range w {
			if good(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if m := median(w); hi-lo < 5 && m > 60 && m < 140 {
			return m
		}
	}
	return atmosphereKPa
}

// jacket picks a temperature that stays hot through the cycle and is near
// the plateau during the hold: the jacket (steam generator side).
func (a *analysis) jacket(jackets []*numCand) {
	var best *numCand
	for _, j := range jackets {
		if a.isClaimed(j.field) || len(changesOf(j.v)) < len(j.v)/20 {
			continue // a latched value, not a sensor
		}
		if m := median(j.v[a.temp.plateauFrom:a.temp.plateauTo]); !(math.Abs(m-a.level) <= 10) {
			continue
		}
		sameFamily := func(c *numCand) bool { return c.conv == a.temp.conv && c.field.Type == a.temp.field.Type }
		if best == nil || (sameFamily(j) && !sameFamily(best)) || (sameFamily(j) == sameFamily(best) && j.rough < best.rough) {
			best = j
		}
	}
	if best == nil {
		return
	}
	a.claim(&Finding{Name: "jacket_temp", Function: best.field.Function, Address: best.field.Address, Type: best.field.Type, Order: best.field.Order,
		Scale: best.conv.scale, Offset: best.conv.offset, Unit: "°C", Sent: best.conv.label, Confidence: "low", Check: true, FutureRole: "jacket_temperature",
		Evidence: fmt.Sprintf("%s: %.1f–%.1f °C, hot before the cycle and near the plateau during the hold: a jacket or steam generator temperature?", best.describe(), best.low, best.high)})
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

func (a *analysis) phase() {
	tb, res := a.tb, a.res
	depart, settle, _ := a.events()
	events := []float64{depart, a.plFrom, a.plTo, settle}
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
		Evidence: fmt.Sprintf("u16: %d codes in %d runs; changes where the pressure leaves rest (%s), at the plateau's start (%s) and end (%s) and where the pressure is back (%s); %d of %d codes mapped with certainty",
			len(res.PhaseCodes), len(a.runs), clock(depart-tb.t[0]), clock(a.plFrom-tb.t[0]), clock(a.plTo-tb.t[0]), clock(settle-tb.t[0]), len(res.PhaseCodes)-unsure, len(res.PhaseCodes))})
}

// cycleWindow is when the cycle ran: from the pressure leaving rest (or
// the phase leaving idle, or a counter step, whichever first) to the
// pressure back at rest (or the phase back to idle).
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

// counters finds the cycle counter and the latched last cycle. The latch
// is what steps first after the plateau; the running cycle's counter is
// what read, during the plateau, the value the latch then took (it stepped
// when the cycle started, or before the recording did). Without a latch,
// a counter stepping after the plateau counts finished cycles; without
// either, one stepping before it counts the running cycle.
func (a *analysis) counters() {
	tb, res := a.tb, a.res
	cands := counterCands(a.views, a.isClaimed)
	mid := (a.temp.plateauFrom + a.temp.plateauTo) / 2
	firstEnd := -1
	for _, c := range cands {
		if i, _, ok := c.stepAfter(tb, a.plTo); ok && (firstEnd < 0 || i < firstEnd) {
			firstEnd = i
		}
	}
	var latches, starts []counterCand
	for _, c := range cands {
		if i, _, ok := c.stepAfter(tb, a.plTo); ok && i == firstEnd {
			latches = append(latches, c)
		}
		if tb.t[c.s.changes[0].i] < a.plFrom {
			starts = append(starts, c)
		}
	}
	type pairing struct{ run, latch counterCand }
	var pairs []pairing
	for _, l := range latches {
		_, v, _ := l.stepAfter(tb, a.plTo)
		for _, r := range cands {
			if !overlap(r.s.field, l.s.field) && r.valueAt(mid) == v {
				if i, _, ok := r.stepAfter(tb, a.plTo); !ok || i > firstEnd {
					pairs = append(pairs, pairing{r, l})
				}
			}
		}
	}
	if len(pairs) == 0 {
		// The running counter may not have moved at all: the recording
		// began after the cycle had started, and ended before the next.
		for _, l := range latches {
			_, v, _ := l.stepAfter(tb, a.plTo)
			for _, r := range a.constantReadings(v) {
				if !overlap(r.s.field, l.s.field) {
					pairs = append(pairs, pairing{r, l})
				}
			}
		}
	}
	step := func(c counterCand) string {
		ch := c.s.changes[0]
		s := fmt.Sprintf("stepped %.0f → %.0f at %s", ch.before, ch.after, clock(tb.t[ch.i]-tb.t[0]))
		if len(c.s.changes) > 1 {
			s += fmt.Sprintf(" and %d more time(s), always by one", len(c.s.changes)-1)
		}
		return s
	}
	withNote := func(s, note string) (string, bool) {
		if note != "" {
			return s + "; " + note, true
		}
		return s, false
	}
	switch {
	case len(pairs) > 0:
		sort.SliceStable(pairs, func(i, j int) bool {
			a, b := pairs[i], pairs[j]
			if va, vb := a.run.valueAt(mid), b.run.valueAt(mid); va != vb {
				// Both sides agree on either: the larger is a 32-bit
				// counter whose high word is not zero.
				return va > vb
			}
			if !sameField(a.run.s.field, b.run.s.field) {
				return preferField(a.run.s.field, b.run.s.field, false)
			}
			return preferField(a.latch.s.field, b.latch.s.field, false)
		})
		p := pairs[0]
		_, v, _ := p.latch.stepAfter(tb, a.plTo)
		res.CycleEnd = profile.EndOnLastCycleChange
		res.CycleEndEvidence = fmt.Sprintf("the running cycle's counter read %.0f during the plateau, and a latched copy took that value when the cycle ended", v)
		res.EndSeen, res.EndAt = true, tb.t[firstEnd]
		runWhen := "during the whole recording (it stepped before the recording began)"
		if len(p.run.s.changes) == 0 {
			// as said
		} else if i := p.run.s.changes[0].i; tb.t[i] < a.plFrom {
			runWhen = step(p.run) + ", before the plateau (the cycle's start)"
		} else if tb.t[i] > a.plTo {
			runWhen = fmt.Sprintf("during the plateau; %s, when the next cycle started", step(p.run))
		}
		ev, check := withNote(fmt.Sprintf("%s: read %.0f %s; the latched last cycle took the same value at the end", fieldRef(p.run.s.field), v, runWhen), widerNote(p.run, cands, mid))
		conf := "high"
		if len(p.run.s.changes) == 0 {
			conf, check = "medium", true // a register that never moved may hold that number by chance
		}
		a.claim(counterFinding("cycle_counter", profile.RoleCycleCounter, p.run.s.field, conf, check, ev))
		ev, check = withNote(fmt.Sprintf("%s: %s, after the plateau: the number of the cycle that just finished", fieldRef(p.latch.s.field), step(p.latch)), widerNote(p.latch, cands, firstEnd))
		a.claim(counterFinding("last_cycle", profile.RoleLastCycle, p.latch.s.field, "high", check, ev))
	case len(latches) > 0:
		sort.SliceStable(latches, func(i, j int) bool { return preferField(latches[i].s.field, latches[j].s.field, false) })
		l := latches[0]
		res.CycleEnd = profile.EndOnCounterChange
		res.CycleEndEvidence = "a counter steps by one when the cycle ends"
		res.EndSeen, res.EndAt = true, tb.t[firstEnd]
		ev, check := withNote(fmt.Sprintf("%s: %s, after the plateau: counts finished cycles", fieldRef(l.s.field), step(l)), widerNote(l, cands, firstEnd))
		a.claim(counterFinding("cycle_counter", profile.RoleCycleCounter, l.s.field, "medium", check, ev))
	case len(starts) > 0:
		sort.SliceStable(starts, func(i, j int) bool { return preferField(starts[i].s.field, starts[j].s.field, false) })
		r := starts[0]
		res.CycleEnd = profile.EndOnPhaseEnters
		res.CycleEndPhases = []protocol.PhaseName{protocol.PhaseComplete, protocol.PhaseFault}
		if !a.mapped(protocol.PhaseComplete) {
			res.CycleEndPhases = []protocol.PhaseName{protocol.PhaseIdle, protocol.PhaseFault}
		}
		res.CycleEndEvidence = "the counter steps when a cycle starts and nothing latches the last cycle: the end is the phase entering " + string(res.CycleEndPhases[0])
		ev, check := withNote(fmt.Sprintf("%s: %s, before the plateau: the number of the running cycle", fieldRef(r.s.field), step(r)), widerNote(r, cands, mid))
		a.claim(counterFinding("cycle_counter", profile.RoleCycleCounter, r.s.field, "medium", check, ev))
	default:
		res.Missing = append(res.Missing, "cycle_counter: no register stepped by one around the cycle; start the recording before the cycle starts and let it run until the device is idle again")
	}
	if res.CycleEnd == profile.EndOnPhaseEnters && !a.hasRole(profile.RolePhase) {
		res.Missing = append(res.Missing, "phase: the end of a cycle can only be told by the phase here, and no phase register was found")
	}
	a.endSeen()
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

// constantReadings are the readings of registers that never changed and
// read v: u16, and u32 in every order.
func (a *analysis) constantReadings(v float64) []counterCand {
	tb := a.tb
	var out []counterCand
	try := func(f profile.Field) {
		if a.isClaimed(f) {
			return
		}
		vals := make([]float64, len(tb.t))
		if tb.decode(&f, vals) && firstGood(vals, 0, len(vals)) == v {
			out = append(out, counterCand{s: intSeries{field: f, v: vals}})
		}
	}
	for ci := range tb.cols {
		c := &tb.cols[ci]
		if !c.usable() || !c.constant {
			continue
		}
		try(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1})
		if next := tb.col(regKey{c.key.fn, c.key.addr + 1}); c.key.addr < math.MaxUint16 && next != nil && next.usable() && next.constant {
			for _, o := range []profile.Order{profile.OrderABCD, profile.OrderCDAB, profile.OrderBADC, profile.OrderDCBA} {
				try(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU32, Order: o, Scale: 1})
			}
		}
	}
	return out
}

func counterFinding(name string, role profile.Role, f profile.Field, conf string, check bool, evidence string) *Finding {
	return &Finding{Name: name, Role: role, Function: f.Function, Address: f.Address, Type: f.Type, Order: f.Order, Scale: 1,
		Confidence: conf, Check: check, Evidence: evidence}
}

func (a *analysis) hasRole(r profile.Role) bool { return a.res.Find(r) != nil }

func (a *analysis) mapped(ph protocol.PhaseName) bool {
	for _, pc := range a.res.PhaseCodes {
		if pc.Phase == ph {
			return true
		}
	}
	return false
}

// program looks for a code set when the cycle starts and held to its end
// and beyond.
func (a *analysis) program() {
	tb, res := a.tb, a.res
	from := res.Cycle.From
	// Words of counters step at the start too; they are no program code.
	counting := map[regKey]bool{}
	for _, c := range counterCands(a.views, func(profile.Field) bool { return false }) {
		for w := 0; w < c.s.field.Type.Registers(); w++ {
			counting[regKey{c.s.field.Function, c.s.field.Address + uint16(w)}] = true
		}
	}
	var cands []intSeries
	for _, s := range a.views {
		if s.field.Type != profile.TypeU16 || a.isClaimed(s.field) || len(s.changes) != 1 || counting[regKey{s.field.Function, s.field.Address}] {
			continue
		}
		c := s.changes[0]
		at := tb.t[c.i]
		if math.Abs(at-from) > 60 || c.after < 1 || c.after > 9999 {
			continue
		}
		cands = append(cands, s)
	}
	if len(cands) == 0 {
		res.Notes = append(res.Notes, "program register not found: none changed when the cycle started (the previous cycle ran the same program?); to see it, run a different program than the one before, or take it from the manual")
		return
	}
	sort.SliceStable(cands, func(i, j int) bool {
		return math.Abs(tb.t[cands[i].changes[0].i]-from) < math.Abs(tb.t[cands[j].changes[0].i]-from)
	})
	s := cands[0]
	c := s.changes[0]
	conf, check := "medium", len(cands) > 1
	if check {
		conf = "low"
	}
	a.claim(&Finding{Name: "program", Role: profile.RoleProgram, Function: s.field.Function, Address: s.field.Address, Type: profile.TypeU16,
		Order: profile.OrderABCD, Scale: 1, Confidence: conf, Check: check,
		Evidence: fmt.Sprintf("u16: changed %.0f → %.0f when the cycle started (%s) and held to the end%s", c.before, c.after, clock(tb.t[c.i]-tb.t[0]), others(len(cands)-1))})
}

func others(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d other register(s) did the same", n)
}

// endRegisters looks for what changes once, after the plateau, at the end
// of the cycle: the last cycle's result and program, its plateau extremes
// and hold time.
func (a *analysis) endRegisters() {
	tb, res := a.tb, a.res
	prog := res.Find(profile.RoleProgram)
	progValue := math.NaN()
	if prog != nil {
		v := make([]float64, len(tb.t))
		f := prog.field()
		tb.decode(&f, v)
		progValue = lastGood(v, 0, len(v))
	}
	endFrom, endTo := a.plTo, res.Cycle.To+120
	if res.EndSeen {
		endTo = math.Max(endTo, res.EndAt+120)
	}
	var results []intSeries
	holdFound := false
	holdS := a.holdSeconds()
	for _, s := range a.views {
		if s.field.Type != profile.TypeU16 || a.isClaimed(s.field) || len(s.changes) != 1 {
			continue
		}
		c := s.changes[0]
		at := tb.t[c.i]
		if at < endFrom || at > endTo {
			continue
		}
		switch {
		case prog != nil && c.after == progValue:
			a.claim(&Finding{Name: "last_program", Role: profile.RoleLastProgram, Function: s.field.Function, Address: s.field.Address,
				Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1, Confidence: "medium",
				Evidence: fmt.Sprintf("u16: changed %.0f → %.0f at the end (%s), the program code of this cycle", c.before, c.after, clock(at-tb.t[0]))})
		case !holdFound && holdS > 0 && math.Abs(c.after-holdS) <= math.Max(10, 0.15*holdS):
			holdFound = true
			a.claim(&Finding{Name: "last_hold_seconds", Function: s.field.Function, Address: s.field.Address, Type: profile.TypeU16,
				Order: profile.OrderABCD, Scale: 1, Unit: "s", Confidence: "medium", Check: true, FutureRole: "last_hold_seconds",
				Evidence: fmt.Sprintf("u16: changed to %.0f at the end (%s); the hold lasted about %.0f s", c.after, clock(at-tb.t[0]), holdS)})
		case c.after <= 255:
			results = append(results, s)
		}
	}
	if len(results) > 0 {
		s := results[0]
		c := s.changes[0]
		check := true
		a.claim(&Finding{Name: "last_result", Role: profile.RoleLastResult, Function: s.field.Function, Address: s.field.Address,
			Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1, Confidence: "low", Check: check,
			Evidence: fmt.Sprintf("u16: changed %.0f → %.0f at the end (%s): the verdict of the cycle? map its codes in results%s", c.before, c.after, clock(tb.t[c.i]-tb.t[0]), others(len(results)-1))})
	} else {
		res.Notes = append(res.Notes, "result register not found: nothing small changed at the end (the previous cycle had the same verdict?); take the codes from the manual or record a cycle after a failed one")
	}
	a.plateauExtremes(endFrom, endTo)
}

// holdSeconds is how long the hold lasted: the sterilizing runs if the
// phase is known, else the plateau.
func (a *analysis) holdSeconds() float64 {
	var s float64
	for _, r := range a.runs {
		if r.name == protocol.PhaseSterilizing {
			s += r.seconds()
		}
	}
	if s == 0 {
		s = a.plTo - a.plFrom
	}
	return s
}

// plateauExtremes looks, among registers read like the chamber
// temperature, for two that take the hold's lowest and highest
// temperature when the cycle ends.
func (a *analysis) plateauExtremes(endFrom, endTo float64) {
	tb := a.tb
	lo, hi := math.Inf(1), math.Inf(-1)
	i0, i1 := a.temp.plateauFrom, a.temp.plateauTo
	for _, r := range a.runs {
		if r.name == protocol.PhaseSterilizing {
			i0, i1 = r.from, r.to
			break
		}
	}
	for i := i0; i < i1; i++ {
		if v := a.temp.v[i]; good(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	v := make([]float64, len(tb.t))
	foundMin, foundMax := false, false
	for ci := range tb.cols {
		c := &tb.cols[ci]
		f := a.temp.field
		f.Function, f.Address = c.key.fn, c.key.addr
		if !c.usable() || a.isClaimed(f) {
			continue
		}
		// A latched value changes once or twice: leave the registers that
		// change all the time undecoded.
		changes := c.changes
		if f.Type.Registers() == 2 {
			if next := tb.col(regKey{c.key.fn, c.key.addr + 1}); next != nil {
				changes += next.changes
			}
		}
		if changes < 1 || changes > 4 || !tb.decode(&f, v) {
			continue
		}
		ch := changesOf(v)
		if len(ch) != 1 || tb.t[ch[0].i] < endFrom || tb.t[ch[0].i] > endTo {
			continue
		}
		x := ch[0].after*a.temp.conv.scale + a.temp.conv.offset
		name, future, target := "", "", 0.0
		switch {
		case !foundMin && math.Abs(x-lo) <= 0.6 && math.Abs(x-lo) < math.Abs(x-hi):
			name, future, target, foundMin = "last_plateau_min", "last_plateau_min", lo, true
		case !foundMax && math.Abs(x-hi) <= 0.6:
			name, future, target, foundMax = "last_plateau_max", "last_plateau_max", hi, true
		default:
			continue
		}
		a.claim(&Finding{Name: name, Function: f.Function, Address: f.Address, Type: f.Type, Order: f.Order, Scale: a.temp.conv.scale,
			Offset: a.temp.conv.offset, Unit: "°C", Sent: a.temp.conv.label, Confidence: "medium", Check: true, FutureRole: future,
			Evidence: fmt.Sprintf("read like the chamber temperature, it changed to %.1f °C at the end (%s); the hold's extreme was %.1f °C", x, clock(tb.t[ch[0].i]-tb.t[0]), target)})
	}
}

// timers looks for elapsed and remaining time, and a device clock, among
// the registers that change all the time.
func (a *analysis) timers() {
	tb, res := a.tb, a.res
	from, to := res.Cycle.From, res.Cycle.To
	foundElapsed, foundRemaining, foundClock := false, false, false
	v := make([]float64, len(tb.t))
	unit := map[string]string{"s": "second", "min": "minute"}
	for ci := range tb.cols {
		c := &tb.cols[ci]
		if !c.usable() || c.changes < 20 {
			continue
		}
		f := profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1}
		if !a.isClaimed(f) && tb.decode(&f, v) {
			if st, ok := tb.countsTime(v, 1); ok && !foundElapsed {
				covered := math.Min(tb.t[st.to-1], to) - math.Max(tb.t[st.from], from)
				if covered >= 0.5*(to-from) {
					foundElapsed = true
					a.claim(&Finding{Name: "elapsed_time", Function: f.Function, Address: f.Address, Type: profile.TypeU16,
						Order: profile.OrderABCD, Scale: 1, Unit: st.unit, Confidence: "medium",
						Evidence: fmt.Sprintf("u16: counts up one per %s from %s to %s during the cycle (r = %.4f)", unit[st.unit], clock(tb.t[st.from]-tb.t[0]), clock(tb.t[st.to-1]-tb.t[0]), st.r)})
					continue
				}
			}
			if st, ok := tb.countsTime(v, -1); ok && !foundRemaining {
				foundRemaining = true
				name, what := "time_remaining", "during the cycle"
				inHold := math.Min(tb.t[st.to-1], a.plTo) - math.Max(tb.t[st.from], a.plFrom)
				if inHold >= 0.8*(tb.t[st.to-1]-tb.t[st.from]) {
					name, what = "hold_remaining", "during the hold"
				}
				a.claim(&Finding{Name: name, Function: f.Function, Address: f.Address, Type: profile.TypeU16,
					Order: profile.OrderABCD, Scale: 1, Unit: st.unit, Confidence: "medium",
					Evidence: fmt.Sprintf("u16: counts down one per %s %s, from %s to %s (r = %.4f)", unit[st.unit], what, clock(tb.t[st.from]-tb.t[0]), clock(tb.t[st.to-1]-tb.t[0]), st.r)})
				continue
			}
		}
		// A clock: its low word counts seconds, its high word hardly moves.
		next := tb.col(regKey{c.key.fn, c.key.addr + 1})
		prev := tb.col(regKey{c.key.fn, c.key.addr - 1})
		for _, pair := range []struct {
			at     uint16
			other  *column
			orders []profile.Order
		}{{c.key.addr - 1, prev, []profile.Order{profile.OrderABCD, profile.OrderBADC}}, {c.key.addr, next, []profile.Order{profile.OrderCDAB, profile.OrderDCBA}}} {
			if foundClock || pair.other == nil || pair.other.changes > 2 || c.key.addr == 0 && pair.at == math.MaxUint16 {
				continue
			}
			for _, o := range pair.orders {
				g := profile.Field{Function: c.key.fn, Address: pair.at, Type: profile.TypeU32, Order: o, Scale: 1}
				if a.isClaimed(g) || !tb.decode(&g, v) {
					continue
				}
				st, ok := tb.countsTime(v, 1)
				if !ok || st.unit != "s" || tb.t[st.to-1]-tb.t[st.from] < 0.9*res.Seconds || v[st.from] < 946684800 || v[st.from] > 4102444800 { // 2000 … 2100
					continue
				}
				foundClock = true
				a.claim(&Finding{Name: "device_clock", Function: g.Function, Address: g.Address, Type: g.Type, Order: g.Order,
					Scale: 1, Unit: "s", Confidence: "medium", Check: true,
					Evidence: fmt.Sprintf("%s: counts one per second through the whole recording, in the range of Unix time (seconds since 1970)", fieldRef(g))})
				break
			}
		}
	}
}

// extras: nothing else is identified from one cycle; alarms in particular
// only show when something goes wrong.
func (a *analysis) extras() {
	a.res.Notes = append(a.res.Notes, "alarm registers cannot be found from a cycle without an alarm: take them from the manual (docs/profiles.md §10)")
}

// unexplained lists the registers that changed and that no finding uses.
func (a *analysis) unexplained() {
	tb, res := a.tb, a.res
	for _, c := range tb.cols {
		if c.constant || c.mirror {
			continue
		}
		if _, ok := a.claimed[c.key]; ok {
			continue
		}
		distinct := map[uint16]bool{}
		for i, x := range c.v {
			if tb.blockOK[c.block][i] {
				distinct[x] = true
			}
			if len(distinct) > 99 {
				break
			}
		}
		d := fmt.Sprintf("%d", len(distinct))
		if len(distinct) > 99 {
			d = "over 99"
		}
		kind := "register"
		if c.key.fn <= 2 {
			kind = "bit"
		}
		res.Unexplained = append(res.Unexplained, fmt.Sprintf("%s %d:%d changed %d times, %s distinct values", kind, c.key.fn, c.key.addr, c.changes, d))
	}
}
