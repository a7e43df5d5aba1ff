package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

// Message is one MQTT message as it arrived.
type Message struct {
	Topic   string
	Payload []byte
}

// AlarmSchema names version 1 of the archive alarm payload.
const AlarmSchema = "sterigate.archive_alarm.v1"

// Alarm is one problem the archive found, published on
// <root>/<site>/archive/<archive id>/alarm (docs/mqtt.md#archive-alarms).
type Alarm struct {
	Schema  string    `json:"schema"`
	Archive string    `json:"archive"`
	At      time.Time `json:"at"`
	Site    string    `json:"site"`
	Gateway string    `json:"gateway,omitempty"`
	Device  string    `json:"device,omitempty"`
	// Code is a protocol/evidence problem code (missing, altered,
	// bad_signature, unknown_key, not_signed, undecodable) or "conflict"
	// (an id or seq already stored with other content).
	Code    string `json:"code"`
	FromSeq uint64 `json:"from_seq,omitempty"`
	ToSeq   uint64 `json:"to_seq,omitempty"`
	ID      string `json:"id,omitempty"`
	Topic   string `json:"topic,omitempty"`
	Text    string `json:"text"`

	// A conflict's message and hashes, for the conflicts table.
	conflictMessage              []byte
	conflictHash, conflictStored string
}

// CodeConflict is the alarm code of a message whose id or seq is already
// stored with other content.
const CodeConflict = "conflict"

// BatchResult is what one StoreBatch did.
type BatchResult struct {
	// Stored counts the entries new to the archive; Duplicates those
	// already stored with the same content (QoS 1 redeliveries,
	// republished entries, another instance's work).
	Stored, Duplicates int
	// Gateways are the (site, gateway) pairs whose devices had entries in
	// the batch: their receipts are due.
	Gateways []GatewayRef
	Alarms   []Alarm
}

// GatewayRef names a gateway.
type GatewayRef struct{ Site, Gateway string }

// keyRing caches the gateways' public keys (gateway_keys).
type keyRing struct {
	mu   sync.Mutex
	keys map[GatewayRef]map[string]evidence.PublicKey
}

func newKeyRing() *keyRing { return &keyRing{keys: map[GatewayRef]map[string]evidence.PublicKey{}} }

func (r *keyRing) get(g GatewayRef, id string) (evidence.PublicKey, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[g][id]
	return k, ok
}

func (r *keyRing) put(g GatewayRef, k evidence.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys[g] == nil {
		r.keys[g] = map[string]evidence.PublicKey{}
	}
	r.keys[g][k.ID] = k
}

// entry is one parsed message on its way into the database.
type entry struct {
	msg     Message
	e       evidence.Entry
	payload []byte // the journaled payload (Unwrap)
	site    string
	gateway string
	linkTo  uint64
	sigText string // good, bad, unknown_key, none
	// cycle record columns
	cycle         uint64
	program       string
	startedAt     *time.Time
	endedAt       *time.Time
	result        string
	verdict       *string
	agrees        *bool
	complete      bool
	at            *time.Time // event time
	gapFrom       uint64     // gap event range
	gapTo         uint64
	breakLastSeq  uint64
	isBreak       bool
	undecodedText string
}

