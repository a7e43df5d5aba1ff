package printer_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// randomNoise is seconds of line noise at 9600 baud (960 bytes/s) in which
// the dac-de start marker shows up every few hundred bytes, on a line of
// its own or after other bytes, sometimes with a few printed lines after
// it, but never a line that gives a cycle number.
func randomNoise(seconds int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b []byte
	for len(b) < seconds*960 {
		for range rng.IntN(400) {
			b = append(b, byte(rng.IntN(256)))
		}
		switch rng.IntN(3) {
		case 0:
			b = append(b, "\r\nZyklusprotokoll\r\n"...)
		case 1:
			b = append(b, "Zyklusprotokoll\r\nSTERIGATE SIM-B17\r\nDatum: 28-11-26\r\n"...)
		default:
			b = append(b, "\nZyklusprotokoll\r\nVakuum           14:03:47 Ok\r\n"...)
		}
	}
	return b
}

// TestTapRandomNoiseWithStartMarkersMakesNoRecord: 30 s of line noise full
// of start markers yields no record (no line gives the cycle number the
// template requires), and the real report printed after it is recorded.
func TestTapRandomNoiseWithStartMarkersMakesNoRecord(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), ReportTimeout: time.Hour}, sink)
	noise := randomNoise(30, 7)
	if n := bytes.Count(noise, []byte("Zyklusprotokoll")); n < 50 {
		t.Fatalf("the noise carries only %d start markers; the test would prove little", n)
	}
	writeChunks(t, master, noise)
	real := germanReport(protocol.ResultPassed, 77, t0)
	writeChunks(t, master, real)
	waitFor(t, "the real report's record", func() bool {
		recs, _, _ := sink.snapshot()
		for _, rec := range recs {
			if rec.Cycle == 77 {
				return true
			}
		}
		return false
	})
	recs, _, _ := sink.snapshot()
	if len(recs) != 1 {
		var cycles []uint64
		for _, rec := range recs {
			cycles = append(cycles, rec.Cycle)
		}
		t.Fatalf("%d records (cycles %v); want only the real report's", len(recs), cycles)
	}
	checkRecord(t, recs[0], printout.SampleCycle(protocol.ResultPassed, 77, t0), 0.51)
	r.stop(t)
	st := r.tap.Stats()
	if st.Rejected < 50 || st.GarbageBytes < int64(len(noise))/2 || st.GarbageEvents == 0 {
		t.Errorf("stats %+v; want at least 50 rejected report starts, the noise counted as garbage, and a garbage event", st)
	}
	_, _, evs := sink.snapshot()
	said := false
	for _, e := range evs {
		said = said || e.Kind == protocol.EventGarbage && strings.Contains(e.Text, "report starts without the template's required values: cycle")
	}
	if !said {
		t.Errorf("no garbage event says why the report starts were not recorded: %+v", evs)
	}
}

// TestTapBitImageHeaderBeforeReport: the report after a bit-image header
// is recorded, byte-exact, and the noise is reported as a garbage event.
func TestTapBitImageHeaderBeforeReport(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), ReportTimeout: time.Hour}, sink)
	report := germanReport(protocol.ResultPassed, 88, t0)
	writeChunks(t, master, append(append([]byte(nil), bitImageNoise...), report...))
	waitFor(t, "the record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	waitFor(t, "a garbage event", func() bool {
		_, _, evs := sink.snapshot()
		for _, e := range evs {
			if e.Kind == protocol.EventGarbage {
				return true
			}
		}
		return false
	})
	recs, _, evs := sink.snapshot()
	if !bytes.Equal(recs[0].Raw, report) {
		t.Errorf("raw is not the report's bytes")
	}
	for _, e := range evs {
		if e.Kind == protocol.EventGarbage && (e.Count != len(bitImageNoise) || e.Device != "ac1" || e.Text == "") {
			t.Errorf("garbage event %+v; want count %d, device ac1 and a text", e, len(bitImageNoise))
		}
	}
	r.stop(t)
}
