package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/scenario"
)

func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tcp := fs.String("modbus-tcp", "", "serve Modbus TCP on this address, e.g. 127.0.0.1:1502 (port 0: a free port)")
	perDevice := fs.Bool("port-per-device", false, "one TCP port per device (PORT, PORT+1, …) instead of unit ids 1..N on one port")
	devices := fs.Int("devices", 1, "number of autoclaves (1 to 247)")
	speed := fs.Float64("speed", 1, "simulated seconds per real second (60: a 28 min cycle in 28 s)")
	seed := fs.Int64("seed", 1, "random seed: the same seed and scenario give the same run")
	shuffle := fs.Int64("shuffle", 0, "serve the registers in another layout drawn from this `seed` (moved, re-typed, re-ordered; for testing 'sterigate learn')")
	scenarioPath := fs.String("scenario", "", "scenario YAML file (default: 134-porous back to back; see docs/simulator.md)")
	truthPath := fs.String("truth", "", "write one JSON line per finished cycle (the ground truth) to this file")
	rtu := fs.String("rtu", "", "serve Modbus RTU (units 1..N) on a pseudo-terminal linked at this path")
	rtuBaud := fs.Int("rtu-baud", 19200, "RTU timing (t3.5) for this line speed")
	printer := fs.String("printer", "", "printer port: pseudo-terminal linked at this path (PATH-N per device when --devices > 1)")
	printerStyle := fs.String("printer-style", "en", "printout style: en, de or stream")
	printerBaud := fs.Int("printer-baud", 9600, "printer line speed (bytes are paced to it)")
	printerEOL := fs.String("printer-eol", "crlf", "printer line ending: crlf, lf or cr")
	printerCharset := fs.String("printer-charset", "", "printer code page: cp850, cp437, latin1 or ascii (default per style)")
	instantFinish := fs.Bool("instant-finish", false, "devices go straight back to idle when a cycle ends (no complete or stopped state for a poll to see), for testing cycle_end: next_cycle_starts")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate sim --modbus-tcp 127.0.0.1:1502 [--speed 60] [--devices N] [flags]\n\nRuns simulated autoclaves until SIGTERM or SIGINT. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError{fmt.Sprintf("sim: unexpected argument %q", fs.Arg(0))}
	}
	if *devices < 1 || *devices > 247 {
		return usageError{fmt.Sprintf("sim: --devices %d is out of range (1 to 247)", *devices)}
	}
	if !(*speed > 0) {
		return usageError{fmt.Sprintf("sim: --speed %g must be positive", *speed)}
	}
	eols := map[string]string{"crlf": "\r\n", "lf": "\n", "cr": "\r"}
	eol, ok := eols[*printerEOL]
	if !ok {
		return usageError{fmt.Sprintf("sim: --printer-eol %q is not crlf, lf or cr", *printerEOL)}
	}
	if *tcp == "" && *rtu == "" && *printer == "" {
		fs.Usage()
		return usageError{"sim: give at least one of --modbus-tcp, --rtu, --printer"}
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return usageError{"sim: " + err.Error()}
	}
	opts := sim.Options{
		Devices: *devices, Speed: *speed, Seed: *seed, ModbusTCP: *tcp, PortPerDevice: *perDevice,
		Logger: log, RTU: *rtu, RTUBaud: *rtuBaud,
		Printer: *printer, PrinterStyle: *printerStyle, PrinterBaud: *printerBaud,
		PrinterLineEnding: eol, PrinterCharset: *printerCharset, InstantFinish: *instantFinish,
	}
	if *scenarioPath != "" {
		if opts.Scenario, err = scenario.Load(*scenarioPath); err != nil {
			return err
		}
	}
	shuffled := false
	fs.Visit(func(f *flag.Flag) { shuffled = shuffled || f.Name == "shuffle" })
	if shuffled {
		opts.Shuffle = sim.NewShuffle(*shuffle)
		log.Info("registers shuffled", "seed", *shuffle, "layout", opts.Shuffle.String())
	}
	// One writer for the console: the simulator's lines must not interleave.
	console := &lockedWriter{w: stdout}
	opts.Console = console
	if *truthPath != "" {
		f, err := os.Create(*truthPath)
		if err != nil {
			return fmt.Errorf("sim: --truth: %w", err)
		}
		defer f.Close()
		// Unbuffered: each line is one write, so a test tailing the file
		// sees every finished cycle at once.
		opts.Truth = f
	}
	s, err := sim.New(opts)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// lockedWriter serialises writes and flushes each one.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bw := bufio.NewWriter(l.w)
	n, err := bw.Write(p)
	if err == nil {
		err = bw.Flush()
	}
	return n, err
}
