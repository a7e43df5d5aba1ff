package learn

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol/steam"
)

// conversion turns a raw value into °C or kPa absolute: v = raw·scale + offset.
type conversion struct {
	scale, offset float64
	label         string // how the device sends it, e.g. "bar gauge", "°C ×10"
}

// candidateScales are the register scales tried with every unit.
var candidateScales = []float64{1, 0.1, 0.01, 10, 100}

// scaleLabel says how a register scale reads in a comment: a scale of 0.1
// means the device sends ten times the unit.
func scaleLabel(s float64) string {
	switch s {
	case 1:
		return ""
	case 0.1:
		return " ×10"
	case 0.01:
		return " ×100"
	case 10:
		return " ÷10"
	case 100:
		return " ÷100"
	}
	return fmt.Sprintf(" ×%g", 1/s)
}

const atmosphereKPa = 101.325

// temperatureConversions: °C, kelvin and °F at every scale.
func temperatureConversions() []conversion {
	var out []conversion
	for _, s := range candidateScales {
		out = append(out,
			conversion{s, 0, "°C" + scaleLabel(s)},
			conversion{s, -273.15, "K" + scaleLabel(s)},
			conversion{s * 5 / 9, -32 * 5.0 / 9, "°F" + scaleLabel(s)})
	}
	return dedupeConversions(out)
}

// pressureConversions: kPa, bar, mbar and psi at every scale, absolute
// and gauge (a standard atmosphere added).
func pressureConversions() []conversion {
	units := []struct {
		name string
		kPa  float64
	}{{"kPa", 1}, {"bar", 100}, {"mbar", 0.1}, {"psi", 6.894757}}
	var out []conversion
	for _, gauge := range []bool{false, true} {
		for _, u := range units {
			for _, s := range candidateScales {
				c := conversion{scale: u.kPa * s, label: u.name + scaleLabel(s)}
				if gauge {
					c.offset = atmosphereKPa
					c.label = u.name + " gauge" + scaleLabel(s)
				}
				out = append(out, c)
			}
		}
	}
	return dedupeConversions(out)
}

