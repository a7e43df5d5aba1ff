// Package printout renders the reports a simulated sterilizer sends to its
// printer port, byte for byte as a real one would: an English tape in the
// manner of SciCan STATCLAVE and US sterilizer tapes, a German 32-column
// report in the manner of the DAC Universal, and the Amsco LS one-line-per-
// second value stream. The gateway's printer tap parses these bytes with its
// built-in templates, so the formats here are a contract with
// drivers/printer: change them only together with its templates and golden
// files.
//
// The package depends on protocol and the standard library only, so the
// simulator core can call it without pulling in any driver.
package printout

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/codepage"
)

// Style selects the printout layout.
type Style string

const (
	// StyleEnglish is a STATCLAVE/US-tape style report, 40 columns.
	StyleEnglish Style = "en"
	// StyleGerman is a DAC-Universal style report, 32 columns.
	StyleGerman Style = "de"
)

// Charsets the renderer can encode to. The degree sign is 0xF8 in CP850 and
// CP437 and 0xB0 in Latin-1; ASCII has none and prints '?', which is the
// "134?C" mojibake real gateways see.
const (
	CharsetCP850  = "cp850"
	CharsetCP437  = "cp437"
	CharsetLatin1 = "latin1"
	CharsetASCII  = "ascii"
)

// Mark is the start of one phase as the device prints it.
type Mark struct {
	Name protocol.PhaseName
	At   time.Time
	// OK is false for the phase in which the device stopped on an alarm.
	OK bool
}

// Sample is one plateau reading printed during the hold.
type Sample struct {
	At          time.Time
	TempC       float64
	PressureKPa float64 // absolute
}

// Cycle is what the simulator knows about a finished cycle; it is the whole
// input of Render. All times are printed in the location of Start.
type Cycle struct {
	Model, Serial string
	Program       string
	SetpointC     float64
	HoldSeconds   int // the programmed hold time
	Counter       uint32
	Start, End    time.Time
	Phases        []Mark
	Samples       []Sample
	PlateauMinC   float64
	PlateauMaxC   float64
	PlateauMinKPa float64
	PlateauMaxKPa float64
	HeldSeconds   int // the hold time actually achieved
	Result        protocol.Result
	AlarmCode     int // 0 = none
}

// Options says how the bytes leave the printer port.
type Options struct {
	Style Style
	// LineEnding is "\r\n" (the default), "\n" or "\r".
	LineEnding string
	// Charset is cp850 (the default for StyleGerman), cp437, latin1 or
	// ascii (the default for StyleEnglish).
	Charset string
	// FormFeed ends the report with a form feed, as sheet printers do.
	FormFeed bool
}

func (o Options) lineEnding() string {
	switch o.LineEnding {
	case "\n", "\r", "\r\n":
		return o.LineEnding
	}
	return "\r\n"
}

func (o Options) charset() string {
	if o.Charset != "" {
		return o.Charset
	}
	if o.Style == StyleGerman {
		return CharsetCP850
	}
	return CharsetASCII
}

// Render returns the complete report for c, as the printer port sends it:
// encoded in the chosen code page, with the chosen line endings.
func Render(c Cycle, opts Options) []byte {
	var lines []string
	switch opts.Style {
	case StyleGerman:
		lines = renderGerman(c)
	default:
		lines = renderEnglish(c)
	}
	var b strings.Builder
	nl := opts.lineEnding()
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString(nl)
	}
	if opts.FormFeed {
		b.WriteString("\f")
	}
	return encode(b.String(), opts.charset())
}

// StreamLine returns one line of the Amsco LS style value stream: the
// sterilize flag (S while in the sterilize phase, - otherwise), the time of
// day with AM/PM, the chamber pressure in psig (negative under vacuum), and
// the chamber and jacket temperatures in °F. The device sends one per
// second.
func StreamLine(at time.Time, inSterilize bool, pressureKPa, chamberC, jacketC float64, opts Options) []byte {
	flag := "-"
	if inSterilize {
		flag = "S"
	}
	psig := (pressureKPa - 101.325) / 6.894757
	line := fmt.Sprintf("%s %s %7.2f %6.1f %6.1f", flag, at.Format("03:04:05 PM"), psig, chamberC*9/5+32, jacketC*9/5+32)
	return encode(line+opts.lineEnding(), opts.charset())
}

