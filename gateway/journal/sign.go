package journal

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// Signing: the writer signs every cycle record and event as it appends
// it, and a signed checkpoint event covers the telemetry a device's chain
// holds since its last signed entry (docs/evidence.md). Telemetry is not
// signed batch by batch: the group commit would lose a third of its
// throughput to Ed25519.

// DefaultCheckpointEvery is how long an entry may wait, at most, for a
// signature that covers it.
const DefaultCheckpointEvery = time.Minute

// ErrKeyMismatch is wrapped by Open's error when the signer is not the
// journal's current signing key.
var ErrKeyMismatch = errors.New("not the journal's signing key")

// signingState is the writer's committed signing state.
type signingState struct {
	signer *evidence.Signer
	// uncovered holds, per device whose chain ends in entries no
	// signature covers, the oldest of them.
	uncovered map[string]uncoveredRun
}

type uncoveredRun struct {
	since time.Time // when the first uncovered entry was written
	from  uint64    // its seq
	n     int       // how many (0: unknown, after a restart)
}

// signStage is one transaction's signing effects.
type signStage struct {
	uncovered map[string]*uncoveredRun // nil value: covered by a signature
	signedSeq map[string]uint64
	signer    *evidence.Signer // the signer after a key rotation
	newKey    *evidence.PublicKey
}

// signingRequest is what a checkpoint or key rotation request carries.
type signingRequest struct {
	force   bool // checkpoint every uncovered chain now, due or not
	next    *evidence.Signer
	keyLost bool // the rotation is signed by the next key: the old one is lost
}

func signatureOf(keyID sql.NullString, sig []byte) *evidence.Signature {
	if !keyID.Valid || len(sig) == 0 {
		return nil
	}
	return &evidence.Signature{Key: keyID.String, Ed25519: sig}
}

// loadSigning registers the signer's key in the journal (the first key),
// or checks that it is the current one, and finds the chains that end in
// entries no signature covers (a gateway that was killed).
func (w *writer) loadSigning(ctx context.Context) error {
	w.signing = signingState{signer: w.j.opts.Signer, uncovered: map[string]uncoveredRun{}}
	signed := map[string]uint64{}
	rows, err := w.conn.QueryContext(ctx, `SELECT device, seq FROM signed_heads`)
	if err != nil {
		return fmt.Errorf("load signed_heads: %w", err)
	}
	for rows.Next() {
		var d string
		var seq uint64
		if err := rows.Scan(&d, &seq); err != nil {
			rows.Close()
			return fmt.Errorf("load signed_heads: %w", err)
		}
		signed[d] = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load signed_heads: %w", err)
	}
	for d, h := range w.heads {
		if signed[d] < h.seq {
			// Due at once: whatever stopped the gateway before it could
			// sign them, cover them now.
			w.signing.uncovered[d] = uncoveredRun{from: signed[d] + 1}
		}
	}
	s := w.signing.signer
	if s == nil {
		return nil
	}
	keys, err := readSigningKeys(ctx, w.conn)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		pk := s.Public()
		return insertSigningKey(ctx, w.conn, pk)
	}
	current := keys[len(keys)-1]
	if current.ID == s.ID() {
		return nil
	}
	for _, k := range keys {
		if k.ID == s.ID() {
			return fmt.Errorf("%w: key %s was replaced by key %s; its entries stay verifiable, but it may not sign any more", ErrKeyMismatch, s.ID(), current.ID)
		}
	}
	return fmt.Errorf("%w: the journal is signed by key %s, this key is %s", ErrKeyMismatch, current.ID, s.ID())
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func readSigningKeys(ctx context.Context, q querier) ([]evidence.PublicKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT key_id, algorithm, public_key, created_at, previous FROM signing_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read signing_keys: %w", err)
	}
	defer rows.Close()
	var out []evidence.PublicKey
	for rows.Next() {
		var id, alg, prev string
		var pub []byte
		var created int64
		if err := rows.Scan(&id, &alg, &pub, &created, &prev); err != nil {
			return nil, fmt.Errorf("read signing_keys: %w", err)
		}
		if alg != evidence.Algorithm {
			return nil, fmt.Errorf("signing_keys: key %s has algorithm %q, not %s", id, alg, evidence.Algorithm)
		}
		pk := evidence.NewPublicKey(pub, time.UnixMilli(created), prev)
		if pk.ID != id {
			return nil, fmt.Errorf("signing_keys: the row of key %s holds key %s", id, pk.ID)
		}
		out = append(out, pk)
	}
	return out, rows.Err()
}

