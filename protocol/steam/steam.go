// Package steam gives the saturation line of water (IAPWS-IF97 Region 4):
// the pressure at which steam is saturated at a temperature and back.
//
// The simulator uses it to tie chamber pressure to temperature; the gateway
// uses it to check that the plateau was saturated steam (|T − Tsat(p)| ≤ 2 K),
// the check that catches air and non-condensable gas in the chamber.
package steam

import "math"

var n = [11]float64{0,
	1167.0521452767, -724213.16703206, -17.073846940092, 12020.82470247,
	-3232555.0322333, 14.91510861353, -4823.2657361591, 405113.40542057,
	-0.23855557567849, 650.17534844798,
}

// PressureKPa returns the saturation pressure (kPa absolute) at tempC °C.
// Valid from 0 to 373.946 °C (the critical point).
func PressureKPa(tempC float64) float64 {
	t := tempC + 273.15
	theta := t + n[9]/(t-n[10])
	a := theta*theta + n[1]*theta + n[2]
	b := n[3]*theta*theta + n[4]*theta + n[5]
	c := n[6]*theta*theta + n[7]*theta + n[8]
	p := 2 * c / (-b + math.Sqrt(b*b-4*a*c))
	return p * p * p * p * 1000 // MPa → kPa
}

// TempC returns the saturation temperature (°C) at pressureKPa kPa absolute.
// Valid from 0.611 kPa to 22.064 MPa.
func TempC(pressureKPa float64) float64 {
	// β = p^¼ as two square roots: the same value to the last bit or
	// so, and several times faster than math.Pow, which the parametric
	// check calls for every sample of a hold.
	beta := math.Sqrt(math.Sqrt(pressureKPa / 1000))
	e := beta*beta + n[3]*beta + n[6]
	f := n[1]*beta*beta + n[4]*beta + n[7]
	g := n[2]*beta*beta + n[5]*beta + n[8]
	d := 2 * g / (-f - math.Sqrt(f*f-4*e*g))
	return (n[10]+d-math.Sqrt((n[10]+d)*(n[10]+d)-4*(n[9]+n[10]*d)))/2 - 273.15
}
