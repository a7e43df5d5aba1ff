package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/learn"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/autoclave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// learnSpeed runs the simulator's cycles 60 times faster; learn is told
// the same with --speed, so it takes a round every device second.
const learnSpeed = 60

// startLearnSim starts a simulator whose registers are shuffled from seed,
// with a warm-up cycle already run (the latched block holds a finished
// cycle) and the cycle to learn starting three device minutes later.
func startLearnSim(t *testing.T, seed int64, rtuPath string) (*sim.Simulator, *sim.Shuffle) {
	t.Helper()
	sc, err := scenario.Parse("learn.yaml", []byte(`
pause: 3m
devices:
  - device: default
    counter_start: 70400
    repeat: false
    cycles:
      - program: 134-porous
      - program: bowie-dick
`))
	if err != nil {
		t.Fatal(err)
	}
	sh := sim.NewShuffle(seed)
	opts := sim.Options{Seed: seed, Shuffle: sh, Scenario: sc, Speed: learnSpeed, Tick: 10 * time.Millisecond, RTU: rtuPath}
	if rtuPath == "" {
		opts.ModbusTCP = "127.0.0.1:0"
	}
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for img, _ := s.Bank().Image(1); uint32(img[16])<<16|uint32(img[17]) != 70401; img, _ = s.Bank().Image(1) {
		s.Advance(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, 10*time.Second, "the simulator's port", func() bool {
		if rtuPath != "" {
			_, err := os.Stat(rtuPath)
			return err == nil
		}
		c, err := net.Dial("tcp", s.Addrs()[0])
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s, sh
}

// checkDraftAgainstLayout decodes every sample of the recording with the
// draft and with the simulator's own layout: temperature and pressure
// within 0.1, the counter exactly, the phase of every sample the same.
func checkDraftAgainstLayout(t *testing.T, draftPath, recPath string, sh *sim.Shuffle) {
	t.Helper()
	p, err := profile.Load(draftPath)
	if err != nil {
		t.Fatalf("the draft does not load: %v", err)
	}
	f, err := os.Open(recPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := learn.ReadRecording(f, recPath)
	if err != nil {
		t.Fatal(err)
	}
	layout := map[string]sim.ShuffledField{}
	for _, sf := range sh.Fields {
		layout[sf.Name] = sf
	}
	words := func(s learn.Sample, fn byte, addr uint16, n int) []uint16 {
		for i, b := range rec.Header.Blocks {
			if b.Function == fn && addr >= b.Start && int(addr)+n <= b.End() && s.Values[i] != nil {
				return s.Values[i][addr-b.Start : int(addr-b.Start)+n]
			}
		}
		return nil
	}
	bad := 0
	for role, name := range map[profile.Role]string{profile.RoleChamberTemperature: "chamber_temp", profile.RoleChamberPressure: "chamber_pressure",
		profile.RoleCycleCounter: "cycle_counter", profile.RolePhase: "phase"} {
		field, ok := p.Field(p.RoleField[role])
		if !ok {
			t.Errorf("the draft has no %s", role)
			continue
		}
		truth := layout[name]
		for k, s := range rec.Samples {
			w, tw := words(s, field.Function, field.Address, field.Span()), words(s, truth.Function, truth.Address, truth.Registers())
			if w == nil || tw == nil {
				continue
			}
			got, err := field.Value(w)
			if err != nil {
				t.Fatal(err)
			}
			want := truth.Decode(tw)
			if role == profile.RolePhase {
				if g, w := p.Phases[int(got)], autoclave.Phase(want).Name(); g != w && bad < 10 {
					bad++
					t.Errorf("sample %d: phase %q, the simulator is in %q", k, g, w)
				}
				continue
			}
			if math.Abs(got-want) > 0.1+1e-9 && bad < 10 {
				bad++
				t.Errorf("sample %d: %s reads %v, the simulator says %v", k, role, got, want)
			}
		}
	}
	if bad > 0 {
		t.Logf("layout:\n%s", sh)
	}
}

// TestLearnOverTCP learns a shuffled simulator over Modbus TCP, end to
// end through the command: the draft decodes every sample right, check
// accepts a config that uses it as written, --from gives the same draft
// and --json a report tools can read, and the device saw no write.
func TestLearnOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("records a whole simulated cycle (about 40 s)")
	}
	s, sh := startLearnSim(t, 5, "")
	dir := t.TempDir()
	recPath, draftPath := filepath.Join(dir, "rec.jsonl"), filepath.Join(dir, "profiles", "learned.yaml")
	os.Mkdir(filepath.Join(dir, "profiles"), 0o755)
	out, errOut, err := runCLI("learn", "--tcp", s.Addrs()[0], "--speed", fmt.Sprint(learnSpeed), "--record", recPath, "--out", draftPath,
		"--duration", "45m", "--name", "acme")
	if err != nil {
		t.Fatalf("learn: %v\n%s\n%s", err, out, errOut)
	}
	for _, want := range []string{"chamber_temp", "chamber_pressure", "cycle end:  last_cycle_change", "draft:      " + draftPath} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "phases: idle → preparation → air_removal") || !strings.Contains(errOut, "stopped: end of cycle recognised") {
		t.Errorf("progress:\n%s", errOut)
	}
	checkDraftAgainstLayout(t, draftPath, recPath, sh)
	if n := s.Bank().WritesRefused(1); n != 0 {
		t.Errorf("the simulator received %d write requests", n)
	}

	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: acme-1, driver: modbus-tcp, address: %q, profile: profiles/learned.yaml}
`, s.Addrs()[0]))
	if out, _, err := runCLI("check", "--config", cfg); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("check refuses the draft as written: %v\n%s", err, out)
	}

	again := filepath.Join(dir, "again.yaml")
	out, _, err = runCLI("learn", "--from", recPath, "--out", again, "--name", "acme", "--json")
	if err != nil {
		t.Fatalf("learn --from: %v", err)
	}
	var rep learn.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result == nil || rep.Result.Find(profile.RoleChamberTemperature) == nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	first, _ := os.ReadFile(draftPath)
	second, _ := os.ReadFile(again)
	if !bytes.Equal(first, second) {
		t.Errorf("learn --from wrote another draft than the live run:\n%s\n---\n%s", first, second)
	}
}

// TestLearnOverRTU learns over Modbus RTU on the simulator's
// pseudo-terminal bus.
func TestLearnOverRTU(t *testing.T) {
	if testing.Short() {
		t.Skip("records a whole simulated cycle (about 40 s)")
	}
	dir := t.TempDir()
	rtuPath := filepath.Join(dir, "ttySIM")
	s, sh := startLearnSim(t, 14, rtuPath)
	recPath, draftPath := filepath.Join(dir, "rec.jsonl"), filepath.Join(dir, "draft.yaml")
	out, errOut, err := runCLI("learn", "--rtu", rtuPath, "--unit", "1", "--speed", fmt.Sprint(learnSpeed), "--record", recPath, "--out", draftPath, "--duration", "45m")
	if err != nil {
		t.Fatalf("learn: %v\n%s\n%s", err, out, errOut)
	}
	checkDraftAgainstLayout(t, draftPath, recPath, sh)
	if n := s.Bank().WritesRefused(1); n != 0 {
		t.Errorf("the simulator received %d write requests", n)
	}
}

// TestLearnRefusesAPortTheGatewayPolls: a 'sterigate run' polls the RTU
// bus; learn must not become a second master on it.
func TestLearnRefusesAPortTheGatewayPolls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway")
	}
	dir := t.TempDir()
	rtuPath := filepath.Join(dir, "ttySIM")
	startLearnSim(t, 3, rtuPath)
	cfg := writeFile(t, filepath.Join(dir, "gw.yaml"), fmt.Sprintf(`
gateway: {id: gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:%d"]}
devices:
  - {id: a, driver: modbus-rtu, serial: {port: %q}, unit: 1, profile: sim-autoclave}
`, filepath.Join(dir, "data"), freePort(t), rtuPath))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	waitFor(t, 20*time.Second, "the gateway to open the serial port", func() bool {
		mustRun(t, gw)
		users, _ := learn.SerialPortUsers(rtuPath)
		return len(users) > 0
	})
	_, _, err := runCLI("learn", "--rtu", rtuPath, "--record", filepath.Join(dir, "rec.jsonl"), "--duration", "20s", "--range", "3:0-99")
	if err == nil || !strings.Contains(err.Error(), "refusing to read") || !strings.Contains(err.Error(), fmt.Sprint(gw.cmd.Process.Pid)) {
		t.Fatalf("learn on a bus the gateway polls: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "rec.jsonl")); err == nil {
		t.Error("a recording was started")
	}
}

func TestLearnRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"learn"},
		{"learn", "--tcp", "a:1", "--rtu", "/dev/x"},
		{"learn", "--tcp", "a:1", "--rate", "0"},
		{"learn", "--rtu", "/dev/x", "--unit", "0"},
		{"learn", "--tcp", "a:1", "--range", "6:0-10"},
		{"learn", "--tcp", "a:1", "--range", "3:10-5"},
		{"learn", "--from", "x.jsonl", "--tcp", "a:1"},
		{"learn", "--tcp", "a:1", "--max-registers", "200"},
		{"learn", "--tcp", "a:1", "extra"},
	} {
		if _, _, err := runCLI(args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "bad.jsonl"), `{"format":"sterigate-learn-recording","version":1,"time_scale":1,"blocks":[{"function":3,"start":0,"count":2}]}`+"\n"+`{"t":0,"v":[[1]]}`+"\n")
	if _, _, err := runCLI("learn", "--from", bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2: v[0] has 1 values") {
		t.Errorf("a bad recording: %v", err)
	}
}

// TestLearnFlagsAreDocumented: every flag of learn appears in docs/learn.md.
func TestLearnFlagsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/learn.md")
	if err != nil {
		t.Fatal(err)
	}
	_, usage, _ := runCLI("learn", "-h")
	n := 0
	for _, line := range strings.Split(usage, "\n") {
		if f, ok := strings.CutPrefix(line, "  -"); ok {
			name, _, _ := strings.Cut(f, " ")
			n++
			if !strings.Contains(string(doc), "`--"+name) {
				t.Errorf("flag --%s is not in docs/learn.md", name)
			}
		}
	}
	if n < 15 {
		t.Fatalf("found %d flags in the usage:\n%s", n, usage)
	}
}

