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
// Holding the slave open has a price that Port also pays back: the tty never
// fully closes, so what one client leaves behind would meet the next — its
// TIOCEXCL exclusive-access flag (after a kill -9, every later non-root open
// fails with EBUSY), its termios, and replies it never read. Port watches the
// device node with inotify and, when the last client closes it, clears the
// flag, restores raw mode and discards the unread bytes, as a real serial
// port forgets everything when it is closed. While no client has the device
// open, Write discards its bytes, as a real line with nothing attached does,
// instead of filling the kernel buffer and then blocking. Tracking costs one
// inotify instance per Port; when the kernel refuses one, the Port still
// works, untracked (see TrackingErr).
//
// A pty has no baud rate, parity or break: the client's termios settings are
// accepted and ignored, and bytes arrive as fast as they are written.
package ptyport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
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

	// Client tracking: inotify events on the device node. watch is nil when
	// tracking is off (trackingErr says why); then Write never discards and
	// nothing is reset.
	watch        *os.File
	watchConn    syscall.RawConn
	watcher      sync.WaitGroup
	mu           sync.Mutex
	clients      int  // opens minus closes of the device node by clients
	clientsKnown bool // false after an inotify queue overflow
	trackingErr  error

	closeOnce sync.Once
	closeErr  error
}

// Open creates a pseudo-terminal pair in raw mode. When link is not empty, a
// symbolic link is created at that path pointing to the slave device node
// (an existing symlink there, e.g. left by a killed run, is replaced; any other
// kind of file is not touched and Open fails). Close removes the link.
func Open(link string) (*Port, error) { return open(link, true) }

// open is Open with client tracking optional, so tests can run the
// untracked mode that Open falls back to when inotify is exhausted.
func open(link string, trackClients bool) (*Port, error) {
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
	if trackClients {
		p.startWatch()
	} else {
		p.trackingErr = errors.New("ptyport: client tracking switched off")
	}
	if link != "" {
		if err := replaceSymlink(link, devicePath); err != nil {
			p.closeWatch()
			master.Close()
			slave.Close()
			return nil, err
		}
		p.link = link
	}
	return p, nil
}

// startWatch begins tracking clients of the device node. It costs one
// inotify instance per Port; the kernel allows 128 per user by default
// (fs.inotify.max_user_instances), so a simulator with hundreds of ports runs
// out. Then, as on kernels without inotify, the Port works untracked: Write
// never discards, nothing is reset when a client leaves, Clients returns -1.
// The reason is kept for TrackingErr.
func (p *Port) startWatch() {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		p.trackingErr = fmt.Errorf("ptyport: clients of %s are not tracked: inotify_init1: %w", p.devicePath, err)
		return
	}
	if _, err := unix.InotifyAddWatch(fd, p.devicePath, unix.IN_OPEN|unix.IN_CLOSE_WRITE|unix.IN_CLOSE_NOWRITE); err != nil {
		unix.Close(fd)
		p.trackingErr = fmt.Errorf("ptyport: clients of %s are not tracked: inotify_add_watch: %w", p.devicePath, err)
		return
	}
	watch := os.NewFile(uintptr(fd), "inotify:"+p.devicePath) // non-blocking: poller-managed
	conn, err := watch.SyscallConn()
	if err != nil {
		watch.Close()
		p.trackingErr = fmt.Errorf("ptyport: clients of %s are not tracked: %w", p.devicePath, err)
		return
	}
	p.watch, p.watchConn, p.clientsKnown = watch, conn, true
	p.watcher.Go(p.watchClients)
}

// TrackingErr says why client tracking (see the package comment) is off for
// this Port, or is nil when it is on.
func (p *Port) TrackingErr() error { return p.trackingErr }

// watchClients applies client opens and closes as they happen, so that a
// client's last close resets the line before the next client can open it.
// It ends when Close closes the watch.
func (p *Port) watchClients() {
	for {
		err := p.watchConn.Read(func(fd uintptr) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.readEventsLocked(int(fd)) // false: nothing there, wait
		})
		if err != nil {
			return
		}
	}
}

// refreshClients applies the pending events now. Events are queued by the
// kernel before a client's open() returns, so after this the count includes
// every client that could have sent the bytes we are answering.
func (p *Port) refreshClients() {
	p.watchConn.Control(func(fd uintptr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.readEventsLocked(int(fd))
	})
}

// readEventsLocked reads all pending inotify events and reports whether
// there were any. When the last client has closed, it resets the line.
func (p *Port) readEventsLocked(fd int) bool {
	var buf [64 * (unix.SizeofInotifyEvent + unix.NAME_MAX + 1)]byte
	gotEvents, lastClientLeft := false, false
	for {
		n, err := unix.Read(fd, buf[:])
		if n <= 0 || err != nil {
			break
		}
		gotEvents = true
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := binary.NativeEndian.Uint32(buf[off+12:])
			switch {
			case mask&unix.IN_Q_OVERFLOW != 0:
				p.clientsKnown = false
			case mask&unix.IN_OPEN != 0:
				p.clients++
			case mask&(unix.IN_CLOSE_WRITE|unix.IN_CLOSE_NOWRITE) != 0 && p.clients > 0:
				p.clients--
				lastClientLeft = lastClientLeft || p.clients == 0
			}
			off += unix.SizeofInotifyEvent + int(nameLen)
		}
	}
	if p.clientsKnown && lastClientLeft {
		p.resetLineLocked(p.clients == 0)
	}
	return gotEvents
}

// resetLineLocked undoes what the last client left on the tty, as closing a
// real serial port would: its unread input, and, unless a new client has
// already opened the device (whose settings must stand), its exclusive-access
// flag and its termios. Flushing is safe even then: Write applies pending
// events before writing, so nothing meant for the new client is queued yet.
func (p *Port) resetLineLocked(noClientNow bool) {
	fd := int(p.slave.Fd())
	unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
	if noClientNow {
		unix.IoctlSetInt(fd, unix.TIOCNXCL, 0)
		makeRaw(fd)
	}
}

func (p *Port) closeWatch() {
	if p.watch != nil {
		p.watch.Close()
		p.watcher.Wait()
	}
}

// hasNoClient reports whether certainly nobody has the device node open.
func (p *Port) hasNoClient() bool {
	if p.watch == nil {
		return false
	}
	p.refreshClients()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clientsKnown && p.clients == 0
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

// Write sends bytes to the client, unchanged (raw mode). While no client has
// the device node open, the bytes are discarded and Write reports success, as
// on a real line with nothing attached. If a client has it open but does not
// read, the kernel buffers a few KiB and then Write blocks until the client
// reads, the write deadline passes or the Port is closed.
func (p *Port) Write(b []byte) (int, error) {
	if p.hasNoClient() {
		return len(b), nil
	}
	return p.master.Write(b)
}

// Clients is the number of open descriptors of the device node held by
// clients (not by the Port itself), or -1 when it cannot be known.
func (p *Port) Clients() int {
	if p.watch == nil {
		return -1
	}
	p.refreshClients()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.clientsKnown {
		return -1
	}
	return p.clients
}

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
		p.closeWatch()
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
