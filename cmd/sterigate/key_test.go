package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/keystore"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// A journal produced, the key rotated while the gateway is stopped, the
// gateway run again: every entry of both keys verifies from the first
// key alone, in the journal and in what a subscriber received. And the
// private key never shows in a log line, a metric, the console, an MQTT
// message or any command's output.
func TestSigningKeyAcrossRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulator, Mosquitto and the gateway as processes")
	}
	dir := t.TempDir()
	broker := startMosquitto(t, dir)
	sub := subscribe(t, broker.addr(), "#")
	_, simAddr, truth := startSim(t, dir, 1, 6, 600, 11, nil)
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dataDir := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: key-gw, site: dax, data_dir: %q, console: %q}
mqtt: {brokers: ["tcp://%s"], keepalive: 2s}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms}
`, dataDir, consoleAddr, broker.addr(), simAddr))

	var seen strings.Builder // everything the private key must never be in
	console := func() {
		for _, path := range []string{"/", "/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + consoleAddr + path)
			if err != nil {
				t.Fatalf("console %s: %v", path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen.Write(b)
		}
	}
	command := func(args ...string) string {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sterigate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		seen.Write(out)
		return string(out)
	}
	cyclesJournaled := func(p *proc) int { return strings.Count(p.output(), "cycle record journaled") }

	gw := startProc(t, "gateway", binary, "run", "--config", cfg, "--log-level", "debug")
	gw.waitOutput(60*time.Second, "cycle record journaled")
	console()
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	seen.WriteString(gw.output())
	oldPEM, err := os.ReadFile(filepath.Join(dataDir, keystore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	oldKey := writeFile(t, filepath.Join(dir, "old-key.json"), command("key", "show", "--config", cfg, "--json"))
	command("key", "show", "--config", cfg)
	rotated := command("key", "rotate", "--config", cfg)
	if !strings.Contains(rotated, "replaced by key") {
		t.Fatalf("key rotate said:\n%s", rotated)
	}
	if shown := command("key", "show", "--data-dir", dataDir); strings.Count(shown, "key ") < 2 || !strings.Contains(shown, "current") {
		t.Fatalf("key show after the rotation:\n%s", shown)
	}

	n := len(readTruth(t, truth))
	gw = startProc(t, "gateway", binary, "run", "--config", cfg, "--log-level", "debug")
	waitFor(t, 60*time.Second, "a cycle record signed by the new key", func() bool {
		mustRun(t, gw)
		return cyclesJournaled(gw) >= 1 && len(readTruth(t, truth)) > n
	})
	console()
	if err := gw.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	seen.WriteString(gw.output())

	verify := func(args ...string) string {
		var out, errOut bytes.Buffer
		err := dispatch(context.Background(), append([]string{"verify"}, args...), &out, &errOut)
		if err != nil {
			t.Fatalf("verify %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		seen.WriteString(out.String())
		return out.String()
	}
	rep := verify("--journal", filepath.Join(dataDir, "journal.db"), "--key", oldKey)
	if !strings.Contains(rep, "key_rotation") || !strings.Contains(rep, "autoclave-1: ok") {
		t.Errorf("the journal, from the old key alone:\n%s", rep)
	}
	// What the subscriber received, as mosquitto_sub -v prints it.
	waitFor(t, 10*time.Second, "the gateway's offline status", func() bool {
		msgs := sub.messages()
		return len(msgs) > 0 && strings.Contains(string(msgs[len(msgs)-1].Payload), `"offline"`)
	})
	var capture strings.Builder
	for _, m := range sub.messages() {
		fmt.Fprintf(&capture, "%s %s\n", m.Topic, m.Payload)
		seen.Write(m.Payload)
	}
	capturePath := writeFile(t, filepath.Join(dir, "capture.txt"), capture.String())
	rep = verify("--capture", capturePath, "--key", oldKey)
	if !strings.Contains(rep, "key_rotation") || strings.Contains(rep, "FAILED") {
		t.Errorf("the capture, from the old key alone:\n%s", rep)
	}

	// The private key, in every form it could take, is nowhere.
	priv, err := evidence.ParsePrivatePEM(oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	newPEM, err := os.ReadFile(filepath.Join(dataDir, keystore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	newPriv, err := evidence.ParsePrivatePEM(newPEM)
	if err != nil {
		t.Fatal(err)
	}
	var forms []string
	for _, p := range []ed25519.PrivateKey{priv, newPriv} {
		seed := p.Seed()
		forms = append(forms, string(seed), hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed),
			base64.RawURLEncoding.EncodeToString(seed), base64.StdEncoding.EncodeToString(p), hex.EncodeToString(p))
	}
	for _, pemFile := range [][]byte{oldPEM, newPEM} {
		for _, line := range strings.Split(string(pemFile), "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				forms = append(forms, line)
			}
		}
	}
	all := seen.String()
	if !strings.Contains(all, "sterigate/dax/gateway/key-gw/key") && !strings.Contains(capture.String(), "/gateway/key-gw/key ") {
		t.Errorf("no key message was published")
	}
	for i, f := range forms {
		if strings.Contains(all, f) {
			t.Errorf("private key form %d appears in a log line, the console, a command's output or an MQTT message", i)
		}
	}
	if len(all) < 10000 {
		t.Errorf("only %d bytes of output were searched", len(all))
	}
}

// A key file that group or others may read stops 'run' before it
// creates anything, naming the file and the chmod that fixes it.
func TestRunRefusesAKeyOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "keys", "gateway.key")
	os.Mkdir(filepath.Dir(key), 0o700)
	if _, err := keystore.Create(key, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: gw, site: dax, data_dir: %q, signing_key: %q}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: "127.0.0.1:1", profile: sim-autoclave}
`, filepath.Join(dir, "data"), key))
	_, stderr, err := runCLI("run", "--config", cfg)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("run: %v", err)
	}
	if want := fmt.Sprintf("gateway.signing_key: signing key %s is readable or writable by group or others (mode 0644): run chmod 600 %s", key, key); !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("run created the data directory before refusing the key")
	}
}