// TestSimShuffleFlag: 'sterigate sim --shuffle SEED' serves the layout of
// sim.NewShuffle(SEED): its chamber temperature where the layout says, and
// exception 2 where the standard map would have it.
func TestSimShuffleFlag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &simConsole{}, &simConsole{}
	done := make(chan error, 1)
	go func() {
		done <- cmdSim(ctx, []string{"--modbus-tcp", "127.0.0.1:0", "--shuffle", "3"}, stdout, stderr)
	}()
	listening := regexp.MustCompile(`modbus-tcp listening on (\S+) units`)
	waitFor(t, 10*time.Second, "the simulator to listen", func() bool { return listening.MatchString(stdout.String()) })
	addr := listening.FindStringSubmatch(stdout.String())[1]
	var temp sim.ShuffledField
	for _, f := range sim.NewShuffle(3).Fields {
		if f.Name == "chamber_temp" {
			temp = f
		}
	}
	out, _, err := runCLI("probe", "--tcp", addr, "--function", fmt.Sprint(temp.Function), "--address", fmt.Sprint(temp.Address), "--count", "2")
	if err != nil {
		t.Fatalf("reading the shuffled temperature: %v\n%s", err, out)
	}
	if _, _, err := runCLI("probe", "--tcp", addr, "--function", "3", "--address", "0", "--count", "24"); err == nil || !strings.Contains(err.Error(), "exception 2") {
		t.Errorf("the standard map's address 0 answers in a shuffled map: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("sim: %v", err)
	}
}
