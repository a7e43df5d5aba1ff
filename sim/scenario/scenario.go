// Package scenario reads the simulator's scenario files: YAML that
// schedules, per device, which programs run, with which faults, and which
// communication faults the device shows on its ports. Parsing is strict: an
// unknown key, a bad value or a misplaced parameter is an error that names
// the file, the line and the key.
package scenario

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sterigate/sterigate/protocol/strictyaml"
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

// parser reads a scenario's node tree; every mistake becomes a Problem of
// its Walker.
type parser struct {
	*strictyaml.Walker
}

// Parse parses a scenario; name is used in error messages. Every mistake
// is reported, one per line, as "file:line: key path: message".
func Parse(name string, data []byte) (*Scenario, error) {
	root, syntax := strictyaml.Parse(data)
	if syntax != nil {
		return nil, errors.New(syntax.In(name))
	}
	if root == nil {
		return nil, fmt.Errorf("%s: the scenario is empty", name)
	}
	p := parser{&strictyaml.Walker{}}
	s := p.scenario(root)
	if len(p.Problems) > 0 {
		var errs []error
		for _, pr := range p.InFileOrder() {
			errs = append(errs, errors.New(pr.In(name)))
		}
		return nil, errors.Join(errs...)
	}
	s.Source = name
	return s, nil
}

func (p parser) scenario(root *yaml.Node) *Scenario {
	s := Default()
	pause := DefaultPause
	var devices *yaml.Node
	var devicesPath string
	p.Mapping(root, "",
		strictyaml.Field{Key: "pause", Decode: p.SetDuration(&pause, 0)},
		// Read after the whole mapping: a device's pause defaults to
		// the file's, wherever pause is written.
		strictyaml.Field{Key: "devices", Decode: func(n *yaml.Node, path string) { devices, devicesPath = n, path }},
	)
	s.Default.Pause = pause
	if devices == nil {
		p.Failf(root, "devices", "is missing: list the devices, e.g. devices: [{device: default}]")
		return s
	}
	listedAt := map[int]int{} // device number -> index in devices
	p.Sequence(devices, devicesPath, func(i int, item *yaml.Node, path string) {
		num, plan, ok := p.device(item, path, pause)
		if !ok {
			return
		}
		if num == 0 {
			s.Default = plan
			return
		}
		if j, dup := listedAt[num]; dup {
			p.Failf(item, path+".device", "%d is already listed as devices[%d]", num, j)
			return
		}
		listedAt[num] = i
		s.Devices[num] = plan
	})
	return s
}

// device parses one entry of devices; device number 0 means "default".
func (p parser) device(n *yaml.Node, path string, pause time.Duration) (num int, plan Plan, ok bool) {
	plan = Plan{Repeat: true, Pause: pause}
	var numNode *yaml.Node
	cyclesGiven := false
	before := len(p.Problems)
	p.Mapping(n, path,
		strictyaml.Field{Key: "device", Decode: func(v *yaml.Node, vp string) {
			numNode = v
			if s, ok := p.Text(v, vp); ok && s == "default" {
				return
			}
			x, err := strconv.ParseInt(strictyaml.Deref(v).Value, 10, 64)
			if err != nil || x < 1 || x > 10000 {
				p.Failf(v, vp, "%q is not default or a number from 1 to 10000", strictyaml.Deref(v).Value)
				return
			}
			num = int(x)
		}},
		strictyaml.Field{Key: "cycles", Decode: func(v *yaml.Node, vp string) {
			cyclesGiven = true
			p.Sequence(v, vp, func(_ int, it *yaml.Node, ip string) {
				plan.Cycles = append(plan.Cycles, p.cycle(it, ip))
			})
		}},
		strictyaml.Field{Key: "repeat", Decode: p.SetBool(&plan.Repeat)},
		strictyaml.Field{Key: "pause", Decode: p.SetDuration(&plan.Pause, 0)},
		strictyaml.Field{Key: "counter_start", Decode: func(v *yaml.Node, vp string) {
			if c, ok := p.Int(v, vp, 0, math.MaxUint32-1_000_000); ok {
				plan.CounterStart = uint32(c)
			}
		}},
		strictyaml.Field{Key: "comm", Decode: func(v *yaml.Node, vp string) {
			p.Sequence(v, vp, func(_ int, it *yaml.Node, ip string) {
				plan.Comm = append(plan.Comm, p.comm(it, ip))
			})
		}},
	)
	if numNode == nil && n.Kind == yaml.MappingNode {
		p.Failf(n, path+".device", "is missing: a number from 1, or default")
	}
	if !cyclesGiven {
		prog, _ := autoclave.ProgramByName("134-porous")
		plan.Cycles = []Cycle{{Program: prog, Count: 1}}
	}
	return num, plan, len(p.Problems) == before
}

