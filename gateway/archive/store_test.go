package archive

import (
	"context"
	"testing"
	"time"
)

func TestOpenMigratesTwice(t *testing.T) {
	s, pg := openStore(t, StoreOptions{})
	ctx := context.Background()
	// A second instance on the same database finds the schema current.
	var db string
	if err := s.Pool().QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, pg.DatabaseURL(db), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	var v int
	if err := s.Pool().QueryRow(ctx, `SELECT version FROM archive_schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	steps, _ := migrations()
	if v != len(steps) {
		t.Fatalf("schema version %d, want %d", v, len(steps))
	}
}

func storeAll(t *testing.T, s *Store, msgs ...Message) BatchResult {
	t.Helper()
	res, err := s.StoreBatch(context.Background(), testRoot, "a1", msgs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func storedThrough(t *testing.T, s *Store, site, device string) uint64 {
	t.Helper()
	var st int64
	if err := s.Pool().QueryRow(context.Background(), `SELECT stored_through FROM devices WHERE site = $1 AND device = $2`, site, device).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return uint64(st)
}

func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func codes(alarms []Alarm) map[string]int {
	m := map[string]int{}
	for _, a := range alarms {
		m[a.Code]++
	}
	return m
}

// Every entry is stored once whatever the order and the redeliveries, and
// the high-water mark waits for the hole to fill.
func TestStoreOnceInAnyOrder(t *testing.T) {
	s, _ := openStore(t, StoreOptions{Telemetry: true})
	c := newChain(t, "dax", "gw1", "ac1", 1)
	storeKey(t, s, c)
	var msgs []Message
	for i := range 12 {
		kind := []string{"telemetry", "telemetry", "event", "cycle"}[i%4]
		msgs = append(msgs, c.next(kind, nil))
	}
	// Seqs 5-12 first, twice; 1-4 later.
	res := storeAll(t, s, append(msgs[4:], msgs[4:]...)...)
	if res.Stored != 8 || res.Duplicates != 8 {
		t.Fatalf("stored %d, duplicates %d; want 8 and 8", res.Stored, res.Duplicates)
	}
	if len(res.Alarms) != 0 {
		t.Fatalf("alarms: %+v", res.Alarms)
	}
	if st := storedThrough(t, s, "dax", "ac1"); st != 0 {
		t.Fatalf("stored_through %d before seqs 1-4 came, want 0", st)
	}
	res = storeAll(t, s, msgs[:4]...)
	if len(res.Alarms) != 0 || res.Stored != 4 {
		t.Fatalf("stored %d, alarms %+v", res.Stored, res.Alarms)
	}
	if st := storedThrough(t, s, "dax", "ac1"); st != 12 {
		t.Fatalf("stored_through %d, want 12", st)
	}
	if n := count(t, s, `SELECT count(*) FROM cycle_records`); n != 3 {
		t.Fatalf("%d cycle records, want 3", n)
	}
	if n := count(t, s, `SELECT count(*) FROM telemetry`); n != 6 {
		t.Fatalf("%d telemetry rows, want 6", n)
	}
	if n := count(t, s, `SELECT count(*) FROM chain WHERE signature = 'good'`); n != 6 {
		t.Fatalf("%d good signatures, want 6 (cycle records and events)", n)
	}
	if g := res.Gateways; len(g) != 1 || g[0] != (GatewayRef{"dax", "gw1"}) {
		t.Fatalf("gateways %+v", g)
	}
}

func storeKey(t *testing.T, s *Store, c *deviceChain) []Alarm {
	t.Helper()
	alarms, err := s.StoreKey(context.Background(), testRoot, "a1", c.keyMessage())
	if err != nil {
		t.Fatal(err)
	}
	return alarms
}

// A gap event explains the seqs it names; a journal_break the seqs between
// the last good entry and itself; neither is alarmed and the high-water
// mark passes them.
func TestStoreExplainedGaps(t *testing.T) {
	s, _ := openStore(t, StoreOptions{})
	c := newChain(t, "dax", "gw1", "ac1", 1)
	storeKey(t, s, c)
	var msgs []Message
	msgs = append(msgs, c.next("cycle", nil), c.next("telemetry", nil)) // 1, 2
	c.seq += 2                                                          // 3, 4 thinned
	msgs = append(msgs, c.next("event", map[string]any{"kind": "gap", "from_seq": 3, "to_seq": 4}))
	lastGood, lastHash := c.seq, c.prev
	c.seq += 3 // 6-8 lost with a damaged journal
	msgs = append(msgs, c.next("event", map[string]any{"kind": "journal_break", "last_seq": lastGood, "last_hash": lastHash}))
	msgs = append(msgs, c.next("cycle", nil))
	res := storeAll(t, s, msgs...)
	if len(res.Alarms) != 0 {
		t.Fatalf("alarms: %+v", res.Alarms)
	}
	if st := storedThrough(t, s, "dax", "ac1"); st != c.seq {
		t.Fatalf("stored_through %d, want %d", st, c.seq)
	}
	if n := count(t, s, `SELECT count(*) FROM gaps WHERE state = 'explained'`); n != 2 {
		t.Fatalf("%d explained gaps, want 2", n)
	}
}

// A second message with a stored id or seq and other content is kept aside
// and alarmed; the first stays.
func TestStoreConflict(t *testing.T) {
	s, _ := openStore(t, StoreOptions{})
	c := newChain(t, "dax", "gw1", "ac1", 1)
	storeKey(t, s, c)
	first := c.next("cycle", nil)
	storeAll(t, s, first)
	other := c.at(1, "", "cycle", map[string]any{"program": "121-instruments"})
	res := storeAll(t, s, other)
	if got := codes(res.Alarms); got[CodeConflict] != 1 || len(res.Alarms) != 1 {
		t.Fatalf("alarms %+v, want one conflict", res.Alarms)
	}
	if n := count(t, s, `SELECT count(*) FROM conflicts WHERE seq = 1`); n != 1 {
		t.Fatalf("%d conflicts, want 1", n)
	}
	if n := count(t, s, `SELECT count(*) FROM cycle_records WHERE program = '134-porous'`); n != 1 {
		t.Fatalf("the first record was not kept")
	}
}

// An altered link, a bad signature, an unsigned record and a signature by
// a key not published yet are each recorded and alarmed once; the key's
// arrival clears the last.
func TestStoreChainProblems(t *testing.T) {
	s, _ := openStore(t, StoreOptions{})
	c := newChain(t, "dax", "gw1", "ac1", 1)
	m1 := c.next("cycle", nil)
	// No key yet: unknown_key.
	res := storeAll(t, s, m1)
	if got := codes(res.Alarms); got["unknown_key"] != 1 {
		t.Fatalf("alarms %+v, want unknown_key", res.Alarms)
	}
	if alarms := storeKey(t, s, c); len(alarms) != 0 {
		t.Fatalf("key arrival alarms: %+v", alarms)
	}
	if n := count(t, s, `SELECT count(*) FROM chain_problems WHERE code = 'unknown_key' AND state = 'resolved'`); n != 1 {
		t.Fatalf("unknown_key not resolved by the key's arrival")
	}
	// seq 2 chains to something else than seq 1.
	m2 := c.at(2, "00ff", "event", nil)
	c.seq, c.prev = 2, c.hashes[2]
	// seq 3 is a cycle record whose signature is for other bytes.
	m3 := c.next("cycle", nil)
	m3.Payload = []byte(string(m3.Payload[:len(m3.Payload)-1]) + `,"x":1}`)
	res = storeAll(t, s, m2, m3, m2)
	got := codes(res.Alarms)
	if got["altered"] != 1 || got["bad_signature"] != 1 || res.Alarms[0].Gateway != "gw1" {
		t.Fatalf("alarms %+v, want altered (2→1) and bad_signature", res.Alarms)
	}
	// Redelivered: nothing new is alarmed.
	if res := storeAll(t, s, m2, m3); len(res.Alarms) != 0 {
		t.Fatalf("redelivery alarmed again: %+v", res.Alarms)
	}
}

// A hole is a gap only once it stayed open past the delay; recorded once,
// alarmed once, and filled when the entries come late.
func TestSweepGaps(t *testing.T) {
	s, _ := openStore(t, StoreOptions{})
	c := newChain(t, "dax", "gw1", "ac1", 1)
	storeKey(t, s, c)
	m1, m2, m3 := c.next("cycle", nil), c.next("telemetry", nil), c.next("event", nil)
	storeAll(t, s, m1, m3)
	ctx := context.Background()
	alarms, err := s.SweepGaps(ctx, "a1", time.Hour)
	if err != nil || len(alarms) != 0 {
		t.Fatalf("a hole younger than the delay was alarmed: %+v %v", alarms, err)
	}
	for range 2 {
		alarms, err = s.SweepGaps(ctx, "a1", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(alarms) > 0 {
			break
		}
	}
	if len(alarms) != 1 || alarms[0].FromSeq != 2 || alarms[0].ToSeq != 2 || alarms[0].Code != "missing" || alarms[0].Gateway != "gw1" {
		t.Fatalf("alarms %+v, want missing seq 2", alarms)
	}
	if again, _ := s.SweepGaps(ctx, "a1", 0); len(again) != 0 {
		t.Fatalf("alarmed twice: %+v", again)
	}
	storeAll(t, s, m2)
	if n := count(t, s, `SELECT count(*) FROM gaps WHERE state = 'filled'`); n != 1 {
		t.Fatalf("the late entry did not fill the gap")
	}
	if st := storedThrough(t, s, "dax", "ac1"); st != 3 {
		t.Fatalf("stored_through %d, want 3", st)
	}
}
