package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// TestExportGolden: what export writes for the evidence fixture, against
// testdata/export/<case> (-update rewrites them).
func TestExportGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"cycles-jsonl", []string{"--device", "autoclave-1"}},
		{"all-csv", []string{"--device", "autoclave-1", "--kind", "all", "--format", "csv"}},
		{"time-window", []string{"--device", "autoclave-2", "--kind", "all", "--from", "2026-11-28", "--to", "2026-11-28T08:00:01Z"}},
		{"empty-window", []string{"--device", "autoclave-1", "--from", "2026-11-29"}},
		{"backwards-window", []string{"--device", "autoclave-1", "--from", "2026-11-29", "--to", "2026-11-28"}},
		{"bad-kind", []string{"--device", "autoclave-1", "--kind", "cycles"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEvidenceFixture(t)
			var out, errOut bytes.Buffer
			args := append([]string{"export", "--journal", f.journal}, tc.args...)
			code := finish(dispatch(context.Background(), args, &out, &errOut), &errOut)
			compareGolden(t, filepath.Join("testdata", "export", tc.name), map[string]string{
				"args.txt": strings.Join(tc.args, "\n") + "\n",
				"stdout":   out.String(),
				"stderr":   strings.ReplaceAll(errOut.String(), f.dir, "$DIR"),
				"exit":     fmt.Sprintln(code),
			})
		})
	}
}

// An export of cycle records verifies record by record (verify --partial),
// and a CSV export has one row per entry under the header.
func TestExportVerifies(t *testing.T) {
	f := newEvidenceFixture(t)
	out, _, err := runCLI("export", "--journal", f.journal, "--device", "autoclave-1")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, filepath.Join(f.dir, "export.jsonl"), out)
	if rep, _, err := runCLI("verify", "--capture", file, "--partial", "--key", f.keyFile); err != nil || !strings.Contains(rep, "2 signatures checked") {
		t.Fatalf("verify of the export: %v\n%s", err, rep)
	}
	tampered := writeFile(t, filepath.Join(f.dir, "tampered.jsonl"), strings.Replace(out, `"result":"failed"`, `"result":"passed"`, 1))
	if rep, _, err := runCLI("verify", "--capture", tampered, "--partial", "--key", f.keyFile); err == nil || !strings.Contains(rep, "bad_signature") {
		t.Fatalf("verify of a tampered export: %v\n%s", err, rep)
	}
	out, _, err = runCLI("export", "--journal", f.journal, "--device", "autoclave-1", "--kind", "all", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 12 || rows[0][0] != "device" || len(rows[1]) != len(exportColumns) {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
}

// Export and verify read a journal that a gateway is writing, without
// holding its writer up: appends go on, each one committed, while they
// read.
func TestExportWhileTheJournalIsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(path, journal.Options{Gateway: "gw", Site: "dax", Signer: seededSigner(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var appended atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			batch := protocol.Telemetry{Device: "autoclave-1", Samples: []protocol.Sample{{At: time.Now(), TempC: 134, PressureKPa: 304, Phase: protocol.PhaseSterilizing}}}
			if err := j.Telemetry(ctx, batch); err != nil && ctx.Err() == nil {
				t.Errorf("append while reading: %v", err)
				return
			}
			if n := appended.Add(1); n%50 == 0 {
				j.Event(ctx, protocol.Event{Device: "autoclave-1", Kind: protocol.EventAlarm, Code: int(n)})
			}
		}
	})
	waitFor(t, 20*time.Second, "some entries", func() bool { return appended.Load() > 200 })
	for range 5 {
		before := appended.Load()
		if _, stderr, err := runCLI("export", "--journal", path, "--device", "autoclave-1", "--kind", "all"); err != nil {
			t.Fatalf("export: %v: %s", err, stderr)
		}
		if out, _, err := runCLI("verify", "--journal", path); err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		waitFor(t, 10*time.Second, "appends to go on after a read", func() bool { return appended.Load() > before+10 })
	}
	cancel()
	wg.Wait()
}
