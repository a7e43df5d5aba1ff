package journal

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

func openTest(t testing.TB, path string, opts Options) *Journal {
	t.Helper()
	if opts.Gateway == "" {
		opts.Gateway = "gw-test"
	}
	if opts.Site == "" {
		opts.Site = "dax"
	}
	j, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func testRecord(device string, cycle uint64) protocol.CycleRecord {
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(cycle) * time.Hour)
	return protocol.CycleRecord{
		Device:    device,
		Cycle:     cycle,
		Program:   "134C prevacuum",
		StartedAt: start,
		EndedAt:   start.Add(45 * time.Minute),
		Result:    protocol.ResultPassed,
		Complete:  true,
		Source:    "modbus-tcp",
		Phases:    []protocol.Phase{{Name: protocol.PhaseSterilizing, Start: start.Add(20 * time.Minute), End: start.Add(23 * time.Minute)}},
		Samples:   []protocol.Sample{{At: start, TempC: 20, PressureKPa: 101, Phase: protocol.PhasePreparation}},
	}
}

func testTelemetry(device string, n int) protocol.Telemetry {
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	b := protocol.Telemetry{Device: device}
	for i := range n {
		b.Samples = append(b.Samples, protocol.Sample{At: at.Add(time.Duration(i) * time.Second), TempC: 134.2, PressureKPa: 304.5, Phase: protocol.PhaseSterilizing})
	}
	return b
}

// chainFields is what every payload kind shares.
type chainFields struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
}

// verifyChains checks, per device, that seqs run 1, 2, 3... with no gap,
// that each payload hashes to its stored hash, and that each prev_hash is
// the previous payload's hash.
func verifyChains(t testing.TB, entries []Entry) map[string]int {
	t.Helper()
	byDevice := map[string][]Entry{}
	for _, e := range entries {
		byDevice[e.Device] = append(byDevice[e.Device], e)
	}
	counts := map[string]int{}
	for d, es := range byDevice {
		prev := ""
		for i, e := range es {
			var f chainFields
			if err := json.Unmarshal(e.Payload, &f); err != nil {
				t.Fatalf("%s entry %d: payload is not JSON: %v", d, e.ID, err)
			}
			sum := sha256.Sum256(e.Payload)
			if got := hex.EncodeToString(sum[:]); got != e.Hash {
				t.Fatalf("%s seq %d: stored hash %s, payload hashes to %s", d, e.Seq, e.Hash, got)
			}
			if e.Seq != uint64(i+1) || f.Seq != e.Seq {
				t.Fatalf("%s: entry %d has seq %d (payload %d), want %d", d, i, e.Seq, f.Seq, i+1)
			}
			if f.PrevHash != prev {
				t.Fatalf("%s seq %d: prev_hash %q, want %q", d, e.Seq, f.PrevHash, prev)
			}
			if f.ID != e.RecordID || f.Device != d {
				t.Fatalf("%s seq %d: payload id/device %q/%q, row %q/%q", d, e.Seq, f.ID, f.Device, e.RecordID, d)
			}
			prev = e.Hash
		}
		counts[d] = len(es)
	}
	return counts
}

func TestAppendFillsIdsSeqAndChain(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	if err := j.Cycle(ctx, testRecord("ac-1", 41)); err != nil {
		t.Fatal(err)
	}
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 5)); err != nil {
		t.Fatal(err)
	}
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventAlarm, Code: 12, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, testRecord("ac-2", 7)); err != nil {
		t.Fatal(err)
	}
	all, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	counts := verifyChains(t, all)
	if counts["ac-1"] != 3 || counts["ac-2"] != 1 {
		t.Fatalf("entries per device %v, want ac-1:3 ac-2:1", counts)
	}
	sts, err := j.DeviceStatuses(ctx)
	if err != nil || len(sts) != 2 || sts[0].LastCycle == nil || sts[0].LastCycle.Cycle != 41 || sts[0].LastCycle.Program != "134C prevacuum" ||
		sts[0].LastCycle.ID != "dax:ac-1:41" || sts[0].Cycle != 0 || sts[0].Program != "" {
		t.Fatalf("status after a cycle record: %+v %v, want last_cycle 41 with its program and no running cycle", sts, err)
	}
	// Event and telemetry ids carry the journal's id; cycle ids do not.
	wantIDs := []string{"dax:ac-1:41", "dax:ac-1:" + j.ID() + ".t2", "dax:ac-1:" + j.ID() + ".e3", "dax:ac-2:7"}
	if len(j.ID()) != 10 {
		t.Errorf("journal id %q, want 10 hex digits", j.ID())
	}
	for i, e := range all {
		if e.RecordID != wantIDs[i] {
			t.Errorf("entry %d id %q, want %q", i, e.RecordID, wantIDs[i])
		}
	}
	var rec protocol.CycleRecord
	if err := json.Unmarshal(all[0].Payload, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Schema != protocol.CycleSchema || rec.Gateway != "gw-test" || rec.Site != "dax" || rec.ID != protocol.CycleID("dax", "ac-1", 41) {
		t.Fatalf("cycle payload header not filled: %+v", rec)
	}
}

