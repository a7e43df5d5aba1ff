package evidence

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// Entry kinds, from the payload's schema.
const (
	KindCycle     = "cycle"
	KindEvent     = "event"
	KindTelemetry = "telemetry"
)

// Header is what verification reads of a payload.
type Header struct {
	Schema   string `json:"schema"`
	ID       string `json:"id"`
	Device   string `json:"device"`
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
	// Events only.
	EventKind     string `json:"kind"`
	FromSeq       uint64 `json:"from_seq"`
	ToSeq         uint64 `json:"to_seq"`
	CoversSeq     uint64 `json:"covers_seq"`
	CoversHash    string `json:"covers_hash"`
	NextKey       string `json:"next_key"`
	NextPublicKey string `json:"next_public_key"`
	// LastSeq and LastHash: a journal_break's last good entry.
	LastSeq  uint64 `json:"last_seq"`
	LastHash string `json:"last_hash"`
}

// Kind is the entry kind the schema names, "" for another schema.
func (h Header) Kind() string {
	switch h.Schema {
	case protocol.CycleSchema:
		return KindCycle
	case protocol.EventSchema:
		return KindEvent
	case protocol.TelemetrySchema:
		return KindTelemetry
	}
	return ""
}

// Entry is one journal entry or message as verification sees it.
type Entry struct {
	Header
	// Where says where it came from, for reports ("journal entry 1633",
	// "line 56").
	Where string
	// Hash is EntryHash of the payload.
	Hash string
	// Sig is the entry's signature, nil when it has none.
	Sig *Signature
	// checkedWith is the public key a Prechecker found Sig good with.
	checkedWith ed25519.PublicKey
}

// ParseEntry reads the entry whose journaled payload is payload (a
// message's payload after Unwrap). It fails for a payload that is not a
// sterigate cycle record, event or telemetry batch.
func ParseEntry(payload []byte, sig *Signature, where string) (Entry, error) {
	e := Entry{Where: where, Sig: sig}
	if err := readHeader(payload, &e.Header); err != nil {
		return e, fmt.Errorf("not a journal entry's JSON: %v", err)
	}
	if e.Kind() == "" {
		return e, fmt.Errorf("schema %q is not a journal entry's (%s, %s, %s)", e.Schema, protocol.CycleSchema, protocol.EventSchema, protocol.TelemetrySchema)
	}
	if e.Device == "" {
		return e, fmt.Errorf("%s %s has no device", e.Kind(), e.ID)
	}
	if e.Seq == 0 {
		return e, fmt.Errorf("%s %s has no seq", e.Kind(), e.ID)
	}
	e.Hash = EntryHash(payload)
	return e, nil
}

// Problem codes.
const (
	// A seq is missing and no gap event explains it.
	CodeMissing = "missing"
	// An entry's hash is not what the next entry chains to, or a
	// journal's columns disagree with the payload.
	CodeAltered = "altered"
	// The signature does not match the entry: it was changed after it was
	// signed.
	CodeBadSignature = "bad_signature"
	// Signed by a key that is neither given nor endorsed by a rotation.
	CodeUnknownKey = "unknown_key"
	// A cycle record or event carries no signature (the gateway signs every
	// one), or no signature covers it.
	CodeNotSigned = "not_signed"
	// Two different entries with one device and seq.
	CodeConflictingDuplicate = "conflicting_duplicate"
	// A journal whose rows are not in seq order.
	CodeOutOfOrder = "out_of_order"
	// A message or row that cannot be read.
	CodeUndecodable = "undecodable"
)

// Problem is one thing that failed verification.
type Problem struct {
	Device string `json:"device,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	// ToSeq ends a range of seqs (missing ones).
	ToSeq uint64 `json:"to_seq,omitempty"`
	ID    string `json:"id,omitempty"`
	Where string `json:"where,omitempty"`
	Code  string `json:"code"`
	Text  string `json:"text"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Seq > 0 {
		fmt.Fprintf(&b, "seq %d", p.Seq)
		if p.ToSeq > p.Seq {
			fmt.Fprintf(&b, "–%d", p.ToSeq)
		}
	}
	var where []string
	if p.ID != "" {
		where = append(where, p.ID)
	}
	if p.Where != "" {
		where = append(where, p.Where)
	}
	if len(where) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(where, ", "))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Code + ": " + p.Text)
	return b.String()
}

