package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial/enumerator"

	"github.com/sterigate/sterigate/sim"
	"github.com/sterigate/sterigate/sim/rtuslave"
)

// startSimForProbe runs the simulator with a Modbus TCP server and an RTU
// pty until the test ends.
func startSimForProbe(t *testing.T) (tcpAddr, rtuPath string) {
	t.Helper()
	rtuPath = filepath.Join(t.TempDir(), "ttySIM")
	s, err := sim.New(sim.Options{Devices: 2, ModbusTCP: "127.0.0.1:0", RTU: rtuPath})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errRTU := os.Stat(rtuPath)
		c, errTCP := net.Dial("tcp", s.Addrs()[0])
		if errTCP == nil {
			c.Close()
		}
		if errRTU == nil && errTCP == nil {
			return s.Addrs()[0], rtuPath
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator not up: rtu %v, tcp %v", errRTU, errTCP)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProbeEveryLinkAgainstTheSimulator(t *testing.T) {
	tcpAddr, rtuPath := startSimForProbe(t)

	// RTU over TCP: a tiny serial device server in front of the RTU slave.
	rtuTCP := serveRTUOverTCP(t, fixedRegisters{})

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"rtu raw", []string{"--rtu", rtuPath, "--unit", "2", "--count", "24"},
			[]string{"function 3 (holding registers), address 0, count 24", "ADDRESS", "23"}},
		{"rtu profile", []string{"--rtu", rtuPath, "--parity", "N", "--unit", "1", "--profile", "sim-autoclave"},
			[]string{"decoded with profile sim-autoclave", "chamber_temp", "phase:", "alarms:"}},
		{"tcp profile", []string{"--tcp", tcpAddr, "--unit", "1", "--profile", "sim-autoclave"},
			[]string{"Modbus TCP", "decoded with profile sim-autoclave", "cycle_counter"}},
		{"tcp input registers", []string{"--tcp", tcpAddr, "--function", "4", "--address", "16", "--count", "8"},
			[]string{"function 4 (input registers), address 16, count 8", "0x"}},
		{"rtu-tcp", []string{"--rtu-tcp", rtuTCP, "--unit", "9", "--address", "10", "--count", "3"},
			[]string{"RTU over TCP", "0x0BB8", "3000", "3002"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := cmdProbe(context.Background(), c.args, &out, &errOut); err != nil {
				t.Fatalf("probe %v: %v\n%s", c.args, err, errOut.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("probe %v output lacks %q:\n%s", c.args, w, out.String())
				}
			}
		})
	}

	// An absent unit times out with a clear error; an address past the map
	// gets the device's exception.
	var out bytes.Buffer
	err := cmdProbe(context.Background(), []string{"--rtu", rtuPath, "--unit", "7", "--timeout", "200ms"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "no reply within") {
		t.Fatalf("absent unit: %v", err)
	}
	err = cmdProbe(context.Background(), []string{"--rtu", rtuPath, "--unit", "1", "--address", "20", "--count", "10"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "exception 2") {
		t.Fatalf("past the register map: %v", err)
	}
}

// fixedRegisters is one unit (9) whose register a holds 2990+a.
type fixedRegisters struct{}

func (fixedRegisters) ReadRegisters(unit, function byte, address, quantity uint16) ([]uint16, error) {
	if unit != 9 {
		return nil, rtuslave.ErrNoSuchUnit
	}
	v := make([]uint16, quantity)
	for i := range v {
		v[i] = 2990 + address + uint16(i)
	}
	return v, nil
}

func (fixedRegisters) RefuseWrite(byte, byte) {}

func TestProbeRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--tcp", "a:1", "--rtu", "/dev/x"},
		{"--rtu", "/dev/x", "--function", "6"},
		{"--rtu", "/dev/x", "--function", "16"},
		{"--rtu", "/dev/x", "--unit", "0"},
		{"--rtu", "/dev/x", "--count", "0"},
		{"--rtu", "/dev/x", "stray"},
	} {
		var out bytes.Buffer
		err := cmdProbe(context.Background(), args, &out, &out)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("probe %v: %v, want a usage error", args, err)
		}
	}
}

func TestPortsListing(t *testing.T) {
	var out bytes.Buffer
	none := func() ([]*enumerator.PortDetails, error) { return nil, nil }
	if err := listSerialPorts(&out, none, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "No serial ports found") || !strings.Contains(out.String(), "Pseudo-terminals") {
		t.Fatalf("empty listing:\n%s", out.String())
	}
	out.Reset()
	some := func() ([]*enumerator.PortDetails, error) {
		return []*enumerator.PortDetails{
			{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "A10K1234", Manufacturer: "FTDI", Product: "FT232R USB UART"},
			{Name: "/dev/ttyS0"},
			{}, // the enumerator's empty entry for a node without details
		}, nil
	}
	if err := listSerialPorts(&out, some, map[string]string{"/dev/ttyUSB0": "/dev/serial/by-id/usb-FTDI_FT232R_A10K1234-if00-port0"}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"0403:6001", "A10K1234", "FTDI FT232R USB UART", "/dev/ttyS0", "/dev/serial/by-id/usb-FTDI"} {
		if !strings.Contains(out.String(), w) {
			t.Fatalf("listing lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Count(out.String(), "\n/dev/") != 2 {
		t.Fatalf("want exactly two port lines:\n%s", out.String())
	}
	if err := listSerialPorts(&out, func() ([]*enumerator.PortDetails, error) { return nil, errors.New("no sysfs") }, nil); err == nil {
		t.Fatal("an enumeration error was swallowed")
	}
}
