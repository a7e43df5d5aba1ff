package learn

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// Range is a span of addresses of one function: [Start, End).
type Range struct {
	Function byte `json:"function"`
	Start    int  `json:"start"`
	End      int  `json:"end"` // exclusive
}

// Len is the number of addresses in the range.
func (r Range) Len() int { return r.End - r.Start }

func (r Range) String() string {
	if r.Len() == 1 {
		return fmt.Sprintf("%d:%d", r.Function, r.Start)
	}
	return fmt.Sprintf("%d:%d-%d", r.Function, r.Start, r.End-1)
}

// DefaultScanRanges is what Scan covers unless told otherwise: addresses
// 0–9999 of holding registers, input registers, coils and discrete inputs,
// where the "40001"/"30001" numbering of vendor lists lives.
func DefaultScanRanges() []Range {
	return []Range{{3, 0, 10000}, {4, 0, 10000}, {1, 0, 10000}, {2, 0, 10000}}
}

// Defaults of ScanOptions.
const (
	DefaultAnchorStep  = 100
	DefaultMaxRequests = 5000
	DefaultMaxWatch    = 2000 // registers recorded at most (bits count apart)
)

// ScanOptions configures Scan.
type ScanOptions struct {
	Unit byte
	// Rate is requests per second (0: DefaultRate). Tests with an
	// in-memory device may set a negative rate: no pacing.
	Rate float64
	// Ranges to scan (nil: DefaultScanRanges).
	Ranges []Range
	// AnchorStep: a single register is probed at every multiple of the
	// step plus one (and of 256 plus one); every hit is followed to both
	// ends of its table. 0: DefaultAnchorStep.
	AnchorStep int
	// MaxRegisters bounds a request of function 3 or 4 (0: 125, the
	// Modbus limit). Bits are read up to 2000 at a time.
	MaxRegisters int
	// MaxRequests stops a scan that would go on for ever (0: DefaultMaxRequests).
	MaxRequests int
	Clock       Clock
	// Progress, when set, is called after every request.
	Progress func(ScanProgress)
}

// ScanProgress is where a scan is.
type ScanProgress struct {
	Function byte
	Address  int
	Requests int
	Readable int // addresses found readable so far
}

// ScanSummary is what a scan found, kept in the recording's header.
type ScanSummary struct {
	Requests    int     `json:"requests"`
	Seconds     float64 `json:"seconds"`
	Readable    []Range `json:"readable"`
	Unsupported []byte  `json:"unsupported_functions,omitempty"`
	// MaxRegisters is the request size the device accepted (it may have
	// refused larger ones with exception 3).
	MaxRegisters int      `json:"max_registers"`
	Scanned      []Range  `json:"scanned"`
	Notes        []string `json:"notes,omitempty"`
}

// ReadableCount is the number of readable registers (functions 3, 4) and
// bits (1, 2).
func (s *ScanSummary) ReadableCount() (registers, bits int) {
	for _, r := range s.Readable {
		if r.Function >= 3 {
			registers += r.Len()
		} else {
			bits += r.Len()
		}
	}
	return registers, bits
}

// answer is what one probe request says about the addresses it read.
type answer int

const (
	readable    answer = iota
	refused            // exception 2 (or 4, or silence): not all of them are readable
	tooLarge           // exception 3: the request was larger than the device takes
	unsupported        // exception 1: the function is not implemented
)

type scanner struct {
	r           *pacedReader
	opts        ScanOptions
	maxReg      int
	answered    bool
	timeouts    int
	found       int
	progress    func(ScanProgress)
	notes       []string
	outOfBudget bool
}

// Scan finds which addresses of the unit answer, with read requests only,
// one at a time and at most opts.Rate per second. It returns an error only
// when the device cannot be read at all (no answer, a gateway that says the
// unit is absent, a broken link); what it found until then is returned too.
func Scan(ctx context.Context, r modbus.RegisterReader, opts ScanOptions) (*ScanSummary, error) {
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.Ranges == nil {
		opts.Ranges = DefaultScanRanges()
	}
	if opts.AnchorStep <= 0 {
		opts.AnchorStep = DefaultAnchorStep
	}
	if opts.MaxRegisters <= 0 || opts.MaxRegisters > 125 {
		opts.MaxRegisters = 125
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = DefaultMaxRequests
	}
	for _, rg := range opts.Ranges {
		if rg.Function < 1 || rg.Function > 4 || rg.Start < 0 || rg.End > 65536 || rg.Start >= rg.End {
			return nil, fmt.Errorf("scan range %v: want a read function 1-4 and addresses within 0-65535", rg)
		}
	}
	sc := &scanner{r: newPacedReader(r, opts.Unit, opts.Rate, opts.Clock), opts: opts, maxReg: opts.MaxRegisters, progress: opts.Progress}
	start := sc.r.clock.Now()
	sum := &ScanSummary{Scanned: opts.Ranges}
	var err error
	for _, rg := range opts.Ranges {
		var found []Range
		var unsup bool
		found, unsup, err = sc.scanRange(ctx, rg)
		sum.Readable = append(sum.Readable, found...)
		if unsup {
			sum.Unsupported = append(sum.Unsupported, rg.Function)
		}
		if err != nil || sc.outOfBudget {
			break
		}
	}
	sum.Readable = mergeRanges(sum.Readable)
	sum.Requests = sc.r.requests
	sum.Seconds = sc.r.clock.Now().Sub(start).Seconds()
	sum.MaxRegisters = sc.maxReg
	sum.Notes = sc.notes
	return sum, err
}

