package journal

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol"
)

// disagreeingRecord is testRecord with sterigate's verdict: a fail on a device
// that passed (a disagreement), or a pass.
func disagreeingRecord(device string, cycle uint64, verdict string) protocol.CycleRecord {
	rec := testRecord(device, cycle)
	agrees := verdict == protocol.VerdictPass
	rec.Verification = &protocol.Verification{
		Verdict: verdict, AgreesWithDevice: &agrees,
		Checks: []protocol.Check{
			{Name: "record_complete", Result: protocol.CheckPass, OK: true},
			{Name: "temperature_band", Result: protocol.CheckFail, Note: "temp_c read 131.5 °C, below the band"},
			{Name: "hold_time", Result: protocol.CheckIndeterminate, Note: "the hold cannot be told"},
		},
		Criteria: protocol.Criteria{Set: "en285-porous", Version: 1, Kind: "porous", Source: "profile"},
	}
	if agrees {
		rec.Verification.Checks = rec.Verification.Checks[:1]
	}
	return rec
}

// A record sterigate disagrees with is followed on the device's chain by
// its verification_disagreement event; the device status and the counts
// say so; the device's own result is untouched. Journaled again (a
// driver re-delivering it), neither is repeated.
func TestDisagreementEventFollowsTheRecord(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	for _, rec := range []protocol.CycleRecord{disagreeingRecord("ac-1", 7, protocol.VerdictPass), disagreeingRecord("ac-1", 8, protocol.VerdictFail), disagreeingRecord("ac-1", 8, protocol.VerdictFail)} {
		if err := j.Cycle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := j.Entries(ctx, "ac-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, string(e.Kind))
	}
	if strings.Join(kinds, " ") != "cycle cycle event" {
		t.Fatalf("entries %v, want the two records and one event", kinds)
	}
	var rec protocol.CycleRecord
	var ev protocol.Event
	if err := json.Unmarshal(entries[1].Payload, &rec); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(entries[2].Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if rec.Result != protocol.ResultPassed {
		t.Errorf("the device's result became %s", rec.Result)
	}
	if ev.Kind != protocol.EventVerificationDisagreement || ev.Seq != rec.Seq+1 || ev.PrevHash != entries[1].Hash ||
		ev.Cycle != 8 || ev.RecordID != "dax:ac-1:8" || ev.Verdict != protocol.VerdictFail || strings.Join(ev.Checks, ",") != "temperature_band,hold_time" ||
		!ev.At.Equal(rec.EndedAt) || ev.Program != rec.Program {
		t.Errorf("event %+v", ev)
	}
	for _, s := range []string{"cycle 8", "dax:ac-1:8", "passed", "says fail", "temperature_band fail: temp_c read 131.5 °C", "hold_time indeterminate"} {
		if !strings.Contains(ev.Text, s) {
			t.Errorf("event text %q lacks %q", ev.Text, s)
		}
	}
	sts, err := j.DeviceStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lc := sts[0].LastCycle; lc == nil || lc.Cycle != 8 || lc.Verdict != protocol.VerdictFail || !lc.Disagreement || lc.Result != protocol.ResultPassed {
		t.Errorf("last cycle %+v", lc)
	}
	want := map[CycleCount]int64{
		{Device: "ac-1", Result: protocol.ResultPassed, Verdict: protocol.VerdictPass}:                     1,
		{Device: "ac-1", Result: protocol.ResultPassed, Verdict: protocol.VerdictFail, Disagreement: true}: 1,
	}
	if got := j.CyclesJournaled(); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	// The next cycle agrees: the status says so.
	if err := j.Cycle(ctx, disagreeingRecord("ac-1", 9, protocol.VerdictPass)); err != nil {
		t.Fatal(err)
	}
	sts, _ = j.DeviceStatuses(ctx)
	if lc := sts[0].LastCycle; lc.Cycle != 9 || lc.Verdict != protocol.VerdictPass || lc.Disagreement {
		t.Errorf("last cycle after an agreeing one %+v", lc)
	}
}

// The record and its disagreement event are one commit: when the event
// cannot be written, the record is not journaled either (the driver keeps
// it and delivers it again), so a gateway can never hold the record
// without its alarm.
func TestDisagreementEventInTheRecordsCommit(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	if err := j.exec(ctx, `CREATE TRIGGER no_events BEFORE INSERT ON entries WHEN NEW.kind = 'event' BEGIN SELECT RAISE(ABORT, 'no events today'); END`); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, disagreeingRecord("ac-1", 8, protocol.VerdictFail)); err == nil || !strings.Contains(err.Error(), "no events today") {
		t.Fatalf("Cycle = %v, want the event's failure", err)
	}
	if entries, _ := j.Entries(ctx, "ac-1", ""); len(entries) != 0 {
		t.Fatalf("%d entries journaled without their event", len(entries))
	}
	if err := j.exec(ctx, `DROP TRIGGER no_events`); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, disagreeingRecord("ac-1", 8, protocol.VerdictFail)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := j.Entries(ctx, "ac-1", ""); len(entries) != 2 {
		t.Fatalf("%d entries after the retry, want the record and its event", len(entries))
	}
}
