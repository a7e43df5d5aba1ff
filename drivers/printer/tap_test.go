package printer_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/sim/printout"
)

// openPTY returns a pseudo-terminal pair: the test writes to master as the
// sterilizer's printer port would, the Tap opens the slave's path. The
// slave is put in raw mode at once (a fresh pty echoes and maps CR to LF)
// and kept open so the master does not see EIO while the Tap reopens.
func openPTY(t *testing.T) (master *os.File, slavePath string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	fd := int(s.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return m, s.Name()
}

type runningTap struct {
	tap    *printer.Tap
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned, valid after done
}

// stop cancels Run and waits for it to return.
func (r *runningTap) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run returned %v, want nil on cancellation", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func startTap(t *testing.T, cfg printer.TapConfig, sink protocol.Sink) *runningTap {
	t.Helper()
	cfg.Device = "ac1"
	cfg.Location = time.UTC
	cfg.ReadTimeout = 20 * time.Millisecond
	cfg.ReopenMin, cfg.ReopenMax = 20*time.Millisecond, 100*time.Millisecond
	tap, err := printer.NewTap(cfg, sink, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningTap{tap: tap, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = tap.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	waitFor(t, "the tap to open the port", func() bool { return tap.Stats().Opens > 0 })
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeChunks writes p in uneven chunks, as a UART FIFO delivers it.
func writeChunks(t *testing.T, w *os.File, p []byte) {
	t.Helper()
	sizes := []int{1, 7, 64, 3, 300, 17}
	for i := 0; len(p) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatalf("write to pty: %v", err)
		}
		p = p[n:]
	}
}

func TestTapBothStylesThroughPTY(t *testing.T) {
	for _, style := range []printout.Style{printout.StyleEnglish, printout.StyleGerman} {
		t.Run(string(style), func(t *testing.T) {
			master, slave := openPTY(t)
			sink := &memorySink{}
			r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, styleTemplate(style)), ReportTimeout: 5 * time.Second}, sink)
			stream, want := noisyStream(style)
			writeChunks(t, master, stream)
			waitFor(t, "two records", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 2 })
			recs, _, events := sink.snapshot()
			cycles := []printout.Cycle{
				printout.SampleCycle(protocol.ResultPassed, 101, t0),
				printout.SampleCycle(protocol.ResultFailed, 102, t0.Add(time.Hour)),
			}
			for i, rec := range recs {
				if rec.Device != "ac1" || !bytes.Equal(rec.Raw, want[i]) {
					t.Errorf("record %d: device %q, raw equal %v", i, rec.Device, bytes.Equal(rec.Raw, want[i]))
				}
				checkRecord(t, rec, cycles[i], tolerance(style))
			}
			if len(events) == 0 || events[0].Kind != protocol.EventOnline {
				t.Errorf("events %+v: want an online event first", events)
			}
			waitFor(t, "the trailing garbage to be counted", func() bool { return r.tap.Stats().Split.GarbageLines == 3 })
			st := r.tap.Stats()
			if st.Records != 2 || st.Incomplete != 0 || st.ParseErrors != 0 {
				t.Errorf("stats %+v", st)
			}
			r.stop(t)
		})
	}
}

func TestTapStreamModeThroughPTY(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "amsco-ls"), Baud: 38400}, sink)
	// Times near now: the stream prints no date, the tap takes today's.
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	var stream []byte
	flags := "---SSSSSS--"
	for i, f := range flags {
		stream = append(stream, printout.StreamLine(base.Add(time.Duration(i)*time.Second), f == 'S', 318+float64(i), 135+0.1*float64(i), 136, printout.Options{})...)
	}
	writeChunks(t, master, stream)
	waitFor(t, "the stream record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	waitFor(t, "all samples as telemetry", func() bool { return r.tap.Stats().Samples == int64(len(flags)-1) })
	// The last line stays in the batch until the next flush; stop flushes it.
	r.stop(t)
	recs, tel, _ := sink.snapshot()
	rec := recs[0]
	first := base.Add(3 * time.Second)
	if rec.Cycle != uint64(first.Unix()) || !rec.StartedAt.Equal(first) || !rec.EndedAt.Equal(base.Add(9*time.Second)) || !rec.Complete {
		t.Errorf("record cycle %d %s..%s complete %v; want %d %s..%s true", rec.Cycle, rec.StartedAt, rec.EndedAt, rec.Complete, first.Unix(), first, base.Add(9*time.Second))
	}
	if len(rec.Samples) != 7 || len(rec.Phases) != 1 || rec.Phases[0].Name != protocol.PhaseSterilizing {
		t.Errorf("record has %d samples and phases %+v; want 6 S lines + the closing line, one sterilizing phase", len(rec.Samples), rec.Phases)
	}
	want := string(bytes.Join(bytes.SplitAfter(stream, []byte("\r\n"))[3:10], nil))
	if string(rec.Raw) != want {
		t.Errorf("raw = %q, want the S run and its closing line %q", rec.Raw, want)
	}
	var sizes []int
	for _, b := range tel {
		sizes = append(sizes, len(b.Samples))
	}
	// Batches: the idle lines before the run, the run with its closing
	// line, and the last idle line sent at stop. No batch per line.
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 7 || sizes[2] != 1 {
		t.Errorf("telemetry batch sizes %v, want [3 7 1]", sizes)
	}
	var n int
	for _, b := range tel {
		for _, s := range b.Samples {
			if s.Phase == protocol.PhaseSterilizing && b.Cycle != rec.Cycle {
				t.Errorf("sterilize sample in a batch for cycle %d, want %d", b.Cycle, rec.Cycle)
			}
			if !near(s.PressureKPa, 318+float64(n), 0.05) {
				t.Errorf("sample %d pressure %.2f, want %.2f", n, s.PressureKPa, 318+float64(n))
			}
			n++
		}
	}
	if n != len(flags) {
		t.Errorf("%d telemetry samples, want %d", n, len(flags))
	}
}

