package printer

import (
	"math"
	"strconv"
	"strings"
)

// Units of a leak rate, per minute. A rate is a difference of pressures:
// gauge or absolute makes no difference to it.
var leakRateUnits = []string{"kPa", "bar", "mbar", "psi"}

// rateUnitOf is the leak-rate unit that goes with a pressure unit.
func rateUnitOf(pressure string) string {
	switch pressure {
	case "kPa_g":
		return "kPa"
	case "bar_g":
		return "bar"
	case "psia", "psig":
		return "psi"
	}
	return pressure
}

const (
	standardAtmosphereKPa = 101.325
	kPaPerPsi             = 6.894757
)

// kPaPer returns how many kPa one printed unit is, and what is added to
// make a gauge pressure absolute.
func kPaPer(unit string) (scale, offset float64) {
	switch unit {
	case "bar":
		return 100, 0
	case "mbar":
		return 0.1, 0
	case "psi", "psia":
		return kPaPerPsi, 0
	case "kPa_g":
		return 1, standardAtmosphereKPa
	case "bar_g":
		return 100, standardAtmosphereKPa
	case "psig":
		return kPaPerPsi, standardAtmosphereKPa
	}
	return 1, 0
}

// printedNumber reads a printed number (decimal point or comma) and says
// how many decimals it was printed with.
func printedNumber(s string) (v float64, decimals int, ok bool) {
	s = strings.Replace(strings.TrimSpace(s), ",", ".", 1)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, 0, false
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		for _, c := range s[i+1:] {
			if c < '0' || c > '9' {
				break
			}
			decimals++
		}
	}
	return v, decimals, true
}

// convert turns a printed number into the record's unit with the
// precision it was printed with: a printed step of 10^-decimals units,
// converted, decides how many decimals the result keeps (3.18 bar is
// 318 kPa, 3125 mbar is 312.5 kPa, 270.3 °F is 132.39 °C). The float
// noise of the conversion (7.000000000000001) goes with the digits the
// device never printed.
func convert(v float64, decimals int, scale, offset float64) float64 {
	x := v*scale + offset
	step := math.Pow10(-decimals) * math.Abs(scale)
	keep := int(math.Ceil(-math.Log10(step) - 1e-9))
	keep = min(max(keep, 0), 9)
	if math.IsInf(x, 0) || math.IsNaN(x) || math.Abs(x) > 1e15 {
		return x
	}
	p := math.Pow10(keep)
	return math.Round(x*p) / p
}
