package autoclave

import (
	"testing"
)

// runCycle starts prog with faults on a fresh device and steps it at 1 s
// until the cycle ends (or a day passes, which fails the test).
func runCycle(t testing.TB, prog string, faults ...Fault) (*Device, *Report, []Reading) {
	t.Helper()
	p, err := ProgramByName(prog)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Seed: 42, Stream: 1})
	for range 120 {
		d.Step(1)
	}
	if err := d.Start(p, faults); err != nil {
		t.Fatal(err)
	}
	var trace []Reading
	for range 86400 {
		r := d.Step(1)
		trace = append(trace, d.Read())
		if r != nil {
			return d, r, trace
		}
	}
	t.Fatalf("%s with %v did not end within a simulated day", prog, faults)
	return nil, nil, nil
}