func TestTapReportCutBySilence(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), ReportTimeout: 200 * time.Millisecond}, sink)
	full := printout.Render(printout.SampleCycle(protocol.ResultPassed, 55, t0), printout.Options{Style: printout.StyleGerman})
	half := full[:bytes.Index(full, []byte("Haltezeit   "))+5]
	writeChunks(t, master, half)
	waitFor(t, "the cut record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	recs, _, _ := sink.snapshot()
	if rec := recs[0]; rec.Complete || !bytes.Equal(rec.Raw, half) || rec.Cycle != 55 || rec.Result != protocol.ResultUnknown {
		t.Errorf("cut record: complete %v raw kept %v cycle %d result %s", rec.Complete, bytes.Equal(rec.Raw, half), rec.Cycle, rec.Result)
	}
	// The device comes back and prints the next report whole.
	next := printout.Render(printout.SampleCycle(protocol.ResultAborted, 56, t0.Add(time.Hour)), printout.Options{Style: printout.StyleGerman})
	writeChunks(t, master, next)
	waitFor(t, "the next record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 2 })
	recs, _, _ = sink.snapshot()
	checkRecord(t, recs[1], printout.SampleCycle(protocol.ResultAborted, 56, t0.Add(time.Hour)), 0.51)
}

func TestTapReportCutByPortLoss(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "statclave-en"), ReportTimeout: time.Hour}, sink)
	full := printout.Render(printout.SampleCycle(protocol.ResultPassed, 8, t0), printout.Options{Style: printout.StyleEnglish})
	half := full[:len(full)/2+3]
	writeChunks(t, master, half)
	waitFor(t, "the bytes to be read", func() bool { return r.tap.Stats().BytesRead == int64(len(half)) })
	master.Close() // the USB adapter is unplugged
	waitFor(t, "the cut record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	recs, _, _ := sink.snapshot()
	if rec := recs[0]; rec.Complete || !bytes.Equal(rec.Raw, half) || rec.Cycle != 8 {
		t.Errorf("cut record: complete %v raw kept %v cycle %d", rec.Complete, bytes.Equal(rec.Raw, half), rec.Cycle)
	}
	waitFor(t, "an offline event", func() bool {
		_, _, evs := sink.snapshot()
		for _, e := range evs {
			if e.Kind == protocol.EventOffline {
				return true
			}
		}
		return false
	})
	r.stop(t)
}

func TestTapFindsUnpluggedPortAgain(t *testing.T) {
	master, slave := openPTY(t)
	var mu sync.Mutex
	current := slave
	find := func() (string, error) { mu.Lock(); defer mu.Unlock(); return current, nil }
	sink := &memorySink{}
	r := startTap(t, printer.TapConfig{Port: "/dev/nonexistent-printer", FindPort: find, Template: builtin(t, "dac-de")}, sink)
	master.Close() // unplugged
	waitFor(t, "the tap to notice", func() bool {
		_, _, evs := sink.snapshot()
		return len(evs) > 0 && evs[len(evs)-1].Kind == protocol.EventOffline
	})
	master2, slave2 := openPTY(t) // plugged back, under another name
	mu.Lock()
	current = slave2
	mu.Unlock()
	waitFor(t, "the tap to reopen", func() bool { return r.tap.Stats().Opens >= 2 })
	c := printout.SampleCycle(protocol.ResultPassed, 21, t0)
	writeChunks(t, master2, printout.Render(c, printout.Options{Style: printout.StyleGerman}))
	waitFor(t, "the record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	recs, _, _ := sink.snapshot()
	checkRecord(t, recs[0], c, 0.51)
}

func TestTapStopDeliversOpenReport(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{}
	var mu sync.Mutex
	var lines int
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "statclave-en"), ReportTimeout: time.Hour,
		OnLine: func([]byte) { mu.Lock(); lines++; mu.Unlock() }}, sink)
	full := printout.Render(printout.SampleCycle(protocol.ResultPassed, 9, t0), printout.Options{Style: printout.StyleEnglish})
	head := full[:bytes.Index(full, []byte("14:10:47"))]
	writeChunks(t, master, head)
	waitFor(t, "the lines to arrive", func() bool { mu.Lock(); defer mu.Unlock(); return lines >= 2*9 }) // CR and LF each end a line
	r.stop(t)
	recs, _, _ := sink.snapshot()
	if len(recs) != 1 || recs[0].Complete || !bytes.Equal(recs[0].Raw, head) {
		t.Fatalf("after stop: %d records; want the open report, incomplete, with its bytes", len(recs))
	}
}

