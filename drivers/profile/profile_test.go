package profile

import (
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden error files under testdata/errors")

// TestProfileErrorsGolden checks that each broken profile under
// testdata/errors is rejected with exactly the message in its .golden file:
// file, line, field path and the bad value.
func TestProfileErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test profiles: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := Load(file)
			if err == nil {
				t.Fatalf("Load(%s) accepted a broken profile", file)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, want *ParseError: %v", err, err)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error message changed\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestErrorNamesFileLineAndPath(t *testing.T) {
	_, err := Load("testdata/errors/bad-type.yaml")
	want := `testdata/errors/bad-type.yaml:3: fields.chamber_temp.type: "int17" is not one of u16, i16, u32, i32, f32, f64, bit`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant it to contain %s", err, want)
	}
}

func TestWriteFunctionCodesAreRejected(t *testing.T) {
	for _, fc := range []string{"0", "5", "6", "15", "16", "22", "23", "43"} {
		src := "fields:\n  t: {function: " + fc + ", address: 0}\n  p: {address: 1}\n  c: {address: 2}\nroles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}\ncycle_end: {on: counter_change}\n"
		_, err := Parse("x.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), "x.yaml:2: fields.t.function: "+fc+" is not a read function") {
			t.Errorf("function %s: err = %v", fc, err)
		}
	}
}

func TestBuiltinProfilesParse(t *testing.T) {
	names := BuiltinNames()
	if len(names) == 0 || names[0] != "sim-autoclave" {
		t.Fatalf("BuiltinNames() = %v", names)
	}
	for _, n := range names {
		src, _ := BuiltinSource(n)
		p, err := Parse("builtin:"+n, src)
		if err != nil {
			t.Fatalf("built-in %s: %v", n, err)
		}
		if p.Name != n {
			t.Errorf("built-in file %s.yaml says name: %s", n, p.Name)
		}
	}
	if _, ok := Builtin("no-such"); ok {
		t.Error("Builtin(no-such) found something")
	}
}

