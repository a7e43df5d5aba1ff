package learn

import (
	"fmt"
	"math"
	"sort"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// intSeries is an integer reading of a register or pair over the
// recording, with the changes between good samples.
type intSeries struct {
	field   profile.Field
	v       []float64 // NaN where unread
	changes []change
}

type change struct {
	i             int // sample index of the new value
	before, after float64
}

// integerViews lists the integer readings codes and counters can be: u16
// of every register that changed at most maxChanges times, and u32 in
// every order for every pair of registers that changed at most eight
// times together (a counter steps a few times; its high word usually not
// at all). Registers that change all the time (measurements, timers,
// noise) are left out: keeping their readings would cost more memory than
// the rest of the analysis.
func (tb *table) integerViews(maxChanges int) []intSeries {
	var out []intSeries
	add := func(f profile.Field) {
		v := make([]float64, len(tb.t))
		if !tb.decode(&f, v) {
			return
		}
		out = append(out, intSeries{field: f, v: v, changes: changesOf(v)})
	}
	for ci := range tb.cols {
		c := &tb.cols[ci]
		if !c.usable() {
			continue
		}
		if c.changes >= 1 && c.changes <= maxChanges {
			add(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1})
		}
		if c.key.addr == math.MaxUint16 {
			continue
		}
		next := tb.col(regKey{c.key.fn, c.key.addr + 1})
		if next == nil || c.changes+next.changes == 0 || c.changes+next.changes > 8 {
			continue
		}
		for _, o := range []profile.Order{profile.OrderABCD, profile.OrderCDAB, profile.OrderBADC, profile.OrderDCBA} {
			add(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU32, Order: o, Scale: 1})
		}
	}
	return out
}

func changesOf(v []float64) []change {
	var out []change
	prev := math.NaN()
	for i, x := range v {
		if !good(x) {
			continue
		}
		if good(prev) && x != prev {
			out = append(out, change{i: i, before: prev, after: x})
		}
		prev = x
	}
	return out
}

// maxCounter is the largest plausible cycle count: thirty years of
// twenty cycles a day is about 220 000. A larger reading is two unrelated
// words read as one number.
const maxCounter = 10_000_000

// counterCand is an integer reading that only ever stepped by one.
type counterCand struct {
	s intSeries
}

// stepAfter is the first step after time t: its sample, and the value it
// stepped to; ok is false when there is none.
func (c counterCand) stepAfter(tb *table, t float64) (i int, value float64, ok bool) {
	for _, ch := range c.s.changes {
		if tb.t[ch.i] > t {
			return ch.i, ch.after, true
		}
	}
	return 0, 0, false
}

// valueAt is the reading at sample i, or the nearest good one before it.
func (c counterCand) valueAt(i int) float64 {
	for k := min(i, len(c.s.v)-1); k >= 0; k-- {
		if good(c.s.v[k]) {
			return c.s.v[k]
		}
	}
	return math.NaN()
}

// counterCands lists the readings that only ever stepped by exactly one,
// one to four times, to a plausible count.
func counterCands(views []intSeries, claimed func(profile.Field) bool) []counterCand {
	var out []counterCand
	for _, s := range views {
		if len(s.changes) == 0 || len(s.changes) > 4 || claimed(s.field) {
			continue
		}
		ok := true
		for _, c := range s.changes {
			if c.after-c.before != 1 || c.before < 0 || c.after > maxCounter {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, counterCand{s: s})
		}
	}
	return out
}

// sameSteps reports whether two readings changed at the same samples.
func sameSteps(a, b intSeries) bool {
	if len(a.changes) != len(b.changes) {
		return false
	}
	for i := range a.changes {
		if a.changes[i].i != b.changes[i].i {
			return false
		}
	}
	return true
}

// widerNote says how a 16-bit counter would read as 32-bit with a
// neighbour that stayed constant but not zero: a person must decide.
func widerNote(chosen counterCand, cands []counterCand, at int) string {
	for _, c := range cands {
		if c.s.field.Type.Registers() > chosen.s.field.Type.Registers() && sameSteps(c.s, chosen.s) && c.valueAt(at) > chosen.valueAt(at) {
			return fmt.Sprintf("if the counter is 32-bit, it reads %.0f as %s", c.valueAt(at), fieldRef(c.s.field))
		}
	}
	return ""
}

