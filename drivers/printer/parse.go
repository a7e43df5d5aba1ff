package printer

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// SourcePrinter is the CycleRecord.Source of records made by this package.
const SourcePrinter = "printer"

// splitLines cuts raw into lines the way the Splitter does (LF, CR and FF
// end a line, except inside ESC/P sequences), terminators included.
func splitLines(raw []byte) [][]byte {
	var lines [][]byte
	var esc escState
	start := 0
	for i, b := range raw {
		if esc.feed(b) {
			continue
		}
		if isLineEnd(b) {
			lines = append(lines, raw[start:i+1])
			start = i + 1
		}
	}
	if start < len(raw) {
		lines = append(lines, raw[start:])
	}
	return lines
}

// Parse reads one report into a cycle record, as ParseAt with the current
// time as reference.
func (t *Template) Parse(raw []byte) (protocol.CycleRecord, error) {
	return t.ParseAt(raw, time.Now())
}

// ParseAt reads one report into a cycle record. ref is when the report was
// received: it supplies the date for a printout that prints none, and the
// times of a report that prints none at all.
//
// The record is always returned, filled as far as the printout allows,
// with Raw = raw, Source "printer" and Complete = the end marker was seen.
// A non-nil error lists what could not be read (no cycle number, a date
// that does not fit date_layout, ...); the caller must still keep the
// record. Device and the fields the sink owns are left empty.
func (t *Template) ParseAt(raw []byte, ref time.Time) (protocol.CycleRecord, error) {
	rec := protocol.CycleRecord{
		Source:  SourcePrinter,
		Raw:     raw,
		Result:  protocol.ResultUnknown,
		Program: t.program,
		Phases:  []protocol.Phase{},
		Samples: []protocol.Sample{},
		Alarms:  []protocol.Alarm{},
	}
	p := parser{t: t, ref: ref.In(t.loc)}
	for i, line := range splitLines(raw) {
		text := decodeLine(line, t.charset)
		if text == "" {
			continue
		}
		if t.end.MatchString(text) {
			rec.Complete = true
		}
		p.line(i+1, text, &rec)
	}
	p.finish(&rec)
	return rec, errors.Join(p.errs...)
}

// timed is something printed with a time of day, in print order.
type timed struct {
	tod time.Duration // since midnight
	at  time.Time
}

type parser struct {
	t    *Template
	ref  time.Time
	errs []error

	cycleSet         bool
	date             time.Time
	dateSet          bool
	startTOD, endTOD *timed
	resultTOD        *timed
	events           []*timed
	phases           []phaseLine
	samples          []sampleLine
	minT, minP       *float64
	maxT, maxP       *float64
	alarms           []alarmLine
}

type phaseLine struct {
	name protocol.PhaseName
	at   *timed
	ok   bool
}

type sampleLine struct {
	at          *timed
	temp, press float64
	hasPress    bool
	sterilize   bool
}

type alarmLine struct {
	code int
	text string
	at   *timed
}

func (p *parser) errf(line int, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s line %d: %s", p.t.name, line, fmt.Sprintf(format, args...)))
}

// tod parses a printed time of day and queues it for resolution to an
// instant once the date is known.
func (p *parser) tod(line int, s string) *timed {
	v, err := time.Parse(p.t.timeLayout, strings.TrimSpace(s))
	if err != nil {
		p.errf(line, "time %q does not fit time_layout %q", s, p.t.timeLayout)
		return nil
	}
	tm := &timed{tod: time.Duration(v.Hour())*time.Hour + time.Duration(v.Minute())*time.Minute + time.Duration(v.Second())*time.Second}
	p.events = append(p.events, tm)
	return tm
}

func capture(m []string, names []string, name string) (string, bool) {
	for i, n := range names {
		if n == name && m[i] != "" {
			return m[i], true
		}
	}
	return "", false
}

func (p *parser) number(line int, what, s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.Replace(strings.TrimSpace(s), ",", ".", 1), 64)
	if err != nil {
		p.errf(line, "%s %q is not a number", what, s)
		return 0, false
	}
	return v, true
}

func (p *parser) temp(line int, s string) (float64, bool) {
	v, ok := p.number(line, "temperature", s)
	if ok && p.t.tempUnit == "F" {
		v = (v - 32) * 5 / 9
	}
	return v, ok
}

func (p *parser) pressure(line int, s string) (float64, bool) {
	v, ok := p.number(line, "pressure", s)
	if !ok {
		return 0, false
	}
	return toKPaAbs(v, p.t.presUnit), true
}

