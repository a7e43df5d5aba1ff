// Package profile describes a sterilizer's Modbus register map in a YAML
// file: which registers to read, how to decode them, which decoded value is
// the chamber temperature, the phase, the cycle counter and so on, how the
// device's own codes map onto sterigate's vocabulary, and how the end of a
// cycle is recognised. docs/profiles.md is the reference for the format.
//
// A profile can only name read function codes (1–4): a profile cannot make
// the gateway write to a sterilizer.
//
// Parse validates everything once, at load time, and every error names the
// file, the line and the field path. Decode then turns the raw words of one
// poll into a Reading.
package profile

import (
	"fmt"
	"slices"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
)

// Type is how a field's registers are interpreted.
type Type string

const (
	TypeU16 Type = "u16"
	TypeI16 Type = "i16"
	TypeU32 Type = "u32"
	TypeI32 Type = "i32"
	TypeF32 Type = "f32"
	TypeF64 Type = "f64"
	TypeBit Type = "bit"
)

// allTypes lists the field types in documentation order.
var allTypes = []Type{TypeU16, TypeI16, TypeU32, TypeI32, TypeF32, TypeF64, TypeBit}

// Registers is how many 16-bit registers a value of type t spans (a bit
// lives inside one register, or is one coil for function 1 and 2).
func (t Type) Registers() int {
	switch t {
	case TypeU32, TypeI32, TypeF32:
		return 2
	case TypeF64:
		return 4
	}
	return 1
}

// Order is the byte order of a multi-byte value as the device sends it,
// named after where the bytes A (most significant) to D (least significant)
// of a 32-bit value appear on the wire. ABCD is plain Modbus big-endian,
// CDAB swaps the two 16-bit words, BADC swaps the bytes inside each word,
// DCBA is fully little-endian. For 16-bit values only the byte swap
// matters; for 64-bit values the same rule extends to four words.
type Order string

const (
	OrderABCD Order = "ABCD"
	OrderCDAB Order = "CDAB"
	OrderBADC Order = "BADC"
	OrderDCBA Order = "DCBA"
)

// allOrders lists the byte orders in documentation order.
var allOrders = []Order{OrderABCD, OrderCDAB, OrderBADC, OrderDCBA}

func (o Order) swapsWords() bool { return o == OrderCDAB || o == OrderDCBA }
func (o Order) swapsBytes() bool { return o == OrderBADC || o == OrderDCBA }

// Field is one named value in the device's register map.
type Field struct {
	Name     string
	Function byte // 1 coils, 2 discrete inputs, 3 holding registers, 4 input registers
	Address  uint16
	Type     Type
	Order    Order
	Bit      int // for type bit on functions 3 and 4: which bit of the register (0 = least significant)
	Scale    float64
	Offset   float64
	Unit     string
	Line     int // line in the profile file, for error messages
}

// Span is the number of protocol items (registers, or coils for functions
// 1 and 2) the field occupies.
func (f *Field) Span() int {
	if f.Function == 1 || f.Function == 2 {
		return 1
	}
	return f.Type.Registers()
}

// Block is one read request: Count items from Start with Function. The
// profile's blocks cover every field; Parse merges neighbouring fields into
// as few blocks as the read limits allow.
type Block struct {
	Function byte
	Start    uint16
	Count    uint16
}

// Role is the meaning sterigate gives to a field.
type Role string

const (
	RoleChamberTemperature Role = "chamber_temperature" // °C after scale and offset
	RoleChamberPressure    Role = "chamber_pressure"    // kPa absolute after scale and offset
	// Other measured channels (°C), carried in samples and phases by
	// field name. load_temperature may name several fields.
	RoleDrainTemperature     Role = protocol.RoleDrainTemperature
	RoleLoadTemperature      Role = protocol.RoleLoadTemperature
	RoleJacketTemperature    Role = protocol.RoleJacketTemperature
	RoleReferenceTemperature Role = protocol.RoleReferenceTemperature

	RolePhase        Role = "phase"         // device phase code, mapped by phases:
	RoleProgram      Role = "program"       // program code of the running cycle, mapped by programs:
	RoleCycleCounter Role = "cycle_counter" // counter of the current (or most recent) cycle
	RoleLastCycle    Role = "last_cycle"    // counter of the last finished cycle (latched)
	RoleLastResult   Role = "last_result"   // result code of the last finished cycle, mapped by results:
	RoleLastProgram  Role = "last_program"  // program code of the last finished cycle
	RoleAlarmCode    Role = "alarm_code"    // code of the active alarm, 0 when none

	// The device's latched figures about the last finished cycle, copied
	// into the record as reported.
	RoleLastAlarmCode     Role = "last_alarm_code"      // alarm that ended the last cycle, 0 when none
	RoleLastHoldSeconds   Role = "last_hold_seconds"    // hold time the device counted, s
	RoleLastPlateauMin    Role = "last_plateau_min"     // lowest hold temperature, °C
	RoleLastPlateauMax    Role = "last_plateau_max"     // highest hold temperature, °C
	RoleLastPlateauMinKPa Role = "last_plateau_min_kpa" // lowest hold pressure, kPa absolute
	RoleLastPlateauMaxKPa Role = "last_plateau_max_kpa" // highest hold pressure, kPa absolute
	RoleLastLeakRate      Role = "last_leak_rate"       // vacuum leak test rate, kPa/min
)