// scanRange scans one function's range: probes at the anchors, and every
// hit followed to both ends of its run of readable addresses.
func (sc *scanner) scanRange(ctx context.Context, rg Range) (found []Range, unsup bool, err error) {
	var set rangeSet
	var refusedAt rangeSet // addresses known not to answer
	known := func(a int) bool { return set.contains(a) || refusedAt.contains(a) }
	step := sc.opts.AnchorStep
	for a := rg.Start; a < rg.End; a++ {
		anchor := a == rg.Start || a == rg.Start+1 || a%step == 1 || a%256 == 1
		if !anchor || known(a) {
			continue
		}
		ans, err := sc.try(ctx, rg.Function, a, 1)
		if err != nil {
			return set.ranges(rg.Function), false, err
		}
		switch ans {
		case unsupported:
			if set.empty() {
				sc.notes = append(sc.notes, fmt.Sprintf("function %d: the device answers exception 1 (illegal function): not implemented", rg.Function))
				return nil, true, nil
			}
			refusedAt.add(a, a+1)
		case readable:
			s, e, err := sc.follow(ctx, rg, a, &set, &refusedAt)
			set.add(s, e)
			if err != nil {
				return set.ranges(rg.Function), false, err
			}
		default:
			refusedAt.add(a, a+1)
		}
		if sc.outOfBudget {
			sc.notes = append(sc.notes, fmt.Sprintf("scan stopped after %d requests (at function %d address %d): give --range to scan what matters", sc.r.requests, rg.Function, a))
			break
		}
	}
	return set.ranges(rg.Function), false, nil
}

// follow extends the readable address a to its whole run [s, e).
func (sc *scanner) follow(ctx context.Context, rg Range, a int, set, refusedAt *rangeSet) (int, int, error) {
	sc.found++
	e, err := sc.grow(ctx, rg, a+1, +1, set, refusedAt)
	if err != nil {
		return a, e, err
	}
	s, err := sc.grow(ctx, rg, a, -1, set, refusedAt)
	return s, e, err
}

// grow moves the edge of a readable run forwards (dir +1: edge is the
// first address after the run) or backwards (dir −1: edge is its first
// address) in requests as large as allowed; on a refused request, a
// bisection on its size finds the last readable address. It returns the
// new edge.
func (sc *scanner) grow(ctx context.Context, rg Range, edge, dir int, set, refusedAt *rangeSet) (int, error) {
	for !sc.outOfBudget {
		next, room := edge, rg.End-edge // the address the run would grow into, and how far it may
		if dir < 0 {
			next, room = edge-1, edge-rg.Start
		}
		if room <= 0 || refusedAt.contains(next) {
			break
		}
		if set.contains(next) {
			if edge = set.endOf(next); dir < 0 {
				edge = set.startOf(next)
			}
			continue
		}
		limit := 2000 // bits
		if rg.Function > 2 {
			limit = sc.maxReg // may have shrunk on an exception 3
		}
		read := func(k int) (answer, error) {
			if dir > 0 {
				return sc.try(ctx, rg.Function, edge, k)
			}
			return sc.try(ctx, rg.Function, edge-k, k)
		}
		n := min(limit, room)
		ans, err := read(n)
		if err != nil {
			return edge, err
		}
		if ans == tooLarge && n > 1 {
			sc.shrink(n)
			continue
		}
		if ans == readable {
			edge += dir * n
			sc.found += n
			continue
		}
		ok, bad := 0, n // reading ok addresses works, reading bad does not
		for bad-ok > 1 {
			mid := (ok + bad) / 2
			ans, err := read(mid)
			if err != nil {
				return edge + dir*ok, err
			}
			if ans == readable {
				ok = mid
			} else {
				bad = mid
			}
		}
		edge += dir * ok
		sc.found += ok
		if dir > 0 {
			refusedAt.add(edge, edge+1)
		} else {
			refusedAt.add(edge-1, edge)
		}
		break
	}
	return edge, nil
}

func (sc *scanner) shrink(n int) {
	sc.maxReg = max(1, n/2)
	sc.notes = append(sc.notes, fmt.Sprintf("the device refused a request of %d registers with exception 3: requests are limited to %d", n, sc.maxReg))
}

