package protocol

import (
	"fmt"
	"time"
)

// CycleSchema names version 1 of the cycle record. A consumer that sees
// another value must not guess at the payload's meaning.
const CycleSchema = "sterigate.cycle.v1"

// Result is the verdict the sterilizer itself reported for a cycle. The
// gateway records it as reported; it does not replace the device's verdict.
type Result string

const (
	ResultPassed  Result = "passed"
	ResultFailed  Result = "failed"
	ResultAborted Result = "aborted"
	// ResultUnknown means the device reported no verdict the gateway could
	// map (an unmapped code, or a cycle whose end the gateway did not see).
	ResultUnknown Result = "unknown"
)

// Valid reports whether r is one of the defined results.
func (r Result) Valid() bool {
	switch r {
	case ResultPassed, ResultFailed, ResultAborted, ResultUnknown:
		return true
	}
	return false
}

// PhaseName is one word of the shared phase vocabulary. Profiles map each
// device's own phase codes onto these names, so dashboards and release
// checks can reason about any sterilizer the same way.
type PhaseName string

const (
	PhaseIdle         PhaseName = "idle"
	PhasePreparation  PhaseName = "preparation" // door close, seal, self-check
	PhaseAirRemoval   PhaseName = "air_removal" // fractionated vacuum pulses
	PhaseHeating      PhaseName = "heating"
	PhaseEquilibrate  PhaseName = "equilibration"
	PhaseSterilizing  PhaseName = "sterilizing" // the hold (plateau)
	PhaseExhaust      PhaseName = "exhaust"
	PhaseDrying       PhaseName = "drying"
	PhaseAirAdmission PhaseName = "air_admission"
	PhaseLeakTest     PhaseName = "leak_test" // vacuum leak test: evacuate, equalise, measure
	PhaseCooling      PhaseName = "cooling"   // liquids: slow exhaust / cool-down
	PhaseComplete     PhaseName = "complete"  // end of cycle, door may open
	PhaseFault        PhaseName = "fault"     // the device stopped on an alarm
	PhaseUnknown      PhaseName = "unknown"   // a code the profile does not map
)

// PhaseNames lists the vocabulary in a stable order, for validation and
// docs. It returns a fresh slice each time: the vocabulary is not
// something a caller can change.
func PhaseNames() []PhaseName {
	return []PhaseName{
		PhaseIdle, PhasePreparation, PhaseAirRemoval, PhaseHeating, PhaseEquilibrate,
		PhaseSterilizing, PhaseExhaust, PhaseDrying, PhaseAirAdmission, PhaseLeakTest,
		PhaseCooling, PhaseComplete, PhaseFault, PhaseUnknown,
	}
}

// Valid reports whether p belongs to the vocabulary.
func (p PhaseName) Valid() bool {
	for _, n := range PhaseNames() {
		if n == p {
			return true
		}
	}
	return false
}

