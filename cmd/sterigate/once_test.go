package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// 'run --once' polls every device once and prints what it decoded and what
// would be published, like Telegraf's --test: it creates no journal and
// never connects to the broker. A device it cannot read fails the command.
func TestRunOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator as a process")
	}
	dir := t.TempDir()
	_, simAddr, _ := startSim(t, dir, 1, 1, 60, 4, nil)
	broker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	var brokerConns atomic.Int32
	go func() {
		for {
			c, err := broker.Accept()
			if err != nil {
				return
			}
			brokerConns.Add(1)
			c.Close()
		}
	}()
	dataDir := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: once-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave}
  - {id: printer-1, driver: printer, serial: {port: /dev/ttyS7}, template: dac-de, criteria: {"Prog 3": {kind: prion}}}
`, dataDir, broker.Addr(), simAddr))
	out, errOut, err := runCLI("run", "--once", "--config", cfg)
	if err != nil {
		t.Fatalf("run --once: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{
		"== autoclave-1 (modbus-tcp " + simAddr + " unit 1)",
		"-- decoded with profile sim-autoclave",
		"chamber_temp ",
		"-- would publish",
		`sterigate/dax/autoclave-1/event {"schema":"sterigate.event.v1","id":"","gateway":"once-gw","site":"dax","device":"autoclave-1"`,
		`"kind":"online"`,
		`sterigate/dax/autoclave-1/telemetry {"schema":"sterigate.telemetry.v1"`,
		`sterigate/dax/autoclave-1/status {"device":"autoclave-1","gateway":"once-gw","state":"online"`,
		"== printer-1 (printer /dev/ttyS7)\nA printer cannot be polled once",
		// What each program is judged by.
		"-- criteria of sterigate's own check (docs/verification.md)\n134-porous: en285-porous v1 (profile): 134 to 137 °C, hold ≥ 180 s",
		"leak-test: en285-leak-test v1 (default): leak rate ≤ 0.13 kPa/min",
		"Prog 3: en285-prion v1 (site): 134 to 137 °C, hold ≥ 1080 s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("run --once created the data directory (%v)", err)
	}
	if n := brokerConns.Load(); n != 0 {
		t.Errorf("run --once connected to the broker %d time(s)", n)
	}

	// A device that does not answer: said, and the command fails.
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), fmt.Sprintf(`
gateway: {id: once-gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://%s"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave}
  - {id: autoclave-7, driver: modbus-tcp, address: "127.0.0.1:%d", unit: 1, profile: sim-autoclave, timeout: 200ms}
`, dataDir, broker.Addr(), simAddr, freePort(t)))
	out, _, err = runCLI("run", "--once", "--config", bad)
	if exitCode(err) != 1 || !strings.Contains(out, "== autoclave-7") || !strings.Contains(out, "FAILED: ") || !strings.Contains(out, "-- decoded with profile") {
		t.Errorf("run --once with an unreachable device: exit %d (%v)\n%s", exitCode(err), err, out)
	}
}
