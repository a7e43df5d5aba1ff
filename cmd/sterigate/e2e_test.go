package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// TestEndToEndBrokerOutage is the product's promise in one test: the
// simulator, the gateway and Mosquitto run as separate processes; the broker
// is stopped for several simulated cycles, the gateway is SIGKILLed and
// restarted during the outage, then the broker comes back. Every cycle the
// simulator finished must arrive, once per id, in counter order, byte for
// byte as the journal holds it.
//
// The outage begins as a blackhole (the broker's TCP connection stays up
// but nothing comes back, as on a half-dead network), so records are
// published and never acknowledged; then Mosquitto is stopped. The test
// fails if the journal is skipped (the SIGKILL during the outage loses the
// records held in memory) or if a record is marked delivered before its
// PUBACK (the records published into the blackhole never arrive).
func TestEndToEndBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs whole simulated cycles")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, filepath.Join(dir))
	sub := subscribe(t, broker.addr(), "sterigate/#")
	brokerNet := startProxy(t, broker.addr())

	const cycles = 8
	sim, simAddr, truthPath := startSim(t, dir, 1, cycles, 600, 7, nil)

	dataDir := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: e2e-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"], topic_root: sterigate, keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1,
     profile: sim-autoclave, poll_interval: 50ms, timeout: 500ms, time_scale: 600}
