package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// A gateway that stops cleanly says that nobody watches its devices any
// more: every device's retained status becomes "unknown" before the
// gateway's own "offline". (It used to leave the devices "online" with
// their last phase.)
func TestStatusUnknownThenOfflineOnCleanStop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator, Mosquitto and the gateway as processes")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	sub := subscribe(t, broker.addr(), "sterigate/#")
	_, simAddr, _ := startSim(t, dir, 2, 1, 60, 3, nil)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: status-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 100ms, timeout: 500ms}
  - {id: autoclave-2, driver: modbus-tcp, address: %q, unit: 2, profile: sim-autoclave, poll_interval: 100ms, timeout: 500ms}
`, filepath.Join(dir, "data"), broker.addr(), simAddr, simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)

	const gatewayTopic = "sterigate/dax/gateway/status-gw/status"
	lastState := func(msgs []message, topic string) (string, int) {
		state, at := "", -1
		for i, m := range msgs {
			if m.Topic != topic {
				continue
			}
			var st struct {
				State string `json:"state"`
			}
			if err := json.Unmarshal(m.Payload, &st); err != nil {
				t.Fatalf("status on %s is not JSON: %s", topic, m.Payload)
			}
			state, at = st.State, i
		}
		return state, at
	}
	devices := []string{"sterigate/dax/autoclave-1/status", "sterigate/dax/autoclave-2/status"}
	waitFor(t, 30*time.Second, "both devices online", func() bool {
		mustRun(t, gw)
		msgs := sub.messages()
		for _, d := range devices {
			if s, _ := lastState(msgs, d); s != protocol.DeviceOnline {
				return false
			}
		}
		return true
	})
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatalf("gateway did not stop cleanly: %v", err)
	}
	waitFor(t, 10*time.Second, "the gateway's offline status", func() bool {
		s, _ := lastState(sub.messages(), gatewayTopic)
		return s == protocol.GatewayOffline
	})
	msgs := sub.messages()
	_, offlineAt := lastState(msgs, gatewayTopic)
	for _, d := range devices {
		s, at := lastState(msgs, d)
		if s != protocol.DeviceUnknown || at > offlineAt {
			t.Errorf("%s: last status %q (message %d), gateway offline at message %d; want unknown before offline", d, s, at, offlineAt)
		}
	}
	if t.Failed() {
		for i, m := range msgs {
			t.Logf("message %d on %s: %s", i, m.Topic, m.Payload)
		}
	}
	if !strings.Contains(gw.output(), "shutting down") {
		t.Errorf("gateway log lacks the shutdown line:\n%s", gw.output())
	}
}
