package autoclave

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sterigate/sterigate/protocol/steam"
)

// Physical and controller constants. Values follow domain.md §1.1; where a
// range is given the middle is used.
const (
	atmKPa = 101.3

	// Air is heavier than steam and collects at the drain, where the
	// reference sensor sits: the drain sees this many times the chamber's
	// mean air partial pressure. This is why a few kPa of air show as a
	// temperature several kelvin below saturation at the drain.
	drainAirConcentration = 12

	pumpFloorKPa      = 1.5 // ultimate pressure of the vacuum pump
	evacTauS          = 20  // pump-down time constant
	pulseLowKPa       = 8   // vacuum pulse depth (7–10)
	pulseHighKPa      = 130 // steam pulse height (100–150)
	pulseInjectKPaMin = 90  // steam admission during pulses
	supplyKPaMin      = 120 // steam supply capacity when servoing
	heatKPaMin        = 45  // heat-up pressure ramp (IFU envelope ≤ 45 kPa/min)
	heatKMin          = 10  // heat-up temperature ramp (≤ 15 °C/min)
	ventKPaMin        = 150 // exhaust (≤ 170 kPa/min)
	ventTauS          = 25  // exhaust slows as it nears atmosphere
	admitTauS         = 15  // air admission through the filter
	purgeTauS         = 40  // gravity purge: air displaced through the drain
	purgeKPa          = 115 // gravity purge pressure
	exhaustEndKPa     = 110 // exhaust ends "10 % above atmospheric"
	leakStartKPa      = 6   // leak test: evacuate to ≤ 7 kPa, then close the valves
	leakEvapKPa       = 0.6 // moisture that evaporates after the valves close
	leakEvapTauS      = 60
	leakLimitKPaMin   = 0.13 // EN 285 vacuum leak limit
	ctrlOffsetK       = 1.3  // the controller aims this far above the set point
	equilibrationS    = 15
	prepS             = 30
	heatMaxS          = 600 // heating timeout
	satLimitK         = 2   // saturated-steam check (DAC error 60)
	satDebounceS      = 10
	stuckS            = 60 // a sensor frozen this long while the process moves is faulty
	completeShowS     = 20
	sensorTauS        = 6   // drain temperature follows condensation this fast
	wallTauS          = 120 // and the walls this slowly
	sampleEveryS      = 10
	jacketStandbyC    = 125
	// The load probe sits in a pack: it follows the chamber with a
	// first-order time constant of 20 s while the chamber heats, so it
	// lags the heat-up by a few kelvin. On the plateau, saturated steam
	// condensing on the colder pack heats it faster (6 s): it reaches the
	// set point within the 15 s equilibration phase, as EN 285 asks of a
	// small chamber, and sits within a few tenths of a kelvin after.
	loadTauS        = 20
	loadPlateauTauS = 6
	// The drain probe is a second, independent sensor next to the
	// controller's: it reads the same temperature, with its own noise
	// and a small calibration offset.
	drainOffsetK = -0.1
)

// Latched is the last-cycle block (registers 16–23).
type Latched struct {
	Counter     uint32
	Result      Result
	ProgramCode uint16
	AlarmCode   uint16
	PlateauMinC float64 // as the device measured (0 when no hold)
	PlateauMaxC float64
	HoldSeconds float64 // as the device counted (or claims, when lying)
}

// Config sets up one device.
type Config struct {
	// Seed makes the device's noise and its healthy leak reproducible.
	Seed uint64
	// Stream separates devices that share a Seed.
	Stream uint64
	// CounterStart is the cycle counter before the first cycle.
	CounterStart uint32
	// InstantFinish makes the device go straight back to idle when a
	// cycle ends: no complete phase for 20 s, no stopped state after a
	// failure. Its end then lasts less than any poll interval.
	InstantFinish bool
}

type sensorMode int

const (
	sensorOK sensorMode = iota
	sensorStuck
	sensorOutOfRange
)

type activeFault struct {
	Fault
	triggered bool
	endAt     float64 // clock at which a timed fault stops acting
}

