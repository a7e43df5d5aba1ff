package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// The chaos suite: the simulator (with --truth), the gateway and a real
// Mosquitto run as processes, and a seeded schedule injects the faults a
// hospital sees — broker stopped or killed, the gateway SIGKILLed, the
// network to the broker cut or blackholed, the link to a sterilizer cut, a
// sterilizer behind a serial server (a Modbus TCP gateway) powered off,
// the journal's file damaged under a killed gateway (then salvaged beside
// the restarted one), the broker's ACL flipped to deny the gateway for a
// while. The broker runs the configuration sterigate ships
// (deploy/mosquitto.conf: TLS, passwords, the ACL, saved after every
// change), adapted to the test's port and directory.
// CI runs one short schedule; a soak runs many:
//
//	go test ./cmd/sterigate -run TestChaos -chaos.schedules 100 -timeout 6h -v
var (
	chaosSchedules = flag.Int("chaos.schedules", 1, "fault schedules TestChaos runs (CI: 1; a soak: 100)")
	chaosSeed      = flag.Uint64("chaos.seed", 1, "seed of the first schedule; schedule i uses seed+i")
	chaosFaultTime = flag.Duration("chaos.duration", 25*time.Second, "how long each schedule injects faults")
)

// chaosTally adds up what every schedule found.
type chaosTally struct {
	mu                                                 sync.Mutex
	schedules, faults, cycles                          int
	lost, duplicatedIDs, brokenChains, unrecordedGaps  int
	deliveredNotReceived, redeliveries, journalEntries int
	deniedTelemetry                                    int
}

func (c *chaosTally) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("chaos: %d schedules, %d faults, %d cycles, %d journal entries: %d lost, %d duplicated ids, %d broken chains, %d unrecorded gaps, %d marked delivered but never received (%d QoS 1 redeliveries; %d telemetry batches dropped by a denying ACL, not confirmed by design)",
		c.schedules, c.faults, c.cycles, c.journalEntries, c.lost, c.duplicatedIDs, c.brokenChains, c.unrecordedGaps, c.deliveredNotReceived, c.redeliveries, c.deniedTelemetry)
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite runs processes for tens of seconds")
	}
	tally := &chaosTally{}
	for i := 0; i < *chaosSchedules; i++ {
		seed := *chaosSeed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runChaosSchedule(t, seed, tally) })
	}
	// The summary line a soak run reports.
	fmt.Println(tally.summary())
	t.Log(tally.summary())
}

func runChaosSchedule(t *testing.T, seed uint64, tally *chaosTally) {
	const devices = 2
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	dir := t.TempDir()
	const gatewayPassword, consumerPassword = "chaos-gw-pw", "chaos-dashboard-pw"
	pk := brokertest.NewPKI(t)
	broker := brokertest.StartShipped(t, brokertest.Setup{PKI: pk, Users: map[string]string{"lab": gatewayPassword, "cssd-dashboard": consumerPassword}})
	shippedACL, err := os.ReadFile(broker.ACLPath)
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribeTo(t, broker.URL("ssl"), "sterigate/#", func(o *mqtt.ClientOptions) {
		o.SetUsername("cssd-dashboard").SetPassword(consumerPassword).SetTLSConfig(brokertest.Trusting(t, pk.CAFile))
	})
	brokerNet := startProxy(t, broker.Addr())

	// Enough cycles to outlast the fault phase (a cycle takes about 6 s at
	// 300x); then every cycle's end is observable once the faults stop.
	cyclesPerDevice := int(*chaosFaultTime/(5*time.Second)) + 2
	// A sterilizer behind a serial server powered off: the simulator's
	// Modbus TCP port answers for it with exception 11 ("gateway target
	// device failed to respond"), as a Modbus TCP-to-RTU gateway does. The
	// simulator times it on its clock (300x), so it is planned before the
	// simulator starts; the schedule keeps the device network and the
	// gateway process alone around it, so that what the gateway makes of
	// it is seen. Like a network cut, it lasts less than a cycle (with the
	// back-off the device stays unseen about twice as long).
	const speed = 300
	poweredOff := 1 + rng.IntN(devices)
	offAt := randBetween(rng, 3*time.Second, max(4*time.Second, *chaosFaultTime-3*time.Second))
	offFor := randBetween(rng, 800*time.Millisecond, 1500*time.Millisecond)
	sim, simAddr, truthPath := startSim(t, dir, devices, cyclesPerDevice, speed, seed, map[int]string{
		poweredOff: fmt.Sprintf("[{kind: exception, exception: 11, at: %ds, duration: %ds}]", int(offAt.Seconds()*speed), int(offFor.Seconds()*speed)),
	})
	simStarted := time.Now()
	offStart, offEnd := simStarted.Add(offAt), simStarted.Add(offAt+offFor)
	deviceNet := startProxy(t, simAddr)

	dataDir := filepath.Join(dir, "data")
	var devs strings.Builder
	for i := 1; i <= devices; i++ {
		fmt.Fprintf(&devs, "  - {id: autoclave-%d, driver: modbus-tcp, address: %q, unit: %d, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms, time_scale: %d}\n",
			i, deviceNet.addr(), i, speed)
	}
	pwFile := writeFile(t, filepath.Join(dir, "mqtt-password"), gatewayPassword)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: chaos-gw, site: lab, data_dir: %q}
