package config

import (
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol/verify"
)

const criteriaHead = "gateway: {id: gw, site: dax}\nmqtt: {brokers: [\"tcp://127.0.0.1:1883\"]}\ndevices:\n" +
	"  - id: a\n    driver: modbus-tcp\n    address: \"10.0.0.1:502\"\n    profile: sim-autoclave\n    criteria:\n"

func TestSiteCriteria(t *testing.T) {
	c, err := Parse("site.yaml", []byte(criteriaHead+
		"      134-porous: &big {equilibration_s: 30, min_hold_s: 240}\n"+
		"      2: {kind: prion, band_k: 4}\n"+
		"      121-15: *big\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Devices[0].Criteria
	if p := got["134-porous"]; p.Kind != "" || p.Values["equilibration_s"] != 30 || p.Values["min_hold_s"] != 240 || len(p.Values) != 2 {
		t.Errorf("134-porous: %+v", p)
	}
	if p := got["2"]; p.Kind != verify.KindPrion || p.Values["band_k"] != 4 {
		t.Errorf("code 2: %+v", p)
	}
	if p := got["121-15"]; p.Values["equilibration_s"] != 30 {
		t.Errorf("an alias shares the set: %+v", p)
	}
	if n := c.Line("devices[0].criteria.2.band_k"); n != 10 {
		t.Errorf("line of a criteria key %d, want 10", n)
	}
}

// Every numeric key at, just inside and just outside its bounds; errors
// name the file, the line and the key path.
func TestSiteCriteriaBounds(t *testing.T) {
	for _, c := range []struct{ key, at, in, out string }{
		{"set_point_c", "150", "149.9", "150.01"},
		{"band_k", "10", "0.01", "10.5"},
		{"min_hold_s", "86400", "1", "86400.1"},
		{"saturation_k", "20", "0.1", "21"},
		{"spread_k", "20", "0.1", "-1"},
		{"equilibration_s", "3600", "30", "0"},
		{"max_sample_interval_s", "3600", "0.5", "-2.5"},
		{"leak_rate_kpa_min", "10", "0.2", "10.1"},
		{"leak_equalise_s", "3600", "60", "4000"},
		{"leak_measure_s", "3600", "60", "0"},
	} {
		for _, v := range []string{c.at, c.in} {
			if _, err := Parse("site.yaml", []byte(criteriaHead+"      134-porous: {"+c.key+": "+v+"}\n")); err != nil {
				t.Errorf("%s: %s: %v", c.key, v, err)
			}
		}
		_, err := Parse("site.yaml", []byte(criteriaHead+"      134-porous: {"+c.key+": "+c.out+"}\n"))
		want := "site.yaml:9: devices[0].criteria.134-porous." + c.key + ": " + c.out + " must be "
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %s: err = %v\nwant %s…", c.key, c.out, err, want)
		}
	}
	for text, want := range map[string]string{
		"134-porous: {kind: porus}":                     `site.yaml:9: devices[0].criteria.134-porous.kind: "porus" is not one of porous, prion, liquids, gravity, bowie_dick, leak_test`,
		"134-porous: {hold: 240}":                       "site.yaml:9: devices[0].criteria.134-porous.hold: unknown key (allowed here: kind, set_point_c,",
		"134-porous: {band_k: wide}":                    `site.yaml:9: devices[0].criteria.134-porous.band_k: "wide" is not a finite number`,
		"134-porous: {kind: leak_test, band_k: 3}":      "site.yaml:9: devices[0].criteria.134-porous.band_k: does not apply to a leak test",
		"134-porous: {kind: liquids, set_point_c: 121}": "site.yaml:9: devices[0].criteria.134-porous.min_hold_s: is missing: a liquids program has no standard holding time",
		"134-porous: 240":                               `site.yaml:9: devices[0].criteria.134-porous: must be a mapping of keys to values, not the value "240"`,
		"134-porous:":                                   "site.yaml:9: devices[0].criteria.134-porous: must be a mapping of criteria keys to values",
	} {
		_, err := Parse("site.yaml", []byte(criteriaHead+"      "+text+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v\nwant %s", text, err, want)
		}
	}
	_, err := Parse("site.yaml", []byte(strings.TrimSuffix(criteriaHead, "\n")+" 134\n"))
	if want := "site.yaml:8: devices[0].criteria: must be a mapping of keys to values, not the value \"134\""; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("criteria: 134: err = %v\nwant %s", err, want)
	}
}
