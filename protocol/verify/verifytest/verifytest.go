// Package verifytest builds synthetic cycle records for the tests of the
// parametric check and of the tools and gateway code that run it. A cycle
// is described phase by phase as a function of time and sampled on a fixed
// grid, so every figure the check computes can be worked out by hand.
package verifytest

import (
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
)

// T0 is when every synthetic cycle starts.
var T0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// Channel ids of the probes Cycle adds when Probes is set.
const (
	Drain = "drain_temp"
	Load  = "load_1"
)

// Reading is what the chamber shows at one instant.
type Reading struct {
	TempC       float64
	PressureKPa float64
	Ch          map[string]float64 // other channels by id; nil for none
}

// Saturated is a chamber full of saturated steam at tempC.
func Saturated(tempC float64) Reading {
	return Reading{TempC: tempC, PressureKPa: steam.PressureKPa(tempC)}
}

// Builder writes a record phase by phase.
type Builder struct {
	rec   protocol.CycleRecord
	every time.Duration
	next  time.Time // the next sample instant on the grid
	now   time.Time // the end of the last phase written
}

// New starts a record of program sampled every interval from T0: a
// complete record whose end the gateway saw, with the device's result
// passed.
func New(program string, every time.Duration) *Builder {
	return &Builder{
		rec: protocol.CycleRecord{
			Schema: protocol.CycleSchema, ID: protocol.CycleID("dax", "autoclave-1", 1), Gateway: "cssd-gw-1",
			Site: "dax", Device: "autoclave-1", Cycle: 1, Program: program, StartedAt: T0,
			Result: protocol.ResultPassed, Complete: true, EndSeen: true, Source: "modbus-tcp",
			Alarms: []protocol.Alarm{},
		},
		every: every, next: T0, now: T0,
	}
}

// Channels declares the record's other channels.
func (b *Builder) Channels(chs ...protocol.Channel) *Builder {
	b.rec.Channels = append(b.rec.Channels, chs...)
	return b
}

// Phase appends a phase lasting d, sampling f (given the time since the
// phase began) at every grid instant inside it.
func (b *Builder) Phase(name protocol.PhaseName, d time.Duration, f func(elapsed time.Duration) Reading) *Builder {
	end := b.now.Add(d)
	for ; b.next.Before(end); b.next = b.next.Add(b.every) {
		r := f(b.next.Sub(b.now))
		b.rec.Samples = append(b.rec.Samples, protocol.Sample{At: b.next, TempC: r.TempC, PressureKPa: r.PressureKPa, Phase: name, Ch: r.Ch})
	}
	b.now = end
	return b
}

// Record returns the record: phases cut from the samples as the drivers
// cut them (a phase ends where the next begins), ended at the end of the
// last phase.
func (b *Builder) Record() protocol.CycleRecord {
	rec := b.rec
	rec.Samples = append([]protocol.Sample(nil), b.rec.Samples...)
	rec.EndedAt = b.now
	rec.Phases = []protocol.Phase{}
	for _, s := range rec.Samples {
		if n := len(rec.Phases); n == 0 || rec.Phases[n-1].Name != s.Phase {
			if n > 0 {
				rec.Phases[n-1].End = s.At
			}
			rec.Phases = append(rec.Phases, protocol.Phase{Name: s.Phase, Start: s.At})
		}
		rec.Phases[len(rec.Phases)-1].Observe(s)
	}
	if n := len(rec.Phases); n > 0 {
		rec.Phases[n-1].End = rec.EndedAt
	}
	return rec
}

// Cycle describes a healthy prevacuum steam cycle: air removal, heating
// in a straight line from 100 °C to the set point, equilibration and hold
// at HoldTempC, exhaust in a straight line back to 100 °C, drying, air
// admission. The steam is saturated throughout. With Probes, a drain probe
// reads 0.2 K below the chamber and a load probe follows the chamber
// LoadLag late, 0.1 K below it. Durations are wall-clock.
type Cycle struct {
	Program   string
	SetPointC float64       // default 134
	HoldTempC float64       // default SetPointC + 1
	Every     time.Duration // sample interval; default 1 s
	Heat      time.Duration // default 2 min
	Equil     time.Duration // equilibration phase; default 10 s
	Hold      time.Duration // default 3 min
	Probes    bool
	LoadLag   time.Duration // default 5 s
	// During changes the hold's readings (a sag, air in the chamber);
	// elapsed is the time since the hold began.
	During    func(elapsed time.Duration, r *Reading)
	TimeScale float64
	Result    protocol.Result // the device's result; default passed
}

