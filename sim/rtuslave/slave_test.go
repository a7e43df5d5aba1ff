package rtuslave

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/sim/ptyport"

	"github.com/sterigate/sterigate/protocol/modbusframe"
)

// fakeBank serves units with 24 registers each; register a of unit u holds
// u*1000 + a for function 3 and u*1000 + 500 + a for function 4, so a reply
// from the wrong unit, address or table is visible.
type fakeBank struct {
	mu      sync.Mutex
	units   map[byte]bool
	refused map[[2]byte]int // (unit, function) → refused write attempts
	reads   int
}

func newFakeBank(units ...byte) *fakeBank {
	b := &fakeBank{units: map[byte]bool{}, refused: map[[2]byte]int{}}
	for _, u := range units {
		b.units[u] = true
	}
	return b
}

const fakeBankSize = 24

func fakeValue(unit, function byte, address uint16) uint16 {
	v := uint16(unit)*1000 + address
	if function == 4 {
		v += 500
	}
	return v
}

func (b *fakeBank) ReadRegisters(unit, function byte, address, quantity uint16) ([]uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
	if !b.units[unit] {
		return nil, ErrNoSuchUnit
	}
	if function != 3 && function != 4 {
		return nil, ErrIllegalFunction
	}
	if int(address)+int(quantity) > fakeBankSize {
		return nil, ErrIllegalAddress
	}
	values := make([]uint16, quantity)
	for i := range values {
		values[i] = fakeValue(unit, function, address+uint16(i))
	}
	return values, nil
}

func (b *fakeBank) RefuseWrite(unit, function byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused[[2]byte{unit, function}]++
}

func (b *fakeBank) refusedWrites(unit, function byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refused[[2]byte{unit, function}]
}

func expectedValues(unit, function byte, address, quantity uint16) []uint16 {
	values := make([]uint16, quantity)
	for i := range values {
		values[i] = fakeValue(unit, function, address+uint16(i))
	}
	return values
}

// startSlave serves bank on a new pty and stops it at cleanup, checking that
// Serve returns nil after cancellation.
func startSlave(t testing.TB, bank Registers, opts Options) *ptyport.Port {
	t.Helper()
	port, err := ptyport.Open(filepath.Join(t.TempDir(), "ttyRTU"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, port, bank, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after cancellation, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancellation")
		}
		port.Close()
	})
	return port
}

// replyTimeout is how long tests wait for a reply that must come; generous,
// because a loaded CI machine under -race can stall a goroutine for a while.
// Waits for replies that must not come use shorter, explicit bounds.
const replyTimeout = 2 * time.Second

func TestSeveralUnitsOnOneBus(t *testing.T) {
	bank := newFakeBank(1, 2, 7)
	port := startSlave(t, bank, Options{})
	master := newTestMaster(t, port.Path())

	for round := range 3 {
		for _, unit := range []byte{1, 2, 7} {
			for _, function := range []byte{3, 4} {
				address := uint16(round * 3)
				got, err := master.readRegisters(unit, function, address, 10, replyTimeout)
				if err != nil {
					t.Fatalf("unit %d fc %d: %v", unit, function, err)
				}
				if want := expectedValues(unit, function, address, 10); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("unit %d fc %d address %d: got %v, want %v", unit, function, address, got, want)
				}
			}
		}
	}
	// One read of the whole map, as the gateway does.
	got, err := master.readRegisters(2, 3, 0, fakeBankSize, replyTimeout)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(expectedValues(2, 3, 0, fakeBankSize)) {
		t.Fatalf("full map of unit 2: %v, %v", got, err)
	}
}

func TestAbsentUnitAndBroadcastStaySilent(t *testing.T) {
	bank := newFakeBank(1)
	port := startSlave(t, bank, Options{})
	master := newTestMaster(t, port.Path())

	if _, err := master.readRegisters(5, 3, 0, 4, 200*time.Millisecond); !errors.Is(err, errTimeout) {
		t.Fatalf("read of absent unit 5: %v, want a timeout", err)
	}
	master.send(modbusframe.AppendCRC([]byte{5, 6, 0, 1, 0, 42}))
	master.expectSilence("write to absent unit 5", 200*time.Millisecond)
	if n := bank.refusedWrites(5, 6); n != 0 {
		t.Fatalf("absent unit 5 counted %d refused writes, want 0", n)
	}

	master.send(readRequest(0, 3, 0, 4))
	master.expectSilence("broadcast read", 200*time.Millisecond)
	master.send(modbusframe.AppendCRC([]byte{0, 6, 0, 1, 0, 42}))
	master.expectSilence("broadcast write", 200*time.Millisecond)
	if n := bank.refusedWrites(0, 6); n != 1 {
		t.Fatalf("broadcast write counted %d times, want 1", n)
	}

	// The bus still works for the unit that exists.
	if _, err := master.readRegisters(1, 3, 0, 4, replyTimeout); err != nil {
		t.Fatalf("unit 1 after silences: %v", err)
	}
}

