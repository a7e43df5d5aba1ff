package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// mountSmallFilesystem mounts a tmpfs of size bytes at dir, for the test's
// life. It skips the test when it cannot (not root, no mount permission).
func mountSmallFilesystem(t *testing.T, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a small tmpfs and needs root (CI runs as root)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs at %s (%v: %s): the disk-full test needs it", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// fillDisk writes a file in dir until the file system refuses.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// TestEndToEndDiskFullOnASmallFilesystem fills the file system of the
// gateway's data directory while a sterilizer runs cycles and the broker
// is up. The records of the cycles that end meanwhile must be written
// (into the space reserve) and published during the full period; the
// pending metric counts what memory holds; /readyz fails and the gateway
// status carries journal_disk_full; a SIGKILL inside the full period
// degrades no record; SIGTERM with entries held in memory exits non-zero;
// when space returns the alarm clears and nothing is missing. (Before: no
// record was published while the disk was full, pending read 0, a SIGKILL
// degraded records to "unknown" with no samples, SIGTERM exited 0.)
func TestEndToEndDiskFullOnASmallFilesystem(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test runs whole simulated cycles")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	mountSmallFilesystem(t, dataDir, 48<<20)
	broker := startMosquitto(t, dir)
	sub := subscribe(t, broker.addr(), "sterigate/#")
	const cycles = 8
	sim, simAddr, truthPath := startSim(t, dir, 1, cycles, 300, 21, nil)
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: full-gw, site: dax, data_dir: %q, console: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 500ms, time_scale: 300}
`, dataDir, consoleAddr, broker.addr(), simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	records := func() map[string]protocol.CycleRecord { return cycleRecords(sub) }
	waitFor(t, 60*time.Second, "a first cycle record", func() bool { mustRun(t, gw, sim); return len(records()) >= 1 })

	filler := fillDisk(t, dataDir)
	waitFor(t, 30*time.Second, "/readyz to fail on the full disk", func() bool {
		mustRun(t, gw)
		code, body := httpGet("http://" + consoleAddr + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "disk refuses journal writes")
	})
	waitFor(t, 30*time.Second, "journal_disk_full in the gateway status", func() bool {
		return slices.Contains(gatewayAlarms(t, sub, "dax", "full-gw"), "journal_disk_full")
	})
	// A cycle ends while the disk is full: its record is written and
	// published all the same.
	n0 := len(records())
	waitFor(t, 60*time.Second, "a record published while the disk is full", func() bool { mustRun(t, gw, sim); return len(records()) > n0 })
	_, metrics := httpGet("http://" + consoleAddr + "/metrics")
	if !strings.Contains(metrics, "sterigate_journal_refuses_writes 1") || strings.Contains(metrics, "sterigate_journal_held_in_memory 0\n") {
		t.Errorf("/metrics while the disk is full, telemetry held in memory:\n%s", grepLines(metrics, "sterigate_journal"))
	}

	// Stopped with telemetry held in memory: the exit status says it was
	// lost.
	err := gw.stop(20 * time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(gw.output(), "entries held in memory") {
		t.Errorf("SIGTERM with entries held in memory: %v, want a non-zero exit naming them", err)
	}

	// Started on the full disk, then killed during it, and started again.
	for _, what := range []string{"after a start on the full disk", "after a SIGKILL during the full period"} {
		gw = startProc(t, "gateway", binary, "run", "--config", cfg)
		gw.waitOutput(20*time.Second, "sterigate running")
		n := len(records())
		waitFor(t, 60*time.Second, "a record published "+what, func() bool { mustRun(t, gw, sim); return len(records()) > n })
		if what == "after a start on the full disk" {
			gw.kill()
		}
	}

	// Space returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "/readyz 200 once space returned", func() bool {
		mustRun(t, gw)
		code, _ := httpGet("http://" + consoleAddr + "/readyz")
		return code == http.StatusOK
	})
	waitFor(t, 120*time.Second, "every cycle's record", func() bool {
		mustRun(t, gw, sim)
		truth := readTruth(t, truthPath)
		got := records()
		for _, c := range truth {
			if _, ok := got[protocol.CycleID("dax", "autoclave-1", c.Counter)]; !ok {
				return false
			}
		}
		return len(truth) == cycles
	})
	got := records()
	for _, c := range readTruth(t, truthPath) {
		r := got[protocol.CycleID("dax", "autoclave-1", c.Counter)]
		if string(r.Result) != c.Result || len(r.Samples) == 0 {
			t.Errorf("cycle %d degraded: result %q (the device said %q), %d samples", c.Counter, r.Result, c.Result, len(r.Samples))
		}
	}
	if err := gw.stop(20 * time.Second); err != nil {
		t.Errorf("gateway did not stop cleanly once space returned: %v", err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