// toKPaAbs converts a printed pressure to kPa absolute.
func toKPaAbs(v float64, unit string) float64 {
	const atm = 101.325
	const psi = 6.894757
	switch unit {
	case "bar":
		return v * 100
	case "mbar":
		return v / 10
	case "psia":
		return v * psi
	case "kPa_g":
		return v + atm
	case "bar_g":
		return v*100 + atm
	case "psig":
		return v*psi + atm
	}
	return v
}

func (p *parser) line(n int, text string, rec *protocol.CycleRecord) {
	t := p.t
	if t.mode == ModeStream {
		if s, ok := p.streamLine(n, text); ok {
			p.samples = append(p.samples, s)
		}
		return
	}
	for _, re := range t.fields {
		m := re.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		names := re.SubexpNames()
		if v, ok := capture(m, names, "program"); ok && rec.Program == t.program {
			rec.Program = strings.TrimSpace(v)
		}
		if v, ok := capture(m, names, "cycle"); ok && !p.cycleSet {
			c, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				p.errf(n, "cycle number %q is not a counter", v)
			} else {
				rec.Cycle, p.cycleSet = c, true
			}
		}
		if v, ok := capture(m, names, "date"); ok && !p.dateSet {
			d, err := time.ParseInLocation(t.dateLayout, strings.TrimSpace(v), t.loc)
			if err != nil {
				p.errf(n, "date %q does not fit date_layout %q", v, t.dateLayout)
			} else {
				p.date, p.dateSet = d, true
			}
		}
		if v, ok := capture(m, names, "time"); ok && p.startTOD == nil {
			p.startTOD = p.tod(n, v)
		}
		if v, ok := capture(m, names, "end_time"); ok && p.endTOD == nil {
			p.endTOD = p.tod(n, v)
		}
	}
	if re := t.phaseRe; re != nil {
		if m := re.FindStringSubmatch(text); m != nil {
			names := re.SubexpNames()
			word, _ := capture(m, names, "phase")
			tv, _ := capture(m, names, "time")
			status, _ := capture(m, names, "status")
			name, ok := t.phaseNames[normalise(word)]
			if !ok {
				name = protocol.PhaseUnknown
				p.errf(n, "phase %q is not in the template's phases.names", word)
			}
			if at := p.tod(n, tv); at != nil {
				p.phases = append(p.phases, phaseLine{name: name, at: at, ok: !t.phaseFailed[normalise(status)]})
			}
		}
	}
	if re := t.sampleRe; re != nil {
		if m := re.FindStringSubmatch(text); m != nil {
			names := re.SubexpNames()
			tv, _ := capture(m, names, "time")
			tempS, _ := capture(m, names, "temp")
			s := sampleLine{}
			var ok bool
			if s.temp, ok = p.temp(n, tempS); ok {
				if ps, has := capture(m, names, "pressure"); has {
					s.press, s.hasPress = p.pressure(n, ps)
				}
				if s.at = p.tod(n, tv); s.at != nil {
					p.samples = append(p.samples, s)
				}
			}
		}
	}
	for _, x := range []struct {
		re   *regexp.Regexp
		t, p **float64
	}{{t.minRe, &p.minT, &p.minP}, {t.maxRe, &p.maxT, &p.maxP}} {
		if x.re == nil {
			continue
		}
		if m := x.re.FindStringSubmatch(text); m != nil {
			names := x.re.SubexpNames()
			if v, ok := capture(m, names, "temp"); ok {
				if f, ok := p.temp(n, v); ok {
					*x.t = &f
				}
			}
			if v, ok := capture(m, names, "pressure"); ok {
				if f, ok := p.pressure(n, v); ok {
					*x.p = &f
				}
			}
		}
	}
	if re := t.resultRe; re != nil {
		if m := re.FindStringSubmatch(text); m != nil {
			names := re.SubexpNames()
			word, _ := capture(m, names, "result")
			if r, ok := t.resultMap[normalise(word)]; ok {
				rec.Result = r
			} else {
				p.errf(n, "result %q is not in the template's result.map", word)
			}
			if v, ok := capture(m, names, "time"); ok {
				p.resultTOD = p.tod(n, v)
			}
		}
	}
	if re := t.alarmRe; re != nil {
		if m := re.FindStringSubmatch(text); m != nil {
			names := re.SubexpNames()
			cs, _ := capture(m, names, "code")
			code, err := strconv.Atoi(cs)
			if err != nil {
				p.errf(n, "alarm code %q is not a number", cs)
			} else {
				a := alarmLine{code: code}
				a.text, _ = capture(m, names, "text")
				if v, ok := capture(m, names, "time"); ok {
					a.at = p.tod(n, v)
				}
				p.alarms = append(p.alarms, a)
			}
		}
	}
}

