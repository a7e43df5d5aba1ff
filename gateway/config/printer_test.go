package config

import (
	"strings"
	"testing"
	"time"
)

// TestPrinterReportTimeout: report_timeout is read for a printer, left 0
// (the driver's default) when absent, and refused when it is not a
// duration, too short, too long or given to a Modbus device.
func TestPrinterReportTimeout(t *testing.T) {
	const head = `
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
`
	c, err := Parse("ok.yaml", []byte(head+`
  - {id: p1, driver: printer, template: dac-de, serial: {port: /dev/ttyS0}, report_timeout: 20m}
  - {id: p2, driver: printer, template: dac-de, serial: {port: /dev/ttyS1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Devices[0].ReportTimeout != 20*time.Minute || c.Devices[1].ReportTimeout != 0 {
		t.Errorf("report timeouts %v, %v; want 20m and 0 (the driver's default)", c.Devices[0].ReportTimeout, c.Devices[1].ReportTimeout)
	}
	_, err = Parse("bad.yaml", []byte(head+`
  - {id: p1, driver: printer, template: dac-de, serial: {port: /dev/ttyS0}, report_timeout: soon}
  - {id: p2, driver: printer, template: dac-de, serial: {port: /dev/ttyS1}, report_timeout: 10ms}
  - {id: p3, driver: printer, template: dac-de, serial: {port: /dev/ttyS2}, report_timeout: 48h}
  - {id: m1, driver: modbus-tcp, address: "127.0.0.1:502", profile: sim-autoclave, report_timeout: 1m}
`))
	if err == nil {
		t.Fatal("bad report timeouts accepted")
	}
	for _, want := range []string{
		`bad.yaml:6: devices[0].report_timeout: "soon" is not a duration`,
		`bad.yaml:7: devices[1].report_timeout: 10ms is too short (at least 1s)`,
		`bad.yaml:8: devices[2].report_timeout: 48h0m0s is longer than 24h0m0s`,
		`bad.yaml:9: devices[3].report_timeout: is only used by the printer driver, not modbus-tcp`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%s", want, err)
		}
	}
}
