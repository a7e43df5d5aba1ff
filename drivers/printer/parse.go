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
// end a line, except inside ESC/P sequences, unless what a sequence holds
// reads as a start or end line), terminators included.
func (t *Template) splitLines(raw []byte) [][]byte {
	var lines [][]byte
	var esc escState
	start, seg := 0, 0
	for i, b := range raw {
		if esc.feed(b) {
			if isLineEnd(b) {
				if text := decodeLine(raw[seg:i+1], t.charset); t.start.MatchString(text) || t.end.MatchString(text) {
					// Line noise that looked like a control sequence.
					if seg > start {
						lines = append(lines, raw[start:seg])
					}
					lines = append(lines, raw[seg:i+1])
					start = i + 1
					esc = escState{}
				}
				seg = i + 1
			}
			continue
		}
		if isLineEnd(b) {
			lines = append(lines, raw[start:i+1])
			start, seg = i+1, i+1
		}
	}
	if start < len(raw) {
		lines = append(lines, raw[start:])
	}
	return lines
}

// ErrMissingRequired marks a report that lacks a value the template
// requires (the template key required; the cycle number by default): line
// noise that happened to contain a start marker, or a printout cut before
// its header. It is not a cycle record.
var ErrMissingRequired = errors.New("a required value is missing")

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
// with Raw = raw, Source "printer" and Complete = EndSeen = the end marker
// was seen. A non-nil error lists what could not be read (no cycle number,
// a date that does not fit date_layout, ...); the caller must still keep
// the record, unless the error wraps ErrMissingRequired: then the report
// is not a cycle record. Device and the fields the sink owns are left
// empty.
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
	p := parser{t: t, ref: ref.In(t.loc), figSet: map[string]bool{}}
	for i, line := range t.splitLines(raw) {
		text := decodeLine(line, t.charset)
		if text == "" {
			continue
		}
		if t.end.MatchString(text) {
			rec.Complete, rec.EndSeen = true, true
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
	programSet       bool
	resultSet        bool
	date             time.Time
	dateSet          bool
	startTOD, endTOD *timed
	resultTOD        *timed
	events           []*timed
	phases           []phaseLine
	samples          []sampleLine
	alarms           []alarmLine
	figs             protocol.DeviceFigures
	figSet           map[string]bool // figures already read
}

type phaseLine struct {
	name protocol.PhaseName
	// at is the printed time; nil for a phase line that prints none, which
	// starts at events[next], the next time printed after it.
	at   *timed
	next int
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

// Kinds of printed quantity, by the record unit they convert to.
type quantityKind int

const (
	qTemperature quantityKind = iota // °C
	qPressure                        // kPa absolute
	qLeakRate                        // kPa per minute
)

// quantity reads a printed number in the template's unit for kind and
// converts it to the record's unit, keeping the printed precision.
func (p *parser) quantity(line int, what, s string, kind quantityKind) (float64, bool) {
	v, decimals, ok := printedNumber(s)
	if !ok {
		p.errf(line, "%s %q is not a number", what, s)
		return 0, false
	}
	switch kind {
	case qTemperature:
		if p.t.tempUnit == "F" {
			return convert(v-32, decimals, 5.0/9, 0), true
		}
		return convert(v, decimals, 1, 0), true
	case qPressure:
		scale, offset := kPaPer(p.t.presUnit)
		return convert(v, decimals, scale, offset), true
	default:
		scale, _ := kPaPer(p.t.leakUnit)
		return convert(v, decimals, scale, 0), true
	}
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
		if v, ok := capture(m, names, "program"); ok && !p.programSet {
			rec.Program, p.programSet = strings.TrimSpace(v), true
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
			ph := phaseLine{name: name, ok: !t.phaseFailed[normalise(status)], next: len(p.events)}
			if tv == "" || func() bool { ph.at = p.tod(n, tv); return ph.at != nil }() {
				p.phases = append(p.phases, ph)
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
			if s.temp, ok = p.quantity(n, "temperature", tempS, qTemperature); ok {
				if ps, has := capture(m, names, "pressure"); has {
					s.press, s.hasPress = p.quantity(n, "pressure", ps, qPressure)
				}
				if s.at = p.tod(n, tv); s.at != nil {
					p.samples = append(p.samples, s)
				}
			}
		}
	}
	// The device's plateau extremes are figures of the record too.
	for _, x := range []struct {
		re          *regexp.Regexp
		temp, press string
	}{{t.minRe, figPlateauMinC, figPlateauMinKPa}, {t.maxRe, figPlateauMaxC, figPlateauMaxKPa}} {
		if x.re == nil {
			continue
		}
		if m := x.re.FindStringSubmatch(text); m != nil {
			names := x.re.SubexpNames()
			if v, ok := capture(m, names, "temp"); ok {
				p.figure(n, x.temp, v)
			}
			if v, ok := capture(m, names, "pressure"); ok {
				p.figure(n, x.press, v)
			}
		}
	}
	for _, re := range t.figures {
		if m := re.FindStringSubmatch(text); m != nil {
			for i, name := range re.SubexpNames() {
				if name != "" && m[i] != "" {
					p.figure(n, name, m[i])
				}
			}
		}
	}
	if re := t.resultRe; re != nil {
		if m := re.FindStringSubmatch(text); m != nil {
			names := re.SubexpNames()
			word, _ := capture(m, names, "result")
			if r, ok := t.resultMap[normalise(word)]; ok {
				rec.Result, p.resultSet = r, true
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
	if s.temp, ok = p.quantity(n, "temperature", tempS, qTemperature); !ok {
		return s, false
	}
	if ps, has := capture(m, names, "pressure"); has {
		if s.press, s.hasPress = p.quantity(n, "pressure", ps, qPressure); !s.hasPress {
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
	// A phase line without a time starts at the next time printed after
	// it (its first sample line, as a rule), or, when nothing timed
	// follows, at the last time printed before it.
	starts := make([]time.Time, len(p.phases))
	for i, ph := range p.phases {
		switch {
		case ph.at != nil:
			starts[i] = ph.at.at.UTC()
		case ph.next < len(p.events):
			starts[i] = p.events[ph.next].at.UTC()
		case len(p.events) > 0:
			starts[i] = p.events[len(p.events)-1].at.UTC()
		default:
			starts[i] = rec.StartedAt
		}
	}
	firstFailed := time.Time{}
	for i, ph := range p.phases {
		end := rec.EndedAt
		if i+1 < len(p.phases) {
			end = starts[i+1]
		}
		start := starts[i]
		if end.Before(start) {
			end = start
		}
		if !ph.ok && firstFailed.IsZero() {
			firstFailed = start
		}
		// Lines of one phase in a row (PREVIDE 1, PREVIDE 2) are one
		// contiguous phase.
		if n := len(rec.Phases); n > 0 && rec.Phases[n-1].Name == ph.name {
			rec.Phases[n-1].End = end
			continue
		}
		rec.Phases = append(rec.Phases, protocol.Phase{Name: ph.name, Start: start, End: end})
	}
	for _, s := range p.samples {
		sample := protocol.Sample{At: s.at.at.UTC(), TempC: s.temp, PressureKPa: s.press, Phase: t.samplePhase}
		if i := phaseAt(rec.Phases, sample.At); i >= 0 {
			sample.Phase = rec.Phases[i].Name
			rec.Phases[i].Observe(sample)
		}
		rec.Samples = append(rec.Samples, sample)
	}
	// The device's plateau extremes are taken from every reading rather
	// than the few printed samples: they win over the computed ones.
	f := &p.figs
	if f.PlateauMinC != nil || f.PlateauMaxC != nil || f.PlateauMinKPa != nil || f.PlateauMaxKPa != nil {
		for i := len(rec.Phases) - 1; i >= 0; i-- {
			if rec.Phases[i].Name != t.extremesPhase {
				continue
			}
			ph := &rec.Phases[i]
			for _, x := range []struct{ dst, src **float64 }{{&ph.TempMinC, &f.PlateauMinC}, {&ph.TempMaxC, &f.PlateauMaxC}, {&ph.PressureMinKPa, &f.PlateauMinKPa}, {&ph.PressureMaxKPa, &f.PlateauMaxKPa}} {
				if *x.src != nil {
					v := **x.src
					*x.dst = &v
				}
			}
			break
		}
	}
	rec.DeviceFigures = p.deviceFigures()
	p.checkRequired()
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

// checkRequired adds an ErrMissingRequired error naming every value the
// template requires that the report did not yield.
func (p *parser) checkRequired() {
	have := map[string]bool{
		"cycle": p.cycleSet, "program": p.programSet, "date": p.dateSet, "time": p.startTOD != nil,
		"end_time": p.endTOD != nil, "result": p.resultSet, "phase": len(p.phases) > 0, "sample": len(p.samples) > 0,
	}
	var missing []string
	for _, r := range p.t.required {
		if !have[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		p.errs = append(p.errs, fmt.Errorf("%s: %w: %s (the template's required values)", p.t.name, ErrMissingRequired, strings.Join(missing, ", ")))
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
		p.errs = append(p.errs, fmt.Errorf("%s: %w: no line with the sterilize flag %q", p.t.name, ErrMissingRequired, p.t.sterilizeFlag))
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
