package rtuslave

import (
	"errors"
	"fmt"
	"io"
	"log"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simonvetter/modbus"
)

// TestSimonvetterClient checks the slave against a second independent master
// implementation (simonvetter/modbus's RTU client, which opens the pty through
// goburrow/serial).
func TestSimonvetterClient(t *testing.T) {
	bank := newFakeBank(1, 2)
	var corruptNext atomic.Bool
	faults := func(Request) Fault {
		if corruptNext.Swap(false) {
			return Fault{CorruptCRC: true}
		}
		return Fault{}
	}
	port := startSlave(t, bank, Options{Faults: faults})
	client, err := modbus.NewClient(&modbus.ClientConfiguration{
		URL:      "rtu://" + port.DevicePath(),
		Speed:    19200,
		DataBits: 8,
		Parity:   modbus.PARITY_EVEN,
		StopBits: 1,
		Timeout:  300 * time.Millisecond,
		Logger:   log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Open(); err != nil {
		t.Fatalf("open %s: %v", port.DevicePath(), err)
	}
	defer client.Close()

	for _, unit := range []byte{1, 2} {
		client.SetUnitId(unit)
		got, err := client.ReadRegisters(0, fakeBankSize, modbus.INPUT_REGISTER)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(expectedValues(unit, 4, 0, fakeBankSize)) {
			t.Fatalf("unit %d: %v, %v", unit, got, err)
		}
	}
	client.SetUnitId(3)
	if _, err := client.ReadRegisters(0, 1, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrRequestTimedOut) {
		t.Fatalf("absent unit 3: %v, want a timeout", err)
	}
	client.SetUnitId(1)
	if _, err := client.ReadRegisters(23, 2, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrIllegalDataAddress) {
		t.Fatalf("address 23+2: %v, want illegal data address", err)
	}
	if err := client.WriteRegister(0, 1); !errors.Is(err, modbus.ErrIllegalFunction) {
		t.Fatalf("write: %v, want illegal function", err)
	}
	corruptNext.Store(true)
	if _, err := client.ReadRegisters(0, 4, modbus.HOLDING_REGISTER); !errors.Is(err, modbus.ErrBadCRC) {
		t.Fatalf("corrupt CRC: %v, want a CRC error", err)
	}
	got, err := client.ReadRegisters(3, 4, modbus.HOLDING_REGISTER)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(expectedValues(1, 3, 3, 4)) {
		t.Fatalf("read after a CRC error: %v, %v", got, err)
	}
}
