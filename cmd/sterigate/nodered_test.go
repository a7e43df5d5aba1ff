package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// nodeRedPath finds the node-red launcher: under $STERIGATE_NODE_RED
// (scripts/test installs Node-RED and the dashboard nodes there with npm),
// else under scripts/test's default cache directory. Missing, the test is
// skipped locally and fails in CI, whose scripts/test installs it.
func nodeRedPath(t *testing.T) string {
	t.Helper()
	toolPath(t, "node is not installed: the Node-RED dashboard test needs Node.js (scripts/test installs Debian's nodejs and npm)", "node")
	var dirs []string
	if d := os.Getenv("STERIGATE_NODE_RED"); d != "" {
		dirs = append(dirs, d)
	}
	if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "sterigate", "node-red"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "node_modules", ".bin", "node-red")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	why := fmt.Sprintf("Node-RED is not installed in %v: run scripts/test, which installs node-red and @flowfuse/node-red-dashboard with npm and sets STERIGATE_NODE_RED", dirs)
	if os.Getenv("CI") != "" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// nodeRedFlow is deploy/node-red/flows.json made to point at the test's
// broker and site, as a user would in the editor.
func nodeRedFlow(t *testing.T, brokerPort int, topic string) ([]byte, []map[string]any) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/node-red/flows.json")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	if err := json.Unmarshal(b, &nodes); err != nil {
		t.Fatalf("deploy/node-red/flows.json: %v", err)
	}
	brokers, tabs := 0, 0
	for _, n := range nodes {
		switch n["type"] {
		case "mqtt-broker":
			if n["broker"] != "localhost" || n["port"] != "1883" {
				t.Errorf("the flow's broker is %v:%v; the importable default is localhost:1883", n["broker"], n["port"])
			}
			n["broker"], n["port"] = "127.0.0.1", fmt.Sprint(brokerPort)
			brokers++
		case "tab":
			env, _ := n["env"].([]any)
			for _, e := range env {
				if e := e.(map[string]any); e["name"] == "TOPIC" {
					e["value"] = topic
					tabs++
				}
			}
		}
	}
	if brokers != 1 || tabs != 1 {
		t.Fatalf("the flow has %d broker nodes and %d tabs with a TOPIC variable; want one of each", brokers, tabs)
	}
	out, err := json.Marshal(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return out, nodes
}

// TestNodeRedDashboard deploys deploy/node-red/flows.json in a real
// Node-RED with the FlowFuse dashboard, fed by a real Mosquitto, the
// simulator and the gateway: the flow deploys without errors, the page
// shows a tile for each simulated sterilizer and the finished cycles.
// With STERIGATE_UPDATE_SCREENSHOTS=1 it rewrites
// docs/images/node-red-dashboard.png.
func TestNodeRedDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: Node-RED, a simulator, Mosquitto, the gateway and Chromium")
	}
	nodeRed := nodeRedPath(t)
	browser := newBrowser(t)
	dir := t.TempDir()
	broker := startMosquitto(t, dir)

	userDir := filepath.Join(dir, "node-red")
	if err := os.MkdirAll(userDir, 0o755); err != nil {
		t.Fatal(err)
	}
	flow, nodes := nodeRedFlow(t, broker.port, "sterigate/dax/#")
	writeFile(t, filepath.Join(userDir, "flows.json"), string(flow))
	port := freePort(t)
	// Loopback only; no consent prompt or update check (they would reach
	// for the internet); reconnect to the broker quickly; report the
	// runtime state on /flows/state.
	settings := writeFile(t, filepath.Join(userDir, "settings.js"), fmt.Sprintf(`module.exports = {
    uiHost: "127.0.0.1",
    uiPort: %d,
    flowFile: "flows.json",
    credentialSecret: false,
    telemetry: {enabled: false},
    diagnostics: {enabled: false},
    runtimeState: {enabled: true},
    mqttReconnectTime: 500,
    logging: {console: {level: "info"}},
    editorTheme: {projects: {enabled: false}},
}
`, port))
	nr := startProc(t, "node-red", nodeRed, "--userDir", userDir, "--settings", settings)
	// Subscribed before the gateway publishes: cycle records are not
	// retained, so a dashboard sees only those published while it listens.
	nr.waitOutput(60*time.Second, "Connected to broker")
	admin := fmt.Sprintf("http://127.0.0.1:%d", port)
	checkNodeRedDeployed(t, admin, nodes, nr)

	_, simAddr, _ := startSim(t, dir, 2, 3, 300, 11, nil)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: dash-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 100ms, time_scale: 300}
  - {id: autoclave-2, driver: modbus-tcp, address: %q, unit: 2, profile: sim-autoclave, poll_interval: 100ms, time_scale: 300}
