package profile

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input either parses into a profile whose blocks cover
// every field with read functions only, or fails with a *ParseError; it
// never panics.
func FuzzParse(f *testing.F) {
	src, _ := BuiltinSource("sim-autoclave")
	f.Add(src)
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("fields: {t: {address: 0, type: f64, order: DCBA}, p: {address: 4}, c: {address: 5, type: u32}}\nroles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c}\ncycle_end: {on: counter_change}\n"))
	f.Add([]byte("&a {x: *a}"))
	f.Add([]byte(channelsProfile))
	f.Add([]byte(wrongOrderProfile))
	f.Add([]byte(criteriaHead + "  1: &c {kind: porous, set_point_c: 134, band_k: 4}\n  leak: {kind: leak_test, leak_rate_kpa_min: 0.2}\n  121-liquids: *c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, b := range p.Blocks {
			if !(b.Function >= 1 && b.Function <= 4) || b.Count == 0 {
				t.Fatalf("bad block %+v", b)
			}
		}
		for i := range p.Fields {
			if _, err := p.wordsOf(&p.Fields[i], fullBlocks(p)); err != nil {
				t.Fatalf("field %s not covered: %v", p.Fields[i].Name, err)
			}
		}
		// Criteria that loaded are usable by the check.
		for name := range p.Criteria {
			if _, ok := p.ProgramCriteria(name); !ok {
				t.Fatalf("criteria of %q loaded but do not build", name)
			}
		}
	})
}

func fullBlocks(p *Profile) [][]uint16 {
	data := make([][]uint16, len(p.Blocks))
	for i, b := range p.Blocks {
		data[i] = make([]uint16, b.Count)
	}
	return data
}

// FuzzDecode feeds arbitrary register contents (and truncated replies)
// through the built-in profile and one with every type and order: decoding
// must return a value or an error, never panic.
func FuzzDecode(f *testing.F) {
	all, err := Parse("all.yaml", []byte(`
fields:
  t: {address: 0, type: f32, order: CDAB, scale: 1, offset: -273.15}
  p: {address: 2, type: f64, order: BADC, scale: 100}
  c: {address: 6, type: u32, order: DCBA}
  l: {address: 8, type: i32, order: BADC}
  ph: {address: 10, type: i16, order: DCBA}
  r: {address: 11}
  a: {address: 12, type: u32}
  b: {address: 14, type: bit, bit: 15}
  coil: {function: 1, address: 0}
roles: {chamber_temperature: t, chamber_pressure: p, cycle_counter: c, last_cycle: l, phase: ph, last_result: r, alarm_code: r}
alarms:
  - {field: a, bit: 31, code: 1}
  - {field: b, code: 2}
  - {field: ph, bit: 15, code: 3}
cycle_end: {on: last_cycle_change}
`))
	if err != nil {
		f.Fatal(err)
	}
	sim, _ := Builtin("sim-autoclave")
	channels, err := Parse("channels.yaml", []byte(channelsProfile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0x05, 0x48, 0x0c, 0x31, 0, 5, 0, 1}, uint8(0))
	f.Add([]byte{0xff, 0xff, 0x7f, 0xc0, 0, 0, 0, 0, 0xff}, uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, cut uint8) {
		for _, p := range []*Profile{sim, all, channels} {
			data := make([][]uint16, len(p.Blocks))
			k := 0
			for i, b := range p.Blocks {
				n := int(b.Count)
				if i == 0 && int(cut) < n {
					n -= int(cut) // a short reply
				}
				data[i] = make([]uint16, n)
				for j := range data[i] {
					if k+1 < len(raw) {
						data[i][j] = uint16(raw[k])<<8 | uint16(raw[k+1])
					}
					k += 2
				}
			}
			r, err := p.Decode(data)
			if err != nil {
				continue
			}
			if math.IsNaN(r.TempC) || math.IsInf(r.TempC, 0) || math.IsNaN(r.PressureKPa) || math.IsInf(r.PressureKPa, 0) {
				t.Fatalf("non-finite measurement leaked into the reading: %+v", r)
			}
			for id, v := range r.Channels {
				if !p.PlausibleRange(RoleDrainTemperature).Contains(v) && !p.PlausibleRange(RoleLoadTemperature).Contains(v) {
					t.Fatalf("channel %s = %v leaked into the reading", id, v)
				}
			}
			for _, v := range r.Implausible {
				if v.Range.Contains(v.Value) && len(v.Registers) == 0 {
					t.Fatalf("implausible %+v without its registers", v)
				}
				_ = p.Diagnose(v) // must not panic
			}
		}
	})
}

func BenchmarkDecodeSimAutoclave(b *testing.B) {
	p, _ := Builtin("sim-autoclave")
	img := make([]uint16, 24)
	img[0], img[2], img[3], img[5], img[6] = 1352, 3121, 5, 0, 12
	data := [][]uint16{img}
	b.ReportAllocs()
	for range b.N {
		if _, err := p.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
