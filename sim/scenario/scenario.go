// Package scenario reads the simulator's scenario files: YAML that
// schedules, per device, which programs run, with which faults, and which
// communication faults the device shows on its ports. Parsing is strict: an
// unknown key, a bad value or a misplaced parameter is an error that names
// the file, the line and the key.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/sim/autoclave"
)

// DefaultPause is the idle time between cycles when a scenario names none.
const DefaultPause = 3 * time.Minute

// Scenario is a parsed scenario file.
type Scenario struct {
	// Source names the file, for messages.
	Source string
	// Default is the plan of every device the file does not list.
	Default Plan
	// Devices holds the plans of listed devices, by device number (1-based).
	Devices map[int]Plan
}

// Plan is what one device does.
type Plan struct {
	// Cycles run in order; with Repeat the list starts over, otherwise the
	// device stays idle once it has run them all.
	Cycles []Cycle
	Repeat bool
	// Pause is the idle time (simulated) before each cycle, unless the
	// cycle sets its own.
	Pause time.Duration
	// CounterStart is the cycle counter before the first cycle.
	CounterStart uint32
	// Comm are communication faults, timed from the start of the run.
	Comm []CommFault
}

// Cycle is one entry of a plan: a program, run Count times, with faults.
type Cycle struct {
	Program autoclave.Program
	Count   int
	Pause   time.Duration // 0: the plan's pause
	Faults  []autoclave.Fault
}

// CommKind is a communication fault.
type CommKind string

// Communication faults.
const (
	CommSlow      CommKind = "slow"      // replies come Delay late
	CommDrop      CommKind = "drop"      // every Every-th request closes the connection unanswered
	CommSilence   CommKind = "silence"   // no reply at all
	CommException CommKind = "exception" // replies are Modbus exception Exception
	CommCorrupt   CommKind = "corrupt"   // serial only: garbage before the reply and a bad CRC
)

// CommFault is one communication fault window. At and Duration are
// simulated time since the start of the run; Delay is real time, because
// latency is what the gateway's timeouts see.
type CommFault struct {
	Kind      CommKind
	At        time.Duration
	Duration  time.Duration
	Delay     time.Duration
	Exception byte
	Every     int
}

// Default returns the built-in scenario: 134-porous back to back on every
// device, with the default pause.
func Default() *Scenario {
	p, _ := autoclave.ProgramByName("134-porous")
	return &Scenario{
		Source:  "built-in",
		Default: Plan{Cycles: []Cycle{{Program: p, Count: 1}}, Repeat: true, Pause: DefaultPause},
		Devices: map[int]Plan{},
	}
}

// PlanFor returns device n's plan (1-based).
func (s *Scenario) PlanFor(n int) Plan {
	if p, ok := s.Devices[n]; ok {
		return p
	}
	return s.Default
}

// MaxDevice is the highest device number the scenario lists (0 if none).
func (s *Scenario) MaxDevice() int {
	m := 0
	for n := range s.Devices {
		m = max(m, n)
	}
	return m
}

// Load reads and parses a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(path, data)
}

type parser struct{ file string }

func (p parser) errf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.file, n.Line, fmt.Sprintf(format, args...))
}

// mapping checks that n is a mapping whose keys are all in allowed and
// unique, and returns key → value node plus the keys in order.
func (p parser) mapping(n *yaml.Node, what string, allowed []string) (map[string]*yaml.Node, []*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, p.errf(n, "%s must be a mapping, not %s", what, kindName(n))
	}
	m := map[string]*yaml.Node{}
	var keys []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, nil, p.errf(k, "%s: keys must be plain words", what)
		}
		if !slices.Contains(allowed, k.Value) {
			return nil, nil, p.errf(k, "unknown key %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
		}
		if _, dup := m[k.Value]; dup {
			return nil, nil, p.errf(k, "key %q appears twice in %s", k.Value, what)
		}
		m[k.Value] = v
		keys = append(keys, k)
	}
	return m, keys, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

func (p parser) scalar(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errf(n, "%s must be a single value, not %s", key, kindName(n))
	}
	return n.Value, nil
}

func (p parser) duration(n *yaml.Node, key string) (time.Duration, error) {
	s, err := p.scalar(n, key)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, p.errf(n, "%s: %q is not a duration like 90s, 3m or 1h30m", key, s)
	}
	return d, nil
}

func (p parser) integer(n *yaml.Node, key string, lo, hi int64) (int64, error) {
	s, err := p.scalar(n, key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, p.errf(n, "%s: %q is not a whole number from %d to %d", key, s, lo, hi)
	}
	return v, nil
}

func (p parser) number(n *yaml.Node, key string) (float64, error) {
	s, err := p.scalar(n, key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, p.errf(n, "%s: %q is not a non-negative number", key, s)
	}
	return v, nil
}

