package main

// Wiring: the only place that knows both the gateway and the drivers. It
// turns a config into running links, all feeding the journal, and a
// publisher draining it.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/drivers/rtu"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/datadir"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/keystore"
	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/gateway/supervise"
	"github.com/sterigate/sterigate/protocol"
)

type gatewayOptions struct {
	cfg *config.Config
	log *slog.Logger
	// onDelivered, when set, is called for every journal entry the broker
	// acknowledged (the demo prints cycle records).
	onDelivered func(journal.Entry)
	// ready, when set, is called once everything is started.
	ready func()
}

// link is one device-facing task: a Modbus link (a TCP connection, a
// serial bus, a connection to a serial device server) or a printer port,
// with what it exposes as metrics.
type link struct {
	name    string
	run     supervise.Task
	modbus  *modbus.Link // Modbus links
	metrics func(add func(console.Metric))
}

// deviceCounter is one per-device counter of a driver link on /metrics.
func deviceCounter[N int64 | uint64](name, help, device string, v N) console.Metric {
	return console.Metric{Name: name, Help: help, Type: console.Counter, Labels: map[string]string{"device": device}, Value: float64(v)}
}

// modbusTransport builds the transport a Modbus device's link uses; probe
// reads through the same ones.
func modbusTransport(dev config.Device) (modbus.Transport, error) {
	opts := rtu.Options{Timeout: dev.Timeout, PauseBetweenRequests: dev.PauseBetweenRequests}
	switch dev.Driver {
	case config.DriverModbusTCP:
		return modbus.NewTCPTransport(modbus.TCPConfig{Address: dev.Address, Timeout: dev.Timeout})
	case config.DriverModbusRTU:
		return rtu.NewSerial(serialConfig(dev.Serial), opts)
	case config.DriverModbusRTUTCP:
		return rtu.NewTCP(dev.Address, opts)
	}
	return nil, fmt.Errorf("driver %q is not a Modbus driver", dev.Driver)
}

func serialConfig(s config.Serial) rtu.SerialConfig {
	sc := rtu.SerialConfig{Port: s.Port, Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits}
	if s.USB != (config.USB{}) {
		sc.USB = &rtu.USBIdentity{VID: s.USB.VID, PID: s.USB.PID, Serial: s.USB.Serial}
	}
	return sc
}

// modbusLinkName names a Modbus link in logs and the link label of its
// metrics, e.g. "modbus-tcp 10.0.0.5:502", "modbus-rtu serial:/dev/ttyUSB0".
func modbusLinkName(dev config.Device) string {
	if dev.Driver == config.DriverModbusTCP {
		return dev.Driver + " " + dev.Address
	}
	return dev.Driver + " " + dev.BusKey()
}

// deviceFiles is what a device's profile or template resolved to.
type deviceFiles struct {
	profile  *profile.Profile
	template *printer.Template
}

// resolveDeviceFiles loads the profile or template a device names; a
// relative path is relative to the config file, so a config directory can
// be copied as a whole.
func resolveDeviceFiles(cfg *config.Config, dev config.Device) (deviceFiles, error) {
	rel := func(name string) string {
		if looksLikePath(name) && !filepath.IsAbs(name) {
			return filepath.Join(filepath.Dir(cfg.File), name)
		}
		return name
	}
	var f deviceFiles
	var err error
	switch dev.Driver {
	case config.DriverPrinter:
		f.template, err = printer.ResolveTemplate(rel(dev.Template))
	default:
		f.profile, err = profile.Resolve(rel(dev.Profile))
	}
	return f, err
}

func looksLikePath(s string) bool {
	return strings.ContainsRune(s, '/') || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml")
}

// sinkStore is what drivers deliver to: the journal in a running gateway,
// a discarding stand-in when 'check' only builds the links.
type sinkStore interface {
	protocol.Sink
	protocol.StateStore
}