func (p parser) cycle(n *yaml.Node, path string) Cycle {
	c := Cycle{Count: 1}
	haveProgram := false
	p.Mapping(n, path,
		strictyaml.Field{Key: "program", Decode: func(v *yaml.Node, vp string) {
			haveProgram = true
			name, ok := p.Text(v, vp)
			if !ok {
				return
			}
			prog, err := autoclave.ProgramByName(name)
			if err != nil {
				p.Failf(v, vp, "%v", err)
				return
			}
			c.Program = prog
		}},
		strictyaml.Field{Key: "count", Decode: p.SetInt(&c.Count, 1, 100000)},
		strictyaml.Field{Key: "pause", Decode: p.SetDuration(&c.Pause, 0)},
		strictyaml.Field{Key: "faults", Decode: func(v *yaml.Node, vp string) {
			p.Sequence(v, vp, func(_ int, it *yaml.Node, ip string) {
				if f, ok := p.fault(it, ip); ok {
					c.Faults = append(c.Faults, f)
				}
			})
		}},
	)
	if !haveProgram && n.Kind == yaml.MappingNode {
		p.Failf(n, path+".program", "is missing: which program the cycle runs")
	}
	return c
}

func (p parser) fault(n *yaml.Node, path string) (autoclave.Fault, bool) {
	var f autoclave.Fault
	if n.Kind != yaml.MappingNode {
		p.Failf(n, path, "must be a mapping of keys to values, not %s", strictyaml.Describe(n))
		return f, false
	}
	// The kind decides which keys are allowed, so find it first.
	var kindNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			kindNode = n.Content[i+1]
		}
	}
	if kindNode == nil {
		p.Failf(n, path+".kind", "is missing: one of %s", faultKindList())
		return f, false
	}
	kind, ok := p.Text(kindNode, path+".kind")
	if !ok {
		return f, false
	}
	f.Kind = autoclave.FaultKind(kind)
	if !slices.Contains(autoclave.FaultKinds(), f.Kind) {
		p.Failf(kindNode, path+".kind", "%q is not a fault (known: %s)", kind, faultKindList())
		return f, false
	}
	before := len(p.Problems)
	fields := []strictyaml.Field{
		{Key: "kind", Decode: func(*yaml.Node, string) {}},
		{Key: "phase", Decode: func(v *yaml.Node, vp string) {
			if s, ok := p.Text(v, vp); ok {
				ph, err := autoclave.PhaseByName(s)
				if err != nil {
					p.Failf(v, vp, "%v", err)
					return
				}
				f.SetPhase(ph)
			}
		}},
		{Key: "after", Decode: func(v *yaml.Node, vp string) {
			if d, ok := p.Duration(v, vp, 0, 0); ok {
				f.SetAfter(d.Seconds())
			}
		}},
		{Key: "duration", Decode: func(v *yaml.Node, vp string) {
			if d, ok := p.Duration(v, vp, 0, 0); ok {
				f.DurationS = d.Seconds()
			}
		}},
		{Key: "sensor", Decode: p.SetStr(&f.Sensor)},
		{Key: "defect", Decode: p.SetStr(&f.Defect)},
	}
	for _, param := range autoclave.FaultParams(f.Kind) {
		fields = append(fields, strictyaml.Field{Key: param, Decode: func(v *yaml.Node, vp string) {
			x, ok := p.Number(v, vp)
			if !ok {
				return
			}
			if x < 0 {
				p.Failf(v, vp, "%s is negative: a fault parameter is a size, at least 0", strictyaml.Deref(v).Value)
				return
			}
			if f.Params == nil {
				f.Params = map[string]float64{}
			}
			f.Params[param] = x
		}})
	}
	p.Mapping(n, path, fields...)
	if len(p.Problems) > before {
		return f, false
	}
	check := f
	if err := check.Normalize(); err != nil {
		p.Failf(n, path, "%s fault: %v", kind, err)
		return f, false
	}
	return f, true
}

