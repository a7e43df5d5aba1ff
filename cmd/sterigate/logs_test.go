package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// duplicateKeys returns the keys that appear twice in one JSON object of
// line (at any depth).
func duplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var dups []string
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	if err := walk(); err != nil && err != io.EOF {
		return nil, err
	}
	return dups, nil
}

func TestDuplicateKeysFindsThem(t *testing.T) {
	dups, err := duplicateKeys([]byte(`{"a":1,"g":{"device":"x","device":"y"},"a":[{"b":1,"b":2}]}`))
	if err != nil || strings.Join(dups, ",") != "device,a,b" {
		t.Fatalf("duplicateKeys = %v, %v", dups, err)
	}
}

// Every JSON log line of a running gateway is one object without a key
// given twice (a log collector keeps one of them at random), and the log
// says what a user needs: one line per journaled cycle record with its id
// and result, and at shutdown how many entries are still pending.
func TestRunJSONLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator and the gateway as processes")
	}
	dir := t.TempDir()
	_, simAddr, truth := startSim(t, dir, 2, 5, 600, 9, nil)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: log-gw, site: dax, data_dir: %q, console: "127.0.0.1:%d"}
mqtt: {brokers: ["tcp://127.0.0.1:%d"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms}
  - {id: autoclave-2, driver: modbus-tcp, address: %q, unit: 2, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms}
  - {id: autoclave-9, driver: modbus-tcp, address: %q, unit: 9, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms}
`, filepath.Join(dir, "data"), freePort(t), freePort(t), simAddr, simAddr, simAddr))
	gw := startProc(t, "gateway", binary, "run", "--config", cfg, "--log-format", "json")
	gw.waitOutput(60*time.Second, `"msg":"cycle record journaled"`)
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Cycles run while the gateway is away: the restarted gateway says so
	// about each device (the cycle assembler's own log lines).
	n := len(readTruth(t, truth))
	waitFor(t, 60*time.Second, "two more cycles per device while the gateway is stopped", func() bool { return len(readTruth(t, truth)) >= n+4 })
	first := gw.output()
	gw = startProc(t, "gateway", binary, "run", "--config", cfg, "--log-format", "json")
	gw.waitOutput(60*time.Second, `without a record`)
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	out := first + gw.output()
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		lines++
		dups, err := duplicateKeys([]byte(line))
		if err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		if len(dups) > 0 {
			t.Errorf("log line has %v twice: %s", dups, line)
		}
	}
	for _, want := range []string{`"msg":"cycle record journaled"`, `"id":"dax:autoclave-`, `"result":"passed"`,
		`"msg":"modbus poll failed"`, `"msg":"mqtt connection ended; reconnecting"`, `"msg":"sterigate stopped","pending":`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	t.Logf("%d log lines checked", lines)
}
