package main

// The test bed runs sterigate as users do: the built binary as separate
// processes, a real Mosquitto, real sockets, real SIGKILL.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
)

var binary string // path of the sterigate binary built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sterigate-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sterigate")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sterigate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// mustRun fails the test at once if one of procs has exited: a crashed
// gateway must not look like a slow one.
func mustRun(t testing.TB, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		if p.exited() {
			t.Fatalf("%s exited unexpectedly (%v):\n%s", p.name, p.err, p.output())
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a child process whose output is kept for assertions and logs.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

type procWriter struct{ p *proc }

func (w procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func startProc(t testing.TB, name string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = procWriter{p}, procWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOutput waits until the process has printed s.
func (p *proc) waitOutput(within time.Duration, s string) {
	p.t.Helper()
	waitFor(p.t, within, fmt.Sprintf("%s to print %q", p.name, s), func() bool {
		if p.exited() && !strings.Contains(p.output(), s) {
			p.t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, s, p.output())
		}
		return strings.Contains(p.output(), s)
	})
}

// kill sends SIGKILL and waits: no chance to flush or say goodbye.
func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(within time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.name, within)
	}
}

// toolPath finds a program a test needs under one of names. Missing, the
// test is skipped with why locally, and fails in CI, whose scripts/test
// installs it.
func toolPath(t testing.TB, why string, names ...string) string {
	t.Helper()
	for _, p := range names {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}
func mosquittoPath(t testing.TB) string { return brokertest.Binary(t) }

// mosquitto is a real broker on a loopback port. It persists sessions to
// its own directory so that a subscriber's QoS 1 queue survives a restart,
// as it would on a hospital's broker.
type mosquitto struct {
	t    testing.TB
	port int
	conf string
	proc *proc
}

func startMosquitto(t testing.TB, dir string) *mosquitto {
	t.Helper()
	return startMosquittoOnPort(t, dir, freePort(t))
}

// startMosquittoOnPort is startMosquitto on a port chosen beforehand (a
// gateway configured before its broker starts).
func startMosquittoOnPort(t testing.TB, dir string, port int) *mosquitto {
	t.Helper()
	m := &mosquitto{t: t, port: port, conf: filepath.Join(dir, "mosquitto.conf")}
	// Run as whoever runs the test: as root, mosquitto would otherwise
	// switch to its own user, which cannot write the test's directory.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("user %s\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 0\nlog_dest stdout\n", me.Username, m.port, dir)
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start()
	return m
}

func (m *mosquitto) start() {
	m.t.Helper()
	m.proc = startProc(m.t, "mosquitto", mosquittoPath(m.t), "-c", m.conf)
	waitFor(m.t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", m.addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// collector is a mosquitto_sub-like subscriber with a persistent session.
type collector struct {
	mu   sync.Mutex
	msgs []message
}

type message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

func subscribe(t testing.TB, brokerAddr, filter string) *collector {
	t.Helper()
	return subscribeTo(t, "tcp://"+brokerAddr, filter, nil)
}

// subscribeTo is subscribe to a broker URL, with options (credentials,
// TLS) set by configure.
func subscribeTo(t testing.TB, broker, filter string, configure func(*mqtt.ClientOptions)) *collector {
	t.Helper()
	c := &collector{}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("e2e-sub-%d", time.Now().UnixNano())).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).SetConnectRetry(true).
		SetConnectRetryInterval(200 * time.Millisecond).SetOrderMatters(true)
	if configure != nil {
		configure(opts)
	}
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		cl.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
			c.mu.Lock()
			c.msgs = append(c.msgs, message{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained()})
			c.mu.Unlock()
		})
	})
	// Every message a test saw must fit the schema its topic calls for,
	// so a payload changed without its schema fails the end-to-end tests.
	// Registered first, it runs after the disconnect below.
	t.Cleanup(func() { c.validate(t) })
	cl := mqtt.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return c
}

func (c *collector) messages() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.msgs...)
}

// truthCycle is one line of the simulator's --truth file.
type truthCycle struct {
	Device      int     `json:"device"`
	Unit        int     `json:"unit"`
	Counter     uint64  `json:"counter"`
	Program     string  `json:"program"`
	Fault       string  `json:"fault"`
	Result      string  `json:"result"`
	ResultCode  int     `json:"result_code"`
	AlarmCode   int     `json:"alarm_code"`
	PlateauMinC float64 `json:"plateau_min_c"`
	PlateauMaxC float64 `json:"plateau_max_c"`
	HoldS       float64 `json:"hold_s"`
}

func readTruth(t testing.TB, path string) []truthCycle {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []truthCycle
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var c truthCycle
		if err := json.Unmarshal(line, &c); err != nil {
			// The simulator may be writing the last line right now.
			break
		}
		out = append(out, c)
	}
	return out
}

// startSim runs the simulator binary with devices autoclaves on a free
// loopback port, each running cycles 134 °C porous cycles and then staying
// idle and answering, so every cycle's end can be observed. comm gives
// devices (by number) communication faults, as the scenario's comm: list
// (docs/simulator.md). It returns the process, the Modbus TCP address and
// the path of its truth file.
func startSim(t testing.TB, dir string, devices, cycles int, speed int, seed uint64, comm map[int]string) (*proc, string, string) {
	t.Helper()
	plan := fmt.Sprintf(`
    repeat: false
    cycles:
      - {program: 134-porous, count: %d}`, cycles)
	text := "pause: 1m\ndevices:\n  - device: default" + plan + "\n"
	for n := 1; n <= devices; n++ {
		if c, ok := comm[n]; ok {
			text += fmt.Sprintf("  - device: %d%s\n    comm: %s\n", n, plan, c)
		}
	}
	scenario := writeFile(t, filepath.Join(dir, "scenario.yaml"), text)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	truth := filepath.Join(dir, "truth.jsonl")
	sim := startProc(t, "sim", binary, "sim", "--modbus-tcp", addr, "--devices", fmt.Sprint(devices),
		"--speed", fmt.Sprint(speed), "--seed", fmt.Sprint(seed), "--scenario", scenario, "--truth", truth)
	sim.waitOutput(20*time.Second, "modbus-tcp listening on")
	return sim, addr, truth
}

// writeFile writes a test fixture.
func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startSimPerDevice runs the simulator binary with devices autoclaves,
// each on its own loopback port (as sterilizers have an address each),
// the default scenario at speed, and returns the process and the
// devices' addresses in order.
func startSimPerDevice(t testing.TB, devices, speed int) (*proc, []string) {
	t.Helper()
	sim := startProc(t, "sim", binary, "sim", "--modbus-tcp", "127.0.0.1:0", "--port-per-device",
		"--devices", fmt.Sprint(devices), "--speed", fmt.Sprint(speed))
	listening := regexp.MustCompile(`modbus-tcp listening on (\S+)`)
	var addrs []string
	waitFor(t, 20*time.Second, "the simulator's ports", func() bool {
		mustRun(t, sim)
		addrs = addrs[:0]
		for _, m := range listening.FindAllStringSubmatch(sim.output(), -1) {
			addrs = append(addrs, m[1])
		}
		return len(addrs) == devices
	})
	return sim, addrs
}
