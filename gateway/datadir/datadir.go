// Package datadir owns the gateway's data directory: it checks that the
// directory can be created before anything is started, creates it, and
// locks it so that one gateway, and only one, writes the journal in it.
//
// Two gateways on one journal fork its hash chain (two entries with the
// same seq), fight over the MQTT client id and make the gateway status
// flap; the lock refuses the second one at start.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockFile is the name of the lock file in the data directory. It holds
// the pid of the gateway that holds the lock.
const LockFile = "sterigate.lock"

// Lock is an exclusive lock on a data directory, held until Release or
// the process's end (the kernel releases a flock when its holder dies, so
// a SIGKILLed gateway leaves no stale lock behind).
type Lock struct {
	f *os.File
}

// InUseError says that another process holds the lock.
type InUseError struct {
	Dir string
	// PID is the holder's process id, as it wrote it in the lock file (0
	// when the file does not say).
	PID int
}

func (e *InUseError) Error() string {
	who := "another sterigate"
	if e.PID > 0 {
		who = fmt.Sprintf("another sterigate (pid %d)", e.PID)
	}
	return fmt.Sprintf("data directory %s is in use by %s: one gateway per journal. Stop that one first, or give this one its own gateway.data_dir", e.Dir, who)
}

// Acquire creates dir if needed and takes its lock without waiting.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway.data_dir: %w", err)
	}
	// The journal holds every record: only the gateway's own user may
	// look into the directory, whatever made it.
	if err := restrict(dir); err != nil {
		return nil, fmt.Errorf("gateway.data_dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gateway.data_dir: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: readPID(path)}
		}
		return nil, fmt.Errorf("gateway.data_dir: lock %s: %w", path, err)
	}
	// The pid is for the message a second gateway prints; the lock itself
	// is the flock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// restrict makes dir 0700 when it is more open and this process owns it;
// a directory owned by someone else (set up by an administrator) is left
// as it is.
func restrict(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil
	}
	return os.Chmod(dir, fi.Mode().Perm()&0o700)
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// Release gives the lock up. The lock file stays: removing it would let
// a third gateway lock a new file while a second still waits on the old.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}

// CheckCreatable reports whether dir exists as a writable directory or can
// be created, without creating anything: 'sterigate check' must not change
// the machine it checks. Errors name paths as dir names them.
func CheckCreatable(dir string) error {
	target := filepath.Clean(dir)
	for p := target; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			if p == target {
				return fmt.Errorf("%s is not a directory", p)
			}
			return fmt.Errorf("cannot be created: %s is not a directory", p)
		case err == nil:
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				if p == target {
					return fmt.Errorf("%s is not writable: %w", p, err)
				}
				return fmt.Errorf("cannot be created in %s: %w", p, err)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
			// ENOTDIR: a file further up; the walk up finds and names it.
			return err
		}
		if filepath.Dir(p) == p {
			return fmt.Errorf("cannot be created: no existing parent directory")
		}
	}
}
