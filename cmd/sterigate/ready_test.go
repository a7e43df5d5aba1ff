package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sterigate/sterigate/gateway/console"
)

// httpGet fetches url; code 0 when the console does not answer.
func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /readyz says 200 while the gateway records and delivers, and 503 naming
// the broker once the broker has been unreachable longer than
// gateway.readiness.broker_unreachable — never sooner. /metrics of the
// running gateway has a HELP line for every metric, the drivers' too.
// (/healthz used to answer "ok" with the broker and every device down.)
func TestReadyzFailsWhileTheBrokerIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator, Mosquitto and the gateway as processes")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	_, simAddr, _ := startSim(t, dir, 1, 1, 60, 5, nil)
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const limit = 2 * time.Second
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway:
  id: ready-gw
  site: dax
  data_dir: %q
  console: %q
  readiness: {broker_unreachable: %s, device_offline: 1m}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 100ms, timeout: 500ms}
`, filepath.Join(dir, "data"), consoleAddr, limit, broker.addr(), simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	readyz := func() (int, console.Readiness) {
		code, body := httpGet("http://" + consoleAddr + "/readyz")
		var r console.Readiness
		if code != 0 {
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("/readyz answered %d with a body that is not JSON: %v\n%s", code, err, body)
			}
		}
		return code, r
	}
	waitFor(t, 30*time.Second, "/readyz 200", func() bool {
		mustRun(t, gw)
		code, _ := readyz()
		return code == http.StatusOK
	})

	code, body := httpGet("http://" + consoleAddr + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the text exposition format: %v", err)
	}
	for name, f := range fams {
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("metric %s has no HELP", name)
		}
	}
	for _, want := range []string{"sterigate_build_info", "sterigate_device_online", "sterigate_journal_oldest_pending_age_seconds", "sterigate_ready"} {
		if _, ok := fams[want]; !ok {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// And the driver's own counters (whatever the driver names them).
	polls := false
	for name := range fams {
		polls = polls || strings.HasSuffix(name, "polls_total")
	}
	if !polls {
		t.Error("/metrics has no polls counter of the Modbus driver")
	}

	stopped := time.Now()
	if err := broker.proc.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	var failedAt time.Time
	var reasons []console.Reason
	waitFor(t, 30*time.Second, "/readyz 503", func() bool {
		mustRun(t, gw)
		code, r := readyz()
		if code == http.StatusServiceUnavailable {
			failedAt, reasons = time.Now(), r.Reasons
			return true
		}
		return false
	})
	if d := failedAt.Sub(stopped); d < limit {
		t.Errorf("/readyz failed %s after the broker stopped, before the configured %s", d, limit)
	}
	if len(reasons) != 1 || reasons[0].Check != console.CheckBroker {
		t.Errorf("reasons %+v, want the broker alone", reasons)
	}
	if code, _ := httpGet("http://" + consoleAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d with the broker down; liveness does not depend on the broker", code)
	}

	broker.start()
	waitFor(t, 30*time.Second, "/readyz 200 again", func() bool {
		mustRun(t, gw)
		code, _ := readyz()
		return code == http.StatusOK
	})
}
