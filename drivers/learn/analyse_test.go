package learn

import (
	"errors"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/sim/autoclave"
	"github.com/sterigate/sterigate/sim/scenario"
)

func scenarioOf(t testing.TB, yaml string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// standardPlace lays the simulator's 24 registers out from base.
func standardPlace(base int) map[int]int {
	place := map[int]int{}
	for i := 0; i < 24; i++ {
		place[i] = base + i
	}
	return place
}

// TestDraftNeverReadsWhatTheDeviceRefused: the device answers 3:0-17 and
// 3:20-40 only (exception 2 at 18-19). The temperature sits at 17, the
// pressure at 20: with the default max_gap of 8 one request would read
// through 18-19 and fail on every poll; the draft lowers max_gap.
func TestDraftNeverReadsWhatTheDeviceRefused(t *testing.T) {
	place := map[int]int{0: 17, 2: 20, 3: 21, 5: 22, 6: 23, 16: 30, 17: 31, 18: 32, 4: 33, 7: 34, 1: 10}
	blocks := []Block{{3, 0, 18}, {3, 20, 21}}
	rec := synthRecording(t, learnScenario(t, "134-porous", 5000), 40*60, blocks, place, 29*60)
	res := Analyse(rec)
	text, err := Draft(res, rec, DraftOptions{Name: "gap"})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	p, err := profile.Parse("gap.yaml", text)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range p.Blocks {
		if int(b.Start) <= 19 && int(b.Start)+int(b.Count) > 18 {
			t.Errorf("block %+v reads 18-19, which the device refused\n%s", b, text)
		}
	}
	if !strings.Contains(string(text), "max_gap: 1  # lowered") {
		t.Errorf("max_gap not lowered to 1:\n%s", text)
	}
	if f := res.Find(profile.RoleChamberTemperature); f == nil || f.Address != 17 || f.Scale != 0.1 || f.Type != profile.TypeI16 {
		t.Errorf("chamber temperature %+v", f)
	}
}

// TestLearnWhenTheRecordingStartsMidCycle: the user started learn late.
// The rest of the cycle, the idle after it and the start of the next one
// are recorded; the phases are still named right, idle included.
func TestLearnWhenTheRecordingStartsMidCycle(t *testing.T) {
	sc := scenarioOf(t, "pause: 3m\ndevices:\n  - device: default\n    counter_start: 300\n    cycles:\n      - program: 134-porous\n")
	// The first cycle starts at 10 s; start recording 5 minutes in, for
	// 31 minutes: the end of cycle 1, the pause and the start of cycle 2.
	rec := synthRecording(t, sc, 31*60, []Block{{4, 100, 24}}, standardPlace(100), 5*60)
	res := Analyse(rec)
	text, err := Draft(res, rec, DraftOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	p, err := profile.Parse("d.yaml", text)
	if err != nil {
		t.Fatal(err)
	}
	for code, name := range p.Phases {
		if want := autoclave.Phase(code).Name(); name != want {
			t.Errorf("code %d named %s, it is %s\n%s", code, name, want, text)
		}
	}
	for _, code := range []int{0, 2, 3, 5, 6, 7, 8, 10} {
		if _, ok := p.Phases[code]; !ok {
			t.Errorf("code %d (%s) not mapped\n%s", code, autoclave.Phase(code).Name(), text)
		}
	}
	// The running counter (low word at 106) read 301 through the plateau
	// and stepped when the next cycle started; the latch (117) took 301
	// when this one ended.
	if f := res.Find(profile.RoleCycleCounter); f == nil || f.Address != 106 || f.Type != profile.TypeU16 {
		t.Errorf("cycle counter %+v", f)
	}
	if f := res.Find(profile.RoleLastCycle); f == nil || f.Address != 117 || res.CycleEnd != profile.EndOnLastCycleChange {
		t.Errorf("last cycle %+v, cycle end %s", f, res.CycleEnd)
	}
}

// TestIncompleteDraftSaysWhatIsMissing: a leak test has no plateau: no
// temperature and pressure can be paired. The draft is still written,
// marked INCOMPLETE, and the error names what is missing.
func TestIncompleteDraftSaysWhatIsMissing(t *testing.T) {
	sc := scenarioOf(t, "pause: 1m\ndevices:\n  - device: default\n    repeat: false\n    cycles:\n      - program: leak-test\n")
	rec := synthRecording(t, sc, 20*60, []Block{{3, 0, 24}}, standardPlace(0), 0)
	res := Analyse(rec)
	text, err := Draft(res, rec, DraftOptions{})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "chamber_temperature") {
		t.Fatalf("err %v, want ErrIncomplete naming chamber_temperature", err)
	}
	if !strings.Contains(string(text), "# INCOMPLETE") || !strings.Contains(string(text), "plateau between 105 and 140") {
		t.Errorf("draft:\n%s", text)
	}
	short := &Recording{Header: rec.Header, Samples: rec.Samples[:10]}
	if res := Analyse(short); res.Complete() || !strings.Contains(res.Missing[0], "too few") {
		t.Errorf("10 samples: %+v", res.Missing)
	}
}

// TestFindsADeviceClock: a u32 Unix time (low word first) among the
// registers is reported as the device clock.
func TestFindsADeviceClock(t *testing.T) {
	rec := synthRecording(t, learnScenario(t, "bowie-dick", 10), 30*60, []Block{{3, 0, 30}}, standardPlace(0), 20*60)
	epoch := uint32(1795849200) // 2026-11-28 07:00 UTC
	for k := range rec.Samples {
		now := epoch + uint32(k)
		rec.Samples[k].Values[0][26], rec.Samples[k].Values[0][27] = uint16(now), uint16(now>>16)
		rec.Samples[k].Values[0][24], rec.Samples[k].Values[0][25] = 0, 0
	}
	res := Analyse(rec)
	f := res.FindName("device_clock")
	if f == nil || f.Address != 26 || f.Type != profile.TypeU32 || f.Order != profile.OrderCDAB {
		t.Errorf("device clock %+v; findings %+v", f, res.Findings)
	}
}

// TestMirroredTablesAreReadOnce: a device that serves one table as both
// holding and input registers (the simulator does) gets a draft that
// reads function 3 only, with no doubt raised by the copies.
func TestMirroredTablesAreReadOnce(t *testing.T) {
	rec := synthRecording(t, learnScenario(t, "bowie-dick", 50), 25*60, []Block{{3, 0, 24}, {4, 0, 24}}, standardPlace(0), 20*60)
	// The input registers are read a request after the holding ones: now
	// and then the device has moved on in between.
	for k := 0; k+1 < len(rec.Samples); k += 3 {
		rec.Samples[k].Values[1] = rec.Samples[k+1].Values[0]
	}
	res := Analyse(rec)
	for _, f := range res.Findings {
		if f.Function != 3 {
			t.Errorf("%s read from function %d", f.Name, f.Function)
		}
		if f.Role == profile.RoleChamberTemperature && (f.Check || f.Confidence != "high") {
			t.Errorf("chamber temperature %s, check %v: %s", f.Confidence, f.Check, f.Evidence)
		}
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "serves its table as both") {
		t.Errorf("notes %q", res.Notes)
	}
}
