package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.bug.st/serial"

	"github.com/sterigate/sterigate/drivers/learn"
	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/gateway/config"
)

// rangeFlags collects repeated --range FUNCTION:FIRST-LAST flags.
type rangeFlags []learn.Range

func (r *rangeFlags) String() string { return fmt.Sprint(*r) }

func (r *rangeFlags) Set(s string) error {
	fn, span, ok := strings.Cut(s, ":")
	first, last, ok2 := strings.Cut(span, "-")
	if !ok2 {
		last = first
	}
	f, err1 := strconv.Atoi(fn)
	a, err2 := strconv.Atoi(first)
	b, err3 := strconv.Atoi(last)
	if !ok || err1 != nil || err2 != nil || err3 != nil || f < 1 || f > 4 || a < 0 || b > 65535 || a > b {
		return fmt.Errorf("%q: want FUNCTION:FIRST-LAST, e.g. 3:0-9999 (function 1-4, addresses 0-65535)", s)
	}
	*r = append(*r, learn.Range{Function: byte(f), Start: a, End: b + 1})
	return nil
}

// cmdLearn drafts a profile for an undocumented Modbus sterilizer: it
// scans which registers answer, records them while the user runs one
// cycle, and analyses the recording (or a recording file, --from).
func cmdLearn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("learn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tcpAddr := fs.String("tcp", "", "Modbus TCP device `host:port`")
	rtuPort := fs.String("rtu", "", "Modbus RTU serial `port`, e.g. /dev/ttyUSB0")
	rtuTCP := fs.String("rtu-tcp", "", "RTU frames over TCP: serial device server `host:port`")
	baud := fs.Int("baud", 19200, "RTU baud rate")
	parity := fs.String("parity", "E", "RTU parity: E, O or N")
	dataBits := fs.Int("data-bits", 8, "RTU data bits (Modbus RTU needs 8)")
	stopBits := fs.Int("stop-bits", 1, "RTU stop bits: 1 or 2")
	unit := fs.Int("unit", 1, "unit (slave) id, 1..247 (0 and 248-255 allowed with --tcp)")
	timeout := fs.Duration("timeout", time.Second, "reply timeout")
	rate := fs.Float64("rate", learn.DefaultRate, "requests per second at most (one at a time, never more than one outstanding)")
	duration := fs.Duration("duration", learn.DefaultDuration, "stop recording after this long even if no cycle end was recognised")
	out := fs.String("out", "draft.yaml", "write the draft profile to this `file`")
	record := fs.String("record", "", "write the recording to this `file` (default learn-<date>-<time>.jsonl)")
	from := fs.String("from", "", "analyse this recording `file` instead of reading a device")
	jsonOut := fs.Bool("json", false, "print the report as JSON (for tools)")
	name := fs.String("name", "", "profile name in the draft (default learned-unit<N>)")
	maxRegs := fs.Int("max-registers", 125, "registers per request at most (lower it for devices that refuse large requests)")
	speed := fs.Float64("speed", 1, "only to rehearse against 'sterigate sim --speed S': S device seconds per second (never on a real sterilizer)")
	var ranges rangeFlags
	fs.Var(&ranges, "range", "scan only `FUNCTION:FIRST-LAST` (repeatable; default 3:0-9999, 4:0-9999, 1:0-9999, 2:0-9999)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate learn --tcp HOST:PORT | --rtu PORT [--baud 19200 --parity E] | --rtu-tcp HOST:PORT\n"+
			"                       [--unit 1] [--duration 2h] [--out draft.yaml] [--record FILE] [--rate 5] [--json]\n"+
			"       sterigate learn --from RECORDING [--out draft.yaml] [--json]\n\n"+
			"Scans which registers a Modbus sterilizer answers, records them while you run one cycle, and\n"+
			"drafts a profile from what temperature, pressure, counters and codes did (docs/learn.md).\n"+
			"Sends only read requests. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{"learn: " + err.Error()}
	}
	bad := func(format string, a ...any) error {
		fs.Usage()
		return usageError{"learn: " + fmt.Sprintf(format, a...)}
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	links := 0
	for _, s := range []string{*tcpAddr, *rtuPort, *rtuTCP} {
		if s != "" {
			links++
		}
	}
	if *from != "" {
		if links > 0 {
			return bad("--from analyses a file: give no device (--tcp, --rtu, --rtu-tcp)")
		}
		return learnFromFile(*from, *out, *name, *jsonOut, stdout)
	}
	if links != 1 {
		return bad("give exactly one of --tcp, --rtu, --rtu-tcp (or --from FILE)")
	}
	minUnit, maxUnit := 1, 247
	if *tcpAddr != "" {
		minUnit, maxUnit = 0, 255
	}
	if *unit < minUnit || *unit > maxUnit {
		return bad("--unit %d out of range %d..%d", *unit, minUnit, maxUnit)
	}
	if !(*rate > 0) {
		return bad("--rate %v: want a positive number of requests per second", *rate)
	}
	if !(*speed >= 1) || *speed > 10000 {
		return bad("--speed %v: want 1 (a real device) or a simulator's speed up to 10000", *speed)
	}
	if *duration <= 0 {
		return bad("--duration %v: want a positive duration, e.g. 90m", *duration)
	}
	if *maxRegs < 1 || *maxRegs > 125 {
		return bad("--max-registers %d out of range 1..125", *maxRegs)
	}
	if *record == "" {
		*record = "learn-" + time.Now().Format("20060102-150405") + ".jsonl"
	}

	reader, desc, err := openLearnLink(ctx, *tcpAddr, *rtuPort, *rtuTCP, config.Serial{Port: *rtuPort, Baud: *baud, Parity: *parity, DataBits: *dataBits, StopBits: *stopBits}, *timeout)
	if err != nil {
		return err
	}
	defer reader.Close()

	recFile, err := os.OpenFile(*record, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("learn: --record: %w (a recording is never overwritten)", err)
	}
	defer recFile.Close()

	progress := newLearnProgress(stderr)
	fmt.Fprintf(stderr, "learn: scanning %s unit %d, read-only, at most %g requests/s\n", desc, *unit, *rate**speed)
	sum, err := learn.Scan(ctx, reader, learn.ScanOptions{Unit: byte(*unit), Rate: *rate * *speed, Ranges: ranges, MaxRegisters: *maxRegs, Progress: progress.scan})
	progress.done()
	if err != nil {
		return fmt.Errorf("learn: scan: %w", err)
	}
	regs, bits := sum.ReadableCount()
	if regs+bits == 0 {
		return fmt.Errorf("learn: unit %d answers, but no address in the scanned ranges is readable (give --range if its registers are elsewhere)", *unit)
	}
	blocks, notes := learn.WatchBlocks(sum.Readable, sum.MaxRegisters, 0)
	sum.Notes = append(sum.Notes, notes...)
	roundS := float64(len(blocks)) / *rate
	fmt.Fprintf(stderr, "learn: %d registers and %d bits readable, read in %d requests per round (a round every %.1f s)\n", regs, bits, len(blocks), max(1, roundS))
	fmt.Fprintf(stderr, "learn: recording to %s. Start a cycle on the sterilizer now (a full steam cycle with its hold);\n"+
		"       learn stops by itself after the cycle ends, or press Ctrl-C to stop and analyse what was recorded.\n", *record)
	rec, err := learn.Record(ctx, reader, learn.RecordOptions{Unit: byte(*unit), Device: desc, Blocks: blocks, Scan: sum,
		TimeScale: *speed, Rate: *rate * *speed, Duration: *duration, Out: recFile, Progress: progress.record})
	progress.done()
	if err != nil && rec == nil {
		return fmt.Errorf("learn: %w", err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "learn: %v; analysing what was recorded\n", err)
	}
	if err := recFile.Close(); err != nil {
		return fmt.Errorf("learn: --record: %w", err)
	}
	return learnReport(rec, *record, *out, *name, *jsonOut, sum, stdout)
}

// openLearnLink opens the one link learn reads through. For a serial port
// it first refuses a port another sterigate process polls, and turns the
// exclusive-open failure into a message that says so.
func openLearnLink(ctx context.Context, tcpAddr, rtuPort, rtuTCP string, serialCfg config.Serial, timeout time.Duration) (learnLink, string, error) {
	dev := config.Device{Timeout: timeout}
	var desc string
	switch {
	case rtuPort != "":
		users, err := learn.SerialPortUsers(rtuPort)
		if err != nil {
			return nil, "", fmt.Errorf("learn: --rtu %s: %w", rtuPort, err)
		}
		if len(users) > 0 {
			return nil, "", fmt.Errorf("learn: refusing to read %s: sterigate process %d (%s) has it open and polls that bus; two masters on one RS-485 line garble each other's frames: stop it, or take the device out of its config, first",
				rtuPort, users[0].PID, users[0].Command)
		}
		dev.Driver, dev.Serial = config.DriverModbusRTU, serialCfg
		desc = fmt.Sprintf("Modbus RTU %s %d %s", rtuPort, serialCfg.Baud, serialCfg.Parity)
	case rtuTCP != "":
		dev.Driver, dev.Address = config.DriverModbusRTUTCP, rtuTCP
		desc = "Modbus RTU over TCP " + rtuTCP
	default:
		dev.Driver, dev.Address = config.DriverModbusTCP, tcpAddr
		desc = "Modbus TCP " + tcpAddr
	}
	t, err := modbusTransport(dev)
	if err != nil {
		return nil, "", fmt.Errorf("learn: %w", err)
	}
	// Open now, so a port another program holds is refused before the
	// scan starts, with a message that says so.
	if _, err := t.Open(ctx); err != nil {
		var pe *serial.PortError
		if errors.As(err, &pe) && pe.Code() == serial.PortBusy {
			return nil, "", fmt.Errorf("learn: refusing to read %s: another program holds it open exclusively (a 'sterigate run' polling this bus?); stop it first", rtuPort)
		}
		return nil, "", fmt.Errorf("learn: %w", err)
	}
	return reopeningReader{t}, desc, nil
}

// learnLink is what learn needs from a link: reads, and closing.
type learnLink interface {
	modbus.RegisterReader
	Close() error
}

// reopeningReader reads through a transport, reopening it first when an
// earlier error closed it (a timeout on TCP, a lost serial adapter).
type reopeningReader struct{ modbus.Transport }

func (r reopeningReader) ReadRegisters(ctx context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	if !r.IsOpen() {
		if _, err := r.Open(ctx); err != nil {
			return nil, err
		}
	}
	return r.Transport.ReadRegisters(ctx, unit, function, address, quantity)
}

func learnFromFile(path, out, name string, jsonOut bool, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("learn: --from: %w", err)
	}
	defer f.Close()
	rec, err := learn.ReadRecording(f, path)
	if err != nil {
		return fmt.Errorf("learn: %w", err)
	}
	return learnReport(rec, path, out, name, jsonOut, rec.Header.Scan, stdout)
}