// streamLine reads one line of a value stream.
func (p *parser) streamLine(n int, text string) (sampleLine, bool) {
	re := p.t.streamRe
	m := re.FindStringSubmatch(text)
	if m == nil {
		return sampleLine{}, false
	}
	names := re.SubexpNames()
	flag, _ := capture(m, names, "flag")
	tv, _ := capture(m, names, "time")
	tempS, _ := capture(m, names, "temp")
	s := sampleLine{sterilize: flag == p.t.sterilizeFlag}
	var ok bool
	if s.temp, ok = p.temp(n, tempS); !ok {
		return s, false
	}
	if ps, has := capture(m, names, "pressure"); has {
		if s.press, s.hasPress = p.pressure(n, ps); !s.hasPress {
			return s, false
		}
	}
	if s.at = p.tod(n, tv); s.at == nil {
		return s, false
	}
	return s, true
}

// resolve turns the queued times of day into instants: the first on the
// printed date (or, without one, on the day that puts it closest to ref),
// each later one on the same day as its predecessor unless it went back by
// more than an hour, which means midnight passed.
func (p *parser) resolve() {
	var day time.Time
	if p.dateSet {
		day = p.date
	} else {
		day = time.Date(p.ref.Year(), p.ref.Month(), p.ref.Day(), 0, 0, 0, 0, p.t.loc)
	}
	var last time.Time
	for i, e := range p.events {
		at := day.Add(e.tod)
		if i == 0 && !p.dateSet {
			// A stream or dateless report received just after midnight
			// was printed yesterday.
			if at.Sub(p.ref) > 12*time.Hour {
				at = at.AddDate(0, 0, -1)
			} else if p.ref.Sub(at) > 12*time.Hour {
				at = at.AddDate(0, 0, 1)
			}
		}
		if i > 0 && at.Before(last.Add(-time.Hour)) {
			at = at.AddDate(0, 0, 1)
		}
		// Re-anchor the day on the instant: wall clock days, DST-proof
		// enough for a printout.
		day = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, p.t.loc)
		e.at, last = at, at
	}
}

func (p *parser) finish(rec *protocol.CycleRecord) {
	p.resolve()
	t := p.t
	at := func(e *timed) (time.Time, bool) {
		if e == nil {
			return time.Time{}, false
		}
		return e.at, true
	}
	// Start: the printed start time, else the first printed time, else
	// when the report arrived.
	switch s, ok := at(p.startTOD); {
	case ok:
		rec.StartedAt = s
	case len(p.events) > 0:
		rec.StartedAt = p.events[0].at
	default:
		rec.StartedAt = p.ref
	}
	if t.mode == ModeStream {
		for _, s := range p.samples {
			if s.sterilize {
				rec.StartedAt = s.at.at
				break
			}
		}
	}
	// End: the result's time, else the printed end, else the last time.
	switch {
	case p.resultTOD != nil:
		rec.EndedAt = p.resultTOD.at
	case p.endTOD != nil:
		rec.EndedAt = p.endTOD.at
	case len(p.events) > 0:
		rec.EndedAt = p.events[len(p.events)-1].at
	default:
		rec.EndedAt = rec.StartedAt
	}
	if rec.EndedAt.Before(rec.StartedAt) {
		p.errs = append(p.errs, fmt.Errorf("%s: end %s is before start %s; end set to start", t.name, rec.EndedAt.Format(time.RFC3339), rec.StartedAt.Format(time.RFC3339)))
		rec.EndedAt = rec.StartedAt
	}
	rec.StartedAt, rec.EndedAt = rec.StartedAt.UTC(), rec.EndedAt.UTC()

	if t.mode == ModeStream {
		p.finishStream(rec)
		return
	}
	if !p.cycleSet {
		// The record is still kept; its id needs a number that no other
		// report of this device has: the start time, as in stream mode.
		// (A printed counter is far below 10^9, so they cannot meet.)
		rec.Cycle = uint64(max(rec.StartedAt.Unix(), 0))
		p.errs = append(p.errs, fmt.Errorf("%s: no cycle number found (no line matched a fields rule with (?P<cycle>)); cycle set to the start time in Unix seconds, %d", t.name, rec.Cycle))
	}
	firstFailed := time.Time{}
	for i, ph := range p.phases {
		end := rec.EndedAt
		if i+1 < len(p.phases) {
			end = p.phases[i+1].at.at.UTC()
		}
		start := ph.at.at.UTC()
		if end.Before(start) {
			end = start
		}
		rec.Phases = append(rec.Phases, protocol.Phase{Name: ph.name, Start: start, End: end})
		if !ph.ok && firstFailed.IsZero() {
			firstFailed = start
		}
	}
	for _, s := range p.samples {
		sample := protocol.Sample{At: s.at.at.UTC(), TempC: s.temp, PressureKPa: s.press, Phase: t.samplePhase}
		if i := phaseAt(rec.Phases, sample.At); i >= 0 {
			sample.Phase = rec.Phases[i].Name
			rec.Phases[i].Observe(sample)
		}
		rec.Samples = append(rec.Samples, sample)
	}
	// The printed extremes are the device's own, taken from every reading
	// rather than the few printed samples: they win.
	if p.minT != nil || p.maxT != nil || p.minP != nil || p.maxP != nil {
		for i := len(rec.Phases) - 1; i >= 0; i-- {
			if rec.Phases[i].Name != t.extremesPhase {
				continue
			}
			ph := &rec.Phases[i]
			for _, x := range []struct{ dst, src **float64 }{{&ph.TempMinC, &p.minT}, {&ph.TempMaxC, &p.maxT}, {&ph.PressureMinKPa, &p.minP}, {&ph.PressureMaxKPa, &p.maxP}} {
				if *x.src != nil {
					v := **x.src
					*x.dst = &v
				}
			}
			break
		}
	}
	for _, a := range p.alarms {
		when := rec.EndedAt
		if a.at != nil {
			when = a.at.at.UTC()
		} else if !firstFailed.IsZero() {
			when = firstFailed
		}
		rec.Alarms = append(rec.Alarms, protocol.Alarm{Code: a.code, Text: strings.TrimSpace(a.text), At: when})
	}
}

