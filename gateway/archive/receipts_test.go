package archive

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"
)

// A gateway with receipts required whose entries reached no archive (none
// ran: the broker passed them to nobody) raises receipts_missing, publishes
// them again once an archive runs, and ends with every entry archived.
func TestReceiptsRequiredRepublishUntilArchived(t *testing.T) {
	if testing.Short() {
		t.Skip("real Mosquitto and PostgreSQL")
	}
	broker := plainBroker(t)
	s, _ := openStore(t, StoreOptions{})
	signer := evidencetest.Signer(t, 1)
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), journal.Options{Gateway: "gw1", Site: "dax", Signer: signer, KeepUnarchived: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	key, _ := json.Marshal(signer.Public().Message("gw1", "dax"))
	pub, err := mqttpub.New(mqttpub.Options{Brokers: []string{broker.URL("tcp")}, Gateway: "gw1", Site: "dax", TopicRoot: testRoot,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, KeyMessage: key,
		Receipts: mqttpub.ReceiptsRequired, ReceiptsAlarmAfter: 300 * time.Millisecond, ReceiptsRepublishAfter: 500 * time.Millisecond}, j)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for i := range 5 {
		rec := protocol.CycleRecord{Device: "ac1", Cycle: uint64(i + 1), Program: "134C", StartedAt: start.Add(time.Duration(i) * time.Hour),
			EndedAt: start.Add(time.Duration(i)*time.Hour + 40*time.Minute), Result: protocol.ResultPassed, Complete: true, Source: "modbus-tcp"}
		if err := j.Cycle(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := j.Telemetry(ctx, protocol.Telemetry{Device: "ac1", Samples: []protocol.Sample{{At: start, TempC: 134, PressureKPa: 304}}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "receipts_missing", 10*time.Second, func() bool { return slices.Contains(pub.Alarms(), mqttpub.AlarmReceiptsMissing) })

	startInstance(t, broker, s, "a1")
	waitFor(t, "every entry archived", 20*time.Second, func() bool {
		oldest, err := j.OldestUnarchived(context.Background())
		return err == nil && oldest.IsZero()
	})
	waitFor(t, "the alarm to clear", 5*time.Second, func() bool { return !slices.Contains(pub.Alarms(), mqttpub.AlarmReceiptsMissing) })
	if n := count(t, s, `SELECT count(*) FROM cycle_records`); n != 5 {
		t.Fatalf("%d cycle records archived, want 5", n)
	}
	if n := count(t, s, `SELECT count(*) FROM chain WHERE signature = 'bad' OR signature = 'unknown_key'`); n != 0 {
		t.Fatalf("%d entries with a bad or unknown signature", n)
	}
	if n := count(t, s, `SELECT count(*) FROM chain_problems WHERE state = 'open'`); n != 0 {
		t.Fatalf("%d open chain problems", n)
	}
}
