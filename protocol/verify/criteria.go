package verify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// Version is the version of the rules this package applies. A record
// judged by criteria of a later version is indeterminate here: those
// rules are not known to this build.
const Version = 1

// Kinds of program the criteria know (protocol.Criteria.Kind).
const (
	KindPorous    = "porous"     // wrapped and porous loads, prevacuum (EN 285, EN 13060 type B)
	KindPrion     = "prion"      // porous loads with the 18-minute prion hold
	KindLiquids   = "liquids"    // liquids in sealed or open containers (ISO 17665)
	KindGravity   = "gravity"    // gravity displacement (ISO 17665)
	KindBowieDick = "bowie_dick" // the daily steam-penetration test: judged on its indicator sheet
	KindLeakTest  = "leak_test"  // the vacuum (air-leak) test
)

// Kinds lists every kind in a stable order, for validation and docs.
func Kinds() []string {
	return []string{KindPorous, KindPrion, KindLiquids, KindGravity, KindBowieDick, KindLeakTest}
}

// Sources of criteria (protocol.Criteria.Source).
const (
	SourceProfile  = "profile"  // the device profile's per-program criteria
	SourceSite     = "site"     // the site's configuration overrides
	SourceDefault  = "default"  // Standard defaults for a program the profile names a kind for
	SourceInferred = "inferred" // matched to a standard program by name or plateau
)

// SetNone is the set of the criteria of a record no criteria could be
// found for; such a record is indeterminate.
const SetNone = "none"

// The defaults of version 1, set here and nowhere else.
const (
	defaultBandK                 = 3    // EN 285: the band is set point to set point + 3 K
	defaultSaturationK           = 2    // |T − Tsat(p)| ≤ 2 K
	defaultSpreadK               = 2    // temperature channels within 2 K of each other
	defaultEquilibrationSeconds  = 15   // EN 285, chambers up to 800 L (30 s above)
	defaultMaxSampleIntervalSecs = 2.5  // a hold sampled more sparsely cannot show a short sag
	defaultLeakRateKPaMin        = 0.13 // 1.3 mbar/min
	defaultLeakEqualiseSeconds   = 300  // P1 five minutes after the valves close
	defaultLeakMeasureSeconds    = 600  // P2 ten minutes after P1
	bowieDickSetPointC           = 134
	bowieDickHoldSeconds         = 210 // 3.5 min
)

// sets names each kind's rule set.
var sets = map[string]string{
	KindPorous:    "en285-porous",
	KindPrion:     "en285-prion",
	KindLiquids:   "iso17665-liquids",
	KindGravity:   "iso17665-gravity",
	KindBowieDick: "en285-bowie-dick",
	KindLeakTest:  "en285-leak-test",
}

// standardHoldSeconds gives the minimum holding time of the standard
// sterilization temperatures (EN 285 / ISO 17665-2): the holding time a
// porous program at that set point gets when none is given.
var standardHoldSeconds = map[float64]float64{121: 900, 126: 600, 134: 180}

// Standard returns the criteria of version 1 for a program of kind
// running at setPointC with a holding time of minHoldSeconds, every other
// parameter at its default. Zero setPointC or minHoldSeconds take the
// kind's standard value where there is one (134 °C and 3.5 min for a
// Bowie-Dick test; for porous loads 15 min at 121 °C, 10 min at 126 °C,
// 3 min at 134 °C; 18 min for prion). A leak test has no set point or
// hold. The error names the bad parameter and its value.
func Standard(kind string, setPointC, minHoldSeconds float64) (protocol.Criteria, error) {
	c := protocol.Criteria{Kind: kind, Source: SourceDefault, SetPointC: setPointC, MinHoldSeconds: minHoldSeconds}
	switch kind {
	case KindLeakTest:
		c.SetPointC, c.MinHoldSeconds = 0, 0
	case KindBowieDick:
		if c.SetPointC == 0 {
			c.SetPointC = bowieDickSetPointC
		}
		if c.MinHoldSeconds == 0 {
			c.MinHoldSeconds = bowieDickHoldSeconds
		}
	case KindPrion:
		if c.SetPointC == 0 {
			c.SetPointC = 134
		}
		if c.MinHoldSeconds == 0 {
			c.MinHoldSeconds = 1080
		}
	case KindPorous:
		if c.MinHoldSeconds == 0 {
			c.MinHoldSeconds = standardHoldSeconds[c.SetPointC]
		}
	}
	c = withDefaults(c)
	return c, Validate(c)
}

// withDefaults fills every parameter left at zero with its version-1
// default, so a criteria set written with only what differs (a profile's
// set point, band and hold) is complete, and a record carries every
// number it was judged by.
func withDefaults(c protocol.Criteria) protocol.Criteria {
	if c.Version == 0 {
		c.Version = Version
	}
	if c.Set == "" {
		c.Set = sets[c.Kind]
	}
	orDefault := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	orDefault(&c.MaxSampleIntervalSeconds, defaultMaxSampleIntervalSecs)
	if c.Kind == KindLeakTest {
		orDefault(&c.LeakRateKPaMin, defaultLeakRateKPaMin)
		orDefault(&c.LeakEqualiseSeconds, defaultLeakEqualiseSeconds)
		orDefault(&c.LeakMeasureSeconds, defaultLeakMeasureSeconds)
		return c
	}
	orDefault(&c.BandK, defaultBandK)
	orDefault(&c.SaturationK, defaultSaturationK)
	orDefault(&c.SpreadK, defaultSpreadK)
	orDefault(&c.EquilibrationSeconds, defaultEquilibrationSeconds)
	return c
}

// Validate reports every parameter of c that the check cannot work with,
// each a *ParamError naming its key and value, so a profile or config
// loader can put its file and line in front (ParamErrors unpacks them).
func Validate(c protocol.Criteria) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ParamError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, ok := sets[c.Kind]; !ok {
		bad("kind", "%q is not one of %s", c.Kind, strings.Join(Kinds(), ", "))
	}
	if c.Version > Version {
		bad("version", "%d is newer than the rules this sterigate knows (version %d)", c.Version, Version)
	}
	if c.Version < 0 {
		bad("version", "%d is negative", c.Version)
	}
	switch c.Source {
	case SourceProfile, SourceSite, SourceDefault, SourceInferred:
	default:
		bad("source", "%q is not one of profile, site, default, inferred", c.Source)
	}
	for _, p := range params {
		if !p.appliesTo(c.Kind) {
			continue
		}
		if v := *p.field(&c); !p.inRange(v) {
			bad(p.key, "%v %s", v, p.rangeText())
		}
	}
	return errors.Join(errs...)
}