// try sends one read request and says what it tells about the addresses.
// Errors are returned only when scanning cannot go on.
func (sc *scanner) try(ctx context.Context, function byte, address, count int) (answer, error) {
	if sc.r.requests >= sc.opts.MaxRequests {
		sc.outOfBudget = true
		return refused, nil
	}
	for attempt := 0; ; attempt++ {
		_, err := sc.r.read(ctx, function, uint16(address), uint16(count))
		if sc.progress != nil {
			sc.progress(ScanProgress{Function: function, Address: address, Requests: sc.r.requests, Readable: sc.found})
		}
		if err == nil {
			sc.answered = true
			return readable, nil
		}
		if ctx.Err() != nil {
			return refused, ctx.Err()
		}
		if ex := modbus.AsException(err); ex != nil {
			sc.answered = true
			switch ex.Code {
			case 1:
				return unsupported, nil
			case 3:
				if count > 1 {
					return tooLarge, nil
				}
				return refused, nil
			case 5, 6: // acknowledge, busy: ask again in a moment
				if attempt < 3 {
					if err := sc.r.clock.Sleep(ctx, time.Second); err != nil {
						return refused, err
					}
					continue
				}
				return refused, nil
			case 10, 11:
				return refused, fmt.Errorf("unit %d does not answer: %v (the gateway in front of it cannot reach it; check --unit)", sc.opts.Unit, ex)
			}
			return refused, nil // 2 illegal data address, 4 device failure, others
		}
		if kind, _ := modbus.Classify(err); kind == modbus.KindTimeout || kind == modbus.KindCRC {
			sc.timeouts++
			if !sc.answered && sc.timeouts >= 3 {
				return refused, fmt.Errorf("no answer from unit %d (%d requests, the last: %v): check the address, the unit id and, on a serial line, baud rate and parity", sc.opts.Unit, sc.r.requests, err)
			}
			if attempt == 0 {
				continue
			}
			return refused, nil // some devices stay silent for addresses they do not have
		}
		return refused, fmt.Errorf("read function %d address %d count %d: %w", function, address, count, err)
	}
}

// rangeSet is a sorted set of disjoint address ranges [s, e).
type rangeSet struct{ r [][2]int }

func (rs *rangeSet) empty() bool { return len(rs.r) == 0 }

func (rs *rangeSet) find(a int) int {
	return sort.Search(len(rs.r), func(i int) bool { return rs.r[i][1] > a })
}

func (rs *rangeSet) contains(a int) bool {
	i := rs.find(a)
	return i < len(rs.r) && rs.r[i][0] <= a
}

func (rs *rangeSet) endOf(a int) int   { return rs.r[rs.find(a)][1] }
func (rs *rangeSet) startOf(a int) int { return rs.r[rs.find(a)][0] }

func (rs *rangeSet) add(s, e int) {
	if s >= e {
		return
	}
	out := make([][2]int, 0, len(rs.r)+1)
	placed := false
	for _, x := range rs.r {
		switch {
		case x[1] < s:
			out = append(out, x)
		case x[0] > e:
			if !placed {
				out = append(out, [2]int{s, e})
				placed = true
			}
			out = append(out, x)
		default: // overlaps or touches: absorb
			s, e = min(s, x[0]), max(e, x[1])
		}
	}
	if !placed {
		out = append(out, [2]int{s, e})
	}
	rs.r = out
}

func (rs *rangeSet) ranges(fn byte) []Range {
	out := make([]Range, len(rs.r))
	for i, x := range rs.r {
		out[i] = Range{Function: fn, Start: x[0], End: x[1]}
	}
	return out
}

// mergeRanges sorts ranges by function and start and joins those that
// touch.
func mergeRanges(in []Range) []Range {
	rs := append([]Range(nil), in...)
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Function != rs[j].Function {
			return functionRank(rs[i].Function) < functionRank(rs[j].Function)
		}
		return rs[i].Start < rs[j].Start
	})
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Function == r.Function && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// functionRank orders functions as reports list them: registers first.
func functionRank(fn byte) int {
	switch fn {
	case 3:
		return 0
	case 4:
		return 1
	case 1:
		return 2
	}
	return 3
}

// WatchBlocks turns readable ranges into the read requests of one
// recording round: at most maxRegisters registers (2000 bits) each, never
// reading an address outside a readable range. At most maxWatch registers
// are kept (in scan order); what is left out is returned as notes.
func WatchBlocks(readable []Range, maxRegisters, maxWatch int) ([]Block, []string) {
	if maxRegisters <= 0 || maxRegisters > 125 {
		maxRegisters = 125
	}
	if maxWatch <= 0 {
		maxWatch = DefaultMaxWatch
	}
	var blocks []Block
	var notes []string
	regs, bits := 0, 0
	for _, r := range readable {
		size, budget, used := maxRegisters, maxWatch, &regs
		if r.Function <= 2 {
			size, budget, used = 2000, 2*maxWatch, &bits
		}
		for a := r.Start; a < r.End; a += size {
			n := min(size, r.End-a, budget-*used)
			if n <= 0 {
				notes = append(notes, fmt.Sprintf("%v not recorded: more than %d readable; give --range to choose", Range{r.Function, a, r.End}, budget))
				break
			}
			blocks = append(blocks, Block{Function: r.Function, Start: uint16(a), Count: uint16(n)})
			*used += n
			if n < size && a+n < r.End {
				notes = append(notes, fmt.Sprintf("%v not recorded: more than %d readable; give --range to choose", Range{r.Function, a + n, r.End}, budget))
				break
			}
		}
	}
	return blocks, notes
}
