package mqttpub

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"
)

// Every cycle record and event goes out with its signature after the
// opening brace (after the replay marker on a replay), telemetry without
// one, and the retained key message says which key to check them with: a
// receiver verifies everything it got with the evidence package alone.
func TestSignaturesTravelWithTheMessages(t *testing.T) {
	signer := evidencetest.Signer(t, 7)
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), journal.Options{Gateway: "gw-1", Site: "dax", Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	fill(t, j, []string{"ac-1", "ac-2"}, 1, 2, 2)
	if err := j.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := startMochi(t, "127.0.0.1:0")
	c := &collector{}
	if err := b.Subscribe("sterigate/#", c.add); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(b.URL())
	keyMsg := fmt.Appendf(nil, `{"schema":"sterigate.key.v1","key":"%s"}`, signer.ID())
	opts.KeyMessage = keyMsg
	p, err := New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 10*time.Second, "the backlog to drain", func() bool { return pendingCount(t, j) == 0 })
	if err := j.Cycle(context.Background(), cycleRecord("ac-1", 100)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the live record", func() bool { return c.ids()["dax:ac-1:100"] == 1 })

	if got, ok := c.last("sterigate/dax/gateway/gw-1/key"); !ok || !bytes.Equal(got, keyMsg) {
		t.Fatalf("key topic: %q", got)
	}
	v := evidence.NewVerifier(evidence.Options{})
	v.Trust(signer.Public(), "test")
	var entries []evidence.Entry
	for i, m := range c.all() {
		if m.retained || strings.Contains(m.topic, "/status") || strings.HasSuffix(m.topic, "/key") {
			continue
		}
		u, err := evidence.Unwrap(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		telemetry := strings.HasSuffix(m.topic, "/telemetry")
		if (u.Sig != nil) == telemetry {
			t.Errorf("%s: signed %v: %.90s", m.topic, u.Sig != nil, m.payload)
		}
		if u.Sig != nil && u.Replay && !bytes.HasPrefix(m.payload, []byte(`{"replay":true,"sig":{"key":"`+signer.ID()+`","ed25519":"`)) {
			t.Errorf("replayed signed message does not start with the marker, then the signature: %.90s", m.payload)
		}
		e, err := evidence.ParseEntry(u.Payload, u.Sig, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	v.AddAll(entries)
	if rep := v.Report(); !rep.OK || len(rep.Devices) != 2 {
		var s strings.Builder
		rep.WriteText(&s)
		t.Fatalf("what the receiver got does not verify:\n%s", s.String())
	}
	if dups := checkDelivery(t, j, c.all()); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
}
