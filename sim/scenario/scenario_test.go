package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/sim/autoclave"
)

func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../scenarios/*.yaml")
	if len(files) < 3 {
		t.Fatalf("found %d example scenarios", len(files))
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for n := 1; n <= max(1, s.MaxDevice()); n++ {
			for i, c := range s.PlanFor(n).Cycles {
				for j := range c.Faults {
					f := c.Faults[j]
					if err := f.Normalize(); err != nil {
						t.Errorf("device %d cycle %d fault %d: %v", n, i, j, err)
					}
				}
			}
		}
	}
}

func TestParseFields(t *testing.T) {
	s, err := Parse("x.yaml", []byte(`
pause: 90s
devices:
  - device: default
    cycles: [{program: bowie-dick}]
  - device: 2
    repeat: false
    counter_start: 500
    pause: 1m
    cycles:
      - program: 121-15
        count: 2
        pause: 10m
        faults:
          - {kind: temp_sag, phase: sterilizing, after: 2m, duration: 30s, depth_k: 1.5}
          - {kind: sensor_stuck, sensor: pressure}
    comm:
      - {kind: slow, at: 1m, duration: 2m, delay: 300ms}
      - {kind: exception, duration: 1m}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.PlanFor(1); p.Cycles[0].Program.Name != "bowie-dick" || p.Pause != 90*time.Second || !p.Repeat {
		t.Errorf("default plan %+v", p)
	}
	p := s.PlanFor(2)
	if p.Repeat || p.CounterStart != 500 || p.Pause != time.Minute || len(p.Cycles) != 1 {
		t.Fatalf("device 2 plan %+v", p)
	}
	c := p.Cycles[0]
	if c.Program.Code != 3 || c.Count != 2 || c.Pause != 10*time.Minute || len(c.Faults) != 2 {
		t.Fatalf("cycle %+v", c)
	}
	f := c.Faults[0]
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	if f.Phase != autoclave.PhaseSterilizing || f.AfterS != 120 || f.DurationS != 30 || f.Params["depth_k"] != 1.5 {
		t.Errorf("fault %+v", f)
	}
	if p.Comm[0].Delay != 300*time.Millisecond || p.Comm[0].At != time.Minute || p.Comm[1].Exception != 6 {
		t.Errorf("comm %+v", p.Comm)
	}
}

// Every mistake names the file, the line and the offending key or value.
func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"devices:\n  - device: 1\n    colour: red\n", `bad.yaml:3: devices[0].colour: unknown key (allowed here: device, cycles, repeat, pause, counter_start, comm)`},
		{"pauses: 1m\ndevices: []\n", `bad.yaml:1: pauses: unknown key (allowed here: pause, devices)`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 135-quick\n", `bad.yaml:4: devices[0].cycles[0].program: unknown program "135-quick"`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 134-porous\n        faults: [{kind: meteor}]\n", `bad.yaml:5: devices[0].cycles[0].faults[0].kind: "meteor" is not a fault`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 134-porous\n        faults: [{kind: ncg, depth_k: 2}]\n", `bad.yaml:5: devices[0].cycles[0].faults[0].depth_k: unknown key (allowed here: kind, phase, after, duration, sensor, defect, fraction)`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 134-porous\n        faults: [{kind: temp_sag, phase: boiling}]\n", `unknown phase "boiling"`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 134-porous\n        faults: [{kind: temp_sag, after: soon}]\n", `faults[0].after: "soon" is not a duration`},
		{"devices:\n  - device: 1\n    comm: [{kind: slow}]\n", `bad.yaml:3: devices[0].comm[0].duration: is missing`},
		{"devices:\n  - device: 1\n    comm: [{kind: drop, duration: 1m, delay: 1s}]\n", `devices[0].comm[0].delay: applies only to slow, not drop`},
		{"devices:\n  - device: 1\n  - device: 1\n", `bad.yaml:3: devices[1].device: 1 is already listed as devices[0]`},
		{"devices:\n  - device: zero\n", `bad.yaml:2: devices[0].device: "zero" is not default or a number`},
		{"devices:\n  - device: 1\n    cycles:\n      - program: 134-porous\n        count: -2\n", `bad.yaml:5: devices[0].cycles[0].count: -2 is out of range (1 to 100000)`},
		{"pause: 1m\n", `bad.yaml:1: devices: is missing`},
		{"", `the scenario is empty`},
		{"devices: [\n", `bad.yaml:1: not valid YAML`},
		{"devices: []\n---\ndevices: []\n", `bad.yaml:3: only one YAML document is allowed`},
	}
	for _, c := range cases {
		_, err := Parse("bad.yaml", []byte(c.yaml))
		if err != nil && !strings.HasPrefix(err.Error(), "bad.yaml:") && c.yaml != "" {
			t.Errorf("%q: error %v does not name the file and line", c.yaml, err)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../scenarios/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("devices:\n  - device: 1\n    cycles: [{program: leak-test, faults: [{kind: lying, defect: ncg}]}]\n"))
	f.Add([]byte("devices: [{device: default, comm: [{kind: exception, duration: 1s, exception: 11}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		// Whatever parses must be runnable: every fault normalizes.
		for n := 0; n <= s.MaxDevice(); n++ {
			for _, c := range s.PlanFor(n).Cycles {
				if c.Count < 1 {
					t.Fatalf("count %d", c.Count)
				}
				for _, fl := range c.Faults {
					if err := fl.Normalize(); err != nil {
						t.Fatalf("parsed fault does not normalize: %v", err)
					}
				}
			}
		}
	})
}

// All the mistakes of a file are reported at once, in file order.
func TestParseReportsEveryMistake(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("devices:\n  - device: 1\n    colour: red\n    repeat: sometimes\n  - device: 2\n    comm: [{kind: slow}]\n"))
	want := `bad.yaml:3: devices[0].colour: unknown key (allowed here: device, cycles, repeat, pause, counter_start, comm)
bad.yaml:4: devices[0].repeat: "sometimes" is not true or false
bad.yaml:6: devices[1].comm[0].duration: is missing: how long the slow fault lasts`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
