package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
)

// The Modbus metric table: one family per row, each with HELP text and
// labels that match its samples, the same families for every transport,
// and every name documented in docs/config.md.
func TestModbusMetricsTable(t *testing.T) {
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "m.yaml"), []byte(`
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "127.0.0.1:1502", profile: sim-autoclave}
  - {id: b, driver: modbus-rtu-tcp, address: "127.0.0.1:4001", unit: 2, profile: sim-autoclave}
  - {id: c, driver: modbus-rtu, serial: {port: /dev/ttyUSB7}, unit: 3, profile: sim-autoclave}
`))
	if err != nil {
		t.Fatal(err)
	}
	links, err := buildLinks(cfg, &captureSink{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range modbusMetrics {
		if seen[m.Name] || m.Help == "" || len(m.Labels) == 0 || (m.Unit == nil) == (m.Link == nil) {
			t.Errorf("metric %s: duplicate, no help, no labels, or fed from neither units nor links", m.Name)
		}
		seen[m.Name] = true
		if !strings.Contains(string(docs), "`"+m.Name+"`") {
			t.Errorf("docs/config.md does not list %s", m.Name)
		}
	}
	counters, gauges := map[string]float64{}, map[string]float64{}
	for _, l := range links {
		if l.modbus == nil {
			t.Fatalf("link %s has no Modbus owner", l.name)
		}
		s := l.modbus.Stats()
		s.Units[0].ExceptionsByCode = map[byte]uint64{11: 4}
		for _, m := range modbusMetrics {
			samples := m.samples(s)
			if len(samples) == 0 {
				t.Errorf("%s: %s has no samples", l.name, m.Name)
			}
			for _, sm := range samples {
				if len(sm.Labels) != len(m.Labels) {
					t.Errorf("%s: sample labels %v for label names %v", m.Name, sm.Labels, m.Labels)
				}
			}
		}
		modbusConsoleMetrics(s, func(m console.Metric) {
			key := m.Name
			names := make([]string, 0, len(m.Labels))
			for n := range m.Labels {
				names = append(names, n)
			}
			sort.Strings(names)
			for i, n := range names {
				sep := ","
				if i == 0 {
					sep = "{"
				}
				key += fmt.Sprintf("%s%s=%q", sep, n, m.Labels[n])
			}
			key += "}"
			if m.Type == console.Gauge {
				gauges[key] = m.Value
			} else {
				counters[key] = m.Value
			}
		})
	}
	for _, want := range []string{
		`sterigate_modbus_errors_total{device="b",kind="timeout"}`,
		`sterigate_modbus_exceptions_total{code="11",device="c"}`,
		`sterigate_modbus_link_opens_total{link="modbus-tcp 127.0.0.1:1502"}`,
		`sterigate_modbus_link_errors_total{link="modbus-rtu serial:/dev/ttyUSB7"}`,
	} {
		if _, ok := counters[want]; !ok {
			t.Errorf("counters lack %s", want)
		}
	}
	if _, ok := gauges[`sterigate_modbus_backoff_seconds{device="a"}`]; !ok {
		t.Errorf("gauges lack the back-off of a: %v", gauges)
	}
	if got := len(modbus.ErrorKinds); got != 5 {
		t.Errorf("%d error kinds", got)
	}
}