func TestExceptions(t *testing.T) {
	bank := newFakeBank(1)
	port := startSlave(t, bank, Options{})
	master := newTestMaster(t, port.Path())

	for _, tc := range []struct {
		name     string
		request  []byte
		function byte
		want     byte
	}{
		{"address beyond the map", readRequest(1, 3, 20, 10), 3, modbusframe.ExceptionIllegalDataAddress},
		{"quantity 0", readRequest(1, 4, 0, 0), 4, modbusframe.ExceptionIllegalDataValue},
		{"quantity 126", readRequest(1, 3, 0, 126), 3, modbusframe.ExceptionIllegalDataValue},
		{"coils not served", readRequest(1, 1, 0, 8), 1, modbusframe.ExceptionIllegalFunction},
		{"write single register", modbusframe.AppendCRC([]byte{1, 6, 0, 3, 0x12, 0x34}), 6, modbusframe.ExceptionIllegalFunction},
		{"write single coil", modbusframe.AppendCRC([]byte{1, 5, 0, 3, 0xFF, 0x00}), 5, modbusframe.ExceptionIllegalFunction},
		{"write multiple registers", modbusframe.AppendCRC([]byte{1, 16, 0, 0, 0, 2, 4, 0, 1, 0, 2}), 16, modbusframe.ExceptionIllegalFunction},
		{"write multiple coils", modbusframe.AppendCRC([]byte{1, 15, 0, 0, 0, 9, 2, 0xFF, 0x01}), 15, modbusframe.ExceptionIllegalFunction},
		{"byte count inconsistent", modbusframe.AppendCRC([]byte{1, 16, 0, 0, 0, 3, 4, 0, 1, 0, 2}), 16, modbusframe.ExceptionIllegalDataValue},
		// Function 0x11 (report server id) has no length the slave can derive:
		// it is answered only after the inter-frame silence ends the frame.
		{"unknown function, framed by silence", modbusframe.AppendCRC([]byte{1, 0x11}), 0x11, modbusframe.ExceptionIllegalFunction},
	} {
		master.send(tc.request)
		_, err := master.readReply(1, tc.function, replyTimeout)
		var exc *exceptionError
		if !errors.As(err, &exc) || exc.code != tc.want {
			t.Fatalf("%s: got %v, want exception %d", tc.name, err, tc.want)
		}
	}
	for _, function := range []byte{5, 6, 15, 16} {
		if n := bank.refusedWrites(1, function); n != 1 {
			t.Errorf("function %d: %d refused writes counted, want 1", function, n)
		}
	}
}

func TestBadCRCIgnoredAndGarbageResynchronised(t *testing.T) {
	bank := newFakeBank(1, 2)
	port := startSlave(t, bank, Options{})
	master := newTestMaster(t, port.Path())

	bad := readRequest(1, 3, 0, 4)
	bad[len(bad)-1] ^= 0x01
	master.send(bad)
	master.expectSilence("request with a bad CRC", 200*time.Millisecond)

	good := readRequest(2, 3, 4, 6)
	for _, tc := range []struct {
		name    string
		garbage []byte
	}{
		{"line noise", []byte{0xFF, 0x00, 0xAA, 0x13, 0x11}},
		{"half a request", readRequest(1, 3, 0, 4)[:5]},
		{"request with a bad CRC", bad},
		{"header of a long write", []byte{1, 16, 0, 0, 0, 100, 200}},
	} {
		master.send(append(append([]byte{}, tc.garbage...), good...))
		got, err := master.readReply(2, 3, replyTimeout)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(expectedValues(2, 3, 4, 6)) {
			t.Fatalf("good frame after %s: %v, %v", tc.name, got, err)
		}
	}
}

