package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
	"github.com/sterigate/sterigate/protocol/verify"
	"github.com/sterigate/sterigate/protocol/verify/verifytest"
)

var updateVerifyCycle = flag.Bool("update-verify-cycle", false, "rewrite testdata/verify-cycle/ from its fixtures")

const verifyCycleDir = "testdata/verify-cycle"

// verifyCycleInput is what mosquitto_sub printed for a handful of cycles:
// plain payloads, "topic payload" lines (-v), a replayed message, a
// telemetry message, and one record whose recorded verdict is wrong.
func verifyCycleInput(t *testing.T) []byte {
	t.Helper()
	// Samples every 2 s keep the file small and the hold within the 2.5 s
	// limit; air removal, drying and air admission keep their last sample,
	// exhaust its first and last; values are rounded as a device reports
	// them.
	short := func(rec protocol.CycleRecord, cycle uint64) protocol.CycleRecord {
		var kept []protocol.Sample
		round := func(v float64) float64 { return math.Round(v*100) / 100 }
		for i, s := range rec.Samples {
			last := i+1 == len(rec.Samples) || rec.Samples[i+1].Phase != s.Phase
			first := i == 0 || rec.Samples[i-1].Phase != s.Phase
			switch s.Phase {
			case protocol.PhaseAirRemoval, protocol.PhaseDrying, protocol.PhaseAirAdmission:
				if !last {
					continue
				}
			case protocol.PhaseExhaust:
				if !first && !last {
					continue
				}
			}
			s.TempC, s.PressureKPa = round(s.TempC), round(s.PressureKPa)
			for id, v := range s.Ch {
				s.Ch[id] = round(v)
			}
			kept = append(kept, s)
		}
		rec.Samples, rec.Cycle, rec.ID = kept, cycle, protocol.CycleID("dax", rec.Device, cycle)
		rec.Seq = cycle
		return rec
	}
	judged := func(rec protocol.CycleRecord) protocol.CycleRecord {
		v := verify.Judge(rec, nil)
		rec.Verification = &v
		return rec
	}
	every2, heat := 2*time.Second, 20*time.Second
	healthy := judged(short(verifytest.Cycle{Program: "134-porous", Every: every2, Heat: heat, Probes: true}.Record(), 101))
	// A gateway that recorded "pass" on a sag: the recorded verdict is
	// wrong, and verify-cycle must say so.
	sag := short(verifytest.Cycle{Program: "134-porous", Every: every2, Heat: heat,
		During: func(e time.Duration, r *verifytest.Reading) {
			if e >= 60*time.Second && e < 80*time.Second {
				*r = verifytest.Saturated(131.5)
			}
		}}.Record(), 102)
	sag.Verification = healthy.Verification
	pAir := steam.PressureKPa(137)
	ncg := short(verifytest.Cycle{Program: "134-porous", Every: every2, Heat: heat, HoldTempC: 134.5,
		During: func(_ time.Duration, r *verifytest.Reading) { r.PressureKPa = pAir }}.Record(), 103)
	printer := judged(short(verifytest.Cycle{Program: "Universal/134°C/3min", Every: 30 * time.Second}.Record(), 104))
	printer.Source = "printer"
	bowie := judged(short(verifytest.Cycle{Program: "bowie-dick", Every: every2, Heat: heat, Hold: 210 * time.Second}.Record(), 105))
	leak := verifytest.LeakTest{RateKPaMin: 0.4, Every: 2500 * time.Millisecond}.Record()
	leak.Result = protocol.ResultFailed
	leak = judged(short(leak, 106))
	gravity := judged(short(verifytest.Cycle{Program: "gravity-121", SetPointC: 121, Every: every2, Heat: heat}.Record(), 107))

	line := func(rec protocol.CycleRecord) []byte {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var buf bytes.Buffer
	buf.Write(line(healthy))
	buf.WriteString("\n")
	buf.Write(line(sag))
	buf.WriteString("\n\n") // a blank line is no record
	buf.WriteString("sterigate/dax/autoclave-1/cycle ")
	buf.Write(line(ncg))
	buf.WriteString("\n")
	buf.WriteString(`sterigate/dax/autoclave-1/telemetry {"schema":"sterigate.telemetry.v1","device":"autoclave-1","samples":[]}` + "\n")
	buf.Write(line(printer))
	buf.WriteString("\r\n") // a line ending copied through Windows
	replayed := line(bowie)
	buf.WriteString(`{"replay":true,`)
	buf.Write(replayed[1:])
	buf.WriteString("\n")
	buf.Write(line(leak))
	buf.WriteString("\n")
	buf.Write(line(gravity))
	buf.WriteString("\n")
	return buf.Bytes()
}

func TestVerifyCycleGolden(t *testing.T) {
	input := filepath.Join(verifyCycleDir, "records.jsonl")
	if *updateVerifyCycle {
		if err := os.MkdirAll(verifyCycleDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(input, verifyCycleInput(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"table.golden", []string{input}},
		{"json.golden", []string{"--json", input}},
		{"json.golden", []string{input, "--json"}}, // flags after the file name too
	} {
		var out, errOut bytes.Buffer
		err := verifyCycle(tc.args, nil, &out, &errOut)
		// The sag record carries a "pass" the data contradict: exit 1,
		// naming it.
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 verdict(s) differ from the record: line 2 dax:autoclave-1:102 (recorded pass, now fail)") {
			t.Errorf("%v: err = %v", tc.args, err)
		}
		if errOut.Len() > 0 {
			t.Errorf("%v: stderr %q", tc.args, errOut.String())
		}
		golden := filepath.Join(verifyCycleDir, tc.golden)
		if *updateVerifyCycle {
			if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != string(want) {
			t.Errorf("%v: output differs from %s; if deliberate, run go test -run VerifyCycle -update-verify-cycle:\n%s", tc.args, golden, firstDifference(out.String(), string(want)))
		}
	}
}

// firstDifference shows the first line where got and want part.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, gl, wl)
		}
	}
	return ""
}

