package journal

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultReserveBytes is the size of the space reserve: room for the
// cycle records, events and driver state of a long disk-full outage.
const DefaultReserveBytes = 16 << 20

// spaceReserve is a file of really allocated blocks kept next to the
// journal. When the disk fills, deleting it gives the journal back that
// much room, which the writer spends on cycle records, events and driver
// state only (telemetry waits in memory): the records of the outage are
// durable, and a gateway killed during it restarts with its cycles intact.
// The file is made again once the disk has room for it and as much again.
type spaceReserve struct {
	path string
	size int64
	log  *slog.Logger
}

func spaceReservePath(journal string) string {
	return strings.TrimSuffix(journal, filepath.Ext(journal)) + ".space-reserve"
}

func newSpaceReserve(path string, size int64, log *slog.Logger) *spaceReserve {
	return &spaceReserve{path: path, size: size, log: log}
}

// present reports whether the reserve file exists at its full size.
func (s *spaceReserve) present() bool {
	fi, err := os.Stat(s.path)
	return err == nil && fi.Size() >= s.size
}

// ensure creates the reserve when it is missing and the disk has room for
// it; it reports whether the reserve is in place.
func (s *spaceReserve) ensure() bool {
	if s.present() {
		return true
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.log.Warn("journal: cannot create the space reserve", "reserve", s.path, "err", err)
		return false
	}
	// fallocate allocates the blocks: a sparse file would free nothing.
	err = unix.Fallocate(int(f.Fd()), 0, 0, s.size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, s.size)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		os.Remove(s.path)
		s.log.Warn("journal: no room for the space reserve: the disk is full", "reserve", s.path, "bytes", s.size, "err", err)
		return false
	}
	syncDir(filepath.Dir(s.path))
	return true
}

func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// release deletes the reserve; it reports whether there was one to free.
func (s *spaceReserve) release() bool {
	if !fileExists(s.path) {
		return false
	}
	if err := os.Remove(s.path); err != nil {
		s.log.Warn("journal: cannot release the space reserve", "reserve", s.path, "err", err)
		return false
	}
	syncDir(filepath.Dir(s.path))
	return true
}

// roomReturned reports whether the file system has room for the reserve
// and as much again: enough to leave the disk-full mode.
func (s *spaceReserve) roomReturned() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(s.path), &st); err != nil {
		return false
	}
	return int64(st.Bavail)*int64(st.Bsize) >= 2*s.size
}
