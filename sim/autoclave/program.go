// Package autoclave models one steam sterilizer: the chamber physics (steam
// and air partial pressures, a drain temperature that sits on the IAPWS-IF97
// saturation line) and the device's own controller (phases, hold timer,
// band and saturated-steam checks, alarms, the latched last-cycle block).
//
// It has no clock of its own: the owner calls Step with a simulated time
// step, so tests drive whole cycles deterministically in microseconds and
// the simulator steps hundreds of devices from one goroutine.
package autoclave

import (
	"fmt"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// Kind is how a program removes air and what it is for.
type Kind int

const (
	// Prevacuum programs remove air with fractionated vacuum pulses.
	Prevacuum Kind = iota
	// Gravity programs displace air downwards through the drain with steam.
	Gravity
	// LeakTest is the vacuum (air-leak) test: no steam at all.
	LeakTest
)

// Program is one sterilization program the device can run. The codes are
// the register-map contract of docs/simulator.md.
type Program struct {
	Code   uint16
	Name   string
	Kind   Kind
	SetC   float64 // sterilization temperature (lower edge of the band), °C
	BandK  float64 // width of the band above SetC, K
	HoldS  float64 // holding time, s
	Pulses int     // vacuum pulses during air removal (prevacuum only)
	DryS   float64 // drying time, s
}

// Programs returns every program, in code order.
func Programs() []Program {
	return []Program{
		{Code: 1, Name: "134-porous", Kind: Prevacuum, SetC: 134, BandK: 3, HoldS: 180, Pulses: 4, DryS: 480},
		{Code: 2, Name: "134-prion", Kind: Prevacuum, SetC: 134, BandK: 3, HoldS: 1080, Pulses: 4, DryS: 600},
		{Code: 3, Name: "121-15", Kind: Prevacuum, SetC: 121, BandK: 3, HoldS: 900, Pulses: 4, DryS: 600},
		{Code: 4, Name: "121-20", Kind: Prevacuum, SetC: 121, BandK: 3, HoldS: 1200, Pulses: 4, DryS: 600},
		{Code: 5, Name: "bowie-dick", Kind: Prevacuum, SetC: 134, BandK: 3, HoldS: 210, Pulses: 3, DryS: 60},
		{Code: 6, Name: "leak-test", Kind: LeakTest},
		{Code: 7, Name: "gravity-121", Kind: Gravity, SetC: 121, BandK: 3, HoldS: 1800, DryS: 300},
	}
}

// ProgramByName finds a program by its name (as in the register map).
func ProgramByName(name string) (Program, error) {
	var names []string
	for _, p := range Programs() {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Program{}, fmt.Errorf("unknown program %q (known: %s)", name, strings.Join(names, ", "))
}

// ProgramByCode finds a program by its register code.
func ProgramByCode(code uint16) (Program, bool) {
	for _, p := range Programs() {
		if p.Code == code {
			return p, true
		}
	}
	return Program{}, false
}

// Phase is the device's phase code (register 3).
type Phase uint16

// Phase codes of the register map.
const (
	PhaseIdle Phase = iota
	PhasePreparation
	PhaseAirRemoval
	PhaseHeating
	PhaseEquilibration
	PhaseSterilizing
	PhaseExhaust
	PhaseDrying
	PhaseAirAdmission
	PhaseLeakTest
	PhaseComplete
	PhaseFault
	PhaseCooling
)

var phaseNames = [...]protocol.PhaseName{
	protocol.PhaseIdle, protocol.PhasePreparation, protocol.PhaseAirRemoval,
	protocol.PhaseHeating, protocol.PhaseEquilibrate, protocol.PhaseSterilizing,
	protocol.PhaseExhaust, protocol.PhaseDrying, protocol.PhaseAirAdmission,
	protocol.PhaseLeakTest, protocol.PhaseComplete, protocol.PhaseFault, protocol.PhaseCooling,
}

// Name is the phase's word in sterigate's phase vocabulary.
func (p Phase) Name() protocol.PhaseName {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return protocol.PhaseUnknown
}

// PhaseByName finds a phase code by its vocabulary name.
func PhaseByName(name string) (Phase, error) {
	for i, n := range phaseNames {
		if string(n) == name {
			return Phase(i), nil
		}
	}
	return 0, fmt.Errorf("unknown phase %q", name)
}

// State is the device's run state (register 10).
type State uint16

// Run states.
const (
	StateIdle    State = 0
	StateRunning State = 1
	StateStopped State = 2 // stopped on a fault, until the next cycle starts
)

// Result is a cycle verdict code (register 18).
type Result uint16

// Results.
const (
	ResultNone    Result = 0
	ResultPassed  Result = 1
	ResultFailed  Result = 2
	ResultAborted Result = 3
)

// String gives the protocol spelling of the result.
func (r Result) String() string {
	switch r {
	case ResultPassed:
		return string(protocol.ResultPassed)
	case ResultFailed:
		return string(protocol.ResultFailed)
	case ResultAborted:
		return string(protocol.ResultAborted)
	}
	return "none"
}

// Alarm is one of the device's alarms: its bit in register 8 and its code
// (DAC Universal numbering where one exists, domain.md §4).
type Alarm struct {
	Bit  uint
	Code uint16
	Text string
}

// The alarms of the register map.
var (
	AlarmDoorSeal       = Alarm{0, 72, "door / seal"}
	AlarmTempHigh       = Alarm{1, 66, "temperature above band"}
	AlarmTempLow        = Alarm{2, 84, "temperature below band, hold not maintained"}
	AlarmPressureSensor = Alarm{3, 85, "pressure sensor fault"}
	AlarmTempSensor     = Alarm{4, 83, "temperature sensor fault"}
	AlarmHeatingTimeout = Alarm{5, 62, "heating timeout"}
	AlarmAir            = Alarm{6, 60, "air / non-condensable gas"}
	AlarmLeakTest       = Alarm{7, 91, "vacuum leak test failed"}
	AlarmPower          = Alarm{8, 92, "power interrupted"}
	AlarmOperatorAbort  = Alarm{9, 93, "operator abort"}
)

// Alarms lists every alarm in bit order.
func Alarms() []Alarm {
	return []Alarm{AlarmDoorSeal, AlarmTempHigh, AlarmTempLow, AlarmPressureSensor,
		AlarmTempSensor, AlarmHeatingTimeout, AlarmAir, AlarmLeakTest, AlarmPower, AlarmOperatorAbort}
}
