package autoclave

import (
	"fmt"
	"sort"
	"strings"
)

// FaultKind names a process fault the device can suffer during one cycle.
type FaultKind string

// Process faults (issue 3, item 2). Each is documented in docs/simulator.md.
const (
	FaultAirLeak          FaultKind = "air_leak"            // chamber leaks air while under vacuum
	FaultNCG              FaultKind = "ncg"                 // non-condensable gas in the steam supply
	FaultTempSag          FaultKind = "temp_sag"            // steam supply sags during the hold
	FaultOvershoot        FaultKind = "overshoot"           // steam valve sticks open: above the band
	FaultHeatingTimeout   FaultKind = "heating_timeout"     // weak steam supply: heat-up too slow
	FaultPowerLoss        FaultKind = "power_loss"          // device dead for a while, cycle aborted
	FaultOperatorAbort    FaultKind = "operator_abort"      // someone pressed stop
	FaultSensorStuck      FaultKind = "sensor_stuck"        // a sensor freezes at its last value
	FaultSensorOutOfRange FaultKind = "sensor_out_of_range" // a sensor reads an impossible value
	FaultDoorSeal         FaultKind = "door_seal"           // door seal loses tightness
	FaultLying            FaultKind = "lying"               // reports passed whatever its data say
)

// faultInfo describes a fault kind's defaults and which parameters it takes.
type faultInfo struct {
	phase    Phase   // default phase in which it triggers (PhaseIdle: from the start)
	afterS   float64 // default delay into that phase
	durS     float64 // default duration
	params   map[string]float64
	sensor   bool // takes a sensor: temperature|pressure
	defect   bool // takes a defect (lying)
	describe string
}

var faultInfos = map[FaultKind]faultInfo{
	FaultAirLeak:          {params: map[string]float64{"rate_kpa_min": 2.5}, describe: "air leaks in below atmospheric pressure at rate_kpa_min (healthy ≈ 0.03)"},
	FaultNCG:              {params: map[string]float64{"fraction": 0.01}, describe: "each kPa of steam admitted brings fraction kPa of non-condensable gas"},
	FaultTempSag:          {phase: PhaseSterilizing, afterS: 60, durS: 600, params: map[string]float64{"depth_k": 2.5}, describe: "the plateau falls depth_k below the set point for duration"},
	FaultOvershoot:        {phase: PhaseSterilizing, afterS: 60, params: map[string]float64{"excess_k": 4.0}, describe: "the plateau rises to set point + excess_k"},
	FaultHeatingTimeout:   {params: map[string]float64{"rate_kpa_min": 8}, describe: "steam admission limited to rate_kpa_min during heat-up"},
	FaultPowerLoss:        {phase: PhaseSterilizing, afterS: 30, durS: 180, describe: "device dead (silent on every port) for duration; comes back with the cycle aborted"},
	FaultOperatorAbort:    {phase: PhaseHeating, afterS: 60, describe: "cycle aborted by the operator"},
	FaultSensorStuck:      {phase: PhaseSterilizing, afterS: 60, sensor: true, describe: "the sensor's reading freezes"},
	FaultSensorOutOfRange: {phase: PhaseHeating, afterS: 30, sensor: true, describe: "the sensor reads out of range (temperature 850.0 °C, pressure 6553.5 kPa)"},
	FaultDoorSeal:         {phase: PhaseAirRemoval, afterS: 120, describe: "door seal fails: vacuum lost, alarm 72"},
	FaultLying:            {defect: true, describe: "controller reports passed with full hold time even when its own data violate the criteria; defect temp_sag (default), ncg or short_hold"},
}

// FaultKinds lists the process fault kinds, sorted.
func FaultKinds() []FaultKind {
	kinds := make([]FaultKind, 0, len(faultInfos))
	for k := range faultInfos {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	return kinds
}

// FaultDescription says in one line what a fault kind does.
func FaultDescription(k FaultKind) string { return faultInfos[k].describe }

// Fault is one fault scheduled into one cycle. Zero fields take the kind's
// defaults (see Normalize).
type Fault struct {
	Kind FaultKind
	// Phase and AfterS place the trigger: AfterS simulated seconds after
	// the cycle first enters Phase. Faults that act on the whole cycle
	// (air_leak, ncg, heating_timeout, lying) ignore them.
	Phase  Phase
	AfterS float64
	// DurationS is how long a temp_sag or power_loss lasts.
	DurationS float64
	// Params holds the kind's numeric parameters (see FaultParams).
	Params map[string]float64
	// Sensor is "temperature" or "pressure" for the sensor faults.
	Sensor string
	// Defect is what a lying device hides: temp_sag, ncg or short_hold.
	Defect string

	hasPhase, hasAfter bool
}

// FaultParams lists the numeric parameters a kind accepts.
func FaultParams(k FaultKind) []string {
	var names []string
	for n := range faultInfos[k].params {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SetPhase places the trigger in phase p (otherwise the kind's default).
func (f *Fault) SetPhase(p Phase) { f.Phase, f.hasPhase = p, true }

// SetAfter sets the delay into the phase (otherwise the kind's default).
func (f *Fault) SetAfter(s float64) { f.AfterS, f.hasAfter = s, true }

// Normalize checks the fault and fills defaults. Errors name the field.
func (f *Fault) Normalize() error {
	info, ok := faultInfos[f.Kind]
	if !ok {
		var names []string
		for _, k := range FaultKinds() {
			names = append(names, string(k))
		}
		return fmt.Errorf("kind %q is not a fault (known: %s)", f.Kind, strings.Join(names, ", "))
	}
	if !f.hasPhase {
		f.Phase = info.phase
	}
	if !f.hasAfter {
		f.AfterS = info.afterS
	}
	if f.AfterS < 0 {
		return fmt.Errorf("after %vs is negative", f.AfterS)
	}
	if f.DurationS == 0 {
		f.DurationS = info.durS
	}
	if f.DurationS < 0 {
		return fmt.Errorf("duration %vs is negative", f.DurationS)
	}
	params := map[string]float64{}
	for k, v := range info.params {
		params[k] = v
	}
	for k, v := range f.Params {
		if _, ok := info.params[k]; !ok {
			return fmt.Errorf("parameter %q does not apply to %s (accepted: %s)", k, f.Kind, strings.Join(FaultParams(f.Kind), ", "))
		}
		if v < 0 {
			return fmt.Errorf("parameter %s=%v is negative", k, v)
		}
		params[k] = v
	}
	f.Params = params
	switch {
	case info.sensor:
		if f.Sensor == "" {
			f.Sensor = "temperature"
		}
		if f.Sensor != "temperature" && f.Sensor != "pressure" {
			return fmt.Errorf("sensor %q is not temperature or pressure", f.Sensor)
		}
	case f.Sensor != "":
		return fmt.Errorf("sensor %q does not apply to %s", f.Sensor, f.Kind)
	}
	switch {
	case info.defect:
		if f.Defect == "" {
			f.Defect = string(FaultTempSag)
		}
		if f.Defect != string(FaultTempSag) && f.Defect != string(FaultNCG) && f.Defect != "short_hold" {
			return fmt.Errorf("defect %q is not temp_sag, ncg or short_hold", f.Defect)
		}
	case f.Defect != "":
		return fmt.Errorf("defect %q does not apply to %s", f.Defect, f.Kind)
	}
	return nil
}