// Record builds the cycle.
func (c Cycle) Record() protocol.CycleRecord {
	if c.SetPointC == 0 {
		c.SetPointC = 134
	}
	if c.HoldTempC == 0 {
		c.HoldTempC = c.SetPointC + 1
	}
	if c.Every == 0 {
		c.Every = time.Second
	}
	if c.Heat == 0 {
		c.Heat = 2 * time.Minute
	}
	if c.Equil == 0 {
		c.Equil = 10 * time.Second
	}
	if c.Hold == 0 {
		c.Hold = 3 * time.Minute
	}
	if c.LoadLag == 0 {
		c.LoadLag = 5 * time.Second
	}
	const airRemoval, exhaust, drying, admission = time.Minute, time.Minute, time.Minute, 30 * time.Second
	heatFrom := airRemoval
	plateauFrom := heatFrom + c.Heat
	exhaustFrom := plateauFrom + c.Equil + c.Hold
	chamber := func(t time.Duration) float64 {
		switch {
		case t < heatFrom:
			return 80
		case t < plateauFrom:
			return 100 + (c.SetPointC-100)*float64(t-heatFrom)/float64(c.Heat)
		case t < exhaustFrom:
			return c.HoldTempC
		case t < exhaustFrom+exhaust:
			return c.HoldTempC - (c.HoldTempC-100)*float64(t-exhaustFrom)/float64(exhaust)
		}
		return 60
	}
	steamAt := func(from time.Duration) func(time.Duration) Reading {
		return func(e time.Duration) Reading {
			t := from + e
			r := Saturated(chamber(t))
			if c.Probes {
				r.Ch = map[string]float64{Drain: r.TempC - 0.2, Load: chamber(t-c.LoadLag) - 0.1}
			}
			return r
		}
	}
	b := New(c.Program, c.Every)
	if c.Probes {
		b.Channels(protocol.Channel{ID: Drain, Role: protocol.RoleDrainTemperature, Unit: "°C"},
			protocol.Channel{ID: Load, Role: protocol.RoleLoadTemperature, Unit: "°C"})
	}
	hold := steamAt(plateauFrom + c.Equil)
	b.Phase(protocol.PhaseAirRemoval, airRemoval, steamAt(0)).
		Phase(protocol.PhaseHeating, c.Heat, steamAt(heatFrom)).
		Phase(protocol.PhaseEquilibrate, c.Equil, steamAt(plateauFrom)).
		Phase(protocol.PhaseSterilizing, c.Hold, func(e time.Duration) Reading {
			r := hold(e)
			if c.During != nil {
				c.During(e, &r)
			}
			return r
		}).
		Phase(protocol.PhaseExhaust, exhaust, steamAt(exhaustFrom)).
		Phase(protocol.PhaseDrying, drying, func(time.Duration) Reading {
			return probes(c.Probes, Reading{TempC: 60, PressureKPa: 7})
		}).
		Phase(protocol.PhaseAirAdmission, admission, func(time.Duration) Reading {
			return probes(c.Probes, Reading{TempC: 60, PressureKPa: 101})
		})
	rec := b.Record()
	rec.TimeScale = c.TimeScale
	if c.Result != "" {
		rec.Result = c.Result
	}
	return rec
}

func probes(on bool, r Reading) Reading {
	if on {
		r.Ch = map[string]float64{Drain: r.TempC, Load: r.TempC}
	}
	return r
}

// LeakTest describes a vacuum leak test: the chamber evacuated to 6 kPa
// over 2 minutes, then the leak_test phase (valves closed) for Duration
// with the pressure rising by RateKPaMin, then air admission.
type LeakTest struct {
	Program    string        // default "leak-test"
	RateKPaMin float64       // rise while the valves are closed
	Every      time.Duration // default 1 s
	Duration   time.Duration // of the leak_test phase; default 15 min
	TimeScale  float64
}

// Record builds the test.
func (l LeakTest) Record() protocol.CycleRecord {
	if l.Program == "" {
		l.Program = "leak-test"
	}
	if l.Every == 0 {
		l.Every = time.Second
	}
	if l.Duration == 0 {
		l.Duration = 15 * time.Minute
	}
	scale := l.TimeScale
	if scale == 0 {
		scale = 1
	}
	rec := New(l.Program, l.Every).
		Phase(protocol.PhaseAirRemoval, 2*time.Minute, func(e time.Duration) Reading {
			return Reading{TempC: 40, PressureKPa: 101 - 95*e.Seconds()/120}
		}).
		Phase(protocol.PhaseLeakTest, l.Duration, func(e time.Duration) Reading {
			return Reading{TempC: 40, PressureKPa: 6 + l.RateKPaMin*e.Seconds()*scale/60}
		}).
		Phase(protocol.PhaseAirAdmission, time.Minute, func(time.Duration) Reading {
			return Reading{TempC: 40, PressureKPa: 101}
		}).Record()
	rec.TimeScale = l.TimeScale
	return rec
}
