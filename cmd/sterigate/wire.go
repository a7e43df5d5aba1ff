package main

// Wiring: the only place that knows both the gateway and the drivers. It
// turns a config into running links, all feeding the journal, and a
// publisher draining it.

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/drivers/rtu"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/datadir"
	"github.com/sterigate/sterigate/gateway/journal"
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

// link is one device-facing task: a TCP connection, an RTU bus or a
// printer port, with the counters it exposes as metrics.
type link struct {
	name    string
	run     supervise.Task
	metrics func(add func(console.Metric))
}

// deviceCounter is one per-device counter of a driver link on /metrics.
func deviceCounter[N int64 | uint64](name, help, device string, v N) console.Metric {
	return console.Metric{Name: name, Help: help, Type: console.Counter, Labels: map[string]string{"device": device}, Value: float64(v)}
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
func buildLinks(cfg *config.Config, j sinkStore, log *slog.Logger) ([]link, error) {
	groups := map[string][]config.Device{}
	var keys []string
	for _, dev := range cfg.Devices {
		key := dev.BusKey()
		if dev.Driver == config.DriverModbusTCP {
			key = "tcp:" + dev.Address
		}
		if _, ok := groups[key]; !ok {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], dev)
	}
	sort.Strings(keys)
	var links []link
	for _, key := range keys {
		devs := groups[key]
		l, err := buildLink(cfg, devs, j, log)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

func buildLink(cfg *config.Config, devs []config.Device, j sinkStore, log *slog.Logger) (link, error) {
	first := devs[0]
	var ucfgs []modbus.UnitConfig
	for _, dev := range devs {
		if dev.Driver == config.DriverPrinter {
			continue
		}
		files, err := resolveDeviceFiles(cfg, dev)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", dev.ID, err)
		}
		ucfgs = append(ucfgs, modbus.UnitConfig{Device: dev.ID, Unit: byte(dev.Unit), Profile: files.profile, Source: dev.Driver})
	}
	var units []*modbus.Unit
	unitCounters := func(add func(console.Metric)) {
		for _, u := range units {
			s := u.Stats()
			d := u.Config().Device
			add(deviceCounter("sterigate_polls_total", "Modbus polls of the device.", d, s.Polls))
			add(deviceCounter("sterigate_good_polls_total", "Modbus polls of the device that were answered and decoded.", d, s.GoodPolls))
			add(deviceCounter("sterigate_poll_timeouts_total", "Modbus polls of the device without a reply in time.", d, s.Timeouts))
			add(deviceCounter("sterigate_poll_exceptions_total", "Modbus polls the device answered with an exception.", d, s.Exceptions))
			add(deviceCounter("sterigate_poll_crc_errors_total", "Modbus RTU replies of the device with a bad CRC.", d, s.CRCErrors))
			add(deviceCounter("sterigate_poll_transport_errors_total", "Modbus polls of the device that failed on the connection.", d, s.TransportErrors))
			add(deviceCounter("sterigate_poll_decode_errors_total", "Modbus replies of the device its profile could not decode.", d, s.DecodeErrors))
		}
	}

	switch first.Driver {
	case config.DriverModbusTCP:
		poll := first.PollInterval
		for _, d := range devs {
			poll = min(poll, d.PollInterval)
		}
		p, err := modbus.NewTCPPoller(modbus.TCPConfig{Address: first.Address, Units: ucfgs, PollInterval: poll, Timeout: first.Timeout},
			j, j, log)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		units = p.Units()
		return link{name: "modbus-tcp " + first.Address, run: p.Run, metrics: unitCounters}, nil

	case config.DriverModbusRTU, config.DriverModbusRTUTCP:
		bc := rtu.BusConfig{Timeout: first.Timeout, PauseBetweenRequests: first.PauseBetweenRequests}
		if first.Driver == config.DriverModbusRTU {
			s := first.Serial
			sc := &rtu.SerialConfig{Port: s.Port, Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits}
			if s.USB != (config.USB{}) {
				sc.USB = &rtu.USBIdentity{VID: s.USB.VID, PID: s.USB.PID, Serial: s.USB.Serial}
			}
			bc.Serial = sc
		} else {
			bc.Address = first.Address
		}
		for i, dev := range devs {
			u, err := modbus.NewUnit(ucfgs[i], j, j, log)
			if err != nil {
				return link{}, fmt.Errorf("device %s: %w", dev.ID, err)
			}
			units = append(units, u)
			bc.Units = append(bc.Units, rtu.UnitConfig{Device: dev.ID, Unit: byte(dev.Unit), Interval: dev.PollInterval, Poller: rtuPoller{u}})
		}
		b, err := rtu.NewBus(bc, log.With("bus", first.BusKey()))
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		return link{name: first.Driver + " " + first.BusKey(), run: b.Run, metrics: func(add func(console.Metric)) {
			unitCounters(add)
			for _, us := range b.Stats().Units {
				add(deviceCounter("sterigate_rtu_requests_total", "Modbus RTU requests sent to the device.", us.Device, us.Requests))
				add(deviceCounter("sterigate_rtu_timeouts_total", "Modbus RTU requests to the device without a reply in time.", us.Device, us.Timeouts))
				add(deviceCounter("sterigate_rtu_crc_errors_total", "Modbus RTU replies from the device with a bad CRC.", us.Device, us.CRCErrors))
				add(deviceCounter("sterigate_rtu_frame_errors_total", "Modbus RTU replies from the device that were not a valid frame.", us.Device, us.FrameErrors))
				add(deviceCounter("sterigate_rtu_exceptions_total", "Modbus RTU exception replies from the device.", us.Device, us.Exceptions))
			}
		}}, nil

	case config.DriverPrinter:
		files, err := resolveDeviceFiles(cfg, first)
		if err != nil {
			return link{}, fmt.Errorf("device %s: %w", first.ID, err)
		}
		s := first.Serial
		tc := printer.TapConfig{Device: first.ID, Port: s.Port, Baud: s.Baud, DataBits: s.DataBits,
			Parity: s.Parity, StopBits: s.StopBits, Template: files.template}
		if s.USB != (config.USB{}) {
			// Find the adapter again by its USB identity when it was
			// replugged under another device node.
			tc.FindPort = rtu.SerialConfig{Port: s.Port, USB: &rtu.USBIdentity{VID: s.USB.VID, PID: s.USB.PID, Serial: s.USB.Serial}}.Resolve
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
		}}, nil
	}
	return link{}, fmt.Errorf("device %s: driver %q is not supported", first.ID, first.Driver)
}

