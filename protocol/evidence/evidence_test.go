package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

func seeded(t testing.TB, seed byte) *Signer {
	t.Helper()
	s, err := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chainBuilder makes a device's chain the way the journal does: each
// payload marshalled with seq and prev_hash, cycle records and events
// signed.
type chainBuilder struct {
	t      testing.TB
	device string
	signer *Signer
	seq    uint64
	prev   string
	out    []Entry
	raw    [][]byte // the payloads, by seq-1
}

func (b *chainBuilder) add(v any, kind string) Entry {
	b.t.Helper()
	b.seq++
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	var payload []byte
	var err error
	switch kind {
	case KindTelemetry:
		tel := protocol.Telemetry{Schema: protocol.TelemetrySchema, ID: fmt.Sprintf("dax:%s:t%d", b.device, b.seq), Gateway: "gw", Site: "dax", Device: b.device,
			Samples: []protocol.Sample{{At: at, TempC: 134, PressureKPa: 304, Phase: protocol.PhaseSterilizing}}, Seq: b.seq, PrevHash: b.prev}
		payload, err = json.Marshal(tel)
	case KindEvent:
		ev := v.(protocol.Event)
		ev.Schema, ev.ID, ev.Gateway, ev.Site, ev.Device, ev.At, ev.Seq, ev.PrevHash = protocol.EventSchema, fmt.Sprintf("dax:%s:e%d", b.device, b.seq), "gw", "dax", b.device, at, b.seq, b.prev
		payload, err = json.Marshal(ev)
	case KindCycle:
		rec := protocol.CycleRecord{Schema: protocol.CycleSchema, ID: fmt.Sprintf("dax:%s:%d", b.device, b.seq), Gateway: "gw", Site: "dax", Device: b.device,
			Cycle: b.seq, Program: "134-porous", StartedAt: at, EndedAt: at, Result: protocol.ResultPassed, Seq: b.seq, PrevHash: b.prev}
		payload, err = json.Marshal(rec)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	var sig *Signature
	if kind != KindTelemetry && b.signer != nil {
		s := b.signer.Sign(EntryHash(payload))
		sig = &s
	}
	e, err := ParseEntry(payload, sig, fmt.Sprintf("%s#%d", b.device, b.seq))
	if err != nil {
		b.t.Fatal(err)
	}
	b.prev = e.Hash
	b.out = append(b.out, e)
	b.raw = append(b.raw, payload)
	return e
}

func (b *chainBuilder) tele()  { b.add(nil, KindTelemetry) }
func (b *chainBuilder) cycle() { b.add(nil, KindCycle) }
func (b *chainBuilder) event(ev protocol.Event) {
	b.add(ev, KindEvent)
}

func verifyAll(t testing.TB, opts Options, entries []Entry, keys ...*Signer) Report {
	t.Helper()
	v := NewVerifier(opts)
	for _, k := range keys {
		v.Trust(k.Public(), "test")
	}
	v.AddAll(entries)
	return v.Report()
}

func text(r Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func TestPublishedAndUnwrapAreInverse(t *testing.T) {
	s := seeded(t, 1)
	payload := []byte(`{"schema":"sterigate.event.v1","id":"dax:a:e1","seq":1}`)
	sig := s.Sign(EntryHash(payload))
	for _, tc := range []struct {
		sig    *Signature
		replay bool
		prefix string
	}{
		{nil, false, `{"schema"`},
		{nil, true, `{"replay":true,"schema"`},
		{&sig, false, `{"sig":{"key":"` + s.ID() + `","ed25519":"` + base64.StdEncoding.EncodeToString(sig.Ed25519) + `"},"schema"`},
		{&sig, true, `{"replay":true,"sig":{"key":"` + s.ID() + `","ed25519":"`},
	} {
		msg := Published(payload, tc.sig, tc.replay)
		if !bytes.HasPrefix(msg, []byte(tc.prefix)) {
			t.Errorf("Published(sig %v, replay %v) = %s", tc.sig != nil, tc.replay, msg)
		}
		var v map[string]any
		if err := json.Unmarshal(msg, &v); err != nil {
			t.Errorf("not JSON: %s", msg)
		}
		u, err := Unwrap(msg)
		if err != nil || !bytes.Equal(u.Payload, payload) || u.Replay != tc.replay || (u.Sig != nil) != (tc.sig != nil) {
			t.Errorf("Unwrap(%s) = %+v, %v", msg, u, err)
		}
		if tc.sig != nil && !Check(s.Public().Key, EntryHash(u.Payload), *u.Sig) {
			t.Errorf("the signature does not check after Unwrap")
		}
	}
	// The signature first, then the replay marker: accepted too.
	swapped := []byte(`{"sig":{"key":"` + s.ID() + `","ed25519":"` + base64.StdEncoding.EncodeToString(sig.Ed25519) + `"},"replay":true,` + string(payload[1:]))
	if u, err := Unwrap(swapped); err != nil || !bytes.Equal(u.Payload, payload) || !u.Replay || u.Sig == nil {
		t.Errorf("Unwrap(sig, replay) = %+v, %v", u, err)
	}
}

func TestUnwrapRefusesAMalformedSignature(t *testing.T) {
	for _, msg := range []string{
		`{"sig":{"key":"ABC","ed25519":"AA=="},"schema":"x"}`,
		`{"sig":{"key":"0123456789abcdef","ed25519":"AA=="},"schema":"x"}`,
		`{"sig":{"key":"0123456789abcdef","ed25519":"` + strings.Repeat("A", 86) + `=="}}`,
		`{"sig":{"ed25519":"x","key":"0123456789abcdef"},"schema":"x"}`,
		`{"sig":"nope","schema":"x"}`,
		`{"sig":{"key":"0123456789abcdef`,
	} {
		if _, err := Unwrap([]byte(msg)); err == nil {
			t.Errorf("Unwrap accepted %s", msg)
		}
	}
}

func TestSignedMessageIsDomainSeparated(t *testing.T) {
	got := string(SignedMessage("0123456789abcdef", strings.Repeat("ab", 32)))
	want := "sterigate.sig.v1 0123456789abcdef " + strings.Repeat("ab", 32)
	if got != want || len(got) != 98 {
		t.Fatalf("SignedMessage = %q (%d bytes)", got, len(got))
	}
}

// A signer never shows its private key, whatever prints it.
func TestSignerNeverShowsThePrivateKey(t *testing.T) {
	s := seeded(t, 3)
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	forms := []string{string(seed), fmt.Sprintf("%x", seed), base64.StdEncoding.EncodeToString(seed), base64.StdEncoding.EncodeToString(s.priv)}
	j, _ := json.Marshal(struct{ S *Signer }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x", s, s, s, s, s), fmt.Sprintf("%v %+v %#v", *s, *s, *s), string(j)} {
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Fatalf("the private key shows in %q", out)
			}
		}
		if !strings.Contains(out, s.ID()) {
			t.Errorf("%q does not name the key id", out)
		}
	}
}

func TestCleanChainVerifies(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1", signer: s}
	b.event(protocol.Event{Kind: protocol.EventOnline})
	b.tele()
	b.tele()
	b.cycle()
	b.tele()
	r := verifyAll(t, Options{}, b.out, s)
	if !r.OK || r.Devices[0].Signed != 2 || r.Devices[0].Uncovered == nil || r.Devices[0].UncoveredEntries != 1 {
		t.Fatalf("%s", text(r))
	}
	b.event(protocol.Event{Kind: protocol.EventCheckpoint, CoversSeq: 5, CoversHash: b.prev})
	r = verifyAll(t, Options{}, b.out, s)
	if !r.OK || r.Devices[0].Uncovered != nil {
		t.Fatalf("after a checkpoint: %s", text(r))
	}
}

// A checkpoint must name its own predecessor as the head it covers.
func TestCheckpointNamingAnotherHeadFails(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1", signer: s}
	b.tele()
	b.event(protocol.Event{Kind: protocol.EventCheckpoint, CoversSeq: 7, CoversHash: "00"})
	if r := verifyAll(t, Options{}, b.out, s); r.OK {
		t.Fatalf("%s", text(r))
	}
}

// Thinned telemetry is a hole that a gap event explains; the same hole
// without its gap event fails.
func TestGapEventExplainsAHole(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1", signer: s}
	b.cycle()
	b.tele()
	b.tele()
	b.tele()
	b.event(protocol.Event{Kind: protocol.EventGap, FromSeq: 2, ToSeq: 3})
	thinned := append(append([]Entry{}, b.out[0]), b.out[3:]...)
	if r := verifyAll(t, Options{}, thinned, s); !r.OK || len(r.Devices[0].Gaps) != 1 {
		t.Fatalf("thinned: %s", text(r))
	}
	withoutGap := append(append([]Entry{}, b.out[0]), b.out[3])
	if r := verifyAll(t, Options{}, withoutGap, s); r.OK || r.Devices[0].FirstBad.Code != CodeMissing {
		t.Fatalf("without the gap event: %s", text(r))
	}
}

// Entries written before signing began are covered by the first
// signature after them; a chain with no signature at all is not.
func TestEntriesFromBeforeSigning(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1"}
	b.cycle()
	b.tele()
	b.event(protocol.Event{Kind: protocol.EventOnline})
	if r := verifyAll(t, Options{}, b.out, s); r.OK || r.Devices[0].FirstBad.Code != CodeNotSigned {
		t.Fatalf("no signature at all: %s", text(r))
	}
	b.signer = s
	b.event(protocol.Event{Kind: protocol.EventCheckpoint, CoversSeq: 3, CoversHash: b.prev})
	r := verifyAll(t, Options{}, b.out, s)
	if !r.OK || !strings.Contains(strings.Join(r.Devices[0].Notes, " "), "before signing began") {
		t.Fatalf("covered by a later signature: %s", text(r))
	}
	// After the first signature, an unsigned record is a problem.
	b.signer = nil
	b.cycle()
	b.signer = s
	b.event(protocol.Event{Kind: protocol.EventCheckpoint, CoversSeq: 5, CoversHash: b.prev})
	if r := verifyAll(t, Options{}, b.out, s); r.OK || r.Devices[0].FirstBad.Seq != 5 || r.Devices[0].FirstBad.Code != CodeNotSigned {
		t.Fatalf("unsigned record after signing began: %s", text(r))
	}
}

// A key named by a key_rotation event that a trusted key signed is
// trusted, in whatever order the messages come; a rotation signed by an
// untrusted key endorses nothing.
func TestRotationEndorsesTheNextKey(t *testing.T) {
	oldKey, newKey := seeded(t, 1), seeded(t, 2)
	rotation := func(b *chainBuilder, by *Signer) {
		b.signer = by
		b.event(protocol.Event{Kind: protocol.EventKeyRotation, NextKey: newKey.ID(), NextPublicKey: base64.StdEncoding.EncodeToString(newKey.Public().Key)})
		b.signer = newKey
	}
	b := &chainBuilder{t: t, device: "ac-1", signer: oldKey}
	b.cycle()
	rotation(b, oldKey)
	b.cycle()
	other := &chainBuilder{t: t, device: "ac-2", signer: newKey}
	other.cycle() // a chain that began after the rotation
	all := append(append([]Entry{}, other.out...), b.out...)
	if r := verifyAll(t, Options{}, all, oldKey); !r.OK || len(r.Keys) != 2 {
		t.Fatalf("old key alone: %s", text(r))
	}
	forged := &chainBuilder{t: t, device: "ac-1", signer: oldKey}
	forged.cycle()
	rotation(forged, newKey) // "signed" by the key it names
	forged.cycle()
	if r := verifyAll(t, Options{}, forged.out, oldKey); r.OK {
		t.Fatalf("a self-endorsed rotation was trusted: %s", text(r))
	}
}

func TestConflictingDuplicateKeepsTheSignedCopy(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1", signer: s}
	b.cycle()
	b.cycle()
	b.tele()
	forged, err := ParseEntry(bytes.Replace(b.raw[1], []byte(`"passed"`), []byte(`"failed"`), 1), b.out[1].Sig, "forged")
	if err != nil {
		t.Fatal(err)
	}
	identical := b.out[0]
	identical.Where = "again"
	r := verifyAll(t, Options{}, append([]Entry{forged, identical}, b.out...), s)
	d := r.Devices[0]
	if r.OK || d.ProblemCount != 1 || d.FirstBad.Code != CodeConflictingDuplicate || d.Redeliveries != 1 || d.Signed != 2 {
		t.Fatalf("%s", text(r))
	}
}

func TestParsePublicKeys(t *testing.T) {
	s := seeded(t, 1)
	msg, _ := json.Marshal(s.Public().Message("gw", "dax"))
	for name, data := range map[string][]byte{"key message": msg, "PEM": s.Public().PEM()} {
		keys, err := ParsePublicKeys(data)
		if err != nil || len(keys) != 1 || keys[0].ID != s.ID() {
			t.Errorf("%s: %v, %v", name, keys, err)
		}
	}
	if _, err := ParsePublicKeys(s.MarshalPrivatePEM()); err == nil || strings.Contains(err.Error(), "PRIVATE KEY-----") {
		t.Errorf("a private key was accepted as a public key: %v", err)
	}
	lying := bytes.Replace(msg, []byte(s.ID()), []byte("0000000000000000"), 1)
	if _, err := ParsePublicKeys(lying); err == nil {
		t.Errorf("a key message naming another key id was accepted")
	}
}

func TestPrivatePEMRoundTrip(t *testing.T) {
	s := seeded(t, 5)
	priv, err := ParsePrivatePEM(s.MarshalPrivatePEM())
	if err != nil || !bytes.Equal(priv, s.priv) {
		t.Fatalf("%v", err)
	}
}

// A journal that replaced a damaged one starts each device with a
// journal_break naming its last good entry: the seqs in between are
// explained, and the break must chain to that entry.
func TestJournalBreakExplainsTheSeqsItSkips(t *testing.T) {
	s := seeded(t, 1)
	b := &chainBuilder{t: t, device: "ac-1", signer: s}
	b.cycle()
	b.tele()
	lastGood := b.out[1]
	b.tele() // seq 3-5: journaled in the damaged journal, lost with it
	b.tele()
	b.cycle()
	// The new journal goes on after the damaged one's last seq.
	b.seq, b.prev = 9, lastGood.Hash
	b.event(protocol.Event{Kind: protocol.EventJournalBreak, LastSeq: lastGood.Seq, LastHash: lastGood.Hash, Journal: "3fa94c2b7e"})
	b.cycle()
	received := append(append([]Entry{}, b.out[:2]...), b.out[5:]...)
	if r := verifyAll(t, Options{}, received, s); !r.OK {
		t.Fatalf("across the break: %s", text(r))
	}
	// A break that does not chain to the entry it names is altered.
	b2 := &chainBuilder{t: t, device: "ac-1", signer: s}
	b2.cycle()
	b2.tele()
	b2.seq, b2.prev = 9, strings.Repeat("0", 64)
	b2.event(protocol.Event{Kind: protocol.EventJournalBreak, LastSeq: 2, LastHash: b2.out[1].Hash})
	if r := verifyAll(t, Options{}, b2.out, s); r.OK || r.Devices[0].FirstBad.Code != CodeAltered {
		t.Fatalf("a break chained elsewhere: %s", text(r))
	}
}