// Device is one autoclave: plant plus controller. It is not safe for
// concurrent use; the simulator steps it from one goroutine and publishes
// its register image under its own lock.
type Device struct {
	rng   *rand.Rand
	clock float64 // simulated seconds since New

	// plant (true values)
	pSteam, pAir   float64
	tTrue, tJacket float64
	healthyLeak    float64 // kPa/min, this device's door seal
	evap           float64

	// sensors
	tMeas, pMeas     float64
	tMode, pMode     sensorMode
	tRaw             int16
	pRaw             uint16
	tChangedAt, pAtT float64
	pChangedAt, tAtP float64
	tJacketMeas      float64
	// the independent probes: load (lagging the chamber) and drain, with
	// their own noise stream so the controller's values stay as before
	tLoad, tLoadMeas, tDrainMeas float64
	probeRng                     *rand.Rand
	instantFinish                bool
	ctrlWalk, ctrlWalk2          float64

	// controller
	state       State
	phase       Phase
	prog        Program
	faults      []*activeFault
	counter     uint32
	cycleStart  float64
	phaseStart  float64
	firstEnter  map[Phase]float64
	pulse       int
	evacuating  bool
	heatTarget  float64
	holdDone    float64
	satBad      float64
	alarmBits   uint16
	alarmCode   uint16
	endResult   Result
	endAlarm    uint16
	leakP1      float64
	completeFor float64
	powered     bool
	powerOffFor float64
	lying       string // defect hidden by a lying device, "" if honest
	heatRefAt   float64
	heatRefT    float64

	last Latched
	rep  *Report
}

// New returns an idle device with its chamber at atmosphere.
func New(cfg Config) *Device {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Stream))
	d := &Device{
		rng:         rng,
		pAir:        atmKPa - 2,
		pSteam:      2,
		tTrue:       45,
		tJacket:     jacketStandbyC,
		healthyLeak: 0.01 + 0.04*rng.Float64(),
		powered:     true,
		counter:     cfg.CounterStart,
		firstEnter:  map[Phase]float64{},
		tLoad:       45,
		// A stream of its own: adding the probes did not change any
		// value the controller's sensors give for a seed.
		probeRng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Stream^0x9e3779b97f4a7c15)),
		instantFinish: cfg.InstantFinish,
	}
	d.last.Counter = cfg.CounterStart
	d.measure()
	d.tChangedAt, d.pChangedAt = 0, 0
	return d
}

// Clock returns the simulated seconds since New.
func (d *Device) Clock() float64 { return d.clock }

// State returns the run state.
func (d *Device) State() State { return d.state }

// Phase returns the current phase.
func (d *Device) Phase() Phase { return d.phase }

// Powered reports whether the device is alive (answers on its ports).
func (d *Device) Powered() bool { return d.powered }

// Counter returns the cycle counter of the current or most recent cycle.
func (d *Device) Counter() uint32 { return d.counter }

// Last returns the latched last-cycle block.
func (d *Device) Last() Latched { return d.last }

// Busy reports whether a cycle is running (or the device is dead mid-cycle).
func (d *Device) Busy() bool { return d.state == StateRunning || !d.powered }

// Reading is what the device currently shows.
type Reading struct {
	TempC, JacketC, PressureKPa float64 // measured
	DrainC, LoadC               float64 // the independent drain and load probes, measured
	TrueLoadC                   float64
	TrueTempC, TruePressureKPa  float64
	Phase                       Phase
	State                       State
	Program                     Program
	Counter                     uint32
	ElapsedS                    float64
	HoldRemainingS              float64
	AlarmBits, AlarmCode        uint16
}

// Read returns the current values (measured and true).
func (d *Device) Read() Reading {
	r := Reading{
		TempC: d.tMeas, JacketC: d.tJacketMeas, PressureKPa: d.pMeas,
		DrainC: d.tDrainMeas, LoadC: d.tLoadMeas, TrueLoadC: d.tLoad,
		TrueTempC: d.tTrue, TruePressureKPa: d.pSteam + d.pAir,
		Phase: d.phase, State: d.state, Program: d.prog, Counter: d.counter,
		AlarmBits: d.alarmBits, AlarmCode: d.alarmCode,
	}
	if d.state == StateRunning {
		r.ElapsedS = d.clock - d.cycleStart
		if d.phase == PhaseSterilizing {
			r.HoldRemainingS = math.Max(0, d.prog.HoldS-d.holdDone)
		}
	}
	return r
}

