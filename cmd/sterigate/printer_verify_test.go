package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// A printer tap sees the plateau as the device prints it, one line every
// 30 s: a sag shorter than that would not show, so the record of a cycle
// the device passed is indeterminate, says why, and is a disagreement
// (event in the journal, next to the record). Through the real printer
// path: a pseudo-terminal, the tap, the template, the gateway's links
// and the journal.
func TestPrinterRecordIsIndeterminateForTheSag(t *testing.T) {
	master, slave := rawPTY(t)
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "sterigate.yaml"), []byte(fmt.Sprintf(`
gateway: {id: gw1, site: dax, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
devices:
  - {id: ac1, driver: printer, template: dac-de, serial: {port: %s}, report_timeout: 1s}
`, dir, slave.Name())))
	if err != nil {
		t.Fatal(err)
	}
	g := startPrinterGateway(t, cfg)
	defer func() { g.stop(t) }()
	start := time.Date(2026, 11, 28, 14, 3, 12, 0, time.UTC)
	report := printout.Render(printout.SampleCycle(protocol.ResultPassed, 13, start), printout.Options{Style: printout.StyleGerman})
	if _, err := master.Write(append([]byte("\x1b@"), report...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the printout's record", func() bool { return len(g.cycles(t)) == 1 })
	rec := g.cycles(t)[0]
	v := rec.Verification
	if rec.Result != protocol.ResultPassed || v == nil {
		t.Fatalf("record: result %s, verification %v", rec.Result, v)
	}
	if v.Verdict != protocol.VerdictIndeterminate || v.AgreesWithDevice == nil || *v.AgreesWithDevice {
		t.Errorf("verdict %s, agrees_with_device %v; want indeterminate, false", v.Verdict, v.AgreesWithDevice)
	}
	var interval *protocol.Check
	for i := range v.Checks {
		if v.Checks[i].Name == "sample_interval" {
			interval = &v.Checks[i]
		}
		if v.Checks[i].Result == protocol.CheckFail {
			t.Errorf("%s failed on a good printout: %s", v.Checks[i].Name, v.Checks[i].Note)
		}
	}
	for _, c := range v.Checks {
		t.Logf("%s %s: %s", c.Name, c.Result, c.Note)
	}
	if interval == nil || interval.Result != protocol.CheckIndeterminate || interval.Measured == nil || *interval.Measured != 30 ||
		!strings.Contains(interval.Note, "a dip shorter than that would not show") {
		t.Errorf("sample_interval: %+v", interval)
	}
	if len(v.Reasons) == 0 || !strings.HasPrefix(v.Reasons[0], "sample_interval: ") {
		t.Errorf("reasons %q do not say the samples are too sparse", v.Reasons)
	}
	evs, err := g.j.Entries(context.Background(), "ac1", journal.KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range evs {
		var ev protocol.Event
		if json.Unmarshal(e.Payload, &ev) == nil && ev.Kind == protocol.EventVerificationDisagreement {
			found = ev.RecordID == rec.ID && ev.Verdict == protocol.VerdictIndeterminate && strings.Contains(strings.Join(ev.Checks, ","), "sample_interval")
		}
	}
	if !found {
		t.Errorf("no verification_disagreement event for %s", rec.ID)
	}
	sts, err := g.j.DeviceStatuses(context.Background())
	if err != nil || len(sts) != 1 || sts[0].LastCycle == nil || !sts[0].LastCycle.Disagreement || sts[0].LastCycle.Verdict != protocol.VerdictIndeterminate {
		t.Errorf("status %+v, %v", sts, err)
	}
}
