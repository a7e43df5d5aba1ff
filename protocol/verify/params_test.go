package verify_test

import (
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol/verify"
)

func TestParamsCriteria(t *testing.T) {
	c, err := verify.Params{Kind: verify.KindPorous, Values: map[string]float64{"set_point_c": 121, "band_k": 4}}.Criteria(verify.SourceSite)
	if err != nil || c.MinHoldSeconds != 900 || c.BandK != 4 || c.SaturationK != 2 || c.Source != verify.SourceSite || c.Set != "en285-porous" {
		t.Errorf("porous 121 band 4: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		p    verify.Params
		want []string
	}{
		{verify.Params{Values: map[string]float64{"band_k": 3}}, []string{"criteria.kind: is missing"}},
		{verify.Params{Kind: verify.KindPorous}, []string{"criteria.set_point_c: is missing"}},
		{verify.Params{Kind: verify.KindPorous, Values: map[string]float64{"set_point_c": 132}}, []string{"criteria.min_hold_s: is missing: there is no standard holding time at 132 °C"}},
		{verify.Params{Kind: verify.KindGravity}, []string{"criteria.set_point_c: is missing", "criteria.min_hold_s: is missing"}},
		{verify.Params{Kind: verify.KindLeakTest, Values: map[string]float64{"min_hold_s": 60, "leak_rate_kpa_min": 11}},
			[]string{"criteria.min_hold_s: does not apply to a leak test", "criteria.leak_rate_kpa_min: 11 must be above 0 and at most 10 kPa/min"}},
		{verify.Params{Kind: verify.KindPrion, Values: map[string]float64{"leak_measure_s": 600, "hold": 3}},
			[]string{"criteria.leak_measure_s: applies only to a leak test", "criteria.hold: unknown key"}},
	} {
		_, err := tc.p.Criteria(verify.SourceProfile)
		pes := verify.ParamErrors(err)
		if len(pes) != len(tc.want) {
			t.Errorf("%+v: %d errors %v, want %d", tc.p, len(pes), err, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(pes[i].Error(), w) {
				t.Errorf("%+v: error %d = %q, want %q…", tc.p, i, pes[i], w)
			}
		}
	}
}

// A site override without a kind is checked key by key; laid over the
// profile's set it changes only the keys it gives, and a kind of its own
// replaces the profile's set.
func TestParamsOverAndCheck(t *testing.T) {
	profile := verify.Params{Kind: verify.KindPorous, Values: map[string]float64{"set_point_c": 134, "min_hold_s": 180}}
	site := verify.Params{Values: map[string]float64{"equilibration_s": 30, "min_hold_s": 240}}
	if err := site.Check(); err != nil {
		t.Fatal(err)
	}
	c, err := profile.Over(site).Criteria(verify.SourceSite)
	if err != nil || c.SetPointC != 134 || c.MinHoldSeconds != 240 || c.EquilibrationSeconds != 30 || c.Kind != verify.KindPorous {
		t.Errorf("override: %+v, %v", c, err)
	}
	if profile.Values["min_hold_s"] != 180 {
		t.Error("Over changed the profile's values")
	}
	c, err = profile.Over(verify.Params{Kind: verify.KindPrion}).Criteria(verify.SourceSite)
	if err != nil || c.Kind != verify.KindPrion || c.MinHoldSeconds != 1080 {
		t.Errorf("a kind of its own: %+v, %v", c, err)
	}
	err = verify.Params{Values: map[string]float64{"band_k": 0, "spread": 1, "set_point_c": 50}}.Check()
	got := []string{}
	for _, pe := range verify.ParamErrors(err) {
		got = append(got, pe.Error())
	}
	want := []string{"criteria.band_k: 0 must be above 0 and at most 10 K", "criteria.spread: unknown key (known: kind, set_point_c, band_k, min_hold_s, saturation_k, spread_k, equilibration_s, max_sample_interval_s, leak_rate_kpa_min, leak_equalise_s, leak_measure_s)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Check: %q\nwant %q", got, want)
	}
}