`, filepath.Join(dir, "data"), broker.addr(), simAddr, simAddr))
	records := subscribe(t, broker.addr(), "sterigate/dax/+/cycle")
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	gw.waitOutput(20*time.Second, "sterigate running")

	run(t, browser, 30*time.Second, "open the dashboard", chromedp.Navigate(admin+"/dashboard/sterigate"),
		chromedp.WaitVisible(`.sg-tile[data-device="autoclave-1"]`), chromedp.WaitVisible(`.sg-tile[data-device="autoclave-2"]`))
	var state string
	deadline := time.Now().Add(30 * time.Second)
	for state != "online" {
		mustRun(t, gw, nr)
		run(t, browser, 10*time.Second, "read a tile's state", chromedp.AttributeValue(`.sg-tile[data-device="autoclave-1"]`, "data-state", &state, nil))
		if time.Now().After(deadline) {
			t.Fatalf("the tile of autoclave-1 says %q, not online, 30 s after the gateway started", state)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	// A finished cycle the gateway saw from start to end (the first one
	// began before the gateway started, so its record is incomplete).
	var cycles []string
	var complete int
	deadline = time.Now().Add(60 * time.Second)
	for complete == 0 {
		mustRun(t, gw, nr)
		run(t, browser, 10*time.Second, "read the cycle list", chromedp.Evaluate(
			`Array.from(document.querySelectorAll('tr.sg-cycle')).map(r => r.dataset.recordId)`, &cycles),
			chromedp.Evaluate(`document.querySelectorAll('tr.sg-cycle:not(.sg-warn)').length`, &complete))
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard lists cycles %v, none complete, 60 s after the gateway started", cycles)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	listed := map[string]bool{}
	for _, id := range cycles {
		if !strings.HasPrefix(id, "dax:autoclave-1:") && !strings.HasPrefix(id, "dax:autoclave-2:") {
			t.Errorf("the cycle list shows record %q of no simulated device", id)
		}
		if listed[id] {
			t.Errorf("the cycle list shows record %s twice: %v", id, cycles)
		}
		listed[id] = true
	}
	// Every record that disagrees with its device is an alarm too.
	var disagreements, alarms int
	run(t, browser, 10*time.Second, "count the disagreements", chromedp.Evaluate(`document.querySelectorAll('tr.sg-cycle.sg-alert').length`, &disagreements),
		chromedp.Evaluate(`document.querySelectorAll('tr.sg-alarm.sg-alert[data-kind="verification_disagreement"]').length`, &alarms))
	if alarms < disagreements {
		t.Errorf("%d listed records disagree with their device, %d highlighted disagreement alarms", disagreements, alarms)
	}

	// A re-delivered record (at least once: same id, replay marker) is
	// not listed twice. The status published after it shows when the
	// flow has seen both.
	again := records.messages()[0]
	var rec struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(again.Payload, &rec); err != nil {
		t.Fatal(err)
	}
	publish(t, broker.addr(), again.Topic, append([]byte(`{"replay":true,`), again.Payload[1:]...), false)
	publish(t, broker.addr(), "sterigate/dax/autoclave-9/status", []byte(`{"device":"autoclave-9","gateway":"dash-gw","state":"unknown","at":"2026-12-02T00:00:00Z"}`), true)
	run(t, browser, 20*time.Second, "wait for the marker", chromedp.WaitVisible(`.sg-tile[data-device="autoclave-9"]`))
	var copies int
	run(t, browser, 10*time.Second, "count the re-delivered record", chromedp.Evaluate(
		fmt.Sprintf(`document.querySelectorAll('tr.sg-cycle[data-record-id=%q]').length`, rec.ID), &copies))
	if copies != 1 {
		t.Errorf("record %s is listed %d times after its re-delivery; want once", rec.ID, copies)
	}
	// Clearing a retained status (an empty message) removes its tile.
	publish(t, broker.addr(), "sterigate/dax/autoclave-9/status", nil, true)
	run(t, browser, 20*time.Second, "wait for the cleared tile to go", chromedp.WaitNotPresent(`.sg-tile[data-device="autoclave-9"]`))

	var tileText string
	run(t, browser, 10*time.Second, "read a tile", chromedp.Text(`.sg-tile[data-device="autoclave-1"]`, &tileText))
	if !strings.Contains(tileText, "°C") || !strings.Contains(tileText, "kPa") || strings.Contains(tileText, "— °C") {
		t.Errorf("the tile shows no live temperature and pressure:\n%s", tileText)
	}
	if os.Getenv("STERIGATE_UPDATE_SCREENSHOTS") != "" {
		run(t, browser, 10*time.Second, "size the window", chromedp.EmulateViewport(1366, 1400))
		screenshot(t, browser, "../../docs/images", "node-red-dashboard")
	}

	// The gateway dies: its Last Will turns every tile stale.
	gw.kill()
	deadline = time.Now().Add(30 * time.Second)
	for state != "stale" {
		mustRun(t, nr)
		run(t, browser, 10*time.Second, "read a tile's state", chromedp.AttributeValue(`.sg-tile[data-device="autoclave-2"]`, "data-state", &state, nil))
		if time.Now().After(deadline) {
			t.Fatalf("the tile of autoclave-2 says %q 30 s after the gateway was killed; want stale (its Last Will)", state)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	if out := nr.output(); strings.Contains(out, "[error]") {
		t.Errorf("Node-RED logged an error:\n%s", out)
	}
}

// publish sends one QoS 1 message as another MQTT client would.
func publish(t *testing.T, brokerAddr, topic string, payload []byte, retained bool) {
	t.Helper()
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID(fmt.Sprintf("publish-%d", time.Now().UnixNano())))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Publish(topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// checkNodeRedDeployed asks Node-RED's admin API whether the flow runs as
// imported: the runtime started, every node of the file is deployed, and
// every node type the file uses is installed without error.
func checkNodeRedDeployed(t *testing.T, admin string, want []map[string]any, nr *proc) {
	t.Helper()
	get := func(path, accept string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", admin+path, nil)
		req.Header.Set("Accept", accept)
		req.Header.Set("Node-RED-API-Version", "v2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
		}
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	var state struct {
		State string `json:"state"`
	}
	get("/flows/state", "application/json", &state)
	if state.State != "start" {
		t.Errorf("Node-RED's flows are %q, not started", state.State)
	}
	var deployed struct {
		Flows []map[string]any `json:"flows"`
	}
	get("/flows", "application/json", &deployed)
	ids := map[string]bool{}
	for _, n := range deployed.Flows {
		ids[n["id"].(string)] = true
	}
	types := map[string]bool{}
	for _, n := range want {
		if !ids[n["id"].(string)] {
			t.Errorf("node %v (%v) of the flow is not deployed", n["id"], n["type"])
		}
		if n["type"] != "tab" {
			types[n["type"].(string)] = true
		}
	}
	var sets []struct {
		ID      string   `json:"id"`
		Types   []string `json:"types"`
		Enabled bool     `json:"enabled"`
		Err     string   `json:"err"`
	}
	get("/nodes", "application/json", &sets)
	for _, s := range sets {
		for _, typ := range s.Types {
			if !types[typ] {
				continue
			}
			delete(types, typ)
			if !s.Enabled || s.Err != "" {
				t.Errorf("node type %s (%s): enabled %v, error %q", typ, s.ID, s.Enabled, s.Err)
			}
		}
	}
	for typ := range types {
		t.Errorf("node type %s used by the flow is not installed", typ)
	}
	out := nr.output()
	for _, bad := range []string{"[error]", "Waiting for missing types", "[warn] [function"} {
		if strings.Contains(out, bad) {
			t.Errorf("Node-RED's log says %q:\n%s", bad, out)
		}
	}
}
