package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func runCLI(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = dispatch(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.yaml"), `
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "127.0.0.1:1502", profile: sim-autoclave}
  - {id: p, driver: printer, serial: {port: /dev/ttyS0}, template: dac-de}
`)
	out, _, err := runCLI("check", "--config", good)
	if err != nil || !strings.Contains(out, "ok: gateway gw at dax, 2 device(s)") {
		t.Fatalf("check good: %q, %v", out, err)
	}

	// A profile file with a mistake: check names the profile file's line.
	writeFile(t, filepath.Join(dir, "vendor.yaml"), "name: vendor\nfields:\n  t: {address: 0, type: int17}\n")
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), `
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
devices:
  - {id: a, driver: modbus-tcp, address: "127.0.0.1:1502", profile: vendor.yaml}
  - {id: b, driver: modbus-tcp, address: "127.0.0.1:1503", profile: no-such-profile}
`)
	_, _, err = runCLI("check", "--config", bad)
	if err == nil {
		t.Fatal("check accepted a broken profile")
	}
	for _, want := range []string{"devices[0] (a):", "vendor.yaml:3", "int17", "devices[1] (b):", "no-such-profile"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check error lacks %q:\n%v", want, err)
		}
	}
	// What only the MQTT client would notice is reported by check too.
	tlsOnTCP := writeFile(t, filepath.Join(dir, "tls.yaml"), `
gateway: {id: gw, site: dax}
mqtt: {brokers: ["tcp://127.0.0.1:1883"], password_file: /nonexistent/pw, tls: {ca_file: /nonexistent/ca.pem}}
`)
	if _, _, err := runCLI("check", "--config", tlsOnTCP); err == nil || !strings.Contains(err.Error(), "password_file") && !strings.Contains(err.Error(), "TLS") {
		t.Errorf("check accepted TLS files on tcp:// and a missing password file: %v", err)
	}
	if _, _, err := runCLI("check"); exitCode(err) != 2 {
		t.Errorf("check without --config: exit %d (%v), want 2", exitCode(err), err)
	}
}

func TestProfilesAndUsage(t *testing.T) {
	out, _, err := runCLI("profiles")
	if err != nil || !strings.Contains(out, "sim-autoclave") || !strings.Contains(out, "dac-de") {
		t.Fatalf("profiles: %q, %v", out, err)
	}
	out, _, err = runCLI("profiles", "show", "sim-autoclave")
	if err != nil || !strings.Contains(out, "name: sim-autoclave") {
		t.Fatalf("profiles show: %q, %v", out, err)
	}
	if _, _, err := runCLI("profiles", "show", "nope"); exitCode(err) != 2 {
		t.Errorf("unknown profile: exit %d (%v)", exitCode(err), err)
	}
	var u usageError
	if _, _, err := runCLI("frobnicate"); !errors.As(err, &u) {
		t.Errorf("unknown command: %v", err)
	}
	if _, _, err := runCLI("run", "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("run with a missing config: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The README's first command: the demo must show delivered cycle records
// with nothing installed, and stop cleanly.
func TestDemoDeliversRecords(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cmdDemo(ctx, []string{"--speed", "1200", "--devices", "2", "--data-dir", t.TempDir()}, &out, &errOut)
	}()
	waitFor(t, 60*time.Second, "two delivered cycle records", func() bool {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s%s", err, out.String(), errOut.String())
		default:
		}
		return strings.Count(out.String(), "] delivered demo:autoclave-") >= 2
	})
	for _, want := range []string{"MQTT broker (embedded): tcp://127.0.0.1:", "mosquitto_sub -h 127.0.0.1 -p ", "Status page: http://127.0.0.1:", "134-porous, passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop within 20 s of cancellation")
	}
	if !strings.HasSuffix(out.String(), "demo stopped\n") {
		t.Errorf("demo did not say it stopped:\n%s", out.String())
	}
}
