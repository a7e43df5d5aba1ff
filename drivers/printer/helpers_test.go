package printer_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

var t0 = time.Date(2026, 11, 28, 14, 3, 12, 0, time.UTC)

// memorySink is a protocol.Sink that keeps everything in slices. failCycles
// makes the first n Cycle calls fail, as a journal with a full disk would.
// Like the journal, it gives each record its id (site "dax") and keeps the
// first record of an id, dropping later ones.
type memorySink struct {
	mu         sync.Mutex
	failCycles int
	cycleCalls int
	records    []protocol.CycleRecord
	telemetry  []protocol.Telemetry
	events     []protocol.Event
}

func (s *memorySink) Cycle(_ context.Context, rec protocol.CycleRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cycleCalls++
	if s.cycleCalls <= s.failCycles {
		return errors.New("journal full")
	}
	rec.ID = rec.RecordID("dax")
	for _, r := range s.records {
		if r.ID == rec.ID {
			return nil
		}
	}
	s.records = append(s.records, rec)
	return nil
}

// journalSink is a memorySink that also answers what it holds, as the
// journal does (protocol.CycleHistory).
type journalSink struct{ memorySink }

func (s *journalSink) LatestCycleRecord(_ context.Context, device string, epoch uint32, cycle uint64) (*protocol.CycleRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var latest *protocol.CycleRecord
	for i := range s.records {
		r := &s.records[i]
		if r.Device == device && r.CounterEpoch == epoch && r.Cycle == cycle && (latest == nil || r.Revision > latest.Revision) {
			c := *r
			latest = &c
		}
	}
	return latest, nil
}

func (s *memorySink) Telemetry(_ context.Context, b protocol.Telemetry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.telemetry = append(s.telemetry, b)
	return nil
}

func (s *memorySink) Event(_ context.Context, ev protocol.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *memorySink) snapshot() ([]protocol.CycleRecord, []protocol.Telemetry, []protocol.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.CycleRecord(nil), s.records...), append([]protocol.Telemetry(nil), s.telemetry...), append([]protocol.Event(nil), s.events...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func builtin(t testing.TB, name string) *printer.Template {
	t.Helper()
	tp, ok := printer.BuiltinTemplate(name)
	if !ok {
		t.Fatalf("no built-in template %q", name)
	}
	return tp.WithLocation(time.UTC)
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// checkRecord compares a parsed record with the cycle the simulator printed.
// tolKPa is the printed pressure resolution (0.05 kPa in English, 0.5 kPa
// for bar with two decimals).
func checkRecord(t *testing.T, got protocol.CycleRecord, c printout.Cycle, tolKPa float64) {
	t.Helper()
	if got.Cycle != uint64(c.Counter) {
		t.Errorf("cycle = %d, want %d", got.Cycle, c.Counter)
	}
	if got.Program != c.Program {
		t.Errorf("program = %q, want %q", got.Program, c.Program)
	}
	if !got.StartedAt.Equal(c.Start) || !got.EndedAt.Equal(c.End) {
		t.Errorf("started/ended = %s/%s, want %s/%s", got.StartedAt, got.EndedAt, c.Start, c.End)
	}
	if got.Result != c.Result {
		t.Errorf("result = %q, want %q", got.Result, c.Result)
	}
	if !got.Complete || got.Source != "printer" {
		t.Errorf("complete = %v source = %q, want true, printer", got.Complete, got.Source)
	}
	if len(got.Phases) != len(c.Phases) {
		t.Fatalf("%d phases, want %d: %+v", len(got.Phases), len(c.Phases), got.Phases)
	}
	for i, m := range c.Phases {
		if got.Phases[i].Name != m.Name || !got.Phases[i].Start.Equal(m.At) {
			t.Errorf("phase %d = %s at %s, want %s at %s", i, got.Phases[i].Name, got.Phases[i].Start, m.Name, m.At)
		}
	}
	if len(got.Samples) != len(c.Samples) {
		t.Fatalf("%d samples, want %d", len(got.Samples), len(c.Samples))
	}
	for i, s := range c.Samples {
		g := got.Samples[i]
		if !g.At.Equal(s.At) || !near(g.TempC, s.TempC, 0.051) || !near(g.PressureKPa, s.PressureKPa, tolKPa) || g.Phase != protocol.PhaseSterilizing {
			t.Errorf("sample %d = %+v, want %+v in sterilizing", i, g, s)
		}
	}
	if len(c.Samples) > 0 {
		var ster *protocol.Phase
		for i := range got.Phases {
			if got.Phases[i].Name == protocol.PhaseSterilizing {
				ster = &got.Phases[i]
			}
		}
		if ster == nil || ster.TempMinC == nil || ster.TempMaxC == nil || ster.PressureMinKPa == nil || ster.PressureMaxKPa == nil {
			t.Fatalf("sterilizing phase lacks the printed extremes: %+v", ster)
		}
		if !near(*ster.TempMinC, c.PlateauMinC, 0.051) || !near(*ster.TempMaxC, c.PlateauMaxC, 0.051) ||
			!near(*ster.PressureMinKPa, c.PlateauMinKPa, tolKPa) || !near(*ster.PressureMaxKPa, c.PlateauMaxKPa, tolKPa) {
			t.Errorf("extremes %.2f..%.2f °C %.2f..%.2f kPa, want %.2f..%.2f °C %.2f..%.2f kPa", *ster.TempMinC, *ster.TempMaxC,
				*ster.PressureMinKPa, *ster.PressureMaxKPa, c.PlateauMinC, c.PlateauMaxC, c.PlateauMinKPa, c.PlateauMaxKPa)
		}
	}
	// The device's own figures: its serial number always, its hold time
	// and plateau extremes when it printed a plateau block.
	f := got.DeviceFigures
	if f == nil || f.SerialNumber != c.Serial || f.Other["set_point_c"] == "" {
		t.Errorf("device figures %+v, want serial %s and the set point", f, c.Serial)
	} else if len(c.Samples) > 0 && (f.HoldSeconds == nil || *f.HoldSeconds != float64(c.HeldSeconds) ||
		f.PlateauMinC == nil || !near(*f.PlateauMinC, c.PlateauMinC, 0.051) || f.PlateauMaxKPa == nil || !near(*f.PlateauMaxKPa, c.PlateauMaxKPa, tolKPa)) {
		t.Errorf("device figures %+v, want hold %d s and the plateau %.1f..%.1f °C", f, c.HeldSeconds, c.PlateauMinC, c.PlateauMaxC)
	}
	switch {
	case c.AlarmCode == 0 && len(got.Alarms) != 0:
		t.Errorf("alarms = %+v, want none", got.Alarms)
	case c.AlarmCode != 0 && (len(got.Alarms) != 1 || got.Alarms[0].Code != c.AlarmCode):
		t.Errorf("alarms = %+v, want code %d", got.Alarms, c.AlarmCode)
	}
	got.Device = "x"
	if err := got.Validate(); err != nil {
		t.Errorf("record does not validate: %v", err)
	}
}

var results = []protocol.Result{protocol.ResultPassed, protocol.ResultFailed, protocol.ResultAborted}

func styleTemplate(style printout.Style) string {
	if style == printout.StyleGerman {
		return "dac-de"
	}
	return "statclave-en"
}

func tolerance(style printout.Style) float64 {
	if style == printout.StyleGerman {
		return 0.51
	}
	return 0.051
}