func TestFaultInjection(t *testing.T) {
	bank := newFakeBank(1, 2)
	var mu sync.Mutex
	var next Fault
	var seen []Request
	setFault := func(f Fault) { mu.Lock(); next = f; mu.Unlock() }
	faults := func(req Request) Fault {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, req)
		f := next
		next = Fault{}
		return f
	}
	port := startSlave(t, bank, Options{Faults: faults})
	master := newTestMaster(t, port.Path())

	setFault(Fault{CorruptCRC: true})
	if _, err := master.readRegisters(1, 3, 0, 4, replyTimeout); !errors.Is(err, errBadCRC) {
		t.Fatalf("CorruptCRC: %v, want a CRC error", err)
	}
	setFault(Fault{Drop: true})
	if _, err := master.readRegisters(1, 3, 0, 4, 200*time.Millisecond); !errors.Is(err, errTimeout) {
		t.Fatalf("Drop: %v, want a timeout", err)
	}
	setFault(Fault{Exception: modbusframe.ExceptionServerDeviceFailure})
	var exc *exceptionError
	if _, err := master.readRegisters(1, 4, 0, 4, replyTimeout); !errors.As(err, &exc) || exc.code != 4 {
		t.Fatalf("Exception 4: %v", err)
	}
	// A delay longer than the master's timeout: the master gives up, and the
	// late reply arrives afterwards.
	setFault(Fault{Delay: 300 * time.Millisecond})
	start := time.Now()
	if _, err := master.readRegisters(1, 3, 0, 2, 100*time.Millisecond); !errors.Is(err, errTimeout) {
		t.Fatalf("Delay: %v, want a timeout", err)
	}
	late := master.readAtLeast(9, 2*time.Second)
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond || len(late) != 9 || !modbusframe.CRCValid(late) {
		t.Fatalf("Delay: late reply % x after %v, want 9 valid bytes after at least 300ms", late, elapsed)
	}
	garbage := []byte{0x00, 0xFF, 0x55}
	setFault(Fault{Garbage: garbage})
	master.send(readRequest(2, 3, 1, 2))
	raw := master.readAtLeast(len(garbage)+9, replyTimeout)
	if !bytes.HasPrefix(raw, garbage) || len(raw) != len(garbage)+9 || !modbusframe.CRCValid(raw[len(garbage):]) {
		t.Fatalf("Garbage: got % x, want % x then a valid reply", raw, garbage)
	}
	// After all faults, a clean read works and the hook saw the right requests.
	if got, err := master.readRegisters(2, 4, 0, 3, replyTimeout); err != nil || fmt.Sprint(got) != fmt.Sprint(expectedValues(2, 4, 0, 3)) {
		t.Fatalf("clean read after faults: %v, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 6 || seen[5] != (Request{Unit: 2, Function: 4, Address: 0, Quantity: 3}) {
		t.Fatalf("fault hook saw %+v", seen)
	}
}

// onlyReadWriter hides ptyport.Port's deadlines, as a plain io.ReadWriter would.
type onlyReadWriter struct{ io.ReadWriter }

func TestStopping(t *testing.T) {
	t.Run("cancel alone stops a port with deadlines, which stays usable", func(t *testing.T) {
		port, err := ptyport.Open("")
		if err != nil {
			t.Fatal(err)
		}
		defer port.Close()
		bank := newFakeBank(1)
		for round := range 2 {
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- Serve(ctx, port, bank, Options{}) }()
			master := newTestMaster(t, port.Path())
			if _, err := master.readRegisters(1, 3, 0, 1, replyTimeout); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			master.port.Close()
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("round %d: Serve = %v, want nil", round, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: Serve ignored cancellation", round)
			}
		}
	})
	t.Run("plain ReadWriter needs cancel then close", func(t *testing.T) {
		port, err := ptyport.Open("")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- Serve(ctx, onlyReadWriter{port}, newFakeBank(1), Options{}) }()
		cancel()
		port.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after cancel and close")
		}
	})
	t.Run("port closed while serving is an error", func(t *testing.T) {
		port, err := ptyport.Open("")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- Serve(context.Background(), port, newFakeBank(1), Options{}) }()
		port.Close()
		select {
		case err := <-served:
			if err == nil {
				t.Fatal("Serve = nil after its port closed under a live context, want an error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not notice its port closing")
		}
	})
}

func TestTimings(t *testing.T) {
	if err := Serve(context.Background(), onlyReadWriter{}, newFakeBank(), Options{Baud: -1}); err == nil {
		t.Error("Serve accepted Baud -1")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
