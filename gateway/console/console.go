// Package console serves the gateway's local status page, Prometheus
// metrics and health check over plain net/http. It is what a biomedical
// engineer opens on the industrial PC when the hospital network is down:
// it needs nothing but the gateway itself.
package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// Snapshot is the gateway's state at one instant.
type Snapshot struct {
	Gateway, Site, Version string
	Started                time.Time
	BrokerConnected        bool
	Broker                 string
	// Pending counts undelivered journal entries by lane: "urgent" (cycle
	// records and events, sent first) and "telemetry".
	Pending      map[string]int64
	JournalBytes int64
	JournalQuota int64
	Devices      []protocol.DeviceStatus
	// Counters are monotonically increasing totals, by metric name and
	// label set, e.g. "sterigate_poll_errors_total{device=\"a\"}".
	Counters map[string]float64
	// Gauges are values that go up and down, keyed like Counters.
	Gauges map[string]float64
	// Help is the HELP text of counters and gauges, by metric name.
	Help   map[string]string
	Alarms []string
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

//go:embed page.html
var pageFS embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"since": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"mb":    func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) },
}).ParseFS(pageFS, "page.html"))

// Handler returns the console's HTTP handler.
func Handler(src Source, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s, err := src.Snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, s); err != nil {
			log.Debug("console page not fully written", "err", err)
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s, err := src.Snapshot(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		WriteMetrics(w, s)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Healthy means the gateway is recording; a missing broker is
		// normal during an outage and is not a reason to restart it.
		if _, err := src.Snapshot(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// WriteMetrics writes s in the Prometheus text exposition format.
func WriteMetrics(w io.Writer, s Snapshot) {
	b2f := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	fmt.Fprintf(w, "# HELP sterigate_broker_connected 1 while the MQTT connection is up.\n# TYPE sterigate_broker_connected gauge\nsterigate_broker_connected %d\n", b2f(s.BrokerConnected))
	fmt.Fprintf(w, "# HELP sterigate_journal_pending Undelivered journal entries: urgent (cycle records, events) and telemetry.\n# TYPE sterigate_journal_pending gauge\n")
	for _, lane := range []string{"urgent", "telemetry"} {
		fmt.Fprintf(w, "sterigate_journal_pending{lane=%q} %d\n", lane, s.Pending[lane])
	}
	fmt.Fprintf(w, "# HELP sterigate_journal_bytes Size of the journal on disk.\n# TYPE sterigate_journal_bytes gauge\nsterigate_journal_bytes %d\n", s.JournalBytes)
	fmt.Fprintf(w, "# HELP sterigate_journal_quota_bytes Configured journal quota (0: none).\n# TYPE sterigate_journal_quota_bytes gauge\nsterigate_journal_quota_bytes %d\n", s.JournalQuota)
	fmt.Fprintf(w, "# HELP sterigate_device_online 1 while the device answers.\n# TYPE sterigate_device_online gauge\n")
	for _, d := range s.Devices {
		fmt.Fprintf(w, "sterigate_device_online{device=%q} %d\n", d.Device, b2f(d.State == protocol.DeviceOnline))
	}
	fmt.Fprintf(w, "# HELP sterigate_gateway_alarms Active gateway alarms.\n# TYPE sterigate_gateway_alarms gauge\nsterigate_gateway_alarms %d\n", len(s.Alarms))
	writeFamilies(w, "counter", s.Counters, s.Help)
	writeFamilies(w, "gauge", s.Gauges, s.Help)
}

// writeFamilies writes values keyed name{labels} grouped by metric name,
// each family with its HELP (when known) and TYPE.
func writeFamilies(w io.Writer, kind string, values map[string]float64, help map[string]string) {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	typed := map[string]bool{}
	for _, n := range names {
		base, _, _ := strings.Cut(n, "{")
		if !typed[base] {
			if h := help[base]; h != "" {
				fmt.Fprintf(w, "# HELP %s %s\n", base, h)
			}
			fmt.Fprintf(w, "# TYPE %s %s\n", base, kind)
			typed[base] = true
		}
		fmt.Fprintf(w, "%s %g\n", n, values[n])
	}
}

// Serve serves the console on addr until ctx is done.
func Serve(ctx context.Context, addr string, src Source, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	srv := &http.Server{Handler: Handler(src, log), ReadHeaderTimeout: 5 * time.Second}
	log.Info("console listening", "url", "http://"+ln.Addr().String()+"/")
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
