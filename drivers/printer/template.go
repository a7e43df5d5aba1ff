package printer

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/strictyaml"
)

// Template modes.
const (
	// ModeReport: the device prints one report per cycle between a start
	// and an end line.
	ModeReport = "report"
	// ModeStream: the device prints one line of values per second; a cycle
	// is the run of lines carrying the sterilize flag.
	ModeStream = "stream"
)

// templateFile is what a template file says (docs/printer.md), read by
// readTemplate; a nil section is one the file leaves out.
type templateFile struct {
	Name, Mode, Charset, Timezone string
	DateLayout, TimeLayout        string
	Units                         unitsFile
	Start, End                    string
	Fields                        []string
	Phases                        *phasesFile
	Samples                       *samplesFile
	Extremes                      *extremesFile
	Result                        *resultFile
	Alarm                         *alarmFile
	Stream                        *streamFile
	Program                       string
	Figures                       []string
	Required                      *[]string
}

type unitsFile struct{ Temperature, Pressure, LeakRate string }

type phasesFile struct {
	Regexp string
	Names  []wordMapping
	Failed []string
}

// wordMapping maps a printed word onto one of sterigate's (a phase, a
// result), in file order.
type wordMapping struct{ Word, To string }

type samplesFile struct{ Regexp, Phase string }

type extremesFile struct{ Min, Max, Phase string }

type resultFile struct {
	Regexp string
	Map    []wordMapping
}

type alarmFile struct{ Regexp string }

type streamFile struct {
	Regexp, SterilizeFlag string
	Batch                 int
}

// readTemplate reads the file's keys strictly: an unknown key, a key given
// twice or a value of the wrong kind is a Problem of w.
func readTemplate(w *strictyaml.Walker, root *yaml.Node) *templateFile {
	tf := &templateFile{}
	str := w.SetStr
	words := func(dst *[]wordMapping) strictyaml.Decode {
		return func(n *yaml.Node, path string) {
			es, _ := w.Entries(n, path, nil)
			for _, e := range es {
				if to, ok := w.Text(e.Value, strictyaml.Join(path, e.Key)); ok {
					*dst = append(*dst, wordMapping{Word: e.Key, To: to})
				}
			}
		}
	}
	// section reads an optional mapping: it exists once the key is given
	// with a value.
	section := func(present func(), fields ...strictyaml.Field) strictyaml.Decode {
		return func(n *yaml.Node, path string) {
			if strictyaml.IsNull(strictyaml.Deref(n)) {
				return
			}
			present()
			w.Mapping(n, path, fields...)
		}
	}
	ph, sa, ex, re, al, st := &phasesFile{}, &samplesFile{}, &extremesFile{}, &resultFile{}, &alarmFile{}, &streamFile{}
	w.Mapping(root, "",
		strictyaml.Field{Key: "name", Decode: str(&tf.Name)},
		strictyaml.Field{Key: "mode", Decode: str(&tf.Mode)},
		strictyaml.Field{Key: "charset", Decode: str(&tf.Charset)},
		strictyaml.Field{Key: "timezone", Decode: str(&tf.Timezone)},
		strictyaml.Field{Key: "date_layout", Decode: str(&tf.DateLayout)},
		strictyaml.Field{Key: "time_layout", Decode: str(&tf.TimeLayout)},
		strictyaml.Field{Key: "units", Decode: func(n *yaml.Node, path string) {
			w.Mapping(n, path,
				strictyaml.Field{Key: "temperature", Decode: str(&tf.Units.Temperature)},
				strictyaml.Field{Key: "pressure", Decode: str(&tf.Units.Pressure)},
				strictyaml.Field{Key: "leak_rate", Decode: str(&tf.Units.LeakRate)},
			)
		}},
		strictyaml.Field{Key: "start", Decode: str(&tf.Start)},
		strictyaml.Field{Key: "end", Decode: str(&tf.End)},
		strictyaml.Field{Key: "fields", Decode: w.SetStrList(&tf.Fields)},
		strictyaml.Field{Key: "phases", Decode: section(func() { tf.Phases = ph },
			strictyaml.Field{Key: "regexp", Decode: str(&ph.Regexp)},
			strictyaml.Field{Key: "names", Decode: words(&ph.Names)},
			strictyaml.Field{Key: "failed", Decode: w.SetStrList(&ph.Failed)},
		)},
		strictyaml.Field{Key: "samples", Decode: section(func() { tf.Samples = sa },
			strictyaml.Field{Key: "regexp", Decode: str(&sa.Regexp)},
			strictyaml.Field{Key: "phase", Decode: str(&sa.Phase)},
		)},
		strictyaml.Field{Key: "extremes", Decode: section(func() { tf.Extremes = ex },
			strictyaml.Field{Key: "min", Decode: str(&ex.Min)},
			strictyaml.Field{Key: "max", Decode: str(&ex.Max)},
			strictyaml.Field{Key: "phase", Decode: str(&ex.Phase)},
		)},
		strictyaml.Field{Key: "result", Decode: section(func() { tf.Result = re },
			strictyaml.Field{Key: "regexp", Decode: str(&re.Regexp)},
			strictyaml.Field{Key: "map", Decode: words(&re.Map)},
		)},
		strictyaml.Field{Key: "alarm", Decode: section(func() { tf.Alarm = al },
			strictyaml.Field{Key: "regexp", Decode: str(&al.Regexp)},
		)},
		strictyaml.Field{Key: "stream", Decode: section(func() { tf.Stream = st },
			strictyaml.Field{Key: "regexp", Decode: str(&st.Regexp)},
			strictyaml.Field{Key: "sterilize_flag", Decode: str(&st.SterilizeFlag)},
			strictyaml.Field{Key: "batch", Decode: w.SetInt(&st.Batch, 1, 1000)},
		)},
		strictyaml.Field{Key: "program", Decode: str(&tf.Program)},
		strictyaml.Field{Key: "figures", Decode: w.SetStrList(&tf.Figures)},
		strictyaml.Field{Key: "required", Decode: func(n *yaml.Node, path string) {
			if strictyaml.IsNull(strictyaml.Deref(n)) {
				return
			}
			list := []string{}
			w.SetStrList(&list)(n, path)
			if list == nil {
				list = []string{}
			}
			tf.Required = &list
		}},
	)
	return tf
}

