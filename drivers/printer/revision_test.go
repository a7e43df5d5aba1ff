package printer_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
)

func waitRecords(t *testing.T, sink *journalSink, n int) []protocol.CycleRecord {
	t.Helper()
	waitFor(t, "the records", func() bool { recs, _, _ := sink.snapshot(); return len(recs) >= n })
	recs, _, _ := sink.snapshot()
	return recs
}

// TestTapReprintSupersedesCutPrintout: the French device is cut off
// mid-print, comes back and the operator reprints the cycle ("***
// DUPLICATA ***"): the reprint becomes revision 2 of cycle 318 and
// supersedes the cut record. More copies add nothing and are counted.
func TestTapReprintSupersedesCutPrintout(t *testing.T) {
	master, slave := openPTY(t)
	sink := &journalSink{}
	r := startTap(t, printer.TapConfig{Port: slave, Template: frenchTemplate(t), ReportTimeout: time.Hour, History: sink}, sink)
	cut, dup := frenchCut(t), frenchDuplicata(t)
	// The duplicata's start line ends the cut report.
	writeChunks(t, master, append(append([]byte(nil), cut...), dup...))
	recs := waitRecords(t, sink, 2)
	first, second := recs[0], recs[1]
	if first.ID != "dax:ac1:318" || first.Complete || first.EndSeen || first.Revision != 0 || !bytes.Equal(first.Raw, cut) {
		t.Errorf("first record %s: complete %v end_seen %v revision %d; want the cut original", first.ID, first.Complete, first.EndSeen, first.Revision)
	}
	if second.ID != "dax:ac1:318:r2" || second.Revision != 2 || second.Supersedes != "dax:ac1:318" || !second.Complete ||
		!second.EndSeen || second.Result != protocol.ResultPassed || !bytes.Equal(second.Raw, dup) || !second.DeviceFigures.Reprint {
		t.Errorf("second record %s: revision %d supersedes %q complete %v result %s; want revision 2 superseding the cut one",
			second.ID, second.Revision, second.Supersedes, second.Complete, second.Result)
	}
	// The duplicata again, then a cut copy of it: nothing new.
	writeChunks(t, master, dup)
	writeChunks(t, master, cut)
	title := frenchPrintout(t)
	writeChunks(t, master, title[:bytes.Index(title, []byte("\r\n"))+2]) // a new start line cuts the copy
	waitFor(t, "two reprints counted", func() bool { return r.tap.Stats().Reprints == 2 })
	if recs, _, _ := sink.snapshot(); len(recs) != 2 {
		t.Errorf("%d records, want 2", len(recs))
	}
	r.stop(t)
	if st := r.tap.Stats(); st.Records != 2 || st.Revisions != 1 || st.Reprints != 2 {
		t.Errorf("stats %+v; want 2 records, 1 revision, 2 reprints", st)
	}
}

// TestTapCompletePrintoutsThatDisagreeAreBothKept: the same cycle number
// printed complete twice with different verdicts (a device whose counter
// went back, or a fault) is not a reprint: both are kept, the second as a
// revision, and a gateway alarm says what differs.
func TestTapCompletePrintoutsThatDisagreeAreBothKept(t *testing.T) {
	master, slave := openPTY(t)
	sink := &journalSink{}
	startTap(t, printer.TapConfig{Port: slave, Template: frenchTemplate(t), ReportTimeout: time.Hour, History: sink}, sink)
	a := frenchPrintout(t)
	b := bytes.Replace(a, []byte("RESULTAT : CONFORME"), []byte("RESULTAT : NON CONFORME"), 1)
	writeChunks(t, master, append(append([]byte(nil), a...), b...))
	recs := waitRecords(t, sink, 2)
	if recs[1].Revision != 2 || recs[1].Result != protocol.ResultFailed || recs[0].Result != protocol.ResultPassed {
		t.Errorf("records %s %s, %s %s revision %d", recs[0].ID, recs[0].Result, recs[1].ID, recs[1].Result, recs[1].Revision)
	}
	waitFor(t, "the gateway alarm", func() bool {
		_, _, evs := sink.snapshot()
		for _, e := range evs {
			if e.Kind == protocol.EventGatewayAlarm && e.Cycle == 318 && strings.Contains(e.Text, "result passed, now failed") {
				return true
			}
		}
		return false
	})
}

// TestTapGarbageEventsAreRateLimited: noise is reported at once, then at
// most once per interval, each event counting every byte since the last.
func TestTapGarbageEventsAreRateLimited(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	const interval = 300 * time.Millisecond
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), GarbageEventInterval: interval}, sink)
	garbageEvents := func() []protocol.Event {
		_, _, evs := sink.snapshot()
		var g []protocol.Event
		for _, e := range evs {
			if e.Kind == protocol.EventGarbage {
				g = append(g, e)
			}
		}
		return g
	}
	writeChunks(t, master, []byte("noise one\r\n"))
	waitFor(t, "the first garbage event", func() bool { return len(garbageEvents()) == 1 })
	for range 3 {
		writeChunks(t, master, []byte("more noise\r\n"))
	}
	waitFor(t, "the second garbage event", func() bool { return len(garbageEvents()) == 2 })
	g := garbageEvents()
	if g[0].Count != 11 || g[1].Count != 36 || !strings.Contains(g[1].Text, `last line: "more noise"`) {
		t.Errorf("events %+v; want counts 11 then 36", g)
	}
	if d := g[1].At.Sub(g[0].At); d < interval {
		t.Errorf("second event %s after the first, want at least %s", d, interval)
	}
	r.stop(t)
	if st := r.tap.Stats(); st.GarbageBytes != 47 || st.GarbageEvents != 2 {
		t.Errorf("stats: %d garbage bytes, %d events; want 47, 2", st.GarbageBytes, st.GarbageEvents)
	}
}

// TestTapKeepsOfferingWhileRunning: a sink that refuses a record for
// longer than the stop grace does not make a running tap drop it; the
// grace applies only once the gateway stops.
func TestTapKeepsOfferingWhileRunning(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{failCycles: 4} // 0.1 + 0.2 + 0.4 + 0.8 s of refusals
	startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), StopGrace: 50 * time.Millisecond}, sink)
	writeChunks(t, master, germanReport(protocol.ResultPassed, 3, t0))
	waitFor(t, "the record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
}
