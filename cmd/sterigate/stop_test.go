package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Stopping a gateway of many devices while their polls are being
// journaled logs one line for all of them, not one warning per device
// ("cannot deliver to the journal … context canceled" came 56–64 times
// with 200 devices). A real process, a real SIGTERM; the stop is tried
// again until it catches polls in flight.
func TestStopWithCommitsInFlightLogsOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts mosquitto, a simulator of 60 devices and the gateway")
	}
	const devices = 60
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	_, addrs := startSimPerDevice(t, devices, 60)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "gateway: {id: gw-1, site: dax, data_dir: %q}\nmqtt: {brokers: [\"tcp://%s\"]}\ndevices:\n", filepath.Join(dir, "data"), broker.addr())
	for i, addr := range addrs {
		// Polled fast, so that the journal always has saves in flight.
		fmt.Fprintf(&cfg, "  - {id: ac-%d, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, time_scale: 60}\n", i+1, addr)
	}
	config := writeFile(t, filepath.Join(dir, "sterigate.yaml"), cfg.String())

	summary := "stopping interrupted the journaling of the last poll of some devices"
	for attempt := 1; ; attempt++ {
		gw := startProc(t, fmt.Sprintf("gateway (run %d)", attempt), binary, "run", "--config", config)
		gw.waitOutput(30*time.Second, "mqtt connected")
		// Once every device's link is open, all are polling.
		waitFor(t, 30*time.Second, "every device to be polled", func() bool {
			mustRun(t, gw)
			return strings.Count(gw.output(), "modbus link open") >= devices
		})
		if err := gw.stop(30 * time.Second); err != nil {
			t.Fatalf("gateway: %v\n%s", err, gw.output())
		}
		out := gw.output()
		if n := strings.Count(out, "cannot deliver to the journal"); n > 0 {
			t.Fatalf("the stop logged %d per-device delivery warnings, want none:\n%s", n, out)
		}
		if n := strings.Count(out, summary); n > 1 {
			t.Fatalf("the summary line came %d times, want once:\n%s", n, out)
		}
		if strings.Contains(out, summary) {
			t.Logf("run %d: %s", attempt, out[strings.Index(out, summary)-40:])
			return
		}
		if attempt == 5 {
			t.Skipf("no stop out of %d caught a poll being journaled; nothing to count", attempt)
		}
	}
}
