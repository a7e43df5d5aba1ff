package learn

import (
	"fmt"
	"math"

	"github.com/sterigate/sterigate/drivers/profile"
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