mqtt: {brokers: ["ssl://%s"], topic_root: sterigate, keepalive: 2s, confirm_timeout: 2s,
       username: lab, password_file: %q, tls: {ca_file: %q}}
devices:
%s`, dataDir, brokerNet.addr(), pwFile, pk.CAFile, devs.String()))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	// While the ACL denies the gateway, telemetry (never confirmed nor
	// published again, by design) is acknowledged and dropped.
	var denied []timeWindow

	// The fault schedule.
	end := time.Now().Add(*chaosFaultTime)
	var faults []string
	pause := func(d time.Duration) { <-time.After(d) } // the schedule's own pacing
	randDur := func(lo, hi time.Duration) time.Duration { return randBetween(rng, lo, hi) }
	poweredOffLogged := false
	injected := map[int]bool{}
	for time.Now().Before(end) {
		pause(randDur(500*time.Millisecond, 3*time.Second))
		d := randDur(300*time.Millisecond, 4*time.Second)
		if !poweredOffLogged && time.Now().Add(d+time.Second).After(offStart.Add(-3*time.Second)) {
			// Nothing else around the powered-off device's window: a
			// gateway restart or a cut network would hide its exceptions.
			pause(time.Until(offEnd.Add(3 * time.Second)))
			faults = append(faults, fmt.Sprintf("device %d behind a serial server powered off (exception 11) %s", poweredOff, offFor.Round(time.Millisecond)))
			poweredOffLogged = true
			continue
		}
		f := rng.IntN(8)
		// Every schedule damages the journal and flips the ACL at least
		// once: CI runs only one.
		if time.Until(end) < *chaosFaultTime/2 {
			for _, must := range []int{6, 7} {
				if !injected[must] {
					f = must
					break
				}
			}
		}
		injected[f] = true
		switch f {
		case 0:
			faults = append(faults, fmt.Sprintf("broker stopped %s", d))
			broker.Stop(syscall.SIGTERM)
			pause(d)
			broker.Start()
		case 1:
			faults = append(faults, fmt.Sprintf("broker killed %s", d))
			broker.Stop(syscall.SIGKILL)
			pause(d)
			broker.Start()
		case 2:
			faults = append(faults, "gateway killed")
			gw.kill()
			gw = startProc(t, "gateway", binary, "run", "--config", cfg)
		case 3:
			faults = append(faults, fmt.Sprintf("broker network cut %s", d))
			brokerNet.setMode(proxyRefuse)
			pause(d)
			brokerNet.setMode(proxyForward)
		case 4:
			faults = append(faults, fmt.Sprintf("broker network blackholed %s", d))
			brokerNet.setMode(proxyBlackhole)
			pause(d)
			brokerNet.setMode(proxyForward)
		case 5:
			// With the driver's reconnect back-off the device stays unseen
			// up to about twice as long; that must stay shorter than one
			// cycle (6 s), or a cycle would end unseen and unlatched — which
			// the gateway reports as a gap, but the suite counts as lost.
			d = min(d, 1500*time.Millisecond)
			faults = append(faults, fmt.Sprintf("device network cut %s", d))
			deviceNet.setMode(proxyRefuse)
			pause(d)
			deviceNet.setMode(proxyForward)
		case 6:
			faults = append(faults, "journal file damaged: "+damageJournal(t, dataDir, &gw, cfg))
		case 7:
			faults = append(faults, fmt.Sprintf("broker ACL denies the gateway %s", d))
			w := timeWindow{from: time.Now()}
			broker.SetACL("user lab\ntopic readwrite sterigate/elsewhere/#\n" + string(shippedACL))
			pause(d)
			broker.SetACL(string(shippedACL))
			w.to = time.Now()
			denied = append(denied, w)
		}
	}
	t.Logf("seed %d faults: %s", seed, strings.Join(faults, "; "))

	// The network is healed; let the sterilizers finish their last cycles
	// and wait for everything to arrive.
	waitFor(t, 120*time.Second, "every scheduled cycle to finish", func() bool {
		mustRun(t, sim, gw)
		return len(readTruth(t, truthPath)) >= devices*cyclesPerDevice
	})
	truth := readTruth(t, truthPath)
	received := func() map[string][]byte {
		out := map[string][]byte{}
		for _, m := range sub.messages() {
			if strings.HasSuffix(m.Topic, "/cycle") {
				var r protocol.CycleRecord
				if json.Unmarshal(m.Payload, &r) == nil {
					out[r.ID] = m.Payload
				}
			}
		}
		return out
	}
	idOf := func(c truthCycle) string {
		return protocol.CycleID("lab", fmt.Sprintf("autoclave-%d", c.Device), c.Counter)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		mustRun(t, gw)
		got, missing := received(), 0
		for _, c := range truth {
			if got[idOf(c)] == nil {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		<-time.After(100 * time.Millisecond) // polling interval
	}
	// Everything journaled reaches the subscriber before the gateway
	// stops, so the capture verifies as a whole (telemetry goes after
	// records and events, so it can still be on its way).
	waitFor(t, 60*time.Second, "the journal to be delivered", func() bool {
		mustRun(t, gw)
		return undelivered(t, filepath.Join(dataDir, "journal.db")) == 0
	})
	if err := gw.stop(20 * time.Second); err != nil {
		t.Errorf("gateway did not stop cleanly: %v", err)
	}
	verifyEvidenceOfChaos(t, dir, dataDir, cfg, sub)

	j, err := journal.Open(filepath.Join(dataDir, "journal.db"), journal.Options{Gateway: "chaos-gw", Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	entries, err := j.Entries(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	v := verifyChaos(truth, entries, sub.messages(), idOf, denied)
	for _, p := range v.problems {
		t.Error(p)
	}
	// Every record judged in device time; polled every 50 ms at 300×, its
	// hold is sampled every 15 s of device time: never a pass.
	for _, e := range entries {
		var r protocol.CycleRecord
		if e.Kind != journal.KindCycle || json.Unmarshal(e.Payload, &r) != nil {
			continue
		}
		if r.Verification == nil || r.Verification.Criteria.TimeScale != speed || r.Verification.Verdict == protocol.VerdictPass {
			t.Errorf("%s: verification %+v; want one judged at time_scale %d and never pass", r.ID, r.Verification, speed)
		}
	}
	if !poweredOffLogged {
		t.Errorf("the powered-off device's window (%s after start) was not reached by the schedule", offAt)
	} else if err := offlineThenOnline(entries, fmt.Sprintf("autoclave-%d", poweredOff), "exception 11"); err != nil {
		t.Errorf("device %d behind a serial server powered off: %v", poweredOff, err)
	}
	if v.lost > 0 {
		// The device's events say what the gateway saw around a loss.
		for _, e := range entries {
			if e.Kind == journal.KindEvent && !bytes.Contains(e.Payload, []byte(`"kind":"phase"`)) {
				t.Logf("event: %s", e.Payload)
			}
		}
	}
	tally.mu.Lock()
	tally.schedules++
	tally.faults += len(faults)
	tally.cycles += len(truth)
	tally.journalEntries += len(entries)
	tally.lost += v.lost
	tally.duplicatedIDs += v.duplicatedIDs
	tally.brokenChains += v.brokenChains
	tally.unrecordedGaps += v.unrecordedGaps
	tally.deliveredNotReceived += v.deliveredNotReceived
	tally.redeliveries += v.redeliveries
	tally.deniedTelemetry += v.deniedTelemetry
	tally.mu.Unlock()
}

// randBetween is a uniformly random duration in [lo, hi).
func randBetween(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// offlineThenOnline checks that the journal holds, for device, an offline
// event whose reason contains why, and an online event after it.
func offlineThenOnline(entries []journal.Entry, device, why string) error {
	var offlineAt time.Time
	for _, e := range entries {
		if e.Device != device || e.Kind != journal.KindEvent {
			continue
		}
		var ev protocol.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			return err
		}
		switch {
		case ev.Kind == protocol.EventOffline && strings.Contains(ev.Text, why) && offlineAt.IsZero():
			offlineAt = ev.At
		case ev.Kind == protocol.EventOnline && !offlineAt.IsZero() && ev.At.After(offlineAt):
			return nil
		}
	}
	if offlineAt.IsZero() {
		return fmt.Errorf("no offline event saying %q", why)
	}
	return fmt.Errorf("offline at %s (%s) and never online again", offlineAt.Format(time.RFC3339Nano), why)
}

type chaosVerdict struct {
	lost, duplicatedIDs, brokenChains, unrecordedGaps, deliveredNotReceived, redeliveries int
	// deniedTelemetry counts telemetry the broker acknowledged and dropped
	// while its ACL denied the gateway (telemetry is not confirmed).
	deniedTelemetry int
	problems        []string
}

// timeWindow is a stretch of the schedule.
type timeWindow struct{ from, to time.Time }

// damageJournal is the "journal file damaged" fault: the gateway is
// killed, a frame checksum of its write-ahead log is flipped (SQLite would
// drop every commit after it), the gateway is started again — it must keep
// the damaged journal aside and carry on — and the damaged journal is
// salvaged beside it. It says what it did.
func damageJournal(t *testing.T, dataDir string, gw **proc, cfg string) string {
	(*gw).kill()
	wal := filepath.Join(dataDir, "journal.db-wal")
	what := "log too short to damage"
	if _, frames := walFrames(t, wal); frames >= 8 {
		damageWAL(t, wal, frames/2, true)
		what = fmt.Sprintf("checksum of log frame %d of %d flipped", frames/2, frames)
	}
	*gw = startProc(t, "gateway", binary, "run", "--config", cfg)
	(*gw).waitOutput(20*time.Second, "sterigate running")
	kept, _ := filepath.Glob(filepath.Join(dataDir, "journal.damaged-*.db"))
	for _, k := range kept {
		out, err := exec.Command(binary, "journal", "salvage", "--journal", filepath.Join(dataDir, "journal.db"), k).CombinedOutput()
		if err != nil {
			t.Errorf("salvage of %s: %v\n%s", k, err, out)
		}
		if !strings.Contains(string(out), "0 salvaged") {
			what += "; " + strings.TrimSpace(string(out[strings.LastIndex(string(out[:len(out)-1]), "\n")+1:]))
		}
	}
	return what
}

// verifyChaos checks one schedule's outcome against the simulator's truth
// and the journal. Telemetry acknowledged while the ACL denied the
// gateway (denied) may be missing: it is not confirmed, by design.
func verifyChaos(truth []truthCycle, entries []journal.Entry, msgs []message, idOf func(truthCycle) string, denied []timeWindow) chaosVerdict {
	var v chaosVerdict
	fail := func(counter *int, format string, args ...any) {
		*counter++
		if len(v.problems) < 30 {
			v.problems = append(v.problems, fmt.Sprintf(format, args...))
		}
	}

	// What the subscriber got, by device and seq, with replay markers
	// removed (they are not part of the hashed payload).
	type key struct {
		device string
		seq    uint64
	}
	got := map[key][]byte{}
	for _, m := range msgs {
		if m.Retained || strings.HasSuffix(m.Topic, "/status") {
			continue
		}
		u, err := evidence.Unwrap(m.Payload)
		if err != nil {
			v.problems = append(v.problems, fmt.Sprintf("message on %s: %v", m.Topic, err))
			continue
		}
		payload := u.Payload
		var hdr struct {
			ID     string `json:"id"`
			Device string `json:"device"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(payload, &hdr); err != nil {
			v.problems = append(v.problems, fmt.Sprintf("undecodable message on %s: %v", m.Topic, err))
			continue
		}
		k := key{hdr.Device, hdr.Seq}
		if prev, ok := got[k]; ok {
			v.redeliveries++
			if !bytes.Equal(prev, payload) {
				fail(&v.duplicatedIDs, "%s seq %d arrived twice with different content", hdr.Device, hdr.Seq)
			}
			continue
		}
		got[k] = payload
	}

	// Every finished cycle arrived, under its one id.
	byID := map[string]bool{}
	for k, p := range got {
		var r protocol.CycleRecord
		if json.Unmarshal(p, &r) == nil && r.Schema == protocol.CycleSchema {
			if byID[r.ID] {
				fail(&v.duplicatedIDs, "cycle id %s published under two seqs (second: %s seq %d)", r.ID, k.device, k.seq)
			}
			byID[r.ID] = true
		}
	}
	for _, c := range truth {
		if !byID[idOf(c)] {
			fail(&v.lost, "cycle %s (device %d counter %d, %s, %s) finished but never arrived", idOf(c), c.Device, c.Counter, c.Program, c.Result)
		}
	}

	// The journal (with what was salvaged from damaged ones): per device,
	// seq gap-free from 1 except where a journal_break says entries may be
	// missing, each entry chained to the previous one (a break to the last
	// good entry it names), and everything marked delivered really
	// arrived, byte for byte.
	byDevice := map[string][]journal.Entry{}
	for _, e := range entries {
		byDevice[e.Device] = append(byDevice[e.Device], e)
	}
	inDenied := func(at time.Time) bool {
		for _, w := range denied {
			if !at.Before(w.from) && !at.After(w.to.Add(3*time.Second)) {
				return true
			}
		}
		return false
	}
	cycleIDs := map[string]int{}
	for device, es := range byDevice {
		sort.Slice(es, func(a, b int) bool { return es[a].Seq < es[b].Seq })
		hashOf := map[uint64]string{}
		for _, e := range es {
			sum := sha256.Sum256(e.Payload)
			hashOf[e.Seq] = hex.EncodeToString(sum[:])
		}
		for i, e := range es {
			if e.Kind == journal.KindCycle {
				cycleIDs[e.RecordID]++
			}
			var hdr struct {
				PrevHash string             `json:"prev_hash"`
				Kind     protocol.EventKind `json:"kind"`
				LastSeq  uint64             `json:"last_seq"`
			}
			json.Unmarshal(e.Payload, &hdr)
			isBreak := e.Kind == journal.KindEvent && hdr.Kind == protocol.EventJournalBreak
			prevSeq := uint64(0)
			if i > 0 {
				prevSeq = es[i-1].Seq
			}
			if e.Seq != prevSeq+1 && !(isBreak && e.Seq > prevSeq) {
				fail(&v.unrecordedGaps, "%s: journal seq %d after %d (no quota was set, nothing may be thinned)", device, e.Seq, prevSeq)
			}
			switch {
			case isBreak:
				if want, ok := hashOf[hdr.LastSeq]; ok && hdr.PrevHash != want {
					fail(&v.brokenChains, "%s seq %d: the journal_break does not chain onto the last good seq %d", device, e.Seq, hdr.LastSeq)
				}
			case i > 0 && e.Seq == prevSeq+1 && hdr.PrevHash != hashOf[prevSeq]:
				fail(&v.brokenChains, "%s seq %d: prev_hash does not match seq %d", device, e.Seq, prevSeq)
			}
			p, ok := got[key{device, e.Seq}]
			switch {
			case ok && !bytes.Equal(p, e.Payload):
				fail(&v.brokenChains, "%s seq %d: what arrived differs from the journal", device, e.Seq)
			case !ok && !e.DeliveredAt.IsZero() && e.Kind == journal.KindTelemetry && inDenied(e.DeliveredAt):
				v.deniedTelemetry++
			case !ok && !e.DeliveredAt.IsZero():
				fail(&v.deliveredNotReceived, "%s seq %d (%s) is marked delivered but never arrived", device, e.Seq, e.Kind)
			}
		}
		v.unrecordedGaps += unrecordedTimeGaps(device, es, &v.problems)
	}
	for id, n := range cycleIDs {
		if n > 1 {
			fail(&v.duplicatedIDs, "the journal holds cycle %s %d times", id, n)
		}
	}
	return v
}

