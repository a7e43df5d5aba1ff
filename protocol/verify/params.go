package verify

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// ParamError is one criteria parameter the check cannot work with: its
// key (as a profile or config writes it, e.g. "band_k") and what is wrong
// with its value. Loaders put their file, line and key path in front.
type ParamError struct {
	Key string
	Msg string
}

func (e *ParamError) Error() string { return "criteria." + e.Key + ": " + e.Msg }

// ParamErrors returns the ParamErrors err carries (Validate and
// Params.Criteria join several), in order.
func ParamErrors(err error) []*ParamError {
	var out []*ParamError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *ParamError
		if errors.As(err, &pe) {
			out = append(out, pe)
		}
	}
	walk(err)
	return out
}

// param is one numeric criteria parameter: its key, where it lives in
// protocol.Criteria, its range and which kinds use it.
type param struct {
	key   string
	field func(*protocol.Criteria) *float64
	// lo is exclusive unless loIncl; hi is inclusive.
	lo, hi  float64
	loIncl  bool
	unit    string
	use     paramUse
	explain string // what the key is, for "is missing" messages
}

type paramUse int

const (
	steamOnly paramUse = iota // every kind but the leak test
	leakOnly                  // the leak test
	everyKind
)

// params lists every numeric criteria key, in documentation order; the
// one table Validate, Params and the loaders of profiles and configs use.
var params = []param{
	{key: "set_point_c", field: func(c *protocol.Criteria) *float64 { return &c.SetPointC }, lo: 50, hi: 150, loIncl: true, unit: "°C", use: steamOnly},
	{key: "band_k", field: func(c *protocol.Criteria) *float64 { return &c.BandK }, hi: 10, unit: "K", use: steamOnly},
	{key: "min_hold_s", field: func(c *protocol.Criteria) *float64 { return &c.MinHoldSeconds }, hi: 24 * 3600, unit: "s", use: steamOnly},
	{key: "saturation_k", field: func(c *protocol.Criteria) *float64 { return &c.SaturationK }, hi: 20, unit: "K", use: steamOnly},
	{key: "spread_k", field: func(c *protocol.Criteria) *float64 { return &c.SpreadK }, hi: 20, unit: "K", use: steamOnly},
	{key: "equilibration_s", field: func(c *protocol.Criteria) *float64 { return &c.EquilibrationSeconds }, hi: 3600, unit: "s", use: steamOnly},
	{key: "max_sample_interval_s", field: func(c *protocol.Criteria) *float64 { return &c.MaxSampleIntervalSeconds }, hi: 3600, unit: "s", use: everyKind},
	{key: "leak_rate_kpa_min", field: func(c *protocol.Criteria) *float64 { return &c.LeakRateKPaMin }, hi: 10, unit: "kPa/min", use: leakOnly},
	{key: "leak_equalise_s", field: func(c *protocol.Criteria) *float64 { return &c.LeakEqualiseSeconds }, hi: 3600, unit: "s", use: leakOnly},
	{key: "leak_measure_s", field: func(c *protocol.Criteria) *float64 { return &c.LeakMeasureSeconds }, hi: 3600, unit: "s", use: leakOnly},
}

func (p param) appliesTo(kind string) bool {
	switch p.use {
	case steamOnly:
		return kind != KindLeakTest
	case leakOnly:
		return kind == KindLeakTest
	}
	return true
}

func (p param) inRange(v float64) bool {
	if math.IsNaN(v) || v > p.hi {
		return false
	}
	if p.loIncl {
		return v >= p.lo
	}
	return v > p.lo
}

func (p param) rangeText() string {
	if p.loIncl {
		return fmt.Sprintf("must be between %v and %v %s", p.lo, p.hi, p.unit)
	}
	return fmt.Sprintf("must be above %v and at most %v %s", p.lo, p.hi, p.unit)
}

// ParamKeys lists the keys a criteria mapping may hold besides kind, in
// documentation order.
func ParamKeys() []string {
	out := make([]string, len(params))
	for i, p := range params {
		out[i] = p.key
	}
	return out
}

// Params is a criteria set as a profile or a site's config writes it: the
// kind (empty in a site override that keeps the profile's) and the
// parameters it gives, by key (ParamKeys). Keys left out take the kind's
// defaults when Criteria builds the set.
type Params struct {
	Kind   string
	Values map[string]float64
}

// Over returns p with over's keys on top, key by key. A kind in over that
// differs from p's replaces p as a whole: one kind's parameters mean
// nothing to another.
func (p Params) Over(over Params) Params {
	if over.Kind != "" && over.Kind != p.Kind {
		return Params{Kind: over.Kind, Values: cloneValues(over.Values)}
	}
	out := Params{Kind: p.Kind, Values: cloneValues(p.Values)}
	for k, v := range over.Values {
		out.Values[k] = v
	}
	return out
}