// dedupeConversions drops conversions equal to an earlier one (mbar is
// kPa ×10): the first name stays, the others are mentioned.
func dedupeConversions(in []conversion) []conversion {
	var out []conversion
	for _, c := range in {
		dup := false
		for i := range out {
			if math.Abs(out[i].scale-c.scale) <= 1e-12*math.Abs(c.scale) && out[i].offset == c.offset {
				out[i].label += " (or " + c.label + ")"
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

// numCand is one decode of a register or pair with one conversion, that
// passed the first tests of a temperature or a pressure.
type numCand struct {
	field profile.Field
	conv  conversion
	v     []float64 // converted values, NaN where unread
	jumps int
	rough float64 // mean |Δv| between neighbouring samples
	low   float64 // 1st and 99th percentiles
	high  float64
	// satDev (pressures): the best median |T − Tsat(p)| on a plateau.
	satDev float64

	// Temperatures: the plateau (chamber) or being hot throughout (jacket).
	level          float64 // plateau level, °C
	plateauFrom    int     // sample index range of the plateau
	plateauTo      int     // exclusive
	plateauSeconds float64
	jacket         bool
}

func (c *numCand) describe() string {
	f := c.field
	s := fmt.Sprintf("%s", f.Type)
	if f.Type.Registers() > 1 || f.Order != profile.OrderABCD {
		s += " " + string(f.Order)
	}
	return s + ", " + c.conv.label
}

// numericDecodes lists the ways a register or an adjacent pair may hold a
// number: 16-bit types (as sent and byte-swapped) for every register that
// changed, 32-bit types in every order for every pair in which something
// changed. Integer pairs with a constant word are left to the 16-bit
// reading of the other word: they read the same, and a neighbour that
// happened to stay constant is no evidence of a 32-bit value.
func (tb *table) numericDecodes() []profile.Field {
	var out []profile.Field
	for ci := range tb.cols {
		c := &tb.cols[ci]
		if !c.usable() {
			continue
		}
		if !c.constant {
			for _, ty := range []profile.Type{profile.TypeU16, profile.TypeI16} {
				for _, o := range []profile.Order{profile.OrderABCD, profile.OrderBADC} {
					out = append(out, profile.Field{Function: c.key.fn, Address: c.key.addr, Type: ty, Order: o, Scale: 1})
				}
			}
		}
		if c.key.addr == math.MaxUint16 {
			continue
		}
		next := tb.col(regKey{c.key.fn, c.key.addr + 1})
		if next == nil || (c.constant && next.constant) {
			continue
		}
		for _, ty := range []profile.Type{profile.TypeU32, profile.TypeI32, profile.TypeF32} {
			if ty != profile.TypeF32 && (c.constant || next.constant) {
				continue
			}
			for _, o := range []profile.Order{profile.OrderABCD, profile.OrderCDAB, profile.OrderBADC, profile.OrderDCBA} {
				// A float whose low-order word never changes is a float
				// read one register off: its high word is another
				// float's low word, or the other way round.
				lowWord := next
				if o == profile.OrderCDAB || o == profile.OrderDCBA {
					lowWord = c
				}
				if ty == profile.TypeF32 && lowWord.constant {
					continue
				}
				out = append(out, profile.Field{Function: c.key.fn, Address: c.key.addr, Type: ty, Order: o, Scale: 1})
			}
		}
	}
	return out
}

// maxNumCands bounds the candidates kept per kind: a device with
// thousands of noisy registers must not make the pairing quadratic in
// them. The most cycle-like are kept: the chamber temperatures that rise
// most, the pressures closest to saturation with one of them, the
// smoothest jacket temperatures.
const maxNumCands = 64

// numericCandidates finds what may be a chamber temperature, a jacket
// temperature or a chamber pressure. Temperatures come first: a pressure
// is only kept if, on some temperature's plateau, it is close to
// saturation with it, which few registers of a device are by chance.
func (tb *table) numericCandidates() (chambers, jackets, presses []*numCand) {
	n := len(tb.t)
	raw := make([]float64, n)
	conv := make([]float64, n)
	qbuf := make([]float64, 0, 600)
	tconvs, pconvs := temperatureConversions(), pressureConversions()
	rise := func(c *numCand) float64 { return -(c.level - c.low) }
	smooth := func(c *numCand) float64 { return c.rough }
	closest := func(c *numCand) float64 { return c.satDev }
	decodes := tb.numericDecodes()
	type rawRange struct{ q01, q99 float64 }
	ranges := make([]rawRange, len(decodes))
	for di := range decodes {
		f := &decodes[di]
		ranges[di] = rawRange{math.NaN(), math.NaN()}
		if !tb.decode(f, raw) {
			continue
		}
		q01, q99, finite := quantiles(raw, 0.01, 0.99, qbuf)
		if finite < 0.99 || q01 == q99 {
			continue
		}
		ranges[di] = rawRange{q01, q99}
		for _, cv := range tconvs {
			lo, hi := q01*cv.scale+cv.offset, q99*cv.scale+cv.offset
			chamber := lo >= -30 && hi >= 104 && hi <= 145 && lo < hi-20
			jacket := lo >= 80 && hi <= 160 && hi-lo < 40
			if !chamber && !jacket {
				continue
			}
			c := tb.evalNumber(*f, cv, raw, conv, 10, 5, -50, 250)
			if c == nil {
				continue
			}
			c.low, c.high = lo, hi
			if chamber && tb.findPlateau(c) {
				chambers = keepBest(chambers, c, rise)
			} else if jacket {
				c.jacket = true
				jackets = keepBest(jackets, c, smooth)
			}
		}
	}
	if len(chambers) == 0 {
		return chambers, jackets, nil
	}
	for di := range decodes {
		q := ranges[di]
		if math.IsNaN(q.q01) {
			continue
		}
		decoded := false
		for _, cv := range pconvs {
			lo, hi := q.q01*cv.scale+cv.offset, q.q99*cv.scale+cv.offset
			if lo < -5 || hi < 110 || hi > 700 {
				continue
			}
			if !decoded {
				tb.decode(&decodes[di], raw)
				decoded = true
			}
			dev := satDeviation(chambers, raw, cv)
			if dev > 3 {
				continue
			}
			if c := tb.evalNumber(decodes[di], cv, raw, conv, 60, 25, -10, 800); c != nil {
				c.low, c.high, c.satDev = lo, hi, dev
				presses = keepBest(presses, c, closest)
			}
		}
	}
	return chambers, jackets, presses
}

// satDeviation is, over the temperatures' plateaus, the smallest median
// |T − Tsat(p)| of the raw series read with cv (from at most 64 samples of
// each plateau: a cheap first test).
func satDeviation(chambers []*numCand, raw []float64, cv conversion) float64 {
	best := math.Inf(1)
	var dev [64]float64
	for _, t := range chambers {
		n := 0
		step := max(1, (t.plateauTo-t.plateauFrom)/len(dev))
		for k := t.plateauFrom; k < t.plateauTo && n < len(dev); k += step {
			p := raw[k]*cv.scale + cv.offset
			if !good(p) || !good(t.v[k]) || p < 1 {
				continue
			}
			dev[n] = math.Abs(t.v[k] - steam.TempC(p))
			n++
		}
		if n < 5 {
			continue
		}
		sort.Float64s(dev[:n])
		best = math.Min(best, dev[n/2])
	}
	return best
}

// evalNumber converts raw with cv into buf and keeps it if it is a
// physical quantity: inside [lo, hi] and without jumps (a change larger
// than jump + rate·Δt between neighbouring samples) in more than 0.5 % of
// the samples. A wrong byte order or type fails here.
func (tb *table) evalNumber(f profile.Field, cv conversion, raw, buf []float64, jump, rate, lo, hi float64) *numCand {
	n := len(raw)
	outside, jumps := 0, 0
	var sumDelta float64
	prev, prevT := math.NaN(), 0.0
	for i, r := range raw {
		v := r*cv.scale + cv.offset
		buf[i] = v
		if !good(v) {
			continue
		}
		if v < lo || v > hi {
			outside++
		}
		if good(prev) {
			d := math.Abs(v - prev)
			sumDelta += d
			if d > jump+rate*(tb.t[i]-prevT) {
				jumps++
			}
		}
		prev, prevT = v, tb.t[i]
	}
	if float64(outside) > 0.005*float64(n) || float64(jumps) > 0.005*float64(n)+1 {
		return nil
	}
	// A sensor's reading moves all the time, by small steps, through many
	// values; a code or a latched value read as a number holds a few.
	moves := 0
	var distinct [30]float64
	nd := 0
	for i := 1; i < n; i++ {
		if !good(buf[i]) {
			continue
		}
		if good(buf[i-1]) && buf[i] != buf[i-1] {
			moves++
		}
		if nd < len(distinct) && !slices.Contains(distinct[:nd], buf[i]) {
			distinct[nd] = buf[i]
			nd++
		}
	}
	if moves < n/20 || nd < len(distinct) {
		return nil
	}
	// c.v is buf until keepBest keeps it: most candidates are dropped.
	c := &numCand{field: f, conv: cv, v: buf, jumps: jumps, rough: sumDelta / float64(max(1, n-1))}
	c.field.Scale, c.field.Offset = cv.scale, cv.offset
	return c
}

// keepBest adds c to list, kept sorted by rank, if it is among the
// maxNumCands best; only then are its values copied out of the shared
// buffer.
func keepBest(list []*numCand, c *numCand, rank func(*numCand) float64) []*numCand {
	r := rank(c)
	if len(list) >= maxNumCands && r >= rank(list[len(list)-1]) {
		return list
	}
	c.v = slices.Clone(c.v)
	i := sort.Search(len(list), func(i int) bool { return rank(list[i]) > r })
	list = slices.Insert(list, i, c)
	if len(list) > maxNumCands {
		list = list[:maxNumCands]
	}
	return list
}

// findPlateau looks for the hold: the longest stretch, at least 60 s,
// during which the temperature stays within 1.5 K of its plateau level,
// the level being between 105 and 141 °C.
func (tb *table) findPlateau(c *numCand) bool {
	_, hi, _ := quantiles(c.v, 0.01, 0.995, nil)
	var top []float64
	for _, v := range c.v {
		if good(v) && v >= hi-2 {
			top = append(top, v)
		}
	}
	level := median(top)
	if !(level >= 105 && level <= 141) {
		return false
	}
	best, bestFrom, bestTo := 0.0, 0, 0
	from := -1
	for i := 0; i <= len(c.v); i++ {
		in := i < len(c.v) && (!good(c.v[i]) || c.v[i] >= level-1.5)
		if in && from < 0 {
			from = i
		}
		if !in && from >= 0 {
			if d := tb.t[i-1] - tb.t[from]; d > best {
				best, bestFrom, bestTo = d, from, i
			}
			from = -1
		}
	}
	if best < 60 {
		return false
	}
	c.level, c.plateauFrom, c.plateauTo, c.plateauSeconds = level, bestFrom, bestTo, best
	return true
}

// pairing is a chamber temperature and a chamber pressure that agree
// through the saturation curve.
type pairing struct {
	temp, press *numCand
	medianDev   float64 // median |T − Tsat(p)| on the plateau, K
	r           float64 // correlation of T with Tsat(p) over the heat-up and the hold
	rSamples    int
	vacuum      bool // p went below 20 kPa
	score       float64
}

// pair finds the best temperature–pressure pairing: on the temperature's
// plateau the median |T − Tsat(p)| must be at most 3 K, and during the
// heat-up and the hold T must follow Tsat(p).
func (tb *table) pair(temps, presses []*numCand) []pairing {
	tsats := make([][]float64, len(presses))
	for i, p := range presses {
		ts := make([]float64, len(p.v))
		for k, v := range p.v {
			ts[k] = math.NaN()
			if good(v) && v > 0.7 {
				ts[k] = steam.TempC(v)
			}
		}
		tsats[i] = ts
	}
	var out []pairing
	dev := make([]float64, 0, len(tb.t))
	for _, t := range temps {
		if t.jacket {
			continue
		}
		for pi, p := range presses {
			if overlap(t.field, p.field) {
				continue // one register read twice agrees with itself
			}
			ts := tsats[pi]
			dev = dev[:0]
			for k := t.plateauFrom; k < t.plateauTo; k++ {
				if good(t.v[k]) && good(ts[k]) {
					dev = append(dev, math.Abs(t.v[k]-ts[k]))
				}
			}
			if len(dev) < 10 {
				continue
			}
			md := median(dev)
			if md > 3 {
				continue
			}
			// Over the heat-up and the hold: the stretch of steam above
			// 105 kPa that leads into the plateau, where the temperature
			// is above 100 °C (before, vacuum pulses and an air purge
			// mostly measure how slowly the drain sensor follows).
			from := t.plateauFrom
			for from > 0 && (!good(p.v[from-1]) || p.v[from-1] >= 105) {
				from--
			}
			r, n := correlation(t.v, ts, func(k int) bool { return k >= from && k < t.plateauTo && p.v[k] >= 105 && t.v[k] >= 100 })
			if n < 10 || r < 0.8 {
				continue
			}
			vac := false
			for _, v := range p.v {
				if good(v) && v < 20 {
					vac = true
					break
				}
			}
			score := r - md/10
			if vac {
				score += 0.01
			}
			out = append(out, pairing{temp: t, press: p, medianDev: md, r: r, rSamples: n, vacuum: vac, score: score})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if math.Abs(out[i].score-out[j].score) > 1e-9 {
			return out[i].score > out[j].score
		}
		return preferField(out[i].temp.field, out[j].temp.field, true) ||
			(sameField(out[i].temp.field, out[j].temp.field) && preferField(out[i].press.field, out[j].press.field, false))
	})
	if len(out) == 0 {
		return out
	}
	// A float read one register off, whose low word comes from a
	// neighbour, reads nearly the same values as the right one, with the
	// neighbour's bits as noise: among pairings that read nearly the same,
	// the smoothest is the right one.
	best := 0
	for i := 1; i < len(out); i++ {
		if out[0].score-out[i].score > 0.05 {
			break
		}
		if !nearlySame(out[i].temp.v, out[0].temp.v) || !nearlySame(out[i].press.v, out[0].press.v) {
			continue
		}
		a, b := out[i], out[best]
		if a.temp.rough < b.temp.rough*0.98 || (a.temp.rough <= b.temp.rough*1.02 && a.press.rough < b.press.rough*0.98) {
			best = i
		}
	}
	out[0], out[best] = out[best], out[0]
	return out
}

// nearlySame reports whether two readings agree within 1 % (and 0.05) in
// every sample: the same quantity, one of them with its low bits wrong.
func nearlySame(a, b []float64) bool {
	for i := range a {
		if good(a[i]) != good(b[i]) {
			return false
		}
		if good(a[i]) && math.Abs(a[i]-b[i]) > 0.01*math.Max(math.Abs(a[i]), 1)+0.05 {
			return false
		}
	}
	return true
}

// overlap reports whether two decodes share a register.
func overlap(a, b profile.Field) bool {
	return a.Function == b.Function && int(a.Address) < int(b.Address)+b.Type.Registers() && int(b.Address) < int(a.Address)+a.Type.Registers()
}

func sameField(a, b profile.Field) bool {
	return a.Function == b.Function && a.Address == b.Address && a.Type == b.Type && a.Order == b.Order
}

// preferField breaks ties between decodes that read the same values: the
// fewest registers, the plain byte order, signed for temperatures (they
// can go below zero) and unsigned for pressures, the lowest address.
func preferField(a, b profile.Field, signed bool) bool {
	if a.Type.Registers() != b.Type.Registers() {
		return a.Type.Registers() < b.Type.Registers()
	}
	if (a.Order == profile.OrderABCD) != (b.Order == profile.OrderABCD) {
		return a.Order == profile.OrderABCD
	}
	as := a.Type == profile.TypeI16 || a.Type == profile.TypeI32
	bs := b.Type == profile.TypeI16 || b.Type == profile.TypeI32
	if as != bs {
		return as == signed
	}
	if a.Function != b.Function {
		return a.Function < b.Function
	}
	return a.Address < b.Address
}