// A lost key: run refuses to make a new one behind the journal's back;
// rotate says how to go on, and with --old-key-lost the new key signs its
// own rotation, which the old key alone does not accept.
func TestKeyRotateWhenTheOldKeyIsLost(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	os.Mkdir(dataDir, 0o750)
	keyPath := filepath.Join(dataDir, keystore.FileName)
	old, err := keystore.Create(keyPath, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(filepath.Join(dataDir, "journal.db"), journal.Options{Gateway: "gw", Site: "dax", Signer: old})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Event(context.Background(), protocol.Event{Device: "autoclave-1", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	oldKey := writeKeyMessage(t, filepath.Join(dir, "old.json"), old)
	os.Remove(keyPath)
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: gw, site: dax, data_dir: %q}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: "127.0.0.1:1", profile: sim-autoclave}
`, dataDir))

	if _, _, err := runCLI("run", "--config", cfg); err == nil || !strings.Contains(err.Error(), "is missing, but the journal is signed by key "+old.ID()) || !strings.Contains(err.Error(), "--old-key-lost") {
		t.Fatalf("run without its key: %v", err)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("run made a new key while the journal is signed by another")
	}
	if _, _, err := runCLI("key", "rotate", "--config", cfg); err == nil || !strings.Contains(err.Error(), "add --old-key-lost") {
		t.Fatalf("rotate without its key: %v", err)
	}
	out, stderr, err := runCLI("key", "rotate", "--config", cfg, "--old-key-lost")
	if err != nil || !strings.Contains(out, "signed by the new key itself") {
		t.Fatalf("rotate --old-key-lost: %v\n%s%s", err, out, stderr)
	}
	newKey, _, err := runCLI("key", "show", "--data-dir", dataDir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	keys := writeFile(t, filepath.Join(dir, "keys.json"), newKey)
	journalPath := filepath.Join(dataDir, "journal.db")
	if rep, _, err := runCLI("verify", "--journal", journalPath, "--key", oldKey); err == nil || !strings.Contains(rep, "unknown_key") {
		t.Fatalf("the old key alone accepted a rotation the new key signed itself:\n%s", rep)
	}
	if rep, _, err := runCLI("verify", "--journal", journalPath, "--key", keys); err != nil {
		t.Fatalf("with both keys: %v\n%s", err, rep)
	}
}
