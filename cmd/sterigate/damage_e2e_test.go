package main

import (
	"bytes"
	"database/sql"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/protocol"
)

// walFrames returns the WAL file's page size and how many frames of its
// current generation (those carrying the header's salts, which SQLite
// replays; older ones after them are leftovers) it holds.
func walFrames(t testing.TB, wal string) (pageSize, frames int) {
	t.Helper()
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 {
		return 0, 0
	}
	pageSize = int(be.BigEndian.Uint32(b[8:]))
	for off := 32; off+24+pageSize <= len(b) && bytes.Equal(b[off+8:off+16], b[16:24]); off += 24 + pageSize {
		frames++
	}
	return pageSize, frames
}

// damageWAL flips a byte of WAL frame `frame`: in its page (what the disk
// might do to data) or, with inChecksum, in its stored checksum (the page
// itself intact: a salvage recovers everything).
func damageWAL(t testing.TB, wal string, frame int, inChecksum bool) {
	t.Helper()
	b, err := os.ReadFile(wal)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(be.BigEndian.Uint32(b[8:]))
	off := 32 + frame*(24+pageSize)
	if inChecksum {
		off += 16
	} else {
		off += 24 + pageSize/2
	}
	b[off] ^= 0x5a
	if err := os.WriteFile(wal, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkNoIDOrSeqReused checks what a subscriber received: no id and no
// (device, seq) carried two different payloads.
func checkNoIDOrSeqReused(t *testing.T, msgs []message) {
	t.Helper()
	byID := map[string][]byte{}
	bySeq := map[string][]byte{}
	for _, m := range msgs {
		if m.Retained || strings.HasSuffix(m.Topic, "/status") {
			continue
		}
		p := bytes.Replace(m.Payload, []byte("{"+mqttpub.ReplayMarker), []byte("{"), 1)
		var h struct {
			ID     string `json:"id"`
			Device string `json:"device"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(p, &h); err != nil {
			t.Fatalf("undecodable message on %s: %v", m.Topic, err)
		}
		if prev, ok := byID[h.ID]; ok && !bytes.Equal(prev, p) {
			t.Errorf("id %s carried two different payloads:\n%s\n%s", h.ID, prev, p)
		}
		byID[h.ID] = p
		key := fmt.Sprintf("%s/%d", h.Device, h.Seq)
		if prev, ok := bySeq[key]; ok && !bytes.Equal(prev, p) {
			t.Errorf("%s seq %d carried two different payloads:\n%s\n%s", h.Device, h.Seq, prev, p)
		}
		bySeq[key] = p
	}
}

// cycleRecords returns the cycle records a subscriber received, by id.
func cycleRecords(sub *collector) map[string]protocol.CycleRecord {
	out := map[string]protocol.CycleRecord{}
	for _, m := range sub.messages() {
		if strings.HasSuffix(m.Topic, "/cycle") {
			var r protocol.CycleRecord
			if json.Unmarshal(m.Payload, &r) == nil {
				out[r.ID] = r
			}
		}
	}
	return out
}

func gatewayAlarms(t *testing.T, sub *collector, site, gw string) []string {
	var st protocol.GatewayStatus
	for _, m := range sub.messages() {
		if m.Topic == "sterigate/"+site+"/gateway/"+gw+"/status" {
			json.Unmarshal(m.Payload, &st)
		}
	}
	return st.Alarms
}

// TestEndToEndWALFlipKeepsLoggingAndSalvages damages the journal's
// write-ahead log of a gateway killed with records waiting for the broker,
// as a disk can. The restarted gateway must find it, keep the damaged file
// aside, raise journal_damaged (gateway status, /readyz), and go on
// logging the sterilizer; a salvage, beside the running gateway, brings
// back the records the damage hid, with their ids; no id or seq is ever
// reused for other content. (Before: the records vanished silently and
// their seqs and ids went to new content.)
func TestEndToEndWALFlipKeepsLoggingAndSalvages(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs whole simulated cycles")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	sub := subscribe(t, broker.addr(), "sterigate/#")
	const cycles = 9
	sim, simAddr, truthPath := startSim(t, dir, 1, cycles, 600, 11, nil)
	dataDir := filepath.Join(dir, "data")
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: damage-gw, site: dax, data_dir: %q, console: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s, confirm_timeout: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 500ms}
`, dataDir, consoleAddr, broker.addr(), simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	cycleIDs := func() map[string]protocol.CycleRecord { return cycleRecords(sub) }
	waitFor(t, 90*time.Second, "a cycle record through the broker", func() bool { mustRun(t, gw, sim); return len(cycleIDs()) >= 1 })

	// The broker goes away; two cycles finish into the journal.
	if err := broker.proc.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	n0 := len(readTruth(t, truthPath))
	waitFor(t, 90*time.Second, "two cycles during the outage", func() bool { mustRun(t, gw, sim); return len(readTruth(t, truthPath)) >= n0+2 })
	gw.kill()
	wal := filepath.Join(dataDir, "journal.db-wal")
	if _, frames := walFrames(t, wal); frames < 20 {
		t.Fatalf("the journal's log holds %d frames; the test needs commits to damage", frames)
	}
	_, frames := walFrames(t, wal)
	damageWAL(t, wal, frames/3, false)

	broker.start()
	gw = startProc(t, "gateway", binary, "run", "--config", cfg)
	gw.waitOutput(20*time.Second, "journal damaged")
	kept, _ := filepath.Glob(filepath.Join(dataDir, "journal.damaged-*.db"))
	if len(kept) != 1 {
		t.Fatalf("damaged journal kept as %v, want one file", kept)
	}
	waitFor(t, 30*time.Second, "journal_damaged in the gateway status", func() bool {
		mustRun(t, gw)
		return slices.Contains(gatewayAlarms(t, sub, "dax", "damage-gw"), "journal_damaged")
	})
	code, body := httpGet("http://" + consoleAddr + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "journal_damaged") {
		t.Errorf("/readyz answered %d %s, want 503 naming journal_damaged", code, body)
	}
	// The sterilizer goes on being logged.
	n1 := len(readTruth(t, truthPath))
	waitFor(t, 90*time.Second, "a cycle finished after the restart", func() bool { mustRun(t, gw, sim); return len(readTruth(t, truthPath)) >= n1+1 })

	salvage := exec.Command(binary, "journal", "salvage", "--journal", filepath.Join(dataDir, "journal.db"), kept[0])
	out, err := salvage.CombinedOutput()
	if err != nil {
		t.Fatalf("salvage beside the running gateway: %v\n%s", err, out)
	}
	t.Logf("salvage: %s", out)
	waitFor(t, 120*time.Second, "every finished cycle at the subscriber", func() bool {
		mustRun(t, gw, sim)
		got := cycleIDs()
		truth := readTruth(t, truthPath)
		for _, c := range truth {
			if _, ok := got[protocol.CycleID("dax", "autoclave-1", c.Counter)]; !ok {
				return false
			}
		}
		return len(truth) == cycles
	})
	waitFor(t, 30*time.Second, "/readyz without journal_damaged after the salvage", func() bool {
		_, body := httpGet("http://" + consoleAddr + "/readyz")
		return !strings.Contains(body, "journal_damaged")
	})
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatalf("gateway did not stop cleanly: %v", err)
	}
	checkNoIDOrSeqReused(t, sub.messages())
}

// TestEndToEndZeroLengthJournalIsRefused: a zero-length journal.db is not
// a journal to carry on (a wrong mount, a tool that truncated it); run
// refuses it, naming the way out, and 'journal start-fresh' keeps it aside
// and starts a new one.
func TestEndToEndZeroLengthJournalIsRefused(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "journal.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:%d"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: "127.0.0.1:%d", profile: sim-autoclave}
`, dataDir, freePort(t), freePort(t)))
	out, err := exec.Command(binary, "run", "--config", cfg).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "is not a sterigate journal (the file is empty") ||
		!strings.Contains(string(out), "sterigate journal start-fresh --journal "+path) {
		t.Fatalf("run on a zero-length journal: %v\n%s", err, out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("the refused file was changed: %v %v", fi, err)
	}
	out, err = exec.Command(binary, "journal", "start-fresh", "--journal", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "journal.unusable-") {
		t.Fatalf("journal start-fresh: %v\n%s", err, out)
	}
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	gw.waitOutput(20*time.Second, "sterigate running")
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// start-fresh refuses a journal.
	out, err = exec.Command(binary, "journal", "start-fresh", "--journal", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is a sterigate journal") {
		t.Fatalf("start-fresh over a journal: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "journal", "check", "--journal", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("journal check: %v\n%s", err, out)
	}
}

// TestEndToEndMainFileFlipIsNeverPublished flips a byte of an undelivered
// cycle record in the journal's database file while the gateway is
// stopped. quick_check does not read payloads; the check before
// publishing does: the record must never reach a consumer as it now
// reads, the running gateway must go on on a new journal, and a salvage
// must bring back every other record and name the damaged one. (Before:
// the gateway published payloads whose bytes no longer matched their
// hash.)
func TestEndToEndMainFileFlipIsNeverPublished(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs whole simulated cycles")
	}
	dir := t.TempDir()
	brokerPort := freePort(t)
	const cycles = 6
	sim, simAddr, truthPath := startSim(t, dir, 1, cycles, 600, 13, nil)
	dataDir := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: flip-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:%d"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 500ms}
`, dataDir, brokerPort, simAddr))
	// No broker yet: records wait in the journal.
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	waitFor(t, 90*time.Second, "three cycles into the journal", func() bool { mustRun(t, gw, sim); return len(readTruth(t, truthPath)) >= 3 })
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "journal.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	victim := protocol.CycleID("dax", "autoclave-1", readTruth(t, truthPath)[1].Counter)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	target := []byte(`"schema":"sterigate.cycle.v1","id":"` + victim + `"`)
	flipped := 0
	for i := 0; ; {
		k := bytes.Index(b[i:], target)
		if k < 0 {
			break
		}
		b[i+k+len(target)+60] ^= 0x01
		flipped++
		i += k + 1
	}
	if flipped == 0 {
		t.Fatalf("record %s not found in the database file", victim)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	broker := startMosquittoOnPort(t, dir, brokerPort)
	sub := subscribe(t, broker.addr(), "sterigate/#")
	gw = startProc(t, "gateway", binary, "run", "--config", cfg)
	gw.waitOutput(30*time.Second, "starting again on a new journal")
	waitFor(t, 30*time.Second, "the gateway running on the new journal", func() bool {
		mustRun(t, gw)
		return strings.Count(gw.output(), "sterigate running") == 2
	})
	kept, _ := filepath.Glob(filepath.Join(dataDir, "journal.damaged-*.db"))
	if len(kept) != 1 {
		t.Fatalf("damaged journal kept as %v, want one file", kept)
	}
	out, err := exec.Command(binary, "journal", "salvage", "--journal", path, kept[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "damaged, not salvaged: autoclave-1") || !strings.Contains(string(out), victim) {
		t.Fatalf("salvage: %v\n%s", err, out)
	}
	waitFor(t, 120*time.Second, "every other finished cycle at the subscriber", func() bool {
		mustRun(t, gw, sim)
		got := cycleRecords(sub)
		truth := readTruth(t, truthPath)
		for _, c := range truth {
			if id := protocol.CycleID("dax", "autoclave-1", c.Counter); id != victim {
				if _, ok := got[id]; !ok {
					return false
				}
			}
		}
		return len(truth) == cycles
	})
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := cycleRecords(sub)[victim]; ok {
		t.Errorf("the damaged record %s was published", victim)
	}
	checkNoIDOrSeqReused(t, sub.messages())
}
