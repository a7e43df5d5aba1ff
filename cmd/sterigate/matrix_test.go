package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// The programs of the simulator and its process faults ("" is a healthy
// cycle), in the order the matrix runs them (docs/simulator.md).
var (
	matrixPrograms = []string{"134-porous", "134-prion", "121-15", "121-20", "bowie-dick", "leak-test", "gravity-121"}
	matrixFaults   = []string{"", "air_leak", "ncg", "temp_sag", "overshoot", "heating_timeout", "power_loss", "operator_abort", "sensor_stuck", "lying"}
)

// expectedVerdict is sterigate's verdict on one program with one fault at
// its defaults (docs/simulator.md), and why.
func expectedVerdict(program, fault string) (verdict, why string) {
	switch {
	case fault == "" && program == "bowie-dick":
		return protocol.VerdictNotApplicable, "a healthy Bowie-Dick test: its indicator sheet decides"
	case fault == "":
		return protocol.VerdictPass, "a healthy cycle"
	case program == "leak-test" && fault == "air_leak":
		return protocol.VerdictFail, "the pressure rises faster than 0.13 kPa/min"
	case program == "leak-test":
		return protocol.VerdictPass, "the fault acts in a phase a leak test does not have (heating, sterilizing, steam), or, lying, has no defect to hide in one"
	case program == "gravity-121" && fault == "air_leak":
		return protocol.VerdictPass, "a leak lets air in only below atmospheric pressure, and a gravity cycle purges with steam above it: the cycle is good"
	case fault == "heating_timeout" && (program == "121-15" || program == "121-20"):
		return protocol.VerdictPass, "the weak steam supply is enough to reach 121 °C in time: the cycle is good"
	case fault == "power_loss" && program == "134-porous":
		return protocol.VerdictIndeterminate, "30 s of hold, then 3 min dead: the hold cannot be shown short, since it might have gone on unseen for the whole time the device did not answer"
	case fault == "power_loss" && program == "bowie-dick":
		return protocol.VerdictNotApplicable, "as 134-porous: indeterminate chamber data, and a Bowie-Dick test is not judged by them"
	case fault == "sensor_stuck" && program == "bowie-dick":
		return protocol.VerdictNotApplicable, "as sensor_stuck below, and a Bowie-Dick test is not judged by its chamber data"
	case fault == "sensor_stuck":
		return protocol.VerdictPass, "the chamber sensor freezes in band while the drain and load probes show a good hold; the device fails the cycle on its sensor alarm at exhaust: a disagreement the other way (the device's verdict stands)"
	case fault == "temp_sag" && program == "gravity-121":
		return protocol.VerdictFail, "10 min 2.5 K below the band during the sterilizing phase; the device pauses its hold timer and passes the longer cycle, sterigate fails the band: a disagreement"
	case fault == "lying":
		return protocol.VerdictFail, "the device hides a 45 s sag 1.5 K below the set point and reports passed: the band fails, a disagreement"
	case fault == "heating_timeout" || fault == "operator_abort":
		return protocol.VerdictFail, "the device stopped before the sterilizing phase: the cycle ended without a hold"
	case fault == "power_loss":
		return protocol.VerdictFail, "30 s of a long hold, then 3 min dead: too short even counting the time unseen"
	}
	return protocol.VerdictFail, "the data show the fault: air below Tsat (air_leak, ncg), a sag below or a rise above the band (temp_sag, overshoot), a hold cut short"
}

// matrixTruth is the simulator's truth line, with what the check needs
// to tell a false pass: the true plateau, hold and steam saturation.
type matrixTruth struct {
	Device          int       `json:"device"`
	Program         string    `json:"program"`
	Fault           string    `json:"fault"`
	Result          string    `json:"result"`
	TruthVerdict    string    `json:"truth_verdict"`
	PlateauMinC     *float64  `json:"plateau_min_c"`
	PlateauMaxC     *float64  `json:"plateau_max_c"`
	LoadPlateauMinC *float64  `json:"load_plateau_min_c"`
	LoadPlateauMaxC *float64  `json:"load_plateau_max_c"`
	TrueHoldS       float64   `json:"true_hold_s"`
	MaxSatDevK      float64   `json:"max_sat_deviation_k"`
	LeakRateKPaMin  *float64  `json:"leak_rate_kpa_min"`
	EndedAt         time.Time `json:"ended_at"`
	Phases          []struct {
		Name string    `json:"name"`
		At   time.Time `json:"at"`
	} `json:"phases"`
}

