package learn

import (
	"math"
	"sort"

	"github.com/sterigate/sterigate/drivers/profile"
)

// regKey names one register (or bit) of the device.
type regKey struct {
	fn   byte
	addr uint16
}

// column is one register's values over the recording.
type column struct {
	key      regKey
	block    int // index into Header.Blocks: the sample's read of it may have failed
	v        []uint16
	constant bool // the same value in every good sample
	changes  int  // number of times the value changed between good samples
	// mirror: an input register (function 4) of a device that serves its
	// table as both holding and input registers (findMirrors). Only the
	// holding register is considered.
	mirror bool
}

// usable reports whether the analysis looks at the column as a register:
// bits and mirrors are left out.
func (c *column) usable() bool { return c.key.fn >= 3 && !c.mirror }

// table is a recording turned into columns, the form the analysis reads.
type table struct {
	t       []float64 // device seconds
	blockOK [][]bool  // [block][sample]
	cols    []column
	index   map[regKey]int
}

func newTable(rec *Recording) *table {
	n := len(rec.Samples)
	tb := &table{t: make([]float64, n), index: map[regKey]int{}}
	blocks := rec.Header.Blocks
	tb.blockOK = make([][]bool, len(blocks))
	for b, blk := range blocks {
		tb.blockOK[b] = make([]bool, n)
		for j := 0; j < int(blk.Count); j++ {
			k := regKey{blk.Function, blk.Start + uint16(j)}
			if _, dup := tb.index[k]; dup {
				continue // a block read twice: keep the first
			}
			tb.index[k] = len(tb.cols)
			tb.cols = append(tb.cols, column{key: k, block: b, v: make([]uint16, n)})
		}
	}
	for i, s := range rec.Samples {
		tb.t[i] = s.T
		for b, vals := range s.Values {
			if vals == nil {
				continue
			}
			tb.blockOK[b][i] = true
			blk := blocks[b]
			for j, x := range vals {
				ci := tb.index[regKey{blk.Function, blk.Start + uint16(j)}]
				if tb.cols[ci].block == b {
					tb.cols[ci].v[i] = x
				}
			}
		}
	}
	for ci := range tb.cols {
		c := &tb.cols[ci]
		ok := tb.blockOK[c.block]
		first := true
		var last uint16
		for i, x := range c.v {
			if !ok[i] {
				continue
			}
			if !first && x != last {
				c.changes++
			}
			first, last = false, x
		}
		c.constant = c.changes == 0
	}
	tb.findMirrors()
	return tb
}

// findMirrors marks the input registers (function 4) as mirrors when the
// device serves one table as both holding and input registers: most input
// registers that have a holding register at the same address read the
// same (a varying one at least half the time: the two are read a request
// apart, and a fast value moves in between).
func (tb *table) findMirrors() {
	var pairs [][2]*column
	agree := 0
	for ci := range tb.cols {
		c := &tb.cols[ci]
		h := tb.col(regKey{3, c.key.addr})
		if c.key.fn != 4 || h == nil {
			continue
		}
		pairs = append(pairs, [2]*column{c, h})
		both, same := 0, 0
		for i := range c.v {
			if tb.blockOK[c.block][i] && tb.blockOK[h.block][i] {
				both++
				if c.v[i] == h.v[i] {
					same++
				}
			}
		}
		if both > 0 && same*2 >= both {
			agree++
		}
	}
	if len(pairs) == 0 || agree*10 < len(pairs)*8 {
		return
	}
	for _, p := range pairs {
		p[0].mirror = true
	}
}

func (tb *table) col(k regKey) *column {
	if i, ok := tb.index[k]; ok {
		return &tb.cols[i]
	}
	return nil
}