// Start begins a cycle of prog with the given faults. It fails when a
// cycle is running or a fault is invalid.
func (d *Device) Start(prog Program, faults []Fault) error {
	if d.Busy() {
		return fmt.Errorf("device busy: cycle %d is running", d.counter)
	}
	d.faults = d.faults[:0]
	d.lying = ""
	for i := range faults {
		f := faults[i]
		if err := f.Normalize(); err != nil {
			return fmt.Errorf("faults[%d]: %w", i, err)
		}
		d.faults = append(d.faults, &activeFault{Fault: f})
		if f.Kind == FaultLying {
			d.lying = f.Defect
		}
	}
	d.prog = prog
	d.counter++
	d.state = StateRunning
	d.cycleStart = d.clock
	d.alarmBits, d.alarmCode = 0, 0
	d.endResult, d.endAlarm = ResultNone, 0
	d.pulse, d.evacuating, d.holdDone, d.satBad, d.leakP1 = 0, true, 0, 0, 0
	d.tMode, d.pMode = sensorOK, sensorOK
	clear(d.firstEnter)
	names := make([]string, 0, len(faults))
	for _, f := range d.faults {
		names = append(names, string(f.Kind))
	}
	d.rep = &Report{Counter: d.counter, Program: prog, Faults: names, StartS: d.clock,
		PlateauTrueMinC: math.Inf(1), PlateauTrueMaxC: math.Inf(-1),
		LoadPlateauMinC: math.Inf(1), LoadPlateauMaxC: math.Inf(-1),
		chamberAtSetS: -1, loadAtSetS: -1,
		PlateauMeasMinC: math.Inf(1), PlateauMeasMaxC: math.Inf(-1)}
	d.enter(PhasePreparation)
	return nil
}

func (d *Device) enter(p Phase) {
	d.phase = p
	d.phaseStart = d.clock
	if _, seen := d.firstEnter[p]; !seen {
		d.firstEnter[p] = d.clock
	}
	if d.rep != nil && d.state == StateRunning {
		d.rep.Phases = append(d.rep.Phases, PhaseMark{Phase: p, AtS: d.clock - d.cycleStart, TempC: d.tMeas, PressureKPa: d.pMeas})
	}
}

// fault finds an active fault of kind k that has triggered.
func (d *Device) fault(k FaultKind) *activeFault {
	for _, f := range d.faults {
		if f.Kind == k && f.triggered {
			return f
		}
	}
	return nil
}

// wholeCycle faults act from the start of the cycle.
func wholeCycle(k FaultKind) bool {
	return k == FaultAirLeak || k == FaultNCG || k == FaultHeatingTimeout || k == FaultLying
}

// Step advances the device by dt simulated seconds. When a cycle ends
// during the step it returns its report (the latched block is set).
func (d *Device) Step(dt float64) *Report {
	d.clock += dt
	if !d.powered {
		return d.stepUnpowered(dt)
	}
	var done *Report
	switch d.state {
	case StateRunning:
		d.triggerFaults()
		if !d.powered {
			return nil
		}
		act := d.control(dt)
		d.plant(dt, act)
		d.measure()
		d.record(dt)
		done = d.supervise(dt)
	default:
		if d.phase == PhaseComplete {
			d.completeFor -= dt
			if d.completeFor <= 0 {
				d.phase = PhaseIdle
			}
		}
		act := actuator{mode: actClosed}
		if p := d.pSteam + d.pAir; math.Abs(p-atmKPa) > 1 {
			act.mode = actVent
		}
		d.plant(dt, act)
		d.measure()
	}
	return done
}

func (d *Device) stepUnpowered(dt float64) *Report {
	// Valves closed, heaters off: the chamber cools and its steam condenses.
	d.tTrue += (40 - d.tTrue) * (1 - math.Exp(-dt/900))
	d.tJacket += (40 - d.tJacket) * (1 - math.Exp(-dt/1800))
	d.tLoad += (d.tTrue - d.tLoad) * (1 - math.Exp(-dt/loadTauS))
	if ps := steam.PressureKPa(d.tTrue); d.pSteam > ps {
		d.pSteam = ps
	}
	d.addLeak(dt)
	d.powerOffFor -= dt
	if d.powerOffFor > 0 {
		return nil
	}
	// Power is back: the controller finds its cycle interrupted.
	d.powered = true
	d.measure()
	d.raise(AlarmPower)
	d.endResult, d.endAlarm = ResultAborted, AlarmPower.Code
	d.enter(PhaseFault)
	return d.finish()
}