// header is what the archive reads of a payload beyond evidence.Header:
// the indexed columns.
type header struct {
	Gateway      string     `json:"gateway"`
	Site         string     `json:"site"`
	Cycle        uint64     `json:"cycle"`
	Program      string     `json:"program"`
	StartedAt    *time.Time `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	Result       string     `json:"result"`
	Complete     bool       `json:"complete"`
	At           *time.Time `json:"at"`
	Kind         string     `json:"kind"`
	FromSeq      uint64     `json:"from_seq"`
	ToSeq        uint64     `json:"to_seq"`
	LastSeq      uint64     `json:"last_seq"`
	Verification *struct {
		Verdict          string `json:"verdict"`
		AgreesWithDevice *bool  `json:"agrees_with_device"`
	} `json:"verification"`
}

// parse takes a message apart. It returns an alarm instead of an entry
// for a message that is not a journal entry of the topic's site.
func parse(m Message, root string) (*entry, *Alarm) {
	site, device, topicKind := topicParts(root, m.Topic)
	fail := func(format string, args ...any) (*entry, *Alarm) {
		return nil, &Alarm{Site: site, Device: device, Topic: m.Topic, Code: evidence.CodeUndecodable, Text: fmt.Sprintf(format, args...)}
	}
	u, err := evidence.Unwrap(m.Payload)
	if err != nil {
		return fail("%v", err)
	}
	e, err := evidence.ParseEntry(u.Payload, u.Sig, m.Topic)
	if err != nil {
		return fail("%v", err)
	}
	var h header
	if err := json.Unmarshal(u.Payload, &h); err != nil {
		return fail("not a JSON object: %v", err)
	}
	if e.Kind() != topicKind {
		return fail("a %s on the %s topic", e.Kind(), topicKind)
	}
	if h.Site != site || e.Device != device {
		return fail("a message of site %q device %q on the topic of site %q device %q", h.Site, e.Device, site, device)
	}
	if h.Gateway == "" {
		return fail("%s %s has no gateway", e.Kind(), e.ID)
	}
	en := &entry{msg: m, e: e, payload: u.Payload, site: site, gateway: h.Gateway, linkTo: e.Seq - 1, sigText: sigNone}
	switch e.Kind() {
	case evidence.KindCycle:
		en.cycle, en.program, en.result, en.complete = h.Cycle, h.Program, h.Result, h.Complete
		en.startedAt, en.endedAt = nonZero(h.StartedAt), nonZero(h.EndedAt)
		if v := h.Verification; v != nil {
			en.verdict = &v.Verdict
			en.agrees = v.AgreesWithDevice
		}
	case evidence.KindEvent:
		en.at = nonZero(h.At)
		switch protocol.EventKind(h.Kind) {
		case protocol.EventGap:
			en.gapFrom, en.gapTo = h.FromSeq, h.ToSeq
		case protocol.EventJournalBreak:
			en.isBreak, en.breakLastSeq = true, h.LastSeq
			en.linkTo = h.LastSeq
		}
	}
	return en, nil
}

func nonZero(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return t
}

// topicParts splits <root>/<site>/<device>/<kind>.
func topicParts(root, topic string) (site, device, kind string) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != root {
		return "", "", ""
	}
	return parts[1], parts[2], parts[3]
}

// deviceKey names a device.
type deviceKey struct{ site, device string }

// StoreBatch stores msgs (cycle records, events, telemetry of any sites) in
// one transaction and checks each against what is stored: its seq's
// neighbours, the hash links to them, its signature. root is the topic
// root. When it returns nil the transaction committed: the messages may be
// acknowledged and receipts published.
func (s *Store) StoreBatch(ctx context.Context, root, archiveID string, msgs []Message) (BatchResult, error) {
	var res BatchResult
	var entries []*entry
	for _, m := range msgs {
		en, alarm := parse(m, root)
		if alarm != nil {
			res.Alarms = append(res.Alarms, *alarm)
			continue
		}
		entries = append(entries, en)
	}
	// Devices in one order in every transaction: two instances locking
	// the same devices never wait for each other in a circle.
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.site != b.site {
			return a.site < b.site
		}
		if a.e.Device != b.e.Device {
			return a.e.Device < b.e.Device
		}
		return a.e.Seq < b.e.Seq
	})
	now := time.Now().UTC()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := s.storeEntries(ctx, tx, entries, now)
		if err != nil {
			return err
		}
		r.Alarms = append(res.Alarms, r.Alarms...)
		for _, a := range r.Alarms {
			if a.Code == evidence.CodeUndecodable {
				if err := recordProblem(ctx, tx, a, "open", now); err != nil {
					return err
				}
			}
		}
		res = r
		return nil
	})
	if err != nil {
		return BatchResult{}, err
	}
	for i := range res.Alarms {
		res.Alarms[i].Schema, res.Alarms[i].Archive, res.Alarms[i].At = AlarmSchema, archiveID, now
	}
	return res, nil
}

func recordProblem(ctx context.Context, tx pgx.Tx, a Alarm, state string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO chain_problems (site, device, gateway, from_seq, to_seq, code, state, detail, detected_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		a.Site, a.Device, a.Gateway, int64(a.FromSeq), int64(a.ToSeq), a.Code, state, a.Text, now)
	return err
}

func (s *Store) storeEntries(ctx context.Context, tx pgx.Tx, entries []*entry, now time.Time) (BatchResult, error) {
	var res BatchResult
	if len(entries) == 0 {
		return res, nil
	}
	// 1. Lock the devices' rows (and create them), in order.
	devices := map[deviceKey]string{} // → gateway
	var order []deviceKey
	gateways := map[GatewayRef]bool{}
	for _, en := range entries {
		k := deviceKey{en.site, en.e.Device}
		if _, ok := devices[k]; !ok {
			order = append(order, k)
		}
		devices[k] = en.gateway
		g := GatewayRef{en.site, en.gateway}
		if !gateways[g] {
			gateways[g] = true
			res.Gateways = append(res.Gateways, g)
		}
	}
	storedThrough := map[deviceKey]uint64{}
	{
		b := &pgx.Batch{}
		for _, g := range res.Gateways {
			b.Queue(`INSERT INTO gateways (site, gateway, first_seen, last_seen) VALUES ($1, $2, $3, $3)
				ON CONFLICT (site, gateway) DO UPDATE SET last_seen = EXCLUDED.last_seen`, g.Site, g.Gateway, now)
		}
		for _, k := range order {
			b.Queue(`INSERT INTO devices (site, device, gateway, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4)
				ON CONFLICT (site, device) DO UPDATE SET last_seen = EXCLUDED.last_seen, gateway = EXCLUDED.gateway
				RETURNING stored_through`, k.site, k.device, devices[k], now).QueryRow(func(row pgx.Row) error {
				var st int64
				if err := row.Scan(&st); err != nil {
					return err
				}
				storedThrough[k] = uint64(st)
				return nil
			})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return res, fmt.Errorf("lock devices: %w", err)
		}
	}

	// 2. Signatures.
	for _, en := range entries {
		if err := s.checkSignature(ctx, tx, en); err != nil {
			return res, err
		}
	}

	// 3. The chain rows; those already there are duplicates or conflicts.
	var cols chainColumns
	for _, en := range entries {
		cols.add(en, now)
	}
	inserted := map[deviceSeq]bool{}
	rows, err := tx.Query(ctx, `INSERT INTO chain (site, device, seq, kind, id, hash, prev_hash, link_to, signature, key_id, received_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::timestamptz[])
		ON CONFLICT (site, device, seq) DO NOTHING
		RETURNING site, device, seq`,
		cols.site, cols.device, cols.seq, cols.kind, cols.id, cols.hash, cols.prevHash, cols.linkTo, cols.sig, cols.keyID, cols.at)
	if err != nil {
		return res, fmt.Errorf("insert chain: %w", err)
	}
	for rows.Next() {
		var k deviceSeq
		var seq int64
		if err := rows.Scan(&k.site, &k.device, &seq); err != nil {
			rows.Close()
			return res, err
		}
		k.seq = uint64(seq)
		inserted[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("insert chain: %w", err)
	}

	var fresh, others []*entry
	seen := map[deviceSeq]bool{}
	for _, en := range entries {
		k := deviceSeq{en.site, en.e.Device, en.e.Seq}
		if inserted[k] && !seen[k] {
			seen[k] = true
			fresh = append(fresh, en)
		} else {
			others = append(others, en)
		}
	}
	// Duplicates or conflicts: compare with what is stored.
	if len(others) > 0 {
		b := &pgx.Batch{}
		for _, en := range others {
			b.Queue(`SELECT hash FROM chain WHERE site = $1 AND device = $2 AND seq = $3`, en.site, en.e.Device, int64(en.e.Seq)).QueryRow(func(row pgx.Row) error {
				var stored string
				if err := row.Scan(&stored); err != nil {
					return err
				}
				if stored == en.e.Hash {
					res.Duplicates++
					return nil
				}
				res.Alarms = append(res.Alarms, conflictAlarm(en, stored, "seq"))
				return nil
			})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return res, fmt.Errorf("compare duplicates: %w", err)
		}
	}
	res.Stored = len(fresh)

	// 4. The payloads.
	idConflicts, err := s.insertPayloads(ctx, tx, fresh, now)
	if err != nil {
		return res, err
	}
	res.Alarms = append(res.Alarms, idConflicts...)
	for _, a := range res.Alarms {
		if a.Code == CodeConflict {
			if err := insertConflict(ctx, tx, a, now); err != nil {
				return res, err
			}
		}
	}

	// 5. Hash links with the neighbours, both ways.
	if len(fresh) > 0 {
		var fc chainColumns
		for _, en := range fresh {
			fc.add(en, now)
		}
		linkAlarms, err := checkLinks(ctx, tx, fc)
		if err != nil {
			return res, err
		}
		for i := range linkAlarms {
			linkAlarms[i].Gateway = devices[deviceKey{linkAlarms[i].Site, linkAlarms[i].Device}]
		}
		res.Alarms = append(res.Alarms, linkAlarms...)
	}
	for _, en := range fresh {
		if a := signatureAlarm(en); a != nil {
			res.Alarms = append(res.Alarms, *a)
		}
	}
	// Record the chain problems; an alarm goes out only for a problem not
	// recorded before (QoS 1 redelivers).
	kept := res.Alarms[:0]
	for _, a := range res.Alarms {
		if a.Code == CodeConflict || a.Code == evidence.CodeUndecodable {
			kept = append(kept, a)
			continue
		}
		tag, err := tx.Exec(ctx, `INSERT INTO chain_problems (site, device, gateway, from_seq, to_seq, code, state, detail, detected_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) ON CONFLICT DO NOTHING`,
			a.Site, a.Device, a.Gateway, int64(a.FromSeq), int64(a.ToSeq), a.Code, a.Text, now)
		if err != nil {
			return res, fmt.Errorf("record chain problem: %w", err)
		}
		if tag.RowsAffected() > 0 {
			kept = append(kept, a)
		}
	}
	res.Alarms = kept

	// 6. What gap and journal_break events explain.
	for _, en := range fresh {
		from, to, kind := en.explains()
		if from == 0 || to < from {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO explained_ranges (site, device, from_seq, to_seq, kind, by_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			en.site, en.e.Device, int64(from), int64(to), kind, en.e.ID); err != nil {
			return res, fmt.Errorf("record explained range: %w", err)
		}
		// A hole already alarmed is explained now; one not seen yet is
		// recorded as explained.
		tag, err := tx.Exec(ctx, `UPDATE chain_problems SET state = 'explained', explained_by = $5, closed_at = $6
			WHERE site = $1 AND device = $2 AND code = 'missing' AND state IN ('open', 'filled') AND from_seq >= $3 AND to_seq <= $4`,
			en.site, en.e.Device, int64(from), int64(to), en.e.ID, now)
		if err != nil {
			return res, err
		}
		if tag.RowsAffected() == 0 {
			if err := recordProblem(ctx, tx, Alarm{Site: en.site, Device: en.e.Device, Gateway: en.gateway, FromSeq: from, ToSeq: to, Code: evidence.CodeMissing,
				Text: fmt.Sprintf("%s %s says seq %d–%d will never come", kind, en.e.ID, from, to)}, "explained", now); err != nil {
				return res, err
			}
			if _, err := tx.Exec(ctx, `UPDATE chain_problems SET explained_by = $5, closed_at = $6 WHERE site = $1 AND device = $2 AND code = 'missing' AND from_seq = $3 AND to_seq = $4 AND state = 'explained'`,
				en.site, en.e.Device, int64(from), int64(to), en.e.ID, now); err != nil {
				return res, err
			}
		}
	}

	// 7. Each device's contiguous high-water mark.
	marks, err := advance(ctx, tx, order, storedThrough)
	if err != nil {
		return res, err
	}
	b := &pgx.Batch{}
	for _, k := range order {
		st := marks[k]
		if st == storedThrough[k] {
			continue
		}
		b.Queue(`UPDATE devices SET stored_through = $3 WHERE site = $1 AND device = $2`, k.site, k.device, int64(st))
		// Holes the mark passed were filled by late entries.
		b.Queue(`UPDATE chain_problems SET state = 'filled', closed_at = $4
			WHERE site = $1 AND device = $2 AND code = 'missing' AND state = 'open' AND to_seq <= $3`, k.site, k.device, int64(st), now)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return res, fmt.Errorf("update high-water marks: %w", err)
		}
	}
	return res, nil
}

// explains returns the range of seqs a gap or journal_break event says
// will never come.
func (en *entry) explains() (from, to uint64, kind string) {
	switch {
	case en.gapFrom > 0:
		return en.gapFrom, en.gapTo, string(protocol.EventGap)
	case en.isBreak && en.e.Seq > en.breakLastSeq+1:
		return en.breakLastSeq + 1, en.e.Seq - 1, string(protocol.EventJournalBreak)
	}
	return 0, 0, ""
}

type deviceSeq struct {
	site, device string
	seq          uint64
}

// chainColumns are chain rows as column arrays, for unnest.
type chainColumns struct {
	site, device, kind, id, hash, prevHash, sig []string
	keyID                                       []*string
	seq, linkTo                                 []int64
	at                                          []time.Time
}

func (c *chainColumns) add(en *entry, now time.Time) {
	c.site = append(c.site, en.site)
	c.device = append(c.device, en.e.Device)
	c.seq = append(c.seq, int64(en.e.Seq))
	c.kind = append(c.kind, en.e.Kind())
	c.id = append(c.id, en.e.ID)
	c.hash = append(c.hash, en.e.Hash)
	c.prevHash = append(c.prevHash, en.e.PrevHash)
	c.linkTo = append(c.linkTo, int64(en.linkTo))
	c.sig = append(c.sig, en.sigText)
	var key *string
	if en.e.Sig != nil {
		key = &en.e.Sig.Key
	}
	c.keyID = append(c.keyID, key)
	c.at = append(c.at, now)
}

// checkLinks compares the fresh entries' hash links with their stored
// neighbours: the entry each one chains to, and the entries that chain to
// it.
func checkLinks(ctx context.Context, tx pgx.Tx, c chainColumns) ([]Alarm, error) {
	var alarms []Alarm
	// LATERAL ... OFFSET 0: one primary-key probe per entry. Flattened
	// into a join, the planner (whose statistics lag behind a table that
	// grows by thousands of rows a second) chose a hash join over the whole
	// chain table.
	rows, err := tx.Query(ctx, `
		SELECT n.site, n.device, n.seq, p.seq, n.id, 'prev'
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS n(site, device, seq, link_to, hash, prev_hash, id)
		CROSS JOIN LATERAL (SELECT seq, hash FROM chain WHERE site = n.site AND device = n.device AND seq = n.link_to OFFSET 0) p
		WHERE p.hash <> n.prev_hash
		UNION ALL
		SELECT n.site, n.device, q.seq, n.seq, q.id, 'next'
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[]) AS n(site, device, seq, link_to, hash, prev_hash, id)
		CROSS JOIN LATERAL (SELECT seq, id, prev_hash FROM chain WHERE site = n.site AND device = n.device AND seq = n.seq + 1 AND link_to = n.seq
		                    UNION ALL
		                    SELECT seq, id, prev_hash FROM chain WHERE site = n.site AND device = n.device AND link_to = n.seq AND link_to <> seq - 1
		                    OFFSET 0) q
		WHERE q.prev_hash <> n.hash`,
		c.site, c.device, c.seq, c.linkTo, c.hash, c.prevHash, c.id)
	if err != nil {
		return nil, fmt.Errorf("check hash links: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site, device, id, side string
		var seq, linked int64
		if err := rows.Scan(&site, &device, &seq, &linked, &id, &side); err != nil {
			return nil, err
		}
		// Problem on the later entry of the pair (the one whose prev_hash
		// does not match), naming the earlier one.
		alarms = append(alarms, Alarm{Site: site, Device: device, FromSeq: uint64(seq), ToSeq: uint64(seq), ID: id, Code: evidence.CodeAltered,
			Text: fmt.Sprintf("prev_hash of seq %d does not match the hash of seq %d as stored: one of them was altered", seq, linked)})
	}
	return alarms, rows.Err()
}

// insertPayloads stores the fresh entries' payloads by id; an id already
// stored with another hash is a conflict.
func (s *Store) insertPayloads(ctx context.Context, tx pgx.Tx, fresh []*entry, now time.Time) ([]Alarm, error) {
	var cyc, ev, tel []*entry
	for _, en := range fresh {
		switch en.e.Kind() {
		case evidence.KindCycle:
			cyc = append(cyc, en)
		case evidence.KindEvent:
			ev = append(ev, en)
		default:
			tel = append(tel, en)
		}
	}
	var alarms []Alarm
	idCheck := func(table string, list []*entry, rows pgx.Rows, err error) error {
		if err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
		stored := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			stored[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
		for _, en := range list {
			if stored[en.e.ID] {
				continue
			}
			var hash string
			if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT hash FROM %s WHERE id = $1`, table), en.e.ID).Scan(&hash); err != nil {
				return fmt.Errorf("compare %s %s: %w", table, en.e.ID, err)
			}
			if hash != en.e.Hash {
				alarms = append(alarms, conflictAlarm(en, hash, "id"))
			}
		}
		return nil
	}
	if len(cyc) > 0 {
		var id, site, gw, dev, program, result, hash, payload []string
		var keyID, verdict []*string
		var agrees []*bool
		var seq, cycle []int64
		var started, ended []*time.Time
		var complete []bool
		var sig, raw [][]byte
		for _, en := range cyc {
			id, site, gw, dev = append(id, en.e.ID), append(site, en.site), append(gw, en.gateway), append(dev, en.e.Device)
			seq, cycle = append(seq, int64(en.e.Seq)), append(cycle, int64(en.cycle))
			program, started, ended, result = append(program, en.program), append(started, en.startedAt), append(ended, en.endedAt), append(result, en.result)
			verdict, agrees, complete, hash = append(verdict, en.verdict), append(agrees, en.agrees), append(complete, en.complete), append(hash, en.e.Hash)
			k, sg := sigColumns(en)
			keyID, sig = append(keyID, k), append(sig, sg)
			raw, payload = append(raw, en.payload), append(payload, string(en.payload))
		}
		rows, err := tx.Query(ctx, `INSERT INTO cycle_records (id, site, gateway, device, seq, cycle, program, started_at, ended_at, device_result, verdict, agrees, complete, hash, key_id, signature, payload, record, received_at)
			SELECT id, site, gw, dev, seq, cycle, program, started, ended, result, verdict, agrees, complete, hash, key_id, sig, raw, rec::jsonb, $19
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], $12::boolean[], $13::boolean[], $14::text[], $15::text[], $16::bytea[], $17::bytea[], $18::text[])
			  AS t(id, site, gw, dev, seq, cycle, program, started, ended, result, verdict, agrees, complete, hash, key_id, sig, raw, rec)
			ON CONFLICT (id) DO NOTHING RETURNING id`,
			id, site, gw, dev, seq, cycle, program, started, ended, result, verdict, agrees, complete, hash, keyID, sig, raw, payload, now)
		if err := idCheck("cycle_records", cyc, rows, err); err != nil {
			return nil, err
		}
	}
	if len(ev) > 0 {
		var id, site, gw, dev, kind, hash, payload []string
		var keyID []*string
		var seq []int64
		var at []*time.Time
		var sig, raw [][]byte
		for _, en := range ev {
			id, site, gw, dev = append(id, en.e.ID), append(site, en.site), append(gw, en.gateway), append(dev, en.e.Device)
			seq, kind, at, hash = append(seq, int64(en.e.Seq)), append(kind, en.e.EventKind), append(at, en.at), append(hash, en.e.Hash)
			k, sg := sigColumns(en)
			keyID, sig = append(keyID, k), append(sig, sg)
			raw, payload = append(raw, en.payload), append(payload, string(en.payload))
		}
		rows, err := tx.Query(ctx, `INSERT INTO events (id, site, gateway, device, seq, kind, at, hash, key_id, signature, payload, event, received_at)
			SELECT id, site, gw, dev, seq, kind, at, hash, key_id, sig, raw, ev::jsonb, $12
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::bytea[], $11::bytea[], $13::text[])
			  AS t(id, site, gw, dev, seq, kind, at, hash, key_id, sig, raw, ev)
			ON CONFLICT (id) DO NOTHING RETURNING id`,
			id, site, gw, dev, seq, kind, at, hash, keyID, sig, raw, now, payload)
		if err := idCheck("events", ev, rows, err); err != nil {
			return nil, err
		}
	}
	if len(tel) > 0 && s.keepTelemetry {
		if err := s.ensurePartition(ctx, tx, now); err != nil {
			return nil, err
		}
		var id, site, gw, dev, hash, payload []string
		var seq []int64
		for _, en := range tel {
			id, site, gw, dev = append(id, en.e.ID), append(site, en.site), append(gw, en.gateway), append(dev, en.e.Device)
			seq, hash, payload = append(seq, int64(en.e.Seq)), append(hash, en.e.Hash), append(payload, string(en.payload))
		}
		// The chain row already says whether this seq is new; the
		// telemetry table is keyed by id and month only.
		if _, err := tx.Exec(ctx, `INSERT INTO telemetry (id, site, gateway, device, seq, hash, batch, received_at)
			SELECT id, site, gw, dev, seq, hash, b::jsonb, $8
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[]) AS t(id, site, gw, dev, seq, hash, b)
			ON CONFLICT DO NOTHING`, id, site, gw, dev, seq, hash, payload, now); err != nil {
			return nil, fmt.Errorf("insert telemetry: %w", err)
		}
	}
	return alarms, nil
}