// buildLinks groups devices by the physical link they share and builds one
// owner per link: Modbus forbids interleaved requests on one bus, and a
// TCP-to-RTU gateway is one connection for several units.
//
// Every link delivers through one verifyingSink around j, so every cycle
// record is judged before it is journaled.
func buildLinks(cfg *config.Config, j sinkStore, log *slog.Logger) ([]link, error) {
	files, criteria, err := resolveDevices(cfg)
	if err != nil {
		return nil, err
	}
	history, _ := j.(protocol.CycleHistory) // the journal has one; check's stand-in none
	sink := &verifyingSink{sinkStore: j, criteria: criteria}
	groups := map[string][]config.Device{}
	var keys []string
	for _, dev := range cfg.Devices {
		key := dev.BusKey()
		if _, ok := groups[key]; !ok {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], dev)
	}
	sort.Strings(keys)
	var links []link
	for _, key := range keys {
		devs := groups[key]
		l, err := buildLink(devs, files, sink, history, log)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// resolveDevices loads every device's profile or template and resolves
// the criteria of its programs; the first problem stops it ('check'
// reports them all, with validate). Devices that name the same profile or
// template share one parsed copy (drivers only read it): parsing the
// built-in profile once per device was 50 MB of garbage at the start of
// a gateway of 200 devices.
func resolveDevices(cfg *config.Config) (map[string]deviceFiles, map[string]programCriteria, error) {
	files := map[string]deviceFiles{}
	criteria := map[string]programCriteria{}
	parsed := map[[3]string]deviceFiles{}
	for i, dev := range cfg.Devices {
		key := [3]string{dev.Driver, dev.Profile, dev.Template}
		f, ok := parsed[key]
		if !ok {
			var err error
			if f, err = resolveDeviceFiles(cfg, dev); err != nil {
				return nil, nil, fmt.Errorf("device %s: %w", dev.ID, err)
			}
			parsed[key] = f
		}
		pc, problems := resolveCriteria(cfg, i, dev, f.profile)
		if len(problems) > 0 {
			return nil, nil, problems[0]
		}
		files[dev.ID], criteria[dev.ID] = f, pc
	}
	return files, criteria, nil
}

func buildLink(devs []config.Device, files map[string]deviceFiles, j sinkStore, history protocol.CycleHistory, log *slog.Logger) (link, error) {
	first := devs[0]
	switch first.Driver {
	case config.DriverModbusTCP, config.DriverModbusRTU, config.DriverModbusRTUTCP:
		// One owner for the link, whatever the transport: the devices
		// sharing it differ only in unit, profile and schedule.
		t, err := modbusTransport(first)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		lc := modbus.LinkConfig{Name: modbusLinkName(first)}
		for _, dev := range devs {
			lc.Units = append(lc.Units, modbus.UnitConfig{Device: dev.ID, Unit: byte(dev.Unit), Profile: files[dev.ID].profile, Source: dev.Driver,
				PollInterval: dev.PollInterval, OfflineAfter: dev.OfflineAfter, TimeScale: dev.TimeScale})
		}
		l, err := modbus.NewLink(lc, t, j, j, log)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		return link{name: lc.Name, run: l.Run, modbus: l, metrics: func(add func(console.Metric)) { modbusConsoleMetrics(l.Stats(), add) }}, nil

	case config.DriverPrinter:
		s := first.Serial
		tc := printer.TapConfig{Device: first.ID, Port: s.Port, Baud: s.Baud, DataBits: s.DataBits,
			Parity: s.Parity, StopBits: s.StopBits, Template: files[first.ID].template, ReportTimeout: first.ReportTimeout}
		// The journal says which records of a cycle it holds, so a reprint
		// of a cut printout supersedes it; check's stand-in holds none.
		if history != nil {
			tc.History = history
		}
		if s.USB != (config.USB{}) {
			// Find the adapter again by its USB identity when it was
			// replugged under another device node.
			tc.FindPort = serialConfig(s).Resolve
		}
		tap, err := printer.NewTap(tc, j, log)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		return link{name: "printer " + first.ID, run: tap.Run, metrics: func(add func(console.Metric)) {
			st := tap.Stats()
			add(deviceCounter("sterigate_printer_records_total", "Printed reports of the device parsed into cycle records.", first.ID, st.Records))
			add(deviceCounter("sterigate_printer_incomplete_records_total", "Printed reports of the device that were cut or incomplete.", first.ID, st.Incomplete))
			add(deviceCounter("sterigate_printer_parse_errors_total", "Printed reports of the device the template could not parse.", first.ID, st.ParseErrors))
			add(deviceCounter("sterigate_printer_revisions_total", "Records of the device that superseded an earlier record of the same cycle (a complete reprint of a cut printout).", first.ID, st.Revisions))
			add(deviceCounter("sterigate_printer_reprints_total", "Printed reports of the device marked as reprints (copies).", first.ID, st.Reprints))
			add(deviceCounter("sterigate_printer_rejected_reports_total", "Printed reports of the device refused because the template's required fields did not parse.", first.ID, st.Rejected))
			add(deviceCounter("sterigate_printer_garbage_bytes_total", "Bytes on the device's printer line that belonged to no report.", first.ID, st.GarbageBytes))
			add(deviceCounter("sterigate_printer_bytes_read_total", "Bytes read from the device's printer line.", first.ID, st.BytesRead))
			add(deviceCounter("sterigate_printer_dropped_bytes_total", "Bytes read from the device's printer line and dropped because the buffer was full while the journal refused records (each drop is a gap event).", first.ID, st.DroppedBytes))
		}}, nil
	}
	return link{}, fmt.Errorf("device %s: driver %q is not supported", first.ID, first.Driver)
}

// runGateway runs the gateway until ctx is done. When the journal is
// found damaged while it runs, everything stops and starts again on a new
// journal (the damaged one is kept aside): the sterilizers go on being
// logged, after a pause of about a second.
func runGateway(ctx context.Context, o gatewayOptions) error {
	// One gateway per journal, held until this process ends.
	lock, err := datadir.Acquire(o.cfg.Gateway.DataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	damage := ""
	for {
		if damage, err = runOnJournal(ctx, o, damage); err != nil || damage == "" {
			return err
		}
		o.log.Error("the journal was found damaged while running: starting again on a new journal", "damage", damage)
	}
}

// runOnJournal runs the gateway on the journal until ctx is done, or
// until the journal is found damaged (it then returns why). replace, when
// not empty, is damage found in a previous run: the journal is replaced.
// Shutdown order matters: drivers stop first, then the publisher says
// offline, then the journal closes with everything committed.
func runOnJournal(ctx context.Context, o gatewayOptions, replace string) (damage string, err error) {
	cfg, log := o.cfg, o.log
	journalPath := filepath.Join(cfg.Gateway.DataDir, "journal.db")
	signer, err := openSigningKey(cfg, journalPath, log)
	if err != nil {
		return "", err
	}
	j, err := journal.Open(journalPath, journal.Options{
		Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, Logger: log,
		QuotaBytes: cfg.Gateway.Journal.Quota, Retention: cfg.Gateway.Journal.Retention,
		KeepUnarchived: cfg.MQTT.Receipts == config.ReceiptsRequired,
		Signer:         signer, ReplaceDamaged: replace,
	})
	if err != nil {
		return "", keyMismatchHint(cfg, signer, err)
	}
	closed := false
	defer func() {
		if !closed {
			j.Close()
		}
	}()
	keys, err := j.SigningKeys(ctx)
	if err != nil {
		return "", err
	}
	if err := keystore.SavePublic(cfg.Gateway.DataDir, cfg.Gateway.ID, cfg.Gateway.Site, keys); err != nil {
		return "", err
	}
	keyMsg, err := keyMessage(cfg, keys)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(cfg.Devices))
	for i, d := range cfg.Devices {
		ids[i] = d.ID
	}
	// Every configured sterilizer appears on its status topic (as
	// "unknown") from the first connection, even one never reached.
	if err := j.RegisterDevices(ctx, ids...); err != nil {
		return "", err
	}

	// The console's overview shows when the broker last acknowledged
	// something, and what the drivers delivered last.
	var lastAck atomic.Int64
	onDelivered := func(e journal.Entry) {
		lastAck.Store(time.Now().UnixMilli())
		if o.onDelivered != nil {
			o.onDelivered(e)
		}
	}
	pub, err := mqttpub.New(publisherOptions(cfg, onDelivered, log, keyMsg), j)
	if err != nil {
		return "", err
	}
	live := newLiveJournal(j)
	links, err := buildLinks(cfg, live, log)
	if err != nil {
		return "", err
	}

	driverCtx, stopDrivers := context.WithCancel(ctx)
	defer stopDrivers()
	drivers := supervise.New(driverCtx, log)
	for _, l := range links {
		drivers.Go(l.name, l.run)
	}
	pubCtx, stopPub := context.WithCancel(context.Background())
	defer stopPub()
	services := supervise.New(pubCtx, log)
	services.Go("mqtt publisher", pub.Run)
	started := time.Now()
	if cfg.Gateway.Console != "" {
		src := console.SourceFunc(func(ctx context.Context) (console.Snapshot, error) {
			s, err := snapshot(ctx, cfg, j, pub, links, drivers, started)
			s.Live = live.snapshot()
			if ms := lastAck.Load(); ms != 0 {
				s.LastAck = time.UnixMilli(ms)
			}
			return s, err
		})
		copts, err := consoleOptions(cfg, j, log.With("component", "console"))
		if err != nil {
			return "", err
		}
		services.Go("console", func(ctx context.Context) error {
			return console.Serve(ctx, cfg.Gateway.Console, src, copts)
		})
	}
	log.Info("sterigate running", "gateway", cfg.Gateway.ID, "site", cfg.Gateway.Site, "devices", len(cfg.Devices),
		"journal", journalPath, "signing_key", signer.ID(), "version", readBuild().version)
	if o.ready != nil && replace == "" {
		o.ready()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-j.Damaged():
		damage = j.DamageReason()
	}
	stopDrivers()
	drivers.Wait()
	logInterruptedAtStop(links, log)
	if damage == "" {
		// Nobody watches the devices from here on: say so before the
		// gateway's own offline status.
		unknownCtx, cancelUnknown := context.WithTimeout(context.Background(), 5*time.Second)
		if err := j.MarkDevicesUnknown(unknownCtx, "gateway stopped"); err != nil {
			log.Warn("device statuses not marked unknown at shutdown", "err", err)
		}
		cancelUnknown()
		// The telemetry since each device's last signed entry goes out
		// covered by a signed checkpoint, while the publisher still runs.
		signCtx, cancelSign := context.WithTimeout(context.Background(), 5*time.Second)
		if err := j.Checkpoint(signCtx); err != nil {
			log.Warn("no checkpoint at shutdown: the last telemetry stays unsigned until the next start", "err", err)
		} else {
			awaitDelivery(signCtx, j, pub)
		}
		cancelSign()
	}
	stopPub()
	services.Wait()
	// What the next start will send first.
	st, statsErr := j.Stats(context.Background())
	closed = true
	closeErr := j.Close()
	if damage != "" {
		if closeErr != nil {
			log.Error("the damaged journal could not be closed cleanly", "err", closeErr)
		}
		return damage, nil
	}
	if closeErr != nil {
		// Entries the disk refused and that were held in memory are gone:
		// the exit status says so, not only the log.
		return "", closeErr
	}
	if statsErr == nil {
		log.Info("sterigate stopped", "pending", st.PendingUrgent+st.PendingTelemetry,
			"pending_records_and_events", st.PendingUrgent, "pending_telemetry", st.PendingTelemetry)
	} else {
		log.Warn("sterigate stopped; the journal's pending count could not be read", "err", statsErr)
	}
	return "", nil
}

// logInterruptedAtStop says in one line which devices' last poll the
// stop cut short while it was being journaled: with many devices, stopping
// interrupts dozens of commits at once, and a warning for each buried the
// log of every restart.
func logInterruptedAtStop(links []link, log *slog.Logger) {
	var devices []string
	for _, l := range links {
		if l.modbus == nil {
			continue
		}
		for _, u := range l.modbus.Stats().Units {
			if u.InterruptedAtStop {
				devices = append(devices, u.Device)
			}
		}
	}
	if len(devices) == 0 {
		return
	}
	sort.Strings(devices)
	named := devices
	if len(named) > 20 {
		named = append(named[:20:20], "…")
	}
	log.Info("stopping interrupted the journaling of the last poll of some devices; what those polls read is not journaled, and each device resumes from its state saved before them at the next start",
		"count", len(devices), "devices", strings.Join(named, ","))
}

// consoleOptions turns the config's console settings into the console's
// options: accounts, TLS (generating the self-signed certificate on first
// start), time zone, and each printer device's charset for its printouts.
func consoleOptions(cfg *config.Config, j *journal.Journal, log *slog.Logger) (console.Options, error) {
	b := readBuild()
	a := cfg.Gateway.ConsoleAccess
	o := console.Options{
		Build:             console.BuildInfo{Version: b.version, Revision: b.revision, GoVersion: b.goVersion},
		Gateway:           cfg.Gateway.ID,
		Site:              cfg.Gateway.Site,
		BrokerUnreachable: cfg.Gateway.Readiness.BrokerUnreachable,
		DeviceOffline:     cfg.Gateway.Readiness.DeviceOffline,
		Records:           j,
		SessionIdle:       a.SessionIdle,
		Logger:            log,
	}
	rel := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(filepath.Dir(cfg.File), p)
		}
		return p
	}
	o.UsersFile = rel(a.UsersFile)
	if a.TimeZone != "" {
		loc, err := time.LoadLocation(a.TimeZone)
		if err != nil {
			return o, fmt.Errorf("gateway.console.time_zone: %w", err)
		}
		o.Location = loc
	}
	if a.TLSSelfSigned || a.TLSCertFile != "" {
		certFile, keyFile := rel(a.TLSCertFile), rel(a.TLSKeyFile)
		if a.TLSSelfSigned {
			certFile, keyFile = filepath.Join(cfg.Gateway.DataDir, "console-cert.pem"), filepath.Join(cfg.Gateway.DataDir, "console-key.pem")
		}
		hosts := []string{}
		if h, _, err := net.SplitHostPort(cfg.Gateway.Console); err == nil {
			hosts = append(hosts, h)
		}
		if name, err := os.Hostname(); err == nil {
			hosts = append(hosts, name)
		}
		tc, fingerprint, created, err := console.LoadOrCreateCertificate(certFile, keyFile, a.TLSSelfSigned, hosts, time.Now())
		if err != nil {
			return o, err
		}
		if created {
			log.Warn("console: generated a self-signed certificate; compare its fingerprint with what the browser shows before trusting it",
				"cert", certFile, "sha256", fingerprint)
		} else {
			log.Info("console: TLS certificate", "cert", certFile, "sha256", fingerprint)
		}
		o.TLSConfig = tc
	}
	charsets := map[string]string{}
	for _, dev := range cfg.Devices {
		if dev.Driver != config.DriverPrinter {
			continue
		}
		if f, err := resolveDeviceFiles(cfg, dev); err == nil {
			charsets[dev.ID] = f.template.Charset()
		}
	}
	o.DecodePrintout = func(device string, raw []byte) (string, bool) {
		cs, ok := charsets[device]
		if !ok {
			return "", false
		}
		return printer.DecodePrintout(raw, cs), true
	}
	return o, nil
}