// Template is a compiled printout template. It is immutable and safe for
// concurrent use.
type Template struct {
	name, mode, charset string
	loc                 *time.Location
	dateLayout          string
	timeLayout          string
	tempUnit, presUnit  string
	leakUnit            string // per minute
	program             string
	// required names the values a report must yield to be a record.
	required []string

	start, end *regexp.Regexp
	// startAnywhere is start without its leading ^: a cheap test of
	// whether a start marker may begin inside a line.
	startAnywhere *regexp.Regexp
	fields        []*regexp.Regexp

	phaseRe     *regexp.Regexp
	phaseNames  map[string]protocol.PhaseName // key normalised
	phaseFailed map[string]bool

	sampleRe    *regexp.Regexp
	samplePhase protocol.PhaseName

	minRe, maxRe  *regexp.Regexp
	extremesPhase protocol.PhaseName

	figures []*regexp.Regexp

	resultRe  *regexp.Regexp
	resultMap map[string]protocol.Result // key normalised

	alarmRe *regexp.Regexp

	streamRe      *regexp.Regexp
	sterilizeFlag string
	batch         int
}

// Name is the template's name.
func (t *Template) Name() string { return t.name }

// Mode is ModeReport or ModeStream.
func (t *Template) Mode() string { return t.mode }

// Charset is the code page the template decodes the printout with.
func (t *Template) Charset() string { return t.charset }

// Location is the time zone the device's clock prints in.
func (t *Template) Location() *time.Location { return t.loc }

// WithLocation returns a copy of t that reads printed times in loc.
func (t *Template) WithLocation(loc *time.Location) *Template {
	c := *t
	c.loc = loc
	return &c
}

//go:embed templates/*.yaml
var builtinFS embed.FS

