package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type simConsole struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *simConsole) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *simConsole) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func TestSimCommandRunsCyclesAndWritesTruth(t *testing.T) {
	dir := t.TempDir()
	truth := filepath.Join(dir, "truth.jsonl")
	scen := filepath.Join(dir, "s.yaml")
	os.WriteFile(scen, []byte("pause: 20s\ndevices:\n  - device: default\n    cycles: [{program: bowie-dick}]\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &simConsole{}, &simConsole{}
	done := make(chan error, 1)
	go func() {
		done <- cmdSim(ctx, []string{"--modbus-tcp", "127.0.0.1:0", "--devices", "2", "--speed", "3000", "--seed", "4",
			"--scenario", scen, "--truth", truth}, stdout, stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	finished := regexp.MustCompile(`(?m)^cycle finished device=2 counter=1 program=bowie-dick result=passed$`)
	for !finished.MatchString(stdout.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no finished cycle on device 2; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if !regexp.MustCompile(`(?m)^modbus-tcp listening on 127\.0\.0\.1:\d+ units 1-2$`).MatchString(stdout.String()) {
		t.Errorf("no listening line in %q", stdout.String())
	}
	data, err := os.ReadFile(truth)
	if err != nil || !strings.Contains(string(data), `"device":2,"unit":2,"counter":1,"program":"bowie-dick"`) {
		t.Errorf("truth file %q (%v)", data, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("sim returned %v after cancel, want nil", err)
	}
}

func TestSimCommandRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("devices:\n  - device: 1\n    colour: red\n"), 0o600)
	cases := []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{}, "at least one of", true},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--devices", "0"}, "--devices 0", true},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--speed", "-1"}, "--speed -1", true},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--printer-eol", "lfcr"}, `--printer-eol "lfcr"`, true},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--scenario", bad}, bad + `:3: devices[0].colour: unknown key (allowed here: device, cycles, repeat, pause, counter_start, comm)`, false},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--scenario", filepath.Join(dir, "none.yaml")}, "none.yaml", false},
		{[]string{"--modbus-tcp", "localhost"}, `"localhost"`, false},
		{[]string{"--modbus-tcp", "127.0.0.1:0", "--printer", "/tmp/x", "--printer-style", "fr"}, `"fr"`, false},
	}
	for _, c := range cases {
		err := cmdSim(context.Background(), c.args, &simConsole{}, &simConsole{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
			continue
		}
		var u usageError
		if errors.As(err, &u) != c.usage {
			t.Errorf("%v: usage error = %v, want %v", c.args, !c.usage, c.usage)
		}
	}
}