func (d *Device) triggerFaults() {
	for _, f := range d.faults {
		if f.triggered {
			if f.endAt > 0 && d.clock >= f.endAt {
				f.endAt = -1 // finished acting (temp_sag)
			}
			continue
		}
		if wholeCycle(f.Kind) {
			f.triggered = true
			continue
		}
		entered, ok := d.firstEnter[f.Phase]
		if !ok || d.clock < entered+f.AfterS {
			continue
		}
		f.triggered = true
		if f.DurationS > 0 {
			f.endAt = d.clock + f.DurationS
		}
		switch f.Kind {
		case FaultPowerLoss:
			d.powered = false
			d.powerOffFor = f.DurationS
		case FaultOperatorAbort:
			d.fail(AlarmOperatorAbort, ResultAborted, false)
		case FaultDoorSeal:
			d.fail(AlarmDoorSeal, ResultFailed, false)
		case FaultSensorStuck:
			if f.Sensor == "pressure" {
				d.pMode = sensorStuck
			} else {
				d.tMode = sensorStuck
			}
		case FaultSensorOutOfRange:
			if f.Sensor == "pressure" {
				d.pMode = sensorOutOfRange
			} else {
				d.tMode = sensorOutOfRange
			}
		}
	}
}

// timedActive reports whether a timed fault of kind k is acting now.
func (d *Device) timedActive(k FaultKind) (*activeFault, bool) {
	f := d.fault(k)
	return f, f != nil && f.endAt >= 0
}

func (d *Device) raise(a Alarm) {
	d.alarmBits |= 1 << a.Bit
	d.alarmCode = a.Code
	if d.rep != nil {
		d.rep.Alarms = append(d.rep.Alarms, AlarmEvent{Code: a.Code, Text: a.Text, AtS: d.clock - d.cycleStart})
	}
}

// fail stops the cycle on an alarm: the chamber is brought back to
// atmosphere (phase fault), then the cycle ends with result. A lying
// device ignores process alarms (band, hold, saturation).
func (d *Device) fail(a Alarm, result Result, process bool) {
	if d.phase == PhaseFault || d.state != StateRunning {
		return
	}
	if process && d.lying != "" {
		return
	}
	d.raise(a)
	d.endResult, d.endAlarm = result, a.Code
	d.enter(PhaseFault)
}

type actMode int

const (
	actClosed actMode = iota
	actEvacuate
	actInject // steam up to target at rate
	actServo  // steam in or out towards target
	actVent   // towards atmosphere (air in when below it)
	actPurge  // gravity: steam in at the top, air out at the drain
)

type actuator struct {
	mode   actMode
	target float64 // kPa
	rate   float64 // kPa/min
}

func (d *Device) phaseTime() float64 { return d.clock - d.phaseStart }

// holdTempC is the drain temperature the controller aims at, with the
// small wander a real steam valve gives, and the plateau faults.
func (d *Device) holdTempC() float64 {
	t := d.prog.SetC + ctrlOffsetK + 0.25*math.Sin(2*math.Pi*(d.clock-d.cycleStart)/47) + d.ctrlWalk
	if f, ok := d.timedActive(FaultTempSag); ok {
		t = d.prog.SetC - f.Params["depth_k"]
	}
	if d.lying == string(FaultTempSag) && d.phase == PhaseSterilizing {
		if pt := d.phaseTime(); pt >= 60 && pt < 105 {
			t = d.prog.SetC - 1.5
		}
	}
	if f := d.fault(FaultOvershoot); f != nil {
		t = d.prog.SetC + f.Params["excess_k"]
	}
	return t
}

func (d *Device) localAirKPa() float64 {
	p := d.pSteam + d.pAir
	return math.Min(0.9*p, drainAirConcentration*d.pAir)
}