// BuiltinTemplateNames lists the templates compiled into the binary.
func BuiltinTemplateNames() []string {
	entries, _ := builtinFS.ReadDir("templates")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// BuiltinTemplate returns the built-in template called name
// ("statclave-en", "dac-de", "amsco-ls").
func BuiltinTemplate(name string) (*Template, bool) {
	data, err := builtinFS.ReadFile("templates/" + name + ".yaml")
	if err != nil {
		return nil, false
	}
	t, err := ParseTemplate("builtin:"+name, data)
	if err != nil {
		panic("printer: built-in template " + name + " is broken: " + err.Error())
	}
	return t, true
}

// BuiltinTemplateSource returns the YAML of a built-in template, so that an
// engineer can start a new template from it.
func BuiltinTemplateSource(name string) ([]byte, bool) {
	data, err := builtinFS.ReadFile("templates/" + name + ".yaml")
	return data, err == nil
}

// ResolveTemplate returns the built-in template nameOrPath, or else loads
// the YAML file at that path.
func ResolveTemplate(nameOrPath string) (*Template, error) {
	if t, ok := BuiltinTemplate(nameOrPath); ok {
		return t, nil
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("template %q is neither built in (%s) nor a readable file: %w", nameOrPath, strings.Join(BuiltinTemplateNames(), ", "), err)
	}
	return ParseTemplate(nameOrPath, data)
}

// templateError locates a mistake in a template file.
type templateError struct {
	file  string
	line  int
	field string
	msg   string
}

func (e *templateError) Error() string {
	return strictyaml.Problem{Line: e.line, Path: e.field, Msg: e.msg}.In(e.file)
}

// ParseTemplate compiles a YAML template. name is used in errors (usually
// the file path); every error names the file, the line and the field.
func ParseTemplate(name string, data []byte) (*Template, error) {
	root, syntax := strictyaml.Parse(data)
	if syntax != nil {
		return nil, &templateError{file: name, line: syntax.Line, msg: syntax.Msg}
	}
	if root == nil {
		return nil, &templateError{file: name, field: "template", msg: "file is empty"}
	}
	w := &strictyaml.Walker{Lines: strictyaml.Lines{}}
	tf := readTemplate(w, root)
	if len(w.Problems) > 0 {
		var errs []error
		for _, p := range w.InFileOrder() {
			errs = append(errs, &templateError{file: name, line: p.Line, field: p.Path, msg: p.Msg})
		}
		return nil, errors.Join(errs...)
	}
	c := compiler{file: name, lines: w.Lines, rootLine: root.Line}
	t := c.compile(tf)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return t, nil
}

// compiler checks what the keys mean and builds the Template; its
// mistakes are on the line of the key they are about (lines).
type compiler struct {
	file  string
	lines strictyaml.Lines
	// rootLine is where the template begins: the line of a mistake about
	// a key that is not there.
	rootLine int
	errs     []error
}

func (c *compiler) fail(msg, path string) {
	line := c.lines.Line(path)
	if line == 0 {
		line = c.rootLine
	}
	c.errs = append(c.errs, &templateError{file: c.file, line: line, field: path, msg: msg})
}

// compileRe compiles the regexp at path, or says why it cannot.
func (c *compiler) compileRe(src, path string) *regexp.Regexp {
	if src == "" {
		c.fail("regexp is empty", path)
		return nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		c.fail(fmt.Sprintf("regexp %q does not compile: %v", src, err), path)
		return nil
	}
	return re
}

// re compiles the regexp at path. Named captures must be among allowed;
// those in required must be present.
func (c *compiler) re(src string, allowed, required []string, path string) *regexp.Regexp {
	re := c.compileRe(src, path)
	if re == nil {
		return nil
	}
	have := map[string]bool{}
	for _, n := range re.SubexpNames() {
		if n == "" {
			continue
		}
		have[n] = true
		ok := false
		for _, a := range allowed {
			ok = ok || a == n
		}
		if !ok {
			c.fail(fmt.Sprintf("regexp %q has capture (?P<%s>) which this rule does not use; allowed: %s", src, n, strings.Join(allowed, ", ")), path)
		}
	}
	for _, r := range required {
		if !have[r] {
			c.fail(fmt.Sprintf("regexp %q lacks the capture (?P<%s>...)", src, r), path)
		}
	}
	return re
}

func (c *compiler) phase(name string, def protocol.PhaseName, path string) protocol.PhaseName {
	if name == "" {
		return def
	}
	p := protocol.PhaseName(name)
	if !p.Valid() {
		c.fail(fmt.Sprintf("phase %q is not in the phase vocabulary (%s)", name, phaseList()), path)
	}
	return p
}

func phaseList() string {
	s := make([]string, len(protocol.PhaseNames()))
	for i, p := range protocol.PhaseNames() {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// normalise makes printed words comparable: case folded, runs of blanks
// collapsed.
func normalise(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

var (
	temperatureUnits = []string{"C", "F"}
	pressureUnits    = []string{"kPa", "bar", "mbar", "psia", "kPa_g", "bar_g", "psig"}
)

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

func (c *compiler) compile(tf *templateFile) *Template {
	t := &Template{
		name: tf.Name, mode: tf.Mode, charset: tf.Charset, dateLayout: tf.DateLayout,
		timeLayout: tf.TimeLayout, tempUnit: tf.Units.Temperature, presUnit: tf.Units.Pressure,
		program: tf.Program,
	}
	if t.name == "" {
		c.fail("is required", "name")
	}
	if t.mode == "" {
		t.mode = ModeReport
	}
	if t.mode != ModeReport && t.mode != ModeStream {
		c.fail(fmt.Sprintf("mode %q is not %q or %q", t.mode, ModeReport, ModeStream), "mode")
	}
	if t.charset == "" {
		t.charset = "ascii"
	}
	if err := checkCharset(t.charset); err != nil {
		c.fail(err.Error(), "charset")
	}
	tz := tf.Timezone
	if tz == "" {
		tz = "Local"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		c.fail(fmt.Sprintf("timezone %q: %v", tz, err), "timezone")
		loc = time.UTC
	}
	t.loc = loc
	if t.timeLayout == "" {
		t.timeLayout = "15:04:05"
	}
	if t.tempUnit == "" {
		t.tempUnit = "C"
	}
	if !oneOf(t.tempUnit, temperatureUnits) {
		c.fail(fmt.Sprintf("unit %q is not one of %s", t.tempUnit, strings.Join(temperatureUnits, ", ")), "units.temperature")
	}
	if t.presUnit == "" {
		t.presUnit = "kPa"
	}
	if !oneOf(t.presUnit, pressureUnits) {
		c.fail(fmt.Sprintf("unit %q is not one of %s", t.presUnit, strings.Join(pressureUnits, ", ")), "units.pressure")
	}
	t.leakUnit = tf.Units.LeakRate
	if t.leakUnit == "" {
		t.leakUnit = rateUnitOf(t.presUnit)
	}
	if !oneOf(t.leakUnit, leakRateUnits) {
		c.fail(fmt.Sprintf("unit %q is not one of %s (per minute)", t.leakUnit, strings.Join(leakRateUnits, ", ")), "units.leak_rate")
	}
	t.start = c.re(tf.Start, nil, nil, "start")
	if t.start != nil {
		// Without its anchor the start regexp may not compile ("^*x"):
		// then a start marker is only looked for at line starts.
		t.startAnywhere = t.start
		if re, err := regexp.Compile(strings.TrimPrefix(tf.Start, "^")); err == nil {
			t.startAnywhere = re
		}
	}
	t.end = c.re(tf.End, nil, nil, "end")

	if t.mode == ModeStream {
		if tf.Stream == nil {
			c.fail("is required in stream mode", "stream")
			return t
		}
		t.streamRe = c.re(tf.Stream.Regexp, []string{"flag", "time", "temp", "pressure"}, []string{"flag", "time", "temp"}, "stream.regexp")
		t.sterilizeFlag = tf.Stream.SterilizeFlag
		if t.sterilizeFlag == "" {
			c.fail("is required: the flag value that marks the sterilize phase", "stream.sterilize_flag")
		}
		t.batch = tf.Stream.Batch
		if t.batch == 0 {
			t.batch = 10
		}

		for _, k := range []struct {
			set  bool
			name string
		}{{len(tf.Fields) > 0, "fields"}, {tf.Phases != nil, "phases"}, {tf.Samples != nil, "samples"}, {tf.Extremes != nil, "extremes"}, {tf.Result != nil, "result"}, {tf.Alarm != nil, "alarm"}, {len(tf.Figures) > 0, "figures"}} {
			if k.set {
				c.fail("is not used in stream mode (a stream line carries no "+k.name+")", k.name)
			}
		}
		if tf.Required != nil {
			c.fail("is not used in stream mode: a stream record needs at least one line with the sterilize flag", "required")
		}
		return t
	}
	if tf.Stream != nil {
		c.fail("is only used in stream mode", "stream")
	}
	haveCycle := false
	for i, f := range tf.Fields {
		re := c.re(f, []string{"program", "cycle", "date", "time", "end_time"}, nil, fmt.Sprintf("fields[%d]", i))
		if re == nil {
			continue
		}
		if re.SubexpIndex("cycle") >= 0 {
			haveCycle = true
		}
		if re.SubexpIndex("date") >= 0 && t.dateLayout == "" {
			c.fail("is required when a field captures (?P<date>)", "date_layout")
		}
		t.fields = append(t.fields, re)
	}
	if !haveCycle {
		c.fail("no rule captures (?P<cycle>): a record needs the device's cycle counter", "fields")
	}
	if p := tf.Phases; p != nil {
		// A phase line may print no time: it then starts at the next
		// printed time (see parse.go).
		t.phaseRe = c.re(p.Regexp, []string{"time", "phase", "status"}, []string{"phase"}, "phases.regexp")
		t.phaseNames = map[string]protocol.PhaseName{}
		for _, m := range p.Names {
			t.phaseNames[normalise(m.Word)] = c.phase(m.To, protocol.PhaseUnknown, "phases.names."+m.Word)
		}
		t.phaseFailed = map[string]bool{}
		for _, w := range p.Failed {
			t.phaseFailed[normalise(w)] = true
		}
	}
	if s := tf.Samples; s != nil {
		t.sampleRe = c.re(s.Regexp, []string{"time", "temp", "pressure"}, []string{"time", "temp"}, "samples.regexp")
		t.samplePhase = c.phase(s.Phase, protocol.PhaseSterilizing, "samples.phase")
	}
	if x := tf.Extremes; x != nil {
		if x.Min != "" {
			t.minRe = c.re(x.Min, []string{"temp", "pressure"}, nil, "extremes.min")
		}
		if x.Max != "" {
			t.maxRe = c.re(x.Max, []string{"temp", "pressure"}, nil, "extremes.max")
		}
		t.extremesPhase = c.phase(x.Phase, protocol.PhaseSterilizing, "extremes.phase")
	}
	if r := tf.Result; r != nil {
		t.resultRe = c.re(r.Regexp, []string{"result", "time"}, []string{"result"}, "result.regexp")
		t.resultMap = map[string]protocol.Result{}
		if len(r.Map) == 0 {
			c.fail("is required: which printed words mean passed, failed, aborted", "result.map")
		}
		for _, m := range r.Map {
			if !protocol.Result(m.To).Valid() {
				c.fail(fmt.Sprintf("result %q is not one of passed, failed, aborted, unknown", m.To), "result.map."+m.Word)
			}
			t.resultMap[normalise(m.Word)] = protocol.Result(m.To)
		}

	}
	if a := tf.Alarm; a != nil {
		t.alarmRe = c.re(a.Regexp, []string{"code", "text", "time"}, []string{"code"}, "alarm.regexp")
	}
	for i, f := range tf.Figures {
		if re := c.figureRe(f, fmt.Sprintf("figures[%d]", i)); re != nil {
			t.figures = append(t.figures, re)
		}
	}
	t.required = []string{"cycle"}
	if tf.Required != nil {
		t.required = *tf.Required
	}
	c.checkRequired(t)
	return t
}

// Values a template may require of a report (the key required), and what
// yields each: the named capture of a fields rule, or a line rule.
var requirable = []string{"cycle", "program", "date", "time", "end_time", "result", "phase", "sample"}

// checkRequired makes sure every required value has a rule that can yield
// it: a requirement no report can meet would silently turn every report
// into garbage.
func (c *compiler) checkRequired(t *Template) {
	seen := map[string]bool{}
	for i, r := range t.required {
		path := fmt.Sprintf("required[%d]", i)
		if !oneOf(r, requirable) {
			c.fail(fmt.Sprintf("%q is not one of %s", r, strings.Join(requirable, ", ")), path)
			continue
		}
		if seen[r] {
			c.fail(fmt.Sprintf("%q is listed twice", r), path)
		}
		seen[r] = true
		ok := false
		switch r {
		case "cycle":
			ok = true // a rule capturing it is checked above, required or not
		case "result":
			ok = t.resultRe != nil
		case "phase":
			ok = t.phaseRe != nil
		case "sample":
			ok = t.sampleRe != nil
		default:
			for _, re := range t.fields {
				ok = ok || re.SubexpIndex(r) >= 0
			}
		}
		if !ok {
			c.fail(fmt.Sprintf("%q is required but no rule yields it", r), path)
		}
	}
}