func TestTapRetriesUntilSinkAccepts(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{failCycles: 3}
	startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de")}, sink)
	writeChunks(t, master, printout.Render(printout.SampleCycle(protocol.ResultPassed, 3, t0), printout.Options{Style: printout.StyleGerman}))
	waitFor(t, "the record", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == 1 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.cycleCalls != 4 {
		t.Errorf("Cycle called %d times, want 3 failures + 1 success", sink.cycleCalls)
	}
}

func TestNewTapRejectsBadConfig(t *testing.T) {
	tp := builtin(t, "dac-de")
	ok := printer.TapConfig{Device: "ac1", Port: "/dev/null", Template: tp}
	cases := []struct {
		mut  func(*printer.TapConfig)
		want string
	}{
		{func(c *printer.TapConfig) { c.Device = "" }, "device is empty"},
		{func(c *printer.TapConfig) { c.Device = "a/b" }, "must not contain"},
		{func(c *printer.TapConfig) { c.Port = "" }, "port is empty"},
		{func(c *printer.TapConfig) { c.Template = nil }, "template is not set"},
		{func(c *printer.TapConfig) { c.Parity = "sometimes" }, `parity "sometimes"`},
		{func(c *printer.TapConfig) { c.StopBits = 3 }, "stop bits 3"},
		{func(c *printer.TapConfig) { c.DataBits = 9 }, "data bits 9"},
		{func(c *printer.TapConfig) { c.Baud = -5 }, "baud -5"},
	}
	for _, tc := range cases {
		cfg := ok
		tc.mut(&cfg)
		if _, err := printer.NewTap(cfg, &memorySink{}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if _, err := printer.NewTap(ok, &memorySink{}, nil); err != nil {
		t.Errorf("good config rejected: %v", err)
	}
}

// TestTapKeepsReadingWhileTheSinkRefuses: while the journal refuses
// records (a full disk), the tap must go on reading its port — a printer
// does not wait, and a UART that is not read overruns — and record every
// report once the journal takes them again. Past its buffer it drops bytes
// and says so in a gap event.
func TestTapKeepsReadingWhileTheSinkRefuses(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{failCycles: 1 << 30}
	startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de")}, sink)
	var stream []byte
	const reports = 60
	for i := range reports {
		stream = append(stream, printout.Render(printout.SampleCycle(protocol.ResultPassed, uint32(200+i), t0.Add(time.Duration(i)*time.Hour)), printout.Options{Style: printout.StyleGerman})...)
	}
	written := make(chan error, 1)
	go func() { _, err := master.Write(stream); written <- err }()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the printer could not print %d bytes in 10 s: the tap stopped reading its port while the sink refused records", len(stream))
	}
	sink.mu.Lock()
	sink.failCycles = 0
	sink.mu.Unlock()
	waitFor(t, "every report recorded once the sink takes them", func() bool { recs, _, _ := sink.snapshot(); return len(recs) == reports })
}

func TestTapBufferOverflowIsAGap(t *testing.T) {
	master, slave := openPTY(t)
	sink := &memorySink{failCycles: 1 << 30}
	r := startTap(t, printer.TapConfig{Port: slave, Template: builtin(t, "dac-de"), BufferBytes: 8 << 10}, sink)
	var stream []byte
	for i := range 200 {
		stream = append(stream, printout.Render(printout.SampleCycle(protocol.ResultPassed, uint32(300+i), t0.Add(time.Duration(i)*time.Hour)), printout.Options{Style: printout.StyleGerman})...)
	}
	if _, err := master.Write(stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes dropped", func() bool { return r.tap.Stats().DroppedBytes > 0 })
	sink.mu.Lock()
	sink.failCycles = 0
	sink.mu.Unlock()
	waitFor(t, "a gap event counting the dropped bytes", func() bool {
		_, _, events := sink.snapshot()
		for _, ev := range events {
			if ev.Kind == protocol.EventGap && ev.Count > 0 && strings.Contains(ev.Text, "dropped") {
				return true
			}
		}
		return false
	})
	waitFor(t, "the reports the buffer held recorded", func() bool { recs, _, _ := sink.snapshot(); return len(recs) > 0 })
	if recs, _, _ := sink.snapshot(); len(recs) >= 200 {
		t.Fatalf("%d records with a buffer that overflowed; want some, not all", len(recs))
	}
}
