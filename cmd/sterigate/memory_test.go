package main

import (
	"bufio"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The gateway's memory stays flat: the soak of docs/performance.md (20
// devices for an hour) compressed into a few hundred cycles. The live heap
// (after a forced collection, through 'run --pprof') is compared between
// two points counted in cycles journaled, not in time, so a slow machine
// only makes the test longer.
func TestHeapFlatAfterWarmUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs 20 simulated devices through about 200 cycles")
	}
	const (
		devices   = 20
		warmUp    = 3 * devices  // cycles journaled before the first measurement
		measureAt = 10 * devices // and before the second
		tolerance = 1 << 20      // bytes of live heap the second may exceed the first by
	)
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	_, addrs := startSimPerDevice(t, devices, 600)
	console, pprofAddr := freePort(t), freePort(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "gateway: {id: gw-1, site: dax, data_dir: %q, console: \"127.0.0.1:%d\"}\nmqtt: {brokers: [\"tcp://%s\"]}\ndevices:\n",
		filepath.Join(dir, "data"), console, broker.addr())
	for i, addr := range addrs {
		fmt.Fprintf(&cfg, "  - {id: ac-%d, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 100ms, time_scale: 600}\n", i+1, addr)
	}
	config := writeFile(t, filepath.Join(dir, "sterigate.yaml"), cfg.String())
	gw := startProc(t, "gateway", binary, "run", "--config", config, "--pprof", fmt.Sprintf("127.0.0.1:%d", pprofAddr))
	gw.waitOutput(30*time.Second, "sterigate running")

	cycles := func() int {
		body := mustGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", console))
		n := 0.0
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && strings.HasPrefix(f[0], "sterigate_cycles_total{") {
				v, _ := strconv.ParseFloat(f[1], 64)
				n += v
			}
		}
		return int(n)
	}
	liveHeap := func() int64 {
		// gc=1 collects first: what is left is what the gateway holds.
		body := mustGet(t, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", pprofAddr))
		m := regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no HeapAlloc in the heap profile:\n%.500s", body)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	waitFor(t, 5*time.Minute, fmt.Sprintf("%d cycles journaled (warm-up)", warmUp), func() bool { mustRun(t, gw); return cycles() >= warmUp })
	first := liveHeap()
	waitFor(t, 10*time.Minute, fmt.Sprintf("%d cycles journaled", measureAt), func() bool { mustRun(t, gw); return cycles() >= measureAt })
	second := liveHeap()
	t.Logf("live heap after %d cycles: %d KiB; after %d: %d KiB", warmUp, first>>10, measureAt, second>>10)
	if second-first > tolerance {
		t.Fatalf("the live heap grew by %d KiB between %d and %d cycles journaled (tolerance %d KiB)", (second-first)>>10, warmUp, measureAt, tolerance>>10)
	}
}

// mustGet is httpGet that fails the test unless the answer is 200.
func mustGet(t testing.TB, url string) string {
	t.Helper()
	code, body := httpGet(url)
	if code != 200 {
		t.Fatalf("GET %s: %d %.200s", url, code, body)
	}
	return body
}