// unrecordedTimeGaps finds holes in a device's telemetry longer than a
// few polls that no event explains (offline, online after a restart, gap).
func unrecordedTimeGaps(device string, es []journal.Entry, problems *[]string) int {
	const slack = 2 * time.Second
	var samples []time.Time
	var marks []time.Time
	for _, e := range es {
		switch e.Kind {
		case journal.KindTelemetry:
			var b protocol.Telemetry
			json.Unmarshal(e.Payload, &b)
			for _, s := range b.Samples {
				samples = append(samples, s.At)
			}
		case journal.KindEvent:
			var ev protocol.Event
			json.Unmarshal(e.Payload, &ev)
			switch ev.Kind {
			case protocol.EventOffline, protocol.EventOnline, protocol.EventJournalBreak:
				marks = append(marks, ev.At)
			case protocol.EventGap:
				marks = append(marks, ev.At, ev.From, ev.To)
			}
		}
	}
	sort.Slice(samples, func(a, b int) bool { return samples[a].Before(samples[b]) })
	n := 0
	for i := 1; i < len(samples); i++ {
		from, to := samples[i-1], samples[i]
		if to.Sub(from) <= slack {
			continue
		}
		explained := false
		for _, m := range marks {
			if !m.Before(from) && !m.After(to.Add(slack)) {
				explained = true
				break
			}
		}
		if !explained {
			n++
			if len(*problems) < 30 {
				*problems = append(*problems, fmt.Sprintf("%s: telemetry gap %s → %s with no event recording it", device, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)))
			}
		}
	}
	return n
}