// TestSimAutoclaveMatchesSimulatorMap pins the built-in profile to the
// register map in docs/simulator.md: one request of 24 holding registers,
// and every documented field at its documented address and type.
func TestSimAutoclaveMatchesSimulatorMap(t *testing.T) {
	p, ok := Builtin("sim-autoclave")
	if !ok {
		t.Fatal("sim-autoclave is not built in")
	}
	if len(p.Blocks) != 1 || p.Blocks[0] != (Block{Function: 3, Start: 0, Count: 24}) {
		t.Fatalf("blocks = %+v, want one read of 24 registers from 0", p.Blocks)
	}
	want := map[string]struct {
		addr  uint16
		typ   Type
		scale float64
	}{
		"chamber_temp": {0, TypeI16, 0.1}, "jacket_temp": {1, TypeI16, 0.1}, "chamber_pressure": {2, TypeU16, 0.1},
		"phase": {3, TypeU16, 1}, "program": {4, TypeU16, 1}, "cycle_counter": {5, TypeU32, 1}, "elapsed": {7, TypeU16, 1},
		"alarm_bits": {8, TypeU16, 1}, "alarm_code": {9, TypeU16, 1}, "state": {10, TypeU16, 1}, "hold_remaining": {11, TypeU16, 1},
		"drain_temp": {12, TypeI16, 0.1}, "load_temp": {13, TypeI16, 0.1},
		"last_cycle": {16, TypeU32, 1}, "last_result": {18, TypeU16, 1}, "last_program": {19, TypeU16, 1},
		"last_alarm_code": {20, TypeU16, 1}, "last_plateau_min": {21, TypeI16, 0.1}, "last_plateau_max": {22, TypeI16, 0.1},
		"last_hold_seconds": {23, TypeU16, 1},
	}
	for name, w := range want {
		f, ok := p.Field(name)
		if !ok {
			t.Errorf("field %s missing", name)
			continue
		}
		if f.Function != 3 || f.Address != w.addr || f.Type != w.typ || f.Scale != w.scale || f.Order != OrderABCD {
			t.Errorf("field %s = %+v, want address %d type %s scale %v", name, *f, w.addr, w.typ, w.scale)
		}
	}
	for code, ph := range []protocol.PhaseName{"idle", "preparation", "air_removal", "heating", "equilibration", "sterilizing", "exhaust", "drying", "air_admission", "leak_test", "complete", "fault", "cooling"} {
		if p.Phases[code] != ph {
			t.Errorf("phase %d = %q, want %q", code, p.Phases[code], ph)
		}
	}
	for code, r := range map[int]protocol.Result{1: "passed", 2: "failed", 3: "aborted"} {
		if p.Results[code] != r {
			t.Errorf("result %d = %q, want %q", code, p.Results[code], r)
		}
	}
	bits := map[int]int{0: 72, 1: 66, 2: 84, 3: 85, 4: 83, 5: 62, 6: 60, 7: 91, 8: 92, 9: 93}
	if len(p.Alarms) != len(bits) {
		t.Fatalf("%d alarm bits, want %d", len(p.Alarms), len(bits))
	}
	for _, a := range p.Alarms {
		if bits[a.Bit] != a.Code || a.Field != "alarm_bits" {
			t.Errorf("alarm %+v, want bit %d code %d", a, a.Bit, bits[a.Bit])
		}
	}
	if p.CycleEnd.On != EndOnLastCycleChange {
		t.Errorf("cycle_end = %v", p.CycleEnd.On)
	}
	// A full register image as the simulator serves it mid-plateau.
	img := make([]uint16, 24)
	img[0] = 1352   // 135.2 °C
	img[1] = 0xFFF6 // -1.0 °C: i16
	img[2] = 3121   // 312.1 kPa
	img[3] = 5
	img[4] = 1
	img[5], img[6] = 0x0001, 0x0002 // 65538
	img[8] = 1<<2 | 1<<8
	img[9] = 84
	img[16], img[17] = 0x0001, 0x0001 // 65537
	img[18] = 1
	img[19] = 1
	img[12], img[13] = 1349, 1338 // drain and load probes
	img[20], img[21], img[22], img[23] = 92, 1346, 1361, 180
	r, err := p.Decode([][]uint16{img})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r.TempC-135.2) > 1e-9 || math.Abs(r.PressureKPa-312.1) > 1e-9 || r.Values["jacket_temp"] != -1 {
		t.Errorf("T %v p %v jacket %v", r.TempC, r.PressureKPa, r.Values["jacket_temp"])
	}
	if r.Phase != protocol.PhaseSterilizing || r.Counter != 65538 || r.LastCycle != 65537 || !r.HasLastCycle || r.LastResultCode != 1 || r.ProgramCode != 1 {
		t.Errorf("reading = %+v", r)
	}
	if len(r.Alarms) != 2 || r.Alarms[0].Code != 84 || r.Alarms[1].Code != 92 || r.Alarms[1].Text != "power interrupted" {
		t.Errorf("alarms = %+v", r.Alarms)
	}
	wantCh := []Channel{{"drain_temp", RoleDrainTemperature}, {"load_temp", RoleLoadTemperature}, {"jacket_temp", RoleJacketTemperature}}
	if len(p.Channels) != 3 || p.Channels[0] != wantCh[0] || p.Channels[1] != wantCh[1] || p.Channels[2] != wantCh[2] {
		t.Errorf("channels = %+v, want %+v", p.Channels, wantCh)
	}
	if r.Channels["drain_temp"] != 134.9 || r.Channels["load_temp"] != 133.8 || r.Channels["jacket_temp"] != -1 {
		t.Errorf("channel values = %v", r.Channels)
	}
	if f := r.Figures; !r.HasLastAlarm || r.LastAlarmCode != 92 || f == nil || *f.PlateauMinC != 134.6 || *f.PlateauMaxC != 136.1 || *f.HoldSeconds != 180 {
		t.Errorf("latched alarm %d, figures %+v", r.LastAlarmCode, f)
	}
}

