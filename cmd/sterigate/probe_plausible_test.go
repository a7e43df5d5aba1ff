package main

import (
	"bytes"
	"context"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/sim/rtuslave"
)

// f32Device is unit 1 sending a chamber temperature of 134.5 °C as an f32
// low word first (CDAB) at registers 0-1, 304.2 kPa at register 2 (×0.1)
// and a counter at 3.
type f32Device struct{}

func (f32Device) ReadRegisters(unit, function byte, address, quantity uint16) ([]uint16, error) {
	if unit != 1 {
		return nil, rtuslave.ErrNoSuchUnit
	}
	b := math.Float32bits(134.5)
	img := []uint16{uint16(b), uint16(b >> 16), 3042, 17}
	if int(address)+int(quantity) > len(img) {
		return nil, rtuslave.ErrIllegalAddress
	}
	return img[address : address+quantity], nil
}

func (f32Device) RefuseWrite(byte, byte) {}

// A profile with the wrong word order: probe prints the value refused and
// names the byte order that would read it right.
func TestProbeWarnsOfAWrongWordOrder(t *testing.T) {
	addr := serveRTUOverTCP(t, f32Device{})
	prof := writeFile(t, filepath.Join(t.TempDir(), "wrong-order.yaml"), `
fields:
  temp:  {address: 0, type: f32, order: ABCD, unit: "°C"}
  press: {address: 2, scale: 0.1}
  n:     {address: 3}
roles: {chamber_temperature: temp, chamber_pressure: press, cycle_counter: n}
cycle_end: {on: counter_change}
`)
	var out, errOut bytes.Buffer
	if err := cmdProbe(context.Background(), []string{"--rtu-tcp", addr, "--unit", "1", "--profile", prof}, &out, &errOut); err != nil {
		t.Fatalf("probe: %v\n%s", err, errOut.String())
	}
	want := "warning:     field temp (chamber_temperature) reads -2.40435e-41, a float too close to 0 to be a measurement: not recorded; likely cause: wrong byte order: with order: CDAB (profile: ABCD) the same registers read 134.5 °C"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("probe output lacks\n%s\n%s", want, out.String())
	}
}

// serveRTUOverTCP is a tiny serial device server: Modbus RTU frames over
// TCP answered from regs, until the test ends. It returns its address.
func serveRTUOverTCP(t *testing.T, regs rtuslave.Registers) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- rtuslave.ServeListener(ctx, ln, regs, rtuslave.Options{}) }()
	t.Cleanup(func() { cancel(); <-served })
	return ln.Addr().String()
}