// SeqRange is an inclusive range of seqs.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// DeviceReport is the outcome for one device's chain.
type DeviceReport struct {
	Device    string `json:"device"`
	OK        bool   `json:"ok"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Entries   int    `json:"entries"`
	Cycles    int    `json:"cycles"`
	Events    int    `json:"events"`
	Telemetry int    `json:"telemetry"`
	// Signed counts the entries whose signature checked.
	Signed int `json:"signed"`
	// Keys are the ids of the keys that signed them.
	Keys []string `json:"keys"`
	// Redeliveries counts identical copies of a message (QoS 1 delivers
	// at least once).
	Redeliveries int `json:"redeliveries,omitempty"`
	// Uncovered is the telemetry at the end of the chain that no signature
	// covers yet (the next checkpoint will).
	Uncovered        *SeqRange `json:"uncovered,omitempty"`
	UncoveredEntries int       `json:"uncovered_entries,omitempty"`
	// Gaps are the seq ranges gap events say were thinned.
	Gaps  []SeqRange `json:"gaps,omitempty"`
	Notes []string   `json:"notes,omitempty"`
	// FirstBad is the problem with the lowest seq.
	FirstBad *Problem `json:"first_bad,omitempty"`
	// Problems lists the first problems (up to 100) in seq order;
	// ProblemCount counts them all.
	Problems     []Problem `json:"problems,omitempty"`
	ProblemCount int       `json:"problem_count"`
}

// KeyUse is one key verification trusted, where it came from and how many
// entries it verified.
type KeyUse struct {
	Key    string `json:"key"`
	Origin string `json:"origin"`
	Signed int    `json:"signed"`
}

// Report is the outcome of a verification.
type Report struct {
	OK      bool           `json:"ok"`
	Keys    []KeyUse       `json:"keys"`
	Devices []DeviceReport `json:"devices"`
	// Problems are those not tied to one device (unreadable lines).
	Problems []Problem `json:"problems,omitempty"`
	// Skipped counts messages that are not journal entries (statuses,
	// the key message).
	Skipped int `json:"skipped,omitempty"`
}

// Options tune a verification.
type Options struct {
	// Partial says the input holds only some of each device's entries (an
	// export of cycle records, a subscription to the cycle topic only):
	// missing seqs are noted, not failures; every signature and every link
	// between neighbours present is still checked.
	Partial bool
}

const maxProblemsKept = 100

type trustedKey struct {
	key    PublicKey
	origin string
	signed int
}

// Verifier walks the chains of a journal or a capture. Give it the keys
// it may trust (Trust), then every entry of a device in seq order (Add),
// then read the Report.
type Verifier struct {
	opts    Options
	keys    map[string]*trustedKey
	keyList []string
	chains  map[string]*chain
	general []Problem
	skipped int
}

// NewVerifier returns a verifier that trusts no key yet.
func NewVerifier(opts Options) *Verifier {
	return &Verifier{opts: opts, keys: map[string]*trustedKey{}, chains: map[string]*chain{}}
}

// Trust makes k a key whose signatures count; origin says why it is
// trusted ("--key keys.json", "the journal's own key table").
func (v *Verifier) Trust(k PublicKey, origin string) {
	if _, ok := v.keys[k.ID]; ok {
		return
	}
	v.keys[k.ID] = &trustedKey{key: k, origin: origin}
	v.keyList = append(v.keyList, k.ID)
}

// Trusted reports whether the key id is trusted.
func (v *Verifier) Trusted(id string) bool { _, ok := v.keys[id]; return ok }

// Fail records a problem found outside the walk: on the chain of
// p.Device, or, without a device, for the input as a whole.
func (v *Verifier) Fail(p Problem) {
	if p.Device == "" {
		v.general = append(v.general, p)
		return
	}
	v.chain(p.Device).fail(p)
}

// Skip counts messages that are not journal entries.
func (v *Verifier) Skip(n int) { v.skipped += n }

// ExpectHead tells the verifier the seq a device's chain reached (a
// journal's device_heads): entries missing at the end are then found too.
func (v *Verifier) ExpectHead(device string, seq uint64) {
	v.chain(device).expectHead = seq
}

// Redelivered counts an identical copy of an entry already added.
func (v *Verifier) Redelivered(device string) { v.chain(device).redeliveries++ }

// ConflictingDuplicate records a second, different entry with the seq of
// one already added.
func (v *Verifier) ConflictingDuplicate(first, second Entry) {
	c := v.chain(first.Device)
	c.fail(Problem{Seq: second.Seq, ID: second.ID, Where: second.Where, Code: CodeConflictingDuplicate,
		Text: fmt.Sprintf("a different message with the same seq as %s (hash %.12s… and %.12s…): one of them was altered", orWhere(first.Where), first.Hash, second.Hash)})
}

func orWhere(s string) string {
	if s == "" {
		return "another"
	}
	return s
}

func (v *Verifier) chain(device string) *chain {
	c := v.chains[device]
	if c == nil {
		c = &chain{device: device, keys: map[string]int{}}
		v.chains[device] = c
	}
	return c
}

// Prechecker returns a function that checks an entry's signature with the
// keys trusted now, safe to call from many goroutines at once, so that a
// verifier reading a large journal can spread the Ed25519 work over the
// CPUs before it adds the entries, in order, with Add. Add checks again
// any signature the function did not find good.
func (v *Verifier) Prechecker() func(*Entry) {
	keys := make(map[string]ed25519.PublicKey, len(v.keys))
	for id, k := range v.keys {
		keys[id] = k.key.Key
	}
	return func(e *Entry) {
		if e.Sig == nil {
			return
		}
		if pub, ok := keys[e.Sig.Key]; ok && Check(pub, e.Hash, *e.Sig) {
			e.checkedWith = pub
		}
	}
}

// checkSignature says whether e's signature checks with a trusted key;
// it records the problem when not.
func (v *Verifier) checkSignature(c *chain, e Entry) bool {
	if e.Sig == nil {
		return false
	}
	k, ok := v.keys[e.Sig.Key]
	if !ok {
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeUnknownKey,
			Text: fmt.Sprintf("signed by key %s, which is neither given nor named by a key rotation signed by a known key", e.Sig.Key)})
		return false
	}
	if !k.key.Key.Equal(e.checkedWith) && !Check(k.key.Key, e.Hash, *e.Sig) {
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeBadSignature,
			Text: fmt.Sprintf("the signature by key %s does not match the payload: it was changed after it was signed", e.Sig.Key)})
		return false
	}
	k.signed++
	c.keys[e.Sig.Key]++
	return true
}

// rotationKey returns the key a key_rotation event names, checked.
func rotationKey(e Entry) (PublicKey, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(e.NextPublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("next_public_key is not %d bytes of standard base64", ed25519.PublicKeySize)
	}
	pk := PublicKey{ID: KeyID(raw), Key: raw, Previous: e.Sig.Key}
	if pk.ID != e.NextKey {
		return PublicKey{}, fmt.Errorf("next_key %s is not the id of next_public_key (%s)", e.NextKey, pk.ID)
	}
	return pk, nil
}

// isRotation reports whether e is a signed key_rotation event.
func isRotation(e Entry) bool {
	return e.Kind() == KindEvent && e.EventKind == string(protocol.EventKeyRotation) && e.Sig != nil
}

// TrustRotations trusts, until nothing changes, the keys named by
// key_rotation events among entries whose signature checks with a key
// already trusted. A verifier that reads entries out of journal order (a
// capture) calls it before Add; Add does the same as it goes.
func (v *Verifier) TrustRotations(entries []Entry) {
	for changed := true; changed; {
		changed = false
		for _, e := range entries {
			if !isRotation(e) || v.Trusted(e.NextKey) {
				continue
			}
			k, ok := v.keys[e.Sig.Key]
			if !ok || !Check(k.key.Key, e.Hash, *e.Sig) {
				continue
			}
			if pk, err := rotationKey(e); err == nil {
				v.Trust(pk, fmt.Sprintf("key_rotation %s signed by %s", e.ID, e.Sig.Key))
				changed = true
			}
		}
	}
}

// chain is the verification state of one device.
type chain struct {
	device                            string
	started                           bool
	first, last                       uint64
	lastHash, lastID, lastWhere       string
	lastSigned                        bool
	entries, cycles, events, tele     int
	signed                            int
	keys                              map[string]int
	anySigned                         bool
	run                               run
	holes, gaps                       []SeqRange
	problems                          []Problem
	problemCount                      int
	notes                             []string
	redeliveries                      int
	expectHead                        uint64
	firstProblem                      *Problem
	uncoveredTail                     *SeqRange
	uncoveredN                        int
	predatesSigning                   SeqRange
	predatesSigningN, predatesCovered uint64
}

// run is the entries since the last valid signature: no signature covers
// them yet.
type run struct {
	from, to uint64
	n        int
	// unsigned cycle records and events in the run (only before the
	// chain's first signature: a sterigate from before signing)
	records       int
	firstRecordID string
}

func (c *chain) fail(p Problem) {
	p.Device = c.device
	c.problemCount++
	if c.firstProblem == nil || p.Seq < c.firstProblem.Seq {
		cp := p
		c.firstProblem = &cp
	}
	if len(c.problems) < maxProblemsKept {
		c.problems = append(c.problems, p)
	}
}

// Add walks one entry. Entries of a device must come in seq order; one
// that does not (a journal whose rows were moved) is a problem.
func (v *Verifier) Add(e Entry) {
	c := v.chain(e.Device)
	if c.started && e.Seq <= c.last {
		if e.Seq == c.last && e.Hash == c.lastHash {
			c.redeliveries++
			return
		}
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeOutOfOrder,
			Text: fmt.Sprintf("comes after seq %d: entries were moved or inserted", c.last)})
		return
	}
	c.entries++
	switch e.Kind() {
	case KindCycle:
		c.cycles++
	case KindEvent:
		c.events++
	default:
		c.tele++
	}
	signed := v.checkSignature(c, e)
	if signed {
		c.signed++
	}
	isRecord := e.Kind() != KindTelemetry

	switch {
	case !c.started:
		c.started, c.first = true, e.Seq
	case isBreak(e) && c.last == e.LastSeq && e.PrevHash != c.lastHash:
		// A journal that replaced a damaged one chains on from the
		// device's last good entry, which it names.
		c.breakRun(v.opts)
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeAltered,
			Text: fmt.Sprintf("journal_break: prev_hash does not match the hash of seq %d, the last good entry it names", c.last)})
	case e.Seq > c.last+1:
		c.breakRun(v.opts)
		c.holes = append(c.holes, SeqRange{c.last + 1, e.Seq - 1})
	case e.PrevHash != c.lastHash:
		c.breakRun(v.opts)
		p := Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeAltered}
		switch {
		case signed:
			p.Seq, p.ID, p.Where = c.last, c.lastID, c.lastWhere
			p.Text = fmt.Sprintf("its payload is not the one seq %d chains to (seq %d's prev_hash, whose signature checks): seq %d was altered or replaced", e.Seq, e.Seq, c.last)
		case c.lastSigned:
			p.Text = fmt.Sprintf("prev_hash does not match the hash of seq %d, whose signature checks: seq %d was altered or forged", c.last, e.Seq)
		default:
			p.Text = fmt.Sprintf("prev_hash does not match the hash of seq %d: one of them was altered", c.last)
		}
		c.fail(p)
	}

	if isRotation(e) && signed {
		if pk, err := rotationKey(e); err != nil {
			c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeAltered, Text: "key_rotation: " + err.Error()})
		} else {
			v.Trust(pk, fmt.Sprintf("key_rotation %s signed by %s", e.ID, e.Sig.Key))
		}
	}
	if e.EventKind == string(protocol.EventCheckpoint) && isRecord && (e.CoversSeq != e.Seq-1 || e.CoversHash != e.PrevHash) {
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeAltered,
			Text: fmt.Sprintf("checkpoint names seq %d (%.12s…) as the head it covers, not its own predecessor seq %d", e.CoversSeq, e.CoversHash, e.Seq-1)})
	}
	if e.EventKind == string(protocol.EventGap) && e.ToSeq >= e.FromSeq && e.FromSeq > 0 {
		c.gaps = append(c.gaps, SeqRange{e.FromSeq, e.ToSeq})
	}
	if isBreak(e) && e.Seq > e.LastSeq+1 {
		c.gaps = append(c.gaps, SeqRange{e.LastSeq + 1, e.Seq - 1})
	}

	switch {
	case signed:
		if c.run.records > 0 {
			c.predatesSigning = SeqRange{c.run.from, c.run.to}
			c.predatesSigningN = uint64(c.run.records)
			c.predatesCovered = e.Seq
		}
		c.run = run{}
		c.anySigned = true
	case isRecord && e.Sig != nil:
		// Its signature did not check: a problem already.
	case isRecord && c.anySigned:
		c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeNotSigned,
			Text: fmt.Sprintf("this %s carries no signature, though the gateway signs every cycle record and event", kindName(e.Kind()))})
	default:
		c.extendRun(e, isRecord)
	}
	c.last, c.lastHash, c.lastSigned, c.lastID, c.lastWhere = e.Seq, e.Hash, signed, e.ID, e.Where
}

func (c *chain) extendRun(e Entry, unsignedRecord bool) {
	if c.run.n == 0 {
		c.run.from = e.Seq
	}
	c.run.to = e.Seq
	c.run.n++
	if unsignedRecord {
		if c.run.records == 0 {
			c.run.firstRecordID = e.ID
		}
		c.run.records++
	}
}

// breakRun ends the run at a hole or a broken link: no later signature can
// cover it any more.
func (c *chain) breakRun(opts Options) {
	r := c.run
	c.run = run{}
	if r.n == 0 {
		return
	}
	if r.records > 0 {
		c.fail(Problem{Seq: r.from, ToSeq: r.to, ID: r.firstRecordID, Code: CodeNotSigned,
			Text: fmt.Sprintf("%d cycle records or events without a signature, and the chain breaks before any later signature covers them", r.records)})
		return
	}
	if !opts.Partial {
		c.notes = append(c.notes, fmt.Sprintf("%s: %s that no signature covers: the chain breaks after it", seqText(r.from, r.to), plural(r.n, "telemetry batch", "telemetry batches")))
	}
}

func seqText(from, to uint64) string { return "seq " + rangeText(from, to) }

func kindName(kind string) string {
	switch kind {
	case KindCycle:
		return "cycle record"
	case KindTelemetry:
		return "telemetry batch"
	}
	return kind
}

func rangeText(from, to uint64) string {
	if from == to {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d–%d", from, to)
}

// finish closes a chain's walk: holes against gap events, the uncovered
// tail, the expected head.
func (c *chain) finish(opts Options) {
	for _, h := range c.holes {
		explained := false
		for _, g := range c.gaps {
			if g.From <= h.From && h.To <= g.To {
				explained = true
				break
			}
		}
		switch {
		case explained:
		case opts.Partial:
		default:
			c.fail(Problem{Seq: h.From, ToSeq: h.To, Code: CodeMissing,
				Text: fmt.Sprintf("%s missing, and no gap event explains it", plural(int(h.To-h.From+1), "entry is", "entries are"))})
		}
	}
	if opts.Partial && len(c.holes) > 0 {
		n := uint64(0)
		for _, h := range c.holes {
			n += h.To - h.From + 1
		}
		c.notes = append(c.notes, fmt.Sprintf("%d seqs between seq %d and %d are not in the input (partial: not checked)", n, c.first, c.last))
	}
	if r := c.run; r.n > 0 {
		if r.records > 0 {
			c.fail(Problem{Seq: r.from, ToSeq: r.to, ID: r.firstRecordID, Code: CodeNotSigned,
				Text: fmt.Sprintf("%d cycle records or events without a signature, and no later signature covers them", r.records)})
		} else {
			c.uncoveredTail = &SeqRange{r.from, r.to}
			c.uncoveredN = r.n
		}
	}
	if c.predatesSigningN > 0 {
		c.notes = append(c.notes, fmt.Sprintf("seq %s holds %d unsigned cycle records or events from before signing began; the signature of seq %d covers them",
			rangeText(c.predatesSigning.From, c.predatesSigning.To), c.predatesSigningN, c.predatesCovered))
	}
	if c.expectHead > c.last {
		from := c.last + 1
		if !c.started {
			from = 1
		}
		c.fail(Problem{Seq: from, ToSeq: c.expectHead, Code: CodeMissing,
			Text: fmt.Sprintf("the journal's chain head says seq %d was written, but the entries end at seq %d", c.expectHead, c.last)})
	}
}

// Report finishes the walk and returns its outcome; call it once.
func (v *Verifier) Report() Report {
	r := Report{OK: true, Problems: v.general, Skipped: v.skipped}
	if len(v.general) > 0 {
		r.OK = false
	}
	devices := make([]string, 0, len(v.chains))
	for d := range v.chains {
		devices = append(devices, d)
	}
	sort.Strings(devices)
	for _, d := range devices {
		c := v.chains[d]
		c.finish(v.opts)
		dr := DeviceReport{Device: d, FirstSeq: c.first, LastSeq: c.last, Entries: c.entries, Cycles: c.cycles,
			Events: c.events, Telemetry: c.tele, Signed: c.signed, Redeliveries: c.redeliveries,
			Uncovered: c.uncoveredTail, UncoveredEntries: c.uncoveredN, Gaps: c.gaps, Notes: c.notes, ProblemCount: c.problemCount, Keys: []string{}}
		for k := range c.keys {
			dr.Keys = append(dr.Keys, k)
		}
		sort.Strings(dr.Keys)
		if c.started && c.first > 1 && !v.opts.Partial {
			dr.Notes = append([]string{fmt.Sprintf("starts at seq %d: earlier entries are not in the input (pruned after delivery, or received before the capture began)", c.first)}, dr.Notes...)
		}
		dr.Problems = slices.Clone(c.problems)
		sort.SliceStable(dr.Problems, func(i, j int) bool { return dr.Problems[i].Seq < dr.Problems[j].Seq })
		dr.FirstBad = c.firstProblem
		dr.OK = c.problemCount == 0
		if !dr.OK {
			r.OK = false
		}
		r.Devices = append(r.Devices, dr)
	}
	for _, id := range v.keyList {
		k := v.keys[id]
		r.Keys = append(r.Keys, KeyUse{Key: id, Origin: k.origin, Signed: k.signed})
	}
	return r
}

// isBreak reports whether e is a journal_break event: the first entry of a
// device in a journal that replaced a damaged one.
func isBreak(e Entry) bool {
	return e.Kind() == KindEvent && e.EventKind == string(protocol.EventJournalBreak)
}

// RotatedKey returns the key a signed key_rotation event names; ok is
// false for any other entry. A receiver that checks entries one at a time
// (the archive) trusts it only after the event's own signature checked
// with a key it already trusts.
func RotatedKey(e Entry) (k PublicKey, ok bool, err error) {
	if !isRotation(e) {
		return PublicKey{}, false, nil
	}
	k, err = rotationKey(e)
	return k, true, err
}
