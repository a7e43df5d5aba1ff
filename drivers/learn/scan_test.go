package learn

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// fakeClock is a clock that only moves when something sleeps on it.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return ctx.Err()
}

// tableDevice answers reads inside its tables (values = address) and
// exception 2 elsewhere, like a device with an unpublished map. It records
// when each request arrived and how many were in flight at once.
type tableDevice struct {
	tables      []Range
	unsupported map[byte]bool // functions answering exception 1
	maxQuantity int           // larger requests get exception 3 (0: no limit)
	silent      bool          // never answers (timeout)
	gatewayExc  bool          // a TCP gateway whose unit is absent: exception 11
	clock       Clock
	requests    []time.Time
	inFlight    atomic.Int32
	maxInFlight int32
}

func (d *tableDevice) ReadRegisters(_ context.Context, unit, function byte, address, quantity uint16) ([]uint16, error) {
	n := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	d.maxInFlight = max(d.maxInFlight, n)
	if d.clock != nil {
		d.requests = append(d.requests, d.clock.Now())
	}
	if !modbus.IsReadFunction(function) {
		return nil, fmt.Errorf("write function %d sent", function)
	}
	switch {
	case d.silent:
		return nil, &modbus.TimeoutError{Function: function, After: time.Second}
	case d.gatewayExc:
		return nil, &modbus.ExceptionError{Function: function, Code: 11}
	case d.unsupported[function]:
		return nil, &modbus.ExceptionError{Function: function, Code: 1}
	case d.maxQuantity > 0 && int(quantity) > d.maxQuantity:
		return nil, &modbus.ExceptionError{Function: function, Code: 3}
	}
	for _, t := range d.tables {
		if t.Function == function && int(address) >= t.Start && int(address)+int(quantity) <= t.End {
			out := make([]uint16, quantity)
			for i := range out {
				if function <= 2 {
					out[i] = uint16(int(address)+i) & 1
				} else {
					out[i] = uint16(int(address) + i)
				}
			}
			return out, nil
		}
	}
	return nil, &modbus.ExceptionError{Function: function, Code: 2}
}

// TestScanFindsTheTablesAndOnlyThem: tables at round addresses, 1-based,
// straddling an anchor, longer than one request, and bits; every other
// address answers exception 2.
func TestScanFindsTheTablesAndOnlyThem(t *testing.T) {
	tables := []Range{
		{3, 0, 24},      // the simulator's own
		{3, 101, 118},   // 1-based
		{3, 950, 1310},  // covers 1000 and is longer than 125
		{4, 240, 270},   // straddles 257
		{4, 4096, 4100}, // hexadecimal round address
		{1, 0, 16},      // coils
	}
	d := &tableDevice{tables: tables, unsupported: map[byte]bool{2: true}}
	sum, err := Scan(context.Background(), d, ScanOptions{Unit: 1, Rate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sum.Readable, tables) {
		t.Errorf("readable %v, want %v", sum.Readable, tables)
	}
	if !reflect.DeepEqual(sum.Unsupported, []byte{2}) {
		t.Errorf("unsupported functions %v, want [2]", sum.Unsupported)
	}
	if sum.Requests > 700 {
		t.Errorf("%d requests, want at most 700 for four functions of 10 000 addresses", sum.Requests)
	}
	regs, bits := sum.ReadableCount()
	if regs != 24+17+360+30+4 || bits != 16 {
		t.Errorf("readable count %d registers %d bits", regs, bits)
	}
}

// TestScanIsPoliteAndOneAtATime: at the default rate two requests never
// start less than 200 ms apart (device clock), and never overlap.
func TestScanIsPoliteAndOneAtATime(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	d := &tableDevice{tables: []Range{{3, 0, 40}}, clock: clk}
	sum, err := Scan(context.Background(), d, ScanOptions{Unit: 1, Clock: clk, Ranges: []Range{{3, 0, 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(d.requests); i++ {
		if gap := d.requests[i].Sub(d.requests[i-1]); gap < 200*time.Millisecond {
			t.Fatalf("requests %d and %d are %v apart; at 5 requests/s they must be at least 200ms apart", i-1, i, gap)
		}
	}
	if d.maxInFlight != 1 {
		t.Errorf("%d requests in flight at once", d.maxInFlight)
	}
	if want := float64(sum.Requests-1) * 0.2; sum.Seconds < want {
		t.Errorf("scan took %.1f s for %d requests", sum.Seconds, sum.Requests)
	}
}

// TestScanShrinksRequestsOnException3: a device that takes at most 32
// registers per request answers exception 3 to larger ones.
func TestScanShrinksRequestsOnException3(t *testing.T) {
	d := &tableDevice{tables: []Range{{3, 0, 200}}, maxQuantity: 32}
	sum, err := Scan(context.Background(), d, ScanOptions{Unit: 1, Rate: -1, Ranges: []Range{{3, 0, 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sum.Readable, []Range{{3, 0, 200}}) {
		t.Errorf("readable %v", sum.Readable)
	}
	if sum.MaxRegisters > 32 {
		t.Errorf("max registers %d, the device takes 32", sum.MaxRegisters)
	}
	blocks, _ := WatchBlocks(sum.Readable, sum.MaxRegisters, 0)
	for _, b := range blocks {
		if b.Count > 32 {
			t.Errorf("recording block %+v is larger than the device takes", b)
		}
	}
}

// TestScanStopsOnADeadDevice: no answer at all, or a gateway that says the
// unit is absent, is an error that says what to check.
func TestScanStopsOnADeadDevice(t *testing.T) {
	for _, c := range []struct {
		dev  *tableDevice
		want string
	}{
		{&tableDevice{silent: true}, "no answer from unit 7"},
		{&tableDevice{gatewayExc: true}, "unit 7 does not answer"},
	} {
		sum, err := Scan(context.Background(), c.dev, ScanOptions{Unit: 7, Rate: -1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
		if sum == nil || sum.Requests > 6 {
			t.Errorf("summary %+v: a dead device must be given up quickly", sum)
		}
	}
}

func TestScanHonoursTheBudget(t *testing.T) {
	d := &tableDevice{}
	sum, err := Scan(context.Background(), d, ScanOptions{Unit: 1, Rate: -1, MaxRequests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 50 || len(sum.Notes) == 0 || !strings.Contains(strings.Join(sum.Notes, " "), "stopped after 50 requests") {
		t.Errorf("requests %d, notes %q", sum.Requests, sum.Notes)
	}
}

func TestScanCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Scan(ctx, &tableDevice{}, ScanOptions{Unit: 1, Rate: -1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func TestWatchBlocks(t *testing.T) {
	blocks, notes := WatchBlocks([]Range{{3, 0, 300}, {4, 10, 20}, {1, 0, 2500}}, 100, 305)
	// 305 registers, and twice as many bits, are recorded at most.
	want := []Block{{3, 0, 100}, {3, 100, 100}, {3, 200, 100}, {4, 10, 5}, {1, 0, 610}}
	if !reflect.DeepEqual(blocks, want) {
		t.Errorf("blocks %v, want %v", blocks, want)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "4:15-19 not recorded") || !strings.Contains(notes[1], "1:610-2499 not recorded") {
		t.Errorf("notes %q", notes)
	}
}
