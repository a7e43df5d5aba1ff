package printer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// bitImageNoise is what line noise made of an ESC/P bit-image header looks
// like to a printer: ESC * m nL nH announcing 30,000 bytes of graphics
// (m = 0: one byte per column, n = 0x7530), a few bytes of it, and a line
// end.
var bitImageNoise = []byte("\x00\xff\x1b*\x00\x30\x75\x01\x7f\x02\r\n")

func germanReport(result protocol.Result, counter uint32, start time.Time) []byte {
	return printout.Render(printout.SampleCycle(result, counter, start), printout.Options{Style: printout.StyleGerman})
}

// TestSplitterFindsReportsInsideBitImageNoise: a bit-image header in the
// noise announces more bytes than the ten reports after it hold. A printer
// would print them as graphics; the tap must not: a report's start line is
// found inside the announced data, and every report is cut out whole.
func TestSplitterFindsReportsInsideBitImageNoise(t *testing.T) {
	tp := builtin(t, "dac-de")
	stream := append([]byte(nil), bitImageNoise...)
	var want [][]byte
	for i := range 10 {
		r := germanReport(protocol.ResultAborted, uint32(200+i), t0.Add(time.Duration(i)*time.Hour))
		stream = append(stream, r...)
		want = append(want, r)
	}
	reps, st := splitAll(t, tp, stream)
	checkConservation(t, stream, reps, st)
	if len(reps) != len(want) {
		t.Fatalf("%d reports, want %d (the bit-image header swallowed them)", len(reps), len(want))
	}
	for i, r := range reps {
		if !r.Ended || !bytes.Equal(r.Raw, want[i]) {
			t.Errorf("report %d: ended %v, raw %q..., want the whole report %d", i, r.Ended, r.Raw[:min(40, len(r.Raw))], 200+i)
		}
	}
	if st.GarbageBytes != int64(len(bitImageNoise)) {
		t.Errorf("garbage %d bytes, want the %d bytes of noise", st.GarbageBytes, len(bitImageNoise))
	}
}

// TestSplitterFindsEndInsideBitImageNoise: noise inside a report must not
// hide its end line either.
func TestSplitterFindsEndInsideBitImageNoise(t *testing.T) {
	tp := builtin(t, "dac-de")
	r := germanReport(protocol.ResultAborted, 31, t0)
	at := bytes.Index(r, []byte("Prozessende"))
	noisy := append(append(append([]byte(nil), r[:at]...), bitImageNoise...), r[at:]...)
	next := germanReport(protocol.ResultPassed, 32, t0.Add(time.Hour))
	stream := append(append([]byte(nil), noisy...), next...)
	reps, st := splitAll(t, tp, stream)
	checkConservation(t, stream, reps, st)
	if len(reps) != 2 || !reps[0].Ended || !bytes.Equal(reps[0].Raw, noisy) || !reps[1].Ended || !bytes.Equal(reps[1].Raw, next) {
		t.Fatalf("%d reports; want the noisy report whole and ended, then the next one", len(reps))
	}
}

// TestSplitterRawStartsAtFirstByteOfReport: the blank line and printer
// set-up the device prints before the start line belong to the report;
// the CR LF of a garbage line before them does not.
func TestSplitterRawStartsAtFirstByteOfReport(t *testing.T) {
	tp := builtin(t, "dac-de")
	r := germanReport(protocol.ResultAborted, 41, t0)
	prefix := []byte("\r\n\x1b@\x1b!\x00\r\n\x0c")
	stream := append(append([]byte("line noise\r\n"), prefix...), r...)
	reps, st := splitAll(t, tp, stream)
	checkConservation(t, stream, reps, st)
	want := append(append([]byte(nil), prefix...), r...)
	if len(reps) != 1 || !bytes.Equal(reps[0].Raw, want) || reps[0].Offset != int64(len("line noise\r\n")) {
		t.Fatalf("reports %d; raw %q..., want it to start with the %q printed before the start line", len(reps), reps[0].Raw[:min(30, len(reps[0].Raw))], prefix)
	}
	if st.GarbageBytes != int64(len("line noise\r\n")) {
		t.Errorf("garbage %d bytes, want the noise line and its CR LF (12)", st.GarbageBytes)
	}
}
