package rtu

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// SerialConfig is how to open one RS-485/RS-232 port.
type SerialConfig struct {
	// Port is the device node, e.g. /dev/ttyUSB0 or a stable
	// /dev/serial/by-id/... link. It may be empty when USB is set.
	Port string
	// Baud defaults to 19200, the Modbus default.
	Baud int
	// DataBits must be 8 (RTU carries binary bytes); 0 means 8.
	DataBits int
	// Parity is "E" (even, the Modbus default), "O" or "N" (none); the words
	// even, odd, none are accepted too. Empty means even.
	Parity string
	// StopBits is 1 or 2; 0 means 1. The standard asks for 2 with no parity
	// so a character stays 11 bits, but many devices use 8N1: follow the device.
	StopBits int
	// USB, when set, identifies the adapter so it is found again after it
	// was unplugged and came back under another device node.
	USB *USBIdentity
}

// USBIdentity names a USB serial adapter. Empty fields match anything;
// VID and PID are hex as printed by 'sterigate ports' (case ignored).
type USBIdentity struct {
	VID, PID, Serial string
}

func (u USBIdentity) String() string {
	s := fmt.Sprintf("USB %s:%s", u.VID, u.PID)
	if u.Serial != "" {
		s += " serial " + u.Serial
	}
	return s
}

func (u USBIdentity) matches(p *enumerator.PortDetails) bool {
	return p.IsUSB &&
		(u.VID == "" || strings.EqualFold(u.VID, p.VID)) &&
		(u.PID == "" || strings.EqualFold(u.PID, p.PID)) &&
		(u.Serial == "" || u.Serial == p.SerialNumber)
}

// withDefaults fills the Modbus defaults and checks every setting, naming
// the bad one.
func (c SerialConfig) withDefaults() (SerialConfig, error) {
	if c.Baud == 0 {
		c.Baud = 19200
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.Parity == "" {
		c.Parity = "E"
	}
	switch {
	case c.Port == "" && c.USB == nil:
		return c, errors.New("serial: port is empty and no usb identity is given")
	case c.Baud < 0 || c.Baud > 4_000_000:
		return c, fmt.Errorf("serial: baud %d out of range", c.Baud)
	case c.DataBits != 8:
		return c, fmt.Errorf("serial: data_bits %d: Modbus RTU needs 8 data bits", c.DataBits)
	case c.StopBits != 1 && c.StopBits != 2:
		return c, fmt.Errorf("serial: stop_bits %d: must be 1 or 2", c.StopBits)
	}
	if _, err := parseParity(c.Parity); err != nil {
		return c, err
	}
	if c.USB != nil && c.USB.VID == "" && c.USB.PID == "" && c.USB.Serial == "" {
		return c, errors.New("serial: usb identity is empty: give vid, pid and/or serial")
	}
	return c, nil
}

func parseParity(s string) (serial.Parity, error) {
	switch strings.ToLower(s) {
	case "e", "even":
		return serial.EvenParity, nil
	case "o", "odd":
		return serial.OddParity, nil
	case "n", "none":
		return serial.NoParity, nil
	}
	return 0, fmt.Errorf("serial: parity %q: must be E (even), O (odd) or N (none)", s)
}

// bitsPerChar is start bit + data bits + parity bit + stop bits.
func (c SerialConfig) bitsPerChar() int {
	bits := 1 + c.DataBits + c.StopBits
	if p, _ := parseParity(c.Parity); p != serial.NoParity {
		bits++
	}
	return bits
}

func (c SerialConfig) mode() *serial.Mode {
	parity, _ := parseParity(c.Parity)
	stop := serial.OneStopBit
	if c.StopBits == 2 {
		stop = serial.TwoStopBits
	}
	// InitialStatusBits stays nil: setting DTR/RTS fails on ptys and on
	// some adapters ("inappropriate ioctl"), and RS-485 direction is
	// handled by the adapter.
	return &serial.Mode{BaudRate: c.Baud, DataBits: c.DataBits, Parity: parity, StopBits: stop}
}

// portLister lists serial ports; enumerator.GetDetailedPortsList in
// production, a fake in tests (ptys are not USB devices).
type portLister func() ([]*enumerator.PortDetails, error)

func listPorts() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() }

// Resolve returns the device node to open now: with a USB identity, the
// node the matching adapter currently has (it changes when an adapter is
// replugged); otherwise Port. The printer tap uses it too.
func (c SerialConfig) Resolve() (string, error) { return c.resolve(listPorts) }

// resolve returns the device node to open: the node of the adapter with the
// configured USB identity when there is one, else Port.
func (c SerialConfig) resolve(list portLister) (string, error) {
	if c.USB == nil {
		return c.Port, nil
	}
	ports, err := list()
	if err != nil {
		if c.Port != "" {
			return c.Port, nil // enumeration broken (no sysfs?): trust the configured node
		}
		return "", fmt.Errorf("serial: find %s: %w", c.USB, err)
	}
	var found []string
	for _, p := range ports {
		if c.USB.matches(p) {
			found = append(found, p.Name)
		}
	}
	switch {
	case len(found) == 0:
		return "", fmt.Errorf("serial: no adapter with %s is plugged in (configured port %q)", c.USB, c.Port)
	case len(found) > 1:
		configured := c.Port
		if target, err := filepath.EvalSymlinks(c.Port); err == nil {
			configured = target // a /dev/serial/by-id/... link names one of them
		}
		for _, name := range found {
			if name == c.Port || name == configured {
				return name, nil
			}
		}
		return "", fmt.Errorf("serial: %d adapters match %s (%s): add the serial number", len(found), c.USB, strings.Join(found, ", "))
	}
	return found[0], nil
}

// serialLine is a go.bug.st/serial port.
type serialLine struct {
	port serial.Port
	name string // the device node, for errors
}

func (s *serialLine) write(frame []byte) error {
	for len(frame) > 0 {
		n, err := s.port.Write(frame)
		if err != nil {
			return &modbus.LinkError{Op: "write " + s.name, Err: err}
		}
		if n == 0 {
			return &modbus.LinkError{Op: "write " + s.name, Err: errors.New("serial port accepted 0 bytes")}
		}
		frame = frame[n:]
	}
	return nil
}

func (s *serialLine) readSome(p []byte, deadline time.Time) (int, error) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return 0, errDeadline
	}
	if err := s.port.SetReadTimeout(wait); err != nil {
		return 0, &modbus.LinkError{Op: "read " + s.name, Err: err}
	}
	n, err := s.port.Read(p)
	if err != nil {
		return n, &modbus.LinkError{Op: "read " + s.name, Err: err}
	}
	if n == 0 {
		// go.bug.st/serial reports a read timeout as (0, nil) (issue #148).
		// Treat it as the deadline, never as "try again": retrying would spin.
		return 0, errDeadline
	}
	return n, nil
}

func (s *serialLine) discardInput() error {
	if err := s.port.ResetInputBuffer(); err != nil {
		return &modbus.LinkError{Op: "flush input of " + s.name, Err: err}
	}
	return nil
}

func (s *serialLine) close() error { return s.port.Close() }
