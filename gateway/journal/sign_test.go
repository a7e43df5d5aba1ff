package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"
)

// testSigner is a fixed signing key: the same seed gives the same key id
// and the same signatures in every run.
func testSigner(t testing.TB, seed byte) *evidence.Signer { return evidencetest.Signer(t, seed) }

// verifyEvidence runs the evidence verifier over entries, trusting keys.
func verifyEvidence(t testing.TB, entries []Entry, keys ...evidence.PublicKey) evidence.Report {
	t.Helper()
	v := evidence.NewVerifier(evidence.Options{})
	for _, k := range keys {
		v.Trust(k, "test")
	}
	for _, e := range entries {
		pe, err := evidence.ParseEntry(e.Payload, e.Signature, fmt.Sprintf("entry %d", e.ID))
		if err != nil {
			t.Fatalf("entry %d: %v", e.ID, err)
		}
		v.Add(pe)
	}
	return v.Report()
}

func reportText(r evidence.Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func eventsOfKind(t testing.TB, entries []Entry, device string, kind protocol.EventKind) []protocol.Event {
	t.Helper()
	var out []protocol.Event
	for _, e := range entries {
		if e.Kind != KindEvent || (device != "" && e.Device != device) {
			continue
		}
		var ev protocol.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// Cycle records and events are signed as they are journaled, telemetry is
// not, and the checkpoint written at Close covers the telemetry after the
// last signed entry: the whole journal verifies with the key alone.
func TestSignedEntriesAndCheckpointAtClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	signer := testSigner(t, 1)
	j := openTest(t, path, Options{Signer: signer})
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	if err := j.Cycle(ctx, testRecord("ac-1", 7)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := j.Telemetry(ctx, testTelemetry("ac-1", 2)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if signed := e.Signature != nil; signed != (e.Kind != KindTelemetry) {
			t.Errorf("seq %d (%s): signed %v", e.Seq, e.Kind, signed)
		}
	}
	rep := verifyEvidence(t, entries, signer.Public())
	if !rep.OK || rep.Devices[0].Uncovered == nil || rep.Devices[0].Uncovered.From != 3 {
		t.Fatalf("before the checkpoint: want ok with seq 3-5 uncovered:\n%s", reportText(rep))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	entries = nil
	if err := r.Scan(ctx, Filter{}, func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	cps := eventsOfKind(t, entries, "ac-1", protocol.EventCheckpoint)
	if len(cps) != 1 || cps[0].CoversSeq != 5 || cps[0].Count != 3 || cps[0].Seq != 6 {
		t.Fatalf("checkpoints at close: %+v", cps)
	}
	rep = verifyEvidence(t, entries, signer.Public())
	if !rep.OK || rep.Devices[0].Uncovered != nil || rep.Devices[0].Signed != 3 {
		t.Fatalf("after the checkpoint:\n%s", reportText(rep))
	}
	keys, err := r.SigningKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != signer.ID() {
		t.Fatalf("signing keys: %v, %v", keys, err)
	}
}

// While telemetry keeps coming, a checkpoint covers it at least once per
// CheckpointEvery; a chain that ends in a signed entry gets none.
func TestCheckpointsWhileTelemetryFlows(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, filepath.Join(t.TempDir(), "journal.db"), Options{Signer: testSigner(t, 1), CheckpointEvery: 300 * time.Millisecond})
	if err := j.Event(ctx, protocol.Event{Device: "quiet", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := j.Telemetry(ctx, testTelemetry("busy", 1)); err != nil {
			t.Fatal(err)
		}
		entries, err := j.Entries(ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(eventsOfKind(t, entries, "busy", protocol.EventCheckpoint)) >= 2 {
			if n := len(eventsOfKind(t, entries, "quiet", protocol.EventCheckpoint)); n != 0 {
				t.Errorf("a chain ending in a signed entry got %d checkpoints", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two checkpoints within 20 s with CheckpointEvery 300ms")
		}
		time.Sleep(20 * time.Millisecond) // the telemetry's own pace
	}
}

// A gateway that was killed leaves chains ending in unsigned telemetry;
// the next start covers them at once.
func TestCheckpointAfterAnUnsignedEnd(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	signer := testSigner(t, 1)
	j := openTest(t, path, Options{Signer: signer, CheckpointEvery: time.Hour})
	if err := j.Event(ctx, protocol.Event{Device: "ac-1", Kind: protocol.EventOnline}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// Telemetry written by a journal without a signer stands for the
	// telemetry a killed gateway left unsigned.
	j = openTest(t, path, Options{})
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = openTest(t, path, Options{Signer: signer, CheckpointEvery: time.Hour})
	if err := j.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cps := eventsOfKind(t, entries, "ac-1", protocol.EventCheckpoint)
	if len(cps) != 1 || cps[0].CoversSeq != 2 || !strings.Contains(cps[0].Text, "seq 2 to 2") {
		t.Fatalf("checkpoints: %+v", cps)
	}
	if rep := verifyEvidence(t, entries, signer.Public()); !rep.OK || rep.Devices[0].Uncovered != nil {
		t.Fatalf("%s", reportText(rep))
	}
}

// A journal refuses a key that is not its current signing key; after a
// rotation the old key is refused and the new one accepted, and the
// entries of both verify from the old key alone, through the rotation
// events it signed.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	oldKey, newKey, stranger := testSigner(t, 1), testSigner(t, 2), testSigner(t, 3)
	j := openTest(t, path, Options{Signer: oldKey})
	for _, d := range []string{"ac-1", "ac-2"} {
		if err := j.Cycle(ctx, testRecord(d, 1)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	if _, err := Open(path, Options{Gateway: "gw", Site: "dax", Signer: stranger}); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("opened with a stranger's key: %v", err)
	}
	j = openTest(t, path, Options{Signer: oldKey})
	if err := j.RotateKey(ctx, newKey, false); err != nil {
		t.Fatal(err)
	}
	if err := j.Telemetry(ctx, testTelemetry("ac-1", 1)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := Open(path, Options{Gateway: "gw", Site: "dax", Signer: oldKey}); !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "was replaced by key "+newKey.ID()) {
		t.Fatalf("opened with the retired key: %v", err)
	}
	j = openTest(t, path, Options{Signer: newKey})
	if err := j.Cycle(ctx, testRecord("ac-2", 2)); err != nil {
		t.Fatal(err)
	}
	entries, err := j.Entries(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rots := eventsOfKind(t, entries, "", protocol.EventKeyRotation)
	if len(rots) != 2 || rots[0].NextKey != newKey.ID() {
		t.Fatalf("rotation events: %+v", rots)
	}
	var lastRotation int64
	for _, e := range entries {
		if bytes.Contains(e.Payload, []byte(`"kind":"key_rotation"`)) {
			lastRotation = max(lastRotation, e.ID)
		}
	}
	for _, e := range entries {
		want := oldKey.ID()
		if e.ID > lastRotation {
			want = newKey.ID()
		}
		if e.Signature != nil && e.Signature.Key != want {
			t.Errorf("%s seq %d signed by %s, want %s", e.Device, e.Seq, e.Signature.Key, want)
		}
	}
	rep := verifyEvidence(t, entries, oldKey.Public())
	if !rep.OK || len(rep.Keys) != 2 {
		t.Fatalf("old key alone:\n%s", reportText(rep))
	}
	if rep := verifyEvidence(t, entries, newKey.Public()); rep.OK {
		t.Fatalf("the new key alone verified entries the old key signed:\n%s", reportText(rep))
	}
	keys, err := j.SigningKeys(ctx)
	if err != nil || len(keys) != 2 || keys[1].ID != newKey.ID() || keys[1].Previous != oldKey.ID() {
		t.Fatalf("signing keys: %+v, %v", keys, err)
	}
}

// A Reader changes nothing in the journal's directory, even right after
// the gateway closed the journal, and filters by device, kind and time.
func TestReaderLeavesTheDirectoryAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	var hours atomic.Int64
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	j := openTest(t, path, Options{Signer: testSigner(t, 1), Now: func() time.Time { return start.Add(time.Duration(hours.Load()) * time.Hour) }})
	for i := range 5 {
		hours.Add(1)
		if err := j.Cycle(ctx, testRecord(fmt.Sprintf("ac-%d", i%2), uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	list := func() string {
		names, _ := os.ReadDir(dir)
		var s []string
		for _, n := range names {
			s = append(s, n.Name())
		}
		return strings.Join(s, " ")
	}
	before := list()
	r, err := OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = r.Scan(ctx, Filter{Device: "ac-0", Kind: KindCycle, From: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)},
		func(e Entry) error { got = append(got, e.RecordID); return nil })
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "dax:ac-0:2" {
		t.Errorf("filtered scan: %v", got)
	}
	if after := list(); after != before {
		t.Errorf("the reader changed the directory: %q -> %q", before, after)
	}
}