func snapshot(ctx context.Context, cfg *config.Config, j *journal.Journal, pub *mqttpub.Publisher, links []link,
	drivers *supervise.Group, started time.Time) (console.Snapshot, error) {
	st, err := j.Stats(ctx)
	if err != nil {
		return console.Snapshot{}, err
	}
	devs, err := j.DeviceStatuses(ctx)
	if err != nil {
		return console.Snapshot{}, err
	}
	known := map[string]bool{}
	for _, d := range devs {
		known[d.Device] = true
	}
	for _, d := range cfg.Devices {
		if !known[d.ID] {
			devs = append(devs, protocol.DeviceStatus{Device: d.ID, State: protocol.DeviceUnknown})
		}
	}
	var metrics []console.Metric
	add := func(m console.Metric) { metrics = append(metrics, m) }
	for _, l := range links {
		if l.metrics != nil {
			l.metrics(add)
		}
	}
	for name, n := range drivers.Restarts() {
		add(console.Metric{Name: "sterigate_task_restarts_total", Help: "Restarts of a supervised task (a driver link) after it failed.",
			Type: console.Counter, Labels: map[string]string{"task": name}, Value: float64(n)})
	}
	cycles, verdictMetrics := cycleCounts(cfg, j.CyclesJournaled())
	metrics = append(metrics, verdictMetrics...)
	alarms := pub.Alarms()
	return console.Snapshot{
		Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, Version: readBuild().version, Started: started,
		BrokerConnected: pub.Connected(), BrokerUnreachableSince: pub.UnreachableSince(),
		// What the disk refused and memory holds is pending too.
		Pending:          map[string]int64{"urgent": st.PendingUrgent + st.HeldEssential, "telemetry": st.PendingTelemetry + st.HeldTelemetry},
		HeldInMemory:     st.HeldEssential + st.HeldTelemetry,
		Unconfirmed:      st.Unconfirmed,
		OldestPending:    st.OldestPending,
		OldestUnarchived: pub.OldestUnarchived(), ReceiptsOn: cfg.MQTT.Receipts != config.ReceiptsOff,
		JournalBytes: st.FileBytes, JournalQuota: st.QuotaBytes,
		JournalRefusesWrites: slices.Contains(alarms, journal.AlarmDiskFull),
		Devices:              devs, Cycles: cycles, Metrics: metrics, Alarms: alarms,
	}, nil
}