// runGateway runs the gateway until ctx is done. Shutdown order matters:
// drivers stop first, then the publisher says offline, then the journal
// closes with everything committed.
func runGateway(ctx context.Context, o gatewayOptions) error {
	cfg, log := o.cfg, o.log
	// One gateway per journal, held until this process ends.
	lock, err := datadir.Acquire(cfg.Gateway.DataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	j, err := journal.Open(filepath.Join(cfg.Gateway.DataDir, "journal.db"), journal.Options{
		Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, Logger: log,
		QuotaBytes: cfg.Gateway.Journal.Quota, Retention: cfg.Gateway.Journal.Retention,
	})
	if err != nil {
		return err
	}
	defer j.Close()
	ids := make([]string, len(cfg.Devices))
	for i, d := range cfg.Devices {
		ids[i] = d.ID
	}
	// Every configured sterilizer appears on its status topic (as
	// "unknown") from the first connection, even one never reached.
	if err := j.RegisterDevices(ctx, ids...); err != nil {
		return err
	}

	pub, err := newPublisher(cfg, j, log, o.onDelivered)
	if err != nil {
		return err
	}
	links, err := buildLinks(cfg, j, log)
	if err != nil {
		return err
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
			return snapshot(ctx, cfg, j, pub, links, drivers, started)
		})
		b := readBuild()
		copts := console.Options{
			Build:             console.BuildInfo{Version: b.version, Revision: b.revision, GoVersion: b.goVersion},
			BrokerUnreachable: cfg.Gateway.Readiness.BrokerUnreachable,
			DeviceOffline:     cfg.Gateway.Readiness.DeviceOffline,
			Logger:            log.With("component", "console"),
		}
		services.Go("console", func(ctx context.Context) error {
			return console.Serve(ctx, cfg.Gateway.Console, src, copts)
		})
	}
	log.Info("sterigate running", "gateway", cfg.Gateway.ID, "site", cfg.Gateway.Site, "devices", len(cfg.Devices),
		"journal", filepath.Join(cfg.Gateway.DataDir, "journal.db"), "version", readBuild().version)
	if o.ready != nil {
		o.ready()
	}
	<-ctx.Done()
	log.Info("shutting down")
	stopDrivers()
	drivers.Wait()
	// Nobody watches the devices from here on: say so before the gateway's
	// own offline status.
	unknownCtx, cancelUnknown := context.WithTimeout(context.Background(), 5*time.Second)
	if err := j.MarkDevicesUnknown(unknownCtx, "gateway stopped"); err != nil {
		log.Warn("device statuses not marked unknown at shutdown", "err", err)
	}
	cancelUnknown()
	stopPub()
	services.Wait()
	// What the next start will send first.
	if st, err := j.Stats(context.Background()); err == nil {
		log.Info("sterigate stopped", "pending", st.PendingUrgent+st.PendingTelemetry,
			"pending_records_and_events", st.PendingUrgent, "pending_telemetry", st.PendingTelemetry)
	} else {
		log.Warn("sterigate stopped; the journal's pending count could not be read", "err", err)
	}
	return nil
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
	var cycles []console.CycleCount
	for k, n := range j.CyclesJournaled() {
		cycles = append(cycles, console.CycleCount{Device: k.Device, Result: k.Result, Count: n})
	}
	return console.Snapshot{
		Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, Version: readBuild().version, Started: started,
		BrokerConnected: pub.Connected(), BrokerUnreachableSince: pub.UnreachableSince(),
		Pending:       map[string]int64{"urgent": st.PendingUrgent, "telemetry": st.PendingTelemetry},
		OldestPending: st.OldestPending,
		JournalBytes:  st.FileBytes, JournalQuota: st.QuotaBytes,
		JournalRefusesWrites: slices.Contains(st.Alarms, journal.AlarmDiskFull),
		Devices:              devs, Cycles: cycles, Metrics: metrics, Alarms: st.Alarms,
	}, nil
}

