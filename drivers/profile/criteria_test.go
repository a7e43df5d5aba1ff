package profile

import (
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol/verify"
)

const criteriaHead = `fields:
  t: {address: 0, type: i16, scale: 0.1}
  p: {address: 1}
  c: {address: 2, type: u32}
  prog: {address: 4}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c, program: prog}
programs: {1: 134-porous, 2: leak, 3: 121-liquids}
cycle_end: {on: counter_change}
criteria:
`

// Every numeric criteria key at its bounds, just inside and just outside:
// outside is an error naming the file, the line and the key path; at and
// inside load.
func TestCriteriaBounds(t *testing.T) {
	cases := []struct {
		key           string
		leak          bool
		at, in, out   string
		atLowIncluded bool // the lower bound itself is allowed (set_point_c)
		low           string
		belowLow      string
	}{
		{key: "set_point_c", at: "150", in: "149.9", out: "150.1", atLowIncluded: true, low: "50", belowLow: "49.9"},
		{key: "band_k", at: "10", in: "9.99", out: "10.01", low: "0", belowLow: "-1"},
		{key: "min_hold_s", at: "86400", in: "86399", out: "86401", low: "0", belowLow: "-0.5"},
		{key: "saturation_k", at: "20", in: "19.9", out: "20.1", low: "0", belowLow: "-2"},
		{key: "spread_k", at: "20", in: "19.9", out: "20.1", low: "0", belowLow: "-2"},
		{key: "equilibration_s", at: "3600", in: "3599", out: "3601", low: "0", belowLow: "-15"},
		{key: "max_sample_interval_s", at: "3600", in: "0.001", out: "3600.5", low: "0", belowLow: "-2.5"},
		{key: "leak_rate_kpa_min", leak: true, at: "10", in: "0.001", out: "10.001", low: "0", belowLow: "-0.13"},
		{key: "leak_equalise_s", leak: true, at: "3600", in: "1", out: "3601", low: "0", belowLow: "-300"},
		{key: "leak_measure_s", leak: true, at: "3600", in: "1", out: "3601", low: "0", belowLow: "-600"},
	}
	for _, c := range cases {
		line := func(v string) string {
			if c.leak {
				return "  leak: {kind: leak_test, " + c.key + ": " + v + "}\n"
			}
			if c.key == "set_point_c" {
				return "  134-porous: {kind: porous, min_hold_s: 180, set_point_c: " + v + "}\n"
			}
			return "  134-porous: {kind: porous, set_point_c: 134, " + c.key + ": " + v + "}\n"
		}
		program := "134-porous"
		if c.leak {
			program = "leak"
		}
		good := []string{c.at, c.in}
		if c.atLowIncluded {
			good = append(good, c.low)
		}
		for _, v := range good {
			p, err := Parse("crit.yaml", []byte(criteriaHead+line(v)))
			if err != nil {
				t.Errorf("%s: %s must load: %v", c.key, v, err)
				continue
			}
			if _, ok := p.ProgramCriteria(program); !ok {
				t.Errorf("%s: %s: no criteria for %s", c.key, v, program)
			}
		}
		bad := []string{c.out, c.belowLow}
		if !c.atLowIncluded {
			bad = append(bad, c.low)
		}
		for _, v := range bad {
			_, err := Parse("crit.yaml", []byte(criteriaHead+line(v)))
			want := "crit.yaml:10: criteria." + program + "." + c.key + ": " + v + " must be "
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %s: err = %v\nwant %s…", c.key, v, err, want)
			}
		}
	}
}

// Criteria given by program code or name, with only a kind (defaults) or
// with parameters (profile), and a program without criteria.
func TestProgramCriteria(t *testing.T) {
	p, err := Parse("crit.yaml", []byte(criteriaHead+
		"  1: {kind: porous, set_point_c: 134, band_k: 4}\n  leak: {kind: leak_test}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.ProgramCriteria("134-porous")
	if !ok || c.Source != verify.SourceProfile || c.Kind != verify.KindPorous || c.SetPointC != 134 || c.BandK != 4 ||
		c.MinHoldSeconds != 180 || c.MaxSampleIntervalSeconds != 2.5 || c.Set != "en285-porous" {
		t.Errorf("134-porous by code: %+v, %v", c, ok)
	}
	c, ok = p.ProgramCriteria("leak")
	if !ok || c.Source != verify.SourceDefault || c.LeakRateKPaMin != 0.13 || c.LeakEqualiseSeconds != 300 || c.LeakMeasureSeconds != 600 {
		t.Errorf("leak: %+v, %v", c, ok)
	}
	if c, ok := p.ProgramCriteria("121-liquids"); ok {
		t.Errorf("121-liquids has no criteria, got %+v", c)
	}
}

// The simulator's profile gives every program of docs/simulator.md its
// set point and holding time.
func TestSimProfileCriteria(t *testing.T) {
	p, ok := Builtin("sim-autoclave")
	if !ok {
		t.Fatal("no sim-autoclave")
	}
	want := map[string][3]any{
		"134-porous": {verify.KindPorous, 134.0, 180.0}, "134-prion": {verify.KindPrion, 134.0, 1080.0},
		"121-15": {verify.KindPorous, 121.0, 900.0}, "121-20": {verify.KindPorous, 121.0, 1200.0},
		"bowie-dick": {verify.KindBowieDick, 134.0, 210.0}, "leak-test": {verify.KindLeakTest, 0.0, 0.0},
		"gravity-121": {verify.KindGravity, 121.0, 1800.0},
	}
	for _, name := range p.Programs {
		c, ok := p.ProgramCriteria(name)
		w := want[name]
		if !ok || c.Kind != w[0] || c.SetPointC != w[1] || c.MinHoldSeconds != w[2] {
			t.Errorf("%s: %+v, %v; want %v", name, c, ok, w)
		}
	}
	if len(p.Criteria) != len(want) {
		t.Errorf("%d programs with criteria, want %d", len(p.Criteria), len(want))
	}
}
