package printer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// noisyStream is what a printer port carries over a day: line noise before
// the first report, printer initialisation and mode switches, two reports
// (the second in LF-only endings with a form feed), garbage in between.
func noisyStream(style printout.Style) (stream []byte, reports [][]byte) {
	return noisyStreamOf(style, protocol.ResultPassed, protocol.ResultFailed)
}

// noisyStreamOf returns the stream and the raw bytes each report must
// have: from the first byte the device printed for it (the blank line or
// set-up sequence on the line before its start line) to its tear-off feed.
func noisyStreamOf(style printout.Style, first, second protocol.Result) (stream []byte, reports [][]byte) {
	a := printout.Render(printout.SampleCycle(first, 101, t0), printout.Options{Style: style})
	b := printout.Render(printout.SampleCycle(second, 102, t0.Add(time.Hour)), printout.Options{Style: style, LineEnding: "\n", FormFeed: true})
	// ESC @ (initialise) and ESC 3 0x0C (line spacing; 0x0C is its
	// parameter, not a form feed) belong to the report they precede, and
	// so does the blank line before them; the noise line and its CR LF
	// do not.
	a = append([]byte("\r\n\x1b@\x1b3\x0c"), a...)
	stream = append(stream, "\x00\xff~~noise\r\n"...)
	stream = append(stream, a...)
	// ESC ! 8 on a line of its own just before the title is the second
	// report's set-up.
	stream = append(stream, "\x0f\x12PAPER LOW\r\n"...)
	b = append([]byte("\x1b!\x08\r\n"), b...)
	stream = append(stream, b...)
	stream = append(stream, "\r\n\r\ngarbage after\r\n"...)
	// Line ends after a report's end line are its tear-off feed.
	return stream, [][]byte{a, append(b, "\r\n\r\n"...)}
}

// splitAll feeds chunks and collects reports, flushing with Idle and Cut
// at the end like the Tap does when the line falls silent.
func splitAll(t testing.TB, tp *printer.Template, chunks ...[]byte) ([]printer.Report, printer.SplitStats) {
	s := printer.NewSplitter(tp, nil)
	var out []printer.Report
	for _, c := range chunks {
		out = append(out, s.Write(c)...)
	}
	out = append(out, s.Idle()...)
	out = append(out, s.Cut()...)
	return out, s.Stats()
}

func checkConservation(t testing.TB, stream []byte, reps []printer.Report, st printer.SplitStats) {
	t.Helper()
	var sum, next int64
	for i, r := range reps {
		if r.Offset < next || r.Offset+int64(len(r.Raw)) > int64(len(stream)) || !bytes.Equal(stream[r.Offset:r.Offset+int64(len(r.Raw))], r.Raw) {
			t.Fatalf("report %d (offset %d, %d bytes) is not the stream's bytes at that offset", i, r.Offset, len(r.Raw))
		}
		next = r.Offset + int64(len(r.Raw))
		sum += int64(len(r.Raw))
	}
	if sum+st.GarbageBytes+st.IdleBytes != int64(len(stream)) || sum != st.ReportBytes {
		t.Fatalf("bytes lost: %d in reports + %d garbage + %d idle != %d fed (stats %+v)", sum, st.GarbageBytes, st.IdleBytes, len(stream), st)
	}
}

func TestSplitterFindsReportsAmongGarbage(t *testing.T) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		tp := builtin(t, styleTemplate(style))
		stream, want := noisyStream(style)
		reps, st := splitAll(t, tp, stream)
		checkConservation(t, stream, reps, st)
		if len(reps) != 2 {
			t.Fatalf("%s: %d reports, want 2", style, len(reps))
		}
		for i, r := range reps {
			if !bytes.Equal(r.Raw, want[i]) || !r.Ended {
				t.Errorf("%s report %d: ended=%v raw\n%q\nwant\n%q", style, i, r.Ended, r.Raw, want[i])
			}
		}
		if st.GarbageLines != 3 || st.LastGarbage != "garbage after" {
			t.Errorf("%s: garbage lines %d last %q, want 3, \"garbage after\"", style, st.GarbageLines, st.LastGarbage)
		}
	}
}