// fieldRef names a decode in a comment: "u32 CDAB at 3:310".
func fieldRef(f profile.Field) string {
	s := string(f.Type)
	if f.Type.Registers() > 1 || f.Order != profile.OrderABCD {
		s += " " + string(f.Order)
	}
	return fmt.Sprintf("%s at %d:%d", s, f.Function, f.Address)
}

// timeStretch is a stretch of samples over which a register counts time.
type timeStretch struct {
	from, to int     // sample indices, to exclusive
	slope    float64 // register units per device second
	r        float64
	unit     string // "s" or "min"
}

// countsTime finds the longest stretch (≥ 60 s, ≥ 20 samples) over which
// v goes steadily up (sign +1) or down (−1) at one unit per second or per
// minute. A step against the direction (a reset) ends a stretch, and the
// flat parts at its ends (0 while idle) are left out.
func (tb *table) countsTime(v []float64, sign float64) (timeStretch, bool) {
	var best timeStretch
	found := false
	consider := func(from, to int) {
		if from < 0 || to-from < 20 || tb.t[to-1]-tb.t[from] < 60 {
			return
		}
		slope, r, _ := linearFit(tb.t, v, from, to)
		for _, u := range []struct {
			name string
			rate float64
		}{{"s", 1}, {"min", 1.0 / 60}} {
			if math.Abs(slope*sign/u.rate-1) <= 0.05 && r*sign >= 0.999 {
				if !found || to-from > best.to-best.from {
					best, found = timeStretch{from: from, to: to, slope: slope, r: r, unit: u.name}, true
				}
			}
		}
	}
	// A stretch runs from the sample before its first change to its last
	// change.
	first, last := -1, -1
	prevI := -1
	prev := math.NaN()
	for i, x := range v {
		if !good(x) {
			continue
		}
		if good(prev) && x != prev {
			if (x-prev)*sign < 0 {
				consider(first, last+1)
				first, last = -1, -1
			} else {
				if first < 0 {
					first = prevI
				}
				last = i
			}
		}
		prev, prevI = x, i
	}
	consider(first, last+1)
	return best, found
}

// counters finds the cycle counter and the latched last cycle. The
// running cycle's counter is what read, during the plateau, the value a
// latch took when it stepped after the plateau (the counter stepped when
// the cycle started, or before the recording did); of such pairs, the
// latch that stepped first wins. Without a pair, a counter stepping after
// the plateau (the one nearest the end of the cycle: an hour meter may
// step too) counts finished cycles; without either, the one stepping
// nearest the start of the cycle counts the running cycle.
func (a *analysis) counters() {
	tb, res := a.tb, a.res
	cands := counterCands(a.views, a.isClaimed)
	mid := (a.temp.plateauFrom + a.temp.plateauTo) / 2
	type latch struct {
		c counterCand
		i int     // sample of its first step after the plateau
		v float64 // the value it stepped to
	}
	var ends []latch
	var starts []counterCand
	for _, c := range cands {
		if i, v, ok := c.stepAfter(tb, a.plTo); ok {
			ends = append(ends, latch{c, i, v})
		}
		if tb.t[c.s.changes[0].i] < a.plFrom {
			starts = append(starts, c)
		}
	}
	type pairing struct {
		run   counterCand
		latch latch
	}
	var pairs []pairing
	for _, e := range ends {
		for _, r := range cands {
			if !overlap(r.s.field, e.c.s.field) && r.valueAt(mid) == e.v {
				if i, _, ok := r.stepAfter(tb, a.plTo); !ok || i > e.i {
					pairs = append(pairs, pairing{r, e})
				}
			}
		}
	}
	if len(pairs) == 0 && len(ends) > 0 {
		// The running counter may not have moved at all: the recording
		// began after the cycle had started, and ended before the next.
		constants := a.constantReadings()
		for _, e := range ends {
			for _, f := range constants[e.v] {
				if !overlap(f, e.c.s.field) {
					v := make([]float64, len(tb.t))
					for i := range v {
						v[i] = e.v
					}
					pairs = append(pairs, pairing{counterCand{s: intSeries{field: f, v: v}}, e})
				}
			}
		}
	}
	distance := func(c counterCand, to float64) float64 { return math.Abs(tb.t[c.s.changes[0].i] - to) }
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
			if a.latch.i != b.latch.i {
				return a.latch.i < b.latch.i
			}
			if va, vb := a.run.valueAt(mid), b.run.valueAt(mid); va != vb {
				// Both sides agree on either: the larger is a 32-bit
				// counter whose high word is not zero.
				return va > vb
			}
			if !sameField(a.run.s.field, b.run.s.field) {
				return preferField(a.run.s.field, b.run.s.field, false)
			}
			return preferField(a.latch.c.s.field, b.latch.c.s.field, false)
		})
		p := pairs[0]
		v, firstEnd := p.latch.v, p.latch.i
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
		ev, check = withNote(fmt.Sprintf("%s: %s, after the plateau: the number of the cycle that just finished", fieldRef(p.latch.c.s.field), step(p.latch.c)), widerNote(p.latch.c, cands, firstEnd))
		a.claim(counterFinding("last_cycle", profile.RoleLastCycle, p.latch.c.s.field, "high", check, ev))
	case len(ends) > 0:
		sort.SliceStable(ends, func(i, j int) bool {
			a, b := ends[i], ends[j]
			if da, db := math.Abs(tb.t[a.i]-res.Cycle.To), math.Abs(tb.t[b.i]-res.Cycle.To); da != db {
				return da < db
			}
			return preferField(a.c.s.field, b.c.s.field, false)
		})
		l := ends[0]
		res.CycleEnd = profile.EndOnCounterChange
		res.CycleEndEvidence = "a counter steps by one when the cycle ends"
		res.EndSeen, res.EndAt = true, tb.t[l.i]
		ev, check := withNote(fmt.Sprintf("%s: %s, after the plateau: counts finished cycles", fieldRef(l.c.s.field), step(l.c)), widerNote(l.c, cands, l.i))
		a.claim(counterFinding("cycle_counter", profile.RoleCycleCounter, l.c.s.field, "medium", check, ev))
	case len(starts) > 0:
		sort.SliceStable(starts, func(i, j int) bool {
			if da, db := distance(starts[i], res.Cycle.From), distance(starts[j], res.Cycle.From); da != db {
				return da < db
			}
			return preferField(starts[i].s.field, starts[j].s.field, false)
		})
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

