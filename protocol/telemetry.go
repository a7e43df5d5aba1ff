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
	// does not agree with the device's; Cycle and Text say which and why.
	EventVerificationDisagreement EventKind = "verification_disagreement"
	// EventJournalBreak is the first entry of every device in a journal
	// that replaced a damaged one: LastSeq and LastHash name the device's
	// last good entry (its prev_hash is LastHash), Journal the damaged
	// journal's id; seqs between LastSeq and this event's may be missing.
	EventJournalBreak EventKind = "journal_break"
)

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
	// Count is how many bytes or items the event is about (garbage).
	Count int `json:"count,omitempty"`
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
