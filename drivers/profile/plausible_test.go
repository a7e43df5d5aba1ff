package profile

import (
	"math"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol"
)

// channelsProfile maps every measured role, two load probes, the device's
// figures and a leak test that reuses the air-removal code.
const channelsProfile = `
fields:
  t:      {address: 0, type: i16, scale: 0.1}
  p:      {address: 1, scale: 0.1}
  n:      {address: 2}
  ph:     {address: 3}
  prog:   {address: 4}
  drain:  {address: 5, type: i16, scale: 0.1}
  load_1: {address: 6, type: i16, scale: 0.1}
  load_2: {address: 7, type: i16, scale: 0.1}
  jacket: {address: 8, type: i16, scale: 0.1}
  ref:    {address: 9, type: i16, scale: 0.1}
  alarm:  {address: 10}
  hold:   {address: 11}
  pmin:   {address: 12, type: i16, scale: 0.1}
  pmax:   {address: 13, type: i16, scale: 0.1}
  leak:   {address: 14, scale: 0.01}
roles:
  chamber_temperature: t
  chamber_pressure: p
  cycle_counter: n
  phase: ph
  program: prog
  load_temperature: [load_1, load_2]
  drain_temperature: drain
  jacket_temperature: jacket
  reference_temperature: ref
  last_alarm_code: alarm
  last_hold_seconds: hold
  last_plateau_min: pmin
  last_plateau_max: pmax
  last_leak_rate: leak
phases: {0: idle, 2: air_removal, 5: sterilizing}
program_phases: {6: {2: leak_test}}
plausible:
  load_temperature: {max: 150}
max_sample_gap: 4s
cycle_end: {on: next_cycle_starts}
`

func TestChannelsFiguresAndProgramPhases(t *testing.T) {
	p, err := Parse("channels.yaml", []byte(channelsProfile))
	if err != nil {
		t.Fatal(err)
	}
	want := []Channel{{"load_1", RoleLoadTemperature}, {"load_2", RoleLoadTemperature}, {"drain", RoleDrainTemperature}, {"jacket", RoleJacketTemperature}, {"ref", RoleReferenceTemperature}}
	if len(p.Channels) != len(want) {
		t.Fatalf("channels = %+v", p.Channels)
	}
	for i := range want {
		if p.Channels[i] != want[i] {
			t.Errorf("channel %d = %+v, want %+v", i, p.Channels[i], want[i])
		}
	}
	if p.MaxSampleGap.Seconds() != 4 || p.PlausibleRange(RoleLoadTemperature) != (Range{-20, 150}) || p.PlausibleRange(RoleChamberPressure) != (Range{0, 700}) {
		t.Errorf("max_sample_gap %v, load range %v, pressure range %v", p.MaxSampleGap, p.PlausibleRange(RoleLoadTemperature), p.PlausibleRange(RoleChamberPressure))
	}
	if !p.HasRole(RoleLoadTemperature) || p.CycleEnd.On != EndOnNextCycleStarts {
		t.Errorf("roles or cycle_end wrong: %+v", p.CycleEnd)
	}
	img := []uint16{1352, 3121, 7, 2, 6, 1349, 1310, 1600, 1360, 1351, 92, 180, 1348, 1361, 9}
	r, err := p.Decode([][]uint16{img})
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != protocol.PhaseLeakTest || r.PhaseCode != 2 {
		t.Errorf("program 6, code 2: phase %s (code %d), want leak_test", r.Phase, r.PhaseCode)
	}
	wantCh := map[string]float64{"load_1": 131, "drain": 134.9, "jacket": 136, "ref": 135.1}
	if len(r.Channels) != len(wantCh) {
		t.Errorf("channels = %v, want %v (load_2 reads 160 °C, above its plausible 150)", r.Channels, wantCh)
	}
	for id, v := range wantCh {
		if r.Channels[id] != v {
			t.Errorf("channel %s = %v, want %v", id, r.Channels[id], v)
		}
	}
	if len(r.Implausible) != 1 || r.Implausible[0].Field != "load_2" || r.Implausible[0].Value != 160 || r.Implausible[0].Registers[0] != 1600 || r.NoSample {
		t.Errorf("implausible = %+v, no sample %v; want load_2 alone, and the sample kept", r.Implausible, r.NoSample)
	}
	f := r.Figures
	if f == nil || *f.HoldSeconds != 180 || *f.PlateauMinC != 134.8 || *f.PlateauMaxC != 136.1 || *f.LeakRateKPaMin != 0.09 || f.PlateauMinKPa != nil {
		t.Errorf("figures = %+v", f)
	}
	if !r.HasLastAlarm || r.LastAlarmCode != 92 {
		t.Errorf("last alarm = %d %v", r.LastAlarmCode, r.HasLastAlarm)
	}
	// Another program keeps the plain phase map.
	img[4] = 1
	if r, _ := p.Decode([][]uint16{img}); r.Phase != protocol.PhaseAirRemoval {
		t.Errorf("program 1, code 2: phase %s, want air_removal", r.Phase)
	}
}

