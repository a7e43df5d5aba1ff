// Package console serves the gateway's local console over plain net/http
// (or TLS): the live overview of the sterilizers, the cycle records with
// their trace plots, the printable release record, the release decisions
// of CSSD staff (with local accounts), Prometheus metrics, liveness and
// readiness checks. It is what the staff and the biomedical engineer open
// on the industrial PC when the hospital network is down: it needs nothing
// but the gateway itself, no script, font or style from elsewhere, and
// works without JavaScript. It speaks English and French.
// docs/console.md says what each page and endpoint does.
package console

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sterigate/sterigate/protocol"
)

// Snapshot is the gateway's state at one instant.
type Snapshot struct {
	Gateway, Site, Version string
	Started                time.Time
	BrokerConnected        bool
	// BrokerUnreachableSince is when the broker became unreachable; zero
	// while connected.
	BrokerUnreachableSince time.Time
	// Pending counts undelivered journal entries by lane: "urgent" (cycle
	// records and events, sent first) and "telemetry".
	Pending map[string]int64
	// OldestPending is when the oldest undelivered entry was journaled;
	// zero when everything was delivered.
	OldestPending time.Time
	JournalBytes  int64
	JournalQuota  int64
	// JournalRefusesWrites is set while the disk refuses journal writes
	// (entries are held in memory only).
	JournalRefusesWrites bool
	// HeldInMemory counts the entries the disk refused that memory holds
	// (also counted in Pending).
	HeldInMemory int64
	// Unconfirmed counts cycle records and events the broker acknowledged
	// that have not come back on the gateway's own subscription.
	Unconfirmed int64
	// OldestUnarchived is when the oldest entry no archive has confirmed
	// storing was journaled (zero: none); ReceiptsOn says receipts are
	// expected at all (mqtt.receipts not off).
	OldestUnarchived time.Time
	ReceiptsOn       bool
	Devices          []protocol.DeviceStatus
	// Cycles counts the cycle records journaled since the gateway started.
	Cycles []CycleCount
	// Metrics are the samples other parts of the gateway expose (driver
	// links, supervised tasks).
	Metrics []Metric
	Alarms  []string
	// Live holds what the drivers delivered last, by device: the latest
	// sample and the alarms of the running cycle.
	Live map[string]Live
	// LastAck is when the broker last acknowledged (PUBACK) a journal
	// entry; zero when none since the gateway started.
	LastAck time.Time
}

// Live is the latest a device's driver delivered.
type Live struct {
	// Sample is the latest chamber reading; nil before the first.
	Sample *protocol.Sample
	// Alarms are the alarm events of the running cycle, newest last.
	Alarms []protocol.Event
}

// CycleCount is how many cycle records of one device with one result
// were journaled since the gateway started.
type CycleCount struct {
	Device string
	Result protocol.Result
	Count  int64
}

// MetricType says how Prometheus treats a Metric.
type MetricType int

const (
	// Counter only goes up (it restarts from 0 with the gateway).
	Counter MetricType = iota
	// Gauge goes up and down.
	Gauge
)

// Metric is one sample exposed on /metrics for a part of the gateway the
// console does not know, e.g. a driver link's counters of one device.
// Samples with the same Name must share Help, Type and label names.
type Metric struct {
	Name   string
	Help   string
	Type   MetricType
	Labels map[string]string
	Value  float64
}

// Source produces snapshots; cmd/sterigate assembles one from the
// journal, the publisher and the drivers.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Snapshot, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context) (Snapshot, error) { return f(ctx) }