// allRoles lists every role in documentation order.
var allRoles = []Role{
	RoleChamberTemperature, RoleChamberPressure,
	RoleDrainTemperature, RoleLoadTemperature, RoleJacketTemperature, RoleReferenceTemperature,
	RolePhase, RoleProgram, RoleCycleCounter, RoleLastCycle, RoleLastResult, RoleLastProgram, RoleAlarmCode,
	RoleLastAlarmCode, RoleLastHoldSeconds, RoleLastPlateauMin, RoleLastPlateauMax,
	RoleLastPlateauMinKPa, RoleLastPlateauMaxKPa, RoleLastLeakRate,
}

// channelRoles are the measured roles besides the chamber temperature and
// pressure; their fields become the record's channels.
var channelRoles = []Role{RoleDrainTemperature, RoleLoadTemperature, RoleJacketTemperature, RoleReferenceTemperature}

// figureRoles are the device's own figures about the last finished cycle.
var figureRoles = []Role{RoleLastHoldSeconds, RoleLastPlateauMin, RoleLastPlateauMax, RoleLastPlateauMinKPa, RoleLastPlateauMaxKPa, RoleLastLeakRate}

// IsMeasured reports whether r is a measured value (a temperature or a
// pressure) that has a plausible range.
func (r Role) IsMeasured() bool {
	return r == RoleChamberTemperature || r == RoleChamberPressure || isChannelRole(r)
}

func isChannelRole(r Role) bool { return slices.Contains(channelRoles, r) }

func isFigureRole(r Role) bool { return slices.Contains(figureRoles, r) }

// Range is a closed interval of plausible values.
type Range struct{ Min, Max float64 }

// Contains reports whether v is a number within the range.
func (r Range) Contains(v float64) bool { return v >= r.Min && v <= r.Max }

// DefaultPlausible returns the plausible range of a measured role when the
// profile does not override it: a steam sterilizer's chamber never holds
// less than −20 °C or more than 200 °C, nor more than 700 kPa absolute.
// Other temperature channels share the chamber temperature's range.
func DefaultPlausible(r Role) Range {
	if r == RoleChamberPressure {
		return Range{Min: 0, Max: 700}
	}
	return Range{Min: -20, Max: 200}
}

// Channel is one measured channel besides the chamber temperature and
// pressure: its field (whose name is the channel's id) and its role.
type Channel struct {
	Field string
	Role  Role
}

// AlarmBit is one alarm the device signals with a bit.
type AlarmBit struct {
	Field string // a field of integer type or of type bit
	Bit   int    // bit within the field's value (ignored for type bit)
	Code  int
	Text  string
}

// CycleEndOn says which observation ends a cycle.
type CycleEndOn string

const (
	// EndOnLastCycleChange: the last_cycle role changes; its new value is
	// the counter of the cycle that just finished. The most robust option:
	// a latched register survives slow polling and gateway restarts.
	EndOnLastCycleChange CycleEndOn = "last_cycle_change"
	// EndOnCounterChange: the cycle_counter role changes; the cycle whose
	// counter it held before has finished.
	EndOnCounterChange CycleEndOn = "counter_change"
	// EndOnPhaseEnters: the phase role enters one of CycleEnd.Phases.
	EndOnPhaseEnters CycleEndOn = "phase_enters"
	// EndOnNextCycleStarts: for a device whose counter numbers the running
	// cycle and whose last_result holds the verdict of the last finished
	// one, but whose end phase may pass between two polls. A cycle's
	// samples stop when the phase returns to an idle phase; its record is
	// made when the counter moves on, with the last_result read then.
	EndOnNextCycleStarts CycleEndOn = "next_cycle_starts"
)

// CycleEnd is how the end of a cycle is recognised.
type CycleEnd struct {
	On     CycleEndOn
	Phases []protocol.PhaseName // for EndOnPhaseEnters
}