func TestRejectsInvalidInputNamingTheField(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	bad := testRecord("ac-1", 1)
	bad.Result = "ok"
	if err := j.Cycle(ctx, bad); err == nil || !strings.Contains(err.Error(), "result") {
		t.Fatalf("Cycle with result %q: err %v, want one naming result", bad.Result, err)
	}
	if err := j.Telemetry(ctx, testTelemetry("a/b", 1)); err == nil || !strings.Contains(err.Error(), "a/b") {
		t.Fatalf("Telemetry with device a/b: err %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{Site: "dax"}); err == nil || !strings.Contains(err.Error(), "Gateway") {
		t.Fatalf("Open without gateway: err %v", err)
	}
}

func TestDuplicateCycleKeepsOriginal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	first := testRecord("ac-1", 9)
	if err := j.Cycle(ctx, first); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// A restarted gateway re-observes the same end with different details.
	j = openTest(t, path, Options{})
	again := testRecord("ac-1", 9)
	again.Result = protocol.ResultUnknown
	if err := j.Cycle(ctx, again); err != nil {
		t.Fatalf("re-appending cycle 9: %v, want nil", err)
	}
	// Two copies in one group commit are de-duplicated too.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := j.Cycle(ctx, testRecord("ac-1", 10)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	cycles, err := j.Entries(ctx, "ac-1", KindCycle)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 2 {
		t.Fatalf("journal holds %d cycle records, want 2 (9 and 10 once each)", len(cycles))
	}
	var rec protocol.CycleRecord
	json.Unmarshal(cycles[0].Payload, &rec)
	if rec.Result != protocol.ResultPassed {
		t.Fatalf("original record replaced: result %q", rec.Result)
	}
	verifyChains(t, cycles)
}

func TestPendingOrderAndMarkDelivered(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	for i := range 3 {
		if err := j.Telemetry(ctx, testTelemetry("ac-1", 2)); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := j.Cycle(ctx, testRecord("ac-1", 5)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventAlarm, Code: 3}); err != nil {
		t.Fatal(err)
	}
	p, err := j.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range p {
		kinds = append(kinds, fmt.Sprintf("%s%d", e.Kind, e.Seq))
	}
	if got, want := strings.Join(kinds, ","), "cycle3,event5,telemetry1,telemetry2,telemetry4"; got != want {
		t.Fatalf("pending order %s, want %s", got, want)
	}
	if err := j.MarkDelivered(ctx, p[0].ID, p[2].ID); err != nil {
		t.Fatal(err)
	}
	p2, err := j.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2) != 3 || p2[0].Kind != KindEvent {
		t.Fatalf("after marking 2 delivered: %d pending, first %s", len(p2), p2[0].Kind)
	}
	after, err := j.PendingInLane(ctx, LaneTelemetry, p[3].ID, 0, 10)
	if err != nil || len(after) != 1 || after[0].ID != p[4].ID {
		t.Fatalf("PendingInLane after cursor: %v %v", after, err)
	}
}

func TestChangedSignalsNewEntries(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	select {
	case <-j.Changed():
	default:
	}
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no Changed signal after a commit")
	}
}

func TestEventsUpdateDeviceStatus(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	if err := j.RegisterDevices(ctx, "ac-1", "ac-2"); err != nil {
		t.Fatal(err)
	}
	v0 := j.StatusVersion()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventOnline, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventPhase, Phase: protocol.PhaseHeating, Cycle: 12, At: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Event(ctx, protocol.Event{Device: "ac-2", Kind: protocol.EventOffline, Text: "i/o timeout", At: at}); err != nil {
		t.Fatal(err)
	}
	if j.StatusVersion() == v0 {
		t.Fatal("StatusVersion did not move after status changes")
	}
	j.Close()
	j = openTest(t, path, Options{})
	sts, err := j.DeviceStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 {
		t.Fatalf("%d statuses, want 2", len(sts))
	}
	if s := sts[0]; s.Device != "ac-1" || s.State != protocol.DeviceOnline || s.Phase != protocol.PhaseHeating || s.Cycle != 12 || !s.At.Equal(at.Add(time.Minute)) {
		t.Fatalf("ac-1 status %+v", s)
	}
	if s := sts[1]; s.State != protocol.DeviceOffline || s.Error != "i/o timeout" {
		t.Fatalf("ac-2 status %+v", s)
	}
}

