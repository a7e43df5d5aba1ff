package sim

import (
	"errors"
	"math"
	"testing"

	"github.com/sterigate/sterigate/sim/rtuslave"
)

// TestShuffleServesTheSameValues checks, for many seeds, that every value
// of the standard map can be read back from its shuffled place, that the
// shuffled map really differs from the standard one, and that addresses
// outside its tables answer exception 2.
func TestShuffleServesTheSameValues(t *testing.T) {
	for seed := int64(1); seed <= 40; seed++ {
		sh := NewShuffle(seed)
		s, err := New(Options{Seed: seed, Shuffle: sh})
		if err != nil {
			t.Fatal(err)
		}
		// Into the plateau, where every value is non-trivial.
		for s.units[0].dev.Phase() != 5 {
			s.Advance(1)
		}
		s.Advance(20)
		img, _ := s.Bank().Image(1)
		moved := 0
		for _, f := range sh.Fields {
			words, err := s.Bank().ReadRegisters(1, f.Function, f.Address, uint16(f.Registers()))
			if err != nil {
				t.Fatalf("seed %d: %s at %d/%d: %v", seed, f.Name, f.Function, f.Address, err)
			}
			got, want := f.Decode(words), valueOf(f.Name, &img)
			if math.Abs(got-want) > 0.06 { // °F×10 quantises to 0.056 K
				t.Errorf("seed %d: %s decodes to %v, the standard map says %v\n%s", seed, f.Name, got, want, sh)
			}
			if f.Type != "u16" || f.Address > 23 || f.Codes != nil {
				moved++
			}
		}
		if moved < len(sh.Fields)/2 {
			t.Errorf("seed %d: only %d of %d fields moved or re-typed\n%s", seed, moved, len(sh.Fields), sh)
		}
		// A read that runs off the end of the first table.
		last := sh.tables[0]
		end := last.start + uint16(len(last.slots))
		if _, err := s.Bank().ReadRegisters(1, last.function, end-1, 2); !errors.Is(err, rtuslave.ErrIllegalAddress) {
			t.Errorf("seed %d: read across the end of a table at %d: err %v, want illegal address", seed, end, err)
		}
		if _, err := s.Bank().ReadRegisters(1, 3, 60000, 10); !errors.Is(err, rtuslave.ErrIllegalAddress) {
			t.Errorf("seed %d: read at 60000: err %v, want illegal address", seed, err)
		}
	}
}
