package printer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

// syncBuffer is a bytes.Buffer safe for the simulator's writers and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTapRecordsEverySimulatedCycle runs the simulator (accelerated) with
// its printer port on a pseudo-terminal and the Tap on the other end: every
// cycle the simulator finished must become a record that agrees with the
// simulator's truth file, in both printout styles.
func TestTapRecordsEverySimulatedCycle(t *testing.T) {
	const scenarioYAML = `
pause: 2m
devices:
  - device: default
    cycles:
      - program: 134-porous
      - program: bowie-dick
        faults: [{kind: temp_sag}]
      - program: 121-15
        faults: [{kind: operator_abort}]
      - program: 134-porous
        faults: [{kind: overshoot}]
      - program: 134-porous
        faults: [{kind: power_loss}]
`
	const cycles = 5
	for _, style := range []string{"en", "de"} {
		t.Run(style, func(t *testing.T) {
			sc, err := scenario.Parse("e2e.yaml", []byte(scenarioYAML))
			if err != nil {
				t.Fatal(err)
			}
			link := t.TempDir() + "/printer"
			var console, truth syncBuffer
			s, err := sim.New(sim.Options{Devices: 1, Speed: 3000, Seed: 7, Scenario: sc, Epoch: t0,
				Printer: link, PrinterStyle: style, PrinterBaud: 115200, Console: &console, Truth: &truth})
			if err != nil {
				t.Fatal(err)
			}
			// The simulator holds the pty's slave open, so a printout made
			// before the tap opens the port waits in the pty for it.
			ctx, cancel := context.WithCancel(context.Background())
			simDone := make(chan error, 1)
			go func() { simDone <- s.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-simDone; err != nil {
					t.Errorf("simulator Run: %v", err)
				}
			}()
			waitFor(t, "the simulator's printer port", func() bool { return strings.Contains(console.String(), "printer device=1 on "+link) })
			tmplName := map[string]string{"en": "statclave-en", "de": "dac-de"}[style]
			sink := &memorySink{}
			startTap(t, printer.TapConfig{Port: link, Template: builtin(t, tmplName), ReportTimeout: 30 * time.Second}, sink)

			var truths []sim.Truth
			waitFor(t, "the truth of every scheduled cycle", func() bool {
				truths = truths[:0]
				sc := bufio.NewScanner(strings.NewReader(truth.String()))
				for sc.Scan() {
					var tr sim.Truth
					if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
						t.Fatalf("truth line %q: %v", sc.Text(), err)
					}
					truths = append(truths, tr)
				}
				return len(truths) >= cycles
			})
			byCounter := map[uint64]protocol.CycleRecord{}
			waitFor(t, "a record for every cycle", func() bool {
				recs, _, _ := sink.snapshot()
				for _, r := range recs {
					byCounter[r.Cycle] = r
				}
				for _, tr := range truths[:cycles] {
					if _, ok := byCounter[uint64(tr.Counter)]; !ok {
						return false
					}
				}
				return true
			})
			tol := map[string]float64{"en": 0.051, "de": 0.51}[style]
			for _, tr := range truths[:cycles] {
				rec := byCounter[uint64(tr.Counter)]
				what := tr.Program + "/" + tr.Fault
				t.Logf("cycle %d %s: truth %s alarm %d, record %s alarms %v, %d phases, %d samples", tr.Counter, what, tr.Result, tr.AlarmCode, rec.Result, rec.Alarms, len(rec.Phases), len(rec.Samples))
				if rec.Program != tr.Program || string(rec.Result) != tr.Result || !rec.Complete || rec.Device != "ac1" {
					t.Errorf("%s: record program %q result %s complete %v; truth program %q result %s", what, rec.Program, rec.Result, rec.Complete, tr.Program, tr.Result)
				}
				if d := rec.StartedAt.Sub(tr.StartedAt); d < -time.Second || d > time.Second {
					t.Errorf("%s: started %s, truth %s", what, rec.StartedAt, tr.StartedAt)
				}
				if d := rec.EndedAt.Sub(tr.EndedAt); d < -time.Second || d > time.Second {
					t.Errorf("%s: ended %s, truth %s", what, rec.EndedAt, tr.EndedAt)
				}
				if tr.AlarmCode != 0 && (len(rec.Alarms) == 0 || rec.Alarms[0].Code != int(tr.AlarmCode)) {
					t.Errorf("%s: alarms %+v, truth alarm %d", what, rec.Alarms, tr.AlarmCode)
				}
				if tr.AlarmCode == 0 && len(rec.Alarms) != 0 {
					t.Errorf("%s: alarms %+v, truth none", what, rec.Alarms)
				}
				if f := rec.DeviceFigures; tr.ReportedPlateauMinC != nil && (f == nil || f.HoldSeconds == nil || *f.HoldSeconds < tr.HoldS-1 || *f.HoldSeconds > tr.HoldS+1) {
					t.Errorf("%s: device figures %+v, device reported a hold of %.0f s", what, f, tr.HoldS)
				}
				for _, p := range rec.Phases {
					if p.Name == protocol.PhaseSterilizing && p.TempMinC != nil && tr.ReportedPlateauMinC != nil {
						if !near(*p.TempMinC, *tr.ReportedPlateauMinC, tol) || !near(*p.TempMaxC, *tr.ReportedPlateauMaxC, tol) {
							t.Errorf("%s: plateau %.2f..%.2f °C, device reported %.2f..%.2f", what, *p.TempMinC, *p.TempMaxC, *tr.ReportedPlateauMinC, *tr.ReportedPlateauMaxC)
						}
					}
				}
				var want []sim.TruthPhase
				for _, p := range tr.Phases {
					if p.Name != string(protocol.PhaseFault) { // the printer prints no fault line
						want = append(want, p)
					}
				}
				if len(rec.Phases) != len(want) {
					t.Errorf("%s: %d phases, truth %d", what, len(rec.Phases), len(want))
				} else {
					for i, p := range want {
						if d := rec.Phases[i].Start.Sub(p.At); string(rec.Phases[i].Name) != p.Name || d < -time.Second || d > time.Second {
							t.Errorf("%s: phase %d %s at %s, truth %s at %s", what, i, rec.Phases[i].Name, rec.Phases[i].Start, p.Name, p.At)
						}
					}
				}
				if err := rec.Validate(); err != nil {
					t.Errorf("%s: %v", what, err)
				}
			}
		})
	}
}