// TestSplitterEveryChunkBoundary feeds the stream in two chunks split at
// every byte, and byte by byte: the reports must not depend on how the
// serial driver happened to cut the reads. The reports are the short
// (aborted) ones to keep the quadratic test fast under -race.
func TestSplitterEveryChunkBoundary(t *testing.T) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		tp := builtin(t, styleTemplate(style))
		stream, _ := noisyStreamOf(style, protocol.ResultAborted, protocol.ResultAborted)
		whole, _ := splitAll(t, tp, stream)
		check := func(how string, reps []printer.Report, st printer.SplitStats) {
			checkConservation(t, stream, reps, st)
			if len(reps) != len(whole) {
				t.Fatalf("%s %s: %d reports, want %d", style, how, len(reps), len(whole))
			}
			for i := range reps {
				if !bytes.Equal(reps[i].Raw, whole[i].Raw) || reps[i].Ended != whole[i].Ended {
					t.Fatalf("%s %s: report %d differs", style, how, i)
				}
			}
		}
		for cut := 0; cut <= len(stream); cut++ {
			reps, st := splitAll(t, tp, stream[:cut], stream[cut:])
			check("split at "+string(rune('0'+cut%10)), reps, st)
		}
		var bytewise [][]byte
		for i := range stream {
			bytewise = append(bytewise, stream[i:i+1])
		}
		reps, st := splitAll(t, tp, bytewise...)
		check("byte by byte", reps, st)
	}
}

func TestSplitterNewStartCutsOpenReport(t *testing.T) {
	tp := builtin(t, "dac-de")
	a := printout.Render(printout.SampleCycle(protocol.ResultPassed, 1, t0), printout.Options{Style: printout.StyleGerman})
	b := printout.Render(printout.SampleCycle(protocol.ResultPassed, 2, t0.Add(time.Hour)), printout.Options{Style: printout.StyleGerman})
	for _, half := range [][]byte{a[:len(a)/2], a[:bytes.Index(a, []byte("Trocknung"))]} { // mid-line, at a line start
		stream := append(append([]byte{}, half...), b...)
		reps, st := splitAll(t, tp, stream)
		checkConservation(t, stream, reps, st)
		if len(reps) != 2 || reps[0].Ended || !bytes.Equal(reps[0].Raw, half) || !reps[1].Ended || !bytes.Equal(reps[1].Raw, b) {
			t.Fatalf("got %d reports: want the cut half (not ended) then the whole second one", len(reps))
		}
		if st.Cut != 1 {
			t.Errorf("stats.Cut = %d, want 1", st.Cut)
		}
	}
}

func TestSplitterEndWaitsForTrailingLineEnds(t *testing.T) {
	tp := builtin(t, "statclave-en")
	raw := printout.Render(printout.SampleCycle(protocol.ResultPassed, 1, t0), printout.Options{Style: printout.StyleEnglish, FormFeed: true})
	s := printer.NewSplitter(tp, nil)
	// Everything up to the CR of the end line: the LF and FF are still to
	// come, so the report must not be emitted yet.
	if reps := s.Write(raw[:len(raw)-2]); len(reps) != 0 {
		t.Fatalf("report emitted before its trailing line end: %q", reps[0].Raw[len(reps[0].Raw)-5:])
	}
	if reps := s.Write(raw[len(raw)-2:]); len(reps) != 0 {
		t.Fatal("report emitted before the line went quiet or the next byte came")
	}
	reps := s.Idle()
	if len(reps) != 1 || !bytes.Equal(reps[0].Raw, raw) {
		t.Fatalf("Idle emitted %d reports; want the whole report with CRLF FF", len(reps))
	}
}

func TestSplitterStreamMode(t *testing.T) {
	tp := builtin(t, "amsco-ls")
	var stream []byte
	at := t0
	line := func(ster bool) {
		stream = append(stream, printout.StreamLine(at, ster, 318, 135, 136, printout.Options{})...)
		at = at.Add(time.Second)
	}
	// Gateway starts mid-run: 2 S lines, -, -, then a whole run of 3.
	line(true)
	line(true)
	line(false)
	line(false)
	line(true)
	line(true)
	line(true)
	line(false)
	line(false)
	reps, st := splitAll(t, tp, stream)
	checkConservation(t, stream, reps, st)
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2", len(reps))
	}
	if reps[0].AfterEnd || !reps[0].Ended || !reps[1].AfterEnd || !reps[1].Ended {
		t.Errorf("report 0 afterEnd=%v ended=%v, report 1 afterEnd=%v ended=%v; want false true true true", reps[0].AfterEnd, reps[0].Ended, reps[1].AfterEnd, reps[1].Ended)
	}
	if n := bytes.Count(reps[1].Raw, []byte("\n")); n != 4 {
		t.Errorf("second run has %d lines, want 3 S lines and the closing - line", n)
	}
}

