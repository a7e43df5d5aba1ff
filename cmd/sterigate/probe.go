package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/gateway/config"
)

// probeTypes are the types --type decodes raw registers as; the decoding
// is drivers/profile's, the same a profile field of that type gets.
var probeTypes = []profile.Type{profile.TypeU16, profile.TypeI16, profile.TypeU32, profile.TypeI32, profile.TypeF32}

// probeOrders are the byte orders --order accepts.
var probeOrders = []profile.Order{profile.OrderABCD, profile.OrderCDAB, profile.OrderBADC, profile.OrderDCBA}

// cmdProbe reads registers from a Modbus TCP, RTU or RTU-over-TCP device
// and prints them raw (like mbpoll) and, with --profile, decoded; --type
// decodes them without a profile, --watch polls until interrupted: the
// commissioning engineer's first check that wiring, settings and profile
// are right. It reads through the transports the gateway uses and sends
// only read function codes.
func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tcpAddr := fs.String("tcp", "", "Modbus TCP device `host:port`")
	rtuPort := fs.String("rtu", "", "Modbus RTU serial `port`, e.g. /dev/ttyUSB0")
	rtuTCP := fs.String("rtu-tcp", "", "RTU frames over TCP: serial device server `host:port`")
	baud := fs.Int("baud", 19200, "RTU baud rate")
	parity := fs.String("parity", "E", "RTU parity: E, O or N")
	dataBits := fs.Int("data-bits", 8, "RTU data bits (Modbus RTU needs 8)")
	stopBits := fs.Int("stop-bits", 1, "RTU stop bits: 1 or 2")
	unit := fs.Int("unit", 1, "unit (slave) id, 1..247 (0 allowed with --tcp)")
	function := fs.Int("function", 3, "read function: 3 holding registers, 4 input registers, 1 coils, 2 discrete inputs")
	address := fs.Int("address", 0, "first register, zero-based as on the wire (40001 is 0)")
	count := fs.Int("count", 24, "number of registers (or bits) to read")
	timeout := fs.Duration("timeout", time.Second, "reply timeout")
	profileName := fs.String("profile", "", "decode with this profile: a built-in `name` or a YAML file (reads the profile's blocks instead of --function/--address/--count)")
	typeName := fs.String("type", "", "decode the registers as `type` u16, i16, u32, i32 or f32, without a profile")
	orderName := fs.String("order", "ABCD", "byte `order` of --type: ABCD (big-endian), CDAB (words swapped), BADC (bytes swapped), DCBA (little-endian)")
	watch := fs.Bool("watch", false, "poll again every --interval until interrupted (Ctrl-C), like mbpoll")
	interval := fs.Duration("interval", time.Second, "time between polls with --watch")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sterigate probe --tcp HOST:PORT | --rtu PORT [--baud 19200 --parity E] | --rtu-tcp HOST:PORT\n"+
			"                       [--unit 1 --function 3 --address 0 --count 24] [--profile NAME|FILE | --type f32 --order CDAB] [--watch]\n\n"+
			"Reads registers and prints them raw and, with --profile or --type, decoded. Sends only read functions. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		fs.Usage()
		return usageError{"probe: " + fmt.Sprintf(format, a...)}
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
	if links != 1 {
		return bad("give exactly one of --tcp, --rtu, --rtu-tcp")
	}
	minUnit := 1
	if *tcpAddr != "" {
		minUnit = 0 // Modbus TCP devices often answer on unit 0 or 255
	}
	if *unit < minUnit || *unit > 255 || (*tcpAddr == "" && *unit > 247) {
		return bad("--unit %d out of range (RTU: 1..247; TCP: 0..255)", *unit)
	}
	if *watch && *interval <= 0 {
		return bad("--interval %s must be positive", *interval)
	}
	var blocks []profile.Block
	var prof *profile.Profile
	if *profileName != "" {
		if *typeName != "" {
			return bad("give --profile or --type, not both")
		}
		p, err := profile.Resolve(*profileName)
		if err != nil {
			return err
		}
		prof, blocks = p, p.Blocks
	} else {
		if *function < 1 || *function > 4 || !modbus.IsReadFunction(byte(*function)) {
			return bad("--function %d: only the read functions 1, 2, 3, 4 are allowed (sterigate never writes)", *function)
		}
		if *address < 0 || *address > 65535 {
			return bad("--address %d out of range 0..65535", *address)
		}
		if limit := map[int]int{1: 2000, 2: 2000, 3: 125, 4: 125}[*function]; *count < 1 || *count > limit {
			return bad("--count %d out of range (1..125 registers for functions 3 and 4, 1..2000 bits for 1 and 2)", *count)
		}
		blocks = []profile.Block{{Function: byte(*function), Start: uint16(*address), Count: uint16(*count)}}
	}
	var as *profile.Field
	if *typeName != "" {
		typ, order := profile.Type(strings.ToLower(*typeName)), profile.Order(strings.ToUpper(*orderName))
		if !slices.Contains(probeTypes, typ) {
			return bad("--type %q is not one of u16, i16, u32, i32, f32", *typeName)
		}
		if !slices.Contains(probeOrders, order) {
			return bad("--order %q is not one of ABCD, CDAB, BADC, DCBA", *orderName)
		}
		if *function < 3 {
			return bad("--type decodes registers: use it with --function 3 or 4")
		}
		as = &profile.Field{Function: byte(*function), Type: typ, Order: order, Scale: 1}
	}

	dev := config.Device{Timeout: *timeout}
	var desc string
	switch {
	case *rtuPort != "":
		dev.Driver = config.DriverModbusRTU
		dev.Serial = config.Serial{Port: *rtuPort, Baud: *baud, Parity: *parity, DataBits: *dataBits, StopBits: *stopBits}
		desc = fmt.Sprintf("RTU %s %d %d%s%d", *rtuPort, *baud, *dataBits, strings.ToUpper((*parity)[:min(1, len(*parity))]), *stopBits)
	case *rtuTCP != "":
		dev.Driver, dev.Address = config.DriverModbusRTUTCP, *rtuTCP
		desc = "RTU over TCP " + *rtuTCP
	default:
		dev.Driver, dev.Address = config.DriverModbusTCP, *tcpAddr
		desc = "Modbus TCP " + *tcpAddr
	}
	t, err := modbusTransport(dev)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer t.Close()

	pr := prober{t: t, out: stdout, desc: desc, unit: byte(*unit), blocks: blocks, profile: prof, as: as}
	if !*watch {
		return pr.poll(ctx)
	}
	fmt.Fprintf(stdout, "-- polling unit %d every %s; Ctrl-C to stop\n", *unit, *interval)
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for n := 1; ; n++ {
		fmt.Fprintf(stdout, "\n-- poll %d at %s\n", n, time.Now().Format("15:04:05"))
		if err := pr.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Watching is for seeing a device come and go: say what went
			// wrong and carry on.
			fmt.Fprintf(stdout, "%v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// prober reads a probe's blocks once and prints them.
type prober struct {
	t       modbus.Transport
	out     io.Writer
	desc    string
	unit    byte
	blocks  []profile.Block
	profile *profile.Profile
	as      *profile.Field // --type: how to decode the raw registers
}

func (p prober) poll(ctx context.Context) error {
	if !p.t.IsOpen() {
		if _, err := p.t.Open(ctx); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	data := make([][]uint16, len(p.blocks))
	for i, b := range p.blocks {
		fmt.Fprintf(p.out, "-- %s, unit %d, function %d (%s), address %d, count %d\n", p.desc, p.unit, b.Function, functionName(b.Function), b.Start, b.Count)
		start := time.Now()
		values, err := p.t.ReadRegisters(ctx, p.unit, b.Function, b.Start, b.Count)
		if err != nil {
			return fmt.Errorf("probe: read function %d address %d count %d: %w", b.Function, b.Start, b.Count, err)
		}
		printRegisters(p.out, b, values)
		fmt.Fprintf(p.out, "(reply in %s)\n", time.Since(start).Round(100*time.Microsecond))
		data[i] = values
	}
	if p.as != nil {
		printAs(p.out, *p.as, p.blocks[0], data[0])
	}
	if p.profile == nil {
		return nil
	}
	return printDecoded(p.out, p.profile, data)
}

// printAs decodes consecutive values of one type from a block's registers,
// with drivers/profile's decoding.
func printAs(w io.Writer, f profile.Field, b profile.Block, values []uint16) {
	span := f.Type.Registers()
	fmt.Fprintf(w, "\n-- as %s, order %s\n", f.Type, f.Order)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ADDRESS\tVALUE\t")
	for i := 0; i+span <= len(values); i += span {
		f.Address = b.Start + uint16(i)
		v, err := f.Value(values[i : i+span])
		text := formatValue(v)
		if err != nil {
			text = err.Error()
		}
		fmt.Fprintf(tw, "%d\t%s\t\n", f.Address, text)
	}
	tw.Flush()
	if rest := len(values) % span; rest != 0 {
		fmt.Fprintf(w, "(register %d left over: %s values take %d registers)\n", int(b.Start)+len(values)-rest, f.Type, span)
	}
}

func functionName(fc byte) string {
	switch fc {
	case 1:
		return "coils"
	case 2:
		return "discrete inputs"
	case 3:
		return "holding registers"
	case 4:
		return "input registers"
	}
	return "?"
}

func printRegisters(w io.Writer, b profile.Block, values []uint16) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if b.Function <= 2 {
		fmt.Fprintln(tw, "ADDRESS\tBIT\t")
		for i, v := range values {
			fmt.Fprintf(tw, "%d\t%d\t\n", int(b.Start)+i, v)
		}
	} else {
		fmt.Fprintln(tw, "ADDRESS\tHEX\tUNSIGNED\tSIGNED\t")
		for i, v := range values {
			fmt.Fprintf(tw, "%d\t0x%04X\t%d\t%d\t\n", int(b.Start)+i, v, v, int16(v))
		}
	}
	tw.Flush()
}

func printDecoded(w io.Writer, p *profile.Profile, data [][]uint16) error {
	reading, err := p.Decode(data)
	if err != nil {
		return fmt.Errorf("probe: profile %s (%s) cannot decode the reply: %w", p.Name, p.Origin, err)
	}
	fmt.Fprintf(w, "\n-- decoded with profile %s (%s)\n", p.Name, p.Origin)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIELD\tVALUE\tUNIT\tREGISTER\tTYPE\tROLE")
	roles := map[string][]string{}
	for f, rs := range p.FieldRoles() {
		for _, r := range rs {
			roles[f] = append(roles[f], string(r))
		}
	}
	for _, f := range p.Fields {
		v, ok := reading.Values[f.Name]
		value := "-"
		if ok {
			value = formatValue(v)
		}
		sort.Strings(roles[f.Name])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s %s\t%s\n", f.Name, value, orDash(f.Unit), f.Function, f.Address, f.Type, f.Order, orDash(strings.Join(roles[f.Name], ",")))
	}
	tw.Flush()
	for _, v := range reading.Implausible {
		fmt.Fprintf(w, "warning:     %v: not recorded; %s\n", v, p.Diagnose(v))
	}
	if reading.HasPhase {
		fmt.Fprintf(w, "phase:       code %d -> %s\n", reading.PhaseCode, reading.Phase)
	}
	if reading.HasProgram {
		fmt.Fprintf(w, "program:     code %d -> %s\n", reading.ProgramCode, orDash(p.Programs[reading.ProgramCode]))
	}
	if p.HasRole(profile.RoleCycleCounter) {
		fmt.Fprintf(w, "cycle:       %d\n", reading.Counter)
	}
	if reading.HasLastCycle {
		fmt.Fprintf(w, "last cycle:  %d", reading.LastCycle)
		if reading.HasLastResult {
			res, ok := p.Results[reading.LastResultCode]
			if !ok {
				res = "unmapped"
			}
			fmt.Fprintf(w, ", result code %d -> %s", reading.LastResultCode, res)
		}
		fmt.Fprintln(w)
	}
	if len(reading.Alarms) == 0 {
		fmt.Fprintln(w, "alarms:      none")
	}
	for _, a := range reading.Alarms {
		fmt.Fprintf(w, "alarm:       %d %s\n", a.Code, a.Text)
	}
	return nil
}

func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}
