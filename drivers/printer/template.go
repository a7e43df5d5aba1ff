package printer

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol"
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

// templateFile is the YAML form of a template (docs/printer.md).
type templateFile struct {
	Name       string         `yaml:"name"`
	Mode       string         `yaml:"mode"`
	Charset    string         `yaml:"charset"`
	Timezone   string         `yaml:"timezone"`
	DateLayout string         `yaml:"date_layout"`
	TimeLayout string         `yaml:"time_layout"`
	Units      unitsFile      `yaml:"units"`
	Start      string         `yaml:"start"`
	End        string         `yaml:"end"`
	Fields     []string       `yaml:"fields"`
	Phases     *phasesFile    `yaml:"phases"`
	Samples    *samplesFile   `yaml:"samples"`
	Extremes   *extremesFile  `yaml:"extremes"`
	Result     *resultFile    `yaml:"result"`
	Alarm      *alarmFile     `yaml:"alarm"`
	Stream     *streamFile    `yaml:"stream"`
	Program    string         `yaml:"program"`
	Figures    []string       `yaml:"figures"`
	Required   *[]string      `yaml:"required"`
	Extra      map[string]any `yaml:",inline"`
}

type unitsFile struct {
	Temperature string `yaml:"temperature"`
	Pressure    string `yaml:"pressure"`
	LeakRate    string `yaml:"leak_rate"`
}

type phasesFile struct {
	Regexp string            `yaml:"regexp"`
	Names  map[string]string `yaml:"names"`
	Failed []string          `yaml:"failed"`
}

type samplesFile struct {
	Regexp string `yaml:"regexp"`
	Phase  string `yaml:"phase"`
}

type extremesFile struct {
	Min   string `yaml:"min"`
	Max   string `yaml:"max"`
	Phase string `yaml:"phase"`
}

type resultFile struct {
	Regexp string            `yaml:"regexp"`
	Map    map[string]string `yaml:"map"`
}

type alarmFile struct {
	Regexp string `yaml:"regexp"`
}

type streamFile struct {
	Regexp        string `yaml:"regexp"`
	SterilizeFlag string `yaml:"sterilize_flag"`
	Batch         int    `yaml:"batch"`
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
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.file, e.line, e.field, e.msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.file, e.field, e.msg)
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// ParseTemplate compiles a YAML template. name is used in errors (usually
// the file path); every error names the file, the line and the field.
func ParseTemplate(name string, data []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return nil, &templateError{file: name, field: "template", msg: "file is empty"}
	}
	var tf templateFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, yamlError(name, err)
	}
	if len(tf.Extra) > 0 {
		keys := make([]string, 0, len(tf.Extra))
		for k := range tf.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, &templateError{file: name, line: lineOf(root.Content[0], keys[0]), field: keys[0], msg: "unknown key"}
	}
	c := compiler{file: name, root: root.Content[0]}
	t := c.compile(&tf)
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return t, nil
}

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, e := range te.Errors {
			if m := yamlLineRe.FindStringSubmatch(e); m != nil {
				errs = append(errs, fmt.Errorf("%s:%s: %s", file, m[1], m[2]))
			} else {
				errs = append(errs, fmt.Errorf("%s: %s", file, e))
			}
		}
		return errors.Join(errs...)
	}
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s", file, m[1], m[2])
	}
	return fmt.Errorf("%s: %w", file, err)
}

// lineOf finds the line of the value at path (mapping keys and sequence
// indexes) in the YAML tree, or of the deepest part of it that exists.
func lineOf(n *yaml.Node, path ...string) int {
	line := n.Line
	for _, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	if n.Kind == yaml.ScalarNode {
		return n.Line
	}
	return line
}

type compiler struct {
	file string
	root *yaml.Node
	errs []error
}

func (c *compiler) fail(msg string, path ...string) {
	c.errs = append(c.errs, &templateError{file: c.file, line: lineOf(c.root, path...), field: strings.Join(path, "."), msg: msg})
}

// compileRe compiles the regexp at path, or says why it cannot.
func (c *compiler) compileRe(src string, path ...string) *regexp.Regexp {
	if src == "" {
		c.fail("regexp is empty", path...)
		return nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		c.fail(fmt.Sprintf("regexp %q does not compile: %v", src, err), path...)
		return nil
	}
	return re
}

// re compiles the regexp at path. Named captures must be among allowed;
// those in required must be present.
func (c *compiler) re(src string, allowed, required []string, path ...string) *regexp.Regexp {
	re := c.compileRe(src, path...)
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
			c.fail(fmt.Sprintf("regexp %q has capture (?P<%s>) which this rule does not use; allowed: %s", src, n, strings.Join(allowed, ", ")), path...)
		}
	}
	for _, r := range required {
		if !have[r] {
			c.fail(fmt.Sprintf("regexp %q lacks the capture (?P<%s>...)", src, r), path...)
		}
	}
	return re
}

