package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sterigate/sterigate/drivers/printer"
	"github.com/sterigate/sterigate/protocol"
)

// cmdTap shows a printer stream live: every line as it arrives, with
// control bytes made visible, and each report's parsed record as indented
// JSON, so a commissioning engineer can check port settings and write or
// fix a template against the real device.
func cmdTap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.String("port", "", "serial `port` the sterilizer's printer output is wired to, e.g. /dev/ttyUSB0")
	baud := fs.Int("baud", 9600, "baud rate (Amsco LS streams use 38400)")
	dataBits := fs.Int("data-bits", 8, "data bits: 5, 6, 7 or 8")
	parity := fs.String("parity", "none", "parity: none, odd, even, mark or space")
	stopBits := fs.Int("stop-bits", 1, "stop bits: 1 or 2")
	templateName := fs.String("template", "statclave-en", "printout template: a built-in `name` ("+strings.Join(printer.BuiltinTemplateNames(), ", ")+") or a YAML file")
	raw := fs.Bool("raw", false, "show the raw lines only, do not print parsed records")
	device := fs.String("device", "tap", "device `id` to put in the records")
	timezone := fs.String("timezone", "", "time zone the device's clock prints in (default: the template's)")
	reportTimeout := fs.Duration("report-timeout", printer.DefaultReportTimeout, "end a report without its end line after this much silence")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate tap --port PORT [--baud 9600 --data-bits 8 --parity none --stop-bits 1]\n"+
			"                     [--template NAME|FILE] [--raw] [--timezone Europe/Paris]\n\n"+
			"Shows the printer stream live (control bytes as <ESC>, <CR>, <0xF8>) and each report's\n"+
			"parsed cycle record as JSON. Reads only; stop with Ctrl-C. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		fs.Usage()
		return usageError{"tap: " + fmt.Sprintf(format, a...)}
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if *port == "" {
		return bad("--port is required")
	}
	tmpl, err := printer.ResolveTemplate(*templateName)
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	var loc *time.Location
	if *timezone != "" {
		if loc, err = time.LoadLocation(*timezone); err != nil {
			return bad("--timezone %q: %v", *timezone, err)
		}
	}
	out := &tapPrinter{w: stdout, raw: *raw}
	tap, err := printer.NewTap(printer.TapConfig{
		Device: *device, Port: *port, Baud: *baud, DataBits: *dataBits, Parity: *parity, StopBits: *stopBits,
		Template: tmpl, Location: loc, ReportTimeout: *reportTimeout, OnLine: out.line,
	}, out, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return bad("%v", err)
	}
	fmt.Fprintf(stderr, "tap: reading %s at %d baud, template %s; Ctrl-C to stop\n", *port, *baud, tmpl.Name())
	err = tap.Run(ctx)
	out.finish()
	st := tap.Stats()
	fmt.Fprintf(stderr, "tap: %d bytes read, %d records (%d incomplete, %d with parse errors), %d garbage bytes (%d report starts without their required values)\n",
		st.BytesRead, st.Records, st.Incomplete, st.ParseErrors, st.GarbageBytes, st.Rejected)
	return err
}

// tapPrinter is the tap command's sink: it prints instead of journaling.
// A CR LF pair is shown on one output line, as "text<CR><LF>".
type tapPrinter struct {
	mu        sync.Mutex
	w         io.Writer
	raw       bool
	pendingCR bool // the last line ended in CR and its output line is open
}

func (p *tapPrinter) line(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pendingCR && string(line) == "\n" {
		fmt.Fprintln(p.w, "<LF>")
		p.pendingCR = false
		return
	}
	p.closeLine()
	fmt.Fprint(p.w, "| ", printer.Visible(line))
	if strings.HasSuffix(string(line), "\r") {
		p.pendingCR = true
		return
	}
	fmt.Fprintln(p.w)
}

// closeLine ends an output line left open after a CR.
func (p *tapPrinter) closeLine() {
	if p.pendingCR {
		fmt.Fprintln(p.w)
		p.pendingCR = false
	}
}

func (p *tapPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLine()
}

func (p *tapPrinter) Cycle(_ context.Context, rec protocol.CycleRecord) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.raw {
		return nil
	}
	p.closeLine()
	n := len(rec.Raw)
	rec.Raw = nil // shown above, line by line
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(p.w, "=== report: %d bytes, cycle %d, result %s, complete %v\n%s\n", n, rec.Cycle, rec.Result, rec.Complete, js)
	return nil
}

func (p *tapPrinter) Telemetry(context.Context, protocol.Telemetry) error { return nil }

func (p *tapPrinter) Event(_ context.Context, ev protocol.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind == protocol.EventGatewayAlarm {
		p.closeLine()
		fmt.Fprintf(p.w, "=== %s\n", ev.Text)
	}
	return nil
}