// The status describes the cycle running now: during cycle 42 it shows
// cycle 42's program and phase since the phase began, while last_cycle
// summarises cycle 41. (It used to show cycle 41's program all through
// cycle 42.)
func TestStatusShowsCurrentProgramDuringACycle(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	prev := testRecord("ac-1", 41)
	prev.Program = "121-gravity"
	if err := j.Cycle(ctx, prev); err != nil {
		t.Fatal(err)
	}
	at := prev.EndedAt.Add(10 * time.Minute)
	phase := func(p protocol.PhaseName, cycle uint64, program string, at time.Time) {
		t.Helper()
		if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventPhase, Phase: p, Cycle: cycle, Program: program, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	status := func() protocol.DeviceStatus {
		t.Helper()
		sts, err := j.DeviceStatuses(ctx)
		if err != nil || len(sts) != 1 {
			t.Fatalf("statuses %+v, %v", sts, err)
		}
		return sts[0]
	}
	phase(protocol.PhaseAirRemoval, 42, "134-porous", at)
	phase(protocol.PhaseSterilizing, 42, "134-porous", at.Add(12*time.Minute))
	// A phase event that does not repeat the program keeps the cycle's.
	phase(protocol.PhaseSterilizing, 42, "", at.Add(13*time.Minute))
	st := status()
	if st.Program != "134-porous" || st.Cycle != 42 || st.Phase != protocol.PhaseSterilizing || !st.Since.Equal(at.Add(12*time.Minute)) || st.State != protocol.DeviceOnline {
		t.Errorf("during cycle 42: program %q cycle %d phase %s since %s state %s; want 134-porous, 42, sterilizing since %s, online",
			st.Program, st.Cycle, st.Phase, st.Since, st.State, at.Add(12*time.Minute))
	}
	if lc := st.LastCycle; lc == nil || lc.Cycle != 41 || lc.Program != "121-gravity" || lc.Result != protocol.ResultPassed || !lc.Complete || !lc.EndedAt.Equal(prev.EndedAt) {
		t.Errorf("during cycle 42: last_cycle %+v, want cycle 41 121-gravity passed complete", lc)
	}
	rec := testRecord("ac-1", 42)
	rec.Program, rec.StartedAt, rec.EndedAt, rec.Result, rec.Complete = "134-porous", at, at.Add(30*time.Minute), protocol.ResultFailed, false
	if err := j.Cycle(ctx, rec); err != nil {
		t.Fatal(err)
	}
	phase(protocol.PhaseIdle, 42, "", at.Add(31*time.Minute))
	st = status()
	if st.Program != "" || st.Cycle != 0 || st.Phase != protocol.PhaseIdle {
		t.Errorf("between cycles: program %q cycle %d phase %s; want none, 0, idle", st.Program, st.Cycle, st.Phase)
	}
	if lc := st.LastCycle; lc == nil || lc.ID != "dax:ac-1:42" || lc.Result != protocol.ResultFailed || lc.Complete {
		t.Errorf("after cycle 42: last_cycle %+v, want dax:ac-1:42 failed incomplete", lc)
	}
	// A reprint of an older cycle journaled late does not become the last cycle.
	old := testRecord("ac-1", 40)
	if err := j.Cycle(ctx, old); err != nil {
		t.Fatal(err)
	}
	if lc := status().LastCycle; lc == nil || lc.Cycle != 42 {
		t.Errorf("after a late record of cycle 40: last_cycle %+v, want still 42", lc)
	}
}

// A stopping gateway marks every device unknown (nobody watches them), and
// a starting one too until its drivers reach them: a status left online by
// a gateway that died is never announced again as fresh.
func TestDevicesUnknownWhenTheGatewayStopsAndStarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, d := range []string{"ac-1", "ac-2"} {
		if err := j.Event(ctx, protocol.Event{Device: d, Kind: protocol.EventPhase, Phase: protocol.PhaseHeating, Cycle: 7, Program: "134-porous", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	v := j.StatusVersion()
	if err := j.MarkDevicesUnknown(ctx, "gateway stopped"); err != nil {
		t.Fatal(err)
	}
	if j.StatusVersion() == v {
		t.Error("StatusVersion did not move: the publisher would not publish the unknown statuses")
	}
	sts, err := j.DeviceStatuses(ctx)
	if err != nil || len(sts) != 2 {
		t.Fatalf("statuses %+v, %v", sts, err)
	}
	for _, st := range sts {
		if st.State != protocol.DeviceUnknown || st.Error != "gateway stopped" || st.Phase != protocol.PhaseHeating || !st.At.After(at) {
			t.Errorf("after stop: %+v, want unknown (gateway stopped) keeping the last phase", st)
		}
	}
	j.Close()

	// A gateway that died left ac-1 online; the next start says unknown.
	j = openTest(t, path, Options{})
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventOnline, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := j.RegisterDevices(ctx, "ac-1", "ac-3"); err != nil {
		t.Fatal(err)
	}
	sts, err = j.DeviceStatuses(ctx)
	if err != nil || len(sts) != 3 {
		t.Fatalf("statuses %+v, %v", sts, err)
	}
	for _, st := range sts {
		if st.State != protocol.DeviceUnknown {
			t.Errorf("after start: %s is %s, want unknown", st.Device, st.State)
		}
	}
	if sts[0].Error != "" {
		t.Errorf("a registered device keeps the error %q of the stop", sts[0].Error)
	}
}

func TestStateStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	if b, err := j.LoadState(ctx, "ac-1"); b != nil || err != nil {
		t.Fatalf("LoadState before save: %q %v, want nil nil", b, err)
	}
	if err := j.SaveState(ctx, "ac-1", []byte(`{"cycle":4}`)); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveState(ctx, "ac-1", []byte(`{"cycle":5}`)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = openTest(t, path, Options{})
	b, err := j.LoadState(ctx, "ac-1")
	if err != nil || string(b) != `{"cycle":5}` {
		t.Fatalf("LoadState after reopen: %q %v", b, err)
	}
}

func TestReopenContinuesChainAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j := openTest(t, path, Options{})
	for c := range uint64(3) {
		if err := j.Cycle(ctx, testRecord("ac-1", c+1)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	j = openTest(t, path, Options{})
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	all, _ := j.Entries(ctx, "", "")
	if verifyChains(t, all)["ac-1"] != 4 {
		t.Fatalf("want 4 entries after reopen")
	}
	if err := j.exec(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := Open(path, Options{Gateway: "g", Site: "s"}); err == nil || !strings.Contains(err.Error(), "99") {
		t.Fatalf("Open of a newer schema: err %v, want one naming version 99", err)
	}
}

// exec runs sqlText on the writer connection (tests only).
func (j *Journal) exec(ctx context.Context, sqlText string) error {
	return j.submit(ctx, &request{kind: reqExec, sqlText: sqlText})
}

// TestHelperProcess is the child of TestSurvivesSIGKILL: it appends in a
// loop from several goroutines and prints each record id once its call
// returned nil, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("STERIGATE_JOURNAL_HELPER_DB")
	if path == "" {
		t.Skip("only runs as the child of TestSurvivesSIGKILL")
	}
	j, err := Open(path, Options{Gateway: "gw-test", Site: "dax"})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	report := func(line string) {
		mu.Lock()
		out.WriteString(line + "\n")
		out.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 4 {
		device := fmt.Sprintf("ac-%d", g%2)
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				var err error
				var what string
				switch i % 3 {
				case 0:
					cycle := uint64(g)*1_000_000 + i
					err = j.Cycle(ctx, testRecord(device, cycle))
					what = protocol.CycleID("dax", device, cycle)
				case 1:
					err = j.Telemetry(ctx, testTelemetry(device, 10))
					what = "telemetry " + device
				default:
					err = j.Event(ctx, protocol.Event{Device: device, Kind: protocol.EventPhase, Phase: protocol.PhaseHeating, Cycle: i})
					what = "event " + device
				}
				if err != nil {
					report("error " + err.Error())
					return
				}
				report("ok " + what)
			}
		})
	}
	wg.Wait()
}

// startHelper starts TestHelperProcess appending to the journal at path;
// the scanner reads what it acknowledged.
func startHelper(t *testing.T, path string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "STERIGATE_JOURNAL_HELPER_DB="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout)
}

func TestSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	for round := range 3 {
		cmd, sc := startHelper(t, path)
		acked := map[string]int{} // cycle ids and per-device counts of other kinds
		lines := 0
		want := 400 + round*137 // kill at a different instant each round
		for lines < want && sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ok ") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			acked[strings.TrimPrefix(line, "ok ")]++
			lines++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Lines printed after the kill decision were acknowledged too.
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ok ") {
				acked[strings.TrimPrefix(line, "ok ")]++
			}
		}
		cmd.Wait()
		if lines < want {
			t.Fatalf("round %d: child printed only %d lines", round, lines)
		}

		j := openTest(t, path, Options{})
		all, err := j.Entries(context.Background(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		verifyChains(t, all)
		have := map[string]int{}
		for _, e := range all {
			switch e.Kind {
			case KindCycle:
				have[e.RecordID]++
			default:
				have[string(e.Kind)+" "+e.Device]++
			}
		}
		for what, n := range acked {
			if have[what] < n {
				t.Fatalf("round %d: %q acknowledged %d times before SIGKILL, journal holds %d", round, what, n, have[what])
			}
		}
		t.Logf("round %d: %d acknowledged appends, journal holds %d entries", round, lines, len(all))
		j.Close()
	}
}

