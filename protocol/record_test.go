package protocol

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

func exampleRecord() CycleRecord {
	t0 := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	code, rc := 1, 1
	rec := CycleRecord{
		Schema: CycleSchema, ID: CycleID("dax", "autoclave-1", 1042), Gateway: "cssd-gw-1", Site: "dax",
		Device: "autoclave-1", Cycle: 1042, Program: "134-porous", ProgramCode: &code,
		StartedAt: at(0), EndedAt: at(2280), Result: ResultPassed, ResultCode: &rc, Complete: true, EndSeen: true,
		Source: "modbus-tcp", Seq: 5120, PrevHash: "9f2c0e4b1a7d3c5e8f6a2b4d0c1e3f5a7b9d2c4e6f8a0b1c3d5e7f9a2b4c6d8e",
		Alarms:   []Alarm{},
		Channels: []Channel{{ID: "drain_temp", Role: RoleDrainTemperature, Unit: "°C"}},
	}
	samples := []Sample{
		{At: at(900), TempC: 134.6, PressureKPa: 306.1, Phase: PhaseSterilizing, Ch: map[string]float64{"drain_temp": 134.4}},
		{At: at(990), TempC: 135.2, PressureKPa: 312.4, Phase: PhaseSterilizing, Ch: map[string]float64{"drain_temp": 135.1}},
		{At: at(1080), TempC: 135.0, PressureKPa: 310.2, Phase: PhaseSterilizing, Ch: map[string]float64{"drain_temp": 134.9}},
	}
	ph := Phase{Name: PhaseSterilizing, Start: at(900), End: at(1080)}
	for _, s := range samples {
		ph.Observe(s)
	}
	rec.Phases = []Phase{{Name: PhaseAirRemoval, Start: at(0), End: at(600)}, {Name: PhaseHeating, Start: at(600), End: at(900)}, ph}
	rec.Samples = samples
	return rec
}

// The example in docs/mqtt.md is this golden file; the payload format is a
// contract, so any change to it must be deliberate.
func TestCycleRecordGolden(t *testing.T) {
	got, err := json.MarshalIndent(exampleRecord(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/cycle.v1.example.json"
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("payload changed; if deliberate, bump the schema or run -update:\n%s", got)
	}
	var back CycleRecord
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, exampleRecord()) {
		t.Errorf("round trip differs:\n%+v\n%+v", back, exampleRecord())
	}
}

// The JSON Schema must describe exactly the fields the Go type writes.
func TestSchemaMatchesType(t *testing.T) {
	var s struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.CycleV1(), &s); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	check := func(name string, typ reflect.Type, props map[string]json.RawMessage) {
		var fields []string
		for i := 0; i < typ.NumField(); i++ {
			tag := typ.Field(i).Tag.Get("json")
			for j := range tag {
				if tag[j] == ',' {
					tag = tag[:j]
					break
				}
			}
			fields = append(fields, tag)
		}
		sort.Strings(fields)
		if !reflect.DeepEqual(fields, keys(props)) {
			t.Errorf("%s: Go fields %v, schema properties %v", name, fields, keys(props))
		}
	}
	check("record", reflect.TypeOf(CycleRecord{}), s.Properties)
	check("phase", reflect.TypeOf(Phase{}), s.Defs["phase"].Properties)
	check("sample", reflect.TypeOf(Sample{}), s.Defs["sample"].Properties)
	check("alarm", reflect.TypeOf(Alarm{}), s.Defs["alarm"].Properties)
	check("verification", reflect.TypeOf(Verification{}), s.Defs["verification"].Properties)
	check("check", reflect.TypeOf(Check{}), s.Defs["check"].Properties)
	check("criteria", reflect.TypeOf(Criteria{}), s.Defs["criteria"].Properties)
	var whole struct {
		Defs map[string]struct {
			Enum []PhaseName `json:"enum"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.CycleV1(), &whole); err != nil {
		t.Fatal(err)
	}
	enum := whole.Defs["phase_name"]
	if !reflect.DeepEqual(enum.Enum, PhaseNames()) {
		t.Errorf("schema phase names %v, Go vocabulary %v", enum.Enum, PhaseNames())
	}
	// Every required key must be written even when empty.
	b, err := json.Marshal(CycleRecord{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Required {
		if _, ok := m[r]; !ok {
			t.Errorf("required %q is omitted from an empty record", r)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	r := exampleRecord()
	r.Result = "ok"
	if err := r.Validate(); err == nil || err.Error() != `cycle record autoclave-1 cycle 1042: result "ok" is not one of passed, failed, aborted, unknown` {
		t.Errorf("err = %v", err)
	}
	r = exampleRecord()
	r.Phases[1].Name = "warming"
	if err := r.Validate(); err == nil || err.Error() != `cycle record autoclave-1 cycle 1042: phases[1].name "warming" is not in the phase vocabulary` {
		t.Errorf("err = %v", err)
	}
	r = exampleRecord()
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
}
