package verify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// Infer chooses criteria for a record whose program has none configured,
// by matching it to one of the standard programs: 134 °C / 3 min porous,
// 134 °C / 18 min prion, 121 °C / 15 min porous, the Bowie-Dick test, the
// vacuum leak test. It looks at the program's name first, then at the
// plateau the record observed. It matches only when that is unambiguous;
// otherwise ok is false and why names what is missing. Inferred criteria
// say so (source "inferred") and their note says what they came from.
func Infer(rec protocol.CycleRecord) (c protocol.Criteria, ok bool, why string) {
	if c, ok, decided, why := InferFromName(rec.Program, rec.ProgramCode); decided {
		return c, ok, why
	}
	return inferFromPlateau(rec)
}

// InferFromName is the part of Infer that reads only the program's name
// (and its code, to say which program is unmapped). decided is false when
// the name names no standard program, and Infer goes on to the record's
// plateau.
func InferFromName(program string, code *int) (c protocol.Criteria, ok, decided bool, why string) {
	c, ok, why = inferFromName(program, code)
	return c, ok, ok || why != "", why
}

func inferFromName(program string, programCode *int) (protocol.Criteria, bool, string) {
	name := strings.ToLower(strings.TrimSpace(program))
	if name == "" || name == "unknown" {
		code := ""
		if programCode != nil {
			code = fmt.Sprintf(" (program code %d)", *programCode)
		}
		return protocol.Criteria{}, false, fmt.Sprintf("the program%s is not mapped in the device's profile: map it and give it criteria", code)
	}
	byName := func(kind string, setPointC float64) (protocol.Criteria, bool, string) {
		return inferred(kind, setPointC, fmt.Sprintf("inferred from the program name %q", program))
	}
	switch {
	case containsAny(name, "bowie", "b-d", "b&d", "bd test", "bd-test", "helix"):
		return byName(KindBowieDick, 0)
	case containsAny(name, "leak", "vacuum test", "vacuum-test", "vakuumtest", "vakuum-test", "test de vide", "étanchéité", "etancheite"):
		return byName(KindLeakTest, 0)
	case containsAny(name, "gravity", "liquid", "flüssig", "fluessig", "liquide"):
		return protocol.Criteria{}, false, fmt.Sprintf("program %q is a gravity or liquids program, which has no standard criteria to infer: give its criteria in the profile", program)
	}
	temps, minutes := numbersIn(name)
	prion := strings.Contains(name, "prion")
	switch {
	case len(temps) > 1:
		return protocol.Criteria{}, false, fmt.Sprintf("program %q names more than one temperature: give its criteria in the profile", program)
	case len(temps) == 1 && temps[0] == 134:
		if prion || minutes >= 18 {
			return byName(KindPrion, 134)
		}
		return byName(KindPorous, 134)
	case len(temps) == 1 && temps[0] == 121 && !prion:
		return byName(KindPorous, 121)
	case len(temps) == 1:
		return protocol.Criteria{}, false, fmt.Sprintf("program %q runs at %v °C, which is not one of the standard programs (121 °C, 134 °C): give its criteria in the profile", program, temps[0])
	case prion:
		return byName(KindPrion, 134)
	}
	return protocol.Criteria{}, false, "" // the name says nothing: the plateau decides
}

// inferred is the standard criteria of kind at setPointC, marked as
// inferred, with note saying from what.
func inferred(kind string, setPointC float64, note string) (protocol.Criteria, bool, string) {
	c, err := Standard(kind, setPointC, 0)
	if err != nil { // cannot happen for the standard programs; never hide it
		return protocol.Criteria{}, false, err.Error()
	}
	c.Source, c.Note = SourceInferred, note
	return c, true, ""
}

// inferFromPlateau matches the observed plateau: a mean chamber
// temperature in the sterilizing phase near 134 °C or 121 °C, or a
// leak_test phase. At 134 °C a hold of 18 minutes or more is taken for
// the prion program, anything shorter for the porous one.
func inferFromPlateau(rec protocol.CycleRecord) (protocol.Criteria, bool, string) {
	scale := rec.TimeScale
	if scale == 0 {
		scale = 1
	}
	first, last := phaseSpan(rec.Samples, protocol.PhaseSterilizing)
	var sum float64
	var n int
	for i := first; i >= 0 && i <= last; i++ {
		if s := &rec.Samples[i]; s.Phase == protocol.PhaseSterilizing && finite(s.TempC) {
			sum += s.TempC
			n++
		}
	}
	infer := func(kind string, setPointC float64, from string) (protocol.Criteria, bool, string) {
		return inferred(kind, setPointC, fmt.Sprintf("program %q names no standard program; inferred from %s", rec.Program, from))
	}
	if n == 0 {
		if leak, _ := phaseSpan(rec.Samples, protocol.PhaseLeakTest); leak >= 0 {
			return infer(KindLeakTest, 0, "its leak_test phase")
		}
		return protocol.Criteria{}, false, fmt.Sprintf("program %q names no standard program and the record has no plateau (no sample in the sterilizing phase) to match: give its criteria in the profile", rec.Program)
	}
	mean := sum / float64(n)
	end := rec.Samples[last].At
	if last+1 < len(rec.Samples) {
		end = rec.Samples[last+1].At
	}
	holdS := end.Sub(rec.Samples[first].At).Seconds() * scale
	from := fmt.Sprintf("its plateau (mean %.1f °C over %.0f s)", mean, holdS)
	switch {
	case mean >= 133 && mean <= 138 && holdS >= 18*60:
		return infer(KindPrion, 134, from)
	case mean >= 133 && mean <= 138:
		return infer(KindPorous, 134, from)
	case mean >= 120 && mean <= 125:
		return infer(KindPorous, 121, from)
	}
	return protocol.Criteria{}, false, fmt.Sprintf("program %q names no standard program and its plateau (mean %.1f °C) matches none (121 °C, 134 °C): give its criteria in the profile", rec.Program, mean)
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// numbersIn finds the temperatures (whole numbers from 100 to 150) and the
// longest holding time in minutes (a number of 1–99) a program name
// mentions: "134-porous", "121-20", "Universal/134°C/3min", "134 prion 18 min".
func numbersIn(name string) (temps []float64, minutes float64) {
	for i := 0; i < len(name); {
		if name[i] < '0' || name[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(name) && (name[j] >= '0' && name[j] <= '9' || name[j] == '.' || name[j] == ',') {
			j++
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimRight(name[i:j], ".,"), ",", "."), 64)
		i = j
		if err != nil {
			continue
		}
		switch {
		case v >= 100 && v <= 150:
			temps = append(temps, v)
		case v >= 1 && v < 100:
			minutes = max(minutes, v)
		}
	}
	return temps, minutes
}