func cloneValues(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Check reports what can be said of p on its own, without the criteria it
// may later be laid over (a site override without a kind): a key no kind
// knows, a kind that is not one, a value out of its key's range, a key the
// given kind does not use. With a kind, it also reports everything
// Criteria would. Every error is a *ParamError.
func (p Params) Check() error {
	if p.Kind != "" {
		_, err := p.Criteria(SourceProfile)
		return err
	}
	var errs []error
	for _, k := range sortedKeys(p.Values) {
		i := slices.IndexFunc(params, func(x param) bool { return x.key == k })
		if i < 0 {
			errs = append(errs, unknownKey(k))
			continue
		}
		if v := p.Values[k]; !params[i].inRange(v) {
			errs = append(errs, &ParamError{Key: k, Msg: fmt.Sprintf("%v %s", v, params[i].rangeText())})
		}
	}
	return errors.Join(errs...)
}

func unknownKey(k string) *ParamError {
	return &ParamError{Key: k, Msg: fmt.Sprintf("unknown key (known: kind, %s)", strings.Join(ParamKeys(), ", "))}
}

// Criteria builds the complete criteria set p describes, with source as
// its source: the kind's standard values (Standard), p's values on top,
// every other parameter at its default. Errors (each a *ParamError) name
// a missing kind, a key that does not apply to the kind, a value out of
// range, and a required key left out: the set point of a porous, liquids
// or gravity program, and the holding time of a liquids or gravity
// program or of a porous program at a set point with no standard holding
// time (EN 285 gives 15 min at 121 °C, 10 min at 126 °C, 3 min at 134 °C).
func (p Params) Criteria(source string) (protocol.Criteria, error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &ParamError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Kind == "" {
		fail("kind", "is missing: say which kind of program this is (%s)", strings.Join(Kinds(), ", "))
		return protocol.Criteria{}, errors.Join(errs...)
	}
	if _, ok := sets[p.Kind]; !ok {
		fail("kind", "%q is not one of %s", p.Kind, strings.Join(Kinds(), ", "))
		return protocol.Criteria{}, errors.Join(errs...)
	}
	given := func(k string) (float64, bool) { v, ok := p.Values[k]; return v, ok }
	for _, k := range sortedKeys(p.Values) {
		i := slices.IndexFunc(params, func(x param) bool { return x.key == k })
		switch {
		case i < 0:
			errs = append(errs, unknownKey(k))
		case !params[i].appliesTo(p.Kind) && p.Kind == KindLeakTest:
			fail(k, "does not apply to a leak test (its keys: leak_rate_kpa_min, leak_equalise_s, leak_measure_s, max_sample_interval_s)")
		case !params[i].appliesTo(p.Kind):
			fail(k, "applies only to a leak test, not to kind %s", p.Kind)
		case !params[i].inRange(p.Values[k]):
			fail(k, "%v %s", p.Values[k], params[i].rangeText())
		}
	}
	setPoint, haveSetPoint := given("set_point_c")
	hold, haveHold := given("min_hold_s")
	switch p.Kind {
	case KindPorous:
		if !haveSetPoint {
			fail("set_point_c", "is missing: a porous program runs at its set point (121, 126 or 134 °C)")
		} else if _, standard := standardHoldSeconds[setPoint]; !standard && !haveHold {
			fail("min_hold_s", "is missing: there is no standard holding time at %v °C (EN 285: 15 min at 121 °C, 10 min at 126 °C, 3 min at 134 °C)", setPoint)
		}
	case KindLiquids, KindGravity:
		if !haveSetPoint {
			fail("set_point_c", "is missing: a %s program has no standard set point; give it", p.Kind)
		}
		if !haveHold {
			fail("min_hold_s", "is missing: a %s program has no standard holding time; give it", p.Kind)
		}
	}
	if len(errs) > 0 {
		return protocol.Criteria{}, errors.Join(errs...)
	}
	c, _ := Standard(p.Kind, setPoint, hold)
	for _, prm := range params {
		if v, ok := given(prm.key); ok {
			*prm.field(&c) = v
		}
	}
	c.Source = source
	return c, Validate(c)
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Documentation order first, unknown keys after, alphabetically.
	slices.SortFunc(keys, func(a, b string) int {
		ia := slices.IndexFunc(params, func(x param) bool { return x.key == a })
		ib := slices.IndexFunc(params, func(x param) bool { return x.key == b })
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}