var englishPhase = map[protocol.PhaseName]string{
	protocol.PhaseIdle:         "IDLE",
	protocol.PhasePreparation:  "PREPARATION",
	protocol.PhaseAirRemoval:   "AIR REMOVAL",
	protocol.PhaseHeating:      "HEATING",
	protocol.PhaseEquilibrate:  "EQUILIBRATION",
	protocol.PhaseSterilizing:  "STERILIZING",
	protocol.PhaseExhaust:      "EXHAUST",
	protocol.PhaseDrying:       "DRYING",
	protocol.PhaseAirAdmission: "AIR ADMISSION",
	protocol.PhaseLeakTest:     "LEAK TEST",
	protocol.PhaseCooling:      "COOLING",
	protocol.PhaseComplete:     "COMPLETE",
	protocol.PhaseFault:        "FAULT",
	protocol.PhaseUnknown:      "UNKNOWN",
}

// EnglishPhaseWord is the word the English style prints for a phase.
func EnglishPhaseWord(p protocol.PhaseName) string {
	if w, ok := englishPhase[p]; ok {
		return w
	}
	return "UNKNOWN"
}

var germanPhase = map[protocol.PhaseName]string{
	protocol.PhaseIdle:         "Bereit",
	protocol.PhasePreparation:  "Vorbereitung",
	protocol.PhaseAirRemoval:   "Vakuum",
	protocol.PhaseHeating:      "Aufheizen",
	protocol.PhaseEquilibrate:  "Ausgleich",
	protocol.PhaseSterilizing:  "Beginn Haltezeit",
	protocol.PhaseExhaust:      "Ablassen",
	protocol.PhaseDrying:       "Trocknung",
	protocol.PhaseAirAdmission: "Belüftung",
	protocol.PhaseLeakTest:     "Vakuumtest",
	protocol.PhaseCooling:      "Abkühlen",
	protocol.PhaseComplete:     "Ende",
	protocol.PhaseFault:        "Störung",
	protocol.PhaseUnknown:      "Unbekannt",
}

// GermanPhaseWord is the word the German style prints for a phase.
func GermanPhaseWord(p protocol.PhaseName) string {
	if w, ok := germanPhase[p]; ok {
		return w
	}
	return "Unbekannt"
}

const (
	englishRule = "----------------------------------------" // 40 columns
	germanRule  = "--------------------------------"         // 32 columns
)

func renderEnglish(c Cycle) []string {
	loc := c.Start.Location()
	clock := func(t time.Time) string { return t.In(loc).Format("15:04:05") }
	l := []string{
		"*** " + c.Model + " ***",
		"SN " + c.Serial,
		fmt.Sprintf("CYCLE NUMBER %06d", c.Counter),
		"DATE " + c.Start.Format("01/02/2006") + "  TIME " + clock(c.Start),
		"PROGRAM " + c.Program,
		fmt.Sprintf("SET POINT %.1f C  HOLD %s", c.SetpointC, minSec(c.HoldSeconds, ":")),
		englishRule,
	}
	for _, m := range c.Phases {
		line := clock(m.At) + " " + EnglishPhaseWord(m.Name)
		if !m.OK {
			line += " FAIL"
		}
		l = append(l, line)
	}
	if len(c.Samples) > 0 || c.HeldSeconds > 0 {
		l = append(l, englishRule, "STERILIZING VALUES")
		for _, s := range c.Samples {
			l = append(l, fmt.Sprintf("%s %5.1f C %5.1f kPa", clock(s.At), s.TempC, s.PressureKPa))
		}
		l = append(l,
			fmt.Sprintf("MIN %5.1f C %5.1f kPa", c.PlateauMinC, c.PlateauMinKPa),
			fmt.Sprintf("MAX %5.1f C %5.1f kPa", c.PlateauMaxC, c.PlateauMaxKPa),
			"STERILIZING TIME "+minSec(c.HeldSeconds, ":"),
		)
	}
	l = append(l, englishRule)
	switch c.Result {
	case protocol.ResultPassed:
		l = append(l, "CYCLE COMPLETE "+clock(c.End))
	case protocol.ResultFailed:
		l = append(l, "CYCLE FAILED "+clock(c.End))
	case protocol.ResultAborted:
		l = append(l, "CYCLE ABORTED "+clock(c.End))
	default:
		l = append(l, "CYCLE INCOMPLETE "+clock(c.End))
	}
	if c.AlarmCode != 0 {
		l = append(l, fmt.Sprintf("ALARM CODE %d", c.AlarmCode))
	}
	l = append(l, fmt.Sprintf("END OF CYCLE %06d", c.Counter))
	return l
}