// learnReport analyses, writes the draft and prints the report. A draft
// with missing roles is still written (for a person to finish) and the
// command fails, saying what is missing.
func learnReport(rec *learn.Recording, recPath, out, name string, jsonOut bool, scan *learn.ScanSummary, stdout io.Writer) error {
	res := learn.Analyse(rec)
	text, draftErr := learn.Draft(res, rec, learn.DraftOptions{Name: name, Source: recPath})
	rep := &learn.Report{Device: rec.Header.Device, Unit: rec.Header.Unit, Scan: scan, Recording: recPath, Stop: rec.Stop, Result: res}
	if text != nil {
		if err := os.WriteFile(out, text, 0o644); err != nil {
			return fmt.Errorf("learn: --out: %w", err)
		}
		rep.Draft = out
	}
	if draftErr != nil {
		rep.DraftError = draftErr.Error()
	}
	var err error
	if jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if draftErr != nil {
		return fmt.Errorf("learn: %w", draftErr)
	}
	return nil
}

// learnProgress shows the scan and the recording on stderr: one line
// rewritten in place on a terminal, a line every few seconds otherwise.
type learnProgress struct {
	w        io.Writer
	terminal bool
	last     time.Time
	phases   string
	wrote    bool
}

func newLearnProgress(w io.Writer) *learnProgress {
	p := &learnProgress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *learnProgress) line(s string, force bool) {
	now := time.Now()
	if p.terminal {
		if !force && now.Sub(p.last) < 200*time.Millisecond {
			return
		}
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.wrote = true
	} else {
		if !force && now.Sub(p.last) < 10*time.Second {
			return
		}
		fmt.Fprintln(p.w, s)
	}
	p.last = now
}

