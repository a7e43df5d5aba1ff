package profile

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/strictyaml"
	"github.com/sterigate/sterigate/protocol/verify"
)

// Problem is one mistake in a profile, located by file, line and the path
// of the offending key (e.g. "fields.chamber_temp.type").
type Problem struct {
	File string
	Line int
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Path, p.Msg)
}

// ParseError lists every problem found in a profile, one per line, in file
// order, so a user fixes them all in one pass.
type ParseError struct {
	Problems []Problem
}

func (e *ParseError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// maxProblems bounds the error list: past this the file is probably not a
// profile at all and more lines help nobody.
const maxProblems = 50

// Defaults for the read section.
const (
	DefaultMaxGap       = 8
	DefaultMaxRegisters = 125 // the Modbus limit for functions 3 and 4
	maxBitsPerRead      = 2000
)

var fieldNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Load reads and parses the profile file at path.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return Parse(path, data)
}

// Resolve returns the built-in profile called nameOrPath, or else loads the
// file at nameOrPath. A value with a path separator or a .yaml/.yml suffix
// is always a file.
func Resolve(nameOrPath string) (*Profile, error) {
	looksLikePath := strings.ContainsRune(nameOrPath, filepath.Separator) || strings.ContainsRune(nameOrPath, '/') ||
		strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml")
	if !looksLikePath {
		if p, ok := Builtin(nameOrPath); ok {
			return p, nil
		}
		return nil, fmt.Errorf("profile %q: no built-in profile has that name (built-in: %s) and it does not look like a file path (a profile file ends in .yaml)", nameOrPath, strings.Join(BuiltinNames(), ", "))
	}
	return Load(nameOrPath)
}