func (c *compiler) phase(name string, def protocol.PhaseName, path ...string) protocol.PhaseName {
	if name == "" {
		return def
	}
	p := protocol.PhaseName(name)
	if !p.Valid() {
		c.fail(fmt.Sprintf("phase %q is not in the phase vocabulary (%s)", name, phaseList()), path...)
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
		c.fail(fmt.Sprintf("unit %q is not one of %s", t.tempUnit, strings.Join(temperatureUnits, ", ")), "units", "temperature")
	}
	if t.presUnit == "" {
		t.presUnit = "kPa"
	}
	if !oneOf(t.presUnit, pressureUnits) {
		c.fail(fmt.Sprintf("unit %q is not one of %s", t.presUnit, strings.Join(pressureUnits, ", ")), "units", "pressure")
	}
	t.leakUnit = tf.Units.LeakRate
	if t.leakUnit == "" {
		t.leakUnit = rateUnitOf(t.presUnit)
	}
	if !oneOf(t.leakUnit, leakRateUnits) {
		c.fail(fmt.Sprintf("unit %q is not one of %s (per minute)", t.leakUnit, strings.Join(leakRateUnits, ", ")), "units", "leak_rate")
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
		t.streamRe = c.re(tf.Stream.Regexp, []string{"flag", "time", "temp", "pressure"}, []string{"flag", "time", "temp"}, "stream", "regexp")
		t.sterilizeFlag = tf.Stream.SterilizeFlag
		if t.sterilizeFlag == "" {
			c.fail("is required: the flag value that marks the sterilize phase", "stream", "sterilize_flag")
		}
		t.batch = tf.Stream.Batch
		if t.batch == 0 {
			t.batch = 10
		}
		if t.batch < 1 || t.batch > 1000 {
			c.fail(fmt.Sprintf("batch %d is not between 1 and 1000", t.batch), "stream", "batch")
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
		re := c.re(f, []string{"program", "cycle", "date", "time", "end_time"}, nil, "fields", strconv.Itoa(i))
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
		t.phaseRe = c.re(p.Regexp, []string{"time", "phase", "status"}, []string{"phase"}, "phases", "regexp")
		t.phaseNames = map[string]protocol.PhaseName{}
		for word, name := range p.Names {
			t.phaseNames[normalise(word)] = c.phase(name, protocol.PhaseUnknown, "phases", "names", word)
		}
		t.phaseFailed = map[string]bool{}
		for _, w := range p.Failed {
			t.phaseFailed[normalise(w)] = true
		}
	}
	if s := tf.Samples; s != nil {
		t.sampleRe = c.re(s.Regexp, []string{"time", "temp", "pressure"}, []string{"time", "temp"}, "samples", "regexp")
		t.samplePhase = c.phase(s.Phase, protocol.PhaseSterilizing, "samples", "phase")
	}
	if x := tf.Extremes; x != nil {
		if x.Min != "" {
			t.minRe = c.re(x.Min, []string{"temp", "pressure"}, nil, "extremes", "min")
		}
		if x.Max != "" {
			t.maxRe = c.re(x.Max, []string{"temp", "pressure"}, nil, "extremes", "max")
		}
		t.extremesPhase = c.phase(x.Phase, protocol.PhaseSterilizing, "extremes", "phase")
	}
	if r := tf.Result; r != nil {
		t.resultRe = c.re(r.Regexp, []string{"result", "time"}, []string{"result"}, "result", "regexp")
		t.resultMap = map[string]protocol.Result{}
		if len(r.Map) == 0 {
			c.fail("is required: which printed words mean passed, failed, aborted", "result", "map")
		}
		for word, res := range r.Map {
			if !protocol.Result(res).Valid() {
				c.fail(fmt.Sprintf("result %q is not one of passed, failed, aborted, unknown", res), "result", "map", word)
			}
			t.resultMap[normalise(word)] = protocol.Result(res)
		}
	}
	if a := tf.Alarm; a != nil {
		t.alarmRe = c.re(a.Regexp, []string{"code", "text", "time"}, []string{"code"}, "alarm", "regexp")
	}
	for i, f := range tf.Figures {
		if re := c.figureRe(f, "figures", strconv.Itoa(i)); re != nil {
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
		path := []string{"required", strconv.Itoa(i)}
		if !oneOf(r, requirable) {
			c.fail(fmt.Sprintf("%q is not one of %s", r, strings.Join(requirable, ", ")), path...)
			continue
		}
		if seen[r] {
			c.fail(fmt.Sprintf("%q is listed twice", r), path...)
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
			c.fail(fmt.Sprintf("%q is required but no rule yields it", r), path...)
		}
	}
}
