package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
	"github.com/sterigate/sterigate/protocol/verify/verifytest"
)

// Every record a device delivers is judged by its program's criteria: the
// profile's, with the site's keys on top; a program without criteria by
// inferred ones. The device's result is never touched.
func TestVerifyingSinkJudgesByTheResolvedCriteria(t *testing.T) {
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "c.yaml"), []byte(`
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - id: a
    driver: modbus-tcp
    address: "127.0.0.1:1502"
    profile: sim-autoclave
    criteria: {134-porous: {min_hold_s: 240}, 2: {band_k: 4}}
  - {id: p, driver: printer, serial: {port: /dev/ttyS0}, template: dac-de, criteria: {"Prog 7": {kind: porous, set_point_c: 134}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, criteria, err := resolveDevices(cfg)
	if err != nil {
		t.Fatal(err)
	}
	capture := &captureSink{}
	sink := &verifyingSink{sinkStore: capture, criteria: criteria}
	deliver := func(device, program string) protocol.Verification {
		t.Helper()
		rec := verifytest.Cycle{Program: program, Probes: true}.Record()
		rec.Device = device
		if err := sink.Cycle(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		got := capture.records[len(capture.records)-1]
		if got.Result != protocol.ResultPassed || got.Verification == nil {
			t.Fatalf("%s %s: result %s, verification %v", device, program, got.Result, got.Verification)
		}
		return *got.Verification
	}
	// A 3-minute hold under the site's 4 minutes.
	v := deliver("a", "134-porous")
	if v.Verdict != protocol.VerdictFail || v.Criteria.Source != verify.SourceSite || v.Criteria.MinHoldSeconds != 240 || *v.AgreesWithDevice {
		t.Errorf("a 134-porous: %s %+v", v.Verdict, v.Criteria)
	}
	// The profile's criteria as they are.
	if v := deliver("a", "121-15"); v.Criteria.Source != verify.SourceProfile || v.Criteria.SetPointC != 121 || v.Criteria.MinHoldSeconds != 900 {
		t.Errorf("a 121-15: %+v", v.Criteria)
	}
	// By program code 2: 134-prion, band widened, hold from the kind.
	if v := deliver("a", "134-prion"); v.Criteria.Source != verify.SourceSite || v.Criteria.BandK != 4 || v.Criteria.MinHoldSeconds != 1080 {
		t.Errorf("a 134-prion: %+v", v.Criteria)
	}
	// A printed program the site gave criteria; another one inferred.
	if v := deliver("p", "Prog 7"); v.Verdict != protocol.VerdictPass || v.Criteria.Source != verify.SourceSite {
		t.Errorf("p Prog 7: %s %+v %v", v.Verdict, v.Criteria, v.Reasons)
	}
	if v := deliver("p", "Universal 134"); v.Verdict != protocol.VerdictPass || v.Criteria.Source != verify.SourceInferred {
		t.Errorf("p Universal 134: %s %+v", v.Verdict, v.Criteria)
	}
	if v := deliver("p", "Liquids 115"); v.Verdict != protocol.VerdictIndeterminate || v.Criteria.Set != verify.SetNone {
		t.Errorf("p Liquids 115 has no criteria: %s %+v", v.Verdict, v.Criteria)
	}
	// A record a driver delivers again from its saved state (after a
	// restart) is judged exactly as the first time, whatever it carries.
	first := deliver("a", "134-porous")
	again := verifytest.Cycle{Program: "134-porous", Probes: true}.Record()
	again.Device, again.Verification = "a", &protocol.Verification{Verdict: protocol.VerdictPass}
	if err := sink.Cycle(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(capture.records[len(capture.records)-1].Verification)
	if string(a) != string(b) {
		t.Errorf("judged again differently:\n%s\n%s", a, b)
	}
}

// The metrics of sterigate's verdicts: records by verdict, disagreements
// (zero for a device with none), and the console's count by result
// unchanged; every name in docs/config.md.
func TestVerdictMetrics(t *testing.T) {
	cfg := &config.Config{Devices: []config.Device{{ID: "a"}, {ID: "b"}}}
	cycles, metrics := cycleCounts(cfg, map[journal.CycleCount]int64{
		{Device: "a", Result: protocol.ResultPassed, Verdict: protocol.VerdictPass}:                     3,
		{Device: "a", Result: protocol.ResultPassed, Verdict: protocol.VerdictFail, Disagreement: true}: 2,
		{Device: "a", Result: protocol.ResultFailed, Verdict: protocol.VerdictFail}:                     1,
		{Device: "a", Result: protocol.ResultPassed}:                                                    4, // before verification
	})
	byResult := map[protocol.Result]int64{}
	for _, c := range cycles {
		byResult[c.Result] += c.Count
	}
	if byResult[protocol.ResultPassed] != 9 || byResult[protocol.ResultFailed] != 1 || len(cycles) != 2 {
		t.Errorf("cycles %+v", cycles)
	}
	got := map[string]float64{}
	for _, m := range metrics {
		got[m.Name+" "+m.Labels["device"]+" "+m.Labels["verdict"]] = m.Value
		if m.Type != console.Counter || m.Help == "" {
			t.Errorf("%s: type %v, help %q", m.Name, m.Type, m.Help)
		}
	}
	want := map[string]float64{
		"sterigate_cycle_verdicts_total a pass": 3, "sterigate_cycle_verdicts_total a fail": 3,
		"sterigate_verification_disagreements_total a ": 2, "sterigate_verification_disagreements_total b ": 0,
	}
	if len(got) != len(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	docs, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sterigate_cycle_verdicts_total", "sterigate_verification_disagreements_total"} {
		if !strings.Contains(string(docs), "`"+name+"`") {
			t.Errorf("docs/config.md does not list %s", name)
		}
	}
}
