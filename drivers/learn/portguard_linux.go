package learn

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PortUser is another sterigate process that has a serial port open.
type PortUser struct {
	PID     int
	Command string // its command line
}

// SerialPortUsers lists the other sterigate processes (not the simulator,
// which holds its own pseudo-terminals) that have the serial device at
// path open: learning on a bus another master polls would interleave two
// masters' frames. The serial port's exclusive mode (TIOCEXCL) stops
// other users' opens, but not root's, so the process table is looked at
// too. Processes whose descriptors cannot be read (another user's, when
// not root) are not seen; their exclusive open still fails.
func SerialPortUsers(path string) ([]PortUser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&os.ModeCharDevice == 0 {
		return nil, nil // not a device node: nothing to share
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, nil // no /proc: rely on the exclusive open
	}
	self := os.Getpid()
	var users []PortUser
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(cmd, "\x00")), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "sterigate") || (len(args) > 1 && args[1] == "sim") {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			var fst syscall.Stat_t
			if syscall.Stat(filepath.Join("/proc", p.Name(), "fd", fd.Name()), &fst) != nil {
				continue
			}
			if fst.Mode&syscall.S_IFMT == syscall.S_IFCHR && fst.Rdev == st.Rdev {
				users = append(users, PortUser{PID: pid, Command: strings.Join(args, " ")})
				break
			}
		}
	}
	return users, nil
}
