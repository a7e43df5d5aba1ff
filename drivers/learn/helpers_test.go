package learn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/autoclave"
	"github.com/sterigate/sterigate/sim/rtuslave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// simClock is a Clock that moves the simulator: sleeping d advances the
// simulation by d, so scanning and recording a whole cycle take no real
// time and the device sees exactly the request rate learn would send.
type simClock struct {
	s   *sim.Simulator
	now time.Time
}

func (c *simClock) Now() time.Time { return c.now }

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		c.now = c.now.Add(d)
		c.s.Advance(d.Seconds())
	}
	return nil
}

// bankReader reads the simulator's register bank in process, answering
// as a Modbus device would (exceptions for refused reads), and keeps, per
// block, the standard register image at the moment of every read: the
// truth a learned profile is judged against.
type bankReader struct {
	bank *sim.Bank
	mu   sync.Mutex
	log  map[[3]int][][sim.RegisterCount]uint16 // (function, address, count) → images
	keep bool
}

func (r *bankReader) ReadRegisters(_ context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	v, err := r.bank.ReadRegisters(unit, function, address, quantity)
	switch {
	case errors.Is(err, rtuslave.ErrIllegalAddress):
		return nil, &modbus.ExceptionError{Function: function, Code: 2}
	case errors.Is(err, rtuslave.ErrIllegalFunction):
		return nil, &modbus.ExceptionError{Function: function, Code: 1}
	case err != nil:
		return nil, &modbus.ExceptionError{Function: function, Code: 11}
	}
	if r.keep {
		img, _ := r.bank.Image(unit)
		r.mu.Lock()
		k := [3]int{int(function), int(address), int(quantity)}
		r.log[k] = append(r.log[k], img)
		r.mu.Unlock()
	}
	return v, nil
}

// learnScenario: a warm-up cycle so that the latched block holds a
// finished cycle, then the cycle learned, starting about three minutes
// later (time for the scan and some idle recording).
func learnScenario(t testing.TB, program string, counterStart uint32) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("learn.yaml", []byte(fmt.Sprintf(`
pause: 3m
devices:
  - device: default
    counter_start: %d
    repeat: false
    cycles:
      - program: bowie-dick
      - program: %s
`, counterStart, program)))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// simRecording is one learning run against a shuffled simulator.
type simRecording struct {
	shuffle *sim.Shuffle
	rec     *Recording
	reader  *bankReader
	scan    *ScanSummary
}

// recordShuffled scans and records one cycle of a simulator whose register
// map is shuffled from seed, in simulated time.
func recordShuffled(t testing.TB, seed int64, program string, counterStart uint32) simRecording {
	t.Helper()
	sh := sim.NewShuffle(seed)
	s, err := sim.New(sim.Options{Seed: seed, Shuffle: sh, Scenario: learnScenario(t, program, counterStart)})
	if err != nil {
		t.Fatal(err)
	}
	// Through the warm-up cycle.
	for img, _ := s.Bank().Image(1); img[17] == uint16(counterStart) && img[16] == uint16(counterStart>>16); img, _ = s.Bank().Image(1) {
		s.Advance(1)
	}
	clk := &simClock{s: s, now: time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)}
	rd := &bankReader{bank: s.Bank(), log: map[[3]int][][sim.RegisterCount]uint16{}}
	ctx := context.Background()
	sum, err := Scan(ctx, rd, ScanOptions{Unit: 1, Clock: clk})
	if err != nil {
		t.Fatalf("seed %d: scan: %v", seed, err)
	}
	blocks, _ := WatchBlocks(sum.Readable, sum.MaxRegisters, 0)
	rd.keep = true
	rec, err := Record(ctx, rd, RecordOptions{Unit: 1, Device: "simulator (shuffled)", Blocks: blocks, Scan: sum, Clock: clk,
		Duration: 80 * time.Minute, LiveEvery: time.Minute, syncLive: true})
	if err != nil {
		t.Fatalf("seed %d: record: %v", seed, err)
	}
	if got := s.Bank().WritesRefused(1); got != 0 {
		t.Fatalf("seed %d: the simulator saw %d write requests during learn", seed, got)
	}
	return simRecording{shuffle: sh, rec: rec, reader: rd, scan: sum}
}

// truthValue is a standard-map value of the image.
func truthValue(name string, img [sim.RegisterCount]uint16) float64 {
	switch name {
	case "chamber_temp":
		return float64(int16(img[0])) / 10
	case "chamber_pressure":
		return float64(img[2]) / 10
	case "phase":
		return float64(img[3])
	case "cycle_counter":
		return float64(uint32(img[5])<<16 | uint32(img[6]))
	}
	panic(name)
}

// checkDecodes decodes every sample of the recording with the draft
// profile and compares temperature, pressure, counter and phase with the
// simulator's truth at the moment each was read.
func checkDecodes(t testing.TB, sr simRecording, p *profile.Profile) {
	t.Helper()
	roleTruth := map[profile.Role]string{
		profile.RoleChamberTemperature: "chamber_temp", profile.RoleChamberPressure: "chamber_pressure",
		profile.RoleCycleCounter: "cycle_counter", profile.RolePhase: "phase",
	}
	tol := map[profile.Role]float64{profile.RoleChamberTemperature: 0.1, profile.RoleChamberPressure: 0.1}
	bad := 0
	for role, truthName := range roleTruth {
		name, ok := p.RoleField[role]
		if !ok {
			t.Errorf("seed %d: the draft has no %s", sr.shuffle.Seed, role)
			continue
		}
		f, _ := p.Field(name)
		bi := -1
		for i, b := range sr.rec.Header.Blocks {
			if b.Function == f.Function && int(f.Address) >= int(b.Start) && int(f.Address)+f.Span() <= b.End() {
				bi = i
			}
		}
		if bi < 0 {
			t.Errorf("seed %d: %s at %d:%d is in no recorded block", sr.shuffle.Seed, role, f.Function, f.Address)
			continue
		}
		blk := sr.rec.Header.Blocks[bi]
		images := sr.reader.log[[3]int{int(blk.Function), int(blk.Start), int(blk.Count)}]
		if len(images) != len(sr.rec.Samples) {
			t.Fatalf("seed %d: %d truth images for %d samples", sr.shuffle.Seed, len(images), len(sr.rec.Samples))
		}
		for k, s := range sr.rec.Samples {
			off := int(f.Address) - int(blk.Start)
			got, err := f.Value(s.Values[bi][off : off+f.Span()])
			if err != nil {
				t.Fatal(err)
			}
			want := truthValue(truthName, images[k])
			if role == profile.RolePhase {
				gotName, wantName := p.Phases[int(got)], autoclave.Phase(want).Name()
				if gotName != wantName && bad < 10 {
					bad++
					t.Errorf("seed %d: sample %d (t=%.0f s): phase code %v decodes as %q, the simulator is in %q", sr.shuffle.Seed, k, s.T, got, gotName, wantName)
				}
				continue
			}
			if math.Abs(got-want) > tol[role]+1e-9 && bad < 10 {
				bad++
				t.Errorf("seed %d: sample %d (t=%.0f s): %s decodes to %v, the simulator says %v", sr.shuffle.Seed, k, s.T, role, got, want)
			}
		}
	}
	if bad > 0 {
		t.Logf("layout:\n%s", sr.shuffle)
	}
}
