package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/embedbroker"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim"
)

// cmdDemo runs the whole product in one process with nothing installed: a
// simulated autoclave, an embedded MQTT broker and the gateway between
// them, printing a line for every cycle record the broker acknowledged.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	speed := fs.Float64("speed", 120, "simulated seconds per real second (120: a 134 °C cycle in about 20 s)")
	devices := fs.Int("devices", 1, "number of simulated autoclaves")
	mqttAddr := fs.String("mqtt", "127.0.0.1:0", "address of the embedded MQTT broker (port 0: any free port)")
	consoleAddr := fs.String("console", "127.0.0.1:0", "address of the local console (empty: off)")
	dataDir := fs.String("data-dir", "", "journal directory (default: a temporary directory removed at exit)")
	verbose := fs.Bool("v", false, "show the gateway's log")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate demo [--speed 120] [--devices N]\n\nRuns simulated autoclaves, an embedded MQTT broker and the gateway in one process and\nprints each cycle record the broker acknowledged. Stop with Ctrl-C. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *devices < 1 || *devices > 247 {
		return usageError{fmt.Sprintf("demo: --devices %d is out of range (1 to 247)", *devices)}
	}
	if *speed <= 0 {
		return usageError{fmt.Sprintf("demo: --speed %g must be positive", *speed)}
	}
	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))

	if *dataDir == "" {
		// A throwaway journal, in memory where the system has a tmpfs: at
		// 120× a disk flush of 100 ms on a busy machine is 12 s of the
		// simulated hold gone unsampled.
		parent := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			parent = "/dev/shm"
		}
		dir, err := os.MkdirTemp(parent, "sterigate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*dataDir = dir
	}

	broker, err := embedbroker.Start(*mqttAddr, log)
	if err != nil {
		return fmt.Errorf("demo: starting the embedded broker: %w", err)
	}
	defer broker.Close()

	simAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	simulator, err := sim.New(sim.Options{Devices: *devices, Speed: *speed, Seed: time.Now().UnixNano(), ModbusTCP: simAddr,
		Logger: log.With("component", "sim")})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	cfg := &config.Config{
		File: "demo",
		Gateway: config.Gateway{ID: "demo-gw", Site: "demo", DataDir: *dataDir,
			Journal:   config.Journal{Retention: config.DefaultRetention},
			Readiness: config.Readiness{BrokerUnreachable: config.DefaultBrokerUnreachable, DeviceOffline: config.DefaultDeviceOffline}},
		MQTT: config.MQTT{Brokers: []string{broker.URL()}, TopicRoot: config.DefaultTopicRoot, ClientID: "sterigate-demo-gw",
			KeepAlive: config.DefaultKeepAlive, Inflight: config.DefaultInflight},
	}
	consoleLogin := ""
	if *consoleAddr != "" {
		if cfg.Gateway.Console, err = resolveListenAddr(*consoleAddr); err != nil {
			return err
		}
		// One account, so release decisions can be tried: a fresh random
		// password, printed below (a reused data dir keeps its accounts).
		users := filepath.Join(*dataDir, "console-users")
		cfg.Gateway.ConsoleAccess.UsersFile = users
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return err
		}
		if _, err := os.Stat(users); os.IsNotExist(err) {
			password := rand.Text()[:12]
			if err := console.AddUser(users, "demo", console.RoleAdmin, []byte(password), false); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			consoleLogin = "demo / " + password
		}
	}
	// Poll once per simulated second, so the hold is sampled well within
	// the 2.5 s of device time sterigate's check asks for (and judged in
	// device time: time_scale), and a healthy cycle's verdict is pass. A
	// poll more often than every few milliseconds is not kept up
	// reliably: faster demos are sampled too sparsely for a pass.
	poll := max(demoMinPoll, time.Duration(float64(time.Second) / *speed))
	for i := 1; i <= *devices; i++ {
		cfg.Devices = append(cfg.Devices, config.Device{ID: fmt.Sprintf("autoclave-%d", i), Driver: config.DriverModbusTCP,
			Address: simAddr, Unit: i, Profile: "sim-autoclave", PollInterval: poll, Timeout: time.Second, TimeScale: *speed})
	}

	fmt.Fprintf(stdout, "sterigate demo: %d simulated autoclave(s) at %gx speed, Modbus TCP on %s\n", *devices, *speed, simAddr)
	fmt.Fprintf(stdout, "MQTT broker (embedded): %s\n", broker.URL())
	fmt.Fprintf(stdout, "  watch it:  mosquitto_sub -h 127.0.0.1 -p %s -t 'sterigate/#' -v\n", portOf(broker.Addr()))
	if cfg.Gateway.Console != "" {
		fmt.Fprintf(stdout, "Console: http://%s/\n", cfg.Gateway.Console)
		if consoleLogin != "" {
			fmt.Fprintf(stdout, "  log in to record release decisions as %s\n", consoleLogin)
		}
	}
	if sampled := poll.Seconds() * *speed; sampled > demoLoosestSampling {
		fmt.Fprintf(stdout, "Note: at %gx the gateway polls every %s, %.1f s of device time: too sparse for sterigate's check\n"+
			"  (samples at most 2.5 s apart); verdicts will be indeterminate. Use --speed %g or less for pass verdicts.\n",
			*speed, poll, sampled, demoLoosestSampling/demoMinPoll.Seconds())
	}
	fmt.Fprintf(stdout, "Journal: %s/journal.db\nWaiting for the first cycle to finish (Ctrl-C to stop)...\n", *dataDir)

	started := time.Now()
	var printMu sync.Mutex
	onDelivered := func(e journal.Entry) {
		if e.Kind != journal.KindCycle {
			return
		}
		var r protocol.CycleRecord
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			return
		}
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Fprintln(stdout, describeRecord(r, time.Since(started)))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	simErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		simErr <- simulator.Run(ctx)
	}()
	err = runGateway(ctx, gatewayOptions{cfg: cfg, log: log, onDelivered: onDelivered})
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	if err := <-simErr; err != nil {
		return fmt.Errorf("demo: simulator: %w", err)
	}
	fmt.Fprintln(stdout, "demo stopped")
	return nil
}

