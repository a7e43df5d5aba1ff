package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sterigate/sterigate/protocol/evidence"
)

// Signature states of a chain row.
const (
	sigGood       = "good"
	sigBad        = "bad"
	sigUnknownKey = "unknown_key"
	sigNone       = "none"
)

// checkSignature judges en's signature with the keys its gateway
// published (or a key_rotation endorsed), and trusts the key a good
// key_rotation event names.
func (s *Store) checkSignature(ctx context.Context, tx pgx.Tx, en *entry) error {
	if en.e.Sig == nil {
		en.sigText = sigNone
		return nil
	}
	g := GatewayRef{en.site, en.gateway}
	k, ok := s.keys.get(g, en.e.Sig.Key)
	if !ok {
		// Another instance may have learnt it (a rotation it stored).
		var pub []byte
		err := tx.QueryRow(ctx, `SELECT public_key FROM gateway_keys WHERE site = $1 AND gateway = $2 AND key_id = $3`, g.Site, g.Gateway, en.e.Sig.Key).Scan(&pub)
		if errors.Is(err, pgx.ErrNoRows) {
			en.sigText = sigUnknownKey
			return nil
		}
		if err != nil {
			return fmt.Errorf("read key %s: %w", en.e.Sig.Key, err)
		}
		k = evidence.PublicKey{ID: en.e.Sig.Key, Key: pub}
		s.keys.put(g, k)
	}
	if !evidence.Check(k.Key, en.e.Hash, *en.e.Sig) {
		en.sigText = sigBad
		return nil
	}
	en.sigText = sigGood
	next, isRotation, err := evidence.RotatedKey(en.e)
	if !isRotation || err != nil {
		return nil // a bad rotation's next key is simply not trusted
	}
	return s.trustKey(ctx, tx, g, next, "key_rotation "+en.e.ID)
}

func (s *Store) trustKey(ctx context.Context, tx pgx.Tx, g GatewayRef, k evidence.PublicKey, origin string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO gateway_keys (site, gateway, key_id, public_key, origin) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		g.Site, g.Gateway, k.ID, []byte(k.Key), origin); err != nil {
		return fmt.Errorf("store key %s: %w", k.ID, err)
	}
	s.keys.put(g, k)
	return nil
}

// signatureAlarm is the problem with en's signature, nil when it has none.
func signatureAlarm(en *entry) *Alarm {
	a := &Alarm{Site: en.site, Gateway: en.gateway, Device: en.e.Device, FromSeq: en.e.Seq, ToSeq: en.e.Seq, ID: en.e.ID}
	switch {
	case en.sigText == sigBad:
		a.Code, a.Text = evidence.CodeBadSignature, fmt.Sprintf("the signature by key %s does not match the payload: it was changed after it was signed", en.e.Sig.Key)
	case en.sigText == sigUnknownKey:
		a.Code, a.Text = evidence.CodeUnknownKey, fmt.Sprintf("signed by key %s, which gateway %s has not published (yet): checked again when it does", en.e.Sig.Key, en.gateway)
	case en.sigText == sigNone && en.e.Kind() != evidence.KindTelemetry:
		a.Code, a.Text = evidence.CodeNotSigned, fmt.Sprintf("this %s carries no signature, though the gateway signs every cycle record and event", en.e.Kind())
	default:
		return nil
	}
	return a
}