// The file checked in is what the fixtures build: the golden outputs judge
// the records the test describes, not stale ones.
func TestVerifyCycleInputIsCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(verifyCycleDir, "records.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(verifyCycleInput(t), want) {
		t.Error("testdata/verify-cycle/records.jsonl is stale; run go test -run VerifyCycle -update-verify-cycle")
	}
}

func TestVerifyCycleStdinAndErrors(t *testing.T) {
	rec := verifytest.Cycle{Program: "134-porous"}.Record()
	v := verify.Judge(rec, nil)
	rec.Verification = &v
	good, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	run := func(input string, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := verifyCycle(args, strings.NewReader(input), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	// One good record on standard input, no newline at the end: exit 0.
	out, _, err := run(string(good), "-")
	if err != nil || !strings.Contains(out, "1 record(s): 1 pass; 0 disagree with the device") {
		t.Errorf("stdin: %q, %v", out, err)
	}
	// Lines that are not records are named, the rest still judged: exit 1.
	out, errOut, err := run("hello\n"+string(good)+"\n{\"schema\":\"sterigate.cycle.v2\"}\n{broken\n", "-")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "3 line(s) could not be judged") {
		t.Errorf("bad lines: err %v", err)
	}
	for _, w := range []string{
		`standard input line 1: neither "topic payload" (mosquitto_sub -v) nor a JSON payload: "hello"`,
		`standard input line 3: schema "sterigate.cycle.v2" is not sterigate.cycle.v1`,
		"standard input line 4: not a JSON object",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if !strings.Contains(out, "1 record(s): 1 pass") {
		t.Errorf("the good record was not judged: %q", out)
	}
	// Nothing to judge is a failure, not a silent success.
	if _, _, err := run("sterigate/dax/a/status {\"state\":\"online\"}\n", "-"); err == nil || !strings.Contains(err.Error(), "no cycle record") {
		t.Errorf("no records: %v", err)
	}
	if _, _, err := run("", filepath.Join(t.TempDir(), "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := run("", "a", "b"); exitCode(err) != 2 {
		t.Errorf("two files: exit %d (%v), want 2", exitCode(err), err)
	}
	// It is in the command table.
	if _, ok := commands()["verify-cycle"]; !ok {
		t.Error("verify-cycle is not registered")
	}
}