func (d *Device) control(dt float64) actuator {
	p := d.pSteam + d.pAir
	pt := d.phaseTime()
	switch d.phase {
	case PhasePreparation:
		if pt >= prepS {
			d.enter(PhaseAirRemoval)
		}
		return actuator{mode: actClosed}
	case PhaseAirRemoval:
		switch d.prog.Kind {
		case LeakTest:
			if p <= leakStartKPa {
				d.evap = 0
				d.enter(PhaseLeakTest)
				return actuator{mode: actClosed}
			}
			return actuator{mode: actEvacuate}
		case Gravity:
			if pt >= 300 {
				d.startHeating()
			}
			return actuator{mode: actPurge, target: purgeKPa}
		}
		if d.evacuating {
			if p <= pulseLowKPa {
				d.evacuating = false
			}
			return actuator{mode: actEvacuate}
		}
		if p >= pulseHighKPa-0.5 {
			d.pulse++
			if d.pulse >= d.prog.Pulses {
				d.startHeating()
				return actuator{mode: actClosed}
			}
			d.evacuating = true
		}
		return actuator{mode: actInject, target: pulseHighKPa, rate: pulseInjectKPaMin}
	case PhaseHeating:
		rate := float64(heatKPaMin)
		if f := d.fault(FaultHeatingTimeout); f != nil {
			rate = math.Min(rate, f.Params["rate_kpa_min"])
		}
		goal := steam.PressureKPa(d.holdTempC()) + d.localAirKPa()
		next := math.Min(d.heatTarget+rate/60*dt, steam.PressureKPa(steam.TempC(d.heatTarget)+heatKMin/60.0*dt))
		d.heatTarget = math.Min(next, math.Max(goal, d.heatTarget))
		if d.tMeas >= d.prog.SetC {
			d.enter(PhaseEquilibration)
		}
		return actuator{mode: actServo, target: d.heatTarget}
	case PhaseEquilibration:
		if pt >= equilibrationS {
			d.enter(PhaseSterilizing)
		}
		return d.holdActuator()
	case PhaseSterilizing:
		hold := d.prog.HoldS
		if d.lying == "short_hold" {
			hold /= 2
		}
		if d.holdDone >= hold {
			d.enter(PhaseExhaust)
			return actuator{mode: actVent}
		}
		return d.holdActuator()
	case PhaseExhaust:
		if p <= exhaustEndKPa {
			d.enter(PhaseDrying)
		}
		return actuator{mode: actVent}
	case PhaseDrying:
		if pt >= d.prog.DryS && (d.prog.Kind == Gravity || p <= 7) {
			d.enter(PhaseAirAdmission)
		}
		if d.prog.Kind == Gravity {
			return actuator{mode: actVent}
		}
		return actuator{mode: actEvacuate}
	case PhaseAirAdmission:
		if p >= atmKPa-1 {
			d.endResult = ResultPassed
			return actuator{mode: actVent}
		}
		return actuator{mode: actVent}
	case PhaseLeakTest:
		if pt >= 300 && d.leakP1 == 0 {
			d.leakP1 = d.pInternal()
			d.rep.LeakP1KPa = d.leakP1
		}
		if pt >= 900 {
			p2 := d.pInternal()
			rate := (p2 - d.leakP1) / 10
			d.rep.LeakP2KPa, d.rep.LeakRateKPaMin = p2, rate
			if rate > leakLimitKPaMin {
				d.fail(AlarmLeakTest, ResultFailed, true)
				return actuator{mode: actVent}
			}
			d.enter(PhaseAirAdmission)
			return actuator{mode: actVent}
		}
		return actuator{mode: actClosed}
	case PhaseFault:
		return actuator{mode: actVent}
	}
	return actuator{mode: actClosed}
}

func (d *Device) startHeating() {
	d.heatTarget = d.pSteam + d.pAir
	d.enter(PhaseHeating)
}

func (d *Device) holdActuator() actuator {
	// The controller servoes on the drain temperature: it admits steam
	// until the drain reads its target, whatever air there is.
	return actuator{mode: actServo, target: steam.PressureKPa(d.holdTempC()) + d.localAirKPa()}
}

// pInternal is the pressure as the controller's own (unrounded) input sees it.
func (d *Device) pInternal() float64 { return d.pMeas }

func (d *Device) ncgFraction() float64 {
	if f := d.fault(FaultNCG); f != nil {
		return f.Params["fraction"]
	}
	if d.lying == string(FaultNCG) {
		return 0.01
	}
	return 0
}