func insertSigningKey(ctx context.Context, e execer, pk evidence.PublicKey) error {
	if _, err := e.ExecContext(ctx, `INSERT INTO signing_keys (key_id, algorithm, public_key, created_at, previous) VALUES (?,?,?,?,?)`,
		pk.ID, evidence.Algorithm, []byte(pk.Key), pk.CreatedAt.UnixMilli(), pk.Previous); err != nil {
		return fmt.Errorf("record signing key %s: %w", pk.ID, err)
	}
	return nil
}

// signerOf is the key that signs in the open transaction.
func (w *writer) signerOf(st *staged) *evidence.Signer {
	if st.sign.signer != nil {
		return st.sign.signer
	}
	return w.signing.signer
}

// signEntry signs an entry being appended: cycle records and events; nil
// for telemetry and without a signer.
func (w *writer) signEntry(st *staged, kind Kind, hash string) *evidence.Signature {
	s := w.signerOf(st)
	if s == nil || kind == KindTelemetry {
		return nil
	}
	sig := s.Sign(hash)
	return &sig
}

// sigColumns are the key_id and signature values of an entry row.
func sigColumns(sig *evidence.Signature) (any, any) {
	if sig == nil {
		return nil, nil
	}
	return sig.Key, sig.Ed25519
}

// noteAppended keeps track of which chains end in entries no signature
// covers.
func (w *writer) noteAppended(st *staged, device string, seq uint64, signed bool, at time.Time) {
	if st.sign.uncovered == nil {
		st.sign.uncovered = map[string]*uncoveredRun{}
		st.sign.signedSeq = map[string]uint64{}
	}
	if signed {
		st.sign.uncovered[device] = nil
		st.sign.signedSeq[device] = seq
		return
	}
	if r, ok := st.sign.uncovered[device]; ok && r != nil {
		r.n++
		return
	} else if !ok {
		if cur, ok := w.signing.uncovered[device]; ok {
			cur.n++
			st.sign.uncovered[device] = &cur
			return
		}
	}
	st.sign.uncovered[device] = &uncoveredRun{since: at, from: seq, n: 1}
}

// uncoveredOf is device's uncovered run as the open transaction sees it.
func (w *writer) uncoveredOf(st *staged, device string) (uncoveredRun, bool) {
	if r, ok := st.sign.uncovered[device]; ok {
		if r == nil {
			return uncoveredRun{}, false
		}
		return *r, true
	}
	r, ok := w.signing.uncovered[device]
	return r, ok
}

