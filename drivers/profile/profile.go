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

	"github.com/sterigate/sterigate/protocol"
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
	RolePhase              Role = "phase"               // device phase code, mapped by phases:
	RoleProgram            Role = "program"             // program code of the running cycle, mapped by programs:
	RoleCycleCounter       Role = "cycle_counter"       // counter of the current (or most recent) cycle
	RoleLastCycle          Role = "last_cycle"          // counter of the last finished cycle (latched)
	RoleLastResult         Role = "last_result"         // result code of the last finished cycle, mapped by results:
	RoleLastProgram        Role = "last_program"        // program code of the last finished cycle
	RoleAlarmCode          Role = "alarm_code"          // code of the active alarm, 0 when none
)

// allRoles lists every role in documentation order.
var allRoles = []Role{
	RoleChamberTemperature, RoleChamberPressure, RolePhase, RoleProgram,
	RoleCycleCounter, RoleLastCycle, RoleLastResult, RoleLastProgram, RoleAlarmCode,
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
	// are not part of any cycle for counter_change and phase_enters).
	IdlePhases []protocol.PhaseName

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
func (p *Profile) HasRole(r Role) bool {
	_, ok := p.RoleField[r]
	return ok
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
