package console

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sterigate/sterigate/protocol"
)

// The gateway's own metrics. docs/console.md lists them; a test checks
// that every metric on /metrics has a HELP line.
var (
	descBuildInfo = prometheus.NewDesc("sterigate_build_info",
		"Always 1; the labels say which sterigate runs: version, VCS revision, Go version.", []string{"version", "revision", "goversion"}, nil)
	descReady = prometheus.NewDesc("sterigate_ready",
		"1 when /readyz answers 200 (journal writable, broker and devices reachable), else 0.", nil, nil)
	descBrokerConnected = prometheus.NewDesc("sterigate_broker_connected",
		"1 while the MQTT connection is up.", nil, nil)
	descBrokerUnreachable = prometheus.NewDesc("sterigate_broker_unreachable_seconds",
		"How long no MQTT broker has been reachable; 0 while connected.", nil, nil)
	descPending = prometheus.NewDesc("sterigate_journal_pending",
		"Undelivered journal entries by lane: urgent (cycle records, events) and telemetry, including those held in memory while the disk refuses writes.", []string{"lane"}, nil)
	descHeld = prometheus.NewDesc("sterigate_journal_held_in_memory",
		"Entries the disk refused, held in memory only (lost if the gateway stops before the disk takes them).", nil, nil)
	descUnconfirmed = prometheus.NewDesc("sterigate_mqtt_unconfirmed",
		"Cycle records and events the broker acknowledged that have not come back on the gateway's own subscription yet.", nil, nil)
	descOldestUnarchived = prometheus.NewDesc("sterigate_journal_oldest_unarchived_age_seconds",
		"Age of the oldest journal entry no archive has confirmed storing (receipts); 0 when all are archived. Only with mqtt.receipts expected or required.", nil, nil)
	descOldestPending = prometheus.NewDesc("sterigate_journal_oldest_pending_age_seconds",
		"Age of the oldest undelivered journal entry; 0 when everything was delivered.", nil, nil)
	descJournalBytes = prometheus.NewDesc("sterigate_journal_bytes",
		"Size of the journal on disk (database and write-ahead log).", nil, nil)
	descJournalQuota = prometheus.NewDesc("sterigate_journal_quota_bytes",
		"Configured journal quota in bytes (0: none).", nil, nil)
	descJournalRefuses = prometheus.NewDesc("sterigate_journal_refuses_writes",
		"1 while the disk refuses journal writes (entries held in memory only).", nil, nil)
	descAlarms = prometheus.NewDesc("sterigate_gateway_alarms",
		"Number of active gateway alarms (journal near quota, quota reached, disk full, journal damaged, records unconfirmed, receipts missing).", nil, nil)
	descDeviceOnline = prometheus.NewDesc("sterigate_device_online",
		"1 while the device answers, else 0 (offline or not reached yet).", []string{"device"}, nil)
	descCycles = prometheus.NewDesc("sterigate_cycles_total",
		"Cycle records journaled since the gateway started, by device and the device's result.", []string{"device", "result"}, nil)
	descLastCycleEnd = prometheus.NewDesc("sterigate_last_cycle_end_timestamp_seconds",
		"When the device's last recorded cycle ended, in Unix seconds.", []string{"device"}, nil)
)

// scrapeTimeout bounds the snapshot one scrape waits for.
const scrapeTimeout = 10 * time.Second

// descSnapshotFailed reports a scrape whose snapshot failed: the registry
// turns the invalid metric into an error, and the scrape fails (HTTP 500),
// which Prometheus shows as the target being down.
var descSnapshotFailed = prometheus.NewDesc("sterigate_snapshot_failed", "The gateway's state could not be read for this scrape.", nil, nil)

// snapshotCollector turns a fresh snapshot into metrics at each scrape. It
// declares nothing up front (an unchecked collector): its metrics depend
// on the snapshot.
type snapshotCollector struct {
	src Source
	o   Options
}