// phaseSkew compares the record's sterilizing and leak_test phases,
// timed on the gateway's clock times time_scale, with the simulator's
// own clock: a gateway or a simulator that stalled on a loaded machine
// (the simulator then catches up in one jump) makes them differ, and the
// record's durations mean nothing. It says by how much, or "".
func (tr matrixTruth) phaseSkew(rec protocol.CycleRecord) string {
	scale := rec.TimeScale
	if scale == 0 {
		scale = 1
	}
	for _, name := range []protocol.PhaseName{protocol.PhaseSterilizing, protocol.PhaseLeakTest} {
		var truth float64
		for i, ph := range tr.Phases {
			if ph.Name == string(name) {
				end := tr.EndedAt
				if i+1 < len(tr.Phases) {
					end = tr.Phases[i+1].At
				}
				truth += end.Sub(ph.At).Seconds()
			}
		}
		var recorded float64
		for _, ph := range rec.Phases {
			if ph.Name == name {
				recorded += ph.End.Sub(ph.Start).Seconds() * scale
			}
		}
		if truth > 0 && math.Abs(recorded-truth) > 5 {
			return fmt.Sprintf("%s lasted %.0f s on the simulator's clock, %.0f s on the gateway's", name, truth, recorded)
		}
	}
	return ""
}

// physicsPassed says whether the cycle, as it really happened, met the
// criteria the record was judged by: a pass on any other cycle is a
// false pass.
func (tr matrixTruth) physicsPassed(c protocol.Criteria) bool {
	if c.Kind == "leak_test" {
		return tr.LeakRateKPaMin != nil && *tr.LeakRateKPaMin <= c.LeakRateKPaMin
	}
	in := func(lo, hi *float64) bool {
		return lo != nil && hi != nil && *lo >= c.SetPointC && *hi <= c.SetPointC+c.BandK
	}
	return in(tr.PlateauMinC, tr.PlateauMaxC) && in(tr.LoadPlateauMinC, tr.LoadPlateauMaxC) &&
		tr.TrueHoldS >= c.MinHoldSeconds && tr.MaxSatDevK <= c.SaturationK
}

// matrixSet is one simulator of the matrix: the devices it runs, and the
// profile the gateway reads them with.
type matrixSet struct {
	name    string   // device ids are name + cell number
	simArgs []string // beyond the matrix's own
	profile string
	// chamberOnly: the profile maps no drain or load probe, so a hold the
	// device times at exactly the minimum is measured within one sample
	// of it: a pass may come out indeterminate (docs/verification.md).
	chamberOnly bool
}

