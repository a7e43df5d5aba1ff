package journal

import (
	"fmt"
	"testing"
	"time"
)

// A commit waits for company only when many devices write independently:
// one producer waiting for each commit, whatever devices it writes for,
// must never wait (filling a journal for 20 devices one entry at a time
// would take 20 ms an entry).
func TestBusynessNeedsRequestsArrivingDuringCommits(t *testing.T) {
	var b busyness
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	second := func(s int, arrivedMeanwhile int) {
		for i := range 200 {
			batch := []*request{{device: fmt.Sprintf("ac-%03d", i)}}
			b.note(batch, arrivedMeanwhile, start.Add(time.Duration(s)*time.Second+time.Duration(i)*time.Millisecond))
		}
	}
	for s := range 3 {
		second(s, 0) // one producer: nothing arrives while its commit runs
	}
	if b.busy {
		t.Fatal("one producer writing for 200 devices in turn made commits wait")
	}
	for s := 3; s < 6; s++ {
		second(s, 1)
	}
	if !b.busy {
		t.Fatal("200 devices whose requests arrive during commits did not make commits wait")
	}
}
