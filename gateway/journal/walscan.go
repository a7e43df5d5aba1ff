package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// SQLite's write-ahead log, read directly (https://www.sqlite.org/fileformat.html#the_write_ahead_log).
//
// When SQLite opens a database it replays the WAL's frames in order and
// stops at the first frame whose salt or checksum is wrong: every frame
// after it is ignored, silently, even when it holds committed
// transactions. One flipped byte in the WAL therefore makes every later
// commit vanish, and the journal would hand their seqs and ids out again.
// scanWAL reads the file before SQLite does and reports committed frames
// beyond a bad one.

const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
	walMagicLE         = 0x377f0682
	walMagicBE         = 0x377f0683
)

// walScan is what scanWAL found.
type walScan struct {
	// Frames is the number of whole frames in the file.
	Frames int
	// ValidFrames is how many frames SQLite will replay (the valid prefix).
	ValidFrames int
	// LostCommits counts commit frames after the valid prefix that carry
	// the log's salts and whose own checksum verifies: transactions that
	// were committed and that SQLite will not replay.
	LostCommits int
	// FirstBad is the index of the first frame SQLite rejects (-1: none).
	FirstBad int
	// HeaderBad is set when the WAL header itself does not verify (SQLite
	// then ignores the whole file).
	HeaderBad bool
}

// Damaged reports whether committed transactions would be lost.
func (s walScan) Damaged() bool { return s.LostCommits > 0 }

func (s walScan) String() string {
	if !s.Damaged() {
		return fmt.Sprintf("write-ahead log: %d frames, all replayable", s.Frames)
	}
	where := fmt.Sprintf("frame %d of %d does not verify", s.FirstBad, s.Frames)
	if s.HeaderBad {
		where = "its header does not verify"
	}
	return fmt.Sprintf("write-ahead log damaged: %s, and %d committed transactions after it would be lost", where, s.LostCommits)
}

// walChecksum continues SQLite's WAL checksum (s0, s1) over b, whose
// length is a multiple of 8.
func walChecksum(order binary.ByteOrder, s0, s1 uint32, b []byte) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// scanWAL reads the WAL file at path. A missing or empty file is a clean
// log. Errors are I/O errors; a malformed log is reported in the result.
func scanWAL(path string) (walScan, error) {
	res := walScan{FirstBad: -1}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer f.Close()
	hdr := make([]byte, walHeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return res, nil // no header yet: nothing was ever committed to it
		}
		return res, err
	}
	fi, err := f.Stat()
	if err != nil {
		return res, err
	}
	magic := binary.BigEndian.Uint32(hdr)
	var order binary.ByteOrder = binary.LittleEndian
	if magic == walMagicBE {
		order = binary.BigEndian
	}
	pageSize := int(binary.BigEndian.Uint32(hdr[8:]))
	headerOK := magic == walMagicLE || magic == walMagicBE
	if headerOK {
		c0, c1 := walChecksum(order, 0, 0, hdr[:24])
		headerOK = c0 == binary.BigEndian.Uint32(hdr[24:]) && c1 == binary.BigEndian.Uint32(hdr[28:])
	}
	salt1, salt2 := binary.BigEndian.Uint32(hdr[16:]), binary.BigEndian.Uint32(hdr[20:])
	if !headerOK {
		res.HeaderBad = true
		res.FirstBad = 0
		// The header cannot say the page size or the salts; a journal's
		// page size is 16 KiB, older ones 4 KiB: try both, and take the
		// salts from the first frame.
		for _, ps := range []int{16384, 4096} {
			r, err := scanFrames(f, fi.Size(), ps, binary.LittleEndian, 0, 0, false)
			if err != nil {
				return res, err
			}
			if r.LostCommits > 0 {
				r.HeaderBad, r.FirstBad = true, 0
				return r, nil
			}
			if r.Frames > res.Frames {
				res.Frames = r.Frames
			}
		}
		return res, nil
	}
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return res, nil // not a page size: SQLite ignores the file too
	}
	c0, c1 := binary.BigEndian.Uint32(hdr[24:]), binary.BigEndian.Uint32(hdr[28:])
	return scanFrames(f, fi.Size(), pageSize, order, salt1, salt2, true, c0, c1)
}

// scanFrames walks the frames after the header. With saltsKnown false the
// salts are taken from the first frame and the prefix is not verified (the
// header's checksum, its seed, is lost).
func scanFrames(f *os.File, size int64, pageSize int, order binary.ByteOrder, salt1, salt2 uint32, saltsKnown bool, seed ...uint32) (walScan, error) {
	res := walScan{FirstBad: -1}
	frameSize := int64(walFrameHeaderSize + pageSize)
	res.Frames = int((size - walHeaderSize) / frameSize)
	if res.Frames <= 0 {
		res.Frames = 0
		return res, nil
	}
	buf := make([]byte, frameSize)
	var s0, s1 uint32
	if len(seed) == 2 {
		s0, s1 = seed[0], seed[1]
	}
	valid := saltsKnown // still inside the valid prefix
	var prevStored [2]uint32
	havePrev := false
	for i := 0; i < res.Frames; i++ {
		if _, err := f.ReadAt(buf, walHeaderSize+int64(i)*frameSize); err != nil {
			return res, err
		}
		fs1, fs2 := binary.BigEndian.Uint32(buf[8:]), binary.BigEndian.Uint32(buf[12:])
		stored := [2]uint32{binary.BigEndian.Uint32(buf[16:]), binary.BigEndian.Uint32(buf[20:])}
		commit := binary.BigEndian.Uint32(buf[4:]) != 0
		if !saltsKnown && i == 0 {
			salt1, salt2 = fs1, fs2
		}
		saltsMatch := fs1 == salt1 && fs2 == salt2
		if valid {
			a, b := walChecksum(order, s0, s1, buf[:8])
			a, b = walChecksum(order, a, b, buf[walFrameHeaderSize:])
			if saltsMatch && a == stored[0] && b == stored[1] {
				s0, s1 = a, b
				res.ValidFrames = i + 1
				prevStored, havePrev = stored, true
				continue
			}
			valid = false
			res.FirstBad = i
		}
		// Past the valid prefix: a frame of this log generation whose own
		// checksum verifies from its predecessor's stored one was written
		// whole; a commit frame among them is a lost transaction.
		if saltsMatch && havePrev && commit {
			a, b := walChecksum(order, prevStored[0], prevStored[1], buf[:8])
			a, b = walChecksum(order, a, b, buf[walFrameHeaderSize:])
			if a == stored[0] && b == stored[1] {
				res.LostCommits++
			}
		}
		prevStored, havePrev = stored, true
	}
	return res, nil
}