// CycleRecord is everything known about one sterilization cycle of one
// device: the document a CSSD needs to release a load. It is immutable once
// journaled; what is published is byte for byte what the journal holds.
type CycleRecord struct {
	Schema string `json:"schema"`
	// ID is stable and unique per device cycle (see CycleID): the same on
	// every re-delivery, so consumers de-duplicate by it.
	ID      string `json:"id"`
	Gateway string `json:"gateway"`
	Site    string `json:"site"`
	Device  string `json:"device"`
	// Cycle is the device's own cycle counter.
	Cycle uint64 `json:"cycle"`
	// CounterEpoch counts how often the device's cycle counter went
	// backwards (a reset, a replaced controller) since the gateway first
	// saw it. It keeps ids unique when counter values come round again;
	// 0, and then absent, for almost every device.
	CounterEpoch uint32 `json:"counter_epoch,omitempty"`
	Program      string `json:"program"`
	// ProgramCode is the raw code the device reported, kept so that an
	// unmapped program is still traceable.
	ProgramCode *int      `json:"program_code,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	Result      Result    `json:"result"`
	// ResultCode is the raw result code the device reported, if any.
	ResultCode *int `json:"result_code,omitempty"`
	// Complete is false when the gateway did not observe the whole cycle
	// (it started after the cycle began, lost the device for a while, or
	// the printout was cut). Such a record is kept, never dropped.
	Complete bool `json:"complete"`
	// EndSeen is true only when the gateway observed the cycle's end
	// itself (the end phase, the latched counter stepping, the printout's
	// end line). A record whose end was inferred (the device moved on to
	// another cycle, a counter reset, a cut printout) says false; its
	// EndedAt is then the last time the gateway saw the cycle running.
	EndSeen bool `json:"end_seen"`
	// Holes lists every stretch inside the cycle longer than the profile's
	// max_sample_gap with no sample, and why. Any hole makes Complete false.
	Holes  []Hole  `json:"holes,omitempty"`
	Source string  `json:"source"` // driver that produced it: modbus-tcp, modbus-rtu, printer, ...
	Phases []Phase `json:"phases"`
	// Channels describes the measured channels a sample carries besides
	// the chamber temperature and pressure (drain, load, jacket and
	// reference probes), in the profile's order. Samples and phases key
	// their values by Channel.ID.
	Channels []Channel `json:"channels,omitempty"`
	// Samples holds one entry per poll (or printed sample line).
	Samples []Sample `json:"samples"`
	Alarms  []Alarm  `json:"alarms"`
	// DeviceFigures are the figures the device itself reported about the
	// cycle (its own hold time, plateau extremes, leak rate, serial
	// number), as reported: sterigate does not compute them.
	DeviceFigures *DeviceFigures `json:"device_figures,omitempty"`
	// TimeScale is how many device seconds pass per wall-clock second
	// (simulators run faster than real time; absent for real devices).
	// Durations judged by Verification are wall-clock durations times it.
	TimeScale float64 `json:"time_scale,omitempty"`
	// Verification is sterigate's own parametric judgement of the cycle,
	// made from the record's data independently of the device's Result.
	Verification *Verification `json:"verification,omitempty"`
	// Revision is 2, 3, … on a record that supersedes an earlier record
	// of the same cycle (a complete reprint of a cut printout); absent on
	// the first. Its ID is then "<cycle id>:r<revision>".
	Revision int `json:"revision,omitempty"`
	// Supersedes is the ID of the record this one replaces.
	Supersedes string `json:"supersedes,omitempty"`
	// Seq is the per-device journal sequence: gap-free, assigned when the
	// record is committed, shared with the device's other journal entries.
	Seq uint64 `json:"seq"`
	// PrevHash is the hex SHA-256 of the device's previous journal entry,
	// so a consumer can detect a missing or altered message.
	PrevHash string `json:"prev_hash,omitempty"`
	// Raw is the exact bytes the device printed for this cycle (printer tap
	// only): the legal original. encoding/json carries it as base64.
	Raw []byte `json:"raw,omitempty"`
	// Replay is true on a message published again from the journal's
	// backlog after an outage. The publisher adds it in front of the
	// journaled bytes; it is not part of the hashed payload (docs/mqtt.md).
	Replay bool `json:"replay,omitempty"`
}

// CycleID returns the stable identifier of a device cycle. It does not
// depend on the gateway, so a device moved to another gateway keeps its ids.
func CycleID(site, device string, cycle uint64) string {
	return fmt.Sprintf("%s:%s:%d", site, device, cycle)
}

// CycleIDInEpoch is CycleID for a record whose device counter was reset
// epoch times: "<site>:<device>:<epoch>.<cycle>" when epoch > 0, so the
// cycles counted again after a reset get ids of their own.
func CycleIDInEpoch(site, device string, epoch uint32, cycle uint64) string {
	if epoch == 0 {
		return CycleID(site, device, cycle)
	}
	return fmt.Sprintf("%s:%s:%d.%d", site, device, epoch, cycle)
}

// RecordID is the id a journal gives r: CycleIDInEpoch of its fields,
// with ":r<revision>" for a superseding revision.
func (r *CycleRecord) RecordID(site string) string {
	id := CycleIDInEpoch(site, r.Device, r.CounterEpoch, r.Cycle)
	if r.Revision > 1 {
		id += fmt.Sprintf(":r%d", r.Revision)
	}
	return id
}

// Hole reasons: why the gateway has no samples for a stretch of a cycle.
const (
	HoleGatewayDown   = "gateway_down"      // the gateway was not running
	HoleDeviceOffline = "device_offline"    // the device did not answer
	HolePollErrors    = "poll_errors"       // the device answered, but not with usable data
	HoleImplausible   = "implausible_value" // readings outside the plausible range were refused
	HoleNotPrinted    = "not_printed"       // the printout has no sample lines there
)

// Hole is a stretch of a cycle without samples.
type Hole struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
}

// Channel roles beyond the chamber temperature and pressure.
const (
	RoleDrainTemperature     = "drain_temperature"
	RoleLoadTemperature      = "load_temperature"
	RoleJacketTemperature    = "jacket_temperature"
	RoleReferenceTemperature = "reference_temperature"
)

// Channel is one measured channel of a device besides the chamber
// temperature and pressure.
type Channel struct {
	ID   string `json:"id"`   // the profile's field name; the key in samples and phases
	Role string `json:"role"` // drain_temperature, load_temperature, jacket_temperature, reference_temperature
	Unit string `json:"unit"` // "°C" for every temperature role
}

// Extremes are the lowest and highest values of one channel in a phase.
type Extremes struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// DeviceFigures are what the device reported about a cycle, kept as
// reported. Absent figures were not reported.
type DeviceFigures struct {
	HoldSeconds    *float64 `json:"hold_seconds,omitempty"`
	PlateauMinC    *float64 `json:"plateau_min_c,omitempty"`
	PlateauMaxC    *float64 `json:"plateau_max_c,omitempty"`
	PlateauMinKPa  *float64 `json:"plateau_min_kpa,omitempty"`
	PlateauMaxKPa  *float64 `json:"plateau_max_kpa,omitempty"`
	LeakRateKPaMin *float64 `json:"leak_rate_kpa_min,omitempty"`
	SerialNumber   string   `json:"serial_number,omitempty"`
	// Reprint is true when the device marked the printout as a copy
	// ("DUPLICATA", "COPY").
	Reprint bool `json:"reprint,omitempty"`
	// Other holds any other value a printer template captured by name, as
	// printed.
	Other map[string]string `json:"other,omitempty"`
}

// Empty reports whether f holds no figure at all.
func (f *DeviceFigures) Empty() bool {
	return f == nil || (f.HoldSeconds == nil && f.PlateauMinC == nil && f.PlateauMaxC == nil &&
		f.PlateauMinKPa == nil && f.PlateauMaxKPa == nil && f.LeakRateKPaMin == nil &&
		f.SerialNumber == "" && !f.Reprint && len(f.Other) == 0)
}

// Phase is one contiguous span of a cycle in one phase.
type Phase struct {
	Name  PhaseName `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Extremes over the phase; absent when no sample fell inside it.
	TempMinC       *float64 `json:"temp_min_c,omitempty"`
	TempMaxC       *float64 `json:"temp_max_c,omitempty"`
	PressureMinKPa *float64 `json:"pressure_min_kpa,omitempty"`
	PressureMaxKPa *float64 `json:"pressure_max_kpa,omitempty"`
	// Ch holds the extremes of the record's other channels, by Channel.ID.
	Ch map[string]Extremes `json:"ch,omitempty"`
}

