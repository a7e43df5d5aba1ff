package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSystemdUnitVerifiesAndIsHardened checks deploy/sterigate.service as
// systemd reads it: 'systemd-analyze verify' finds nothing to say, and
// 'systemd-analyze security' rates its exposure at 3.0 or less. It also
// keeps the lines docs/security.md relies on.
func TestSystemdUnitVerifiesAndIsHardened(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (scripts/test installs systemd): the unit is not checked")
	}
	unit, err := os.ReadFile("../../deploy/sterigate.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"User=sterigate", "ProtectSystem=strict", "ReadWritePaths=/var/lib/sterigate", "NoNewPrivileges=yes", "PrivateTmp=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw",
		"CapabilityBoundingSet=\n", "Restart=always", "UMask=0077",
	} {
		if !strings.Contains(string(unit), "\n"+line) {
			t.Errorf("deploy/sterigate.service lacks %q", strings.TrimSpace(line))
		}
	}
	// verify checks that ExecStart's binary exists: point it at this
	// test's build, everything else as shipped.
	path := filepath.Join(t.TempDir(), "sterigate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/sterigate", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "System has not been booted with systemd") {
		t.Skipf("systemd-analyze cannot run here: %s", out)
	}
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(tool, "security", "--offline=true", path).CombinedOutput()
	if err != nil && strings.Contains(string(out), "offline") {
		t.Skipf("this systemd-analyze has no offline security review (systemd 250 or later): %s", out)
	}
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for sterigate\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > 3.0 {
		t.Errorf("exposure %.1f, want at most 3.0:\n%s", level, out)
	}
}