// awaitDelivery waits, until ctx ends, for the broker to acknowledge
// everything journaled, while the publisher is connected: a receiver then
// holds every seq up to the last checkpoint, none missing.
func awaitDelivery(ctx context.Context, j *journal.Journal, pub *mqttpub.Publisher) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for pub.Connected() {
		if st, err := j.Stats(ctx); err != nil || st.PendingUrgent+st.PendingTelemetry == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// cycleCounts turns the journal's counts of cycle records into the
// console's count by device result and the metrics of sterigate's own
// verdicts: records by verdict, and disagreements (0 for every configured
// device, so an alert on it has a series from the start).
func cycleCounts(cfg *config.Config, counts map[journal.CycleCount]int64) ([]console.CycleCount, []console.Metric) {
	byResult := map[journal.CycleCount]int64{}
	byVerdict := map[[2]string]int64{}
	disagreements := map[string]int64{}
	for _, d := range cfg.Devices {
		disagreements[d.ID] = 0
	}
	for k, n := range counts {
		byResult[journal.CycleCount{Device: k.Device, Result: k.Result}] += n
		if k.Verdict != "" {
			byVerdict[[2]string{k.Device, k.Verdict}] += n
		}
		if k.Disagreement {
			disagreements[k.Device] += n
		}
	}
	var cycles []console.CycleCount
	for k, n := range byResult {
		cycles = append(cycles, console.CycleCount{Device: k.Device, Result: k.Result, Count: n})
	}
	var metrics []console.Metric
	for k, n := range byVerdict {
		metrics = append(metrics, console.Metric{Name: "sterigate_cycle_verdicts_total",
			Help: "Cycle records journaled since the gateway started, by sterigate's own verdict (pass, fail, indeterminate, not_applicable).",
			Type: console.Counter, Labels: map[string]string{"device": k[0], "verdict": k[1]}, Value: float64(n)})
	}
	for d, n := range disagreements {
		metrics = append(metrics, deviceCounter("sterigate_verification_disagreements_total",
			"Cycle records journaled since the gateway started whose verdict contradicts the device's result (each also raised a verification_disagreement event).", d, n))
	}
	return cycles, metrics
}

func publisherOptions(cfg *config.Config, onDelivered func(journal.Entry), log *slog.Logger, keyMessage []byte) mqttpub.Options {
	m := cfg.MQTT
	return mqttpub.Options{
		Brokers: m.Brokers, ClientID: m.ClientID, Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, TopicRoot: m.TopicRoot,
		Version: readBuild().version, Username: m.Username, PasswordFile: m.PasswordFile, PasswordEnv: m.PasswordEnv,
		CAFile: m.TLS.CAFile, CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile,
		KeepAlive: m.KeepAlive, Window: m.Inflight, ConfirmTimeout: m.ConfirmTimeout,
		Receipts: m.Receipts, ReceiptsAlarmAfter: m.ReceiptsAlarmAfter, ReceiptsRepublishAfter: m.ReceiptsRepublishAfter, OnDelivered: onDelivered, Logger: log, KeyMessage: keyMessage,
	}
}

// metricKind is a Prometheus metric type.
type metricKind string

const (
	metricCounter metricKind = "counter" // only grows (resets when the gateway restarts)
	metricGauge   metricKind = "gauge"   // goes up and down
)

// metricDef is one metric family as /metrics exposes it.
type metricDef struct {
	Name   string
	Help   string
	Kind   metricKind
	Labels []string // label names, in the order of metricSample.Labels
}

// metricSample is one value of a family: its label values and the value.
type metricSample struct {
	Labels []string
	Value  float64
}

// modbusMetric is one row of modbusMetrics: the family and how its
// samples are read off a Modbus link's stats (nil Unit or Link: the row
// takes nothing from it).
type modbusMetric struct {
	metricDef
	Unit func(modbus.UnitStats) []metricSample
	Link func(modbus.LinkStats) []metricSample
}

// modbusMetrics is the one table of the Modbus metric family, the same for
// every transport (modbus-tcp, modbus-rtu, modbus-rtu-tcp). Every value
// comes from modbus.LinkStats and its UnitStats; docs/config.md lists them.
var modbusMetrics = []modbusMetric{
	{metricDef: metricDef{"sterigate_modbus_polls_total", "Poll attempts of the device, including those that failed because its link could not be opened.", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.Polls) })},
	{metricDef: metricDef{"sterigate_modbus_good_polls_total", "Polls of the device whose replies decoded with its profile.", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.GoodPolls) })},
	{metricDef: metricDef{"sterigate_modbus_requests_total", "Modbus read requests sent to the device.", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.Requests) })},
	{metricDef: metricDef{"sterigate_modbus_errors_total", "Failed requests and polls of the device by kind: timeout, transport (link failure or a reply that is not the reply), crc, exception, decode (the profile cannot decode the reply).", metricCounter, []string{"device", "kind"}},
		Unit: func(s modbus.UnitStats) []metricSample {
			out := make([]metricSample, 0, len(modbus.ErrorKinds))
			for _, k := range modbus.ErrorKinds {
				out = append(out, metricSample{[]string{s.Device, k.String()}, float64(s.Errors(k))})
			}
			return out
		}},
	{metricDef: metricDef{"sterigate_modbus_exceptions_total", "Modbus exception replies of the device by exception code (10 and 11: a gateway says the device is not there).", metricCounter, []string{"device", "code"}},
		Unit: func(s modbus.UnitStats) []metricSample {
			codes := make([]int, 0, len(s.ExceptionsByCode))
			for c := range s.ExceptionsByCode {
				codes = append(codes, int(c))
			}
			sort.Ints(codes)
			out := make([]metricSample, 0, len(codes))
			for _, c := range codes {
				out = append(out, metricSample{[]string{s.Device, fmt.Sprint(c)}, float64(s.ExceptionsByCode[byte(c)])})
			}
			return out
		}},
	{metricDef: metricDef{"sterigate_modbus_implausible_values_total", "Measured values of the device refused as not plausible (outside their role's range, or not a number); each also raised an implausible_value event.", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.ImplausibleValues) })},
	{metricDef: metricDef{"sterigate_modbus_torn_polls_total", "Polls of the device read again because its phase or cycle counter changed between the requests of one poll (profiles that need several requests).", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.TornPolls) })},
	{metricDef: metricDef{"sterigate_modbus_journal_errors_total", "Good polls of the device whose output could not be journaled or saved (kept and retried).", metricCounter, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.SinkErrors) })},
	{metricDef: metricDef{"sterigate_modbus_consecutive_failures", "Failed polls of the device since it last answered; offline_after of them make it offline.", metricGauge, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return float64(s.ConsecutiveFailures) })},
	{metricDef: metricDef{"sterigate_modbus_backoff_seconds", "Current wait before the next attempt to poll the device after a failure (0 while it answers).", metricGauge, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 { return s.Backoff.Seconds() })},
	{metricDef: metricDef{"sterigate_modbus_last_good_poll_timestamp_seconds", "Unix time of the device's last good poll (0: none since start).", metricGauge, []string{"device"}},
		Unit: unitValue(func(s modbus.UnitStats) float64 {
			if s.LastGoodPoll.IsZero() {
				return 0
			}
			return float64(s.LastGoodPoll.UnixNano()) / 1e9
		})},
	{metricDef: metricDef{"sterigate_modbus_link_opens_total", "Successful opens of the link: TCP connects, serial port opens.", metricCounter, []string{"link"}},
		Link: linkValue(func(s modbus.LinkStats) float64 { return float64(s.Opens) })},
	{metricDef: metricDef{"sterigate_modbus_link_errors_total", "Failed opens of the link and requests on which the link itself failed.", metricCounter, []string{"link"}},
		Link: linkValue(func(s modbus.LinkStats) float64 { return float64(s.LinkErrors) })},
	{metricDef: metricDef{"sterigate_modbus_link_up", "1 while the link is open.", metricGauge, []string{"link"}},
		Link: linkValue(func(s modbus.LinkStats) float64 {
			if s.Connected {
				return 1
			}
			return 0
		})},
}