// Parse parses and validates a profile. file names the source in error
// messages (a path, or "builtin:<name>").
func Parse(file string, data []byte) (*Profile, error) {
	ps := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := strictyaml.Locate(data, err)
		return nil, &ParseError{Problems: []Problem{{File: file, Line: line, Msg: "not valid YAML: " + msg}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &ParseError{Problems: []Problem{{File: file, Line: 1, Msg: "the file is empty; a profile needs at least fields, roles and cycle_end"}}}
	}
	p := ps.profile(doc.Content[0])
	if len(ps.problems) > 0 {
		sort.SliceStable(ps.problems, func(i, j int) bool { return ps.problems[i].Line < ps.problems[j].Line })
		return nil, &ParseError{Problems: ps.problems}
	}
	p.Origin = file
	return p, nil
}

type parser struct {
	file     string
	problems []Problem
}

func (ps *parser) fail(n *yaml.Node, path, format string, args ...any) {
	if len(ps.problems) >= maxProblems {
		return
	}
	line := 1
	if n != nil {
		line = n.Line
	}
	ps.problems = append(ps.problems, Problem{File: ps.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// entry is one key of a mapping with its value node.
type entry struct {
	key   string
	keyN  *yaml.Node
	value *yaml.Node
}

// mapping returns the entries of a mapping node, reporting duplicate keys
// and (when allowed is non-nil) keys that are not in allowed.
func (ps *parser) mapping(n *yaml.Node, path string, allowed []string) ([]entry, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		ps.fail(n, path, "must be a mapping (key: value), not %s", describe(n))
		return nil, false
	}
	seen := map[string]bool{}
	var out []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		key := k.Value
		if seen[key] {
			ps.fail(k, join(path, key), "is given twice")
			continue
		}
		seen[key] = true
		if allowed != nil && !contains(allowed, key) {
			ps.fail(k, join(path, key), "unknown key (allowed here: %s)", strings.Join(allowed, ", "))
			continue
		}
		out = append(out, entry{key: key, keyN: k, value: v})
	}
	return out, true
}

// codeMap calls fn for every "code: text" pair of the mapping under key
// (programs, results, alarm_texts), with the value's node and path for
// errors; bad codes and non-text values are reported and skipped.
func (ps *parser) codeMap(byKey map[string]entry, key string, fn func(code int, n *yaml.Node, path, value string)) {
	e, ok := byKey[key]
	if !ok {
		return
	}
	es, _ := ps.mapping(e.value, key, nil)
	for _, x := range es {
		code, ok := ps.codeKey(x, key)
		if !ok {
			continue
		}
		if s, ok := ps.str(x.value, join(key, x.key)); ok {
			fn(code, x.value, join(key, x.key), s)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// deref follows YAML aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func (ps *parser) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		ps.fail(n, path, "must be a text value, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (ps *parser) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		ps.fail(n, path, "must be a whole number, not %s", describe(n))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil {
		ps.fail(n, path, "%q is not a whole number", n.Value)
		return 0, false
	}
	if v < lo || v > hi {
		ps.fail(n, path, "%d is out of range %d..%d", v, lo, hi)
		return 0, false
	}
	return v, true
}

func (ps *parser) number(n *yaml.Node, path string) (float64, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		ps.fail(n, path, "must be a number, not %s", describe(n))
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		ps.fail(n, path, "%q is not a finite number", n.Value)
		return 0, false
	}
	return v, true
}

// codeKey parses the key of an enum map (a device code).
func (ps *parser) codeKey(e entry, path string) (int, bool) {
	v, err := strconv.ParseInt(e.key, 0, 64)
	if err != nil || v < math.MinInt32 || v > math.MaxUint32 {
		ps.fail(e.keyN, join(path, e.key), "the key must be the device's numeric code, not %q", e.key)
		return 0, false
	}
	return int(v), true
}

var topKeys = []string{"name", "description", "vendor", "model", "read", "fields", "roles", "phases", "idle_phases", "program_phases", "programs", "results", "alarms", "alarm_texts", "cycle_end", "plausible", "max_sample_gap", "criteria"}

func (ps *parser) profile(root *yaml.Node) *Profile {
	p := &Profile{
		RoleField:  map[Role]string{},
		Phases:     map[int]protocol.PhaseName{},
		Programs:   map[int]string{},
		Results:    map[int]protocol.Result{},
		AlarmTexts: map[int]string{},
		fieldIndex: map[string]int{},
		IdlePhases: []protocol.PhaseName{protocol.PhaseIdle, protocol.PhaseComplete},
		Plausible:  map[Role]Range{},
		Criteria:   map[string]verify.Params{},
	}
	for _, r := range allRoles {
		if r.IsMeasured() {
			p.Plausible[r] = DefaultPlausible(r)
		}
	}
	entries, ok := ps.mapping(root, "", topKeys)
	if !ok {
		return p
	}
	byKey := map[string]entry{}
	for _, e := range entries {
		byKey[e.key] = e
	}
	maxGap, maxRegs := int64(DefaultMaxGap), int64(DefaultMaxRegisters)
	if e, ok := byKey["name"]; ok {
		if s, ok := ps.str(e.value, "name"); ok {
			if s == "" || strings.ContainsAny(s, " /\\") {
				ps.fail(e.value, "name", "%q must be one word without spaces or slashes", s)
			}
			p.Name = s
		}
	} else {
		base := filepath.Base(ps.file)
		p.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	for _, k := range []string{"description", "vendor", "model"} {
		if e, ok := byKey[k]; ok {
			s, _ := ps.str(e.value, k)
			switch k {
			case "description":
				p.Description = s
			case "vendor":
				p.Vendor = s
			case "model":
				p.Model = s
			}
		}
	}
	if e, ok := byKey["read"]; ok {
		rs, _ := ps.mapping(e.value, "read", []string{"max_gap", "max_registers"})
		for _, r := range rs {
			switch r.key {
			case "max_gap":
				if v, ok := ps.integer(r.value, "read.max_gap", 0, 120); ok {
					maxGap = v
				}
			case "max_registers":
				if v, ok := ps.integer(r.value, "read.max_registers", 4, 125); ok {
					maxRegs = v
				}
			}
		}
	}
	if e, ok := byKey["fields"]; ok {
		ps.fields(p, e.value)
	} else {
		ps.fail(root, "fields", "is missing: a profile must declare the registers it reads")
	}
	if e, ok := byKey["roles"]; ok {
		ps.roles(p, e.value)
	} else {
		ps.fail(root, "roles", "is missing: a profile must say which field is the chamber temperature, pressure and cycle counter")
	}
	if e, ok := byKey["phases"]; ok {
		ps.phaseMap(p, e.value)
	}
	if e, ok := byKey["idle_phases"]; ok {
		if list, ok := ps.phaseList(e.value, "idle_phases"); ok {
			p.IdlePhases = list
		}
	}
	if e, ok := byKey["program_phases"]; ok {
		ps.programPhases(p, e)
	}
	if e, ok := byKey["plausible"]; ok {
		ps.plausible(p, e.value)
	}
	if e, ok := byKey["max_sample_gap"]; ok {
		ps.maxSampleGap(p, e.value)
	}
	ps.codeMap(byKey, "programs", func(code int, n *yaml.Node, path, name string) {
		if name == "" {
			ps.fail(n, path, "the program name is empty")
		}
		p.Programs[code] = name
	})
	ps.codeMap(byKey, "results", func(code int, n *yaml.Node, path, word string) {
		r := protocol.Result(word)
		if !r.Valid() {
			ps.fail(n, path, "%q is not one of passed, failed, aborted, unknown", word)
			return
		}
		p.Results[code] = r
	})
	ps.codeMap(byKey, "alarm_texts", func(code int, _ *yaml.Node, _, text string) {
		p.AlarmTexts[code] = text
	})
	if e, ok := byKey["alarms"]; ok {
		ps.alarms(p, e.value)
	}
	if e, ok := byKey["criteria"]; ok {
		ps.criteria(p, e)
	}
	if e, ok := byKey["cycle_end"]; ok {
		ps.cycleEnd(p, e.value)
	} else if p.HasRole(RoleLastCycle) {
		p.CycleEnd = CycleEnd{On: EndOnLastCycleChange}
	} else {
		ps.fail(root, "cycle_end", "is missing: say how the end of a cycle is recognised (on: last_cycle_change, counter_change, phase_enters or next_cycle_starts)")
	}
	rolesNode := root
	if e, ok := byKey["roles"]; ok {
		rolesNode = e.keyN
	}
	ps.requireRoles(p, rolesNode)
	if len(ps.problems) == 0 {
		p.Blocks = planBlocks(p.Fields, int(maxGap), int(maxRegs))
	}
	return p
}

var fieldKeys = []string{"function", "address", "type", "order", "bit", "scale", "offset", "unit"}

func (ps *parser) fields(p *Profile, n *yaml.Node) {
	es, ok := ps.mapping(n, "fields", nil)
	if !ok {
		return
	}
	if len(es) == 0 {
		ps.fail(n, "fields", "is empty")
	}
	for _, e := range es {
		path := join("fields", e.key)
		if !fieldNamePattern.MatchString(e.key) {
			ps.fail(e.keyN, path, "a field name must be letters, digits and underscores, starting with a letter")
			continue
		}
		f := Field{Name: e.key, Function: 3, Type: TypeU16, Order: OrderABCD, Scale: 1, Bit: -1, Line: e.keyN.Line}
		kv, ok := ps.mapping(e.value, path, fieldKeys)
		if !ok {
			continue
		}
		var haveAddress, typeGiven bool
		var bitNode *yaml.Node
		bad := false
		for _, x := range kv {
			xp := join(path, x.key)
			switch x.key {
			case "function":
				v, ok := ps.integer(x.value, xp, math.MinInt32, math.MaxInt32)
				if !ok {
					bad = true
					continue
				}
				if v < 1 || v > 4 {
					ps.fail(x.value, xp, "%d is not a read function (1 coils, 2 discrete inputs, 3 holding registers, 4 input registers): profiles are read-only", v)
					bad = true
					continue
				}
				f.Function = byte(v)
			case "address":
				v, ok := ps.integer(x.value, xp, 0, 65535)
				if !ok {
					bad = true
					continue
				}
				f.Address = uint16(v)
				haveAddress = true
			case "type":
				s, ok := ps.str(x.value, xp)
				if !ok {
					bad = true
					continue
				}
				t := Type(s)
				if !containsType(t) {
					ps.fail(x.value, xp, "%q is not one of %s", s, joinTypes())
					bad = true
					continue
				}
				f.Type = t
				typeGiven = true
			case "order":
				s, ok := ps.str(x.value, xp)
				if !ok {
					bad = true
					continue
				}
				o := Order(strings.ToUpper(s))
				if !containsOrder(o) {
					ps.fail(x.value, xp, "%q is not one of ABCD, CDAB, BADC, DCBA", s)
					bad = true
					continue
				}
				f.Order = o
			case "bit":
				bitNode = x.value
				v, ok := ps.integer(x.value, xp, 0, 15)
				if !ok {
					bad = true
					continue
				}
				f.Bit = int(v)
			case "scale":
				v, ok := ps.number(x.value, xp)
				if !ok {
					bad = true
					continue
				}
				if v == 0 {
					ps.fail(x.value, xp, "must not be 0: every value would read as the offset")
					bad = true
					continue
				}
				f.Scale = v
			case "offset":
				v, ok := ps.number(x.value, xp)
				if !ok {
					bad = true
					continue
				}
				f.Offset = v
			case "unit":
				f.Unit, _ = ps.str(x.value, xp)
			}
		}
		if !haveAddress {
			ps.fail(e.keyN, join(path, "address"), "is missing")
			bad = true
		}
		if bad {
			continue
		}
		isBitFunction := f.Function == 1 || f.Function == 2
		switch {
		case isBitFunction && !typeGiven:
			f.Type = TypeBit
		case isBitFunction && f.Type != TypeBit:
			ps.fail(e.keyN, join(path, "type"), "function %d reads single bits, so the type must be bit, not %s", f.Function, f.Type)
			continue
		}
		switch {
		case f.Type == TypeBit && !isBitFunction && bitNode == nil:
			ps.fail(e.keyN, join(path, "bit"), "is missing: a bit field on function %d must say which bit of the register (0-15)", f.Function)
			continue
		case bitNode != nil && (f.Type != TypeBit || isBitFunction):
			ps.fail(bitNode, join(path, "bit"), "only a field of type bit on function 3 or 4 takes bit (for alarm bits of a wider field use alarms:)")
			continue
		}
		if int(f.Address)+f.Span()-1 > 65535 {
			ps.fail(e.keyN, join(path, "address"), "%d + %d registers runs past 65535", f.Address, f.Span())
			continue
		}
		p.fieldIndex[f.Name] = len(p.Fields)
		p.Fields = append(p.Fields, f)
	}
}

func containsType(t Type) bool {
	for _, x := range allTypes {
		if x == t {
			return true
		}
	}
	return false
}

func joinTypes() string {
	s := make([]string, len(allTypes))
	for i, t := range allTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func containsOrder(o Order) bool {
	for _, x := range allOrders {
		if x == o {
			return true
		}
	}
	return false
}

func isIntegerType(t Type) bool {
	return t == TypeU16 || t == TypeI16 || t == TypeU32 || t == TypeI32
}

func (ps *parser) roles(p *Profile, n *yaml.Node) {
	allowed := make([]string, len(allRoles))
	for i, r := range allRoles {
		allowed[i] = string(r)
	}
	es, ok := ps.mapping(n, "roles", allowed)
	if !ok {
		return
	}
	channelOf := map[string]Role{} // field -> channel role, so no field is two channels
	for _, e := range es {
		path := join("roles", e.key)
		role := Role(e.key)
		if role == RoleLoadTemperature && e.value.Kind == yaml.SequenceNode {
			// Several load probes: one channel each.
			if len(e.value.Content) == 0 {
				ps.fail(e.value, path, "is empty: name one field, or a list of fields")
			}
			for i, item := range e.value.Content {
				if f := ps.roleField(p, role, item, fmt.Sprintf("%s[%d]", path, i)); f != nil {
					ps.addChannel(p, channelOf, role, f.Name, item, fmt.Sprintf("%s[%d]", path, i))
				}
			}
			continue
		}
		if e.value.Kind == yaml.SequenceNode {
			ps.fail(e.value, path, "takes one field name; only load_temperature takes a list")
			continue
		}
		f := ps.roleField(p, role, e.value, path)
		if f == nil {
			continue
		}
		if isChannelRole(role) {
			ps.addChannel(p, channelOf, role, f.Name, e.value, path)
			continue
		}
		p.RoleField[role] = f.Name
	}
}

// roleField finds the field a role names and checks that its type suits
// the role; nil when it does not (the problem is reported).
func (ps *parser) roleField(p *Profile, role Role, n *yaml.Node, path string) *Field {
	name, ok := ps.str(n, path)
	if !ok {
		return nil
	}
	f, ok := p.Field(name)
	if !ok {
		if _, declared := fieldDeclaredWithError(ps, name); !declared {
			ps.fail(n, path, "no field is called %q", name)
		}
		return nil
	}
	switch {
	case role.IsMeasured() || isFigureRole(role):
		if f.Type == TypeBit {
			ps.fail(n, path, "field %q is a bit; a measurement needs a numeric type", name)
			return nil
		}
	default:
		if !isIntegerType(f.Type) {
			ps.fail(n, path, "field %q has type %s; a code or counter needs an integer type (u16, i16, u32, i32)", name, f.Type)
			return nil
		}
	}
	return f
}

func (ps *parser) addChannel(p *Profile, channelOf map[string]Role, role Role, field string, n *yaml.Node, path string) {
	if other, dup := channelOf[field]; dup {
		ps.fail(n, path, "field %q is already the %s channel; each channel needs a field of its own", field, other)
		return
	}
	channelOf[field] = role
	p.Channels = append(p.Channels, Channel{Field: field, Role: role})
}

// programPhases reads program_phases: {program code: {phase code: phase}}.
func (ps *parser) programPhases(p *Profile, e entry) {
	es, _ := ps.mapping(e.value, "program_phases", nil)
	if len(es) > 0 && !p.HasRole(RoleProgram) {
		if _, declared := ps.roleProblem(RoleProgram); !declared {
			ps.fail(e.keyN, "program_phases", "needs roles.program: the phases are mapped per program code")
		}
	}
	p.ProgramPhases = map[int]map[int]protocol.PhaseName{}
	for _, x := range es {
		prog, ok := ps.codeKey(x, "program_phases")
		if !ok {
			continue
		}
		path := join("program_phases", x.key)
		codes, _ := ps.mapping(x.value, path, nil)
		m := map[int]protocol.PhaseName{}
		for _, c := range codes {
			code, ok := ps.codeKey(c, path)
			if !ok {
				continue
			}
			if ph, ok := ps.phaseName(c.value, join(path, c.key)); ok {
				m[code] = ph
			}
		}
		p.ProgramPhases[prog] = m
	}
}

// roleProblem reports whether a problem was already reported about role,
// so a key that depends on it does not add a second, misleading one.
func (ps *parser) roleProblem(r Role) (Problem, bool) {
	for _, pr := range ps.problems {
		if pr.Path == "roles."+string(r) {
			return pr, true
		}
	}
	return Problem{}, false
}

// plausible reads plausible: {measured role: {min, max}}.
func (ps *parser) plausible(p *Profile, n *yaml.Node) {
	var allowed []string
	for _, r := range allRoles {
		if r.IsMeasured() {
			allowed = append(allowed, string(r))
		}
	}
	es, _ := ps.mapping(n, "plausible", allowed)
	for _, e := range es {
		path := join("plausible", e.key)
		role := Role(e.key)
		rg := DefaultPlausible(role)
		kv, ok := ps.mapping(e.value, path, []string{"min", "max"})
		if !ok {
			continue
		}
		good := true
		for _, x := range kv {
			v, ok := ps.number(x.value, join(path, x.key))
			if !ok {
				good = false
				continue
			}
			if x.key == "min" {
				rg.Min = v
			} else {
				rg.Max = v
			}
		}
		if !good {
			continue
		}
		if rg.Min >= rg.Max {
			ps.fail(e.value, path, "min %v must be below max %v", rg.Min, rg.Max)
			continue
		}
		p.Plausible[role] = rg
	}
}

// maxSampleGap reads max_sample_gap: a Go duration such as 5s or 1m30s.
func (ps *parser) maxSampleGap(p *Profile, n *yaml.Node) {
	s, ok := ps.str(n, "max_sample_gap")
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		ps.fail(n, "max_sample_gap", "%q is not a duration (write e.g. 3s, 500ms or 1m30s)", s)
		return
	}
	if d < 10*time.Millisecond || d > time.Hour {
		ps.fail(n, "max_sample_gap", "%s is out of range 10ms..1h", d)
		return
	}
	p.MaxSampleGap = d
}

// fieldDeclaredWithError reports whether a field of that name was declared
// but rejected, so a role naming it does not produce a second, misleading
// "no field" error.
func fieldDeclaredWithError(ps *parser, name string) (Problem, bool) {
	prefix := "fields." + name
	for _, pr := range ps.problems {
		if pr.Path == prefix || strings.HasPrefix(pr.Path, prefix+".") {
			return pr, true
		}
	}
	return Problem{}, false
}

func (ps *parser) phaseName(n *yaml.Node, path string) (protocol.PhaseName, bool) {
	s, ok := ps.str(n, path)
	if !ok {
		return "", false
	}
	ph := protocol.PhaseName(s)
	if !ph.Valid() {
		names := make([]string, len(protocol.PhaseNames()))
		for i, x := range protocol.PhaseNames() {
			names[i] = string(x)
		}
		ps.fail(n, path, "%q is not a sterigate phase (one of %s)", s, strings.Join(names, ", "))
		return "", false
	}
	return ph, true
}

func (ps *parser) phaseMap(p *Profile, n *yaml.Node) {
	es, _ := ps.mapping(n, "phases", nil)
	for _, e := range es {
		code, ok := ps.codeKey(e, "phases")
		if !ok {
			continue
		}
		if ph, ok := ps.phaseName(e.value, join("phases", e.key)); ok {
			p.Phases[code] = ph
		}
	}
}

func (ps *parser) phaseList(n *yaml.Node, path string) ([]protocol.PhaseName, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		ps.fail(n, path, "must be a list of phase names, not %s", describe(n))
		return nil, false
	}
	var out []protocol.PhaseName
	ok := true
	for i, item := range n.Content {
		ph, good := ps.phaseName(item, fmt.Sprintf("%s[%d]", path, i))
		if !good {
			ok = false
			continue
		}
		out = append(out, ph)
	}
	return out, ok
}

func (ps *parser) alarms(p *Profile, n *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		ps.fail(n, "alarms", "must be a list of {field, bit, code, text}, not %s", describe(n))
		return
	}
	for i, item := range n.Content {
		path := fmt.Sprintf("alarms[%d]", i)
		es, ok := ps.mapping(item, path, []string{"field", "bit", "code", "text"})
		if !ok {
			continue
		}
		a := AlarmBit{Bit: -1}
		var fieldNode, bitNode *yaml.Node
		haveCode := false
		for _, e := range es {
			xp := join(path, e.key)
			switch e.key {
			case "field":
				fieldNode = e.value
				a.Field, _ = ps.str(e.value, xp)
			case "bit":
				bitNode = e.value
				if v, ok := ps.integer(e.value, xp, 0, 63); ok {
					a.Bit = int(v)
				}
			case "code":
				if v, ok := ps.integer(e.value, xp, math.MinInt32, math.MaxInt32); ok {
					a.Code = int(v)
					haveCode = true
				}
			case "text":
				a.Text, _ = ps.str(e.value, xp)
			}
		}
		if fieldNode == nil {
			ps.fail(item, join(path, "field"), "is missing")
			continue
		}
		if !haveCode {
			ps.fail(item, join(path, "code"), "is missing: every alarm needs the code it is recorded under")
			continue
		}
		f, ok := p.Field(a.Field)
		if !ok {
			if _, declared := fieldDeclaredWithError(ps, a.Field); !declared && a.Field != "" {
				ps.fail(fieldNode, join(path, "field"), "no field is called %q", a.Field)
			}
			continue
		}
		switch {
		case f.Type == TypeBit:
			if bitNode != nil {
				ps.fail(bitNode, join(path, "bit"), "field %q is already a single bit; leave bit out", a.Field)
				continue
			}
			a.Bit = 0
		case isIntegerType(f.Type):
			width := 16 * f.Type.Registers()
			if bitNode == nil {
				ps.fail(item, join(path, "bit"), "is missing: say which bit of %q (0-%d) signals the alarm", a.Field, width-1)
				continue
			}
			if a.Bit < 0 {
				continue
			}
			if a.Bit >= width {
				ps.fail(bitNode, join(path, "bit"), "%d is past the %d bits of field %q", a.Bit, width, a.Field)
				continue
			}
		default:
			ps.fail(fieldNode, join(path, "field"), "field %q has type %s; alarm bits need an integer or bit field", a.Field, f.Type)
			continue
		}
		p.Alarms = append(p.Alarms, a)
	}
}

func (ps *parser) cycleEnd(p *Profile, n *yaml.Node) {
	es, ok := ps.mapping(n, "cycle_end", []string{"on", "phases"})
	if !ok {
		return
	}
	var onNode, phasesNode *yaml.Node
	for _, e := range es {
		switch e.key {
		case "on":
			onNode = e.value
		case "phases":
			phasesNode = e.value
		}
	}
	if onNode == nil {
		ps.fail(n, "cycle_end.on", "is missing (last_cycle_change, counter_change, phase_enters or next_cycle_starts)")
		return
	}
	s, ok := ps.str(onNode, "cycle_end.on")
	if !ok {
		return
	}
	p.CycleEnd.On = CycleEndOn(s)
	switch p.CycleEnd.On {
	case EndOnLastCycleChange:
		if !p.HasRole(RoleLastCycle) {
			ps.fail(onNode, "cycle_end.on", "last_cycle_change needs roles.last_cycle (the latched counter of the last finished cycle)")
		}
	case EndOnCounterChange:
	case EndOnNextCycleStarts:
		if !p.HasRole(RolePhase) {
			ps.fail(onNode, "cycle_end.on", "next_cycle_starts needs roles.phase (a cycle's samples stop when the phase returns to idle_phases)")
		}
	case EndOnPhaseEnters:
		if !p.HasRole(RolePhase) {
			ps.fail(onNode, "cycle_end.on", "phase_enters needs roles.phase")
		}
		if phasesNode == nil {
			ps.fail(n, "cycle_end.phases", "is missing: phase_enters needs the list of phases that end a cycle, e.g. [complete, fault]")
			return
		}
		if list, ok := ps.phaseList(phasesNode, "cycle_end.phases"); ok {
			if len(list) == 0 {
				ps.fail(phasesNode, "cycle_end.phases", "is empty")
			}
			p.CycleEnd.Phases = list
		}
		return
	default:
		ps.fail(onNode, "cycle_end.on", "%q is not one of last_cycle_change, counter_change, phase_enters, next_cycle_starts", s)
		return
	}
	if phasesNode != nil {
		ps.fail(phasesNode, "cycle_end.phases", "only applies to on: phase_enters")
	}
}

func (ps *parser) requireRoles(p *Profile, at *yaml.Node) {
	if len(ps.problems) > 0 {
		return // a missing role is most likely a consequence of an earlier problem
	}
	for _, r := range []Role{RoleChamberTemperature, RoleChamberPressure, RoleCycleCounter} {
		if !p.HasRole(r) {
			ps.fail(at, join("roles", string(r)), "is missing: every profile must say which field it is")
		}
	}
}

// planBlocks merges the fields of each function into as few read requests
// as the limits allow: a gap of up to maxGap unused registers between two
// fields is read rather than split into two requests, because one request
// costs far more than a few extra words on any Modbus link.
func planBlocks(fields []Field, maxGap, maxRegs int) []Block {
	byFunction := map[byte][]Field{}
	for _, f := range fields {
		byFunction[f.Function] = append(byFunction[f.Function], f)
	}
	functions := make([]int, 0, len(byFunction))
	for fn := range byFunction {
		functions = append(functions, int(fn))
	}
	sort.Ints(functions)
	var blocks []Block
	for _, fn := range functions {
		fs := byFunction[byte(fn)]
		sort.Slice(fs, func(i, j int) bool { return fs[i].Address < fs[j].Address })
		limit := maxRegs
		if fn == 1 || fn == 2 {
			limit = maxBitsPerRead
		}
		start, end := -1, -1 // end is exclusive
		for _, f := range fs {
			a, z := int(f.Address), int(f.Address)+f.Span()
			if start >= 0 && a-end <= maxGap && max(z, end)-start <= limit {
				end = max(end, z)
				continue
			}
			if start >= 0 {
				blocks = append(blocks, Block{Function: byte(fn), Start: uint16(start), Count: uint16(end - start)})
			}
			start, end = a, z
		}
		if start >= 0 {
			blocks = append(blocks, Block{Function: byte(fn), Start: uint16(start), Count: uint16(end - start)})
		}
	}
	return blocks
}

// criteria reads criteria: {program name or code: {kind, set_point_c, …}},
// the parametric criteria of each program (docs/verification.md). A key
// names a program of programs: by its name, or by its code. Each set is
// built and validated here, so a mistake is reported on its line.
func (ps *parser) criteria(p *Profile, e entry) {
	es, _ := ps.mapping(e.value, "criteria", nil)
	byName := map[string]string{} // program name -> the key that gave it criteria
	for _, x := range es {
		path := join("criteria", x.key)
		name, ok := ps.criteriaProgram(p, x, path)
		if !ok {
			continue
		}
		if other, dup := byName[name]; dup {
			ps.fail(x.keyN, path, "program %q already has criteria (criteria.%s)", name, other)
			continue
		}
		byName[name] = x.key
		params, nodes, ok := ps.criteriaParams(x.value, path)
		if !ok {
			continue
		}
		if _, err := params.Criteria(verify.SourceProfile); err != nil {
			for _, pe := range verify.ParamErrors(err) {
				at := x.keyN
				if n, ok := nodes[pe.Key]; ok {
					at = n
				}
				ps.fail(at, join(path, pe.Key), "%s", pe.Msg)
			}
			continue
		}
		p.Criteria[name] = params
	}
}

// criteriaProgram resolves a criteria key to the program name it means: a
// name of programs, or a code programs maps.
func (ps *parser) criteriaProgram(p *Profile, x entry, path string) (string, bool) {
	for _, name := range p.Programs {
		if name == x.key {
			return name, true
		}
	}
	if code, err := strconv.ParseInt(x.key, 0, 64); err == nil {
		if name, ok := p.Programs[int(code)]; ok && code >= math.MinInt32 && code <= math.MaxUint32 {
			return name, true
		}
		ps.fail(x.keyN, path, "program code %s is not in programs: map it there first", x.key)
		return "", false
	}
	known := make([]string, 0, len(p.Programs))
	for _, name := range p.Programs {
		known = append(known, name)
	}
	sort.Strings(known)
	if len(known) == 0 {
		ps.fail(x.keyN, path, "no program is called %q: programs maps no program", x.key)
	} else {
		ps.fail(x.keyN, path, "no program is called %q (programs: %s)", x.key, strings.Join(known, ", "))
	}
	return "", false
}

// criteriaParams reads one criteria set: kind and numeric keys, with the
// node of each key for error lines.
func (ps *parser) criteriaParams(n *yaml.Node, path string) (verify.Params, map[string]*yaml.Node, bool) {
	allowed := append([]string{"kind"}, verify.ParamKeys()...)
	kv, ok := ps.mapping(n, path, allowed)
	if !ok {
		return verify.Params{}, nil, false
	}
	params := verify.Params{Values: map[string]float64{}}
	nodes := map[string]*yaml.Node{}
	good := true
	for _, x := range kv {
		nodes[x.key] = x.value
		if x.key == "kind" {
			s, ok := ps.str(x.value, join(path, x.key))
			good = good && ok
			params.Kind = s
			continue
		}
		v, ok := ps.number(x.value, join(path, x.key))
		good = good && ok
		params.Values[x.key] = v
	}
	return params, nodes, good
}
