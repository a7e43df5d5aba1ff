package protocol

import "time"

// TelemetrySchema names version 1 of the telemetry batch payload.
const TelemetrySchema = "sterigate.telemetry.v1"

// EventSchema names version 1 of the event payload.
const EventSchema = "sterigate.event.v1"

// Telemetry is a batch of live samples of one device, journaled and
// published together to keep per-message overhead low.
type Telemetry struct {
	Schema   string   `json:"schema"`
	ID       string   `json:"id"` // "<site>:<device>:<journal id>.t<seq>", stable across re-delivery, never reused
	Gateway  string   `json:"gateway"`
	Site     string   `json:"site"`
	Device   string   `json:"device"`
	Cycle    uint64   `json:"cycle,omitempty"` // device counter while a cycle runs
	Samples  []Sample `json:"samples"`
	Seq      uint64   `json:"seq"`
	PrevHash string   `json:"prev_hash,omitempty"`
	Replay   bool     `json:"replay,omitempty"` // see CycleRecord.Replay
}

// EventKind says what happened.
type EventKind string

const (
	EventPhase   EventKind = "phase"   // the device entered Phase
	EventAlarm   EventKind = "alarm"   // the device raised alarm Code
	EventOnline  EventKind = "online"  // the driver reached the device
	EventOffline EventKind = "offline" // the driver lost the device; Text says why
	// EventGap records that journal entries were thinned or never taken;
	// Text and the From/To fields say which.
	EventGap EventKind = "gap"
	// EventGatewayAlarm is raised by the gateway itself (journal near its
	// quota, disk full, ...).
	EventGatewayAlarm EventKind = "gateway_alarm"
	// EventImplausibleValue: a reading outside its role's plausible range
	// was refused as a sample; Field, Value and Registers say which.
	EventImplausibleValue EventKind = "implausible_value"
	// EventGarbage: bytes on a printer line that belong to no report were
	// skipped; Count says how many.
	EventGarbage EventKind = "garbage"
	// EventVerificationDisagreement: sterigate's own verdict on a cycle
	// does not agree with the device's; Cycle, RecordID and Text say which
	// and why, Verdict and Checks the same for a machine.
	EventVerificationDisagreement EventKind = "verification_disagreement"
	// EventRelease: a person recorded a release decision on a cycle record
	// in the local console: RecordID, RecordHash, Decision, Operator, Note,
	// LoadRef, Supersedes and Confirmed say which, who and why.
	EventRelease EventKind = "release"
	// EventCheckpoint is the gateway's signature over the telemetry the
	// device's chain holds since its last signed entry: CoversSeq and
	// CoversHash name the chain head it covers, Count how many entries
	// since the last signed one it is the first signature over.
	EventCheckpoint EventKind = "checkpoint"
	// EventKeyRotation: the gateway's signing key changes. The event is
	// signed by the old key (unless the old key was lost, Text says so)
	// and names the next one in NextKey and NextPublicKey.
	EventKeyRotation EventKind = "key_rotation"
	// EventJournalBreak is the first entry of every device in a journal
	// that replaced a damaged one: LastSeq and LastHash name the device's
	// last good entry (its prev_hash is LastHash), Journal the damaged
	// journal's id; seqs between LastSeq and this event's may be missing.
	EventJournalBreak EventKind = "journal_break"
)

// Release decisions (Event.Decision of a release event).
const (
	DecisionReleased    = "released"    // the load may be used
	DecisionRejected    = "rejected"    // the load must be reprocessed
	DecisionQuarantined = "quarantined" // held until someone decides
)

// Decisions lists the release decisions in a stable order.
func Decisions() []string {
	return []string{DecisionReleased, DecisionRejected, DecisionQuarantined}
}

// Event is something that happened at one instant.
type Event struct {
	Schema  string    `json:"schema"`
	ID      string    `json:"id"`
	Gateway string    `json:"gateway"`
	Site    string    `json:"site"`
	Device  string    `json:"device"`
	At      time.Time `json:"at"`
	Kind    EventKind `json:"kind"`
	Cycle   uint64    `json:"cycle,omitempty"`
	Phase   PhaseName `json:"phase,omitempty"`
	// Program is the program of the running cycle (phase events).
	Program string    `json:"program,omitempty"`
	Code    int       `json:"code,omitempty"`
	Text    string    `json:"text,omitempty"`
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	// Field, Value and Registers describe an implausible value: the
	// profile field, the decoded value, the raw registers it came from.
	Field     string   `json:"field,omitempty"`
	Value     *float64 `json:"value,omitempty"`
	Registers []uint16 `json:"registers,omitempty"`
	// Count is how many bytes or items the event is about (garbage), or
	// how many entries a checkpoint is the first signature over.
	Count int `json:"count,omitempty"`
	// FromSeq and ToSeq are the seq range of the telemetry a gap event
	// says was thinned from the journal (absent for telemetry that was
	// never journaled).
	FromSeq uint64 `json:"from_seq,omitempty"`
	ToSeq   uint64 `json:"to_seq,omitempty"`
	// CoversSeq and CoversHash are the chain head a checkpoint covers: the
	// seq and hash of the device's entry before it.
	CoversSeq  uint64 `json:"covers_seq,omitempty"`
	CoversHash string `json:"covers_hash,omitempty"`
	// NextKey and NextPublicKey name the key that signs after a
	// key_rotation: its key id and its Ed25519 public key (base64).
	NextKey       string `json:"next_key,omitempty"`
	NextPublicKey string `json:"next_public_key,omitempty"`
	// RecordID and RecordHash name the cycle record a release decision or
	// a verification disagreement is about: its id and (release) the hex
	// SHA-256 of its journaled payload, so the decision is tied to the
	// exact bytes the person looked at.
	RecordID   string `json:"record_id,omitempty"`
	RecordHash string `json:"record_hash,omitempty"`
	// Decision is released, rejected or quarantined (release events).
	Decision string `json:"decision,omitempty"`
	// Operator is the console account that made the decision.
	Operator string `json:"operator,omitempty"`
	// Note is the operator's note; LoadRef the load or batch reference.
	Note    string `json:"note,omitempty"`
	LoadRef string `json:"load_ref,omitempty"`
	// Supersedes is the id of the earlier release event of the same record
	// that this decision replaces; decisions are never edited or deleted.
	Supersedes string `json:"supersedes,omitempty"`
	// Confirmed is true when the operator explicitly confirmed a release of
	// a load whose record is not conforming (sterigate's verdict not pass,
	// the device's result not passed, or the record incomplete).
	Confirmed bool `json:"confirmed,omitempty"`
	// Verdict and Checks describe a verification disagreement: sterigate's
	// verdict on the record, and the names of the checks that failed or
	// could not be judged (protocol/verify's check names, stable, for a
	// console to translate).
	Verdict string   `json:"verdict,omitempty"`
	Checks  []string `json:"checks,omitempty"`
	// LastSeq, LastHash and Journal describe a journal break: the last
	// good entry of the device in the damaged journal, and that journal's
	// id.
	LastSeq  uint64 `json:"last_seq,omitempty"`
	LastHash string `json:"last_hash,omitempty"`
	Journal  string `json:"journal,omitempty"`
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash,omitempty"`
	Replay   bool   `json:"replay,omitempty"` // see CycleRecord.Replay
}
