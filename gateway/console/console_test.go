package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sterigate/sterigate/protocol"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func snapshot() Snapshot {
	return Snapshot{
		Gateway: "cssd-gw-1", Site: "dax", Version: "test", Started: now.Add(-time.Hour),
		BrokerConnected: true,
		Pending:         map[string]int64{"urgent": 2, "telemetry": 40},
		OldestPending:   now.Add(-90 * time.Second),
		Devices: []protocol.DeviceStatus{
			{Device: "autoclave-1", State: protocol.DeviceOnline, Phase: protocol.PhaseSterilizing, Program: "134-porous", Cycle: 7, At: now,
				LastCycle: &protocol.LastCycle{ID: "dax:autoclave-1:6", Cycle: 6, Program: "134-porous", EndedAt: now.Add(-time.Hour), Result: protocol.ResultPassed, Complete: true}},
			{Device: "autoclave-<2>", State: protocol.DeviceOffline, Error: "i/o timeout", StateSince: now.Add(-time.Minute), At: now},
		},
		Cycles: []CycleCount{{Device: "autoclave-1", Result: protocol.ResultPassed, Count: 3}, {Device: "autoclave-1", Result: protocol.ResultFailed, Count: 1}},
		Metrics: []Metric{
			{Name: "sterigate_polls_total", Help: "Modbus polls.", Type: Counter, Labels: map[string]string{"device": "autoclave-1"}, Value: 30},
			{Name: "sterigate_polls_total", Help: "Modbus polls.", Type: Counter, Labels: map[string]string{"device": "autoclave-<2>"}, Value: 3},
		},
		Alarms: []string{"journal at 91% of its quota"},
	}
}

func testOptions() Options {
	return Options{
		Build:             BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26"},
		BrokerUnreachable: time.Minute, DeviceOffline: 5 * time.Minute,
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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

func fixed(s Snapshot) Source {
	return SourceFunc(func(context.Context) (Snapshot, error) { return s, nil })
}

// ParseExposition parses a /metrics body and fails the test unless every
// metric family has a HELP line.
func parseExposition(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the text exposition format: %v\n%s", err, body)
	}
	for name, f := range fams {
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("metric %s has no HELP", name)
		}
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

func TestPageAndMetrics(t *testing.T) {
	h := Handler(fixed(snapshot()), testOptions())
	code, body := get(t, h, "/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{"cssd-gw-1", "autoclave-1", "sterilizing", "134-porous", "journal at 91% of its quota", "autoclave-&lt;2&gt;", "<b>2</b> cycle records and events", "dax:autoclave-1:6"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, metrics := get(t, h, "/metrics")
	fams := parseExposition(t, metrics)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sterigate_build_info", []string{"version", "v1.2.3", "revision", "abc123", "goversion", "go1.26"}, 1},
		{"sterigate_broker_connected", nil, 1},
		{"sterigate_journal_pending", []string{"lane", "urgent"}, 2},
		{"sterigate_journal_oldest_pending_age_seconds", nil, 90},
		{"sterigate_device_online", []string{"device", "autoclave-1"}, 1},
		{"sterigate_device_online", []string{"device", "autoclave-<2>"}, 0},
		{"sterigate_cycles_total", []string{"device", "autoclave-1", "result", "failed"}, 1},
		{"sterigate_last_cycle_end_timestamp_seconds", []string{"device", "autoclave-1"}, float64(now.Add(-time.Hour).Unix())},
		{"sterigate_polls_total", []string{"device", "autoclave-<2>"}, 3},
		{"sterigate_gateway_alarms", nil, 1},
		{"sterigate_ready", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.labels, got, c.want)
		}
	}
	if fams["sterigate_cycles_total"].GetType() != dto.MetricType_COUNTER {
		t.Error("sterigate_cycles_total is not a counter")
	}
	if _, ok := fams["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics")
	}
}

// A malformed metric from a driver link (another label set under the
// same name) must not hide the others.
func TestInconsistentMetricDoesNotHideTheRest(t *testing.T) {
	s := snapshot()
	s.Metrics = append(s.Metrics, Metric{Name: "sterigate_polls_total", Help: "Modbus polls.", Labels: map[string]string{"unit": "3"}, Value: 1})
	code, body := get(t, Handler(fixed(s), testOptions()), "/metrics")
	if code != 200 {
		t.Fatalf("/metrics answered %d", code)
	}
	fams := parseExposition(t, body)
	if value(t, fams, "sterigate_device_online", "device", "autoclave-1") != 1 {
		t.Error("device metric missing")
	}
}

func readyz(t *testing.T, s Snapshot, o Options) (int, Readiness) {
	t.Helper()
	code, body := get(t, Handler(fixed(s), o), "/readyz")
	var r Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body is not JSON: %v\n%s", err, body)
	}
	return code, r
}

func TestReadyz(t *testing.T) {
	o := testOptions()
	if code, r := readyz(t, snapshot(), o); code != 200 || !r.Ready || len(r.Reasons) != 0 {
		t.Errorf("healthy gateway: %d %+v, want 200 ready", code, r)
	}

	// The broker: down for less than the limit is fine, longer is not.
	s := snapshot()
	s.BrokerConnected, s.BrokerUnreachableSince = false, now.Add(-59*time.Second)
	if code, _ := readyz(t, s, o); code != 200 {
		t.Errorf("broker down 59 s with a limit of 60 s: %d, want 200", code)
	}
	s.BrokerUnreachableSince = now.Add(-61 * time.Second)
	code, r := readyz(t, s, o)
	if code != http.StatusServiceUnavailable || r.Ready || len(r.Reasons) != 1 || r.Reasons[0].Check != CheckBroker || !strings.Contains(r.Reasons[0].Text, "1m1s") {
		t.Errorf("broker down 61 s: %d %+v, want 503 naming the broker", code, r)
	}

	// A device offline too long, and a full disk, each with their reason.
	s = snapshot()
	s.Devices[1].StateSince = now.Add(-6 * time.Minute)
	s.JournalRefusesWrites = true
	code, r = readyz(t, s, o)
	if code != http.StatusServiceUnavailable || len(r.Reasons) != 2 {
		t.Fatalf("disk full and a device offline 6 min: %d %+v, want 503 with two reasons", code, r)
	}
	if r.Reasons[0].Check != CheckJournal || r.Reasons[1].Check != CheckDevice || r.Reasons[1].Device != "autoclave-<2>" ||
		!strings.Contains(r.Reasons[1].Text, "offline for 6m0s (limit 5m0s): i/o timeout") {
		t.Errorf("reasons %+v", r.Reasons)
	}

	// /healthz (liveness) does not care about any of that.
	if code, body := get(t, Handler(fixed(s), o), "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
}

func TestHealthzAndReadyzFailWhenSnapshotFails(t *testing.T) {
	h := Handler(SourceFunc(func(context.Context) (Snapshot, error) { return Snapshot{}, errors.New("journal closed") }), testOptions())
	if code, _ := get(t, h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz = %d", code)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "journal closed") {
		t.Errorf("readyz = %d %s", code, body)
	}
	// A scrape that cannot read the gateway's state fails, so Prometheus
	// sees the target down rather than a gateway without devices.
	if code, body := get(t, h, "/metrics"); code != http.StatusInternalServerError || !strings.Contains(body, "journal closed") {
		t.Errorf("metrics = %d %s", code, body)
	}
}