// TestDecodeEveryTypeAndOrder checks golden wire words for each type in
// each byte order.
func TestDecodeEveryTypeAndOrder(t *testing.T) {
	cases := []struct {
		typ   Type
		order Order
		words []uint16
		want  float64
	}{
		{TypeU16, OrderABCD, []uint16{0x1234}, 0x1234},
		{TypeU16, OrderCDAB, []uint16{0x1234}, 0x1234},
		{TypeU16, OrderBADC, []uint16{0x3412}, 0x1234},
		{TypeU16, OrderDCBA, []uint16{0x3412}, 0x1234},
		{TypeI16, OrderABCD, []uint16{0xFFFE}, -2},
		{TypeI16, OrderBADC, []uint16{0xFEFF}, -2},
		{TypeU32, OrderABCD, []uint16{0x0102, 0x0304}, 0x01020304},
		{TypeU32, OrderCDAB, []uint16{0x0304, 0x0102}, 0x01020304},
		{TypeU32, OrderBADC, []uint16{0x0201, 0x0403}, 0x01020304},
		{TypeU32, OrderDCBA, []uint16{0x0403, 0x0201}, 0x01020304},
		{TypeI32, OrderABCD, []uint16{0xFFFE, 0x7960}, -100000},
		{TypeI32, OrderCDAB, []uint16{0x7960, 0xFFFE}, -100000},
		{TypeI32, OrderBADC, []uint16{0xFEFF, 0x6079}, -100000},
		{TypeI32, OrderDCBA, []uint16{0x6079, 0xFEFF}, -100000},
		// 121.5 as IEEE 754 single: 0x42F3_0000
		{TypeF32, OrderABCD, []uint16{0x42F3, 0x0000}, 121.5},
		{TypeF32, OrderCDAB, []uint16{0x0000, 0x42F3}, 121.5},
		{TypeF32, OrderBADC, []uint16{0xF342, 0x0000}, 121.5},
		{TypeF32, OrderDCBA, []uint16{0x0000, 0xF342}, 121.5},
		// 134.25 as IEEE 754 double: 0x4060_C800_0000_0000
		{TypeF64, OrderABCD, []uint16{0x4060, 0xC800, 0, 0}, 134.25},
		{TypeF64, OrderCDAB, []uint16{0, 0, 0xC800, 0x4060}, 134.25},
		{TypeF64, OrderBADC, []uint16{0x6040, 0x00C8, 0, 0}, 134.25},
		{TypeF64, OrderDCBA, []uint16{0, 0, 0x00C8, 0x6040}, 134.25},
	}
	for _, c := range cases {
		f := Field{Name: "x", Function: 3, Type: c.typ, Order: c.order, Scale: 1}
		got, err := f.RawValue(c.words)
		if err != nil || got != c.want {
			t.Errorf("%s %s % x = %v, %v; want %v", c.typ, c.order, c.words, got, err, c.want)
		}
	}
	bit := Field{Name: "b", Function: 3, Type: TypeBit, Bit: 9, Order: OrderABCD, Scale: 1}
	if v, _ := bit.RawValue([]uint16{0x0200}); v != 1 {
		t.Errorf("bit 9 of 0x0200 = %v", v)
	}
	if v, _ := bit.RawValue([]uint16{0xFDFF}); v != 0 {
		t.Errorf("bit 9 of 0xFDFF = %v", v)
	}
	// bit numbering is of the value, so a byte-swapped register moves it
	bit.Order = OrderBADC
	if v, _ := bit.RawValue([]uint16{0x0002}); v != 1 {
		t.Errorf("bit 9 of byte-swapped 0x0002 = %v", v)
	}
	coil := Field{Name: "c", Function: 1, Type: TypeBit, Scale: 1}
	if v, _ := coil.RawValue([]uint16{1}); v != 1 {
		t.Errorf("coil = %v", v)
	}
	scaled := Field{Name: "k", Function: 3, Type: TypeU16, Order: OrderABCD, Scale: 0.01, Offset: -273.15}
	if v, _ := scaled.Value([]uint16{40715}); math.Abs(v-133.999999) > 1e-3 {
		t.Errorf("407.15 K = %v °C", v)
	}
}

