package profile

import (
	"fmt"
	"math"
	"strings"
)

// vanishingFloat bounds the magnitude of a float register that is taken
// for a measurement. A wrong word order often turns a temperature into a
// number like 4e-08 or -2e-41: inside any range that contains 0, but no
// sensor ever sends it. Measurements in their own unit are far larger.
const vanishingFloat = 1e-6

// plausible reports whether a measured field's value is data: a number in
// its range and, for a float field, not a vanishing non-zero raw value.
func plausible(f *Field, raw, v float64, rg Range) bool {
	if !rg.Contains(v) {
		return false // also NaN and ±Inf
	}
	if (f.Type == TypeF32 || f.Type == TypeF64) && raw != 0 && math.Abs(raw) < vanishingFloat {
		return false
	}
	return true
}

// Diagnose names the likely cause of an implausible value, from the
// profile and the raw registers alone: an out-of-range marker the sensor
// sends, a wrong byte order (another order decodes the same registers to a
// plausible value), a wrong signedness, a unit the profile does not
// convert, or a wrong scale. probe prints it; the gateway puts it in the
// implausible_value event. The text starts with "likely cause:" or says
// that the sensor itself reads out of range.
func (p *Profile) Diagnose(v Implausible) string {
	const sensor = "the sensor itself reads out of range or has failed"
	f, ok := p.Field(v.Field)
	if !ok || len(v.Registers) < f.Span() || f.Function == 1 || f.Function == 2 {
		return sensor
	}
	unit := "°C"
	if v.Role == RoleChamberPressure {
		unit = "kPa"
	}
	reads := func(x float64) string { return formatNumber(x) + " " + unit }
	// try decodes the registers with a changed field and says whether
	// that gives data.
	try := func(g Field) (float64, bool) {
		raw, err := g.RawValue(v.Registers)
		if err != nil {
			return 0, false
		}
		x := g.scale(raw)
		return x, plausible(&g, raw, x, v.Range)
	}
	marker := func() (string, bool) {
		if m, ok := outOfRangeMarker(f, v.Registers); ok {
			return fmt.Sprintf("%s: the register holds %s, the value devices send for a sensor out of range or disconnected", sensor, m), true
		}
		return "", false
	}
	// An integer marker may look plausible with its bytes swapped (0x7FFF
	// as 0xFF7F); a float's words in the wrong order may look like NaN.
	isFloat := f.Type == TypeF32 || f.Type == TypeF64
	if m, ok := marker(); ok && !isFloat {
		return m
	}
	for _, o := range allOrders {
		g := *f
		g.Order = o
		if x, ok := try(g); ok && o != f.Order {
			return fmt.Sprintf("likely cause: wrong byte order: with order: %s (profile: %s) the same registers read %s", o, f.Order, reads(x))
		}
	}
	if m, ok := marker(); ok {
		return m
	}
	var causes []string
	if flip, ok := map[Type]Type{TypeU16: TypeI16, TypeI16: TypeU16, TypeU32: TypeI32, TypeI32: TypeU32}[f.Type]; ok {
		g := *f
		g.Type = flip
		if x, ok := try(g); ok {
			causes = append(causes, fmt.Sprintf("wrong type: as %s (profile: %s) it reads %s", flip, f.Type, reads(x)))
		}
	}
	if !math.IsNaN(v.Value) && !math.IsInf(v.Value, 0) {
		causes = append(causes, unitCauses(v, reads)...)
	}
	for _, k := range []float64{0.1, 10, 0.01, 100, 0.001, 1000} {
		g := *f
		g.Scale = f.Scale * k
		if x, ok := try(g); ok {
			causes = append(causes, fmt.Sprintf("wrong scale: with scale: %g (profile: %g) it reads %s", g.Scale, f.Scale, reads(x)))
			break
		}
	}
	if len(causes) == 0 {
		return sensor + " (no other byte order, type, unit or scale makes it plausible)"
	}
	if len(causes) > 3 {
		causes = causes[:3]
	}
	return "likely cause: " + strings.Join(causes, "; or ") + "; or " + sensor
}

// unitCauses tries the unit conversions of docs/profiles.md §6 on a value
// the profile has already scaled.
func unitCauses(v Implausible, reads func(float64) string) []string {
	type conversion struct {
		what string
		conv func(float64) float64
	}
	var convs []conversion
	if v.Role == RoleChamberPressure {
		convs = []conversion{
			{"the device sends gauge pressure: add offset: 101.325", func(x float64) float64 { return x + 101.325 }},
			{"the device sends bar: multiply the scale by 100", func(x float64) float64 { return x * 100 }},
			{"the device sends mbar: multiply the scale by 0.1", func(x float64) float64 { return x / 10 }},
			{"the device sends psi gauge: scale 6.894757, offset 101.325", func(x float64) float64 { return x*6.894757 + 101.325 }},
		}
	} else {
		convs = []conversion{
			{"the device sends kelvin: add offset: -273.15", func(x float64) float64 { return x - 273.15 }},
			{"the device sends °F: scale 0.5555555556, offset -17.7777777778", func(x float64) float64 { return (x - 32) / 1.8 }},
		}
	}
	var out []string
	for _, c := range convs {
		if x := c.conv(v.Value); v.Range.Contains(x) {
			out = append(out, fmt.Sprintf("wrong unit: %s (it would read %s)", c.what, reads(x)))
		}
	}
	return out
}

// outOfRangeMarker recognises the values a device sends instead of a
// measurement: the extremes of an integer type, NaN and infinities of a
// float, in the profile's byte order.
func outOfRangeMarker(f *Field, words []uint16) (string, bool) {
	g := *f
	g.Scale, g.Offset = 1, 0
	raw, err := g.RawValue(words)
	if err != nil {
		return "", false
	}
	switch f.Type {
	case TypeU16:
		return "0xFFFF", raw == math.MaxUint16
	case TypeI16:
		return fmt.Sprintf("%.0f", raw), raw == math.MaxInt16 || raw == math.MinInt16
	case TypeU32:
		return "0xFFFFFFFF", raw == math.MaxUint32
	case TypeI32:
		return fmt.Sprintf("%.0f", raw), raw == math.MaxInt32 || raw == math.MinInt32
	case TypeF32, TypeF64:
		return fmt.Sprint(raw), math.IsNaN(raw) || math.IsInf(raw, 0)
	}
	return "", false
}
