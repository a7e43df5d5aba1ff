//go:build !linux

package learn

// PortUser is another sterigate process that has a serial port open.
type PortUser struct {
	PID     int
	Command string
}

// SerialPortUsers finds nothing outside Linux: there the serial port's
// exclusive open is the only guard.
func SerialPortUsers(path string) ([]PortUser, error) { return nil, nil }