// decode fills out with field f's raw value (before scale and offset) in
// every sample, NaN where a read failed. It decodes through
// profile.Field.RawValue, the gateway's own decoder, so what the analysis
// sees is what a profile will read. It reports false when the recording
// does not hold every register of the field.
func (tb *table) decode(f *profile.Field, out []float64) bool {
	n := f.Span()
	var cs [4]*column
	for w := 0; w < n; w++ {
		c := tb.col(regKey{f.Function, f.Address + uint16(w)})
		if c == nil {
			return false
		}
		cs[w] = c
	}
	var words [4]uint16
	for i := range tb.t {
		good := true
		for w := 0; w < n; w++ {
			if !tb.blockOK[cs[w].block][i] {
				good = false
				break
			}
			words[w] = cs[w].v[i]
		}
		if !good {
			out[i] = math.NaN()
			continue
		}
		v, err := f.RawValue(words[:n])
		if err != nil {
			v = math.NaN()
		}
		out[i] = v
	}
	return true
}

// spanOf is the index range [i, j) of samples with t in [from, to].
func (tb *table) spanOf(from, to float64) (int, int) {
	i := sort.SearchFloat64s(tb.t, from)
	j := sort.Search(len(tb.t), func(k int) bool { return tb.t[k] > to })
	return i, j
}

// at is the index of the first sample at or after t.
func (tb *table) at(t float64) int { return sort.SearchFloat64s(tb.t, t) }

// good reports whether x is a usable number.
func good(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// median of the finite values of xs (xs is not modified); NaN when none.
func median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if good(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

// quantiles estimates the lo and hi quantiles (0..1) of the finite values
// of xs from at most 512 evenly spaced samples (cheap enough to run on
// every candidate), and the fraction of values that are finite.
func quantiles(xs []float64, lo, hi float64, buf []float64) (qlo, qhi, finite float64) {
	nFinite := 0
	for _, x := range xs {
		if good(x) {
			nFinite++
		}
	}
	if nFinite == 0 {
		return math.NaN(), math.NaN(), 0
	}
	step := max(1, len(xs)/512)
	buf = buf[:0]
	for i := 0; i < len(xs); i += step {
		if good(xs[i]) {
			buf = append(buf, xs[i])
		}
	}
	if len(buf) == 0 {
		return math.NaN(), math.NaN(), float64(nFinite) / float64(len(xs))
	}
	sort.Float64s(buf)
	at := func(q float64) float64 { return buf[min(len(buf)-1, int(q*float64(len(buf)-1)+0.5))] }
	return at(lo), at(hi), float64(nFinite) / float64(len(xs))
}

// correlation is Pearson's r between xs and ys over the samples where
// both are finite and use(i) holds; n is how many there were. Two passes
// (means first): a device clock in Unix seconds would drown in rounding
// otherwise.
func correlation(xs, ys []float64, use func(int) bool) (r float64, n int) {
	var sx, sy float64
	for i := range xs {
		if use(i) && good(xs[i]) && good(ys[i]) {
			sx += xs[i]
			sy += ys[i]
			n++
		}
	}
	if n < 3 {
		return 0, n
	}
	mx, my := sx/float64(n), sy/float64(n)
	var vx, vy, cov float64
	for i := range xs {
		if use(i) && good(xs[i]) && good(ys[i]) {
			dx, dy := xs[i]-mx, ys[i]-my
			vx += dx * dx
			vy += dy * dy
			cov += dx * dy
		}
	}
	if vx <= 0 || vy <= 0 {
		return 0, n
	}
	return cov / math.Sqrt(vx*vy), n
}

// linearFit fits y = a + b·t over the samples [i, j) where y is finite:
// slope b and correlation r.
func linearFit(t, y []float64, i, j int) (slope, r float64, n int) {
	var st, sy float64
	for k := i; k < j; k++ {
		if good(y[k]) {
			st += t[k]
			sy += y[k]
			n++
		}
	}
	if n < 3 {
		return 0, 0, n
	}
	mt, my := st/float64(n), sy/float64(n)
	var vt, vy, cov float64
	for k := i; k < j; k++ {
		if good(y[k]) {
			dt, dy := t[k]-mt, y[k]-my
			vt += dt * dt
			vy += dy * dy
			cov += dt * dy
		}
	}
	if vt <= 0 {
		return 0, 0, n
	}
	slope = cov / vt
	if vy <= 0 {
		return slope, 0, n
	}
	return slope, cov / math.Sqrt(vt*vy), n
}