// saveSignedHeads records, inside the transaction, the last signed seq of
// each device that got a signed entry.
func (w *writer) saveSignedHeads(ctx context.Context, st *staged) error {
	for d, seq := range st.sign.signedSeq {
		if _, err := w.conn.ExecContext(ctx, `INSERT INTO signed_heads (device, seq) VALUES (?,?) ON CONFLICT (device) DO UPDATE SET seq=excluded.seq`, d, seq); err != nil {
			return fmt.Errorf("journal: record the signed head of %q: %w", d, err)
		}
	}
	if st.sign.newKey != nil {
		if err := insertSigningKey(ctx, w.conn, *st.sign.newKey); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

// commitSigning makes a committed transaction's signing effects current.
func (w *writer) commitSigning(st *staged) {
	for d, r := range st.sign.uncovered {
		if r == nil {
			delete(w.signing.uncovered, d)
		} else {
			w.signing.uncovered[d] = *r
		}
	}
	if st.sign.signer != nil {
		w.signing.signer = st.sign.signer
	}
}

// applyCheckpoint appends a signed checkpoint event to every chain that
// ends in entries no signature covers, once the oldest of them waited
// long enough (or at once with force).
func (w *writer) applyCheckpoint(ctx context.Context, st *staged, r *request) error {
	if w.signerOf(st) == nil {
		return nil
	}
	now := w.j.opts.Now()
	// The loop ticks every sixth of the interval: checkpoints come when
	// the oldest uncovered entry is five sixths old, so none waits longer
	// than the interval.
	due := w.j.opts.CheckpointEvery - w.j.opts.CheckpointEvery/checkpointTicks
	for _, d := range keysOf(w.signing.uncovered, st.sign.uncovered) {
		run, ok := w.uncoveredOf(st, d)
		if !ok || (!r.signing.force && now.Sub(run.since) < due) {
			continue
		}
		h := w.headOf(st, d)
		text := fmt.Sprintf("signed checkpoint: covers the chain up to seq %d", h.seq)
		count := 0
		if run.n > 0 {
			count = run.n
			text = fmt.Sprintf("signed checkpoint: covers seq %d to %d (%d entries written since the last signed one)", run.from, h.seq, run.n)
		} else if run.from > 0 {
			text = fmt.Sprintf("signed checkpoint: covers seq %d to %d (written before the gateway last stopped without signing them)", run.from, h.seq)
		}
		ev := protocol.Event{Device: d, At: now.UTC(), Kind: protocol.EventCheckpoint, Text: text, Count: count, CoversSeq: h.seq, CoversHash: h.hash}
		if _, err := w.apply(ctx, st, w.j.eventRequest(ev, false)); err != nil {
			return err
		}
	}
	return nil
}

// applyRotation journals a key rotation: a key_rotation event on every
// device's chain, signed by the current key (or, when it is lost, by the
// next one), and the next key in the key table; entries after it are
// signed by the next key.
func (w *writer) applyRotation(ctx context.Context, st *staged, r *request) error {
	next := r.signing.next
	cur := w.signerOf(st)
	if cur == nil && !r.signing.keyLost {
		return errors.New("journal: a key rotation needs the current key (or says it is lost)")
	}
	if cur != nil && cur.ID() == next.ID() {
		return fmt.Errorf("journal: key %s is already the signing key", next.ID())
	}
	previous := ""
	keys, err := readSigningKeys(ctx, w.conn)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		previous = keys[len(keys)-1].ID
	}
	for _, k := range keys {
		if k.ID == next.ID() {
			return fmt.Errorf("journal: key %s signed in this journal before; a rotation needs a new key", next.ID())
		}
	}
	text := fmt.Sprintf("signing key %s is replaced by key %s; this event is signed by %s", previous, next.ID(), previous)
	if r.signing.keyLost {
		text = fmt.Sprintf("signing key %s was lost; key %s takes over and signs this event itself: check key %s against a copy of the key kept apart from this gateway", previous, next.ID(), next.ID())
		st.sign.signer = next
	}
	nextPub := next.Public()
	for _, d := range keysOf(w.heads, st.heads) {
		ev := protocol.Event{Device: d, At: w.j.opts.Now().UTC(), Kind: protocol.EventKeyRotation, Text: text,
			NextKey: nextPub.ID, NextPublicKey: base64.StdEncoding.EncodeToString(nextPub.Key)}
		if _, err := w.apply(ctx, st, w.j.eventRequest(ev, false)); err != nil {
			return err
		}
	}
	pk := evidence.NewPublicKey(nextPub.Key, nextPub.CreatedAt, previous)
	st.sign.newKey = &pk
	st.sign.signer = next
	return nil
}

// checkpointTicks is how many times per CheckpointEvery the loop looks.
const checkpointTicks = 6

// checkpointLoop asks the writer, several times per CheckpointEvery, to
// sign the chains whose uncovered entries are due.
func (j *Journal) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(j.opts.CheckpointEvery / checkpointTicks)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.submit(ctx, &request{kind: reqCheckpoint, signing: &signingRequest{}}); err != nil && ctx.Err() == nil {
				j.log.Warn("journal: checkpoint", "err", err)
			}
		}
	}
}

// Checkpoint signs, now, every chain that ends in entries no signature
// covers yet. The gateway calls it when it stops, before its publisher
// does, so the last telemetry goes out covered.
func (j *Journal) Checkpoint(ctx context.Context) error {
	if j.opts.Signer == nil {
		return nil
	}
	return j.submit(ctx, &request{kind: reqCheckpoint, signing: &signingRequest{force: true}})
}

func (j *Journal) checkpointAtClose() {
	if j.opts.Signer == nil || j.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.Checkpoint(ctx); err != nil {
		j.log.Warn("journal: no checkpoint at close: the last telemetry stays unsigned until the next start", "err", err)
	}
}

// RotateKey journals a key rotation (docs/evidence.md): a key_rotation
// event on every device's chain, signed by the current key and naming
// next, and next in the key table; what is appended after it is signed by
// next. With keyLost the current key is gone: the events are signed by
// next itself (Options.Signer may then be nil).
func (j *Journal) RotateKey(ctx context.Context, next *evidence.Signer, keyLost bool) error {
	if next == nil {
		return errors.New("journal: RotateKey: next key is nil")
	}
	return j.submit(ctx, &request{kind: reqRotateKey, signing: &signingRequest{next: next, keyLost: keyLost}})
}

// SigningKeys returns every key that signed in this journal, oldest first;
// the last one is the current key.
func (j *Journal) SigningKeys(ctx context.Context) ([]evidence.PublicKey, error) {
	return readSigningKeys(ctx, j.rdb)
}
