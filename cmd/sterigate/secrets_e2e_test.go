package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
)

// TestEndToEndPasswordNeverShown runs a gateway against the shipped broker
// configuration (TLS, passwords, ACL) with its password in a file, logging
// at debug, and looks for the password in every log line, every metric and
// every console page. A broker URL with the password in it is refused
// without showing it (it was logged at INFO and WARN). The journal is
// readable by its owner only.
func TestEndToEndPasswordNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator, Mosquitto and the gateway as processes")
	}
	const password = "pw-9f3c1e77-never-shown"
	dir := t.TempDir()
	pk := brokertest.NewPKI(t)
	broker := brokertest.StartShipped(t, brokertest.Setup{PKI: pk, Users: map[string]string{"dax": password}})
	_, simAddr, truthPath := startSim(t, dir, 1, 2, 600, 3, nil)
	pwFile := writeFile(t, filepath.Join(dir, "mqtt-password"), password+"\n")
	dataDir := filepath.Join(dir, "data")
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	devices := fmt.Sprintf(`devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 500ms}
`, simAddr)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: secret-gw, site: dax, data_dir: %q, console: %q}
mqtt: {brokers: [%q], username: dax, password_file: %q, tls: {ca_file: %q}, keepalive: 2s}
`, dataDir, consoleAddr, broker.URL("ssl"), pwFile, pk.CAFile)+devices)
	gw := startProc(t, "gateway", binary, "run", "--config", cfg, "--log-level", "debug")
	waitFor(t, 90*time.Second, "a cycle record confirmed through the broker", func() bool {
		mustRun(t, gw)
		_, body := httpGet("http://" + consoleAddr + "/metrics")
		return strings.Contains(body, "sterigate_broker_connected 1") && strings.Contains(body, `sterigate_cycles_total{device="autoclave-1"`) &&
			strings.Contains(body, "sterigate_mqtt_unconfirmed 0")
	})
	if n := len(readTruth(t, truthPath)); n == 0 {
		t.Fatal("no cycle finished")
	}
	var seen []string
	for _, page := range []string{"/", "/metrics", "/readyz", "/healthz"} {
		code, body := httpGet("http://" + consoleAddr + page)
		if code != http.StatusOK && page != "/readyz" {
			t.Errorf("%s answered %d", page, code)
		}
		seen = append(seen, page+":\n"+body)
	}
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	seen = append(seen, "log:\n"+gw.output())
	check, _ := exec.Command(binary, "check", "--config", cfg).CombinedOutput()
	seen = append(seen, "check:\n"+string(check))

	// The password in the URL instead: refused, and not repeated.
	inURL := writeFile(t, filepath.Join(dir, "in-url.yaml"), fmt.Sprintf(`
gateway: {id: secret-gw, site: dax, data_dir: %q}
mqtt: {brokers: [%q], tls: {ca_file: %q}}
`, dataDir, strings.Replace(broker.URL("ssl"), "ssl://", "ssl://dax:"+password+"@", 1), pk.CAFile)+devices)
	for _, cmd := range [][]string{{"run", "--config", inURL}, {"check", "--config", inURL}} {
		// A gateway that accepted the URL would run: it is stopped.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, binary, cmd...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "mqtt.password_file") {
			t.Errorf("%s with the password in the broker URL: %v\n%s", cmd[0], err, out)
		}
		seen = append(seen, strings.Join(cmd, " ")+":\n"+string(out))
	}
	for _, s := range seen {
		if strings.Contains(s, password) {
			t.Errorf("the password is shown in %s", s)
		}
	}

	for path, want := range map[string]os.FileMode{dataDir: 0o700, filepath.Join(dataDir, "journal.db"): 0o600, filepath.Join(dataDir, "sterigate.lock"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}