// demoMinPoll is the demo's fastest poll; demoLoosestSampling the most
// device seconds between samples that still leaves a margin under the
// check's 2.5 s (jitter of a loaded machine).
const (
	demoMinPoll         = 5 * time.Millisecond
	demoLoosestSampling = 1.25
)

// describeRecord is the demo's one line per delivered cycle record.
func describeRecord(r protocol.CycleRecord, since time.Duration) string {
	plateau := "no plateau"
	for _, ph := range r.Phases {
		if ph.Name == protocol.PhaseSterilizing && ph.TempMinC != nil {
			plateau = fmt.Sprintf("plateau %.1f–%.1f °C / %.0f–%.0f kPa", *ph.TempMinC, *ph.TempMaxC, *ph.PressureMinKPa, *ph.PressureMaxKPa)
		}
	}
	complete := ""
	if !r.Complete {
		complete = " (incomplete: the gateway did not see the whole cycle)"
	}
	verdict := "not verified"
	if v := r.Verification; v != nil {
		verdict = "verdict " + v.Verdict
		if v.AgreesWithDevice != nil && !*v.AgreesWithDevice {
			verdict += " (DISAGREES with the device)"
		}
		if v.Verdict != protocol.VerdictPass && len(v.Reasons) > 0 {
			verdict += ": " + v.Reasons[0]
		}
	}
	return fmt.Sprintf("[%6.1fs] delivered %s: %s cycle %d, %s, %s, %s, %d phases, %d samples, %s, seq %d%s",
		since.Seconds(), r.ID, r.Device, r.Cycle, r.Program, r.Result, verdict, len(r.Phases), len(r.Samples), plateau, r.Seq, complete)
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// resolveListenAddr turns a port-0 address into a concrete free one, so
// the demo can print where the console is before it starts.
func resolveListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError{fmt.Sprintf("%q is not host:port", addr)}
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