// StoreKey stores a key message from <root>/<site>/gateway/<id>/key and
// checks again the entries that were waiting for it. It returns the alarms
// of signatures that turn out bad.
func (s *Store) StoreKey(ctx context.Context, root, archiveID string, m Message) ([]Alarm, error) {
	parts := strings.Split(m.Topic, "/")
	if len(parts) != 5 || parts[0] != root || parts[2] != "gateway" || parts[4] != "key" {
		return nil, fmt.Errorf("%s is not a key topic", m.Topic)
	}
	g := GatewayRef{parts[1], parts[3]}
	now := time.Now().UTC()
	bad := func(format string, args ...any) ([]Alarm, error) {
		return []Alarm{{Schema: AlarmSchema, Archive: archiveID, At: now, Site: g.Site, Gateway: g.Gateway, Topic: m.Topic, Code: evidence.CodeUndecodable, Text: fmt.Sprintf(format, args...)}}, nil
	}
	if len(m.Payload) == 0 {
		return nil, nil // a cleared retained message
	}
	var km evidence.KeyMessage
	if err := json.Unmarshal(m.Payload, &km); err != nil {
		return bad("key message: %v", err)
	}
	k, err := km.PublicKeyOf()
	if err != nil {
		return bad("%v", err)
	}
	if (km.Gateway != "" && km.Gateway != g.Gateway) || (km.Site != "" && km.Site != g.Site) {
		return bad("key message of gateway %q site %q on the topic of gateway %q site %q", km.Gateway, km.Site, g.Gateway, g.Site)
	}
	var alarms []Alarm
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		alarms = nil
		if err := s.trustKey(ctx, tx, g, k, "key topic"); err != nil {
			return err
		}
		var err error
		alarms, err = s.recheck(ctx, tx, g, k, now)
		return err
	})
	for i := range alarms {
		alarms[i].Schema, alarms[i].Archive, alarms[i].At = AlarmSchema, archiveID, now
	}
	return alarms, err
}

// recheck judges again the signatures by key k that were stored before k
// was known.
func (s *Store) recheck(ctx context.Context, tx pgx.Tx, g GatewayRef, k evidence.PublicKey, now time.Time) ([]Alarm, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.device, c.seq, c.id, c.hash, r.signature FROM chain c
		JOIN (SELECT id, signature FROM cycle_records WHERE site = $1 AND gateway = $2 AND key_id = $3
		      UNION ALL SELECT id, signature FROM events WHERE site = $1 AND gateway = $2 AND key_id = $3) r ON r.id = c.id
		WHERE c.site = $1 AND c.signature = 'unknown_key' AND c.key_id = $3`, g.Site, g.Gateway, k.ID)
	if err != nil {
		return nil, fmt.Errorf("recheck signatures: %w", err)
	}
	type item struct {
		device, id, hash string
		seq              int64
		sig              []byte
	}
	var items []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.device, &it.seq, &it.id, &it.hash, &it.sig); err != nil {
			rows.Close()
			return nil, err
		}
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var alarms []Alarm
	for _, it := range items {
		state := sigGood
		if !evidence.Check(k.Key, it.hash, evidence.Signature{Key: k.ID, Ed25519: it.sig}) {
			state = sigBad
			a := Alarm{Site: g.Site, Gateway: g.Gateway, Device: it.device, FromSeq: uint64(it.seq), ToSeq: uint64(it.seq), ID: it.id, Code: evidence.CodeBadSignature,
				Text: fmt.Sprintf("the signature by key %s does not match the payload: it was changed after it was signed", k.ID)}
			if err := recordProblem(ctx, tx, a, "open", now); err != nil {
				return nil, err
			}
			alarms = append(alarms, a)
		}
		if _, err := tx.Exec(ctx, `UPDATE chain SET signature = $4 WHERE site = $1 AND device = $2 AND seq = $3`, g.Site, it.device, it.seq, state); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE chain_problems SET state = 'resolved', closed_at = $4 WHERE site = $1 AND device = $2 AND from_seq = $3 AND code = 'unknown_key' AND state = 'open'`,
			g.Site, it.device, it.seq, now); err != nil {
			return nil, err
		}
	}
	return alarms, nil
}

// LoadKeys fills the key cache from gateway_keys.
func (s *Store) LoadKeys(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT site, gateway, key_id, public_key FROM gateway_keys`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var g GatewayRef
		var id string
		var pub []byte
		if err := rows.Scan(&g.Site, &g.Gateway, &id, &pub); err != nil {
			return err
		}
		s.keys.put(g, evidence.PublicKey{ID: id, Key: pub})
	}
	return rows.Err()
}
