package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/archive"
	"github.com/sterigate/sterigate/gateway/archive/pgtest"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"
)

// 'sterigate archive query' prints the stored records a site, device,
// time window and verdict select, as a table or JSON lines.
func TestArchiveQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("a real PostgreSQL")
	}
	pg := pgtest.Start(t)
	ctx := context.Background()
	store, err := archive.Open(ctx, pg.URL(), archive.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer := evidencetest.Signer(t, 1)
	var msgs []archive.Message
	prev := ""
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		verdict := "pass"
		if i == 3 {
			verdict = "fail"
		}
		rec := protocol.CycleRecord{Schema: protocol.CycleSchema, ID: protocol.CycleID("dax", "autoclave-1", uint64(1040+i)), Gateway: "gw", Site: "dax",
			Device: "autoclave-1", Cycle: uint64(1040 + i), Program: "134-porous", StartedAt: start.Add(time.Duration(i) * 24 * time.Hour),
			EndedAt: start.Add(time.Duration(i)*24*time.Hour + 50*time.Minute), Result: protocol.ResultPassed, Complete: true, EndSeen: true,
			Source: "modbus-tcp", Verification: &protocol.Verification{Verdict: verdict}, Seq: uint64(i), PrevHash: prev}
		payload, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(payload)
		prev = hex.EncodeToString(sum[:])
		sig := signer.Sign(prev)
		msgs = append(msgs, archive.Message{Topic: "sterigate/dax/autoclave-1/cycle", Payload: evidence.Published(payload, &sig, false)})
	}
	if _, err := store.StoreBatch(ctx, "sterigate", "a1", msgs); err != nil {
		t.Fatal(err)
	}
	store.Close()

	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "archive.yaml"), fmt.Sprintf(`
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
postgres: {url: %q}
archive: {id: a1}
`, pg.URL()))
	query := func(args ...string) (string, string) {
		cmd := exec.Command(binary, append([]string{"archive", "query", "--config", cfg, "--site", "dax"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("archive query %v: %v\n%s", args, err, stderr.String())
		}
		return string(out), stderr.String()
	}
	out, errOut := query("--device", "autoclave-1", "--from", "2026-11-04", "--to", "2026-11-06")
	if !strings.Contains(out, "dax:autoclave-1:1042") || !strings.Contains(out, "dax:autoclave-1:1043") || strings.Contains(out, ":1041") || strings.Contains(out, ":1044") ||
		!strings.HasPrefix(out, "STARTED") || !strings.Contains(errOut, "2 cycle record(s)") {
		t.Fatalf("window query:\n%s%s", out, errOut)
	}
	out, _ = query("--verdict", "fail", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("--verdict fail --json printed %d lines:\n%s", len(lines), out)
	}
	var got struct {
		ID       string    `json:"id"`
		StoredAt time.Time `json:"stored_at"`
		Seq      uint64    `json:"seq"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil || got.ID != "dax:autoclave-1:1043" || got.StoredAt.IsZero() || got.Seq != 3 {
		t.Fatalf("JSON line %s: %+v %v", lines[0], got, err)
	}
	// A window the wrong way round is the user's mistake.
	cmd := exec.Command(binary, "archive", "query", "--config", cfg, "--site", "dax", "--from", "2026-11-06", "--to", "2026-11-04")
	if out, err := cmd.CombinedOutput(); exitCodeOf(err) != 2 || !strings.Contains(string(out), "is not after") {
		t.Fatalf("backwards window: exit %d\n%s", exitCodeOf(err), out)
	}
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
