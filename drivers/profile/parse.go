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
	return strictyaml.Problem{Line: p.Line, Path: p.Path, Msg: p.Msg}.In(p.File)
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
	root, syntax := strictyaml.Parse(data)
	if syntax != nil {
		return nil, &ParseError{Problems: []Problem{{File: file, Line: max(syntax.Line, 1), Msg: syntax.Msg}}}
	}
	if root == nil {
		return nil, &ParseError{Problems: []Problem{{File: file, Line: 1, Msg: "the file is empty; a profile needs at least fields, roles and cycle_end"}}}
	}
	ps := &parser{Walker: &strictyaml.Walker{Max: maxProblems}, file: file}
	p := ps.profile(root)
	if len(ps.Problems) > 0 {
		e := &ParseError{}
		for _, pr := range ps.InFileOrder() {
			e.Problems = append(e.Problems, Problem{File: file, Line: max(pr.Line, 1), Path: pr.Path, Msg: pr.Msg})
		}
		return nil, e
	}
	p.Origin = file
	return p, nil
}

// parser reads a profile's node tree; every mistake becomes a Problem
// of its Walker, turned into a ParseError by Parse.
type parser struct {
	*strictyaml.Walker
	file string
}

// codeMap calls fn for every "code: text" pair of the mapping under key
// (programs, results, alarm_texts), with the value's node and path for
// errors; bad codes and non-text values are reported and skipped.
func (ps *parser) codeMap(byKey map[string]strictyaml.Entry, key string, fn func(code int, n *yaml.Node, path, value string)) {
	e, ok := byKey[key]
	if !ok {
		return
	}
	es, _ := ps.Entries(e.Value, key, nil)
	for _, x := range es {
		code, ok := ps.codeKey(x, key)
		if !ok {
			continue
		}
		if s, ok := ps.Text(x.Value, strictyaml.Join(key, x.Key)); ok {
			fn(code, x.Value, strictyaml.Join(key, x.Key), s)
		}
	}
}

