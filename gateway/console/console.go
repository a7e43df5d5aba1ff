// Package console serves the gateway's local status page, Prometheus
// metrics, liveness and readiness checks over plain net/http. It is what a
// biomedical engineer opens on the industrial PC when the hospital network
// is down: it needs nothing but the gateway itself. docs/console.md says
// what each endpoint checks and lists every metric.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
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
	Devices     []protocol.DeviceStatus
	// Cycles counts the cycle records journaled since the gateway started.
	Cycles []CycleCount
	// Metrics are the samples other parts of the gateway expose (driver
	// links, supervised tasks).
	Metrics []Metric
	Alarms  []string
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
	// BrokerUnreachable: /readyz fails once the broker has been
	// unreachable this long (0: never; the config's default is 60 s).
	BrokerUnreachable time.Duration
	// DeviceOffline: /readyz fails once a device has not been online for
	// this long (0: never; the config's default is 5 min).
	DeviceOffline time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

//go:embed page.html
var pageFS embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"since": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"mb":    func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) },
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("2006-01-02 15:04:05Z07:00")
	},
}).ParseFS(pageFS, "page.html"))

// pageData is what the status page shows.
type pageData struct {
	Snapshot
	Ready Readiness
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
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s, err := src.Snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, pageData{Snapshot: s, Ready: o.readiness(s, o.Now())}); err != nil {
			log.Debug("console page not fully written", "err", err)
		}
	})
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
	return mux
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
	srv := &http.Server{Handler: Handler(src, o), ReadHeaderTimeout: 5 * time.Second}
	o.Logger.Info("console listening", "url", "http://"+ln.Addr().String()+"/")
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
