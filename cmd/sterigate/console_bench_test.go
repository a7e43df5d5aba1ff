package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkConsoleRSS measures what the console costs the gateway in
// memory: the same gateway (20 simulated autoclaves, Mosquitto) runs twice
// for the same time, once without the console and once with /metrics,
// /readyz and the status page scraped 20 times a second, and the peak
// resident set (VmHWM) of each is reported. Run with -benchtime=1x.
func BenchmarkConsoleRSS(b *testing.B) {
	dir := b.TempDir()
	broker := startMosquitto(b, dir)
	_, simAddr, _ := startSim(b, dir, 20, 1000, 60, 11, nil)
	const runFor = 15 * time.Second
	measure := func(name string, withConsole bool) (peakMiB, rssMiB float64) {
		consoleAddr := ""
		if withConsole {
			consoleAddr = fmt.Sprintf("127.0.0.1:%d", freePort(b))
		}
		var devices strings.Builder
		for i := 1; i <= 20; i++ {
			fmt.Fprintf(&devices, "  - {id: autoclave-%d, driver: modbus-tcp, address: %q, unit: %d, profile: sim-autoclave, poll_interval: 200ms}\n", i, simAddr, i)
		}
		cfg := writeFile(b, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`
gateway: {id: %s, site: dax, data_dir: %q, console: %q}
mqtt: {brokers: ["tcp://%s"]}
devices:
%s`, name, filepath.Join(dir, name), consoleAddr, broker.addr(), devices.String()))
		gw := startProc(b, name, binary, "run", "--config", cfg)
		gw.waitOutput(20*time.Second, "sterigate running")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		scrapes := 0
		for end := time.Now().Add(runFor); time.Now().Before(end); <-tick.C {
			mustRun(b, gw)
			if withConsole {
				for _, p := range []string{"/metrics", "/readyz", "/", "/tiles", "/cycles", "/cycles?device=autoclave-3&verdict=none"} {
					if code, body := httpGet("http://" + consoleAddr + p); code == 0 {
						b.Fatalf("console %s: %s", p, body)
					}
				}
				scrapes++
			}
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", gw.cmd.Process.Pid))
		if err != nil {
			b.Skipf("no /proc: %v", err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			var kib float64
			if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kib); err == nil {
				peakMiB = kib / 1024
			}
			if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kib); err == nil {
				rssMiB = kib / 1024
			}
		}
		if err := gw.stop(20 * time.Second); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: peak RSS %.1f MiB, RSS at the end %.1f MiB, %d scrapes of 3 pages", name, peakMiB, rssMiB, scrapes)
		return peakMiB, rssMiB
	}
	for range b.N {
		offPeak, offRSS := measure("without-console", false)
		onPeak, onRSS := measure("with-console", true)
		b.ReportMetric(offPeak, "peak-RSS-MiB-without")
		b.ReportMetric(onPeak, "peak-RSS-MiB-with")
		b.ReportMetric(onPeak-offPeak, "console-peak-RSS-MiB")
		b.ReportMetric(onRSS-offRSS, "console-RSS-MiB")
	}
}