func TestCloseIsIdempotentAndRefusesLaterCalls(t *testing.T) {
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(context.Background(), testRecord("ac-1", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Cycle after Close: %v, want ErrClosed", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

// A read of the outbox stops at about 1 MiB of payload, so a backlog of
// long cycle records is not loaded into memory a whole batch at a time.
func TestPendingReadIsBoundedByPayloadBytes(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	for c := uint64(1); c <= 10; c++ {
		rec := testRecord("ac-1", c)
		for i := range 2400 { // a 40-minute cycle at 1 Hz: about 200 KB of JSON
			rec.Samples = append(rec.Samples, protocol.Sample{At: rec.StartedAt.Add(time.Duration(i) * time.Second), TempC: 134.2, PressureKPa: 305.1, Phase: protocol.PhaseSterilizing})
		}
		if err := j.Cycle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.PendingInLane(ctx, LaneUrgent, 0, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, e := range got {
		size += len(e.Payload)
	}
	if len(got) == 0 || len(got) == 10 || size > readBudget+len(got[len(got)-1].Payload) {
		t.Fatalf("read %d of 10 records, %d bytes; want a read bounded near %d bytes", len(got), size, readBudget)
	}
	// Tools and tests that ask for everything still get everything.
	if all, err := j.Pending(ctx, 256); err != nil || len(all) != 10 {
		t.Fatalf("Pending returned %d entries, %v", len(all), err)
	}
}

// The metrics the console exposes: the age of the oldest undelivered entry
// (whichever lane it is in) and the cycle records journaled by device and
// result, where a record journaled twice counts once.
func TestStatsOldestPendingAndCycleCounts(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixMilli())
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	if st, err := j.Stats(ctx); err != nil || !st.OldestPending.IsZero() {
		t.Fatalf("empty journal: oldest pending %s, %v; want zero", st.OldestPending, err)
	}
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 2)); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(time.Minute / time.Millisecond))
	failed := testRecord("ac-1", 8)
	failed.Result = protocol.ResultFailed
	for _, rec := range []protocol.CycleRecord{testRecord("ac-1", 7), failed, testRecord("ac-1", 7), testRecord("ac-2", 1)} {
		if err := j.Cycle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	st, err := j.Stats(ctx)
	if err != nil || !st.OldestPending.Equal(t0) || st.PendingTelemetry != 1 || st.PendingUrgent != 3 {
		t.Fatalf("stats %+v, %v; want the telemetry's time %s as the oldest pending, 1 + 3 pending", st, err, t0)
	}
	// Once the telemetry is delivered, the oldest is the first cycle record.
	tele, _ := j.Entries(ctx, "ac-1", KindTelemetry)
	if err := j.MarkDelivered(ctx, tele[0].ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := j.Stats(ctx); !st.OldestPending.Equal(t0.Add(time.Minute)) {
		t.Errorf("oldest pending %s after the telemetry was delivered, want %s", st.OldestPending, t0.Add(time.Minute))
	}
	want := map[CycleCount]int64{{Device: "ac-1", Result: protocol.ResultPassed}: 1, {Device: "ac-1", Result: protocol.ResultFailed}: 1, {Device: "ac-2", Result: protocol.ResultPassed}: 1}
	if got := j.CyclesJournaled(); !maps.Equal(got, want) {
		t.Errorf("cycles journaled %v, want %v", got, want)
	}
}
