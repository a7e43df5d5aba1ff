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

// temperatureAndPressure finds the chamber temperature and pressure: the
// pairing that agrees best through the saturation curve (numeric.go), and
// with them the plateau and the resting pressure everything else is
// placed by. It reports false, with what is missing, when there is none.
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
		Scale: best.conv.scale, Offset: best.conv.offset, Unit: "°C", Sent: best.conv.label, Confidence: "low", Check: true, Role: profile.RoleJacketTemperature,
		Evidence: fmt.Sprintf("%s: %.1f–%.1f °C, hot before the cycle and near the plateau during the hold: a jacket or steam generator temperature?", best.describe(), best.low, best.high)})
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
