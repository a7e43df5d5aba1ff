package printer_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

func frenchTemplate(t testing.TB) *printer.Template {
	t.Helper()
	tp, err := printer.ResolveTemplate("testdata/custom-fr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func frenchPrintout(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/sample-fr.txt")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// frenchDuplicata is the French device's reprint of the same cycle: the
// same report with a copy mark under the title.
func frenchDuplicata(t testing.TB) []byte {
	t.Helper()
	raw := frenchPrintout(t)
	i := bytes.Index(raw, []byte("\r\n")) + 2
	return append(append(append([]byte(nil), raw[:i]...), "*** DUPLICATA ***\r\n"...), raw[i:]...)
}

// frenchCut is the French printout cut after its first plateau sample.
func frenchCut(t testing.TB) []byte {
	t.Helper()
	raw := frenchPrintout(t)
	return raw[:bytes.Index(raw, []byte("  09:34:02"))]
}

func ptr(v float64) *float64 { return &v }

func sameFloat(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// TestParseFrenchTemplateKeepsDeviceFigures: the template written from the
// French sample keeps every figure the device printed about the cycle.
func TestParseFrenchTemplateKeepsDeviceFigures(t *testing.T) {
	tp := frenchTemplate(t)
	rec, err := tp.Parse(frenchPrintout(t))
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.DeviceFigures{
		HoldSeconds: ptr(1080), PlateauMinC: ptr(134.4), PlateauMaxC: ptr(135.2),
		PlateauMinKPa: ptr(311), PlateauMaxKPa: ptr(315), SerialNumber: "MX-0042",
	}
	got := rec.DeviceFigures
	if got == nil || !sameFloat(got.HoldSeconds, want.HoldSeconds) || !sameFloat(got.PlateauMinC, want.PlateauMinC) ||
		!sameFloat(got.PlateauMaxC, want.PlateauMaxC) || !sameFloat(got.PlateauMinKPa, want.PlateauMinKPa) ||
		!sameFloat(got.PlateauMaxKPa, want.PlateauMaxKPa) || got.SerialNumber != want.SerialNumber || got.Reprint || got.LeakRateKPaMin != nil {
		b, _ := json.Marshal(got)
		t.Errorf("device figures %s, want hold 1080 s, plateau 134.4..135.2 °C 311..315 kPa, serial MX-0042", b)
	}
	dup, err := tp.Parse(frenchDuplicata(t))
	if err != nil {
		t.Fatal(err)
	}
	if dup.DeviceFigures == nil || !dup.DeviceFigures.Reprint || dup.Cycle != 318 || !dup.Complete {
		t.Errorf("duplicata: figures %+v cycle %d complete %v; want reprint true", dup.DeviceFigures, dup.Cycle, dup.Complete)
	}
}

// TestParseFiguresWithoutPhases: a device that prints only a summary
// (no phase lines) still gets its figures kept, converted like samples.
func TestParseFiguresWithoutPhases(t *testing.T) {
	tp, err := printer.ParseTemplate("summary.yaml", []byte(`name: summary
timezone: UTC
units: {temperature: F, pressure: bar_g, leak_rate: mbar}
start: '^SUMMARY$'
end: '^END$'
fields:
  - '^NO\.\s*(?P<cycle>\d+)$'
figures:
  - '^HOLD\s+(?P<hold_minutes>\d+,\d)\s*MIN$'
  - '^TEMP\s+(?P<plateau_min_c>\d+\.\d)\s*-\s*(?P<plateau_max_c>\d+\.\d)\s*F$'
  - '^PRESS\s+(?P<plateau_min_kpa>\d+,\d\d)\s*-\s*(?P<plateau_max_kpa>\d+,\d\d)\s*BAR$'
  - '^LEAK\s+(?P<leak_rate_kpa_min>\d+,\d)\s*MBAR/MIN$'
  - '^OPERATOR\s+(?P<operator>\S+)$'
`))
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("SUMMARY\r\nNO. 12\r\nHOLD 3,5 MIN\r\nTEMP 273.2 - 274.1 F\r\nPRESS 2,04 - 2,10 BAR\r\nLEAK 1,3 MBAR/MIN\r\nOPERATOR jdupont\r\nEND\r\n")
	rec, err := tp.ParseAt(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	f := rec.DeviceFigures
	// 273.2 °F = 134.0 °C and 274.1 °F = 134.5 °C to 0.01; 2.04 bar gauge
	// = 305.325 kPa, printed to 1 kPa; 1.3 mbar/min = 0.13 kPa/min (the
	// leak rate has its own unit, and no gauge offset).
	if f == nil || !sameFloat(f.HoldSeconds, ptr(210)) || !sameFloat(f.PlateauMinC, ptr(134)) || !sameFloat(f.PlateauMaxC, ptr(134.5)) ||
		!sameFloat(f.PlateauMinKPa, ptr(305)) || !sameFloat(f.PlateauMaxKPa, ptr(311)) || !sameFloat(f.LeakRateKPaMin, ptr(0.13)) ||
		f.Other["operator"] != "jdupont" {
		b, _ := json.Marshal(f)
		t.Errorf("figures %s", b)
	}
	if len(rec.Phases) != 0 {
		t.Errorf("phases %+v, want none: the device printed none", rec.Phases)
	}
}

// A French device that prints its phases as headings without a time, each
// followed by its sample lines.
const timelessPhasesTemplate = `name: melodie-fr-headings
charset: latin1
timezone: Europe/Paris
date_layout: "02/01/2006"
units: {temperature: C, pressure: mbar}
start: '^STERILISATEUR\b'
end: '^RESULTAT\s*:'
fields:
  - '^CYCLE N\.\s*(?P<cycle>\d+)$'
  - '^DATE\s+(?P<date>\d\d/\d\d/\d{4})\s+HEURE\s+(?P<time>\d\d:\d\d:\d\d)$'
phases:
  regexp: '^(?P<phase>PRECHAUFFAGE|PREVIDE|MONTEE EN TEMPERATURE|PLATEAU|SECHAGE)(?:\s+\d+)?$'
  names:
    PRECHAUFFAGE: preparation
    PREVIDE: air_removal
    MONTEE EN TEMPERATURE: heating
    PLATEAU: sterilizing
    SECHAGE: drying
samples:
  regexp: '^\s+(?P<time>\d\d:\d\d:\d\d)\s+(?P<temp>\d+,\d)\s*\S{0,2}C\s+(?P<pressure>\d+)\s*mbar$'
result:
  regexp: '^RESULTAT\s*:\s*(?P<result>.+)$'
  map: {CONFORME: passed}
`

const timelessPhasesPrintout = "STERILISATEUR MELODIE 23\r\n" +
	"CYCLE N. 000319\r\n" +
	"DATE 28/11/2026   HEURE 10:02:00\r\n" +
	"PRECHAUFFAGE\r\n" +
	"  10:02:00   98,0\xb0C  1010 mbar\r\n" +
	"PREVIDE 1\r\n" +
	"  10:03:00   95,1\xb0C   120 mbar\r\n" +
	"PREVIDE 2\r\n" +
	"  10:06:00   96,0\xb0C   110 mbar\r\n" +
	"MONTEE EN TEMPERATURE\r\n" +
	"  10:09:00  121,5\xb0C  2100 mbar\r\n" +
	"PLATEAU\r\n" +
	"  10:12:00  134,6\xb0C  3125 mbar\r\n" +
	"  10:15:00  134,8\xb0C  3131 mbar\r\n" +
	"SECHAGE\r\n" +
	"  10:16:00  110,2\xb0C   150 mbar\r\n" +
	"RESULTAT : CONFORME\r\n"

// TestParsePhasesWithoutTime: a phase line without a time starts at the
// time of the next sample line, and the samples are labelled with it.
func TestParsePhasesWithoutTime(t *testing.T) {
	tp, err := printer.ParseTemplate("headings.yaml", []byte(timelessPhasesTemplate))
	if err != nil {
		t.Fatalf("a phase rule without a time capture is refused: %v", err)
	}
	rec, err := tp.Parse([]byte(timelessPhasesPrintout))
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	at := func(h, m int) time.Time { return time.Date(2026, 11, 28, h, m, 0, 0, paris).UTC() }
	// PREVIDE 1 and PREVIDE 2 are one contiguous air removal.
	want := []struct {
		name       protocol.PhaseName
		start, end time.Time
	}{
		{protocol.PhasePreparation, at(10, 2), at(10, 3)},
		{protocol.PhaseAirRemoval, at(10, 3), at(10, 9)},
		{protocol.PhaseHeating, at(10, 9), at(10, 12)},
		{protocol.PhaseSterilizing, at(10, 12), at(10, 16)},
		{protocol.PhaseDrying, at(10, 16), at(10, 16)},
	}
	if len(rec.Phases) != len(want) {
		t.Fatalf("phases %+v, want %d", rec.Phases, len(want))
	}
	for i, w := range want {
		p := rec.Phases[i]
		if p.Name != w.name || !p.Start.Equal(w.start) || !p.End.Equal(w.end) {
			t.Errorf("phase %d = %s %s..%s, want %s %s..%s", i, p.Name, p.Start, p.End, w.name, w.start, w.end)
		}
	}
	labels := []protocol.PhaseName{protocol.PhasePreparation, protocol.PhaseAirRemoval, protocol.PhaseAirRemoval,
		protocol.PhaseHeating, protocol.PhaseSterilizing, protocol.PhaseSterilizing, protocol.PhaseDrying}
	if len(rec.Samples) != len(labels) {
		t.Fatalf("%d samples, want %d", len(rec.Samples), len(labels))
	}
	for i, s := range rec.Samples {
		if s.Phase != labels[i] {
			t.Errorf("sample %d at %s labelled %s, want %s", i, s.At, s.Phase, labels[i])
		}
	}
	if p := rec.Phases[3]; p.TempMinC == nil || *p.TempMinC != 134.6 || *p.PressureMaxKPa != 313.1 {
		t.Errorf("plateau extremes %+v", p)
	}
	// A heading printed after the last time (the device was cut) starts
	// at the last printed time.
	cut := timelessPhasesPrintout[:strings.Index(timelessPhasesPrintout, "  10:16:00")]
	rec, _ = tp.Parse([]byte(cut))
	if n := len(rec.Phases); n != 5 || !rec.Phases[4].Start.Equal(at(10, 15)) {
		t.Errorf("cut: phases %+v, want drying from the last printed time 10:15", rec.Phases)
	}
}

var floatNoise = regexp.MustCompile(`\d\.\d*(?:0000000|9999999)\d*`)

// TestParseRoundsConvertedValuesToPrintedPrecision: a value converted
// from bar or mbar carries the precision printed, not float noise.
func TestParseRoundsConvertedValuesToPrintedPrecision(t *testing.T) {
	tp := builtin(t, "dac-de")
	c := printout.SampleCycle(protocol.ResultPassed, 5, t0)
	for i := range c.Samples {
		c.Samples[i].PressureKPa = []float64{7, 318, 319, 57, 29, 14, 1}[i]
	}
	raw := printout.Render(c, printout.Options{Style: printout.StyleGerman})
	if !bytes.Contains(raw, []byte(" 0.07\r\n")) {
		t.Fatalf("the printout has no 0.07 bar sample:\n%s", raw)
	}
	rec, err := tp.ParseAt(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rec.Samples {
		if s.PressureKPa != c.Samples[i].PressureKPa {
			t.Errorf("sample %d: %v kPa, want %v exactly (printed with 2 decimals of bar)", i, s.PressureKPa, c.Samples[i].PressureKPa)
		}
	}
	rec.Raw = nil
	b, _ := json.Marshal(rec)
	if m := floatNoise.Find(b); m != nil {
		t.Errorf("float noise %s in %s", m, b)
	}
	fr, err := frenchTemplate(t).Parse(frenchPrintout(t))
	if err != nil {
		t.Fatal(err)
	}
	if fr.Samples[0].PressureKPa != 312.5 {
		t.Errorf("3125 mbar read as %v kPa, want 312.5", fr.Samples[0].PressureKPa)
	}
	fr.Raw = nil
	b, _ = json.Marshal(fr)
	if m := floatNoise.Find(b); m != nil {
		t.Errorf("float noise %s in %s", m, b)
	}
}

// TestParseEndSeen: end_seen says whether the end line was printed.
func TestParseEndSeen(t *testing.T) {
	tp := frenchTemplate(t)
	rec, err := tp.Parse(frenchPrintout(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rec.EndSeen || !rec.Complete {
		t.Errorf("whole report: end_seen %v complete %v, want true true", rec.EndSeen, rec.Complete)
	}
	rec, _ = tp.Parse(frenchCut(t))
	if rec.EndSeen || rec.Complete || rec.Result != protocol.ResultUnknown {
		t.Errorf("cut report: end_seen %v complete %v result %s, want false false unknown", rec.EndSeen, rec.Complete, rec.Result)
	}
}

// FuzzParseTemplate: any YAML is either refused with an error or compiles
// to a template that parses a printout without breaking a record's
// invariants.
func FuzzParseTemplate(f *testing.F) {
	for _, n := range printer.BuiltinTemplateNames() {
		src, _ := printer.BuiltinTemplateSource(n)
		f.Add(src)
	}
	if src, err := os.ReadFile("testdata/custom-fr.yaml"); err == nil {
		f.Add(src)
	}
	f.Add([]byte(timelessPhasesTemplate))
	f.Add([]byte("name: x\nstart: a\nend: b\nfields: ['(?P<cycle>\\d+)']\nrequired: [cycle, result]\nfigures: ['(?P<hold_seconds>.*)']\n"))
	f.Add([]byte("name: [\n"))
	printouts := [][]byte{[]byte(timelessPhasesPrintout), printout.Render(printout.SampleCycle(protocol.ResultFailed, 9, t0), printout.Options{Style: printout.StyleGerman})}
	if raw, err := os.ReadFile("testdata/sample-fr.txt"); err == nil {
		printouts = append(printouts, raw)
	}
	f.Fuzz(func(t *testing.T, yml []byte) {
		tp, err := printer.ParseTemplate("fuzz.yaml", yml)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, raw := range printouts {
			rec, _ := tp.ParseAt(raw, t0)
			if !bytes.Equal(rec.Raw, raw) || rec.StartedAt.IsZero() || rec.EndedAt.Before(rec.StartedAt) || !rec.Result.Valid() {
				t.Fatalf("record breaks its invariants: %+v", rec)
			}
			for i, p := range rec.Phases {
				if !p.Name.Valid() || p.End.Before(p.Start) {
					t.Fatalf("phase %d = %+v", i, p)
				}
			}
			rec.Device = "x"
			if err := rec.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