// BuildInfo identifies the running binary (sterigate_build_info).
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// Options configures the console.
type Options struct {
	Build BuildInfo
	// Gateway and Site name the gateway on the pages and the printed
	// release record.
	Gateway, Site string
	// BrokerUnreachable: /readyz fails once the broker has been
	// unreachable this long (0: never; the config's default is 60 s).
	BrokerUnreachable time.Duration
	// DeviceOffline: /readyz fails once a device has not been online for
	// this long (0: never; the config's default is 5 min).
	DeviceOffline time.Duration
	// Records gives the cycle pages the journal's records and takes
	// release decisions; nil serves the overview, health and metrics only.
	Records Records
	// UsersFile is the accounts file ('sterigate user add'); read at each
	// login, so accounts added while the gateway runs work at once. Empty:
	// nobody can log in, and no release decision can be made.
	UsersFile string
	// TLSConfig, when set, makes Serve serve HTTPS with it (cookies are
	// then Secure); see LoadOrCreateCertificate.
	TLSConfig *tls.Config
	// SessionIdle ends a session unused for that long (default 30 min).
	SessionIdle time.Duration
	// Location is the time zone times are shown in (default time.Local).
	Location *time.Location
	// DecodePrintout turns a printer-tap record's raw printout into text
	// with the charset of the device's template; ok is false when the
	// device's charset is not known (the bytes are then shown as ASCII).
	DecodePrintout func(device string, raw []byte) (text string, ok bool)
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = DefaultSessionIdle
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Handler returns the console's HTTP handler.
func Handler(src Source, opts Options) http.Handler {
	o := opts.withDefaults()
	log := o.Logger
	// One registry and one exposition handler for the life of the console:
	// the process's own collectors, and one that turns a fresh snapshot into
	// metrics at each scrape. No compression: scrapes are local and small,
	// and gzip's buffers would cost more memory than the bytes saved.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		snapshotCollector{src: src, o: o})
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:      promhttp.HTTPErrorOnError,
		ErrorLog:           promLogger{log},
		DisableCompression: true,
	})

	mux := http.NewServeMux()
	h := newHandler(src, o)
	h.routes(mux)
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: the gateway answers and can read its journal. A
		// missing broker or device is no reason to restart it (/readyz
		// says those).
		if _, err := src.Snapshot(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		var ready Readiness
		if s, err := src.Snapshot(r.Context()); err != nil {
			ready.Reasons = []Reason{{Check: CheckJournal, Text: "cannot read the journal: " + err.Error()}}
		} else {
			ready = o.readiness(s, o.Now())
		}
		w.Header().Set("Content-Type", "application/json")
		if !ready.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ready)
	})
	return securityHeaders(mux)
}

// promLogger passes promhttp's errors (an inconsistent metric) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// Checks named in a readiness Reason.
const (
	CheckJournal = "journal"
	CheckBroker  = "broker"
	CheckDevice  = "device"
)

// Readiness is the body of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reasons lists every failed check; empty when ready.
	Reasons []Reason `json:"reasons"`
}

// Reason is one failed readiness check.
type Reason struct {
	Check  string    `json:"check"` // journal, broker or device
	Device string    `json:"device,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Text   string    `json:"text"`
}

// unreadyAlarms are the gateway alarms that make /readyz fail (the disk
// full alarm has its own reason, above), with what they mean.
var unreadyAlarms = map[string]string{
	"journal_damaged":  "the journal was found damaged and replaced; the damaged one waits for 'sterigate journal salvage' (the log names it)",
	"mqtt_unconfirmed": "cycle records or events the broker acknowledged did not come back on the gateway's own subscription (broker ACL, or a broker that loses messages); they are being published again",
}

// readiness applies the checks of docs/console.md to s.
func (o Options) readiness(s Snapshot, now time.Time) Readiness {
	r := Readiness{Reasons: []Reason{}}
	if s.JournalRefusesWrites {
		r.Reasons = append(r.Reasons, Reason{Check: CheckJournal,
			Text: fmt.Sprintf("the disk refuses journal writes: %d entries are held in memory only and are lost if the gateway stops", s.HeldInMemory)})
	}
	for _, a := range s.Alarms {
		if text, ok := unreadyAlarms[a]; ok {
			r.Reasons = append(r.Reasons, Reason{Check: CheckJournal, Text: a + ": " + text})
		}
	}
	if since := s.BrokerUnreachableSince; o.BrokerUnreachable > 0 && !s.BrokerConnected && !since.IsZero() && now.Sub(since) > o.BrokerUnreachable {
		r.Reasons = append(r.Reasons, Reason{Check: CheckBroker, Since: since.UTC(),
			Text: fmt.Sprintf("no MQTT broker reachable for %s (limit %s)", now.Sub(since).Round(time.Second), o.BrokerUnreachable)})
	}
	for _, d := range s.Devices {
		if d.State == protocol.DeviceOnline || o.DeviceOffline <= 0 {
			continue
		}
		since := d.StateSince
		if since.IsZero() {
			since = d.At
		}
		if since.IsZero() || now.Sub(since) <= o.DeviceOffline {
			continue
		}
		text := fmt.Sprintf("%s for %s (limit %s)", d.State, now.Sub(since).Round(time.Second), o.DeviceOffline)
		if d.Error != "" {
			text += ": " + d.Error
		}
		r.Reasons = append(r.Reasons, Reason{Check: CheckDevice, Device: d.Device, Since: since.UTC(), Text: text})
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// Serve serves the console on addr until ctx is done.
func Serve(ctx context.Context, addr string, src Source, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	o := opts.withDefaults()
	srv := &http.Server{Handler: Handler(src, o), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	scheme := "http"
	if o.TLSConfig != nil {
		ln = tls.NewListener(ln, o.TLSConfig)
		scheme = "https"
	}
	o.Logger.Info("console listening", "url", scheme+"://"+ln.Addr().String()+"/")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("console: %w", err)
	}
}