// codeKey parses the key of an enum map (a device code).
func (ps *parser) codeKey(e strictyaml.Entry, path string) (int, bool) {
	v, err := strconv.ParseInt(e.Key, 0, 64)
	if err != nil || v < math.MinInt32 || v > math.MaxUint32 {
		ps.Failf(e.KeyNode, strictyaml.Join(path, e.Key), "the key must be the device's numeric code, not %q", e.Key)
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
	entries, ok := ps.Entries(root, "", topKeys)
	if !ok {
		return p
	}
	byKey := map[string]strictyaml.Entry{}
	for _, e := range entries {
		byKey[e.Key] = e
	}
	maxGap, maxRegs := int64(DefaultMaxGap), int64(DefaultMaxRegisters)
	if e, ok := byKey["name"]; ok {
		if s, ok := ps.Text(e.Value, "name"); ok {
			if s == "" || strings.ContainsAny(s, " /\\") {
				ps.Failf(e.Value, "name", "%q must be one word without spaces or slashes", s)
			}
			p.Name = s
		}
	} else {
		base := filepath.Base(ps.file)
		p.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	for _, k := range []string{"description", "vendor", "model"} {
		if e, ok := byKey[k]; ok {
			s, _ := ps.Text(e.Value, k)
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
		rs, _ := ps.Entries(e.Value, "read", []string{"max_gap", "max_registers"})
		for _, r := range rs {
			switch r.Key {
			case "max_gap":
				if v, ok := ps.Int(r.Value, "read.max_gap", 0, 120); ok {
					maxGap = v
				}
			case "max_registers":
				if v, ok := ps.Int(r.Value, "read.max_registers", 4, 125); ok {
					maxRegs = v
				}
			}
		}
	}
	if e, ok := byKey["fields"]; ok {
		ps.fields(p, e.Value)
	} else {
		ps.Failf(root, "fields", "is missing: a profile must declare the registers it reads")
	}
	if e, ok := byKey["roles"]; ok {
		ps.roles(p, e.Value)
	} else {
		ps.Failf(root, "roles", "is missing: a profile must say which field is the chamber temperature, pressure and cycle counter")
	}
	if e, ok := byKey["phases"]; ok {
		ps.phaseMap(p, e.Value)
	}
	if e, ok := byKey["idle_phases"]; ok {
		if list, ok := ps.phaseList(e.Value, "idle_phases"); ok {
			p.IdlePhases = list
		}
	}
	if e, ok := byKey["program_phases"]; ok {
		ps.programPhases(p, e)
	}
	if e, ok := byKey["plausible"]; ok {
		ps.plausible(p, e.Value)
	}
	if e, ok := byKey["max_sample_gap"]; ok {
		ps.maxSampleGap(p, e.Value)
	}
	ps.codeMap(byKey, "programs", func(code int, n *yaml.Node, path, name string) {
		if name == "" {
			ps.Failf(n, path, "the program name is empty")
		}
		p.Programs[code] = name
	})
	ps.codeMap(byKey, "results", func(code int, n *yaml.Node, path, word string) {
		r := protocol.Result(word)
		if !r.Valid() {
			ps.Failf(n, path, "%q is not one of passed, failed, aborted, unknown", word)
			return
		}
		p.Results[code] = r
	})
	ps.codeMap(byKey, "alarm_texts", func(code int, _ *yaml.Node, _, text string) {
		p.AlarmTexts[code] = text
	})
	if e, ok := byKey["alarms"]; ok {
		ps.alarms(p, e.Value)
	}
	if e, ok := byKey["criteria"]; ok {
		ps.criteria(p, e)
	}
	if e, ok := byKey["cycle_end"]; ok {
		ps.cycleEnd(p, e.Value)
	} else if p.HasRole(RoleLastCycle) {
		p.CycleEnd = CycleEnd{On: EndOnLastCycleChange}
	} else {
		ps.Failf(root, "cycle_end", "is missing: say how the end of a cycle is recognised (on: last_cycle_change, counter_change, phase_enters or next_cycle_starts)")
	}
	rolesNode := root
	if e, ok := byKey["roles"]; ok {
		rolesNode = e.KeyNode
	}
	ps.requireRoles(p, rolesNode)
	if len(ps.Problems) == 0 {
		p.Blocks = planBlocks(p.Fields, int(maxGap), int(maxRegs))
	}
	return p
}

var fieldKeys = []string{"function", "address", "type", "order", "bit", "scale", "offset", "unit"}

func (ps *parser) fields(p *Profile, n *yaml.Node) {
	es, ok := ps.Entries(n, "fields", nil)
	if !ok {
		return
	}
	if len(es) == 0 {
		ps.Failf(n, "fields", "is empty")
	}
	for _, e := range es {
		path := strictyaml.Join("fields", e.Key)
		if !fieldNamePattern.MatchString(e.Key) {
			ps.Failf(e.KeyNode, path, "a field name must be letters, digits and underscores, starting with a letter")
			continue
		}
		f := Field{Name: e.Key, Function: 3, Type: TypeU16, Order: OrderABCD, Scale: 1, Bit: -1, Line: e.KeyNode.Line}
		kv, ok := ps.Entries(e.Value, path, fieldKeys)
		if !ok {
			continue
		}
		var haveAddress, typeGiven bool
		var bitNode *yaml.Node
		bad := false
		for _, x := range kv {
			xp := strictyaml.Join(path, x.Key)
			switch x.Key {
			case "function":
				v, ok := ps.Int(x.Value, xp, math.MinInt32, math.MaxInt32)
				if !ok {
					bad = true
					continue
				}
				if v < 1 || v > 4 {
					ps.Failf(x.Value, xp, "%d is not a read function (1 coils, 2 discrete inputs, 3 holding registers, 4 input registers): profiles are read-only", v)
					bad = true
					continue
				}
				f.Function = byte(v)
			case "address":
				v, ok := ps.Int(x.Value, xp, 0, 65535)
				if !ok {
					bad = true
					continue
				}
				f.Address = uint16(v)
				haveAddress = true
			case "type":
				s, ok := ps.Text(x.Value, xp)
				if !ok {
					bad = true
					continue
				}
				t := Type(s)
				if !containsType(t) {
					ps.Failf(x.Value, xp, "%q is not one of %s", s, joinTypes())
					bad = true
					continue
				}
				f.Type = t
				typeGiven = true
			case "order":
				s, ok := ps.Text(x.Value, xp)
				if !ok {
					bad = true
					continue
				}
				o := Order(strings.ToUpper(s))
				if !containsOrder(o) {
					ps.Failf(x.Value, xp, "%q is not one of ABCD, CDAB, BADC, DCBA", s)
					bad = true
					continue
				}
				f.Order = o
			case "bit":
				bitNode = x.Value
				v, ok := ps.Int(x.Value, xp, 0, 15)
				if !ok {
					bad = true
					continue
				}
				f.Bit = int(v)
			case "scale":
				v, ok := ps.Number(x.Value, xp)
				if !ok {
					bad = true
					continue
				}
				if v == 0 {
					ps.Failf(x.Value, xp, "must not be 0: every value would read as the offset")
					bad = true
					continue
				}
				f.Scale = v
			case "offset":
				v, ok := ps.Number(x.Value, xp)
				if !ok {
					bad = true
					continue
				}
				f.Offset = v
			case "unit":
				f.Unit, _ = ps.Text(x.Value, xp)
			}
		}
		if !haveAddress {
			ps.Failf(e.KeyNode, strictyaml.Join(path, "address"), "is missing")
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
			ps.Failf(e.KeyNode, strictyaml.Join(path, "type"), "function %d reads single bits, so the type must be bit, not %s", f.Function, f.Type)
			continue
		}
		switch {
		case f.Type == TypeBit && !isBitFunction && bitNode == nil:
			ps.Failf(e.KeyNode, strictyaml.Join(path, "bit"), "is missing: a bit field on function %d must say which bit of the register (0-15)", f.Function)
			continue
		case bitNode != nil && (f.Type != TypeBit || isBitFunction):
			ps.Failf(bitNode, strictyaml.Join(path, "bit"), "only a field of type bit on function 3 or 4 takes bit (for alarm bits of a wider field use alarms:)")
			continue
		}
		if int(f.Address)+f.Span()-1 > 65535 {
			ps.Failf(e.KeyNode, strictyaml.Join(path, "address"), "%d + %d registers runs past 65535", f.Address, f.Span())
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
	es, ok := ps.Entries(n, "roles", allowed)
	if !ok {
		return
	}
	channelOf := map[string]Role{} // field -> channel role, so no field is two channels
	for _, e := range es {
		path := strictyaml.Join("roles", e.Key)
		role := Role(e.Key)
		if role == RoleLoadTemperature && e.Value.Kind == yaml.SequenceNode {
			// Several load probes: one channel each.
			if len(e.Value.Content) == 0 {
				ps.Failf(e.Value, path, "is empty: name one field, or a list of fields")
			}
			for i, item := range e.Value.Content {
				if f := ps.roleField(p, role, item, fmt.Sprintf("%s[%d]", path, i)); f != nil {
					ps.addChannel(p, channelOf, role, f.Name, item, fmt.Sprintf("%s[%d]", path, i))
				}
			}
			continue
		}
		if e.Value.Kind == yaml.SequenceNode {
			ps.Failf(e.Value, path, "takes one field name; only load_temperature takes a list")
			continue
		}
		f := ps.roleField(p, role, e.Value, path)
		if f == nil {
			continue
		}
		if isChannelRole(role) {
			ps.addChannel(p, channelOf, role, f.Name, e.Value, path)
			continue
		}
		p.RoleField[role] = f.Name
	}
}

// roleField finds the field a role names and checks that its type suits
// the role; nil when it does not (the problem is reported).
func (ps *parser) roleField(p *Profile, role Role, n *yaml.Node, path string) *Field {
	name, ok := ps.Text(n, path)
	if !ok {
		return nil
	}
	f, ok := p.Field(name)
	if !ok {
		if _, declared := fieldDeclaredWithError(ps, name); !declared {
			ps.Failf(n, path, "no field is called %q", name)
		}
		return nil
	}
	switch {
	case role.IsMeasured() || isFigureRole(role):
		if f.Type == TypeBit {
			ps.Failf(n, path, "field %q is a bit; a measurement needs a numeric type", name)
			return nil
		}
	default:
		if !isIntegerType(f.Type) {
			ps.Failf(n, path, "field %q has type %s; a code or counter needs an integer type (u16, i16, u32, i32)", name, f.Type)
			return nil
		}
	}
	return f
}

func (ps *parser) addChannel(p *Profile, channelOf map[string]Role, role Role, field string, n *yaml.Node, path string) {
	if other, dup := channelOf[field]; dup {
		ps.Failf(n, path, "field %q is already the %s channel; each channel needs a field of its own", field, other)
		return
	}
	channelOf[field] = role
	p.Channels = append(p.Channels, Channel{Field: field, Role: role})
}

// programPhases reads program_phases: {program code: {phase code: phase}}.
func (ps *parser) programPhases(p *Profile, e strictyaml.Entry) {
	es, _ := ps.Entries(e.Value, "program_phases", nil)
	if len(es) > 0 && !p.HasRole(RoleProgram) {
		if _, declared := ps.roleProblem(RoleProgram); !declared {
			ps.Failf(e.KeyNode, "program_phases", "needs roles.program: the phases are mapped per program code")
		}
	}
	p.ProgramPhases = map[int]map[int]protocol.PhaseName{}
	for _, x := range es {
		prog, ok := ps.codeKey(x, "program_phases")
		if !ok {
			continue
		}
		path := strictyaml.Join("program_phases", x.Key)
		codes, _ := ps.Entries(x.Value, path, nil)
		m := map[int]protocol.PhaseName{}
		for _, c := range codes {
			code, ok := ps.codeKey(c, path)
			if !ok {
				continue
			}
			if ph, ok := ps.phaseName(c.Value, strictyaml.Join(path, c.Key)); ok {
				m[code] = ph
			}
		}
		p.ProgramPhases[prog] = m
	}
}

// roleProblem reports whether a problem was already reported about role,
// so a key that depends on it does not add a second, misleading one.
func (ps *parser) roleProblem(r Role) (strictyaml.Problem, bool) {
	for _, pr := range ps.Problems {
		if pr.Path == "roles."+string(r) {
			return pr, true
		}
	}
	return strictyaml.Problem{}, false
}

// plausible reads plausible: {measured role: {min, max}}.
func (ps *parser) plausible(p *Profile, n *yaml.Node) {
	var allowed []string
	for _, r := range allRoles {
		if r.IsMeasured() {
			allowed = append(allowed, string(r))
		}
	}
	es, _ := ps.Entries(n, "plausible", allowed)
	for _, e := range es {
		path := strictyaml.Join("plausible", e.Key)
		role := Role(e.Key)
		rg := DefaultPlausible(role)
		kv, ok := ps.Entries(e.Value, path, []string{"min", "max"})
		if !ok {
			continue
		}
		good := true
		for _, x := range kv {
			v, ok := ps.Number(x.Value, strictyaml.Join(path, x.Key))
			if !ok {
				good = false
				continue
			}
			if x.Key == "min" {
				rg.Min = v
			} else {
				rg.Max = v
			}
		}
		if !good {
			continue
		}
		if rg.Min >= rg.Max {
			ps.Failf(e.Value, path, "min %v must be below max %v", rg.Min, rg.Max)
			continue
		}
		p.Plausible[role] = rg
	}
}

// maxSampleGap reads max_sample_gap: a duration such as 5s or 1m30s.
func (ps *parser) maxSampleGap(p *Profile, n *yaml.Node) {
	if d, ok := ps.Duration(n, "max_sample_gap", 10*time.Millisecond, time.Hour); ok {
		p.MaxSampleGap = d
	}
}

// fieldDeclaredWithError reports whether a field of that name was declared
// but rejected, so a role naming it does not produce a second, misleading
// "no field" error.
func fieldDeclaredWithError(ps *parser, name string) (strictyaml.Problem, bool) {
	prefix := "fields." + name
	for _, pr := range ps.Problems {
		if pr.Path == prefix || strings.HasPrefix(pr.Path, prefix+".") {
			return pr, true
		}
	}
	return strictyaml.Problem{}, false
}

func (ps *parser) phaseName(n *yaml.Node, path string) (protocol.PhaseName, bool) {
	s, ok := ps.Text(n, path)
	if !ok {
		return "", false
	}
	ph := protocol.PhaseName(s)
	if !ph.Valid() {
		names := make([]string, len(protocol.PhaseNames()))
		for i, x := range protocol.PhaseNames() {
			names[i] = string(x)
		}
		ps.Failf(n, path, "%q is not a sterigate phase (one of %s)", s, strings.Join(names, ", "))
		return "", false
	}
	return ph, true
}

func (ps *parser) phaseMap(p *Profile, n *yaml.Node) {
	es, _ := ps.Entries(n, "phases", nil)
	for _, e := range es {
		code, ok := ps.codeKey(e, "phases")
		if !ok {
			continue
		}
		if ph, ok := ps.phaseName(e.Value, strictyaml.Join("phases", e.Key)); ok {
			p.Phases[code] = ph
		}
	}
}

func (ps *parser) phaseList(n *yaml.Node, path string) ([]protocol.PhaseName, bool) {
	if strictyaml.IsNull(strictyaml.Deref(n)) {
		// Said, not taken as no phases: an empty idle_phases would keep
		// every cycle running forever.
		ps.Failf(n, path, "must be a list, not empty")
		return nil, false
	}
	out := []protocol.PhaseName{}
	good := true
	isList := ps.Sequence(n, path, func(_ int, item *yaml.Node, p string) {
		ph, ok := ps.phaseName(item, p)
		if !ok {
			good = false
			return
		}
		out = append(out, ph)
	})
	return out, isList && good
}

func (ps *parser) alarms(p *Profile, n *yaml.Node) {
	ps.Sequence(n, "alarms", func(_ int, item *yaml.Node, path string) { ps.alarm(p, item, path) })
}

// alarm reads one alarm bit: {field, bit, code, text}.
func (ps *parser) alarm(p *Profile, item *yaml.Node, path string) {
	es, ok := ps.Entries(item, path, []string{"field", "bit", "code", "text"})
	if !ok {
		return
	}
	a := AlarmBit{Bit: -1}
	var fieldNode, bitNode *yaml.Node
	haveCode := false
	for _, e := range es {
		xp := strictyaml.Join(path, e.Key)
		switch e.Key {
		case "field":
			fieldNode = e.Value
			a.Field, _ = ps.Text(e.Value, xp)
		case "bit":
			bitNode = e.Value
			if v, ok := ps.Int(e.Value, xp, 0, 63); ok {
				a.Bit = int(v)
			}
		case "code":
			if v, ok := ps.Int(e.Value, xp, math.MinInt32, math.MaxInt32); ok {
				a.Code = int(v)
				haveCode = true
			}
		case "text":
			a.Text, _ = ps.Text(e.Value, xp)
		}
	}
	if fieldNode == nil {
		ps.Failf(item, strictyaml.Join(path, "field"), "is missing")
		return
	}
	if !haveCode {
		ps.Failf(item, strictyaml.Join(path, "code"), "is missing: every alarm needs the code it is recorded under")
		return
	}
	f, ok := p.Field(a.Field)
	if !ok {
		if _, declared := fieldDeclaredWithError(ps, a.Field); !declared && a.Field != "" {
			ps.Failf(fieldNode, strictyaml.Join(path, "field"), "no field is called %q", a.Field)
		}
		return
	}
	switch {
	case f.Type == TypeBit:
		if bitNode != nil {
			ps.Failf(bitNode, strictyaml.Join(path, "bit"), "field %q is already a single bit; leave bit out", a.Field)
			return
		}
		a.Bit = 0
	case isIntegerType(f.Type):
		width := 16 * f.Type.Registers()
		if bitNode == nil {
			ps.Failf(item, strictyaml.Join(path, "bit"), "is missing: say which bit of %q (0-%d) signals the alarm", a.Field, width-1)
			return
		}
		if a.Bit < 0 {
			return
		}
		if a.Bit >= width {
			ps.Failf(bitNode, strictyaml.Join(path, "bit"), "%d is past the %d bits of field %q", a.Bit, width, a.Field)
			return
		}
	default:
		ps.Failf(fieldNode, strictyaml.Join(path, "field"), "field %q has type %s; alarm bits need an integer or bit field", a.Field, f.Type)
		return
	}
	p.Alarms = append(p.Alarms, a)
}

func (ps *parser) cycleEnd(p *Profile, n *yaml.Node) {
	es, ok := ps.Entries(n, "cycle_end", []string{"on", "phases"})
	if !ok {
		return
	}
	var onNode, phasesNode *yaml.Node
	for _, e := range es {
		switch e.Key {
		case "on":
			onNode = e.Value
		case "phases":
			phasesNode = e.Value
		}
	}
	if onNode == nil {
		ps.Failf(n, "cycle_end.on", "is missing (last_cycle_change, counter_change, phase_enters or next_cycle_starts)")
		return
	}
	s, ok := ps.Text(onNode, "cycle_end.on")
	if !ok {
		return
	}
	p.CycleEnd.On = CycleEndOn(s)
	switch p.CycleEnd.On {
	case EndOnLastCycleChange:
		if !p.HasRole(RoleLastCycle) {
			ps.Failf(onNode, "cycle_end.on", "last_cycle_change needs roles.last_cycle (the latched counter of the last finished cycle)")
		}
	case EndOnCounterChange:
	case EndOnNextCycleStarts:
		if !p.HasRole(RolePhase) {
			ps.Failf(onNode, "cycle_end.on", "next_cycle_starts needs roles.phase (a cycle's samples stop when the phase returns to idle_phases)")
		}
	case EndOnPhaseEnters:
		if !p.HasRole(RolePhase) {
			ps.Failf(onNode, "cycle_end.on", "phase_enters needs roles.phase")
		}
		if phasesNode == nil {
			ps.Failf(n, "cycle_end.phases", "is missing: phase_enters needs the list of phases that end a cycle, e.g. [complete, fault]")
			return
		}
		if list, ok := ps.phaseList(phasesNode, "cycle_end.phases"); ok {
			if len(list) == 0 {
				ps.Failf(phasesNode, "cycle_end.phases", "is empty")
			}
			p.CycleEnd.Phases = list
		}
		return
	default:
		ps.Failf(onNode, "cycle_end.on", "%q is not one of last_cycle_change, counter_change, phase_enters, next_cycle_starts", s)
		return
	}
	if phasesNode != nil {
		ps.Failf(phasesNode, "cycle_end.phases", "only applies to on: phase_enters")
	}
}

func (ps *parser) requireRoles(p *Profile, at *yaml.Node) {
	if len(ps.Problems) > 0 {
		return // a missing role is most likely a consequence of an earlier problem
	}
	for _, r := range []Role{RoleChamberTemperature, RoleChamberPressure, RoleCycleCounter} {
		if !p.HasRole(r) {
			ps.Failf(at, strictyaml.Join("roles", string(r)), "is missing: every profile must say which field it is")
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
func (ps *parser) criteria(p *Profile, e strictyaml.Entry) {
	es, _ := ps.Entries(e.Value, "criteria", nil)
	byName := map[string]string{} // program name -> the key that gave it criteria
	for _, x := range es {
		path := strictyaml.Join("criteria", x.Key)
		name, ok := ps.criteriaProgram(p, x, path)
		if !ok {
			continue
		}
		if other, dup := byName[name]; dup {
			ps.Failf(x.KeyNode, path, "program %q already has criteria (criteria.%s)", name, other)
			continue
		}
		byName[name] = x.Key
		params, nodes, ok := ps.criteriaParams(x.Value, path)
		if !ok {
			continue
		}
		if _, err := params.Criteria(verify.SourceProfile); err != nil {
			for _, pe := range verify.ParamErrors(err) {
				at := x.KeyNode
				if n, ok := nodes[pe.Key]; ok {
					at = n
				}
				ps.Failf(at, strictyaml.Join(path, pe.Key), "%s", pe.Msg)
			}
			continue
		}
		p.Criteria[name] = params
	}
}

// criteriaProgram resolves a criteria key to the program name it means: a
// name of programs, or a code programs maps.
func (ps *parser) criteriaProgram(p *Profile, x strictyaml.Entry, path string) (string, bool) {
	for _, name := range p.Programs {
		if name == x.Key {
			return name, true
		}
	}
	if code, err := strconv.ParseInt(x.Key, 0, 64); err == nil {
		if name, ok := p.Programs[int(code)]; ok && code >= math.MinInt32 && code <= math.MaxUint32 {
			return name, true
		}
		ps.Failf(x.KeyNode, path, "program code %s is not in programs: map it there first", x.Key)
		return "", false
	}
	known := make([]string, 0, len(p.Programs))
	for _, name := range p.Programs {
		known = append(known, name)
	}
	sort.Strings(known)
	if len(known) == 0 {
		ps.Failf(x.KeyNode, path, "no program is called %q: programs maps no program", x.Key)
	} else {
		ps.Failf(x.KeyNode, path, "no program is called %q (programs: %s)", x.Key, strings.Join(known, ", "))
	}
	return "", false
}

// criteriaParams reads one criteria set: kind and numeric keys, with the
// node of each key for error lines.
func (ps *parser) criteriaParams(n *yaml.Node, path string) (verify.Params, map[string]*yaml.Node, bool) {
	allowed := append([]string{"kind"}, verify.ParamKeys()...)
	kv, ok := ps.Entries(n, path, allowed)
	if !ok {
		return verify.Params{}, nil, false
	}
	params := verify.Params{Values: map[string]float64{}}
	nodes := map[string]*yaml.Node{}
	good := true
	for _, x := range kv {
		nodes[x.Key] = x.Value
		if x.Key == "kind" {
			s, ok := ps.Text(x.Value, strictyaml.Join(path, x.Key))
			good = good && ok
			params.Kind = s
			continue
		}
		v, ok := ps.Number(x.Value, strictyaml.Join(path, x.Key))
		good = good && ok
		params.Values[x.Key] = v
	}
	return params, nodes, good
}
