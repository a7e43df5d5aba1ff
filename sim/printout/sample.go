package printout

import (
	"math"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// SampleCycle returns a plausible 134 °C / 3 min porous-load cycle starting
// at start, for documentation, golden files and tests of the printer tap.
// With ResultPassed it holds 3 min 10 s in band; with ResultFailed the
// temperature sags during the hold and the device stops with alarm 84
// ("temperature not maintained"); with ResultAborted the operator aborts
// during heating (alarm 92).
func SampleCycle(result protocol.Result, counter uint32, start time.Time) Cycle {
	at := func(sec int) time.Time { return start.Add(time.Duration(sec) * time.Second) }
	c := Cycle{
		Model: "STERIGATE SIM-B17", Serial: "SG17-004211", Program: "134 Porous",
		SetpointC: 134, HoldSeconds: 180, Counter: counter, Start: start, Result: result,
	}
	c.Phases = []Mark{
		{protocol.PhasePreparation, at(0), true},
		{protocol.PhaseAirRemoval, at(35), true},
		{protocol.PhaseHeating, at(455), true},
	}
	if result == protocol.ResultAborted {
		c.Phases[2].OK = false
		c.End = at(530)
		c.AlarmCode = 92
		return c
	}
	c.Phases = append(c.Phases, Mark{protocol.PhaseSterilizing, at(680), true})
	// One sample every 30 s, as the DAC prints them.
	hold := 190
	if result == protocol.ResultFailed {
		hold = 100
	}
	c.PlateauMinC, c.PlateauMinKPa = math.Inf(1), math.Inf(1)
	c.PlateauMaxC, c.PlateauMaxKPa = math.Inf(-1), math.Inf(-1)
	for s := 0; s <= hold; s += 30 {
		t := 135.3 + 0.1*float64(s%90)/30
		p := 318.0 + float64(s%60)/30
		if result == protocol.ResultFailed && s >= 90 {
			t, p = 133.1, 295.0
		}
		c.Samples = append(c.Samples, Sample{At: at(680 + s), TempC: t, PressureKPa: p})
		c.PlateauMinC, c.PlateauMaxC = math.Min(c.PlateauMinC, t), math.Max(c.PlateauMaxC, t)
		c.PlateauMinKPa, c.PlateauMaxKPa = math.Min(c.PlateauMinKPa, p), math.Max(c.PlateauMaxKPa, p)
	}
	c.HeldSeconds = hold
	if result == protocol.ResultFailed {
		c.Phases[3].OK = false
		c.Phases = append(c.Phases, Mark{protocol.PhaseExhaust, at(680 + hold), false})
		c.End = at(680 + hold + 90)
		c.AlarmCode = 84
		return c
	}
	c.Phases = append(c.Phases,
		Mark{protocol.PhaseExhaust, at(680 + hold), true},
		Mark{protocol.PhaseDrying, at(680 + hold + 95), true},
		Mark{protocol.PhaseAirAdmission, at(680 + hold + 95 + 420), true},
		Mark{protocol.PhaseComplete, at(680 + hold + 95 + 420 + 60), true},
	)
	c.End = at(680 + hold + 95 + 420 + 60)
	return c
}