func (d *Device) admitSteam(kpa float64) {
	if kpa <= 0 {
		return
	}
	ncg := d.ncgFraction()
	d.pSteam += kpa * (1 - ncg)
	d.pAir += kpa * ncg
}

// removeGas takes kpa out of the chamber, steam and air in proportion.
func (d *Device) removeGas(kpa float64) {
	p := d.pSteam + d.pAir
	if kpa <= 0 || p <= 0 {
		return
	}
	f := math.Max(0, (p-kpa)/p)
	d.pSteam *= f
	d.pAir *= f
}

func (d *Device) leakRate() float64 {
	rate := d.healthyLeak
	if f := d.fault(FaultAirLeak); f != nil {
		rate += f.Params["rate_kpa_min"]
	}
	if d.fault(FaultDoorSeal) != nil {
		rate += 60
	}
	return rate
}

// addLeak lets air in while the chamber is below atmospheric pressure.
func (d *Device) addLeak(dt float64) {
	p := d.pSteam + d.pAir
	if p >= atmKPa {
		return
	}
	drive := math.Min(1, (atmKPa-p)/(atmKPa-10))
	d.pAir += math.Min(atmKPa-p, d.leakRate()/60*dt*drive)
}

func (d *Device) plant(dt float64, act actuator) {
	p := d.pSteam + d.pAir
	switch act.mode {
	case actEvacuate:
		next := pumpFloorKPa + (p-pumpFloorKPa)*math.Exp(-dt/evacTauS)
		d.removeGas(p - next)
	case actInject:
		d.admitSteam(math.Min(act.rate/60*dt, act.target-p))
	case actServo:
		up := supplyKPaMin / 60.0 * dt
		if d.phase == PhaseHeating {
			if f := d.fault(FaultHeatingTimeout); f != nil {
				up = f.Params["rate_kpa_min"] / 60 * dt
			}
		}
		if diff := act.target - p; diff > 0 {
			d.admitSteam(math.Min(diff, up))
		} else {
			d.removeGas(math.Min(-diff, ventKPaMin/60.0*dt))
		}
	case actVent:
		if p > atmKPa {
			step := math.Min(ventKPaMin/60.0*dt, (p-atmKPa)*(1-math.Exp(-dt/ventTauS)))
			d.removeGas(step)
		} else {
			d.pAir += (atmKPa - p) * (1 - math.Exp(-dt/admitTauS))
		}
	case actPurge:
		// Steam pushes air out through the drain at about purge pressure.
		out := d.pAir * (1 - math.Exp(-dt/purgeTauS))
		d.pAir -= out
		if diff := act.target - (d.pSteam + d.pAir); diff > 0 {
			d.admitSteam(math.Min(diff, supplyKPaMin/60.0*dt))
		}
	}
	if d.phase == PhaseLeakTest {
		// Moisture left in the chamber evaporates after the valves close;
		// that is what the 5 min equalisation waits out.
		add := (leakEvapKPa - d.evap) * (1 - math.Exp(-dt/leakEvapTauS))
		d.evap += add
		d.pSteam += add
	}
	d.addLeak(dt)

	// Drain temperature: on the saturation line of the steam's local
	// partial pressure when steam condenses there, else it drifts with
	// the walls and load.
	floor := 45.0
	switch d.phase {
	case PhaseAirRemoval, PhaseLeakTest, PhaseHeating, PhaseEquilibration, PhaseSterilizing, PhaseExhaust:
		floor = 40
	case PhaseDrying:
		floor = 52
		if d.prog.Kind == Gravity {
			floor = 80
		}
	}
	local := d.pSteam + d.pAir - d.localAirKPa()
	target, tau := floor, float64(wallTauS)
	if local > 1 {
		if ts := steam.TempC(local); ts > floor {
			target, tau = ts, sensorTauS
		}
	}
	d.tTrue += (target - d.tTrue) * (1 - math.Exp(-dt/tau))
	jacket := float64(jacketStandbyC)
	if d.state == StateRunning && d.prog.Kind != LeakTest {
		jacket = d.prog.SetC + 1
	}
	d.tJacket += (jacket - d.tJacket) * (1 - math.Exp(-dt/180))
	loadTau := float64(loadTauS)
	if d.phase == PhaseEquilibration || d.phase == PhaseSterilizing {
		loadTau = loadPlateauTauS
	}
	d.tLoad += (d.tTrue - d.tLoad) * (1 - math.Exp(-dt/loadTau))
	// The controller's wander: a bounded random walk.
	d.ctrlWalk = math.Max(-0.15, math.Min(0.15, d.ctrlWalk+0.02*d.rng.NormFloat64()*math.Sqrt(dt)))
}

