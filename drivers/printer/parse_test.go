package printer_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

func TestParseSimulatorPrintouts(t *testing.T) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		tp := builtin(t, styleTemplate(style))
		for _, r := range results {
			for _, opts := range []printout.Options{
				{Style: style},
				{Style: style, LineEnding: "\n", FormFeed: true},
				{Style: style, LineEnding: "\r"},
				{Style: style, Charset: printout.CharsetCP437},
				{Style: style, Charset: printout.CharsetASCII}, // 134?C mojibake
			} {
				t.Run(string(style)+"/"+string(r)+"/"+opts.Charset+"/"+strings.ReplaceAll(opts.LineEnding, "\r", "CR"), func(t *testing.T) {
					c := printout.SampleCycle(r, 4711, t0)
					raw := printout.Render(c, opts)
					rec, err := tp.ParseAt(raw, t0)
					if err != nil {
						t.Fatalf("ParseAt: %v", err)
					}
					if !bytes.Equal(rec.Raw, raw) {
						t.Error("Raw is not the printed bytes")
					}
					checkRecord(t, rec, c, tolerance(style))
				})
			}
		}
	}
}

func TestParseGermanDegreeSignsAndUmlauts(t *testing.T) {
	tp := builtin(t, "dac-de")
	c := printout.SampleCycle(protocol.ResultPassed, 13, t0)
	raw := printout.Render(c, printout.Options{Style: printout.StyleGerman}) // CP850
	if !bytes.Contains(raw, []byte("134\xf8C")) || !bytes.Contains(raw, []byte("Bel\x81ftung")) {
		t.Fatalf("the printout does not carry CP850 bytes; the test would prove nothing:\n%q", raw)
	}
	rec, err := tp.ParseAt(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	var names []protocol.PhaseName
	for _, p := range rec.Phases {
		names = append(names, p.Name)
	}
	if names[6] != protocol.PhaseAirAdmission {
		t.Errorf("Belüftung (0x81) read as %s, want air_admission; phases %v", names[6], names)
	}
}

func TestParseControlSequencesInsideReport(t *testing.T) {
	tp := builtin(t, "statclave-en")
	c := printout.SampleCycle(protocol.ResultPassed, 9, t0)
	raw := printout.Render(c, printout.Options{Style: printout.StyleEnglish})
	// Bold on/off around the result line, condensed print (SI), a line
	// spacing command whose parameter is 0x0C (a form feed byte), a BS
	// overstrike and a tab.
	decorated := bytes.Replace(raw, []byte("CYCLE COMPLETE"), []byte("\x1bECYCLE\tCOMPLETE\x1bF"), 1)
	decorated = bytes.Replace(decorated, []byte("PROGRAM "), []byte("\x1b3\x0c\x0fPROGRAM X\b"), 1)
	decorated = append([]byte("\x1b@"), decorated...)
	rec, err := tp.ParseAt(decorated, t0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, rec, c, 0.051)
}

func TestParseIncompleteReportKeepsWhatWasPrinted(t *testing.T) {
	tp := builtin(t, "dac-de")
	c := printout.SampleCycle(protocol.ResultPassed, 77, t0)
	raw := printout.Render(c, printout.Options{Style: printout.StyleGerman})
	cut := raw[:bytes.Index(raw, []byte("Trocknung"))+4] // power lost mid-line
	rec, err := tp.ParseAt(cut, t0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Complete || rec.Result != protocol.ResultUnknown || rec.Cycle != 77 || !bytes.Equal(rec.Raw, cut) {
		t.Errorf("cut report: complete=%v result=%s cycle=%d raw kept=%v", rec.Complete, rec.Result, rec.Cycle, bytes.Equal(rec.Raw, cut))
	}
	if len(rec.Phases) != 5 || !rec.EndedAt.Equal(rec.Phases[4].Start) {
		t.Errorf("phases %+v, ended %s: want 5 phases ending at the last printed time", rec.Phases, rec.EndedAt)
	}
}

func TestParseWithoutCycleNumberStillReturnsRecord(t *testing.T) {
	tp := builtin(t, "statclave-en")
	raw := []byte("*** X ***\r\nSOMETHING ELSE\r\n")
	rec, err := tp.ParseAt(raw, t0)
	if err == nil || !strings.Contains(err.Error(), "no cycle number") {
		t.Fatalf("err = %v, want one naming the missing cycle number", err)
	}
	if !bytes.Equal(rec.Raw, raw) || rec.Source != "printer" || !rec.StartedAt.Equal(t0) || rec.Result != protocol.ResultUnknown || rec.Cycle != uint64(t0.Unix()) {
		t.Errorf("record = %+v, want raw kept, started at the reception time, result unknown, cycle = start in Unix seconds", rec)
	}
}

func TestParseMidnightRollover(t *testing.T) {
	tp := builtin(t, "statclave-en")
	start := time.Date(2026, 12, 31, 23, 50, 0, 0, time.UTC)
	c := printout.SampleCycle(protocol.ResultPassed, 5, start)
	rec, err := tp.ParseAt(printout.Render(c, printout.Options{Style: printout.StyleEnglish}), start)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, rec, c, 0.051)
}

func TestParseStream(t *testing.T) {
	tp := builtin(t, "amsco-ls")
	var raw []byte
	at := t0
	for i := 0; i < 5; i++ {
		raw = append(raw, printout.StreamLine(at, true, 318, 135.3, 136, printout.Options{})...)
		at = at.Add(time.Second)
	}
	raw = append(raw, printout.StreamLine(at, false, 250, 128, 136, printout.Options{})...)
	rec, err := tp.ParseAt(raw, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Cycle != uint64(t0.Unix()) || !rec.StartedAt.Equal(t0) || !rec.EndedAt.Equal(at) || !rec.Complete {
		t.Errorf("cycle %d start %s end %s complete %v; want %d %s %s true", rec.Cycle, rec.StartedAt, rec.EndedAt, rec.Complete, t0.Unix(), t0, at)
	}
	if len(rec.Samples) != 6 || !near(rec.Samples[0].TempC, 135.3, 0.06) || !near(rec.Samples[0].PressureKPa, 318, 0.05) {
		t.Errorf("samples %+v", rec.Samples)
	}
	if len(rec.Phases) != 1 || rec.Phases[0].Name != protocol.PhaseSterilizing || *rec.Phases[0].TempMinC < 135.2 {
		t.Errorf("phases %+v", rec.Phases)
	}
}

func TestTemplateErrorsNameFileLineAndField(t *testing.T) {
	good := func() string {
		b, _ := printer.BuiltinTemplate("statclave-en")
		_ = b
		return `name: t
start: '^START$'
end: '^END$'
fields:
  - '^CYCLE (?P<cycle>\d+)$'
`
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top key", good() + "colour: red\n", "t.yaml:6: colour: unknown key"},
		{"unknown nested key", good() + "phases:\n  regex: x\n", "t.yaml:7: phases.regex: unknown key (allowed here: regexp, names, failed)"},
		{"bad regexp", strings.Replace(good(), `'^END$'`, `'^END($'`, 1), "t.yaml:3: end: regexp"},
		{"unknown capture", good() + "  - '^P (?P<programme>.*)$'\n", "t.yaml:6: fields[1]: regexp"},
		{"no cycle", "name: t\nstart: a\nend: b\n", "fields: no rule captures (?P<cycle>)"},
		{"bad phase", good() + "phases:\n  regexp: '(?P<time>\\S+) (?P<phase>.*)'\n  names:\n    HEAT: warming\n", "t.yaml:9: phases.names.HEAT: phase \"warming\""},
		{"bad result", good() + "result:\n  regexp: '(?P<result>.*)'\n  map:\n    OK: fine\n", "t.yaml:9: result.map.OK: result \"fine\""},
		{"bad charset", good() + "charset: ebcdic\n", "t.yaml:6: charset: charset \"ebcdic\""},
		{"bad unit", good() + "units:\n  pressure: atm\n", "t.yaml:7: units.pressure: unit \"atm\""},
		{"date without layout", good() + "  - '^D (?P<date>\\S+)$'\n", "date_layout: is required"},
		{"bad yaml", "name: [\n", "t.yaml:"},
		{"key given twice", good() + "start: again\n", "t.yaml:6: start: is given twice"},
		{"list wanted", strings.Replace(good(), "fields:\n  - '^CYCLE (?P<cycle>\\d+)$'\n", "fields: '^CYCLE (?P<cycle>\\d+)$'\n", 1), `t.yaml:4: fields: must be a list, not the value "^CYCLE (?P<cycle>\\d+)$"`},
		{"text wanted", good() + "units:\n  temperature: [C]\n", "t.yaml:7: units.temperature: must be a text value, not a list"},
		{"word mapped twice", good() + "result:\n  regexp: '(?P<result>.*)'\n  map:\n    OK: passed\n    OK: failed\n", "t.yaml:10: result.map.OK: is given twice"},
		{"batch out of range", "name: s\nmode: stream\nstart: a\nend: b\nstream:\n  regexp: '(?P<flag>.)(?P<time>.)(?P<temp>.)'\n  sterilize_flag: S\n  batch: 0\n", "t.yaml:8: stream.batch: 0 is out of range (1 to 1000)"},
		{"missing name", strings.Replace(good(), "name: t\n", "", 1), "t.yaml:1: name: is required"},
		{"stream without stream", "name: s\nmode: stream\nstart: a\nend: b\n", "stream: is required in stream mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := printer.ParseTemplate("t.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := printer.ParseTemplate("t.yaml", []byte(good())); err != nil {
		t.Errorf("the minimal template is rejected: %v", err)
	}
}

func TestResolveTemplate(t *testing.T) {
	for _, n := range printer.BuiltinTemplateNames() {
		if tp, err := printer.ResolveTemplate(n); err != nil || tp.Name() != n {
			t.Errorf("ResolveTemplate(%q) = %v, %v", n, tp, err)
		}
	}
	if got := printer.BuiltinTemplateNames(); strings.Join(got, ",") != "amsco-ls,dac-de,statclave-en" {
		t.Errorf("built-in templates = %v", got)
	}
	if _, err := printer.ResolveTemplate("testdata/custom-fr.yaml"); err != nil {
		t.Errorf("the README's sample template does not load: %v", err)
	}
	if _, err := printer.ResolveTemplate("no-such-template"); err == nil || !strings.Contains(err.Error(), "dac-de") {
		t.Errorf("unknown template error %v does not list the built-in ones", err)
	}
}

func TestParseLatin1WithLatin1Template(t *testing.T) {
	yml, err := os.ReadFile("templates/dac-de.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := printer.ParseTemplate("dac-de-latin1.yaml", bytes.Replace(yml, []byte("charset: cp850"), []byte("charset: latin1"), 1))
	if err != nil {
		t.Fatal(err)
	}
	tp = tp.WithLocation(time.UTC)
	c := printout.SampleCycle(protocol.ResultPassed, 13, t0)
	raw := printout.Render(c, printout.Options{Style: printout.StyleGerman, Charset: printout.CharsetLatin1})
	if !bytes.Contains(raw, []byte("134\xb0C")) {
		t.Fatalf("no Latin-1 degree sign in %q", raw)
	}
	rec, err := tp.ParseAt(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, rec, c, 0.51)
}

func TestParseTemplateWrittenFromSamplePrintout(t *testing.T) {
	tp, err := printer.ResolveTemplate("testdata/custom-fr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/sample-fr.txt")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	if rec.Cycle != 318 || rec.Program != "PRION 134°C 18 min" || rec.Result != protocol.ResultPassed || !rec.Complete ||
		!rec.StartedAt.Equal(time.Date(2026, 11, 28, 9, 14, 5, 0, paris)) || !rec.EndedAt.Equal(time.Date(2026, 11, 28, 9, 57, 30, 0, paris)) {
		t.Errorf("record header = cycle %d program %q result %s complete %v %s..%s", rec.Cycle, rec.Program, rec.Result, rec.Complete, rec.StartedAt, rec.EndedAt)
	}
	if len(rec.Phases) != 7 || len(rec.Samples) != 4 || rec.Samples[1].PressureKPa != 314 || rec.Samples[1].TempC != 135 {
		t.Fatalf("phases %d samples %+v", len(rec.Phases), rec.Samples)
	}
	if p := rec.Phases[3]; p.Name != protocol.PhaseSterilizing || *p.TempMinC != 134.4 || *p.PressureMaxKPa != 315 {
		t.Errorf("plateau = %+v", p)
	}
}

// TestDocsShowCurrentTemplatesAndPrintouts keeps docs/printer.md true: it
// must carry the built-in templates and the simulator's golden printouts
// as they are now.
func TestDocsShowCurrentTemplatesAndPrintouts(t *testing.T) {
	doc, err := os.ReadFile("../../docs/printer.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range printer.BuiltinTemplateNames() {
		yml, err := os.ReadFile("templates/" + n + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, yml) {
			t.Errorf("docs/printer.md does not show the current templates/%s.yaml", n)
		}
	}
	cp850 := func(b []byte) string {
		var s strings.Builder
		for _, c := range b {
			switch c {
			case 0xf8:
				s.WriteRune('°')
			case 0x81:
				s.WriteRune('ü')
			case '\r', '\f':
			default:
				s.WriteByte(c)
			}
		}
		return s.String()
	}
	// The worked example: the French template and its sample printout.
	fr, err := os.ReadFile("testdata/custom-fr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, fr) {
		t.Error("docs/printer.md does not show the current testdata/custom-fr.yaml")
	}
	sample, err := os.ReadFile("testdata/sample-fr.txt")
	if err != nil {
		t.Fatal(err)
	}
	var latin1 strings.Builder
	for _, c := range bytes.TrimRight(sample, "\f") {
		if c != '\r' {
			latin1.WriteRune(rune(c))
		}
	}
	if !strings.Contains(string(doc), latin1.String()) {
		t.Error("docs/printer.md does not show the current testdata/sample-fr.txt")
	}
	for _, f := range []string{"en_pass.txt", "en_fail.txt", "de_pass.txt", "de_fail.txt", "de_abort.txt"} {
		g, err := os.ReadFile("../../sim/printout/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), cp850(g)) {
			t.Errorf("docs/printer.md does not show the current golden %s", f)
		}
	}
}

// TestReadmeSampleTemplate parses the README's sample printout with the
// README's sample template.
func TestReadmeSampleTemplate(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(readme), "```")
	var printed, yml string
	for i := 1; i < len(blocks); i += 2 {
		switch {
		case strings.HasPrefix(blocks[i], "\n== STERIVAP"):
			printed = strings.TrimPrefix(blocks[i], "\n")
		case strings.HasPrefix(blocks[i], "yaml\nname: sterivap-de"):
			yml = strings.TrimPrefix(blocks[i], "yaml\n")
		}
	}
	if printed == "" || yml == "" {
		t.Fatal("README.md lost its sample printout or template")
	}
	tp, err := printer.ParseTemplate("README.md", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tp.Parse([]byte(strings.ReplaceAll(printed, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if rec.Cycle != 1234 || rec.Result != protocol.ResultPassed || !rec.Complete || len(rec.Phases) != 3 || len(rec.Samples) != 1 ||
		rec.Samples[0].PressureKPa != 312 || !rec.StartedAt.Equal(time.Date(2026, 11, 28, 14, 3, 0, 0, berlin)) {
		t.Errorf("README sample parsed as %+v", rec)
	}
}
