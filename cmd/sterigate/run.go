package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (required; see sterigate.example.yaml)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	pprofAddr := fs.String("pprof", "", "serve Go runtime profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060, for measuring (docs/performance.md); off by default")
	once := fs.Bool("once", false, "poll every device once, print the decoded values and what would be published, and exit; opens no journal and connects to no broker")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate run --config FILE [--once]\n\n"+
			"Runs the gateway until SIGTERM or SIGINT. With --once, polls every device once and prints what it\n"+
			"read and what would be published, then exits. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		fs.Usage()
		return usageError{"run: --config is required"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("run: unexpected argument %q", fs.Arg(0))}
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return usageError{"run: " + err.Error()}
	}
	// Everything is checked before anything is created: a mistake found
	// after the journal was opened would leave a half-started gateway.
	cfg, err := loadAndValidate(*configPath, stderr)
	if err != nil {
		return err
	}
	if *once {
		return pollOnce(ctx, cfg, stdout)
	}
	setMemoryLimit()
	if *pprofAddr != "" {
		stop, err := servePprof(ctx, *pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runGateway(ctx, gatewayOptions{cfg: cfg, log: log})
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is not text or json", format)
}

// defaultMemoryLimit is the gateway's soft heap limit. An industrial PC is
// small and shared; the heap a gateway really needs stays far below it
// (tens of devices, a bounded outbox read), so the limit only makes the
// garbage collector return memory sooner during a long replay. GOMEMLIMIT
// in the environment overrides it.
const defaultMemoryLimit = 40 << 20

func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// pollOnce is 'run --once' (like Telegraf's --test): it reads every Modbus
// device once through the same unit code the gateway runs, prints the
// decoded fields and the messages that poll would publish, and returns. It
// opens no journal and connects to no broker, so it is safe next to a
// running gateway on a Modbus TCP device (a serial port the gateway holds
// is locked). It fails when a device could not be read.
func pollOnce(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	topics := protocol.Topics{Root: cfg.MQTT.TopicRoot, Site: cfg.Gateway.Site}
	readers := map[string]onceReader{}
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	files, criteria, err := resolveDevices(cfg)
	if err != nil {
		return err
	}
	failed := 0
	for _, dev := range cfg.Devices {
		fmt.Fprintf(stdout, "== %s (%s)\n", dev.ID, describeLink(dev))
		if dev.Driver == config.DriverPrinter {
			fmt.Fprintf(stdout, "A printer cannot be polled once: it prints a report when a cycle ends. Watch it live with\n"+
				"  sterigate tap --port %s --template %s\n", orDash(dev.Serial.Port), dev.Template)
			printCriteria(stdout, files[dev.ID], criteria[dev.ID])
			fmt.Fprintln(stdout)
			continue
		}
		printCriteria(stdout, files[dev.ID], criteria[dev.ID])
		if err := pollDeviceOnce(ctx, cfg, dev, files[dev.ID], criteria[dev.ID], readers, topics, stdout); err != nil {
			failed++
			fmt.Fprintf(stdout, "FAILED: %v\n\n", err)
			continue
		}
		fmt.Fprintln(stdout)
	}
	if failed > 0 {
		return fmt.Errorf("run --once: %d of %d device(s) could not be read", failed, len(cfg.Devices))
	}
	return nil
}

// onceReader is a link opened for one poll.
type onceReader = modbus.Transport

func describeLink(dev config.Device) string {
	switch dev.Driver {
	case config.DriverModbusTCP, config.DriverModbusRTUTCP:
		return fmt.Sprintf("%s %s unit %d", dev.Driver, dev.Address, dev.Unit)
	case config.DriverModbusRTU:
		return fmt.Sprintf("%s %s unit %d", dev.Driver, orDash(dev.Serial.Port), dev.Unit)
	}
	return fmt.Sprintf("%s %s", dev.Driver, orDash(dev.Serial.Port))
}

// openOnce opens (or reuses: units behind one address or on one bus share
// it) the link of dev, through the transport the gateway would use.
func openOnce(ctx context.Context, dev config.Device, readers map[string]onceReader) (onceReader, error) {
	key := dev.BusKey()
	if r, ok := readers[key]; ok {
		return r, nil
	}
	t, err := modbusTransport(dev)
	if err != nil {
		return nil, err
	}
	if _, err := t.Open(ctx); err != nil {
		return nil, err
	}
	readers[key] = t
	return t, nil
}

// recordingReader keeps the blocks a poll read, to print them decoded.
type recordingReader struct {
	next   modbus.RegisterReader
	blocks [][]uint16
}

func (r *recordingReader) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	words, err := r.next.ReadRegisters(ctx, unit, function, address, quantity)
	if err == nil {
		r.blocks = append(r.blocks, words)
	}
	return words, err
}

