package learn

import (
	"testing"

	"github.com/sterigate/sterigate/drivers/profile"
)

// learnPrograms are the cycles a user may learn from; the leak test has
// no plateau and is not one of them.
var learnPrograms = []string{"134-porous", "121-15", "bowie-dick", "gravity-121", "121-20", "134-prion"}

// TestLearnShuffledSimulator is the acceptance test of learn: for 20
// register maps nobody wrote a profile for (moved, re-typed, re-ordered,
// codes renumbered), the draft decodes the temperature and pressure of
// every sample within 0.1 K / 0.1 kPa of the simulator's truth, the
// counter exactly, and the phase of every sample right.
func TestLearnShuffledSimulator(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 3
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		program := learnPrograms[int(seed)%len(learnPrograms)]
		counter := uint32(seed * 7919)
		if seed%3 == 0 {
			counter += 70000 // a counter past 65535: its high word is not zero
		}
		sr := recordShuffled(t, seed, program, counter)
		res := Analyse(sr.rec)
		text, err := Draft(res, sr.rec, DraftOptions{})
		if err != nil {
			t.Errorf("seed %d (%s): %v\n%s\n%s", seed, program, err, text, sr.shuffle)
			continue
		}
		p, err := profile.Parse("draft.yaml", text)
		if err != nil {
			t.Fatalf("seed %d: the draft does not parse: %v\n%s", seed, err, text)
		}
		before := t.Failed()
		checkDecodes(t, sr, p)
		if !before && t.Failed() {
			t.Logf("seed %d (%s) draft:\n%s", seed, program, text)
		}
	}
}
