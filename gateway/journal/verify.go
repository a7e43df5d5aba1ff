package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// DamagedEntry is an entry that failed its check before publishing.
type DamagedEntry struct {
	Entry Entry
	Why   string
}

// predecessorWindow bounds how far back, in outbox positions, the chain
// check looks for a device's previous entry: a device silent while others
// filled the journal has its previous entry far back, and then its link
// is not checked (consumers check every link anyway).
const predecessorWindow = 100_000

// Verify checks entries read from the outbox before they are published:
// each payload still hashes to its stored hash, names the row's id and
// seq, and carries as prev_hash the stored hash of the device's previous
// entry (when the journal still holds it). The payload's bytes are what
// consumers verify the chain with; a byte flipped on disk must never reach
// them. It returns the entries that fail; the error is for a database that
// cannot be read.
func (j *Journal) Verify(ctx context.Context, es []Entry) ([]DamagedEntry, error) {
	var bad []DamagedEntry
	for _, e := range es {
		why, err := j.verifyOne(ctx, &e)
		if err != nil {
			return bad, err
		}
		if why != "" {
			bad = append(bad, DamagedEntry{Entry: e, Why: why})
		}
	}
	return bad, nil
}

func (j *Journal) verifyOne(ctx context.Context, e *Entry) (string, error) {
	sum := sha256.Sum256(e.Payload)
	var stored [sha256.Size]byte
	if n, err := hex.Decode(stored[:], []byte(e.Hash)); err != nil || n != len(stored) || stored != sum {
		return fmt.Sprintf("entry %d (%s %s seq %d): its payload hashes to %s, the journal stored %s", e.ID, e.Device, e.Kind, e.Seq, hex.EncodeToString(sum[:]), e.Hash), nil
	}
	f, ok := chainFieldsOf(e.Payload)
	switch {
	case !ok:
		return fmt.Sprintf("entry %d (%s %s seq %d): its payload is not a journal payload", e.ID, e.Device, e.Kind, e.Seq), nil
	case f.id != e.RecordID || f.seq != e.Seq:
		return fmt.Sprintf("entry %d: its payload is %s seq %d, the row says %s seq %d", e.ID, f.id, f.seq, e.RecordID, e.Seq), nil
	}
	if e.Replay {
		// A salvaged entry: its chain is the damaged journal's, and the
		// salvage verified it.
		return "", nil
	}
	defer j.verified.remember(e.Device, e.Seq, e.Hash, e.Kind != KindTelemetry)
	if f.prevHash == "" {
		if e.Seq != 1 {
			return fmt.Sprintf("entry %d (%s seq %d): no prev_hash, and it is not the device's first entry", e.ID, e.Device, e.Seq), nil
		}
		return "", nil
	}
	prev, known := j.verified.lookup(e.Device, e.Seq-1)
	if !known {
		var seq uint64
		err := j.rdb.QueryRowContext(ctx, `SELECT seq, hash FROM entries WHERE device = ? AND id < ? AND id > ? AND replay = 0 ORDER BY id DESC LIMIT 1`,
			e.Device, e.ID, e.ID-predecessorWindow).Scan(&seq, &prev)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return "", nil // pruned, far back, or before a journal break
		case err != nil:
			if isCorrupt(err) {
				return fmt.Sprintf("entry %d (%s seq %d): its previous entry cannot be read: %v", e.ID, e.Device, e.Seq, err), nil
			}
			return "", fmt.Errorf("journal: read the entry before %s seq %d: %w", e.Device, e.Seq, err)
		case seq >= e.Seq:
			return fmt.Sprintf("entry %d (%s seq %d) comes after seq %d of the same device", e.ID, e.Device, e.Seq, seq), nil
		case seq < e.Seq-1:
			return "", nil // thinned telemetry in between: a gap event says so
		}
	}
	if prev != f.prevHash {
		return fmt.Sprintf("entry %d (%s seq %d): its prev_hash is %s, the previous entry's stored hash is %s", e.ID, e.Device, e.Seq, f.prevHash, prev), nil
	}
	return "", nil
}

// payloadChain is what the chain check reads from a payload.
type payloadChain struct {
	id       string
	seq      uint64
	prevHash string
}

// chainFieldsOf reads id, seq and prev_hash from a payload the journal
// marshalled (and whose hash was just checked), without decoding the
// whole payload: the id is the payload's first "id" key (the second field),
// seq and prev_hash its last ones. A JSON string never holds an unescaped
// quote, so these keys cannot be matched inside a value.
func chainFieldsOf(p []byte) (payloadChain, bool) {
	var f payloadChain
	i := bytes.Index(p, []byte(`"id":"`))
	if i < 0 {
		return f, false
	}
	rest := p[i+len(`"id":"`):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return f, false
	}
	if bytes.IndexByte(rest[:end], '\\') >= 0 {
		// An escaped id: decode properly.
		var v struct {
			ID       string `json:"id"`
			Seq      uint64 `json:"seq"`
			PrevHash string `json:"prev_hash"`
		}
		if json.Unmarshal(p, &v) != nil {
			return f, false
		}
		return payloadChain{v.ID, v.Seq, v.PrevHash}, true
	}
	f.id = string(rest[:end])
	i = bytes.LastIndex(p, []byte(`"seq":`))
	if i < 0 {
		return f, false
	}
	digits := p[i+len(`"seq":`):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(digits[:n]), 10, 64)
	if err != nil {
		return f, false
	}
	f.seq = seq
	if i := bytes.LastIndex(p, []byte(`"prev_hash":"`)); i >= 0 {
		rest := p[i+len(`"prev_hash":"`):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return f, false
		}
		f.prevHash = string(rest[:end])
	}
	return f, true
}

// chainMemory remembers the hashes of the last entries verified per
// device, so checking an entry's link to its predecessor rarely reads the
// database: each lane is checked in seq order, and cycle records and
// events (read first, and rarer) are kept apart so the telemetry that
// follows one still finds it.
type chainMemory struct {
	mu                sync.Mutex
	telemetry, urgent map[string]*recentLinks
}

const recentLinksKept = 64

type recentLinks struct {
	seq  [recentLinksKept]uint64
	hash [recentLinksKept]string
	next int
}

func (m *chainMemory) remember(device string, seq uint64, hash string, urgent bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lane := &m.telemetry
	if urgent {
		lane = &m.urgent
	}
	if *lane == nil {
		*lane = map[string]*recentLinks{}
	}
	r := (*lane)[device]
	if r == nil {
		r = &recentLinks{}
		(*lane)[device] = r
	}
	r.seq[r.next], r.hash[r.next] = seq, hash
	r.next = (r.next + 1) % recentLinksKept
}

func (m *chainMemory) lookup(device string, seq uint64) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq == 0 {
		return "", false
	}
	for _, lane := range []map[string]*recentLinks{m.telemetry, m.urgent} {
		if r := lane[device]; r != nil {
			for i := range recentLinksKept {
				if r.seq[i] == seq && r.hash[i] != "" {
					return r.hash[i], true
				}
			}
		}
	}
	return "", false
}
