package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two gateways on one journal fork its hash chain and fight over the MQTT
// client id. The second 'run' on a data directory is refused, exits 1 and
// names the first one's pid; the first one runs on.
func TestSecondRunOnTheSameDataDirIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway as processes")
	}
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: lock-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:%d"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: "127.0.0.1:%d", profile: sim-autoclave}
`, filepath.Join(dir, "data"), freePort(t), freePort(t)))
	first := startProc(t, "first gateway", binary, "run", "--config", cfg)
	first.waitOutput(20*time.Second, "sterigate running")

	second := exec.Command(binary, "run", "--config", cfg)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = second.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		second.Process.Kill()
		<-done
		t.Fatalf("the second gateway on the same data directory is still running:\n%s", out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("second run: %v, want exit status 1", err)
	}
	want := fmt.Sprintf("in use by another sterigate (pid %d)", first.cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Errorf("second run said:\n%s\nwant it to contain %q", out, want)
	}
	mustRun(t, first)
	if err := first.stop(20 * time.Second); err != nil {
		t.Fatalf("first gateway: %v", err)
	}
	// Once the first one is gone, the directory is free again.
	again := startProc(t, "gateway after the first", binary, "run", "--config", cfg)
	again.waitOutput(20*time.Second, "sterigate running")
}