// undelivered counts the journal's entries the broker has not
// acknowledged, reading the file as an onlooker.
func undelivered(t testing.TB, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM entries WHERE delivered_at IS NULL`).Scan(&n); err != nil {
		return -1 // not created yet
	}
	return n
}

// verifyEvidenceOfChaos runs 'sterigate verify' on what a schedule left:
// the journal, checked against the key 'key show' prints, and everything
// the subscriber received, with the key message it received. Neither may
// fail, whatever the faults were.
func verifyEvidenceOfChaos(t *testing.T, dir, dataDir, cfg string, sub *collector) {
	t.Helper()
	waitFor(t, 10*time.Second, "the gateway's offline status", func() bool {
		for _, m := range sub.messages() {
			if strings.HasSuffix(m.Topic, "/gateway/chaos-gw/status") && bytes.Contains(m.Payload, []byte(`"offline"`)) && !m.Retained {
				return true
			}
		}
		return false
	})
	key, err := exec.Command(binary, "key", "show", "--config", cfg, "--json").Output()
	if err != nil {
		t.Fatalf("key show: %v", err)
	}
	keyFile := writeFile(t, filepath.Join(dir, "key.json"), string(key))
	var capture strings.Builder
	for _, m := range sub.messages() {
		fmt.Fprintf(&capture, "%s %s\n", m.Topic, m.Payload)
	}
	captureFile := writeFile(t, filepath.Join(dir, "capture.txt"), capture.String())
	for _, args := range [][]string{
		{"verify", "--journal", filepath.Join(dataDir, "journal.db"), "--key", keyFile},
		{"verify", "--capture", captureFile},
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Errorf("sterigate %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("sterigate %s:\n%s", strings.Join(args[:2], " "), out)
		}
	}
}