func sigColumns(en *entry) (*string, []byte) {
	if en.e.Sig == nil {
		return nil, nil
	}
	return &en.e.Sig.Key, en.e.Sig.Ed25519
}

func conflictAlarm(en *entry, storedHash, by string) Alarm {
	return Alarm{Site: en.site, Gateway: en.gateway, Device: en.e.Device, FromSeq: en.e.Seq, ToSeq: en.e.Seq, ID: en.e.ID, Topic: en.msg.Topic, Code: CodeConflict,
		Text: fmt.Sprintf("a %s with the %s of one already stored and other content (hash %.12s…, stored %.12s…): kept aside in the conflicts table, the stored one stays",
			en.e.Kind(), by, en.e.Hash, storedHash),
		conflictMessage: en.msg.Payload, conflictHash: en.e.Hash, conflictStored: storedHash}
}

func insertConflict(ctx context.Context, tx pgx.Tx, a Alarm, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO conflicts (site, device, seq, id, topic, stored_hash, hash, message, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.Site, a.Device, int64(a.FromSeq), a.ID, a.Topic, a.conflictStored, a.conflictHash, a.conflictMessage, now)
	if err != nil {
		return fmt.Errorf("record conflict: %w", err)
	}
	return nil
}

// advance walks each device's stored seqs and explained ranges from its
// high-water mark and returns the new marks. The queries of all devices go
// in one round trip; a device whose mark moved a whole page is walked on.
func advance(ctx context.Context, tx pgx.Tx, devices []deviceKey, from map[deviceKey]uint64) (map[deviceKey]uint64, error) {
	const page = 10000
	marks := make(map[deviceKey]uint64, len(devices))
	ranges := map[deviceKey][][2]uint64{}
	todo := devices
	first := true
	for len(todo) > 0 {
		b := &pgx.Batch{}
		seqs := map[deviceKey][]uint64{}
		for _, k := range todo {
			st, ok := marks[k]
			if !ok {
				st = from[k]
				marks[k] = st
			}
			if first {
				b.Queue(`SELECT from_seq, to_seq FROM explained_ranges WHERE site = $1 AND device = $2 AND to_seq > $3 ORDER BY from_seq`,
					k.site, k.device, int64(st)).Query(func(rows pgx.Rows) error {
					for rows.Next() {
						var a, z int64
						if err := rows.Scan(&a, &z); err != nil {
							return err
						}
						ranges[k] = append(ranges[k], [2]uint64{uint64(a), uint64(z)})
					}
					return rows.Err()
				})
			}
			b.Queue(`SELECT seq FROM chain WHERE site = $1 AND device = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
				k.site, k.device, int64(st), page).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var seq int64
					if err := rows.Scan(&seq); err != nil {
						return err
					}
					seqs[k] = append(seqs[k], uint64(seq))
				}
				return rows.Err()
			})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("read chains: %w", err)
		}
		first = false
		var again []deviceKey
		for _, k := range todo {
			st := marks[k]
			stuck := false
			for _, seq := range seqs[k] {
				st = skipExplained(st, ranges[k])
				if seq == st+1 {
					st++
				} else if seq > st+1 {
					stuck = true
					break
				}
			}
			marks[k] = skipExplained(st, ranges[k])
			if !stuck && len(seqs[k]) == page {
				again = append(again, k)
			}
		}
		todo = again
	}
	return marks, nil
}

// skipExplained moves st past the explained ranges that start right after
// it.
func skipExplained(st uint64, ranges [][2]uint64) uint64 {
	for moved := true; moved; {
		moved = false
		for _, r := range ranges {
			if r[0] <= st+1 && r[1] > st {
				st, moved = r[1], true
			}
		}
	}
	return st
}
