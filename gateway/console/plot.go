package console

import (
	"math"
	"strconv"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
)

// The trace plot is an SVG the server computes and html/template writes:
// it works without JavaScript, prints, and every label in it is escaped
// like any other text (phase names, channel ids come from profiles).

// plot is the geometry of one trace plot, in SVG user units.
type plot struct {
	W, H                     float64
	Left, Right, Top, Bottom float64 // the plot area's edges
	Empty                    bool    // no sample to draw

	Phases []plotBand
	Holes  []plotBand
	// Band is the sterilization temperature band; nil without criteria.
	Band *plotBand
	// Temp, Pressure and Tsat are polylines, one per unbroken stretch.
	Temp, Pressure, Tsat []string
	Channels             []plotLine
	TempTicks            []plotTick
	PressureTicks        []plotTick
	TimeTicks            []plotTick
	Alarms               []plotTick
}

type plotBand struct {
	X, Y, W, H float64
	Class      string
	Label      string
}

type plotLine struct {
	Class  string
	Label  string
	Points []string
}

type plotTick struct {
	X, Y  float64
	Label string
}

// plotChannelClasses styles up to four other channels; more share the last.
var plotChannelClasses = []string{"ch1", "ch2", "ch3", "ch4"}

// buildPlot lays out rec's samples, phases, holes, band and alarms on a
// w×h canvas.
func buildPlot(rec *protocol.CycleRecord, l *lang, w, h float64) *plot {
	p := &plot{W: w, H: h, Left: 48, Right: w - 52, Top: 18, Bottom: h - 26}
	if len(rec.Samples) == 0 {
		p.Empty = true
		return p
	}
	t0, t1 := rec.StartedAt, rec.EndedAt
	if first := rec.Samples[0].At; t0.IsZero() || first.Before(t0) {
		t0 = first
	}
	if last := rec.Samples[len(rec.Samples)-1].At; last.After(t1) {
		t1 = last
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) float64 {
		return p.Left + (p.Right-p.Left)*float64(t.Sub(t0))/float64(span)
	}

	// Scales: temperature on the left, pressure (kPa absolute) on the right.
	tLo, tHi := math.Inf(1), math.Inf(-1)
	pHi := 0.0
	for _, s := range rec.Samples {
		tLo, tHi = math.Min(tLo, s.TempC), math.Max(tHi, s.TempC)
		pHi = math.Max(pHi, s.PressureKPa)
		for _, v := range s.Ch {
			tLo, tHi = math.Min(tLo, v), math.Max(tHi, v)
		}
	}
	var crit *protocol.Criteria
	if v := rec.Verification; v != nil && v.Criteria.SetPointC > 0 {
		crit = &v.Criteria
		tHi = math.Max(tHi, crit.SetPointC+crit.BandK)
	}
	tLo = math.Floor(math.Min(tLo, 20)/20) * 20
	tHi = math.Ceil(tHi/20) * 20
	if tHi <= tLo {
		tHi = tLo + 20
	}
	pHi = math.Max(100, math.Ceil(pHi/100)*100)
	yT := func(v float64) float64 { return p.Bottom - (p.Bottom-p.Top)*(v-tLo)/(tHi-tLo) }
	yP := func(v float64) float64 { return p.Bottom - (p.Bottom-p.Top)*v/pHi }

	for i, ph := range rec.Phases {
		x0, x1 := x(ph.Start), x(ph.End)
		b := plotBand{X: x0, Y: p.Top, W: math.Max(0, x1-x0), H: p.Bottom - p.Top, Class: "phase phase-" + strconv.Itoa(i%2)}
		if ph.Name == protocol.PhaseSterilizing {
			b.Class = "phase phase-hold"
		}
		if b.W >= 40 {
			b.Label = l.Phase(ph.Name)
		}
		p.Phases = append(p.Phases, b)
	}
	for _, hole := range rec.Holes {
		x0, x1 := x(hole.From), x(hole.To)
		p.Holes = append(p.Holes, plotBand{X: x0, Y: p.Top, W: math.Max(1, x1-x0), H: p.Bottom - p.Top, Class: "hole", Label: l.Hole(hole.Reason)})
	}
	if crit != nil {
		y0, y1 := yT(crit.SetPointC+crit.BandK), yT(crit.SetPointC)
		p.Band = &plotBand{X: p.Left, Y: y0, W: p.Right - p.Left, H: y1 - y0, Class: "band"}
	}

	// Lines break at holes: a line drawn across one would claim readings
	// the gateway never had.
	broken := func(a, b time.Time) bool {
		for _, h := range rec.Holes {
			if h.From.Before(b) && h.To.After(a) {
				return true
			}
		}
		return false
	}
	type builder struct {
		segs []string
		cur  []byte
	}
	add := func(bd *builder, xv, yv float64) {
		if len(bd.cur) > 0 {
			bd.cur = append(bd.cur, ' ')
		}
		bd.cur = strconv.AppendFloat(bd.cur, xv, 'f', 1, 64)
		bd.cur = append(bd.cur, ',')
		bd.cur = strconv.AppendFloat(bd.cur, yv, 'f', 1, 64)
	}
	cut := func(bd *builder) {
		if len(bd.cur) > 0 {
			bd.segs = append(bd.segs, string(bd.cur))
			bd.cur = bd.cur[:0:0]
		}
	}
	var temp, press, tsat builder
	chans := make([]builder, len(rec.Channels))
	for i, s := range rec.Samples {
		if i > 0 && broken(rec.Samples[i-1].At, s.At) {
			cut(&temp)
			cut(&press)
			cut(&tsat)
			for k := range chans {
				cut(&chans[k])
			}
		}
		xv := x(s.At)
		add(&temp, xv, yT(s.TempC))
		add(&press, xv, yP(s.PressureKPa))
		// Tsat(p) is the temperature saturated steam has at the chamber
		// pressure; above atmospheric pressure, where steam sterilizes, the
		// chamber temperature must follow it.
		if s.PressureKPa >= 100 {
			ts := steam.TempC(s.PressureKPa)
			if ts >= tLo && ts <= tHi {
				add(&tsat, xv, yT(ts))
			} else {
				cut(&tsat)
			}
		} else {
			cut(&tsat)
		}
		for k, c := range rec.Channels {
			if v, ok := s.Ch[c.ID]; ok {
				add(&chans[k], xv, yT(v))
			}
		}
	}
	cut(&temp)
	cut(&press)
	cut(&tsat)
	p.Temp, p.Pressure, p.Tsat = temp.segs, press.segs, tsat.segs
	for k, c := range rec.Channels {
		cut(&chans[k])
		if len(chans[k].segs) == 0 {
			continue
		}
		class := plotChannelClasses[min(k, len(plotChannelClasses)-1)]
		p.Channels = append(p.Channels, plotLine{Class: class, Label: c.ID + " (" + l.Channel(c.Role) + ")", Points: chans[k].segs})
	}

	for v := tLo; v <= tHi+1e-9; v += 20 {
		p.TempTicks = append(p.TempTicks, plotTick{X: p.Left, Y: yT(v), Label: l.Num(v, 0)})
	}
	pStep := 50.0
	if pHi > 400 {
		pStep = 100
	}
	for v := 0.0; v <= pHi+1e-9; v += pStep {
		p.PressureTicks = append(p.PressureTicks, plotTick{X: p.Right, Y: yP(v), Label: l.Num(v, 0)})
	}
	step := timeStep(span)
	for t := t0.Truncate(step).Add(step); t.Before(t1); t = t.Add(step) {
		label := t.In(l.loc).Format("15:04")
		if step < time.Minute {
			label = t.In(l.loc).Format("15:04:05")
		}
		p.TimeTicks = append(p.TimeTicks, plotTick{X: x(t), Y: p.Bottom, Label: label})
	}
	for _, a := range rec.Alarms {
		if a.At.IsZero() {
			continue
		}
		p.Alarms = append(p.Alarms, plotTick{X: math.Min(p.Right, math.Max(p.Left, x(a.At))), Y: p.Top, Label: strconv.Itoa(a.Code) + " " + a.Text})
	}
	return p
}

// timeStep picks a tick step that puts 4 to 12 ticks on span.
func timeStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
		10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour} {
		if span/s <= 12 {
			return s
		}
	}
	return 24 * time.Hour
}
