package verify_test

import (
	"math"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
	"github.com/sterigate/sterigate/protocol/verify/verifytest"
)

// fortyMinutes is a 40-minute prion cycle sampled at 1 Hz with four
// temperature channels (chamber, drain, load, reference): 2,400 samples,
// with the noise of a real device's readings (±0.3 K at 0.1 K, the
// pressure at 0.1 kPa), so no figure repeats more than real data would.
func fortyMinutes() protocol.CycleRecord {
	rec := verifytest.Cycle{Program: "134-prion", Probes: true, HoldTempC: 135.2, Heat: 17*time.Minute + 20*time.Second, Hold: 18 * time.Minute}.Record()
	rec.Channels = append(rec.Channels, protocol.Channel{ID: "reference", Role: protocol.RoleReferenceTemperature, Unit: "°C"})
	seed := uint64(1)
	noise := func() float64 {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return float64(int(seed%7)-3) / 10
	}
	tenth := func(v float64) float64 { return math.Round(v*10) / 10 }
	for i := range rec.Samples {
		s := &rec.Samples[i]
		s.PressureKPa = tenth(s.PressureKPa + noise())
		s.TempC = tenth(s.TempC + noise())
		for id, v := range s.Ch {
			s.Ch[id] = tenth(v + noise())
		}
		s.Ch["reference"] = tenth(s.TempC + noise())
	}
	return rec
}

// The target: ≤ 1 ms and ≤ 64 KiB per check of a 40-minute cycle.
func BenchmarkCheck40MinCycle(b *testing.B) {
	rec := fortyMinutes()
	if n := len(rec.Samples); n < 2300 || n > 2500 {
		b.Fatalf("%d samples, want about 2,400", n)
	}
	c, err := verify.Standard(verify.KindPrion, 134, 0)
	if err != nil {
		b.Fatal(err)
	}
	if v := verify.Check(rec, c); v.Verdict != protocol.VerdictPass {
		b.Fatalf("the benchmark cycle does not pass: %v", v.Reasons)
	}
	b.ReportAllocs()
	for b.Loop() {
		verify.Check(rec, c)
	}
}