`, dataDir, brokerNet.addr(), simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)

	cycleIDs := func() map[string]int {
		seen := map[string]int{}
		for _, m := range sub.messages() {
			if strings.HasSuffix(m.Topic, "/cycle") {
				var r protocol.CycleRecord
				if err := json.Unmarshal(m.Payload, &r); err == nil {
					seen[r.ID]++
				}
			}
		}
		return seen
	}
	truthCount := func() int {
		mustRun(t, gw, sim)
		return len(readTruth(t, truthPath))
	}

	waitFor(t, 90*time.Second, "two cycle records through the broker", func() bool {
		mustRun(t, gw, sim)
		return len(cycleIDs()) >= 2
	})

	// Outage: first a blackhole, then the broker goes away, for several
	// simulated cycles.
	brokerNet.setMode(proxyBlackhole)
	n0 := truthCount()
	waitFor(t, 90*time.Second, "a cycle to finish into the blackhole", func() bool { return truthCount() >= n0+1 })
	if err := broker.proc.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	brokerNet.setMode(proxyForward)
	waitFor(t, 90*time.Second, "a cycle to finish with the broker stopped", func() bool { return truthCount() >= n0+2 })
	// The gateway dies without warning while records wait for the broker.
	gw.kill()
	gw = startProc(t, "gateway", binary, "run", "--config", cfg)
	waitFor(t, 90*time.Second, "another cycle during the outage", func() bool { return truthCount() >= n0+3 })
	broker.start()
	if n0+3 >= cycles {
		t.Fatalf("the outage began only after cycle %d of %d; nothing would run after it", n0, cycles)
	}
	waitFor(t, 90*time.Second, "the last cycle", func() bool { return truthCount() >= cycles })
	truth := readTruth(t, truthPath)
	first := truth[0].Counter
	missing := func() []uint64 {
		seen := cycleIDs()
		var out []uint64
		for _, c := range truth {
			if seen[protocol.CycleID("dax", "autoclave-1", c.Counter)] == 0 {
				out = append(out, c.Counter)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		mustRun(t, gw)
		<-time.After(50 * time.Millisecond) // polling interval
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("after 60 s these finished cycles had not arrived: %v", m)
	}
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatalf("gateway did not stop cleanly: %v", err)
	}

	// What arrived, per id; duplicates (QoS 1 may redeliver) must be identical.
	arrived := map[string][]byte{}
	var order []uint64
	redeliveries := 0
	for _, m := range sub.messages() {
		if !strings.HasSuffix(m.Topic, "/cycle") {
			continue
		}
		var r protocol.CycleRecord
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatalf("undecodable cycle record on %s: %v\n%s", m.Topic, err, m.Payload)
		}
		// The journal's bytes are what was published, less the replay
		// marker the publisher puts in front of backlog messages and the
		// signature.
		u, err := evidence.Unwrap(m.Payload)
		if err != nil {
			t.Fatalf("cycle record on %s: %v", m.Topic, err)
		}
		m.Payload = u.Payload
		if m.Topic != "sterigate/dax/autoclave-1/cycle" {
			t.Errorf("cycle record on topic %s", m.Topic)
		}
		if prev, dup := arrived[r.ID]; dup {
			redeliveries++
			if !bytes.Equal(prev, m.Payload) {
				t.Errorf("id %s arrived twice with different content:\n%s\n%s", r.ID, prev, m.Payload)
			}
			continue
		}
		arrived[r.ID] = m.Payload
		order = append(order, r.Cycle)
	}
	t.Logf("%d cycles finished (counters %d..%d), %d distinct records arrived, %d QoS 1 redeliveries",
		len(truth), first, truth[len(truth)-1].Counter, len(arrived), redeliveries)

	// Every finished cycle arrived once by id, with the device's verdict.
	for _, c := range truth {
		id := protocol.CycleID("dax", "autoclave-1", c.Counter)
		payload, ok := arrived[id]
		if !ok {
			t.Errorf("cycle %d (%s) finished but never arrived", c.Counter, id)
			continue
		}
		var r protocol.CycleRecord
		json.Unmarshal(payload, &r)
		if string(r.Result) != c.Result {
			t.Errorf("cycle %d: result %q, the simulator reported %q", c.Counter, r.Result, c.Result)
		}
		if r.Program != c.Program {
			t.Errorf("cycle %d: program %q, the simulator ran %q", c.Counter, r.Program, c.Program)
		}
		if r.Complete && c.Result == "passed" {
			checkPlateau(t, r, c)
		}
		// Judged in device time: polled every 50 ms at 600×, the hold is
		// sampled every 30 s of device time, far too sparse for a pass.
		if v := r.Verification; v == nil || v.Criteria.TimeScale != 600 || v.Verdict == protocol.VerdictPass {
			t.Errorf("cycle %d: verification %+v; want one judged at time_scale 600 and never pass", c.Counter, v)
		}
	}
	if len(arrived) != len(truth) {
		t.Errorf("%d distinct cycle records arrived for %d finished cycles", len(arrived), len(truth))
	}
	if !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Errorf("cycle records arrived out of counter order: %v", order)
	}

	// The same bytes the journal holds.
	j, err := journal.Open(filepath.Join(dataDir, "journal.db"), journal.Options{Gateway: "e2e-gw", Site: "dax"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	entries, err := j.Entries(context.Background(), "autoclave-1", journal.KindCycle)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(truth) {
		t.Errorf("journal holds %d cycle records for %d finished cycles", len(entries), len(truth))
	}
	for _, e := range entries {
		if got, ok := arrived[e.RecordID]; !ok {
			t.Errorf("journal record %s never arrived", e.RecordID)
		} else if !bytes.Equal(got, e.Payload) {
			t.Errorf("record %s differs from the journal:\njournal: %s\narrived: %s", e.RecordID, e.Payload, got)
		}
		if e.DeliveredAt.IsZero() {
			t.Errorf("record %s arrived but the journal does not know it was delivered", e.RecordID)
		}
	}
}

// checkPlateau compares the record's sterilizing phase with what the
// simulator really did: sampled extremes lie within the true ones (allowing
// the registers' 0.1 °C resolution).
func checkPlateau(t *testing.T, r protocol.CycleRecord, c truthCycle) {
	t.Helper()
	for _, ph := range r.Phases {
		if ph.Name != protocol.PhaseSterilizing || ph.TempMinC == nil {
			continue
		}
		if *ph.TempMinC < c.PlateauMinC-0.11 || *ph.TempMaxC > c.PlateauMaxC+0.11 {
			t.Errorf("cycle %d: recorded plateau %.1f–%.1f °C outside the true %.2f–%.2f °C",
				c.Counter, *ph.TempMinC, *ph.TempMaxC, c.PlateauMinC, c.PlateauMaxC)
		}
		return
	}
	// At 600x a 3-minute plateau lasts 0.3 s of real time: on a loaded
	// machine a few late polls can miss it without breaking "complete"
	// (which allows gaps of a few poll intervals). Not an error here.
	t.Logf("cycle %d: no poll fell on the plateau", c.Counter)
}
