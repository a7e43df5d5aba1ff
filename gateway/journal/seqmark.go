package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// seqBlock is how many seqs of a device one reservation covers: one small
// fsynced write per block, and the most a replaced journal skips.
const seqBlock = 4096

// The sequence high-water file records, per device, a seq that no entry
// has reached yet, and is fsynced before any entry passes it. It lives
// outside the journal, so when the journal is damaged — a flipped byte in
// its write-ahead log makes committed entries vanish — the journal that
// replaces it starts every device past anything the damaged one assigned,
// and so past anything it could have published: no seq is reused for
// other content.
//
// The file has two fixed-size slots written in turn, in place (a full disk
// cannot refuse an overwrite), each with a generation and a CRC; the newer
// valid slot wins, so a write torn by a power cut leaves the other one.
const (
	seqSlotSize  = 32 << 10
	seqSlotMagic = "STGSEQ01"
	seqSlotHead  = 8 + 8 + 4 + 4 // magic, generation, length, crc32
)

type seqMark struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	gen      uint64
	reserve  map[string]uint64
	lastSlot int
}

func seqMarkPath(journal string) string {
	return strings.TrimSuffix(journal, filepath.Ext(journal)) + ".seq-highwater"
}

// openSeqMark opens (creating) the high-water file. A file whose slots
// are both unreadable starts empty: the caller falls back to what the
// journal itself says.
func openSeqMark(path string) (*seqMark, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sequence high-water file: %w", err)
	}
	m := &seqMark{path: path, f: f, reserve: map[string]uint64{}, lastSlot: 1}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sequence high-water file: %w", err)
	}
	if fi.Size() < 2*seqSlotSize {
		// Preallocated, so later writes overwrite and never need space.
		if err := f.Truncate(2 * seqSlotSize); err != nil {
			f.Close()
			return nil, fmt.Errorf("sequence high-water file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sequence high-water file: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, err
		}
	}
	for slot := range 2 {
		gen, reserve, ok := readSeqSlot(f, slot)
		if ok && gen > m.gen {
			m.gen, m.reserve, m.lastSlot = gen, reserve, slot
		}
	}
	return m, nil
}

func readSeqSlot(f *os.File, slot int) (uint64, map[string]uint64, bool) {
	buf := make([]byte, seqSlotSize)
	if _, err := f.ReadAt(buf, int64(slot)*seqSlotSize); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, false
	}
	if !bytes.Equal(buf[:8], []byte(seqSlotMagic)) {
		return 0, nil, false
	}
	gen := binary.BigEndian.Uint64(buf[8:])
	n := int(binary.BigEndian.Uint32(buf[16:]))
	if n > seqSlotSize-seqSlotHead {
		return 0, nil, false
	}
	body := buf[seqSlotHead : seqSlotHead+n]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(buf[20:]) {
		return 0, nil, false
	}
	reserve := map[string]uint64{}
	if json.Unmarshal(body, &reserve) != nil {
		return 0, nil, false
	}
	return gen, reserve, true
}

// reserveFor makes seq of device reserved, writing and syncing a new
// reservation when seq is past the current one. It must return before an
// entry with that seq is committed.
func (m *seqMark) reserveFor(device string, seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.reserve[device] {
		return nil
	}
	next := maps.Clone(m.reserve)
	if next == nil {
		next = map[string]uint64{}
	}
	next[device] = seq + seqBlock
	body, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if len(body) > seqSlotSize-seqSlotHead {
		return fmt.Errorf("sequence high-water file: %d devices do not fit in a slot", len(next))
	}
	slot := 1 - m.lastSlot
	buf := make([]byte, seqSlotHead+len(body))
	copy(buf, seqSlotMagic)
	binary.BigEndian.PutUint64(buf[8:], m.gen+1)
	binary.BigEndian.PutUint32(buf[16:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[20:], crc32.ChecksumIEEE(body))
	copy(buf[seqSlotHead:], body)
	if _, err := m.f.WriteAt(buf, int64(slot)*seqSlotSize); err != nil {
		return fmt.Errorf("sequence high-water file: %w", err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("sequence high-water file: %w", err)
	}
	m.gen++
	m.lastSlot = slot
	m.reserve = next
	return nil
}

// reserved returns the device's reservation: every seq it was ever given
// is at most this.
func (m *seqMark) reserved(device string) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reserve[device]
	return r, ok
}

func (m *seqMark) devices() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.reserve))
	for d := range m.reserve {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Close closes the file; safe on nil.
func (m *seqMark) Close() error {
	if m == nil || m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}