func (p parser) boolean(n *yaml.Node, key string) (bool, error) {
	s, err := p.scalar(n, key)
	if err != nil {
		return false, err
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, p.errf(n, "%s: %q is not true or false", key, s)
}

func (p parser) list(n *yaml.Node, key string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%s must be a list, not %s", key, kindName(n))
	}
	return n.Content, nil
}

// Parse parses a scenario; name is used in error messages.
func Parse(name string, data []byte) (*Scenario, error) {
	p := parser{file: name}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the scenario is empty", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errf(&extra, "only one YAML document is allowed")
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the scenario is empty", name)
	}
	doc := root.Content[0]
	top, _, err := p.mapping(doc, "the scenario", []string{"pause", "devices"})
	if err != nil {
		return nil, err
	}
	s := Default()
	s.Source = name
	pause := DefaultPause
	if n, ok := top["pause"]; ok {
		if pause, err = p.duration(n, "pause"); err != nil {
			return nil, err
		}
	}
	s.Default.Pause = pause
	n, ok := top["devices"]
	if !ok {
		return nil, p.errf(doc, "the scenario has no devices list")
	}
	items, err := p.list(n, "devices")
	if err != nil {
		return nil, err
	}
	for _, item := range items {
		num, plan, err := p.device(item, pause)
		if err != nil {
			return nil, err
		}
		if num == 0 {
			s.Default = plan
			continue
		}
		if _, dup := s.Devices[num]; dup {
			return nil, p.errf(item, "device %d is listed twice", num)
		}
		s.Devices[num] = plan
	}
	return s, nil
}

var deviceKeys = []string{"device", "cycles", "repeat", "pause", "counter_start", "comm"}

// device parses one entry of devices; device number 0 means "default".
func (p parser) device(n *yaml.Node, pause time.Duration) (int, Plan, error) {
	m, _, err := p.mapping(n, "a device", deviceKeys)
	if err != nil {
		return 0, Plan{}, err
	}
	plan := Plan{Repeat: true, Pause: pause}
	dn, ok := m["device"]
	if !ok {
		return 0, plan, p.errf(n, "device entry without device: (a number from 1, or default)")
	}
	num := 0
	if dn.Value != "default" {
		v, err := p.integer(dn, "device", 1, 10000)
		if err != nil {
			return 0, plan, p.errf(dn, "device: %q is not default or a number from 1 to 10000", dn.Value)
		}
		num = int(v)
	}
	if v, ok := m["repeat"]; ok {
		if plan.Repeat, err = p.boolean(v, "repeat"); err != nil {
			return 0, plan, err
		}
	}
	if v, ok := m["pause"]; ok {
		if plan.Pause, err = p.duration(v, "pause"); err != nil {
			return 0, plan, err
		}
	}
	if v, ok := m["counter_start"]; ok {
		c, err := p.integer(v, "counter_start", 0, math.MaxUint32-1_000_000)
		if err != nil {
			return 0, plan, err
		}
		plan.CounterStart = uint32(c)
	}
	if v, ok := m["cycles"]; ok {
		items, err := p.list(v, "cycles")
		if err != nil {
			return 0, plan, err
		}
		for _, it := range items {
			c, err := p.cycle(it)
			if err != nil {
				return 0, plan, err
			}
			plan.Cycles = append(plan.Cycles, c)
		}
	} else {
		prog, _ := autoclave.ProgramByName("134-porous")
		plan.Cycles = []Cycle{{Program: prog, Count: 1}}
	}
	if v, ok := m["comm"]; ok {
		items, err := p.list(v, "comm")
		if err != nil {
			return 0, plan, err
		}
		for _, it := range items {
			c, err := p.comm(it)
			if err != nil {
				return 0, plan, err
			}
			plan.Comm = append(plan.Comm, c)
		}
	}
	return num, plan, nil
}

func (p parser) cycle(n *yaml.Node) (Cycle, error) {
	m, _, err := p.mapping(n, "a cycle", []string{"program", "count", "pause", "faults"})
	if err != nil {
		return Cycle{}, err
	}
	c := Cycle{Count: 1}
	pn, ok := m["program"]
	if !ok {
		return c, p.errf(n, "cycle without program:")
	}
	name, err := p.scalar(pn, "program")
	if err != nil {
		return c, err
	}
	if c.Program, err = autoclave.ProgramByName(name); err != nil {
		return c, p.errf(pn, "program: %v", err)
	}
	if v, ok := m["count"]; ok {
		cnt, err := p.integer(v, "count", 1, 100000)
		if err != nil {
			return c, err
		}
		c.Count = int(cnt)
	}
	if v, ok := m["pause"]; ok {
		if c.Pause, err = p.duration(v, "pause"); err != nil {
			return c, err
		}
	}
	if v, ok := m["faults"]; ok {
		items, err := p.list(v, "faults")
		if err != nil {
			return c, err
		}
		for _, it := range items {
			f, err := p.fault(it)
			if err != nil {
				return c, err
			}
			c.Faults = append(c.Faults, f)
		}
	}
	return c, nil
}

