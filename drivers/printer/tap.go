package printer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/sterigate/sterigate/protocol"
)

// TapConfig configures one printer-port tap.
type TapConfig struct {
	// Device is the gateway's id of the sterilizer (CycleRecord.Device).
	Device string
	// Port is the serial device node, e.g. /dev/ttyUSB0.
	Port string
	// FindPort, if not nil, is asked for the current device node before
	// every open (a USB adapter found again by VID/PID/serial number after
	// a replug renamed it); Port is used when it fails.
	FindPort func() (string, error)
	// Baud, DataBits, Parity, StopBits default to 9600 8N1. Parity is
	// none, odd, even, mark or space; StopBits is 1 or 2.
	Baud, DataBits int
	Parity         string
	StopBits       int
	// Template parses the reports; required.
	Template *Template
	// Location overrides the template's timezone when not nil.
	Location *time.Location
	// ReportTimeout ends a report that has no end marker after this much
	// silence (the device lost power mid-print); the report is kept with
	// Complete=false. Default DefaultReportTimeout.
	ReportTimeout time.Duration
	// ReadTimeout bounds each read, so the tap notices silence and
	// cancellation. Default 100 ms.
	ReadTimeout time.Duration
	// ReopenMin and ReopenMax bound the back-off between attempts to
	// (re)open the port. Defaults 500 ms and 30 s.
	ReopenMin, ReopenMax time.Duration
	// OnLine, if not nil, is called with every complete line as it
	// arrives (the tap command shows them); it runs on Run's goroutine.
	OnLine func(line []byte)
	// History, if not nil, tells the tap what the sink already holds for
	// a cycle (the journal does): a more complete copy of a printout (the
	// reprint of a cut one) is then journaled as a new revision that
	// supersedes it, and a mere reprint is counted, not journaled twice.
	// Without it every report is journaled as a first record.
	History protocol.CycleHistory
	// GarbageEventInterval is the least time between two garbage events
	// (bytes on the line that belong to no report). Default 10 min.
	GarbageEventInterval time.Duration
	// StopGrace bounds how long a stopping tap keeps offering the reports
	// it holds to a sink that refuses them. Default 10 s.
	StopGrace time.Duration
	// BufferBytes bounds the bytes read from the port and not yet
	// processed, while the sink holds the tap up (a journal on a full
	// disk). The port is read all the same, so the UART never overruns;
	// past the bound new bytes are dropped and a gap event says how many.
	// Default DefaultBufferBytes.
	BufferBytes int
}

// DefaultBufferBytes holds several hundred printed reports.
const DefaultBufferBytes = 4 << 20

// DefaultReportTimeout is the silence after which a report without its
// end line is taken as cut.
const DefaultReportTimeout = 60 * time.Second

// TapStats counts what a Tap has done.
type TapStats struct {
	Records     int64 // records delivered to the sink
	Incomplete  int64 // of which Complete=false
	ParseErrors int64 // records whose report did not fully parse
	Revisions   int64 // of which supersede an earlier record of their cycle
	// Reprints counts reports of a cycle already journaled at least as
	// completely: logged and counted, not journaled again.
	Reprints int64
	// Rejected counts report starts without the template's required
	// values (line noise with a start marker): not records; their bytes
	// are garbage.
	Rejected int64
	// GarbageBytes counts bytes that belong to no record: the Splitter's
	// garbage and the rejected reports.
	GarbageBytes  int64
	GarbageEvents int64 // garbage events sent
	// DroppedBytes counts bytes read from the port and dropped because
	// the buffer was full (each drop is a gap event).
	DroppedBytes int64
	Opens        int64 // successful port opens
	Samples      int64 // stream-mode samples delivered as telemetry
	BytesRead    int64 // bytes read from the port
	Split        SplitStats
}

// Tap reads a printer port and delivers one CycleRecord per printed report
// (and, in stream mode, telemetry) to a Sink.
type Tap struct {
	cfg  TapConfig
	tmpl *Template
	sink protocol.Sink
	log  *slog.Logger
	mode serial.Mode

	mu    sync.Mutex
	stats TapStats
}