// constantReadings lists, by the value they read, the u16 and u32 (every
// order) readings of registers that never changed.
func (a *analysis) constantReadings() map[float64][]profile.Field {
	tb := a.tb
	out := map[float64][]profile.Field{}
	var words [2]uint16
	add := func(f profile.Field, w []uint16) {
		if a.isClaimed(f) {
			return
		}
		if v, err := f.RawValue(w); err == nil {
			out[v] = append(out[v], f)
		}
	}
	first := func(c *column) (uint16, bool) {
		for i, x := range c.v {
			if tb.blockOK[c.block][i] {
				return x, true
			}
		}
		return 0, false
	}
	for ci := range tb.cols {
		c := &tb.cols[ci]
		if !c.usable() || !c.constant {
			continue
		}
		x, ok := first(c)
		if !ok {
			continue
		}
		words[0] = x
		add(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU16, Order: profile.OrderABCD, Scale: 1}, words[:1])
		next := tb.col(regKey{c.key.fn, c.key.addr + 1})
		if c.key.addr == math.MaxUint16 || next == nil || !next.usable() || !next.constant {
			continue
		}
		if y, ok := first(next); ok {
			words[1] = y
			for _, o := range []profile.Order{profile.OrderABCD, profile.OrderCDAB, profile.OrderBADC, profile.OrderDCBA} {
				add(profile.Field{Function: c.key.fn, Address: c.key.addr, Type: profile.TypeU32, Order: o, Scale: 1}, words[:2])
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
				Order: profile.OrderABCD, Scale: 1, Unit: "s", Confidence: "medium", Check: true, Role: profile.RoleLastHoldSeconds,
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
		name, target := "", 0.0
		switch {
		case !foundMin && math.Abs(x-lo) <= 0.6 && math.Abs(x-lo) < math.Abs(x-hi):
			name, target, foundMin = "last_plateau_min", lo, true
		case !foundMax && math.Abs(x-hi) <= 0.6:
			name, target, foundMax = "last_plateau_max", hi, true
		default:
			continue
		}
		a.claim(&Finding{Name: name, Function: f.Function, Address: f.Address, Type: f.Type, Order: f.Order, Scale: a.temp.conv.scale,
			Offset: a.temp.conv.offset, Unit: "°C", Sent: a.temp.conv.label, Confidence: "medium", Check: true, Role: profile.Role(name),
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
