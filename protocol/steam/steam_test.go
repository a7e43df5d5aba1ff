package steam

import (
	"math"
	"testing"
)

// The IAPWS-IF97 release's own check values, and the table of domain.md §2.
func TestSaturationLine(t *testing.T) {
	checks := []struct {
		tempC, kPa, tol float64
	}{
		{300 - 273.15, 3.53658941, 1e-7},
		{500 - 273.15, 2638.89776, 1e-4},
		{121, 205.04, 0.01},
		{134, 304.20, 0.01},
		{137, 331.85, 0.01},
		{100, 101.42, 0.01},
	}
	for _, c := range checks {
		if got := PressureKPa(c.tempC); math.Abs(got-c.kPa) > c.tol {
			t.Errorf("PressureKPa(%v) = %.8f, want %.8f", c.tempC, got, c.kPa)
		}
	}
	if got := TempC(100) + 273.15; math.Abs(got-372.755919) > 1e-6 {
		t.Errorf("TempC(100 kPa) = %.6f K, want 372.755919 K", got)
	}
	for tc := 20.0; tc <= 200; tc += 7.5 {
		if back := TempC(PressureKPa(tc)); math.Abs(back-tc) > 1e-6 {
			t.Errorf("round trip at %v °C gave %v", tc, back)
		}
	}
}