func (p parser) fault(n *yaml.Node) (autoclave.Fault, error) {
	var f autoclave.Fault
	if n.Kind != yaml.MappingNode {
		return f, p.errf(n, "a fault must be a mapping with a kind:, not %s", kindName(n))
	}
	// The kind decides which keys are allowed, so find it first.
	var kindNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			kindNode = n.Content[i+1]
		}
	}
	if kindNode == nil {
		return f, p.errf(n, "fault without kind: (one of %s)", faultKindList())
	}
	kind, err := p.scalar(kindNode, "kind")
	if err != nil {
		return f, err
	}
	f.Kind = autoclave.FaultKind(kind)
	if !slices.Contains(autoclave.FaultKinds(), f.Kind) {
		return f, p.errf(kindNode, "kind: %q is not a fault (known: %s)", kind, faultKindList())
	}
	allowed := []string{"kind", "phase", "after", "duration", "sensor", "defect"}
	params := autoclave.FaultParams(f.Kind)
	allowed = append(allowed, params...)
	m, keys, err := p.mapping(n, "a "+kind+" fault", allowed)
	if err != nil {
		return f, err
	}
	for _, k := range keys {
		v := m[k.Value]
		switch k.Value {
		case "kind":
		case "phase":
			s, err := p.scalar(v, "phase")
			if err != nil {
				return f, err
			}
			ph, err := autoclave.PhaseByName(s)
			if err != nil {
				return f, p.errf(v, "phase: %v", err)
			}
			f.SetPhase(ph)
		case "after":
			d, err := p.duration(v, "after")
			if err != nil {
				return f, err
			}
			f.SetAfter(d.Seconds())
		case "duration":
			d, err := p.duration(v, "duration")
			if err != nil {
				return f, err
			}
			f.DurationS = d.Seconds()
		case "sensor":
			if f.Sensor, err = p.scalar(v, "sensor"); err != nil {
				return f, err
			}
		case "defect":
			if f.Defect, err = p.scalar(v, "defect"); err != nil {
				return f, err
			}
		default:
			x, err := p.number(v, k.Value)
			if err != nil {
				return f, err
			}
			if f.Params == nil {
				f.Params = map[string]float64{}
			}
			f.Params[k.Value] = x
		}
	}
	check := f
	if err := check.Normalize(); err != nil {
		return f, p.errf(n, "%s fault: %v", kind, err)
	}
	return f, nil
}

func faultKindList() string {
	var names []string
	for _, k := range autoclave.FaultKinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

var commKinds = []CommKind{CommSlow, CommDrop, CommSilence, CommException, CommCorrupt}

func (p parser) comm(n *yaml.Node) (CommFault, error) {
	m, _, err := p.mapping(n, "a comm fault", []string{"kind", "at", "duration", "delay", "exception", "every"})
	if err != nil {
		return CommFault{}, err
	}
	c := CommFault{Every: 1}
	kn, ok := m["kind"]
	if !ok {
		return c, p.errf(n, "comm fault without kind: (slow, drop, silence, exception or corrupt)")
	}
	kind, err := p.scalar(kn, "kind")
	if err != nil {
		return c, err
	}
	c.Kind = CommKind(kind)
	if !slices.Contains(commKinds, c.Kind) {
		return c, p.errf(kn, "kind: %q is not slow, drop, silence, exception or corrupt", kind)
	}
	if v, ok := m["at"]; ok {
		if c.At, err = p.duration(v, "at"); err != nil {
			return c, err
		}
	}
	dn, ok := m["duration"]
	if !ok {
		return c, p.errf(n, "%s comm fault without duration:", kind)
	}
	if c.Duration, err = p.duration(dn, "duration"); err != nil {
		return c, err
	}
	if v, ok := m["delay"]; ok {
		if c.Kind != CommSlow {
			return c, p.errf(v, "delay applies only to slow, not %s", kind)
		}
		if c.Delay, err = p.duration(v, "delay"); err != nil {
			return c, err
		}
	} else if c.Kind == CommSlow {
		c.Delay = 500 * time.Millisecond
	}
	if v, ok := m["exception"]; ok {
		if c.Kind != CommException {
			return c, p.errf(v, "exception applies only to kind exception, not %s", kind)
		}
		e, err := p.integer(v, "exception", 1, 11)
		if err != nil {
			return c, err
		}
		c.Exception = byte(e)
	} else if c.Kind == CommException {
		c.Exception = 6 // server device busy
	}
	if v, ok := m["every"]; ok {
		if c.Kind != CommDrop && c.Kind != CommCorrupt {
			return c, p.errf(v, "every applies only to drop and corrupt, not %s", kind)
		}
		e, err := p.integer(v, "every", 1, 1000000)
		if err != nil {
			return c, err
		}
		c.Every = int(e)
	}
	return c, nil
}
