package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sterigate/sterigate/gateway/archive/pgtest"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"
)

const testRoot = "sterigate"

// deviceChain writes one device's journal entries the way a gateway
// does: seq, prev_hash, signatures on cycle records and events.
type deviceChain struct {
	t                     testing.TB
	site, gateway, device string
	signer                *evidence.Signer
	seq                   uint64
	prev                  string
	hashes                map[uint64]string
}

func newChain(t testing.TB, site, gateway, device string, seed byte) *deviceChain {
	return &deviceChain{t: t, site: site, gateway: gateway, device: device, signer: evidencetest.Signer(t, seed), hashes: map[uint64]string{}}
}

func (c *deviceChain) topic(kind string) string {
	return fmt.Sprintf("%s/%s/%s/%s", testRoot, c.site, c.device, kind)
}

// next journals one entry of kind (cycle, event, telemetry) with extra
// members and returns the message as published.
func (c *deviceChain) next(kind string, extra map[string]any) Message {
	c.seq++
	return c.at(c.seq, c.prev, kind, extra)
}

// at writes the entry with seq and prev_hash given (for altered chains).
func (c *deviceChain) at(seq uint64, prev, kind string, extra map[string]any) Message {
	m := map[string]any{"gateway": c.gateway, "site": c.site, "device": c.device, "seq": seq, "prev_hash": prev}
	switch kind {
	case "cycle":
		m["schema"], m["id"] = protocol.CycleSchema, fmt.Sprintf("%s:%s:%d", c.site, c.device, seq)
		m["cycle"], m["program"], m["result"], m["complete"] = seq, "134-porous", "passed", true
		m["started_at"] = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Hour)
		m["ended_at"] = time.Date(2026, 11, 2, 8, 50, 0, 0, time.UTC).Add(time.Duration(seq) * time.Hour)
		m["verification"] = map[string]any{"verdict": "pass", "agrees_with_device": true}
	case "event":
		m["schema"], m["id"], m["kind"], m["at"] = protocol.EventSchema, fmt.Sprintf("%s:%s:j1.e%d", c.site, c.device, seq), "phase", time.Now().UTC()
	default:
		m["schema"], m["id"], m["samples"] = protocol.TelemetrySchema, fmt.Sprintf("%s:%s:j1.t%d", c.site, c.device, seq), []any{}
	}
	for k, v := range extra {
		m[k] = v
	}
	payload, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	h := hex.EncodeToString(sum[:])
	c.hashes[seq] = h
	if seq == c.seq {
		c.prev = h
	}
	var sig *evidence.Signature
	if kind != "telemetry" {
		s := c.signer.Sign(h)
		sig = &s
	}
	return Message{Topic: c.topic(kind), Payload: evidence.Published(payload, sig, false)}
}

func (c *deviceChain) keyMessage() Message {
	b, _ := json.Marshal(c.signer.Public().Message(c.gateway, c.site))
	return Message{Topic: protocol.Topics{Root: testRoot, Site: c.site}.GatewayKey(c.gateway), Payload: b}
}

// shared is the package's one PostgreSQL cluster: each test gets a
// database of its own on it (starting a cluster takes seconds).
var shared struct {
	once    sync.Once
	cluster *pgtest.Cluster
	err     error
	mu      sync.Mutex
	n       int
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	os.Exit(code)
}

// openStore opens a store on a new, empty database of the shared cluster.
func openStore(t testing.TB, opts StoreOptions) (*Store, *pgtest.Cluster) {
	t.Helper()
	shared.once.Do(func() { shared.cluster, shared.err = pgtest.New() })
	if errors.Is(shared.err, pgtest.ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	pg := shared.cluster
	shared.mu.Lock()
	shared.n++
	name := fmt.Sprintf("test_%d", shared.n)
	shared.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, pg.Log())
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	admin.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, pg.DatabaseURL(name), opts)
	if err != nil {
		t.Fatalf("open: %v\n%s", err, pg.Log())
	}
	t.Cleanup(s.Close)
	return s, pg
}