// wrongOrderProfile reads an f32 temperature the device sends low word
// first (CDAB) as if it were high word first: the profile's mistake.
const wrongOrderProfile = `
fields:
  temp:  {function: 4, address: 0, type: f32, order: ABCD}
  press: {function: 4, address: 2, type: f32, order: CDAB}
  n:     {function: 4, address: 4}
roles: {chamber_temperature: temp, chamber_pressure: press, cycle_counter: n}
cycle_end: {on: counter_change}
`

// cdab puts v on the wire low word first.
func cdab(v float32) (uint16, uint16) {
	b := math.Float32bits(v)
	return uint16(b), uint16(b >> 16)
}

func TestWrongWordOrderIsImplausibleAndDiagnosed(t *testing.T) {
	p, err := Parse("wrong-order.yaml", []byte(wrongOrderProfile))
	if err != nil {
		t.Fatal(err)
	}
	for _, temp := range []float32{20.3, 134.2, 135.7, 121.4} {
		w0, w1 := cdab(temp)
		p0, p1 := cdab(304.5)
		r, err := p.Decode([][]uint16{{w0, w1, p0, p1, 12}})
		if err != nil {
			t.Fatal(err)
		}
		if !r.NoSample || len(r.Implausible) != 1 || r.TempC != 0 {
			t.Fatalf("%v °C sent CDAB, read ABCD: reading %+v; want no sample and the value refused", temp, r)
		}
		v := r.Implausible[0]
		if v.Field != "temp" || v.Role != RoleChamberTemperature || len(v.Registers) != 2 || v.Registers[0] != w0 {
			t.Errorf("implausible = %+v", v)
		}
		got := p.Diagnose(v)
		want := "likely cause: wrong byte order: with order: CDAB (profile: ABCD) the same registers read " + formatNumber(float64(temp)) + " °C"
		if got != want {
			t.Errorf("%v °C: diagnosis\n %s\nwant\n %s", temp, got, want)
		}
	}
}

func TestDiagnoseNamesScaleUnitAndSensor(t *testing.T) {
	p, err := Parse("d.yaml", []byte(`
fields:
  t: {address: 0, type: i16}
  k: {address: 1, scale: 0.1}
  p: {address: 2, scale: 0.1}
  g: {address: 3, type: i16, scale: 0.1}
  n: {address: 4}
  u: {address: 5}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: n, drain_temperature: k, jacket_temperature: u}
cycle_end: {on: counter_change}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		img  []uint16
		want string
	}{
		{[]uint16{1352, 1000, 3000, 0, 0, 0}, "likely cause: wrong scale: with scale: 0.1 (profile: 1) it reads 135.2 °C"},
		{[]uint16{20, 4077, 3000, 0, 0, 0}, "wrong unit: the device sends kelvin: add offset: -273.15 (it would read 134.55 °C)"},
		{[]uint16{20, 1000, 0xFFFF, 0, 0, 0}, "the sensor itself reads out of range or has failed: the register holds 0xFFFF"},
		{[]uint16{20, 1000, 3000, 0, 0, 0xFFEC}, "wrong type: as i16 (profile: u16) it reads -20 °C"},
	} {
		r, err := p.Decode([][]uint16{c.img})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Implausible) != 1 {
			t.Fatalf("%v: implausible %+v", c.img, r.Implausible)
		}
		if got := p.Diagnose(r.Implausible[0]); !strings.Contains(got, c.want) {
			t.Errorf("%v: diagnosis %q\nwant it to contain %q", c.img, got, c.want)
		}
	}
}
