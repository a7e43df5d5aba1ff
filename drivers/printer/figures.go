package printer

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// Capture names of the figures rules: the fields of
// protocol.DeviceFigures, read in the template's units. Any other name is
// kept as printed in DeviceFigures.Other.
const (
	figHoldSeconds   = "hold_seconds" // seconds, or m:ss / h:mm:ss
	figHoldMinutes   = "hold_minutes"
	figPlateauMinC   = "plateau_min_c"
	figPlateauMaxC   = "plateau_max_c"
	figPlateauMinKPa = "plateau_min_kpa"
	figPlateauMaxKPa = "plateau_max_kpa"
	figLeakRate      = "leak_rate_kpa_min"
	figSerialNumber  = "serial_number"
	figReprint       = "reprint"
)

var figureNames = []string{figHoldSeconds, figHoldMinutes, figPlateauMinC, figPlateauMaxC, figPlateauMinKPa,
	figPlateauMaxKPa, figLeakRate, figSerialNumber, figReprint}

// figureLookalikes are prefixes of the figure names: a capture that starts
// like one but is not one is a typo, not a value for Other.
var figureLookalikes = []string{"hold", "plateau", "leak", "serial", "reprint"}

// figureRe compiles one figures rule: any capture name is accepted, but a
// misspelt figure name is an error rather than a silent entry in Other.
func (c *compiler) figureRe(src, path string) *regexp.Regexp {
	re := c.compileRe(src, path)
	if re == nil {
		return nil
	}
	named := 0
	for _, n := range re.SubexpNames() {
		if n == "" {
			continue
		}
		named++
		if oneOf(n, figureNames) {
			continue
		}
		for _, p := range figureLookalikes {
			if strings.HasPrefix(strings.ToLower(n), p) {
				c.fail(fmt.Sprintf("regexp %q has capture (?P<%s>), which is not a figure; the figures are %s (any other name is kept as printed, under device_figures.other)",
					src, n, strings.Join(figureNames, ", ")), path)
				break
			}
		}
	}
	if named == 0 {
		c.fail(fmt.Sprintf("regexp %q captures nothing: name the value, e.g. (?P<serial_number>\\S+)", src), path)
	}
	return re
}

// parseHold reads a printed hold time: a number of seconds, or minutes and
// seconds (18:00, 03-10, 3'10"), or hours, minutes and seconds (1:03:10),
// whatever the separators.
func parseHold(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if v, d, ok := printedNumber(s); ok {
		return convert(v, d, 1, 0), v >= 0
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v > 1e6 {
			return 0, false
		}
		n[3-len(parts)+i] = v
	}
	if n[2] >= 60 || (len(parts) == 3 && n[1] >= 60) {
		return 0, false
	}
	return float64(n[0]*3600 + n[1]*60 + n[2]), true
}

// quantities are the figures that are measured values: what they are
// called in errors, how they convert, where they go.
var quantities = map[string]struct {
	what  string
	kind  quantityKind
	field func(*protocol.DeviceFigures) **float64
}{
	figPlateauMinC:   {"temperature", qTemperature, func(f *protocol.DeviceFigures) **float64 { return &f.PlateauMinC }},
	figPlateauMaxC:   {"temperature", qTemperature, func(f *protocol.DeviceFigures) **float64 { return &f.PlateauMaxC }},
	figPlateauMinKPa: {"pressure", qPressure, func(f *protocol.DeviceFigures) **float64 { return &f.PlateauMinKPa }},
	figPlateauMaxKPa: {"pressure", qPressure, func(f *protocol.DeviceFigures) **float64 { return &f.PlateauMaxKPa }},
	figLeakRate:      {"leak rate", qLeakRate, func(f *protocol.DeviceFigures) **float64 { return &f.LeakRateKPaMin }},
}

// figure keeps one captured figure; the first line that gives a figure
// wins, as for fields.
func (p *parser) figure(line int, name, v string) {
	f := &p.figs
	key := name
	if name == figHoldMinutes {
		key = figHoldSeconds // the same figure, printed in minutes
	}
	if p.figSet[key] {
		return
	}
	num := func(dst **float64, x float64, ok bool) {
		if ok {
			*dst = &x
			p.figSet[key] = true
		}
	}
	switch name {
	case figHoldSeconds:
		sec, ok := parseHold(v)
		if !ok {
			p.errf(line, "hold time %q is not seconds, m:ss or h:mm:ss", v)
		}
		num(&f.HoldSeconds, sec, ok)
	case figHoldMinutes:
		m, d, ok := printedNumber(v)
		if !ok || m < 0 {
			p.errf(line, "hold time %q is not a number of minutes", v)
		}
		num(&f.HoldSeconds, convert(m, d, 60, 0), ok && m >= 0)
	case figPlateauMinC, figPlateauMaxC, figPlateauMinKPa, figPlateauMaxKPa, figLeakRate:
		q := quantities[name]
		x, ok := p.quantity(line, q.what, v, q.kind)
		num(q.field(f), x, ok)
	case figSerialNumber:
		f.SerialNumber = strings.TrimSpace(v)
		p.figSet[key] = true
	case figReprint:
		f.Reprint = true
		p.figSet[key] = true
	default:
		if f.Other == nil {
			f.Other = map[string]string{}
		}
		f.Other[name] = strings.TrimSpace(v)
		p.figSet[key] = true
	}
}

// deviceFigures returns the figures read, or nil when the printout gave
// none.
func (p *parser) deviceFigures() *protocol.DeviceFigures {
	if p.figs.Empty() {
		return nil
	}
	f := p.figs
	return &f
}
