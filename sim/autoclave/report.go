package autoclave

import "math"

// PhaseMark is the start of one phase, as a printer would print it.
type PhaseMark struct {
	Phase       Phase
	AtS         float64 // seconds since the cycle started
	TempC       float64 // measured
	PressureKPa float64 // measured
}

// SampleMark is one reading every 10 simulated seconds.
type SampleMark struct {
	AtS                        float64
	Phase                      Phase
	TempC, PressureKPa         float64 // measured (what the device shows)
	TrueTempC, TruePressureKPa float64 // what really was
}

// AlarmEvent is an alarm raised during the cycle.
type AlarmEvent struct {
	Code uint16
	Text string
	AtS  float64
}

// Report is everything about one finished cycle: what the device reported
// and what really happened (the ground truth gateway tests compare with).
type Report struct {
	Counter   uint32
	Program   Program
	Faults    []string
	Result    Result // as the device reports it
	AlarmCode uint16 // alarm that ended the cycle
	StartS    float64
	EndS      float64 // device clock, seconds

	Phases  []PhaseMark
	Samples []SampleMark
	Alarms  []AlarmEvent

	// The hold, as it truly was (true chamber temperature and pressure)…
	PlateauTrueMinC, PlateauTrueMaxC float64
	PlateauPMinKPa, PlateauPMaxKPa   float64
	TrueHoldS                        float64 // time at or above the set point
	MaxSatDeviationK                 float64 // largest Tsat(p) − T during the hold (positive: colder than saturated)
	// …as the device measured it…
	PlateauMeasMinC, PlateauMeasMaxC float64
	// …and as it reported it in the latched block.
	ReportedPlateauMinC, ReportedPlateauMaxC float64
	ReportedHoldS                            float64

	// The load probe, truly: its extremes over the hold, and the
	// equilibration time (from the chamber reaching the set point to the
	// load reaching it; -1 when either never did).
	LoadPlateauMinC, LoadPlateauMaxC float64
	EquilibrationS                   float64

	MaxHeatingKMin float64 // steepest heat-up, K/min
	F0             float64 // minutes at 121.1 °C equivalent (z = 10 K)

	// Leak test only.
	LeakP1KPa, LeakP2KPa, LeakRateKPaMin float64

	// TruthPassed is the verdict the physics deserve: a lying device
	// reports passed when this is false.
	TruthPassed bool

	nextSampleS               float64
	chamberAtSetS, loadAtSetS float64 // -1 until reached
}

func (r *Report) physicsPass() bool {
	if r.Result != ResultPassed {
		return false
	}
	p := r.Program
	if p.Kind == LeakTest {
		return r.LeakRateKPaMin <= leakLimitKPaMin
	}
	// As a real controller judges it: the hold counts only while at or
	// above the set point, so a short dip that paused the timer passes.
	return r.PlateauTrueMaxC <= p.SetC+p.BandK &&
		r.TrueHoldS >= p.HoldS-1 && math.Abs(r.MaxSatDeviationK) <= satLimitK
}

// Registers writes the device's register image (docs/simulator.md) into img.
func (d *Device) Registers(img *[24]uint16) {
	r := d.Read()
	*img = [24]uint16{}
	img[0] = uint16(scaled(r.TempC))
	img[1] = uint16(scaled(r.JacketC))
	img[2] = uint16(math.Round(math.Max(0, math.Min(r.PressureKPa*10, 65535))))
	img[3] = uint16(r.Phase)
	img[4] = r.Program.Code
	img[5], img[6] = uint16(r.Counter>>16), uint16(r.Counter)
	img[7] = uint16(math.Min(r.ElapsedS, 65535))
	img[8] = r.AlarmBits
	img[9] = r.AlarmCode
	img[10] = uint16(r.State)
	img[11] = uint16(math.Ceil(math.Min(r.HoldRemainingS, 65535)))
	img[12] = uint16(scaled(r.DrainC))
	img[13] = uint16(scaled(r.LoadC))
	l := d.last
	img[16], img[17] = uint16(l.Counter>>16), uint16(l.Counter)
	img[18] = uint16(l.Result)
	img[19] = l.ProgramCode
	img[20] = l.AlarmCode
	img[21] = uint16(scaled(l.PlateauMinC))
	img[22] = uint16(scaled(l.PlateauMaxC))
	img[23] = uint16(math.Round(math.Min(l.HoldSeconds, 65535)))
}

// scaled encodes a temperature as a ×0.1 signed 16-bit value, saturating.
func scaled(c float64) int16 {
	return int16(math.Round(math.Max(-3276.8, math.Min(c, 3276.7)) * 10))
}