func TestBlocksAreMerged(t *testing.T) {
	src := `
read: {max_gap: 4, max_registers: 10}
fields:
  t: {address: 0, type: f32}
  p: {address: 2, type: f32}
  c: {address: 7, type: u32}      # gap of 3: merged
  far: {address: 20}              # gap too big: new block
  wide: {address: 30, type: f64}
  wide2: {address: 36, type: f64} # 30..39 is 10 registers: still one block
  tail: {address: 40}             # would make 11: split
  ir: {function: 4, address: 5}
  coil: {function: 1, address: 3}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
cycle_end: {on: counter_change}
`
	p, err := Parse("m.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{1, 3, 1}, {3, 0, 9}, {3, 20, 1}, {3, 30, 10}, {3, 40, 1}, {4, 5, 1}}
	if len(p.Blocks) != len(want) {
		t.Fatalf("blocks = %+v, want %+v", p.Blocks, want)
	}
	for i := range want {
		if p.Blocks[i] != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, p.Blocks[i], want[i])
		}
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	src := `
fields:
  t: {address: 0, type: f32}
  p: {address: 2}
  c: {address: 3, type: u32, scale: 0.5}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
cycle_end: {on: counter_change}
`
	p, err := Parse("d.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	nan := math.Float32bits(float32(math.NaN()))
	r, err := p.Decode([][]uint16{{uint16(nan >> 16), uint16(nan), 1, 0, 2}})
	if err != nil || !r.NoSample || len(r.Implausible) != 1 || !strings.Contains(r.Implausible[0].Error(), "field t (chamber_temperature) reads NaN") || r.Counter != 1 {
		t.Errorf("NaN temperature: reading %+v, err %v; want the counter kept and the bad field named", r, err)
	}
	_, err = p.Decode([][]uint16{{0, 0, 1, 0, 3}})
	if err == nil || !strings.Contains(err.Error(), "field c: cycle_counter reads 1.5, not a whole number") {
		t.Errorf("fractional counter: %v", err)
	}
	_, err = p.Decode([][]uint16{{0, 0, 1}})
	if err == nil || !strings.Contains(err.Error(), "field c: the device returned 3 registers") {
		t.Errorf("short reply: %v", err)
	}
}

func TestResolve(t *testing.T) {
	if p, err := Resolve("sim-autoclave"); err != nil || p.Name != "sim-autoclave" {
		t.Fatalf("Resolve(sim-autoclave) = %v, %v", p, err)
	}
	if _, err := Resolve("sim-autoclav"); err == nil || !strings.Contains(err.Error(), "built-in: sim-autoclave") {
		t.Errorf("Resolve(typo) = %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "mine.yaml")
	src, _ := BuiltinSource("sim-autoclave")
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), "name: sim-autoclave", "name: mine", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Resolve(path); err != nil || p.Name != "mine" || p.Origin != path {
		t.Fatalf("Resolve(%s) = %+v, %v", path, p, err)
	}
	if _, err := Resolve(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// YAML anchors and aliases are plain YAML; a profile may use them to share
// settings between fields.
func TestAliasesWork(t *testing.T) {
	src := `
fields:
  t: &temp {address: 0, type: i16, scale: &tenth 0.1}
  p: {address: 1, scale: *tenth}
  c: {address: 2, type: u32}
  t2: *temp
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}
cycle_end: {on: counter_change}
`
	p, err := Parse("alias.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := p.Field("p"); f.Scale != 0.1 {
		t.Errorf("p scale = %v", f.Scale)
	}
	if f, _ := p.Field("t2"); f.Type != TypeI16 || f.Scale != 0.1 {
		t.Errorf("t2 = %+v", f)
	}
}
