package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the architecture of DEVELOPERS.md true of
// the production code: drivers → protocol ← gateway, sim depends on
// protocol only, and only cmd wires everything together. (Tests may use
// the simulator as a fixture; they are not part of the binary.)
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/sterigate/sterigate/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string][]string{
		"protocol": {"protocol"},
		"drivers":  {"protocol", "drivers"},
		"gateway":  {"protocol", "gateway"},
		"sim":      {"protocol", "sim"},
		"cmd":      {"protocol", "drivers", "gateway", "sim", "cmd"},
	}
	layer := func(path string) string {
		rest := strings.TrimPrefix(path, mod)
		top, _, _ := strings.Cut(rest, "/")
		return top
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	checked := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], mod) {
			continue
		}
		from := layer(fields[0])
		ok, known := allowed[from]
		if !known {
			t.Errorf("package %s is outside the layers cmd, gateway, drivers, protocol, sim", fields[0])
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			to := layer(imp)
			permitted := false
			for _, a := range ok {
				permitted = permitted || a == to
			}
			if !permitted {
				t.Errorf("%s imports %s: %s may depend only on %v", fields[0], imp, from, ok)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages; go list output:\n%s", checked, out)
	}
}