func renderGerman(c Cycle) []string {
	loc := c.Start.Location()
	clock := func(t time.Time) string { return t.In(loc).Format("15:04:05") }
	l := []string{
		"Zyklusprotokoll",
		c.Model,
		fmt.Sprintf("Serien Nr %22s", c.Serial),
		fmt.Sprintf("Programm: %s/%s°C/%smin", c.Program, trimFloat(c.SetpointC), trimFloat(float64(c.HoldSeconds)/60)),
		fmt.Sprintf("Zyklus: %d", c.Counter),
		"Datum: " + c.Start.Format("02-01-06"),
		"Zeit:  " + clock(c.Start),
		germanRule,
		"Phase            Uhrzeit  Erg",
	}
	failed := false
	for _, m := range c.Phases {
		if !m.OK {
			failed = true
		}
		status := "Ok"
		if failed { // the DAC prints FEHL on the failing phase and every later one
			status = "FEHL"
		}
		l = append(l, fmt.Sprintf("%-16s %s %s", GermanPhaseWord(m.Name), clock(m.At), status))
	}
	if c.AlarmCode != 0 {
		l = append(l, fmt.Sprintf("Error code %d", c.AlarmCode))
	}
	if len(c.Samples) > 0 || c.HeldSeconds > 0 {
		l = append(l, germanRule, "Haltezeit   °C     bar")
		for _, s := range c.Samples {
			l = append(l, fmt.Sprintf("%s %5.1f %4.2f", clock(s.At), s.TempC, s.PressureKPa/100))
		}
		l = append(l,
			fmt.Sprintf("Maximum  %5.1f %4.2f", c.PlateauMaxC, c.PlateauMaxKPa/100),
			fmt.Sprintf("Minimum  %5.1f %4.2f", c.PlateauMinC, c.PlateauMinKPa/100),
			"Dauer (m-s) "+minSec(c.HeldSeconds, "-"),
		)
	}
	l = append(l, germanRule)
	switch c.Result {
	case protocol.ResultPassed:
		l = append(l, "Sterilisation Ok")
	case protocol.ResultFailed:
		l = append(l, "Sterilisation FEHL")
	case protocol.ResultAborted:
		l = append(l, "Abbruch Sterilisation")
	default:
		l = append(l, "Sterilisation ???")
	}
	l = append(l, "Prozessende      "+clock(c.End), "Bestaetigung")
	if c.Result == protocol.ResultPassed {
		l = append(l, "Zyklusende Ok")
	} else {
		l = append(l, "Zyklusende FEHL")
	}
	return l
}

// minSec prints seconds as mm<sep>ss.
func minSec(seconds int, sep string) string {
	if seconds < 0 {
		seconds = 0
	}
	return fmt.Sprintf("%02d%s%02d", seconds/60, sep, seconds%60)
}

// trimFloat prints 134 as "134" and 3.5 as "3.5".
func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// encode converts UTF-8 text to the printer's code page; a character the
// code page lacks becomes '?', as real printers print it.
func encode(s, charset string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r < 0x80:
			out = append(out, byte(r))
		case charset == CharsetLatin1 && r < 0x100:
			out = append(out, byte(r))
		case charset == CharsetCP850 || charset == CharsetCP437:
			b, _ := codepage.Encode(charset, r)
			out = append(out, b)
		default:
			out = append(out, '?')
		}
	}
	return out
}