// Profile is a validated register map. It is immutable after Parse and safe
// to share between units.
type Profile struct {
	Name        string
	Description string
	Vendor      string
	Model       string
	Origin      string // file path, or "builtin:<name>"

	Fields []Field
	Blocks []Block
	// RoleField maps a role to the name of the field that carries it.
	RoleField map[Role]string

	Phases     map[int]protocol.PhaseName
	Programs   map[int]string
	Results    map[int]protocol.Result
	Alarms     []AlarmBit
	AlarmTexts map[int]string
	CycleEnd   CycleEnd

	// IdlePhases are phases in which no cycle is running (samples there
	// are not part of any cycle for counter_change, phase_enters and
	// next_cycle_starts).
	IdlePhases []protocol.PhaseName
	// ProgramPhases maps, per program code, device phase codes that mean
	// something else in that program (a leak test that shows its vacuum
	// hold with the air-removal code). They take precedence over Phases.
	ProgramPhases map[int]map[int]protocol.PhaseName

	// Channels are the measured channels besides the chamber temperature
	// and pressure, in the order the roles name them.
	Channels []Channel
	// Plausible holds the plausible range of every measured role
	// (defaults from DefaultPlausible, overridden by plausible:).
	Plausible map[Role]Range
	// MaxSampleGap is the longest stretch of a cycle without a sample
	// that still counts as fully observed; 0 means the link's default
	// (3 × the poll interval).
	MaxSampleGap time.Duration
	// Criteria are the parametric criteria of programs, by program name
	// (criteria:, docs/verification.md); each is valid on its own. A
	// program without criteria is judged by criteria inferred from its
	// name or plateau.
	Criteria map[string]verify.Params

	fieldIndex map[string]int
}

// Field returns the field called name.
func (p *Profile) Field(name string) (*Field, bool) {
	i, ok := p.fieldIndex[name]
	if !ok {
		return nil, false
	}
	return &p.Fields[i], true
}

// HasRole reports whether the profile assigns a field to r.
// PhaseBlock is the index in Blocks of the block that holds the phase
// field, or -1 when the profile maps no phase.
func (p *Profile) PhaseBlock() int {
	name, ok := p.RoleField[RolePhase]
	if !ok {
		return -1
	}
	f, ok := p.Field(name)
	if !ok {
		return -1
	}
	return p.blockOf(f)
}

// blockOf is the index in Blocks of the block that covers field f, or -1.
func (p *Profile) blockOf(f *Field) int {
	for i, b := range p.Blocks {
		if b.Function == f.Function && f.Address >= b.Start && int(f.Address)+f.Span() <= int(b.Start)+int(b.Count) {
			return i
		}
	}
	return -1
}

func (p *Profile) HasRole(r Role) bool {
	if _, ok := p.RoleField[r]; ok {
		return true
	}
	for _, c := range p.Channels {
		if c.Role == r {
			return true
		}
	}
	return false
}

// FieldRoles returns the roles of every field that has one, channels
// included.
func (p *Profile) FieldRoles() map[string][]Role {
	out := map[string][]Role{}
	for _, r := range allRoles {
		if f, ok := p.RoleField[r]; ok {
			out[f] = append(out[f], r)
		}
	}
	for _, c := range p.Channels {
		out[c.Field] = append(out[c.Field], c.Role)
	}
	return out
}

// PlausibleRange returns the plausible range of a measured role.
func (p *Profile) PlausibleRange(r Role) Range {
	if rg, ok := p.Plausible[r]; ok {
		return rg
	}
	return DefaultPlausible(r)
}

// PhaseOf maps a device phase code to sterigate's vocabulary, taking the
// running program's own meanings first (program_phases). ok is false for a
// code the profile does not map (the phase is then unknown).
func (p *Profile) PhaseOf(program int, hasProgram bool, code int) (ph protocol.PhaseName, ok bool) {
	if hasProgram {
		if ph, ok := p.ProgramPhases[program][code]; ok {
			return ph, true
		}
	}
	ph, ok = p.Phases[code]
	return ph, ok
}

// IsIdle reports whether ph is one of the profile's idle phases.
func (p *Profile) IsIdle(ph protocol.PhaseName) bool {
	for _, i := range p.IdlePhases {
		if i == ph {
			return true
		}
	}
	return false
}

// ProgramName maps a program code to its name, or "code-<n>" when the
// profile does not know it (the raw code is always kept beside it).
func (p *Profile) ProgramName(code int) string {
	if n, ok := p.Programs[code]; ok {
		return n
	}
	return fmt.Sprintf("code-%d", code)
}

// ProgramCriteria returns the criteria the profile gives the program
// called name: source "default" when the profile gives only its kind,
// "profile" when it gives parameters too.
func (p *Profile) ProgramCriteria(name string) (protocol.Criteria, bool) {
	params, ok := p.Criteria[name]
	if !ok {
		return protocol.Criteria{}, false
	}
	source := verify.SourceProfile
	if len(params.Values) == 0 {
		source = verify.SourceDefault
	}
	c, err := params.Criteria(source)
	if err != nil { // Parse validated it; never hide a defect
		return protocol.Criteria{}, false
	}
	return c, true
}

// AlarmText returns the text the profile gives an alarm code, or "".
func (p *Profile) AlarmText(code int) string {
	if t, ok := p.AlarmTexts[code]; ok {
		return t
	}
	for _, a := range p.Alarms {
		if a.Code == code {
			return a.Text
		}
	}
	return ""
}