// done ends the in-place line.
func (p *learnProgress) done() {
	if p.terminal && p.wrote {
		fmt.Fprintln(p.w)
		p.wrote = false
	}
}

func (p *learnProgress) scan(s learn.ScanProgress) {
	p.line(fmt.Sprintf("scan: function %d address %d, %d requests, %d addresses readable", s.Function, s.Address, s.Requests, s.Readable), false)
}

func (p *learnProgress) record(pr learn.Progress) {
	const width = 30
	frac := min(1, pr.Elapsed/pr.Duration)
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat("-", width-int(frac*width))
	names := make([]string, len(pr.Phases))
	for i, ph := range pr.Phases {
		names[i] = string(ph)
	}
	phases := strings.Join(names, " → ")
	if phases == "" {
		phases = "none yet (they show once the plateau has lasted a minute)"
	}
	state := ""
	if pr.EndSeen {
		state = fmt.Sprintf(", cycle end seen at %s", time.Duration(pr.EndAt*float64(time.Second)).Round(time.Second))
	}
	if pr.Stop != "" {
		state += "; stopped: " + pr.Stop
	}
	force := phases != p.phases || pr.Stop != ""
	p.phases = phases
	p.line(fmt.Sprintf("[%s] %s / %s  %d registers, %d changed, %d failed reads; phases: %s%s",
		bar, time.Duration(pr.Elapsed*float64(time.Second)).Round(time.Second), time.Duration(pr.Duration*float64(time.Second)).Round(time.Second),
		pr.Registers, pr.Changed, pr.Failed, phases, state), force)
}