func faultKindList() string {
	var names []string
	for _, k := range autoclave.FaultKinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

var commKinds = []CommKind{CommSlow, CommDrop, CommSilence, CommException, CommCorrupt}

func (p parser) comm(n *yaml.Node, path string) CommFault {
	c := CommFault{Every: 1}
	nodes := map[string]*yaml.Node{}
	keep := func(key string) strictyaml.Decode {
		return func(v *yaml.Node, _ string) { nodes[key] = v }
	}
	p.Mapping(n, path,
		strictyaml.Field{Key: "kind", Decode: keep("kind")},
		strictyaml.Field{Key: "at", Decode: p.SetDuration(&c.At, 0)},
		strictyaml.Field{Key: "duration", Decode: func(v *yaml.Node, vp string) {
			nodes["duration"] = v
			p.SetDuration(&c.Duration, 0)(v, vp)
		}},
		strictyaml.Field{Key: "delay", Decode: func(v *yaml.Node, vp string) {
			nodes["delay"] = v
			p.SetDuration(&c.Delay, 0)(v, vp)
		}},
		strictyaml.Field{Key: "exception", Decode: func(v *yaml.Node, vp string) {
			nodes["exception"] = v
			if e, ok := p.Int(v, vp, 1, 11); ok {
				c.Exception = byte(e)
			}
		}},
		strictyaml.Field{Key: "every", Decode: func(v *yaml.Node, vp string) {
			nodes["every"] = v
			p.SetInt(&c.Every, 1, 1000000)(v, vp)
		}},
	)
	if n.Kind != yaml.MappingNode {
		return c
	}
	kn, ok := nodes["kind"]
	if !ok {
		p.Failf(n, path+".kind", "is missing: slow, drop, silence, exception or corrupt")
		return c
	}
	kind, ok := p.Text(kn, path+".kind")
	if !ok {
		return c
	}
	c.Kind = CommKind(kind)
	if !slices.Contains(commKinds, c.Kind) {
		p.Failf(kn, path+".kind", "%q is not slow, drop, silence, exception or corrupt", kind)
		return c
	}
	if _, ok := nodes["duration"]; !ok {
		p.Failf(n, path+".duration", "is missing: how long the %s fault lasts", kind)
	}
	if v, ok := nodes["delay"]; ok && c.Kind != CommSlow {
		p.Failf(v, path+".delay", "applies only to slow, not %s", kind)
	} else if !ok && c.Kind == CommSlow {
		c.Delay = 500 * time.Millisecond
	}
	if v, ok := nodes["exception"]; ok && c.Kind != CommException {
		p.Failf(v, path+".exception", "applies only to kind exception, not %s", kind)
	} else if !ok && c.Kind == CommException {
		c.Exception = 6 // server device busy
	}
	if v, ok := nodes["every"]; ok && c.Kind != CommDrop && c.Kind != CommCorrupt {
		p.Failf(v, path+".every", "applies only to drop and corrupt, not %s", kind)
	}
	return c
}