// TestVerificationMatrix: every simulator program × every process fault,
// one per device of a simulator, through the real binaries and a real
// Mosquitto: each record's verdict is the expected one, no record passes
// a cycle whose real physics failed, and every disagreement is flagged
// (its event on the broker, the device's retained status, /metrics).
//
// It runs the matrix twice at once, through two simulators and one
// gateway: the simulator read with the built-in sim-autoclave profile,
// and (issue 9's acceptance) the same simulator with its registers
// shuffled (--shuffle 42), "a Modbus device this project has never seen",
// read with a profile written by hand from its register list alone
// (testdata/acceptance/shuffle-42.yaml). A build whose simulator has no
// --shuffle runs the first half only, and says so.
//
// The simulators run at 25× and the gateway polls every 60 ms (1.5 s of
// device time); the longest cycle (gravity-121 with a sag) takes 54
// simulated minutes, so the matrix takes about 2 min 20 s. On a shared
// 2-core machine a 100 ms stall of the gateway is 2.5 s of device time,
// so the devices' site criteria allow 10 s between samples
// (max_sample_interval_s) instead of 2.5 s: no fault here is shorter than
// 45 s, and the 2.5 s default is tested by the demo and the unit tests.
// A record the test bed could not make faithful (a stall of the gateway
// or the simulator) is named in the log and held to one rule only: never
// a false pass.
func TestVerificationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 140 simulated cycles of up to 54 simulated minutes")
	}
	const speed = 25
	started := time.Now()
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	records := subscribe(t, broker.addr(), "sterigate/+/+/cycle")
	events := subscribe(t, broker.addr(), "sterigate/+/+/event")
	statuses := subscribe(t, broker.addr(), "sterigate/+/+/status")

	sets := []matrixSet{{name: "d", profile: "sim-autoclave"}}
	if help, _ := exec.Command(binary, "sim", "-h").CombinedOutput(); strings.Contains(string(help), "-shuffle") {
		acceptance, err := filepath.Abs("testdata/acceptance/shuffle-42.yaml")
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, matrixSet{name: "u", simArgs: []string{"--shuffle", "42"}, profile: acceptance, chamberOnly: true})
	} else {
		t.Log("this build's simulator has no --shuffle: the acceptance half (an unseen device, testdata/acceptance/shuffle-42.yaml) does not run")
	}

	type cell struct {
		set            matrixSet
		program, fault string
		device         string
		n              int // device number in its simulator
	}
	var cells []cell
	var scen strings.Builder
	// Every first cycle starts after 100 simulated seconds (4 s), once
	// the gateway reaches every device.
	scen.WriteString("pause: 1m\ndevices:\n")
	for _, p := range matrixPrograms {
		for _, f := range matrixFaults {
			n := len(cells) + 1
			cells = append(cells, cell{program: p, fault: f, n: n})
			fmt.Fprintf(&scen, "  - device: %d\n    repeat: false\n    cycles:\n      - program: %s\n        pause: 100s\n", n, p)
			if f != "" {
				fmt.Fprintf(&scen, "        faults: [{kind: %s}]\n", f)
			}
		}
	}
	perSet := len(cells)
	scenario := writeFile(t, filepath.Join(dir, "matrix.yaml"), scen.String())
	var all []cell
	var devs strings.Builder
	sims := map[string]*proc{}
	truthPaths := map[string]string{}
	for _, set := range sets {
		base := freePortRange(t, perSet)
		truthPaths[set.name] = filepath.Join(dir, set.name+"-truth.jsonl")
		args := append([]string{"sim", "--modbus-tcp", fmt.Sprintf("127.0.0.1:%d", base), "--port-per-device",
			"--devices", fmt.Sprint(perSet), "--speed", fmt.Sprint(speed), "--seed", "1", "--scenario", scenario, "--truth", truthPaths[set.name]}, set.simArgs...)
		sims[set.name] = startProc(t, "sim "+set.name, binary, args...)
		sims[set.name].waitOutput(20*time.Second, fmt.Sprintf("units %d-%d", perSet, perSet))
		for _, c := range cells {
			c.set, c.device = set, fmt.Sprintf("%s%02d", set.name, c.n)
			all = append(all, c)
			fmt.Fprintf(&devs, "  - {id: %s, driver: modbus-tcp, address: \"127.0.0.1:%d\", profile: %q, poll_interval: 60ms, timeout: 500ms,\n"+
				"     time_scale: %d, criteria: {%s: {max_sample_interval_s: 10}}}\n", c.device, base+c.n-1, set.profile, speed, c.program)
		}
	}
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: matrix-gw, site: lab, data_dir: %q, console: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
%s`, memoryDir(t), consoleAddr, broker.addr(), devs.String()))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)

	byID := func(c *collector) map[string][]byte {
		out := map[string][]byte{}
		for _, m := range c.messages() {
			var id struct {
				Device string `json:"device"`
			}
			if json.Unmarshal(m.Payload, &id) == nil {
				out[id.Device] = m.Payload // the device's last message
			}
		}
		return out
	}
	waitFor(t, 5*time.Minute, "a record of every cycle", func() bool {
		mustRun(t, gw)
		for _, s := range sims {
			mustRun(t, s)
		}
		return len(byID(records)) == len(all)
	})
	elapsed := time.Since(started)
	truth := map[string]matrixTruth{}
	for name, path := range truthPaths {
		for _, line := range readLines(t, path) {
			var tr matrixTruth
			if err := json.Unmarshal([]byte(line), &tr); err != nil {
				t.Fatalf("truth line %q: %v", line, err)
			}
			truth[fmt.Sprintf("%s%02d", name, tr.Device)] = tr
		}
	}

	recs := byID(records)
	var disagreements, degraded []string
	falsePasses, maxInterval := 0, 0.0
	var table strings.Builder
	for _, c := range all {
		var rec protocol.CycleRecord
		if err := json.Unmarshal(recs[c.device], &rec); err != nil {
			t.Fatalf("%s: %v", c.device, err)
		}
		v := rec.Verification
		tr := truth[c.device]
		if v == nil {
			t.Errorf("%s %s %q: the record has no verification", c.device, c.program, c.fault)
			continue
		}
		want, why := expectedVerdict(c.program, c.fault)
		// A gateway that stalled (a loaded machine: 1 s is 25 s of
		// device time) did not see all of the cycle; its record says so.
		stalled := stalledRecord(rec, c.fault)
		if skew := tr.phaseSkew(rec); skew != "" && c.fault != "power_loss" {
			stalled = strings.TrimPrefix(stalled+"; "+skew, "; ")
		}
		if stalled != "" {
			degraded = append(degraded, c.device+": "+stalled)
		}
		var notes []string
		onlyHoldAtTheEdge := true
		for _, ch := range v.Checks {
			if ch.Name == "sample_interval" && ch.Measured != nil && ch.OK {
				maxInterval = max(maxInterval, *ch.Measured)
			}
			if !ch.OK {
				notes = append(notes, ch.Name+" "+ch.Result+": "+ch.Note)
				onlyHoldAtTheEdge = onlyHoldAtTheEdge && ch.Name == "hold_time" && ch.Result == protocol.CheckIndeterminate
			}
		}
		fmt.Fprintf(&table, "%-4s %-12s %-16s device %-8s truth %-7s verdict %-15s agrees %v\n", c.device, c.program, orDash(c.fault), rec.Result, tr.TruthVerdict, v.Verdict, agreesText(v))
		if rec.Program != c.program || tr.Program != c.program || tr.Fault != c.fault {
			t.Errorf("%s ran %q (truth %q/%q), want %q/%q", c.device, rec.Program, tr.Program, tr.Fault, c.program, c.fault)
		}
		if string(rec.Result) != tr.Result {
			t.Errorf("%s: the record says the device's result was %s, the simulator reported %s", c.device, rec.Result, tr.Result)
		}
		switch {
		case stalled != "" && v.Verdict != protocol.VerdictPass:
			// A record the test bed could not make faithful may be judged
			// indeterminate, or even fail on durations the stall distorted;
			// it must never pass a cycle that was not good (below).
		case c.set.chamberOnly && want == protocol.VerdictPass && v.Verdict == protocol.VerdictIndeterminate && onlyHoldAtTheEdge:
			// A hold of exactly the minimum, read from the chamber alone.
		case v.Verdict != want:
			t.Errorf("%s %s %s: verdict %s, want %s (%s)\n  %s", c.device, c.program, orDash(c.fault), v.Verdict, want, why, strings.Join(notes, "\n  "))
		}
		if v.Verdict == protocol.VerdictPass && !tr.physicsPassed(v.Criteria) {
			falsePasses++
			t.Errorf("%s %s %s: FALSE PASS: the real cycle was %+v", c.device, c.program, orDash(c.fault), tr)
		}
		if c.fault == "lying" && c.program != "leak-test" && (agreesText(v) != "false" || v.Verdict != protocol.VerdictFail && stalled == "") {
			t.Errorf("%s lying %s: verdict %s, agrees_with_device %s; want fail, false", c.device, c.program, v.Verdict, agreesText(v))
		}
		if v.Criteria.Source != "site" || v.Criteria.MaxSampleIntervalSeconds != 10 || v.Criteria.TimeScale != speed {
			t.Errorf("%s: judged by %+v, want the site's criteria in device time", c.device, v.Criteria)
		}
		if agreesText(v) == "false" {
			disagreements = append(disagreements, c.device)
		}
	}
	t.Logf("matrix of %d cycles (%d simulator(s)) in %s (at %d×, gateway polling every 60 ms); largest sample interval in a hold that passed it %.2f s of device time; %d false passes; %d disagreements; %d records the test bed could not make faithful\n%s",
		len(all), len(sets), elapsed.Round(time.Second), speed, maxInterval, falsePasses, len(disagreements), len(degraded), table.String())
	if len(degraded) > 0 {
		t.Logf("records the test bed could not make faithful (any verdict but a false pass accepted):\n  %s", strings.Join(degraded, "\n  "))
	}
	if len(degraded) > len(all)/2 {
		t.Errorf("%d of %d records were not sampled whole: the machine is too loaded for the matrix to show the expected verdicts", len(degraded), len(all))
	}

	// Every disagreement flagged: its event on the broker, naming the
	// record; the device's retained status; the metric.
	waitFor(t, 30*time.Second, "an event and a status for every disagreement", func() bool {
		evs, sts := byKindEvents(events), byID(statuses)
		for _, d := range disagreements {
			var st protocol.DeviceStatus
			if _, ok := evs[d]; !ok || json.Unmarshal(sts[d], &st) != nil || st.LastCycle == nil || !st.LastCycle.Disagreement {
				return false
			}
		}
		return true
	})
	evs := byKindEvents(events)
	for _, d := range disagreements {
		ev := evs[d]
		if ev.RecordID != protocol.CycleID("lab", d, 1) || ev.Cycle != 1 || ev.Verdict == "" || ev.Text == "" {
			t.Errorf("%s: disagreement event %+v", d, ev)
		}
	}
	if len(evs) != len(disagreements) {
		t.Errorf("%d devices raised a disagreement event, %d records disagree", len(evs), len(disagreements))
	}
	code, metrics := httpGet("http://" + consoleAddr + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, metrics)
	}
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(metrics))
	for sc.Scan() {
		var dev string
		var n float64
		if _, err := fmt.Sscanf(sc.Text(), "sterigate_verification_disagreements_total{device=%q} %g", &dev, &n); err == nil {
			total += n
		}
	}
	if total != float64(len(disagreements)) {
		t.Errorf("/metrics counts %v disagreements, want %d", total, len(disagreements))
	}
	if err := gw.stop(20 * time.Second); err != nil {
		t.Errorf("gateway did not stop cleanly: %v", err)
	}
}

// stalledRecord says why the gateway could not sample the cycle whole,
// or "" when it could: the gateway stalled (a gateway_down hole), did not
// see the start or the end, or sampled the hold more sparsely than the
// criteria allow. A device that lost power leaves device_offline holes
// by design, and its hold cannot be sampled: that is the fault.
func stalledRecord(rec protocol.CycleRecord, fault string) string {
	var why []string
	for _, h := range rec.Holes {
		if h.Reason == protocol.HoleGatewayDown || fault != "power_loss" {
			why = append(why, fmt.Sprintf("hole %s %s", h.Reason, h.To.Sub(h.From)))
		}
	}
	if fault == "power_loss" {
		// The device's death leaves the record incomplete, its end unseen
		// and its hold unsampled: that is the fault.
		return strings.Join(why, "; ")
	}
	if !rec.Complete || !rec.EndSeen {
		why = append(why, fmt.Sprintf("complete %v, end_seen %v", rec.Complete, rec.EndSeen))
	}
	for _, ch := range rec.Verification.Checks {
		if ch.Name == "sample_interval" && ch.Result == protocol.CheckIndeterminate && ch.Measured != nil {
			why = append(why, fmt.Sprintf("samples %.1f s apart in the hold", *ch.Measured))
		}
	}
	return strings.Join(why, "; ")
}

func agreesText(v *protocol.Verification) string {
	if v.AgreesWithDevice == nil {
		return "absent"
	}
	return fmt.Sprint(*v.AgreesWithDevice)
}

// byKindEvents returns each device's verification_disagreement events.
func byKindEvents(c *collector) map[string]protocol.Event {
	out := map[string]protocol.Event{}
	for _, m := range c.messages() {
		var ev protocol.Event
		if json.Unmarshal(m.Payload, &ev) == nil && ev.Kind == protocol.EventVerificationDisagreement {
			out[ev.Device] = ev
		}
	}
	return out
}

// freePortRange finds n consecutive free loopback ports.
func freePortRange(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := freePort(t)
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			ok = portFree(p)
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

// memoryDir is a directory in memory (tmpfs) where there is one: the
// matrix judges verdicts, not durability, and on a shared machine the
// disk's flushes stall 70 pollers together (1 s is 25 s of device time).
func memoryDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "sterigate-matrix-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