// NewTap checks cfg and returns a Tap; nothing is opened until Run.
func NewTap(cfg TapConfig, sink protocol.Sink, log *slog.Logger) (*Tap, error) {
	if cfg.Device == "" {
		return nil, errors.New("printer tap: device is empty")
	}
	if err := protocol.CheckTopicLevel("printer tap device", cfg.Device); err != nil {
		return nil, err
	}
	if cfg.Port == "" && cfg.FindPort == nil {
		return nil, fmt.Errorf("printer tap %s: port is empty and no USB identity is given to find it", cfg.Device)
	}
	if cfg.Template == nil {
		return nil, fmt.Errorf("printer tap %s: template is not set", cfg.Device)
	}
	if sink == nil {
		return nil, fmt.Errorf("printer tap %s: sink is nil", cfg.Device)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mode, err := serialMode(cfg)
	if err != nil {
		return nil, fmt.Errorf("printer tap %s: %w", cfg.Device, err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReportTimeout, DefaultReportTimeout)
	def(&cfg.GarbageEventInterval, 10*time.Minute)
	def(&cfg.StopGrace, 10*time.Second)
	def(&cfg.ReadTimeout, 100*time.Millisecond)
	def(&cfg.ReopenMin, 500*time.Millisecond)
	def(&cfg.ReopenMax, 30*time.Second)
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	tmpl := cfg.Template
	if cfg.Location != nil {
		tmpl = tmpl.WithLocation(cfg.Location)
	}
	return &Tap{cfg: cfg, tmpl: tmpl, sink: sink, mode: mode,
		log: log.With("device", cfg.Device, "port", cfg.Port, "template", tmpl.Name())}, nil
}

func serialMode(cfg TapConfig) (serial.Mode, error) {
	m := serial.Mode{BaudRate: cfg.Baud, DataBits: cfg.DataBits}
	if m.BaudRate == 0 {
		m.BaudRate = 9600
	}
	if m.BaudRate < 50 || m.BaudRate > 4000000 {
		return m, fmt.Errorf("baud %d is out of range", cfg.Baud)
	}
	if m.DataBits == 0 {
		m.DataBits = 8
	}
	if m.DataBits < 5 || m.DataBits > 8 {
		return m, fmt.Errorf("data bits %d is not 5, 6, 7 or 8", cfg.DataBits)
	}
	switch strings.ToLower(cfg.Parity) {
	case "", "none", "n":
		m.Parity = serial.NoParity
	case "odd", "o":
		m.Parity = serial.OddParity
	case "even", "e":
		m.Parity = serial.EvenParity
	case "mark", "m":
		m.Parity = serial.MarkParity
	case "space", "s":
		m.Parity = serial.SpaceParity
	default:
		return m, fmt.Errorf("parity %q is not none, odd, even, mark or space", cfg.Parity)
	}
	switch cfg.StopBits {
	case 0, 1:
		m.StopBits = serial.OneStopBit
	case 2:
		m.StopBits = serial.TwoStopBits
	default:
		return m, fmt.Errorf("stop bits %d is not 1 or 2", cfg.StopBits)
	}
	return m, nil
}

// Stats returns the counters so far; safe to call while Run runs.
func (t *Tap) Stats() TapStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

func (t *Tap) count(f func(*TapStats)) {
	t.mu.Lock()
	f(&t.stats)
	t.mu.Unlock()
}

// Run reads the port until ctx is done. When the port cannot be opened or
// disappears (USB adapter unplugged, device node gone), the report being
// printed is delivered with Complete=false and the port is reopened with
// back-off. Run returns nil when ctx is done; a report open at that moment
// is delivered, marked incomplete, before it returns.
func (t *Tap) Run(ctx context.Context) error {
	split := NewSplitter(t.tmpl, nil)
	st := &session{tap: t, split: split}
	split.onLine = st.onLine
	backoff := t.cfg.ReopenMin
	for {
		opened, err := st.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if opened {
			backoff = t.cfg.ReopenMin
		}
		t.log.Warn("printer port unavailable; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, t.cfg.ReopenMax)
	}
}

// Stream-mode telemetry is sent when a batch is full, at the start and end
// of a sterilize run, after streamPause without a byte, and at the latest
// maxBatchAge after its oldest sample.
const (
	streamPause = 2 * time.Second
	maxBatchAge = 15 * time.Second
)

// session is the state of Run: one Splitter across reopens, so a report is
// never split in two by a reconnect (a cut closes it first).
type session struct {
	tap      *Tap
	split    *Splitter
	lastByte time.Time
	batch    []protocol.Sample
	// batchSince is when the oldest pending sample arrived.
	batchSince time.Time
	cycle      uint64 // stream mode: the running cycle's number, 0 outside
	offline    bool   // an offline event was sent since the last online one
	ctx        context.Context

	// Garbage not yet reported in a garbage event.
	rejectedBytes    int64     // bytes of rejected reports, all time
	rejectedSince    int64     // reports rejected since the last event
	lastRejected     string    // why the last one was rejected
	garbageReported  int64     // garbage bytes reported so far
	linesReported    int64     // garbage lines reported so far
	garbageSince     time.Time // when unreported garbage was first seen
	lastGarbageEvent time.Time
}

// run opens the port once and reads it until an error or ctx is done.
// opened says the port was open for a while (the back-off restarts).
func (s *session) run(ctx context.Context) (opened bool, err error) {
	t := s.tap
	s.ctx = ctx
	mode := t.mode
	name := t.cfg.Port
	if t.cfg.FindPort != nil {
		if found, err := t.cfg.FindPort(); err == nil && found != "" {
			name = found
		} else if err != nil {
			t.log.Warn("could not find the port by its USB identity; trying the configured node", "err", err)
		}
	}
	port, err := serial.Open(name, &mode)
	if err != nil {
		s.wentOffline(ctx, fmt.Sprintf("open %s: %v", name, err))
		return false, fmt.Errorf("open %s: %w", name, err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(t.cfg.ReadTimeout); err != nil {
		return false, fmt.Errorf("set read timeout on %s: %w", name, err)
	}
	t.count(func(st *TapStats) { st.Opens++ })
	t.log.Info("printer port open", "node", name, "baud", mode.BaudRate)
	s.offline = false
	t.event(ctx, protocol.Event{Kind: protocol.EventOnline, At: time.Now().UTC(), Text: "printer port " + name + " open"})
	// One goroutine only reads the port into a bounded buffer; this one
	// parses and delivers, and may wait on the sink for as long as it
	// refuses a record: a printer does not wait, and a UART whose bytes
	// are not read overruns.
	in := newPortBuffer(t.cfg.BufferBytes, func(n int64) { t.count(func(st *TapStats) { st.DroppedBytes += n }) })
	readCtx, stopReading := context.WithCancel(ctx)
	var reader sync.WaitGroup
	reader.Go(func() { in.readFrom(readCtx, port) })
	defer func() {
		stopReading()
		port.Close() // unblocks a Read in progress
		reader.Wait()
	}()
	for {
		if ctx.Err() != nil {
			// What was read is processed before the tap goes: the end of
			// a report may be in it.
			stopReading()
			if data, lost, _ := in.take(); len(data) > 0 || lost.bytes > 0 {
				if lost.bytes > 0 {
					s.dropped(ctx, lost)
				}
				s.deliver(ctx, s.split.Write(data))
			}
			s.cut(ctx, "gateway stopping")
			return true, ctx.Err()
		}
		data, lost, err := in.next(ctx)
		if lost.bytes > 0 {
			s.dropped(ctx, lost)
		}
		if err != nil {
			s.deliver(ctx, s.split.Write(data))
			s.cut(ctx, "port read failed: "+err.Error())
			s.wentOffline(ctx, fmt.Sprintf("read %s: %v", name, err))
			return true, fmt.Errorf("read %s: %w", name, err)
		}
		n := len(data)
		buf := data
		now := time.Now()
		if n == 0 {
			s.deliver(ctx, s.split.Idle())
			if s.split.InReport() && now.Sub(s.lastByte) >= t.cfg.ReportTimeout {
				s.cut(ctx, fmt.Sprintf("no byte for %s inside a report", t.cfg.ReportTimeout))
			}
			s.reportGarbage(ctx, now, true, false)
			// Keep batching while lines flow (one per second); send what
			// is pending once the stream pauses or the batch grows old.
			if len(s.batch) > 0 && (now.Sub(s.lastByte) >= streamPause || now.Sub(s.batchSince) >= maxBatchAge) {
				s.flushTelemetry(ctx)
			}
			continue
		}
		s.lastByte = now
		t.count(func(st *TapStats) { st.BytesRead += int64(n) })
		s.deliver(ctx, s.split.Write(buf[:n]))
		s.reportGarbage(ctx, now, false, false)
	}
}

// dropped records bytes the buffer could not hold: the report they
// belonged to is cut (it has a hole), and a gap event says how many bytes
// were lost and when.
func (s *session) dropped(ctx context.Context, lost droppedSpan) {
	t := s.tap
	s.cut(ctx, fmt.Sprintf("%d bytes from the printer port were dropped", lost.bytes))
	t.log.Error("bytes from the printer port were dropped: the buffer was full while the journal refused records",
		"bytes", lost.bytes, "buffer_bytes", t.cfg.BufferBytes)
	t.event(ctx, protocol.Event{Kind: protocol.EventGap, At: time.Now().UTC(), From: lost.from.UTC(), To: lost.to.UTC(), Count: int(min(lost.bytes, int64(^uint32(0)>>1))),
		Text: fmt.Sprintf("%d bytes printed between %s and %s were dropped: the gateway's %d-byte buffer was full while the journal refused records; the report being printed is recorded as incomplete",
			lost.bytes, lost.from.UTC().Format(time.RFC3339), lost.to.UTC().Format(time.RFC3339), t.cfg.BufferBytes)})
}

// A burst of line noise becomes one garbage event: the event waits until
// the line is quiet, or garbageSettle at most while bytes keep coming.
const garbageSettle = 5 * time.Second

// reportGarbage sends a garbage event for the bytes that belonged to no
// record since the last one: at once when the line goes quiet after noise
// (or when force is set, at stop), then at most once per
// GarbageEventInterval while noise continues, each event counting all the
// bytes since the previous one.
func (s *session) reportGarbage(ctx context.Context, now time.Time, quiet, force bool) {
	t := s.tap
	st := s.split.Stats()
	total := st.GarbageBytes + s.rejectedBytes
	unreported := total - s.garbageReported
	if unreported <= 0 {
		return
	}
	if s.garbageSince.IsZero() {
		s.garbageSince = now
	}
	if !force {
		if !s.lastGarbageEvent.IsZero() && now.Sub(s.lastGarbageEvent) < t.cfg.GarbageEventInterval {
			return
		}
		if !quiet && now.Sub(s.garbageSince) < garbageSettle {
			return
		}
	}
	lines := st.GarbageLines - s.linesReported
	text := fmt.Sprintf("%d bytes on the printer line belonged to no report (%d lines of text", unreported, lines)
	if s.rejectedSince > 0 {
		text += fmt.Sprintf(", %d report starts without the template's required values: %s", s.rejectedSince, s.lastRejected)
	}
	text += ")"
	if st.LastGarbage != "" && lines > 0 {
		text += fmt.Sprintf("; last line: %q", truncateRunes(st.LastGarbage, 80))
	}
	t.log.Warn("bytes on the printer line belonged to no report", "bytes", unreported, "lines", lines,
		"rejected_reports", s.rejectedSince, "last", st.LastGarbage)
	t.event(ctx, protocol.Event{Kind: protocol.EventGarbage, At: now.UTC(), Count: int(min(unreported, int64(^uint32(0)>>1))), Text: text})
	s.garbageReported, s.linesReported, s.rejectedSince = total, st.GarbageLines, 0
	s.garbageSince, s.lastGarbageEvent = time.Time{}, now
	t.count(func(st *TapStats) { st.GarbageEvents++ })
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func (s *session) wentOffline(ctx context.Context, why string) {
	if s.offline {
		return
	}
	s.offline = true
	s.tap.event(ctx, protocol.Event{Kind: protocol.EventOffline, At: time.Now().UTC(), Text: why})
}

// cut ends the open report as incomplete, flushes telemetry and delivers
// even when ctx is already done: a report must not be lost because the
// gateway is stopping.
func (s *session) cut(ctx context.Context, why string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reports := s.split.Cut()
	if len(reports) > 0 {
		s.tap.log.Warn("report cut", "why", why)
	}
	s.deliver(ctx, reports)
	s.flushTelemetry(dctx)
	s.cycle = 0
	// Stopping: what noise there was is said before the tap goes.
	s.reportGarbage(dctx, time.Now(), true, ctx.Err() != nil)
}

func (s *session) onLine(line []byte) {
	t := s.tap
	if t.cfg.OnLine != nil {
		t.cfg.OnLine(line)
	}
	if t.tmpl.mode != ModeStream {
		return
	}
	sample, sterilize, ok := t.tmpl.StreamSample(line, time.Now())
	if !ok {
		return
	}
	if sterilize && s.cycle == 0 {
		// The same rule as the record's: the first sterilize line's time.
		s.flushTelemetry(s.ctx)
		s.cycle = uint64(sample.At.Unix())
	}
	if len(s.batch) == 0 {
		s.batchSince = time.Now()
	}
	s.batch = append(s.batch, sample)
	if !sterilize && s.cycle != 0 {
		// The line that closes the run belongs to the cycle's batch.
		s.flushTelemetry(s.ctx)
		s.cycle = 0
		return
	}
	if len(s.batch) >= t.tmpl.batch {
		s.flushTelemetry(s.ctx)
	}
}

// flushTelemetry sends the pending stream samples as one batch. Telemetry
// is live data: a sink error is logged, not retried (the record keeps the
// cycle's samples).
func (s *session) flushTelemetry(ctx context.Context) {
	if len(s.batch) == 0 {
		return
	}
	t := s.tap
	batch := protocol.Telemetry{Device: t.cfg.Device, Cycle: s.cycle, Samples: s.batch}
	s.batch = nil
	if err := t.sink.Telemetry(ctx, batch); err != nil {
		t.log.Warn("telemetry not delivered", "samples", len(batch.Samples), "err", err)
		return
	}
	t.count(func(st *TapStats) { st.Samples += int64(len(batch.Samples)) })
}

// deliver parses each report and hands the record to the sink, retrying
// until the sink accepts it: Sink.Cycle returning nil is the only moment
// the tap may forget a report. A report without the template's required
// values is not a record (its bytes are garbage); a copy of a cycle
// already journaled is planned by planCopy.
func (s *session) deliver(runCtx context.Context, reports []Report) {
	t := s.tap
	if len(reports) == 0 {
		s.syncStats()
		return
	}
	// A printed report cannot be read again: keep offering it to the sink
	// for as long as the gateway runs, and, once it is stopping, for a
	// bounded grace (the gateway closes the journal only after its
	// drivers have returned).
	ctx, cancel := context.WithCancel(context.WithoutCancel(runCtx))
	defer cancel()
	stopGrace := context.AfterFunc(runCtx, func() {
		timer := time.AfterFunc(t.cfg.StopGrace, cancel)
		context.AfterFunc(ctx, func() { timer.Stop() })
	})
	defer stopGrace()
	for _, rep := range reports {
		rec, perr := t.tmpl.ParseAt(rep.Raw, time.Now())
		rec.Device = t.cfg.Device
		if !rep.Ended {
			rec.Complete, rec.EndSeen = false, false
		}
		if t.tmpl.mode == ModeStream && !rep.AfterEnd {
			rec.Complete = false // the gateway did not see the run begin
		}
		if errors.Is(perr, ErrMissingRequired) {
			s.reject(rep, perr)
			continue
		}
		if perr != nil {
			t.log.Warn("report did not fully parse; kept as printed", "cycle", rec.Cycle, "bytes", len(rep.Raw), "err", perr)
			t.event(ctx, protocol.Event{Kind: protocol.EventGatewayAlarm, At: time.Now().UTC(), Cycle: rec.Cycle,
				Text: "printer report did not fully parse: " + perr.Error()})
		}
		prev, ok := s.journaled(ctx, &rec)
		if !ok {
			t.log.Error("stopping with an undelivered printer report", "cycle", rec.Cycle, "bytes", len(rep.Raw))
			return
		}
		plan := planCopy(prev, &rec)
		if plan.skip {
			t.log.Info("printer report is a copy of a journaled record; not journaled again", "cycle", rec.Cycle,
				"journaled", prev.ID, "why", plan.why, "complete", rec.Complete, "bytes", len(rep.Raw))
			t.count(func(st *TapStats) { st.Reprints++ })
			continue
		}
		rec.Revision, rec.Supersedes = plan.revision, plan.supersedes
		if !s.offer(ctx, rec) {
			t.log.Error("stopping with an undelivered printer report", "cycle", rec.Cycle, "bytes", len(rep.Raw))
			return
		}
		if plan.conflict != "" {
			t.log.Warn("two complete printouts of one cycle disagree; both are kept", "cycle", rec.Cycle, "supersedes", plan.supersedes, "differences", plan.conflict)
			t.event(ctx, protocol.Event{Kind: protocol.EventGatewayAlarm, At: time.Now().UTC(), Cycle: rec.Cycle,
				Text: fmt.Sprintf("two complete printouts of cycle %d disagree (%s): record %s is kept, revision %d supersedes it", rec.Cycle, plan.conflict, plan.supersedes, plan.revision)})
		}
		t.count(func(st *TapStats) {
			st.Records++
			if !rec.Complete {
				st.Incomplete++
			}
			if perr != nil {
				st.ParseErrors++
			}
			if rec.Revision > 1 {
				st.Revisions++
			}
		})
		if rec.Revision > 1 {
			t.log.Info("printer report recorded as a new revision", "cycle", rec.Cycle, "revision", rec.Revision,
				"supersedes", rec.Supersedes, "why", plan.why, "result", rec.Result, "complete", rec.Complete, "bytes", len(rep.Raw))
		} else {
			t.log.Info("printer report recorded", "cycle", rec.Cycle, "result", rec.Result, "complete", rec.Complete, "bytes", len(rep.Raw))
		}
	}
	s.syncStats()
}

// syncStats copies the Splitter's counters into the tap's.
func (s *session) syncStats() {
	st := s.split.Stats()
	s.tap.count(func(ts *TapStats) { ts.Split, ts.GarbageBytes = st, st.GarbageBytes+s.rejectedBytes })
}

// reject counts a report without the template's required values as
// garbage; the next garbage event says so.
func (s *session) reject(rep Report, err error) {
	t := s.tap
	s.rejectedBytes += int64(len(rep.Raw))
	s.rejectedSince++
	s.lastRejected = err.Error()
	if i := strings.Index(s.lastRejected, ErrMissingRequired.Error()); i >= 0 {
		s.lastRejected = strings.TrimPrefix(s.lastRejected[i+len(ErrMissingRequired.Error()):], ": ")
	}
	t.log.Debug("a report start without the required values; counted as garbage", "bytes", len(rep.Raw), "err", err)
	t.count(func(st *TapStats) { st.Rejected++ })
}

// journaled asks the history for the newest record of rec's cycle,
// retrying while the history fails; ok is false when ctx ended first.
func (s *session) journaled(ctx context.Context, rec *protocol.CycleRecord) (prev *protocol.CycleRecord, ok bool) {
	t := s.tap
	if t.cfg.History == nil {
		return nil, true
	}
	backoff := 100 * time.Millisecond
	for {
		prev, err := t.cfg.History.LatestCycleRecord(ctx, rec.Device, rec.CounterEpoch, rec.Cycle)
		if err == nil {
			return prev, true
		}
		t.log.Error("cannot tell whether this cycle was journaled before; retrying", "cycle", rec.Cycle, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// offer hands rec to the sink until it accepts it; false when ctx ended
// first.
func (s *session) offer(ctx context.Context, rec protocol.CycleRecord) bool {
	t := s.tap
	backoff := 100 * time.Millisecond
	for {
		err := t.sink.Cycle(ctx, rec)
		if err == nil {
			return true
		}
		t.log.Error("cycle record not accepted by the sink; retrying", "cycle", rec.Cycle, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (t *Tap) event(ctx context.Context, ev protocol.Event) {
	ev.Device = t.cfg.Device
	if err := t.sink.Event(ctx, ev); err != nil {
		t.log.Warn("event not delivered", "kind", ev.Kind, "err", err)
	}
}