// phaseAt returns the index of the phase that contains at, or -1.
func phaseAt(phases []protocol.Phase, at time.Time) int {
	for i := len(phases) - 1; i >= 0; i-- {
		if !at.Before(phases[i].Start) && !at.After(phases[i].End) {
			return i
		}
	}
	return -1
}

// finishStream builds the record of a stream-mode report: one sterilizing
// phase over the run of sterilize lines, closed by the first line after it.
// The stream prints no counter, so the cycle number is the Unix time of the
// first sterilize line: stable for the same printed data, unique per device.
func (p *parser) finishStream(rec *protocol.CycleRecord) {
	var first, last *sampleLine
	for i := range p.samples {
		s := &p.samples[i]
		phase := protocol.PhaseSterilizing
		if !s.sterilize {
			// After the sterilize run comes the exhaust; a line before
			// it (none in a report cut by the Splitter) is unknown.
			phase = protocol.PhaseExhaust
			if first == nil {
				phase = protocol.PhaseUnknown
			}
		} else {
			if first == nil {
				first = s
			}
			last = s
		}
		rec.Samples = append(rec.Samples, protocol.Sample{At: s.at.at.UTC(), TempC: s.temp, PressureKPa: s.press, Phase: phase})
	}
	if first == nil {
		p.errs = append(p.errs, fmt.Errorf("%s: no line with the sterilize flag %q", p.t.name, p.t.sterilizeFlag))
		rec.Cycle = uint64(rec.StartedAt.Unix())
		return
	}
	rec.Cycle = uint64(first.at.at.Unix())
	ph := protocol.Phase{Name: protocol.PhaseSterilizing, Start: first.at.at.UTC(), End: rec.EndedAt}
	if ph.End.Before(last.at.at.UTC()) {
		ph.End = last.at.at.UTC()
	}
	for _, s := range rec.Samples {
		if s.Phase == protocol.PhaseSterilizing {
			ph.Observe(s)
		}
	}
	rec.Phases = append(rec.Phases, ph)
}

// StreamSample reads one line of a stream-mode printout into a sample,
// dated on the day that puts its time of day closest to ref. sterilize
// reports the line's sterilize flag; ok is false for a line that is not a
// value line.
func (t *Template) StreamSample(line []byte, ref time.Time) (s protocol.Sample, sterilize, ok bool) {
	if t.mode != ModeStream {
		return s, false, false
	}
	p := parser{t: t, ref: ref.In(t.loc)}
	sl, ok := p.streamLine(1, decodeLine(line, t.charset))
	if !ok {
		return s, false, false
	}
	p.resolve()
	phase := protocol.PhaseUnknown
	if sl.sterilize {
		phase = protocol.PhaseSterilizing
	}
	return protocol.Sample{At: sl.at.at.UTC(), TempC: sl.temp, PressureKPa: sl.press, Phase: phase}, sl.sterilize, true
}