// captureSink keeps what a unit delivers instead of journaling it, and its
// state in memory ('run --once'; 'check' builds links with it).
type captureSink struct {
	mu        sync.Mutex
	events    []protocol.Event
	telemetry []protocol.Telemetry
	records   []protocol.CycleRecord
	state     map[string][]byte
}

func (c *captureSink) Cycle(_ context.Context, r protocol.CycleRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r)
	return nil
}

func (c *captureSink) Telemetry(_ context.Context, t protocol.Telemetry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.telemetry = append(c.telemetry, t)
	return nil
}

func (c *captureSink) Event(_ context.Context, e protocol.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *captureSink) LoadState(_ context.Context, device string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state[device], nil
}

func (c *captureSink) SaveState(ctx context.Context, device string, b []byte) error {
	return c.SaveStates(ctx, []protocol.SavedState{{Key: device, State: b}})
}

func (c *captureSink) SaveStates(_ context.Context, states []protocol.SavedState) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[string][]byte{}
	}
	for _, s := range states {
		c.state[s.Key] = append([]byte(nil), s.State...)
	}
	return nil
}

// printCriteria is run --once's section on what each program of the
// device is judged by.
func printCriteria(stdout io.Writer, files deviceFiles, pc programCriteria) {
	fmt.Fprintln(stdout, "-- criteria of sterigate's own check (docs/verification.md)")
	for _, line := range criteriaLines(files.profile, pc) {
		fmt.Fprintln(stdout, line)
	}
}

func pollDeviceOnce(ctx context.Context, cfg *config.Config, dev config.Device, files deviceFiles, pc programCriteria,
	readers map[string]onceReader, topics protocol.Topics, stdout io.Writer) error {
	r, err := openOnce(ctx, dev, readers)
	if err != nil {
		return err
	}
	sink := &captureSink{}
	// A record this poll ends is judged as the gateway would judge it.
	judged := &verifyingSink{sinkStore: sink, criteria: map[string]programCriteria{dev.ID: pc}}
	// One sample is a whole telemetry batch here, so the poll shows the
	// telemetry it would publish.
	u, err := modbus.NewUnit(modbus.UnitConfig{Device: dev.ID, Unit: byte(dev.Unit), Profile: files.profile, Source: dev.Driver,
		TelemetryMaxSamples: 1, TimeScale: dev.TimeScale}, judged, judged, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	rec := &recordingReader{next: r}
	if err := u.Poll(ctx, rec); err != nil {
		return err
	}
	if err := printDecoded(stdout, files.profile, rec.blocks); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n-- would publish (the journal fills id, seq and prev_hash)")
	show := func(topic string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s %s\n", topic, b)
	}
	for _, e := range sink.events {
		e.Schema, e.Gateway, e.Site = protocol.EventSchema, cfg.Gateway.ID, cfg.Gateway.Site
		show(topics.Event(dev.ID), e)
	}
	for _, t := range sink.telemetry {
		t.Schema, t.Gateway, t.Site = protocol.TelemetrySchema, cfg.Gateway.ID, cfg.Gateway.Site
		show(topics.Telemetry(dev.ID), t)
	}
	for _, c := range sink.records {
		c.Schema, c.Gateway, c.Site = protocol.CycleSchema, cfg.Gateway.ID, cfg.Gateway.Site
		show(topics.Cycle(dev.ID), c)
	}
	// The retained status the journal would derive from these events.
	st := protocol.DeviceStatus{Device: dev.ID, Gateway: cfg.Gateway.ID, State: protocol.DeviceUnknown}
	for _, e := range sink.events {
		journal.StatusFromEvent(&st, e)
	}
	show(topics.DeviceStatus(dev.ID), st)
	return nil
}