func (d *Device) measure() {
	p := d.pSteam + d.pAir
	switch d.tMode {
	case sensorOK:
		d.tMeas = d.tTrue + 0.05*d.rng.NormFloat64()
	case sensorOutOfRange:
		d.tMeas = 850
	}
	switch d.pMode {
	case sensorOK:
		d.pMeas = math.Max(0, p+(0.02+0.0003*p)*d.rng.NormFloat64())
	case sensorOutOfRange:
		d.pMeas = 6553.5
	}
	d.tJacketMeas = d.tJacket + 0.1*d.rng.NormFloat64()
	d.tDrainMeas = d.tTrue + drainOffsetK + 0.05*d.probeRng.NormFloat64()
	d.tLoadMeas = d.tLoad + 0.05*d.probeRng.NormFloat64()
	if raw := int16(math.Round(d.tMeas * 10)); raw != d.tRaw {
		d.tRaw, d.tChangedAt, d.pAtT = raw, d.clock, d.pMeas
	}
	if raw := uint16(math.Round(math.Min(d.pMeas*10, 65535))); raw != d.pRaw {
		d.pRaw, d.pChangedAt, d.tAtP = raw, d.clock, d.tMeas
	}
}

// supervise is the controller's watchdog: sensors, timeouts, the hold
// timer and the release checks. It ends the cycle when its end is reached.
func (d *Device) supervise(dt float64) *Report {
	if d.phase != PhaseFault {
		switch {
		case d.tMeas < -20 || d.tMeas > 200:
			d.fail(AlarmTempSensor, ResultFailed, false)
		case d.pMeas < 0 || d.pMeas > 600:
			d.fail(AlarmPressureSensor, ResultFailed, false)
		case d.clock-d.tChangedAt >= stuckS && math.Abs(d.pMeas-d.pAtT) > 30:
			d.fail(AlarmTempSensor, ResultFailed, false)
		case d.clock-d.pChangedAt >= stuckS && math.Abs(d.tMeas-d.tAtP) > 10:
			d.fail(AlarmPressureSensor, ResultFailed, false)
		}
	}
	switch d.phase {
	case PhaseHeating:
		if d.phaseTime() > heatMaxS {
			d.fail(AlarmHeatingTimeout, ResultFailed, false)
		}
	case PhaseSterilizing:
		if d.tMeas >= d.prog.SetC || d.lying != "" {
			d.holdDone += dt
		}
		if d.tMeas > d.prog.SetC+d.prog.BandK {
			d.fail(AlarmTempHigh, ResultFailed, true)
		}
		if d.tMeas < steam.TempC(math.Max(1, d.pMeas))-satLimitK {
			d.satBad += dt
		} else {
			d.satBad = 0
		}
		if d.satBad >= satDebounceS {
			d.fail(AlarmAir, ResultFailed, true)
		}
		if d.phaseTime() > d.prog.HoldS+math.Max(180, d.prog.HoldS/2) && d.holdDone < d.prog.HoldS {
			d.fail(AlarmTempLow, ResultFailed, true)
		}
	case PhaseAirAdmission:
		if d.endResult == ResultPassed {
			return d.finish()
		}
	case PhaseFault:
		if p := d.pSteam + d.pAir; math.Abs(p-atmKPa) < 3 {
			return d.finish()
		}
	}
	return nil
}

