package verify_test

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
	"github.com/sterigate/sterigate/protocol/verify/verifytest"
)

// FuzzCheck: no record and no criteria make the check panic, loop or give
// an answer outside its vocabulary, and the same input always gives the
// same answer.
func FuzzCheck(f *testing.F) {
	for _, rec := range []protocol.CycleRecord{
		verifytest.Cycle{Program: "134-porous", Probes: true, Every: 10 * time.Second}.Record(),
		verifytest.LeakTest{RateKPaMin: 0.2, Every: 20 * time.Second}.Record(),
		verifytest.Cycle{Program: "bowie-dick", Every: 15 * time.Second, TimeScale: 20}.Record(),
	} {
		b, err := json.Marshal(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0), 134.0, 3.0, 180.0, 2.5)
	}
	f.Add([]byte(`{"samples":[{"t":"2026-03-02T08:00:00Z","temp_c":134,"pressure_kpa":0,"phase":"sterilizing","ch":{"x":1}}],"channels":[{"id":"x","role":"load_temperature","unit":"°C"}]}`), uint8(1), 0.0, 0.0, 0.0, 0.0)
	f.Add([]byte(`{"time_scale":1e308,"samples":[{"t":"2026-03-02T08:00:00Z","phase":"leak_test","pressure_kpa":-1},{"t":"2026-03-02T08:00:00Z","phase":"leak_test"}]}`), uint8(5), 0.0, 0.0, 0.0, 1e-300)
	kinds := verify.Kinds()
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, setPointC, bandK, holdS, intervalS float64) {
		var rec protocol.CycleRecord
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		c := protocol.Criteria{Kind: kinds[int(kind)%len(kinds)], Source: verify.SourceProfile,
			SetPointC: setPointC, BandK: bandK, MinHoldSeconds: holdS, MaxSampleIntervalSeconds: intervalS}
		v := verify.Check(rec, c)
		switch v.Verdict {
		case protocol.VerdictPass, protocol.VerdictFail, protocol.VerdictIndeterminate, protocol.VerdictNotApplicable:
		default:
			t.Fatalf("verdict %q", v.Verdict)
		}
		for _, ch := range v.Checks {
			if ch.Measured != nil && math.IsNaN(*ch.Measured) {
				t.Fatalf("%s measured NaN", ch.Name)
			}
			if v.Verdict == protocol.VerdictPass && ch.Result != protocol.CheckPass && ch.Result != protocol.CheckInfo {
				t.Fatalf("pass with %s %s", ch.Name, ch.Result)
			}
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("verification does not marshal: %v", err)
		}
		if again := verify.Check(rec, c); !reflect.DeepEqual(again, v) {
			t.Fatal("the same input judged twice differs")
		}
		verify.Judge(rec, nil)
	})
}