// unitValue and linkValue feed a family with one sample per unit (label
// device) or per link (label link).
func unitValue(f func(modbus.UnitStats) float64) func(modbus.UnitStats) []metricSample {
	return func(s modbus.UnitStats) []metricSample { return []metricSample{{[]string{s.Device}, f(s)}} }
}

func linkValue(f func(modbus.LinkStats) float64) func(modbus.LinkStats) []metricSample {
	return func(s modbus.LinkStats) []metricSample { return []metricSample{{[]string{s.Name}, f(s)}} }
}

// samples returns every sample of m in one link's stats.
func (m modbusMetric) samples(s modbus.LinkStats) []metricSample {
	var out []metricSample
	if m.Link != nil {
		out = append(out, m.Link(s)...)
	}
	if m.Unit != nil {
		for _, u := range s.Units {
			out = append(out, m.Unit(u)...)
		}
	}
	return out
}

// modbusConsoleMetrics hands the console every sample of one link's
// stats, row by row of modbusMetrics.
func modbusConsoleMetrics(s modbus.LinkStats, add func(console.Metric)) {
	for _, m := range modbusMetrics {
		typ := console.Counter
		if m.Kind == metricGauge {
			typ = console.Gauge
		}
		for _, sm := range m.samples(s) {
			labels := make(map[string]string, len(m.Labels))
			for i, l := range m.Labels {
				labels[l] = sm.Labels[i]
			}
			add(console.Metric{Name: m.Name, Help: m.Help, Type: typ, Labels: labels, Value: sm.Value})
		}
	}
}