// record keeps the cycle's statistics for the report.
func (d *Device) record(dt float64) {
	r := d.rep
	at := d.clock - d.cycleStart
	if at >= r.nextSampleS {
		r.Samples = append(r.Samples, SampleMark{AtS: at, Phase: d.phase, TempC: d.tMeas, PressureKPa: d.pMeas,
			TrueTempC: d.tTrue, TruePressureKPa: d.pSteam + d.pAir})
		r.nextSampleS = at + sampleEveryS
	}
	if d.tTrue >= 100 {
		r.F0 += dt / 60 * math.Pow(10, (d.tTrue-121.1)/10)
	}
	if d.phase == PhaseHeating {
		// The heat-up envelope is a rate per minute: measure it over 30 s.
		if d.heatRefAt == 0 {
			d.heatRefAt, d.heatRefT = at, d.tTrue
		} else if span := at - d.heatRefAt; span >= 30 {
			if rate := (d.tTrue - d.heatRefT) / span * 60; rate > r.MaxHeatingKMin {
				r.MaxHeatingKMin = rate
			}
			d.heatRefAt, d.heatRefT = at, d.tTrue
		}
	}
	switch d.phase {
	case PhaseHeating, PhaseEquilibration, PhaseSterilizing:
		if r.chamberAtSetS < 0 && d.tTrue >= d.prog.SetC {
			r.chamberAtSetS = at
		}
		if r.loadAtSetS < 0 && d.tLoad >= d.prog.SetC {
			r.loadAtSetS = at
		}
	}
	if d.phase != PhaseSterilizing {
		return
	}
	r.LoadPlateauMinC = math.Min(r.LoadPlateauMinC, d.tLoad)
	r.LoadPlateauMaxC = math.Max(r.LoadPlateauMaxC, d.tLoad)
	p := d.pSteam + d.pAir
	r.PlateauTrueMinC = math.Min(r.PlateauTrueMinC, d.tTrue)
	r.PlateauTrueMaxC = math.Max(r.PlateauTrueMaxC, d.tTrue)
	r.PlateauMeasMinC = math.Min(r.PlateauMeasMinC, d.tMeas)
	r.PlateauMeasMaxC = math.Max(r.PlateauMeasMaxC, d.tMeas)
	if r.PlateauPMinKPa == 0 || p < r.PlateauPMinKPa {
		r.PlateauPMinKPa = p
	}
	r.PlateauPMaxKPa = math.Max(r.PlateauPMaxKPa, p)
	dev := steam.TempC(p) - d.tTrue
	if math.Abs(dev) > math.Abs(r.MaxSatDeviationK) {
		r.MaxSatDeviationK = dev
	}
	if d.tTrue >= d.prog.SetC {
		r.TrueHoldS += dt
	}
}

// finish ends the cycle: latches the last-cycle block and returns the report.
func (d *Device) finish() *Report {
	r := d.rep
	d.rep = nil
	result := d.endResult
	if result == ResultNone {
		result = ResultFailed
	}
	d.last = Latched{Counter: d.counter, Result: result, ProgramCode: d.prog.Code, AlarmCode: d.endAlarm, HoldSeconds: d.holdDone}
	if d.lying != "" && result == ResultPassed {
		d.last.HoldSeconds = d.prog.HoldS
	}
	if r.PlateauMeasMinC <= r.PlateauMeasMaxC {
		d.last.PlateauMinC, d.last.PlateauMaxC = r.PlateauMeasMinC, r.PlateauMeasMaxC
	} else {
		r.PlateauTrueMinC, r.PlateauTrueMaxC, r.PlateauMeasMinC, r.PlateauMeasMaxC = 0, 0, 0, 0
		r.LoadPlateauMinC, r.LoadPlateauMaxC = 0, 0
	}
	r.EquilibrationS = -1
	if r.chamberAtSetS >= 0 && r.loadAtSetS >= 0 {
		r.EquilibrationS = r.loadAtSetS - r.chamberAtSetS
	}
	r.Result, r.AlarmCode, r.EndS = result, d.endAlarm, d.clock
	r.ReportedHoldS = d.last.HoldSeconds
	r.ReportedPlateauMinC, r.ReportedPlateauMaxC = d.last.PlateauMinC, d.last.PlateauMaxC
	r.TruthPassed = r.physicsPass()
	switch {
	case d.instantFinish:
		d.state, d.phase = StateIdle, PhaseIdle
	case result == ResultPassed:
		d.state = StateIdle
		d.phase = PhaseComplete
		d.completeFor = completeShowS
	default:
		d.state = StateStopped
		d.phase = PhaseFault
	}
	d.heatRefAt = 0
	return r
}
