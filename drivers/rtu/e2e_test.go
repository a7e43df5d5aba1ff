package rtu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/cycle/cycletest"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
)

// syncBuffer is the simulator's truth file, read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) truths(t *testing.T) []sim.Truth {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sim.Truth
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var tr sim.Truth
		if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
			t.Fatalf("truth line %q: %v", sc.Text(), err)
		}
		out = append(out, tr)
	}
	return out
}

// End to end through the RTU driver: the simulator runs three autoclaves as
// units 1-3 of one virtual RTU bus, a fourth configured unit is silent, and
// every cycle the simulator finishes must come out of the bus's modbus.Units
// as a cycle record with the device's counter, program and verdict.
func TestEndToEndSimulatorCyclesThroughTheRTUBus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link := filepath.Join(t.TempDir(), "ttyRTU")
	truth := &syncBuffer{}
	s, err := sim.New(sim.Options{Devices: 3, Speed: 1000, Seed: 7, RTU: link, Truth: truth})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	defer wg.Wait()
	defer cancel()
	eventually(t, 10*time.Second, "the simulator's RTU port", func() bool { return pathExists(link) })

	b, sink := runLink(t, mustSerial(t, SerialConfig{Port: link}, Options{Timeout: 300 * time.Millisecond}), modbus.LinkConfig{}, simProfile(t), 5*time.Millisecond, 1, 2, 3, 4)

	// Wait for the second finished cycle of every live device: the first
	// may have started before the gateway saw it.
	sink.WaitFor(t, 60*time.Second, "two cycle records per live device", func(s *cycletest.Sink) bool {
		per := map[string]int{}
		for _, r := range s.Records() {
			per[r.Device]++
		}
		return per["ster1"] >= 2 && per["ster2"] >= 2 && per["ster3"] >= 2
	})
	truthOf := map[string]sim.Truth{}
	for _, tr := range truth.truths(t) {
		truthOf[fmt.Sprintf("ster%d:%d", tr.Unit, tr.Counter)] = tr
	}
	for _, r := range sink.Records() {
		tr, ok := truthOf[fmt.Sprintf("%s:%d", r.Device, r.Cycle)]
		if !ok {
			t.Fatalf("record %s cycle %d has no finished cycle in the simulator's truth", r.Device, r.Cycle)
		}
		if r.Program != tr.Program || string(r.Result) != tr.Result || r.Source != "modbus-rtu" {
			t.Fatalf("record %s cycle %d: program %q result %q source %q; simulator says program %q result %q",
				r.Device, r.Cycle, r.Program, r.Result, r.Source, tr.Program, tr.Result)
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if st := unitStats(b, 4); st.Timeouts == 0 || st.GoodPolls != 0 {
		t.Fatalf("silent unit 4: %+v", st)
	}
	for _, ev := range sink.EventsOf(protocol.EventOffline) {
		if ev.Device != "ster4" {
			t.Fatalf("live device %s went offline: %s", ev.Device, ev.Text)
		}
	}
}
