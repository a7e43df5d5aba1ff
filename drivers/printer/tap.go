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
	// Complete=false. Default 60 s.
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
}

// TapStats counts what a Tap has done.
type TapStats struct {
	Records     int64 // records delivered to the sink
	Incomplete  int64 // of which Complete=false
	ParseErrors int64 // records whose report did not fully parse
	Opens       int64 // successful port opens
	Samples     int64 // stream-mode samples delivered as telemetry
	BytesRead   int64 // bytes read from the port
	Split       SplitStats
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
	def(&cfg.ReportTimeout, 60*time.Second)
	def(&cfg.ReadTimeout, 100*time.Millisecond)
	def(&cfg.ReopenMin, 500*time.Millisecond)
	def(&cfg.ReopenMax, 30*time.Second)
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
	buf := make([]byte, 4096)
	for {
		if ctx.Err() != nil {
			s.cut(ctx, "gateway stopping")
			return true, ctx.Err()
		}
		// A timeout is (0, nil) with go.bug.st/serial (libraries.md §3):
		// it is the silence tick, not data and not an error.
		n, err := port.Read(buf)
		if err != nil {
			s.cut(ctx, "port read failed: "+err.Error())
			s.wentOffline(ctx, fmt.Sprintf("read %s: %v", name, err))
			return true, fmt.Errorf("read %s: %w", name, err)
		}
		now := time.Now()
		if n == 0 {
			s.deliver(ctx, s.split.Idle())
			if s.split.InReport() && now.Sub(s.lastByte) >= t.cfg.ReportTimeout {
				s.cut(ctx, fmt.Sprintf("no byte for %s inside a report", t.cfg.ReportTimeout))
			}
			// Keep batching while lines flow (one per second); send what
			// is pending once the stream pauses or the batch grows old.
			if len(s.batch) > 0 && (now.Sub(s.lastByte) >= streamPause || now.Sub(s.batchSince) >= maxBatchAge) {
				s.flushTelemetry(ctx)
			}
			continue
		}
		s.lastByte = now
		t.count(func(st *TapStats) { st.BytesRead += int64(n) })
		before := s.split.Stats()
		reports := s.split.Write(buf[:n])
		if after := s.split.Stats(); after.GarbageLines > before.GarbageLines && t.tmpl.mode == ModeReport {
			t.log.Info("ignored bytes between reports", "lines", after.GarbageLines-before.GarbageLines, "garbage_bytes_total", after.GarbageBytes, "last", after.LastGarbage)
		}
		s.deliver(ctx, reports)
	}
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
	s.deliver(dctx, reports)
	s.flushTelemetry(dctx)
	s.cycle = 0
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

// deliverGrace bounds how long a stopping tap keeps offering reports to
// the sink.
const deliverGrace = 10 * time.Second

// deliver parses each report and hands the record to the sink, retrying
// until the sink accepts it: Sink.Cycle returning nil is the only moment
// the tap may forget a report.
func (s *session) deliver(runCtx context.Context, reports []Report) {
	t := s.tap
	// A printed report cannot be read again: when the gateway is stopping,
	// still give the sink a bounded time to take what was printed. The
	// gateway closes the journal only after its drivers have returned.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), deliverGrace)
	defer cancel()
	stopping := runCtx.Done()
	for _, rep := range reports {
		rec, perr := t.tmpl.ParseAt(rep.Raw, time.Now())
		rec.Device = t.cfg.Device
		if !rep.Ended {
			rec.Complete = false
		}
		if t.tmpl.mode == ModeStream && !rep.AfterEnd {
			rec.Complete = false // the gateway did not see the run begin
		}
		if perr != nil {
			t.log.Warn("report did not fully parse; kept as printed", "cycle", rec.Cycle, "bytes", len(rep.Raw), "err", perr)
			t.event(ctx, protocol.Event{Kind: protocol.EventGatewayAlarm, At: time.Now().UTC(), Cycle: rec.Cycle,
				Text: "printer report did not fully parse: " + perr.Error()})
		}
		backoff := 100 * time.Millisecond
		for {
			err := t.sink.Cycle(ctx, rec)
			if err == nil {
				break
			}
			t.log.Error("cycle record not accepted by the sink; retrying", "cycle", rec.Cycle, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				t.log.Error("stopping with an undelivered printer report", "cycle", rec.Cycle, "bytes", len(rep.Raw))
				return
			case <-stopping:
				stopping = nil // keep retrying until the grace period ends
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
		t.count(func(st *TapStats) {
			st.Records++
			if !rec.Complete {
				st.Incomplete++
			}
			if perr != nil {
				st.ParseErrors++
			}
			st.Split = s.split.Stats()
		})
		t.log.Info("printer report recorded", "cycle", rec.Cycle, "result", rec.Result, "complete", rec.Complete, "bytes", len(rep.Raw))
	}
	t.count(func(st *TapStats) { st.Split = s.split.Stats() })
}

func (t *Tap) event(ctx context.Context, ev protocol.Event) {
	ev.Device = t.cfg.Device
	if err := t.sink.Event(ctx, ev); err != nil {
		t.log.Warn("event not delivered", "kind", ev.Kind, "err", err)
	}
}
