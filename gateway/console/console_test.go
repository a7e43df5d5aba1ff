package console

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

func snapshot() Snapshot {
	return Snapshot{
		Gateway: "cssd-gw-1", Site: "dax", Version: "test", Started: time.Now().Add(-time.Hour),
		Pending: map[string]int64{"urgent": 2, "telemetry": 40},
		Devices: []protocol.DeviceStatus{
			{Device: "autoclave-1", State: protocol.DeviceOnline, Phase: protocol.PhaseSterilizing, Cycle: 7, At: time.Now()},
			{Device: "autoclave-<2>", State: protocol.DeviceOffline, Error: "i/o timeout", At: time.Now()},
		},
		Counters: map[string]float64{`sterigate_poll_errors_total{device="autoclave-1"}`: 3},
		Gauges:   map[string]float64{`sterigate_modbus_backoff_seconds{device="autoclave-<2>"}`: 4.5},
		Help:     map[string]string{"sterigate_modbus_backoff_seconds": "Current wait before the next attempt."},
		Alarms:   []string{"journal at 91% of its quota"},
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPageAndMetrics(t *testing.T) {
	h := Handler(SourceFunc(func(context.Context) (Snapshot, error) { return snapshot(), nil }), slog.New(slog.NewTextHandler(io.Discard, nil)))
	code, body := get(t, h, "/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{"cssd-gw-1", "autoclave-1", "sterilizing", "not connected", "journal at 91% of its quota", "autoclave-&lt;2&gt;", "2 cycle records and events"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, metrics := get(t, h, "/metrics")
	for _, want := range []string{
		"sterigate_broker_connected 0\n",
		`sterigate_journal_pending{lane="urgent"} 2` + "\n",
		`sterigate_device_online{device="autoclave-1"} 1` + "\n",
		`sterigate_device_online{device="autoclave-<2>"} 0` + "\n",
		"# TYPE sterigate_poll_errors_total counter\n",
		`sterigate_poll_errors_total{device="autoclave-1"} 3` + "\n",
		"sterigate_gateway_alarms 1\n",
		"# HELP sterigate_modbus_backoff_seconds Current wait before the next attempt.\n# TYPE sterigate_modbus_backoff_seconds gauge\n" +
			`sterigate_modbus_backoff_seconds{device="autoclave-<2>"} 4.5` + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
}

func TestHealthzFailsWhenSnapshotFails(t *testing.T) {
	h := Handler(SourceFunc(func(context.Context) (Snapshot, error) { return Snapshot{}, errors.New("journal closed") }), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code, _ := get(t, h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz = %d", code)
	}
	h = Handler(SourceFunc(func(context.Context) (Snapshot, error) { return snapshot(), nil }), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
}