func (c snapshotCollector) Describe(chan<- *prometheus.Desc) {}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s, err := c.src.Snapshot(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descSnapshotFailed, err)
		return
	}
	now := c.o.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	build := c.o.Build
	gauge(descBuildInfo, 1, build.Version, build.Revision, build.GoVersion)
	gauge(descReady, b2f(c.o.readiness(s, now).Ready))
	gauge(descBrokerConnected, b2f(s.BrokerConnected))
	unreachable := 0.0
	if !s.BrokerConnected && !s.BrokerUnreachableSince.IsZero() {
		unreachable = now.Sub(s.BrokerUnreachableSince).Seconds()
	}
	gauge(descBrokerUnreachable, unreachable)
	for _, lane := range []string{"urgent", "telemetry"} {
		gauge(descPending, float64(s.Pending[lane]), lane)
	}
	age := 0.0
	if !s.OldestPending.IsZero() {
		age = max(0, now.Sub(s.OldestPending).Seconds())
	}
	gauge(descOldestPending, age)
	if s.ReceiptsOn {
		unarchived := 0.0
		if !s.OldestUnarchived.IsZero() {
			unarchived = max(0, now.Sub(s.OldestUnarchived).Seconds())
		}
		gauge(descOldestUnarchived, unarchived)
	}
	gauge(descJournalBytes, float64(s.JournalBytes))
	gauge(descJournalQuota, float64(s.JournalQuota))
	gauge(descJournalRefuses, b2f(s.JournalRefusesWrites))
	gauge(descHeld, float64(s.HeldInMemory))
	gauge(descUnconfirmed, float64(s.Unconfirmed))
	gauge(descAlarms, float64(len(s.Alarms)))
	for _, d := range s.Devices {
		gauge(descDeviceOnline, b2f(d.State == protocol.DeviceOnline), d.Device)
		if lc := d.LastCycle; lc != nil && !lc.EndedAt.IsZero() {
			gauge(descLastCycleEnd, float64(lc.EndedAt.UnixMilli())/1000, d.Device)
		}
	}
	for _, cc := range s.Cycles {
		ch <- prometheus.MustNewConstMetric(descCycles, prometheus.CounterValue, float64(cc.Count), cc.Device, string(cc.Result))
	}
	collectOthers(ch, s.Metrics, c.o.Logger)
}

// collectOthers exposes the Metrics other parts of the gateway supplied.
// A sample that does not match the first of its name (other help, type or
// label names) is left out and logged: one wrong sample must not cost the
// whole scrape.
func collectOthers(ch chan<- prometheus.Metric, metrics []Metric, log *slog.Logger) {
	type family struct {
		desc  *prometheus.Desc
		shape string
	}
	families := map[string]family{}
	for _, m := range metrics {
		names := make([]string, 0, len(m.Labels))
		for n := range m.Labels {
			names = append(names, n)
		}
		sort.Strings(names)
		values := make([]string, len(names))
		for i, n := range names {
			values[i] = m.Labels[n]
		}
		shape := fmt.Sprintf("%s\x00%d\x00%s", m.Help, m.Type, joinNames(names))
		f, ok := families[m.Name]
		if !ok {
			f = family{desc: prometheus.NewDesc(m.Name, m.Help, names, nil), shape: shape}
			families[m.Name] = f
		} else if f.shape != shape {
			log.Warn("metrics: sample left out: its help, type or labels differ from the first of its name", "metric", m.Name, "labels", m.Labels)
			continue
		}
		vt := prometheus.CounterValue
		if m.Type == Gauge {
			vt = prometheus.GaugeValue
		}
		metric, err := prometheus.NewConstMetric(f.desc, vt, m.Value, values...)
		if err != nil {
			log.Warn("metrics: sample left out", "metric", m.Name, "err", err)
			continue
		}
		ch <- metric
	}
}

func joinNames(names []string) string {
	out := ""
	for _, n := range names {
		out += n + ","
	}
	return out
}