func FuzzSplitter(f *testing.F) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		stream, _ := noisyStream(style)
		f.Add(stream, uint16(7), uint8(0))
		f.Add(stream[:len(stream)/3], uint16(1), uint8(1))
	}
	f.Add([]byte("\x1b*\x21\xff\xff*** A ***\r\n"), uint16(3), uint8(0))
	f.Add([]byte("\x1bB\x01\x02*** A ***\rEND OF CYCLE 1\r\x1b(\x00"), uint16(2), uint8(0))
	f.Add([]byte("Zyklusprotokoll\nZyklus: 1\nZyklusende Ok\n\f\x1bC\x00"), uint16(5), uint8(1))
	f.Add([]byte("S 02:05:30 PM   31.43  275.5  276.8\r\n- 02:05:31 PM   31.43  275.5  276.8\r\n"), uint16(9), uint8(2))
	f.Add(append(append([]byte(nil), bitImageNoise...), "Zyklusprotokoll\r\nZyklus: 4\r\n\x1bB\x01\x02Zyklusende Ok\r\n"...), uint16(5), uint8(1))
	f.Add([]byte("\r\n\x1b@\r\n\x0c*** A ***\r\nnoise\r\n\r\n"), uint16(1), uint8(0))
	// Compiled once: a template costs milliseconds to compile, far more
	// than splitting an input, and the fuzzer must make progress.
	var templates []*printer.Template
	for _, n := range []string{"statclave-en", "dac-de", "amsco-ls"} {
		templates = append(templates, builtin(f, n))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint16, which uint8) {
		// The work per byte is bounded (a start marker is searched for in
		// the last maxStartSearch bytes of a line only); bounding the input
		// too keeps each run, and the minimisation of an input, short.
		if len(stream) > 8<<10 {
			stream = stream[:8<<10]
		}
		tp := templates[int(which)%len(templates)]
		step := int(chunk)%64 + 1
		var chunks [][]byte
		for i := 0; i < len(stream); i += step {
			chunks = append(chunks, stream[i:min(i+step, len(stream))])
		}
		reps, st := splitAll(t, tp, chunks...)
		checkConservation(t, stream, reps, st)
		for _, r := range reps {
			rec, _ := tp.ParseAt(r.Raw, t0)
			if !bytes.Equal(rec.Raw, r.Raw) {
				t.Fatal("parser changed Raw")
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		for _, r := range results {
			f.Add(printout.Render(printout.SampleCycle(r, 5, t0), printout.Options{Style: style}), uint8(0))
		}
	}
	f.Add([]byte("Zyklusprotokoll\r\nZyklus: 99999999999999999999999\r\nDatum: 31-02-26\r\nZeit:  25:61:00\r\n"), uint8(1))
	f.Add([]byte("*** X ***\r\n23:59:59 HEATING\r\n00:00:01 STERILIZING\r\n00:00:01 999999.9 C 1e308 kPa\r\nMIN 1.0 C 1.0 kPa\r\n"), uint8(0))
	f.Add([]byte("S 11:59:59 PM   31.43  275.5  276.8\r\nS 12:00:00 AM   -1.00  275.5\r\n- 12:00:01 AM 0.00 0.0\r\n"), uint8(2))
	var templates []*printer.Template
	for _, n := range []string{"statclave-en", "dac-de", "amsco-ls"} {
		templates = append(templates, builtin(f, n))
	}
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		if len(raw) > 8<<10 {
			raw = raw[:8<<10]
		}
		tp := templates[int(which)%len(templates)]
		in := append([]byte(nil), raw...)
		rec, _ := tp.ParseAt(raw, t0)
		if !bytes.Equal(rec.Raw, in) || !bytes.Equal(raw, in) {
			t.Fatal("Raw is not the input, or the input was modified")
		}
		if rec.EndedAt.Before(rec.StartedAt) || rec.StartedAt.IsZero() || !rec.Result.Valid() {
			t.Fatalf("record breaks its invariants: start %s end %s result %q", rec.StartedAt, rec.EndedAt, rec.Result)
		}
		for i, p := range rec.Phases {
			if !p.Name.Valid() || p.End.Before(p.Start) {
				t.Fatalf("phase %d = %+v", i, p)
			}
		}
	})
}

// BenchmarkSplitAndParse measures the whole software path of the tap:
// split a day's worth of noisy printer stream and parse every report. A
// 9600-baud port delivers at most 960 bytes/s.
func BenchmarkSplitAndParse(b *testing.B) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		b.Run(string(style), func(b *testing.B) {
			tp := builtin(b, styleTemplate(style))
			stream, _ := noisyStream(style)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				s := printer.NewSplitter(tp, nil)
				reps := append(s.Write(stream), s.Cut()...)
				for _, r := range reps {
					if _, err := tp.ParseAt(r.Raw, t0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
