package protocol

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"
	"time"
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
