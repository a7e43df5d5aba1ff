// Package ptyport gives the simulator a virtual serial port: a pseudo-terminal
// whose slave side is the device node a serial client (the gateway, mbpoll, a
// terminal program) opens, and whose master side the simulator reads and writes.
//
// Three traps of raw ptys are handled here so that callers need not know them
// (see ../shared/reference/libraries.md §3):
//
//   - A new pty slave starts in cooked mode with echo, so early bytes would be
//     echoed back or have CR/LF translated. Open puts it into raw mode at once.
//   - When the last descriptor of the slave closes, reads on the master fail
//     with EIO until someone opens the slave again. Port keeps its own slave
//     descriptor open for its whole life, so a client may close and reopen the
//     device node as often as it likes; the master just sees no bytes meanwhile.
//   - creack/pty hands back a blocking master, whose Read cannot be interrupted.
//     Port re-registers the master with the Go runtime poller, so Close and
//     SetReadDeadline interrupt a pending Read.
//
// A pty has no baud rate, parity or break: the client's termios settings are
// accepted and ignored, and bytes arrive as fast as they are written.
package ptyport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Port is one pseudo-terminal pair. Read and Write act on the master side;
// clients open Path(). A Port is safe for one reader and one writer at a time
// (like any file); Close may be called from any goroutine and more than once.
type Port struct {
	master     *os.File // pollable: Close/SetReadDeadline interrupt Read
	slave      *os.File // held open only so the master never sees EIO; never read
	devicePath string   // e.g. /dev/pts/7
	link       string   // symlink to devicePath, "" when none was asked for

	closeOnce sync.Once
	closeErr  error
}

// Open creates a pseudo-terminal pair in raw mode. When link is not empty, a
// symbolic link is created at that path pointing to the slave device node
// (an existing symlink there, e.g. left by a killed run, is replaced; any other
// kind of file is not touched and Open fails). Close removes the link.
func Open(link string) (*Port, error) {
	blockingMaster, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("ptyport: open pseudo-terminal: %w", err)
	}
	devicePath := slave.Name()
	// Raw mode first, before any client can open the slave and before any byte
	// flows: cooked mode would echo and translate CR/LF.
	if err := makeRaw(int(slave.Fd())); err != nil {
		blockingMaster.Close()
		slave.Close()
		return nil, fmt.Errorf("ptyport: raw mode on %s: %w", devicePath, err)
	}
	master, err := pollable(blockingMaster)
	if err != nil {
		slave.Close()
		return nil, fmt.Errorf("ptyport: master of %s: %w", devicePath, err)
	}
	p := &Port{master: master, slave: slave, devicePath: devicePath}
	if link != "" {
		if err := replaceSymlink(link, devicePath); err != nil {
			master.Close()
			slave.Close()
			return nil, err
		}
		p.link = link
	}
	return p, nil
}

// pollable turns creack/pty's blocking master (Fd() put it into blocking mode)
// into a file registered with the runtime poller, so that Close and read
// deadlines interrupt a Read that waits for bytes.
func pollable(blocking *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(blocking.Fd()))
	blocking.Close()
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	// os.NewFile sees O_NONBLOCK and registers the descriptor with the poller.
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// makeRaw is cfmakeraw(3): 8 bits, no parity handling, no echo, no line
// editing, no signals, no CR/LF translation in either direction, no XON/XOFF
// (0x11 and 0x13 are ordinary data bytes in Modbus RTU).
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func replaceSymlink(link, target string) error {
	info, err := os.Lstat(link)
	switch {
	case err == nil && info.Mode()&fs.ModeSymlink != 0:
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("ptyport: replace stale link %s: %w", link, err)
		}
	case err == nil:
		return fmt.Errorf("ptyport: link path %s exists and is not a symlink (mode %v); refusing to replace it", link, info.Mode())
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("ptyport: link path %s: %w", link, err)
	}
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("ptyport: create link %s -> %s: %w", link, target, err)
	}
	return nil
}

// Path is what a serial client should open: the symlink if one was asked for,
// else the slave device node.
func (p *Port) Path() string {
	if p.link != "" {
		return p.link
	}
	return p.devicePath
}

// DevicePath is the slave device node, e.g. /dev/pts/7, even when a link exists.
func (p *Port) DevicePath() string { return p.devicePath }

// Read reads bytes the client wrote. It blocks until at least one byte is
// there, the read deadline passes, or the Port is closed (then it returns an
// error wrapping os.ErrClosed).
func (p *Port) Read(b []byte) (int, error) { return p.master.Read(b) }

// Write sends bytes to the client. Bytes pass unchanged (raw mode). If no
// client reads, the kernel buffers about 4 KiB and then Write blocks until
// a client reads, the write deadline passes or the Port is closed.
func (p *Port) Write(b []byte) (int, error) { return p.master.Write(b) }

// SetReadDeadline bounds pending and future Reads (os.ErrDeadlineExceeded);
// the zero time removes the bound.
func (p *Port) SetReadDeadline(t time.Time) error { return p.master.SetReadDeadline(t) }

// SetWriteDeadline bounds pending and future Writes; the zero time removes it.
func (p *Port) SetWriteDeadline(t time.Time) error { return p.master.SetWriteDeadline(t) }

// Close interrupts pending Reads and Writes, closes both sides and removes the
// symlink (only if it still points to this Port's device node). A client that
// still has the device node open sees end of file / EIO from then on.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.link != "" {
			if target, err := os.Readlink(p.link); err == nil && target == p.devicePath {
				if err := os.Remove(p.link); err != nil {
					errs = append(errs, fmt.Errorf("ptyport: remove link %s: %w", p.link, err))
				}
			}
		}
		if err := p.master.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ptyport: close master of %s: %w", p.devicePath, err))
		}
		if err := p.slave.Close(); err != nil {
			errs = append(errs, fmt.Errorf("ptyport: close slave %s: %w", p.devicePath, err))
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