// Sample is one reading of the chamber.
type Sample struct {
	At          time.Time `json:"t"`
	TempC       float64   `json:"temp_c"`
	PressureKPa float64   `json:"pressure_kpa"` // absolute
	Phase       PhaseName `json:"phase"`
	// Ch holds the record's other channels at this instant, by
	// Channel.ID; a channel missing from a sample was not read then.
	Ch map[string]float64 `json:"ch,omitempty"`
}

// Alarm is an alarm the device raised.
type Alarm struct {
	Code int       `json:"code"`
	Text string    `json:"text,omitempty"`
	At   time.Time `json:"at"`
	// Latched is true for the alarm the device latched as having ended the
	// cycle (a last-alarm register), as opposed to one seen while active.
	Latched bool `json:"latched,omitempty"`
}

// Observe widens the phase's extremes to include s.
func (p *Phase) Observe(s Sample) {
	widen := func(lo, hi **float64, v float64) {
		if *lo == nil || v < **lo {
			*lo = &v
		}
		if *hi == nil || v > **hi {
			v2 := v
			*hi = &v2
		}
	}
	widen(&p.TempMinC, &p.TempMaxC, s.TempC)
	widen(&p.PressureMinKPa, &p.PressureMaxKPa, s.PressureKPa)
	for id, v := range s.Ch {
		if p.Ch == nil {
			p.Ch = map[string]Extremes{}
		}
		e, seen := p.Ch[id]
		if !seen {
			e = Extremes{Min: v, Max: v}
		}
		e.Min, e.Max = min(e.Min, v), max(e.Max, v)
		p.Ch[id] = e
	}
}

// Validate checks the fields a producer must fill. It names the first bad
// field so a broken driver or template is easy to find.
func (r *CycleRecord) Validate() error {
	switch {
	case r.Device == "":
		return fmt.Errorf("cycle record: device is empty")
	case !r.Result.Valid():
		return fmt.Errorf("cycle record %s cycle %d: result %q is not one of passed, failed, aborted, unknown", r.Device, r.Cycle, r.Result)
	case r.StartedAt.IsZero():
		return fmt.Errorf("cycle record %s cycle %d: started_at is not set", r.Device, r.Cycle)
	case r.EndedAt.Before(r.StartedAt):
		return fmt.Errorf("cycle record %s cycle %d: ended_at %s is before started_at %s", r.Device, r.Cycle, r.EndedAt.Format(time.RFC3339), r.StartedAt.Format(time.RFC3339))
	}
	for i, ph := range r.Phases {
		if !ph.Name.Valid() {
			return fmt.Errorf("cycle record %s cycle %d: phases[%d].name %q is not in the phase vocabulary", r.Device, r.Cycle, i, ph.Name)
		}
	}
	return nil
}