func newPublisher(cfg *config.Config, j *journal.Journal, log *slog.Logger, onDelivered func(journal.Entry)) (*mqttpub.Publisher, error) {
	return mqttpub.New(publisherOptions(cfg, onDelivered, log), j)
}

func publisherOptions(cfg *config.Config, onDelivered func(journal.Entry), log *slog.Logger) mqttpub.Options {
	m := cfg.MQTT
	return mqttpub.Options{
		Brokers: m.Brokers, ClientID: m.ClientID, Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site, TopicRoot: m.TopicRoot,
		Version: readBuild().version, Username: m.Username, PasswordFile: m.PasswordFile, PasswordEnv: m.PasswordEnv,
		CAFile: m.TLS.CAFile, CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile,
		KeepAlive: m.KeepAlive, Window: m.Inflight, OnDelivered: onDelivered, Logger: log,
	}
}

// rtuPoller adapts a Modbus unit to the RTU bus: both packages declare the
// same one-method reader interface, and Go does not unify named interface
// types in method signatures.
type rtuPoller struct{ u *modbus.Unit }

func (p rtuPoller) Poll(ctx context.Context, r rtu.RegisterReader) error { return p.u.Poll(ctx, r) }
func (p rtuPoller) Unreachable(ctx context.Context, err error)           { p.u.Unreachable(ctx, err) }
